"""``quantcore debug --html OUT.html``: the per-layer error report as one HTML file.

The file is self-contained (inline CSS, no script, no external resource; the plots
are PNGs embedded as ``data:`` URIs), so it can be attached to a CI run or mailed.
It holds: the settings and model output SQNR; the suggested denylist with the
``quantcore quantize`` command that applies it; the per-layer table in the result's
order (worst first: by local SQNR unless ``--sort`` said otherwise), its cells
coloured with the thresholds of :mod:`quantcore.overlays` (the same colours Model
Explorer shows); the selective-quantization results when computed; and, when
matplotlib is installed, the chart of :func:`quantcore.debug.plot`. It is written
atomically.

Machine-readable hooks for tests: ``<table id="layers">`` rows carry ``data-op``
(operator index) and ``data-tensor``; cells carry ``data-col``.
"""
from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from typing import Any

from quantcore import overlays as ov

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#1f1f1f}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f5f5f5;position:sticky;top:0}
td.l,th.l{text-align:left}
td.name{max-width:420px;overflow:hidden;text-overflow:ellipsis}
tr.suggested td.op{font-weight:bold}
code,pre{background:#f5f5f5;padding:2px 4px;font-size:12px}
pre{padding:8px;overflow-x:auto}
.legend span{display:inline-block;padding:2px 8px;margin-right:4px;font-size:12px}
img{max-width:100%;border:1px solid #eee}
.wrap{overflow-x:auto;max-width:100%}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _colour(value: float | None, thresholds: list[dict] | None) -> str | None:
    """Model Explorer's rule: the first threshold the value does not exceed."""
    if value is None or thresholds is None or isinstance(value, str) or math.isnan(value):
        return None
    for t in thresholds:
        if value <= t["value"]:
            return t["bgColor"]
    return None


def _db(v: float | None) -> tuple[str, str | None]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-", None
    if math.isinf(v):
        return ("exact", ov.GREEN) if v > 0 else ("-inf", ov.RED)
    return f"{v:.2f}", _colour(v, ov.SQNR_THRESHOLDS)


def _cell(col: str, text: str, bg: str | None = None, cls: str = "") -> str:
    style = f' style="background:{bg}"' if bg else ""
    c = f' class="{cls}"' if cls else ""
    return f'<td data-col="{col}"{c}{style}>{_e(text)}</td>'


def _plot_png(result: Any) -> tuple[bytes | None, str | None]:
    """The debug chart as PNG bytes, or why not."""
    from quantcore.debug import plot
    from quantcore.errors import InputError

    with tempfile.TemporaryDirectory(prefix="quantcore-report-") as d:
        path = os.path.join(d, "plot.png")
        try:
            plot(result, path)
        except InputError as e:         # matplotlib missing
            return None, str(e)
        with open(path, "rb") as fh:
            return fh.read(), None


def debug_html(result: Any, *, float_model: str = "FLOAT.tflite", quant_model: str = "QUANT.tflite",
               data: str = "DATA", plots: bool = True) -> str:
    """The HTML text of the report of a :class:`quantcore.debug.DebugResult`."""
    s = result.settings
    out: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      f"<title>quantcore debug: {_e(os.path.basename(quant_model))}</title>",
                      f"<style>{_CSS}</style></head><body>"]
    out.append(f"<h1>quantcore debug: {_e(os.path.basename(quant_model))}</h1>")
    out.append(f'<p class="meta">quantized model <code>{_e(quant_model)}</code> against float model '
               f"<code>{_e(float_model)}</code>, {result.samples} samples from <code>{_e(data)}</code>; "
               f"mode {_e(s['mode'])}, {'per-channel' if s['per_channel'] else 'per-tensor'}, I/O "
               f"{_e(s['input_type'])}/{_e(s['output_type'])}</p>")
    text, bg = _db(result.output_sqnr_db)
    out.append(f'<p>model output SQNR: <b id="output-sqnr" style="background:{bg or "transparent"};'
               f'padding:1px 6px">{_e(text)} dB</b></p>')
    if s.get("denylist"):
        out.append(f"<p>operators already in float in the quantized model: "
                   f"{_e(', '.join(s['denylist']))}</p>")

    out.append("<h2>Suggested denylist</h2>")
    if result.suggested:
        out.append(f'<p>{len(result.suggested)} layer(s) whose local SQNR is more than {result.margin_db:g} dB '
                   f"below the median ({_e(_db(result.median_db)[0])} dB):</p><ul id=\"denylist\">")
        for r in result.suggested:
            out.append(f'<li data-op="{r.op_index}">op {r.op_index} {_e(r.op)}: local '
                       f"{_e(_db(r.local_sqnr_db)[0])} dB, whole model {_e(_db(r.sqnr_db)[0])} dB "
                       f"<code>{_e(r.float_name)}</code></li>")
        out.append("</ul><p>keep them in float with:</p>")
        out.append(f"<pre>{_e(result.quantize_command(float_model, data))}</pre>")
    else:
        out.append(f'<p id="denylist">none: every local SQNR is within {result.margin_db:g} dB of the median '
                   f"({_e(_db(result.median_db)[0])} dB)</p>")

    order = {"sqnr": "whole-model SQNR, ascending", "local": "local SQNR, ascending",
             "rmse": "RMS error in LSB, descending", "op": "execution order"}.get(result.sort, result.sort)
    out.append(f"<h2>Layers ({len(result.rows)}, worst first: {_e(order)})</h2>")
    out.append('<p class="legend">SQNR: <span style="background:%s">&le; 20 dB</span><span style="background:%s">'
               '&le; 30</span><span style="background:%s">&le; 40</span><span style="background:%s">&gt; 40 '
               "or exact</span> &nbsp; RMS error: <span style=\"background:%s\">&le; 0.5 LSB</span>"
               '<span style="background:%s">&le; 1</span><span style="background:%s">&le; 4</span>'
               '<span style="background:%s">&gt; 4</span></p>'
               % (ov.RED, ov.ORANGE, ov.YELLOW, ov.GREEN, ov.GREEN, ov.YELLOW, ov.ORANGE, ov.RED))
    out.append('<div class="wrap"><table id="layers"><thead><tr><th>#</th><th>op</th><th class="l">type</th><th>dtype</th>'
               "<th>scale</th><th>zero point</th><th>elements</th><th>local SQNR dB</th><th>SQNR dB</th>"
               "<th>RMSE LSB</th><th>max |err|</th><th>mean err</th><th>std err</th><th>MSE</th>"
               '<th>denylist</th><th class="l">tensor</th></tr></thead><tbody>')
    for k, r in enumerate(result.rows, start=1):
        cls = ' class="suggested"' if r.suggested else ""
        scale = f"{r.scale:.4g}" if isinstance(r.scale, float) else "per-channel"
        zp = str(r.zero_point) if isinstance(r.zero_point, int) else "per-channel"
        ltext, lbg = _db(r.local_sqnr_db)
        wtext, wbg = _db(r.sqnr_db)
        cells = [_cell("rank", str(k)), _cell("op", str(r.op_index), cls="op"), _cell("type", r.op, cls="l"),
                 _cell("dtype", r.dtype), _cell("scale", scale), _cell("zero_point", zp),
                 _cell("elements", str(r.num_elements)), _cell("local_sqnr_db", ltext, lbg),
                 _cell("sqnr_db", wtext, wbg),
                 _cell("rmse_lsb", f"{r.rmse_lsb:.3f}", _colour(r.rmse_lsb, ov.RMSE_LSB_THRESHOLDS)),
                 _cell("max_abs_error", f"{r.max_abs_error:.3g}"), _cell("mean_error", f"{r.mean_error:.2e}"),
                 _cell("std_error", f"{r.std_error:.3g}"), _cell("mse", f"{r.mse:.3g}"),
                 _cell("denylist", "suggested" if r.suggested else "", ov.RED if r.suggested else None),
                 f'<td data-col="tensor" class="l name" title="{_e(r.name)}">{_e(r.name)}</td>']
        out.append(f'<tr data-op="{r.op_index}" data-tensor="{r.tensor}"{cls}>' + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    out.append("<p class=\"meta\">local SQNR: the error the layer adds by itself (the float operator on the "
               "dequantized inputs of the quantized operator); the other columns: against the float model's "
               "tensor, errors of earlier layers included.</p>")
    if result.unmatched:
        out.append("<h2>Without a float counterpart</h2><ul>")
        for u in result.unmatched:
            out.append(f"<li>op {u['op_index']} {_e(u['op'])} <code>{_e(u['name'])}</code></li>")
        out.append("</ul>")

    if result.selective is not None:
        out.append("<h2>Selective quantization</h2>")
        out.append('<table id="selective"><thead><tr><th class="l">kept in float</th><th>output SQNR dB</th>'
                   "<th>gain dB</th><th>vs re-quantization dB</th></tr></thead><tbody>")
        out.append(f'<tr><td class="l">(the given quantized model)</td><td>{_e(_db(result.output_sqnr_db)[0])}'
                   "</td><td></td><td></td></tr>")
        for sr in result.selective:
            if sr.error is not None:
                out.append(f'<tr><td class="l">{_e(sr.label)}</td><td colspan="3">failed: {_e(sr.error)}</td></tr>')
                continue
            vs = "" if sr.gain_vs_requantized_db is None or not sr.denylist else f"{sr.gain_vs_requantized_db:+.2f}"
            out.append(f'<tr><td class="l">{_e(sr.label)}</td><td>{_e(_db(sr.output_sqnr_db)[0])}</td>'
                       f"<td>{sr.gain_db:+.2f}</td><td>{_e(vs)}</td></tr>")
        out.append("</tbody></table>")

    if plots:
        png, why = _plot_png(result)
        out.append("<h2>Plots</h2>")
        if png is not None:
            out.append('<img id="plot" alt="per-layer SQNR and histograms of the worst layers" '
                       f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
        else:
            out.append(f'<p id="plot-missing">{_e(why)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_debug_html(result: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Write :func:`debug_html` to ``path`` atomically (UTF-8)."""
    from quantcore.schema import atomic_write

    atomic_write(path, debug_html(result, **kwargs).encode("utf-8"))


__all__ = ["debug_html", "write_debug_html"]
