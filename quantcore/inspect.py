"""What a .tflite model contains, as a dict (``--json``) or aligned text.

:func:`inspect_model` summarizes a model: a header (file size, schema version,
description, operator counts by type), per subgraph the operators in stored order
(index, name, version, input/output tensor indices, options) and the tensors
(index, name, type, shape, shape signature when it differs, constant bytes,
quantization), the inputs and outputs, signature defs and metadata.
:func:`format_text` renders it for a terminal. Per-channel quantization is given
in full in the dict and summarized (count, min/max scale) in the text.

Works on models that decode but fail validation too (``read_model(...,
validate=False)``): an index out of range is shown as it is, never followed.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

import numpy as np

from quantcore.errors import ModelFormatError
from quantcore.schema import Model, read_model
from quantcore.schema import _schema_desc as desc
from quantcore.schema.model import packed_nbytes, type_name
from quantcore.schema.reader import load_bytes

# Options shown first, in this order, in the text form; other options follow
# when they differ from the schema default.
_KEY_OPTIONS = ("padding", "stride_h", "stride_w", "filter_height", "filter_width",
                "dilation_h_factor", "dilation_w_factor", "depth_multiplier",
                "fused_activation_function")
_NAME_WIDTH = 48


# ---------------------------------------------------------------------------
# The dict
# ---------------------------------------------------------------------------
def inspect_model(model_or_path: Model | bytes | str | os.PathLike, *,
                  validate: bool = True) -> dict:
    """Summarize a model (a :class:`Model`, .tflite bytes or a path) as a JSON-ready dict.

    Keys: ``file``, ``file_size`` (None for a Model object), ``version``,
    ``description``, ``op_counts`` ({op name: count} over all subgraphs),
    ``operator_codes``, ``subgraphs`` (each with ``operators``, ``tensors``,
    ``inputs``, ``outputs``), ``signature_defs``, ``metadata``, ``num_buffers`` and
    ``constant_bytes``. A tensor's quantization is ``None`` or ``{"scale": [...],
    "zero_point": [...], "quantized_dimension": d, "per_channel": bool, "count": n,
    "scale_min": ..., "scale_max": ...}`` with every value (plus ``min``/``max`` when
    recorded); its ``shape_signature`` is ``None`` unless it differs from ``shape``.
    Options are given with defaults filled in and enum members by name.
    Raises what :func:`~quantcore.schema.read_model` raises.
    """
    path = None
    size = None
    if isinstance(model_or_path, Model):
        model = model_or_path
    else:
        if isinstance(model_or_path, (str, os.PathLike)):
            path = os.fspath(model_or_path)
        raw = load_bytes(model_or_path)
        size = len(raw)
        model = read_model(raw, validate=validate)
    return {
        "file": path,
        "file_size": size,
        "version": int(model.version),
        "description": model.description,
        "op_counts": _op_counts(model),
        "operator_codes": [{"index": i, "name": c.name, "version": int(c.version),
                            "builtin_code": int(c.code), "custom_code": c.custom_code}
                           for i, c in enumerate(model.operator_codes)],
        "subgraphs": [_subgraph(model, s) for s in range(len(model.subgraphs))],
        "signature_defs": [
            {"signature_key": sig.signature_key, "subgraph_index": int(sig.subgraph_index),
             "inputs": {tm.name: int(tm.tensor_index) for tm in sig.inputs},
             "outputs": {tm.name: int(tm.tensor_index) for tm in sig.outputs}}
            for sig in model.signature_defs or []],
        "metadata": [_metadata(model, m.name, m.buffer) for m in model.metadata or []],
        "num_buffers": len(model.buffers),
        "constant_bytes": sum(len(b) for b in model.buffers),
    }


def _op_name(model: Model, opcode_index: int) -> str:
    if 0 <= opcode_index < len(model.operator_codes):
        return model.operator_codes[opcode_index].name
    return f"<opcode {opcode_index}?>"


def _op_counts(model: Model) -> dict[str, int]:
    counts = Counter(_op_name(model, op.opcode_index) for sg in model.subgraphs for op in sg.operators)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _metadata(model: Model, name: str | None, buffer: int) -> dict:
    data = model.buffers[buffer].data if 0 <= buffer < len(model.buffers) else None
    out: dict[str, Any] = {"name": name, "buffer": int(buffer),
                           "bytes": 0 if data is None else len(data)}
    if name == "min_runtime_version" and data is not None:
        out["value"] = bytes(data).split(b"\0")[0].decode("ascii", "replace")
    return out


def _subgraph(model: Model, s: int) -> dict:
    sg = model.subgraphs[s]
    return {
        "index": s,
        "name": sg.name,
        "inputs": [int(i) for i in sg.inputs],
        "outputs": [int(i) for i in sg.outputs],
        "operators": [_operator(model, o, op) for o, op in enumerate(sg.operators)],
        "tensors": [_tensor(model, i, t) for i, t in enumerate(sg.tensors)],
    }


def _operator(model: Model, index: int, op) -> dict:
    code = model.operator_codes[op.opcode_index] if 0 <= op.opcode_index < len(model.operator_codes) else None
    out = {
        "index": index,
        "op": _op_name(model, op.opcode_index),
        "version": None if code is None else int(code.version),
        "opcode_index": int(op.opcode_index),
        "inputs": [int(i) for i in op.inputs],
        "outputs": [int(i) for i in op.outputs],
        "options_type": _member(op.builtin_options_type, op.builtin_options, "BuiltinOptions"),
        "options_2_type": _member(op.builtin_options_2_type, op.builtin_options_2, "BuiltinOptions2"),
        "options": _options(op),
    }
    if op.intermediates:
        out["intermediates"] = [int(i) for i in op.intermediates]
    if op.custom_options is not None:
        out["custom_options_bytes"] = len(op.custom_options)
    return out


def _member(utype: int, value: Any, union: str) -> str | None:
    """Name of the options table an operator carries, or None."""
    members = desc.UNIONS[union]
    if not utype or value is None or utype >= len(members) or members[utype] not in desc.TABLES:
        return None
    return members[utype]


def _options(op) -> dict:
    """Options of both unions with defaults filled in, enums by member name."""
    out: dict[str, Any] = {}
    for utype, value, union in ((op.builtin_options_type, op.builtin_options, "BuiltinOptions"),
                                (op.builtin_options_2_type, op.builtin_options_2, "BuiltinOptions2")):
        members = desc.UNIONS[union]
        if not utype or value is None or utype >= len(members) or members[utype] not in desc.TABLES:
            continue
        for name, _slot, kind, elem, default, deprecated, _align in desc.TABLES[members[utype]]:
            if deprecated or kind in ("union_type", "union"):
                continue
            v = value.get(name, default)
            if v is None:
                v = default
            if kind == "enum" and v is not None:
                v = _enum_name(elem, v)
            out[name] = _jsonable(v)
    return out


def _enum_name(enum: str, value: Any) -> Any:
    for member, number in desc.ENUMS[enum][1].items():
        if number == value:
            return member
    return int(value)


def _tensor(model: Model, index: int, t) -> dict:
    try:
        tname = type_name(t.type)
    except ModelFormatError:  # an unknown type in an unvalidated model
        tname = f"<type {t.type}?>"
    buf = model.buffers[t.buffer] if 0 <= t.buffer < len(model.buffers) else None
    data_bytes = 0 if buf is None or t.buffer == 0 else len(buf)
    sig = None if t.shape_signature is None or list(t.shape_signature) == list(t.shape) \
        else [int(d) for d in t.shape_signature]
    return {
        "index": index,
        "name": t.name,
        "type": tname,
        "shape": [int(d) for d in t.shape],
        "shape_signature": sig,
        "constant": data_bytes > 0,
        "buffer": int(t.buffer),
        "bytes": data_bytes if data_bytes else _declared_bytes(t),
        "is_variable": bool(t.is_variable),
        "sparse": t.sparsity is not None,
        "quantization": _quantization(t.quantization),
    }


def _declared_bytes(t) -> int | None:
    try:
        return packed_nbytes(t.type, math.prod(int(d) for d in t.shape))
    except ModelFormatError:
        return None


def _quantization(q) -> dict | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = [float(x) for x in np.asarray(q.scale, np.float64)]
    zp = [] if q.zero_point is None else [int(x) for x in q.zero_point]
    out = {
        "scale": [_jsonable(x) for x in scale],
        "zero_point": zp,
        "quantized_dimension": int(q.quantized_dimension),
        "per_channel": len(scale) > 1,
        "count": len(scale),
        "scale_min": _jsonable(min(scale)),
        "scale_max": _jsonable(max(scale)),
    }
    if q.min is not None and len(q.min):
        out["min"] = [_jsonable(float(x)) for x in q.min]
    if q.max is not None and len(q.max):
        out["max"] = [_jsonable(float(x)) for x in q.max]
    return out


def _jsonable(v: Any) -> Any:
    """Plain JSON values: numpy to Python, non-finite floats as strings, bytes as length."""
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else str(f)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    return v


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------
def _fmt_float(x: Any) -> str:
    return x if isinstance(x, str) else f"{x:.6g}"


def _short(name: str | None, width: int = _NAME_WIDTH) -> str:
    name = "" if name is None else name
    return name if len(name) <= width else name[: width - 3] + "..."


def _defaults(tables: list[str | None]) -> dict:
    out: dict[str, Any] = {}
    for table in tables:
        for name, _slot, kind, elem, default, _dep, _align in desc.TABLES.get(table or "", []):
            out[name] = _enum_name(elem, default) if kind == "enum" and default is not None else default
    return out


def format_options(options: dict, tables: list[str | None] = ()) -> str:
    """Key options first (padding, stride HxW, filter HxW, dilation, activation),
    then every other option whose value differs from its schema default (the
    defaults of ``tables``, the options tables the operator carries)."""
    if not options:
        return ""
    defaults = _defaults(list(tables))
    parts = []
    if "padding" in options:
        parts.append(f"padding={options['padding']}")
    for label, h, w, hide in (("stride", "stride_h", "stride_w", None),
                              ("filter", "filter_height", "filter_width", None),
                              ("dilation", "dilation_h_factor", "dilation_w_factor", (1, 1))):
        if h in options and w in options and (options[h], options[w]) != hide:
            parts.append(f"{label}={options[h]}x{options[w]}")
    if options.get("depth_multiplier") not in (None, 0, 1):
        parts.append(f"depth_multiplier={options['depth_multiplier']}")
    act = options.get("fused_activation_function")
    if act not in (None, "NONE"):
        parts.append(f"act={act}")
    for k, v in options.items():
        if k in _KEY_OPTIONS or v is None or v == [] or (k in defaults and v == defaults[k]) or \
                (k not in defaults and v in (False, 0, "NONE")):
            continue
        parts.append(f"{k}={_fmt_float(v) if isinstance(v, float) else v}")
    return " ".join(parts)


def format_quantization(q: dict | None) -> str:
    if q is None:
        return ""
    zps = q["zero_point"]
    if zps and min(zps) == max(zps):
        zp = str(zps[0])
    elif zps:
        zp = f"[{min(zps)}..{max(zps)}]"
    else:
        zp = "-"
    if not q["per_channel"]:
        return f"scale={_fmt_float(q['scale'][0])} zp={zp}"
    return (f"per-channel x{q['count']} dim={q['quantized_dimension']} "
            f"scale=[{_fmt_float(q['scale_min'])}..{_fmt_float(q['scale_max'])}] zp={zp}")


def _table(headers: list[str], rows: list[list[str]], indent: str = "    ") -> list[str]:
    """Aligned columns; numbers right-aligned, the last column not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    numeric = [all(r[i].lstrip("-").isdigit() for r in rows if r[i]) and bool(rows)
               for i in range(len(headers))]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            last = i == len(cells) - 1
            out.append(c.rjust(widths[i]) if numeric[i] else (c if last else c.ljust(widths[i])))
        return (indent + "  ".join(out)).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def _ids(xs: list[int]) -> str:
    return ",".join(str(x) for x in xs)


def format_text(info: dict) -> str:
    """Render :func:`inspect_model`'s dict for a terminal."""
    lines = []
    size = f"{info['file_size']:,} bytes, " if info["file_size"] is not None else ""
    where = f"{info['file']}: " if info["file"] else ""
    desc_txt = f', description "{info["description"]}"' if info["description"] else ""
    lines.append(f"{where}{size}schema version {info['version']}{desc_txt}")
    n_ops = sum(info["op_counts"].values())
    counts = ", ".join(f"{k} {v}" for k, v in info["op_counts"].items())
    lines.append(f"operators: {n_ops}" + (f" ({counts})" if counts else "") +
                 f"; subgraphs: {len(info['subgraphs'])}; buffers: {info['num_buffers']} "
                 f"({info['constant_bytes']:,} bytes of data)")
    for m in info["metadata"]:
        value = f" = {m['value']!r}" if "value" in m else ""
        lines.append(f"metadata {m['name']!r}: {m['bytes']} bytes{value}")
    for sig in info["signature_defs"]:
        ins = ", ".join(f"{k}->{v}" for k, v in sig["inputs"].items())
        outs = ", ".join(f"{k}->{v}" for k, v in sig["outputs"].items())
        lines.append(f"signature {sig['signature_key']!r} (subgraph {sig['subgraph_index']}): "
                     f"inputs {ins or '-'}; outputs {outs or '-'}")
    for sg in info["subgraphs"]:
        lines.append("")
        name = f" {sg['name']!r}" if sg["name"] else ""
        lines.append(f"subgraph {sg['index']}{name}: inputs [{_ids(sg['inputs'])}], "
                     f"outputs [{_ids(sg['outputs'])}], {len(sg['operators'])} operators, "
                     f"{len(sg['tensors'])} tensors")
        if sg["operators"]:
            lines.append("  operators:")
            rows = [[str(op["index"]), op["op"], "" if op["version"] is None else str(op["version"]),
                     _ids(op["inputs"]), _ids(op["outputs"]),
                     format_options(op["options"], [op["options_type"], op["options_2_type"]])]
                    for op in sg["operators"]]
            lines += _table(["#", "op", "ver", "inputs", "outputs", "options"], rows)
        if sg["tensors"]:
            lines.append("  tensors:")
            any_sig = any(t["shape_signature"] is not None for t in sg["tensors"])
            headers = ["#", "name", "type", "shape"] + (["signature"] if any_sig else []) + \
                ["const", "quantization"]
            rows = []
            for t in sg["tensors"]:
                role = []
                if t["index"] in sg["inputs"]:
                    role.append("in")
                if t["index"] in sg["outputs"]:
                    role.append("out")
                const = f"{t['bytes']:,}B" if t["constant"] else ("var" if t["is_variable"] else "")
                if t["sparse"]:
                    const += " sparse"
                row = [str(t["index"]), _short(t["name"]) + (f" ({'/'.join(role)})" if role else ""),
                       t["type"].lower(), str(t["shape"])]
                if any_sig:
                    row.append("" if t["shape_signature"] is None else str(t["shape_signature"]))
                rows.append(row + [const, format_quantization(t["quantization"])])
            lines += _table(headers, rows)
    return "\n".join(lines) + "\n"


__all__ = ["format_options", "format_quantization", "format_text", "inspect_model"]
