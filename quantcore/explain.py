"""Explain one output element of one integer operator, step by step.

``explain(model, tensor, at)`` runs the model in quantcore's interpreter (reference
numerics), finds the operator that produces ``tensor`` and recomputes the element at
index ``at`` the way the integer kernel does: the input values that feed it, the
offsets, the int32 accumulator, the fixed-point multiplier and its rounding steps, the
activation clamp. Every step carries the number of the equation of
docs/quantization.md it applies (``(eq. 14)``), so the text reads as a worked example
of the document::

    e = explain("model.tflite", "conv1/y", (0, 3, 4, 7))
    print(e.format())
    e.to_json()          # {"op": ..., "steps": [..., {"final": -17}], "final": -17}

The steps are recomputed independently of the kernel's ``eval``: from the prepared
parameters (multipliers, shifts, bounds, tables) and the model's scales, with the
scalar primitives of :mod:`quantcore.fixedpoint`. The final value is then compared
with the runtime's output at that element; a difference is a bug in quantcore and
raises :class:`ExplainMismatchError`.

Supported (LiteRT reference kernels): CONV_2D and DEPTHWISE_CONV_2D (int8, uint8,
16x8), FULLY_CONNECTED (int8, uint8, 16x8, int16 weights), ADD and SUB (general
rescaling and the int16 power-of-two path), MUL (int8, uint8, int16, int16 -> 8 bit),
AVERAGE_POOL_2D and MAX_POOL_2D, MEAN and SUM (quantized), LOGISTIC and TANH (8-bit
tables, int16 interpolation), SOFTMAX (8-bit input gemmlowp fixed point, int16
tables), HARD_SWISH, QUANTIZE (float -> int, int -> int).
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import (float_to_int32_x86, quantize_multiplier, round_half_away,
                                  rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
                                  wrap_int32)

__all__ = ["Step", "Explanation", "ExplainMismatchError", "SUPPORTED", "explain"]

#: op type -> the kernel variants (``params.kind`` / mode) explain() reproduces
SUPPORTED: dict[str, tuple[str, ...]] = {
    "CONV_2D": ("int8", "uint8", "int16"),
    "DEPTHWISE_CONV_2D": ("int8", "uint8", "int16"),
    "FULLY_CONNECTED": ("int8", "uint8", "uint8_int16", "int16", "int16x16"),
    "ADD": ("quantized", "pot_int16"),
    "SUB": ("quantized", "pot_int16"),
    "MUL": ("quantized", "int16_to_8"),
    "AVERAGE_POOL_2D": ("int8", "uint8", "int16"),
    "MAX_POOL_2D": ("int8", "uint8", "int16"),
    "MEAN": ("quantized_mean_or_sum",),
    "SUM": ("quantized_mean_or_sum",),
    "LOGISTIC": ("lut", "int16"),
    "TANH": ("lut", "int16"),
    "SOFTMAX": ("quantized", "int16"),
    "HARD_SWISH": ("quantized",),
    "QUANTIZE": ("float", "requantize"),
}

_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
           np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-(2**31), 2**31 - 1)}


class ExplainMismatchError(RuntimeError):
    """The recomputed value differs from the runtime's output: a bug in quantcore
    (either in the kernel or in this module), never a problem of the model."""


@dataclass(frozen=True)
class Step:
    """One step of the computation. ``value`` is JSON-ready (int, float, str, list, dict);
    ``equation`` is the number of the equation in docs/quantization.md, or None."""
    label: str
    equation: int | None
    value: Any
    detail: str = ""

    def to_json(self) -> dict:
        return {"label": self.label, "equation": self.equation, "value": self.value,
                "detail": self.detail}


@dataclass
class Explanation:
    """The recomputed element: ``steps`` end with the final integer ``final``, which
    equals the runtime's output at ``index``; ``real`` is the value it represents."""
    op_index: int
    op: str
    kind: str
    tensor: int
    tensor_name: str
    shape: tuple[int, ...]
    dtype: str
    index: tuple[int, ...]
    steps: list[Step]
    final: int
    real: float | None
    scale: float | None = None
    zero_point: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The steps as data; the list (and the dict) end with ``{"final": int}``."""
        return {"op_index": self.op_index, "op": self.op, "kind": self.kind,
                "tensor": self.tensor, "tensor_name": self.tensor_name,
                "shape": list(self.shape), "dtype": self.dtype, "index": list(self.index),
                "scale": self.scale, "zero_point": self.zero_point, "real": self.real,
                "notes": list(self.notes),
                "steps": [s.to_json() for s in self.steps] + [{"final": self.final}],
                "final": self.final}

    def format(self) -> str:
        """Readable text: one numbered line per step, ``(eq. N)`` where an equation applies."""
        head = (f"{self.op} (operator {self.op_index}, {self.kind}) -> tensor {self.tensor} "
                f"{self.tensor_name!r} {list(self.shape)} {self.dtype}, element {tuple(self.index)}")
        lines = [head]
        if self.scale is not None:
            lines.append(f"  output quantization: scale {_g(self.scale)}, zero point {self.zero_point}")
        width = max((len(s.label) for s in self.steps), default=0)
        width = min(width, 34)
        for n, s in enumerate(self.steps, 1):
            eq = f"  (eq. {s.equation})" if s.equation is not None else ""
            lines.append(f"  {n:>2}. {s.label:<{width}} = {_fmt(s.value)}{eq}")
            if s.detail:
                for d in s.detail.split("\n"):
                    lines.append(f"      {'':<{width}}   {d}")
        real = "" if self.real is None else \
            f"  (real {_g(self.real)} = {_g(self.scale)} * ({self.final} - {self.zero_point}), eq. 1)"
        lines.append(f"  final: {self.final}{real}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# formatting helpers
# ---------------------------------------------------------------------------
def _g(x: float | None) -> str:
    return "None" if x is None else f"{float(x):.9g}"


def _fmt(v: Any, budget: int = 12) -> str:
    """Compact text of a step value; long lists show their first elements."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _g(v)
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x, max(budget // 2, 3))}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        items = [_fmt(x, max(budget // 2, 3)) for x in v[:budget]]
        more = f", ... ({len(v) - budget} more)" if len(v) > budget else ""
        return "[" + ", ".join(items) + more + "]"
    return str(v)


def _terms(pairs: list[tuple[int, int]], off_x: int, off_w: int, limit: int = 6) -> str:
    """``(x + off)·(w + off) + ...`` for the first ``limit`` products."""
    def one(x: int, w: int) -> str:
        xs = f"({x}{off_x:+d})" if off_x else f"{x}"
        ws = f"({w}{off_w:+d})" if off_w else f"{w}"
        return f"{xs}·{ws}"
    shown = " + ".join(one(x, w) for x, w in pairs[:limit])
    if len(pairs) > limit:
        shown += f" + ... ({len(pairs)} products)"
    return shown


# ---------------------------------------------------------------------------
# scalar arithmetic (Python ints; quantcore.fixedpoint for the rounding primitives)
# ---------------------------------------------------------------------------
def _w32(v: int) -> int:
    return int(wrap_int32(int(v)))


def _w16(v: int) -> int:
    return ((int(v) + 2**15) & 0xFFFF) - 2**15


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _srdhm(a: int, b: int) -> int:
    return int(saturating_rounding_doubling_high_mul(a, b))


def _rdbpot(x: int, e: int) -> int:
    return int(rounding_divide_by_pot(x, e))


def _mult_step(label: str, m0: int, shift: int, real: float | None, real_text: str,
               eq: int = 6, extra: str = "") -> Step:
    encoded = m0 * 2.0 ** shift / 2.0 ** 31
    value = {"M0": int(m0), "shift": int(shift), "encoded": float(encoded)}
    detail = f"M0·2^shift/2^31 = {m0}·2^{shift}/2^31 = {_g(encoded)}"
    if real is not None:
        value["real"] = float(real)
        detail += f"; encodes {real_text} = {_g(real)}"
    if extra:
        detail += "\n" + extra
    return Step(label, eq, value, detail)


def _mbqm_steps(x: int, m0: int, shift: int, what: str = "acc") -> tuple[int, list[Step]]:
    """MultiplyByQuantizedMultiplier, double rounding (eq. 9): left shift, SRDHM (eq. 7),
    RoundingDivideByPOT (eq. 8)."""
    steps = []
    left, right = max(shift, 0), max(-shift, 0)
    xs = x
    if left:
        xs = _w32(x << (left & 31))
        steps.append(Step(f"{what} · 2^{left}", 9, xs,
                          f"positive shift {shift}: left shift first, in int32 (wraps)"))
    hi = _srdhm(xs, m0)
    steps.append(Step("SRDHM", 7, hi,
                      f"SaturatingRoundingDoublingHighMul({xs}, {m0}) = round({xs}·{m0} / 2^31) "
                      f"= round({_g(xs * m0 / 2.0**31)}), ties toward +inf"))
    r = _rdbpot(hi, right)
    steps.append(Step("RoundingDivideByPOT", 8, r,
                      f"{hi} / 2^{right} = {_g(hi / 2.0**right)}, rounded half away from zero"
                      if right else f"shift {shift} >= 0: no right shift, value unchanged"))
    return r, steps


def _mbqm64_steps(x: int, m0: int, shift: int) -> tuple[int, list[Step]]:
    """The 64-bit MultiplyByQuantizedMultiplier of 16x8 kernels (eq. 10)."""
    m16 = (m0 + (1 << 15)) >> 16 if m0 < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    r = _w32((x * m16 + (1 << (total - 1))) >> total)
    return r, [Step("16-bit multiplier", 10, m16, f"(M0 + 2^15) >> 16 = ({m0} + 32768) >> 16"),
               Step("MBQM64", 10, r, f"({x}·{m16} + 2^{total - 1}) >> {total} "
                    f"= round({_g(x * m16 / 2.0**total)}), ties up, int32")]


def _bounds_step(lo: int, hi: int, act: int | None, qtype: str) -> Step:
    if act is None:
        how = f"no fused activation: the {qtype} range"
    else:
        name = _ACT_NAMES.get(act, str(act))
        rule = {1: "[max(qmin, Q(0)), qmax]", 2: "[max(qmin, Q(-1)), min(qmax, Q(1))]",
                3: "[max(qmin, Q(0)), min(qmax, Q(6))]"}.get(act, "")
        how = f"fused activation {name}" + (f": the {qtype} range" if act == 0 else
                                            f": {rule} with Q(f) = z_out + roundf(f / s_out), "
                                            f"{qtype} qmin/qmax")
    return Step("activation bounds", 11, [int(lo), int(hi)], how)


def _clamp_step(v: int, lo: int, hi: int, eq: int | None = 17) -> tuple[int, Step]:
    c = min(max(v, int(lo)), int(hi))
    note = "inside the bounds" if c == v else f"clamped to {c}"
    return c, Step("clamp", eq, c, f"clamp({v}, {lo}, {hi}): {note}")


def _bcast_index(at: tuple[int, ...], in_shape: tuple[int, ...]) -> tuple[int, ...]:
    r, big = len(in_shape), len(at)
    return tuple(0 if in_shape[j] == 1 else at[big - r + j] for j in range(r))


# ---------------------------------------------------------------------------
# per-op context
# ---------------------------------------------------------------------------
@dataclass
class _Ctx:
    model: Any
    sg: Any
    op_index: int
    op_name: str
    options: dict
    params: Any
    input_ids: list[int]
    inputs: list[np.ndarray | None]
    output: np.ndarray
    tensor: int
    at: tuple[int, ...]

    def qp(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scales float32, zero points int64) of input k (-1: the output)."""
        t = self.tensor if k < 0 else self.input_ids[k]
        q = self.sg.tensors[t].qparams()
        if q is None:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return q

    def s(self, k: int) -> float:
        return float(self.qp(k)[0][0])

    def z(self, k: int) -> int:
        return int(self.qp(k)[1][0])

    def qname(self, k: int) -> str:
        sc, zp = self.qp(k)
        if len(sc) == 0:
            return "not quantized"
        if len(sc) == 1:
            return f"scale {_g(sc[0])}, zero point {int(zp[0])}"
        return f"{len(sc)} per-channel scales"

    @property
    def act(self) -> int:
        return int(self.options.get("fused_activation_function", 0))


def _input_step(c: _Ctx, k: int, index: tuple[int, ...], q: int, label: str = "") -> Step:
    sc, zp = c.qp(k)
    detail = f"tensor {c.input_ids[k]} {c.sg.tensors[c.input_ids[k]].name!r}{list(index)}"
    eq = None
    if len(sc) == 1:
        real = float(sc[0]) * (q - int(zp[0]))
        detail += f"; {c.qname(k)}: real {_g(sc[0])}·({q} - {int(zp[0])}) = {_g(real)}"
        eq = 1
    return Step(label or f"input {k + 1}", eq, int(q), detail)


# ---------------------------------------------------------------------------
# CONV_2D / DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------
def _window_steps(c: _Ctx, taps: list[tuple[int, int, int, int, bool]], channels: list[int],
                  window: list, filt: list, filt_label: str) -> list[Step]:
    x_shape = c.inputs[0].shape
    inside = [t for t in taps if t[4]]
    padded = len(taps) - len(inside)
    rows = sorted({t[2] for t in inside})
    cols = sorted({t[3] for t in inside})
    ch = f"channel {channels[0]}" if len(channels) == 1 else f"channels {channels[0]}..{channels[-1]}"
    detail = (f"input {list(x_shape)}, batch {c.at[0]}, rows {rows}, cols {cols}, {ch}; "
              f"values[fy][fx] (None = outside the image)")
    if padded:
        detail += (f"\n{padded} of {len(taps)} taps fall outside the image and are skipped "
                   "(zero padding contributes q - z = 0, eq. 2)")
    return [Step("input window", 14, window, detail),
            Step("filter values", 14, filt, filt_label)]


def _conv_like(c: _Ctx, depthwise: bool) -> tuple[int, list[Step], list[str]]:
    p = c.params
    x, w = c.inputs[0], c.inputs[1]
    b, oy, ox, oc = c.at
    sh, sw = p.stride
    dh, dw = p.dilation
    if depthwise:
        pt, _, pl, _ = p.padding_values
        _, kh, kw, _ = w.shape
        ic0 = oc // p.depth_multiplier
        channels = [ic0]
        act_lo, act_hi = p.quantized_activation_min, p.quantized_activation_max
    else:
        pt, _, pl, _ = p.padding
        cout, kh, kw, cf = w.shape
        g = oc // (cout // p.groups)
        channels = list(range(g * cf, (g + 1) * cf))
        act_lo, act_hi = p.output_activation_min, p.output_activation_max
    w_sc, w_zp = c.qp(1)
    w_off = -int(w_zp[0]) if p.kind == "uint8" else 0      # int8/int16 kernels ignore a filter zp
    input_offset = int(p.input_offset)
    taps, window, filt, pairs = [], [], [], []
    for fy in range(kh):
        wrow, frow = [], []
        for fx in range(kw):
            iy, ix = oy * sh - pt + fy * dh, ox * sw - pl + fx * dw
            inside = 0 <= iy < x.shape[1] and 0 <= ix < x.shape[2]
            taps.append((fy, fx, iy, ix, inside))
            wv = [int(w[0, fy, fx, oc])] if depthwise else [int(v) for v in w[oc, fy, fx, :]]
            frow.append(wv if not depthwise else wv[0])
            if inside:
                xv = [int(x[b, iy, ix, ch]) for ch in channels]
                wrow.append(xv if not depthwise else xv[0])
                pairs.extend(zip(xv, wv))
            else:
                wrow.append(None)
        window.append(wrow)
        filt.append(frow)
    flabel = (f"filter[0, fy, fx, {oc}]" if depthwise else f"filter[{oc}, fy, fx, :]")
    if w_off:
        flabel += f"; uint8 filter zero point {-w_off}: weights_offset = {w_off}"
    steps = _window_steps(c, taps, channels, window, filt, flabel)
    if depthwise:
        steps[0] = Step(steps[0].label, 14, window, steps[0].detail +
                        f"\noutput channel {oc} = input channel {ic0} · depth_multiplier "
                        f"{p.depth_multiplier} + {oc % p.depth_multiplier}")
    steps.append(Step("input_offset", 14, input_offset, f"-(input zero point {-input_offset})"))
    acc = sum((xv + input_offset) * (wv + w_off) for xv, wv in pairs)
    steps.append(Step("accumulator Σ(x + input_offset)·w", 14, acc,
                      f"{_terms(pairs, input_offset, w_off)}\n{len(pairs)} products over the "
                      f"{sum(t[4] for t in taps)} in-image taps"))
    has_bias = len(c.inputs) > 2 and c.inputs[2] is not None
    bias = int(c.inputs[2][oc]) if has_bias else 0
    s_in, s_out = c.s(0), c.s(-1)
    s_w = float(w_sc[oc] if len(w_sc) > 1 else w_sc[0])
    if p.kind == "uint8":
        real = float(np.float32(np.float32(s_in) * np.float32(s_w))) / s_out
        real_text = "double(f32(s_in·s_w)) / s_out"
    else:
        real = s_in * s_w / s_out
        real_text = "s_in·s_w / s_out (double)"
    if has_bias:
        bsc, _ = c.qp(2)
        bdetail = f"bias[{oc}]"
        if len(bsc):
            bdetail += (f"; bias scale {_g(bsc[oc] if len(bsc) > 1 else bsc[0])}, "
                        f"s_in·s_w = {_g(s_in * s_w)}")
        steps.append(Step("bias", 16, bias, bdetail))
    else:
        steps.append(Step("bias", 16, 0, "no bias tensor"))
    wide = p.kind == "int16" and (getattr(p, "int64_bias", False) or depthwise)
    total = acc + bias
    acc32 = total if wide else _w32(total)
    steps.append(Step("acc + bias", 14, acc32,
                      f"{acc} + {bias}" + (" (int64 accumulator, 16x8)" if wide else
                                           " (int32" + (", wrapped)" if acc32 != total else ")"))))
    m0, shift = int(p.output_multiplier[oc]), int(p.output_shift[oc])
    per = " (per channel)" if len(w_sc) > 1 else ""
    steps.append(_mult_step(f"output multiplier{per}", m0, shift, real, real_text, eq=15,
                            extra=f"(M0, shift) from QuantizeMultiplier (eq. 6), s_in {_g(s_in)}, "
                                  f"s_w {_g(s_w)}, s_out {_g(s_out)}"))
    if wide:
        scaled, more = _mbqm64_steps(acc32, m0, shift)
    else:
        scaled, more = _mbqm_steps(acc32, m0, shift)
    steps += more
    out_off = int(p.output_offset)
    v = scaled + out_off
    steps.append(Step("+ output_offset", 17, v, f"{scaled} + output zero point {out_off}"))
    steps.append(_bounds_step(act_lo, act_hi, c.act, str(c.output.dtype)))
    final, st = _clamp_step(v, act_lo, act_hi)
    steps.append(st)
    return final, steps, []


def _explain_conv(c: _Ctx):
    return _conv_like(c, depthwise=False)


def _explain_depthwise(c: _Ctx):
    return _conv_like(c, depthwise=True)


# ---------------------------------------------------------------------------
# FULLY_CONNECTED
# ---------------------------------------------------------------------------
def _explain_fc(c: _Ctx):
    p = c.params
    x, w = c.inputs[0], c.inputs[1]
    k = p.accum_depth
    unit = c.at[-1]
    row = int(np.ravel_multi_index(c.at[:-1], c.output.shape[:-1])) if len(c.at) > 1 else 0
    xr = [int(v) for v in x.reshape(-1)[row * k:(row + 1) * k]]
    wr = [int(v) for v in w[unit]]
    w_sc, w_zp = c.qp(1)
    per_channel = len(w_sc) > 1
    w_off = 0 if per_channel else -int(w_zp[0])
    input_offset = int(p.input_offset)
    steps = [Step("input row", 14, xr, f"input {list(x.shape)} flattened to [batches, {k}], "
                                       f"row {row}; {c.qname(0)}"),
             Step("filter row", 14, wr, f"filter[{unit}, :]" +
                  (f"; weights_offset = {w_off}" if w_off else ""))]
    steps.append(Step("input_offset", 14, input_offset, f"-(input zero point {-input_offset})"))
    pairs = list(zip(xr, wr))
    acc = sum((a + input_offset) * (b + w_off) for a, b in pairs)
    steps.append(Step("accumulator Σ(x + input_offset)·w", 14, acc,
                      f"{_terms(pairs, input_offset, w_off)}"))
    has_bias = len(c.inputs) > 2 and c.inputs[2] is not None
    bias = int(c.inputs[2][unit]) if has_bias else 0
    steps.append(Step("bias", 16, bias, f"bias[{unit}]" if has_bias else "no bias tensor"))
    total = acc + bias
    acc2 = total if p.int64_acc else _w32(total)
    steps.append(Step("acc + bias", 14, acc2, f"{acc} + {bias}" +
                      (" (int64 accumulator)" if p.int64_acc else " (int32)")))
    s_in, s_out = c.s(0), c.s(-1)
    s_w = float(w_sc[unit] if per_channel else w_sc[0])
    lo, hi = int(p.output_activation_min), int(p.output_activation_max)
    out_off = int(p.output_offset)
    notes = []
    if p.kind == "int16x16":
        m0, shift = int(p.output_multiplier[unit]), int(p.output_shift[unit])
        steps.append(_mult_step("output multiplier", m0, shift, s_in * s_w / s_out,
                                "s_in·s_w / s_out", eq=15))
        scaled, more = _mbqm64_steps(acc2, m0, shift)
        steps += more
        v = scaled + out_off
        steps.append(Step("+ output_offset", 17, v, f"{scaled} + {out_off}"))
        steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
        final, st = _clamp_step(v, lo, hi)
        steps.append(st)
        return final, steps, notes
    eff = s_in * s_w / s_out           # double(s_in) * double(s_w) / double(s_out)
    m0, shift = quantize_multiplier(eff)
    steps.append(Step("effective scale", 15, float(eff),
                      f"double(s_in)·double(s_w)/double(s_out) = {_g(s_in)}·{_g(s_w)}/{_g(s_out)}\n"
                      f"(QuantizeMultiplier would give M0 = {m0}, shift = {shift}, eq. 6; LiteRT's "
                      "reference FULLY_CONNECTED does not use it)"))
    prod = float(np.float64(acc2) * np.float64(eff))
    steps.append(Step("float64 product acc·M", 15, prod,
                      f"{acc2} · {_g(eff)} in double (the reference kernel requantizes in float)"))
    r = float(round_half_away(np.float64(prod)))
    q = int(float_to_int32_x86(r))
    steps.append(Step("round half away from zero", 15, q, f"round({_g(prod)}) = {q}"))
    if p.kind == "uint8_int16":
        l2, h2 = lo - out_off, hi - out_off
        steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
        cq, st = _clamp_step(q, l2, h2)
        steps.append(Step("clamp before offset", 17, cq,
                          f"uint8 -> int16 kernel clamps to [act_min - offset, act_max - offset] "
                          f"= [{l2}, {h2}] first; {st.detail}"))
        final = cq + out_off
        steps.append(Step("+ output_offset", 17, final, f"{cq} + {out_off}"))
        return final, steps, notes
    v = _w32(q + out_off)
    steps.append(Step("+ output_offset", 17, v, f"{q} + output zero point {out_off}"))
    steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
    final, st = _clamp_step(v, lo, hi)
    steps.append(st)
    return final, steps, notes


# ---------------------------------------------------------------------------
# ADD / SUB / MUL
# ---------------------------------------------------------------------------
def _binary_inputs(c: _Ctx) -> tuple[int, int, list[Step]]:
    x1, x2 = c.inputs[0], c.inputs[1]
    i1, i2 = _bcast_index(c.at, x1.shape), _bcast_index(c.at, x2.shape)
    q1, q2 = int(x1[i1]), int(x2[i2])
    return q1, q2, [_input_step(c, 0, i1, q1), _input_step(c, 1, i2, q2)]


def _explain_add_sub(c: _Ctx):
    p = c.params
    sign = "-" if p.subtract else "+"
    q1, q2, steps = _binary_inputs(c)
    lo, hi = int(p.output_activation_min), int(p.output_activation_max)
    if p.kind == "pot_int16":
        from quantcore.runtime.ops._broadcast import rounding_divide_by_pot_int16
        a = int(rounding_divide_by_pot_int16(q1, -p.input1_shift))
        b = int(rounding_divide_by_pot_int16(q2, -p.input2_shift))
        steps.append(Step("input 1 rescaled", 8, a, f"RoundingDivideByPOT<int16>({q1}, "
                          f"{-p.input1_shift}) (log2 scale difference to the output)"))
        steps.append(Step("input 2 rescaled", 8, b, f"RoundingDivideByPOT<int16>({q2}, "
                          f"{-p.input2_shift})"))
        raw = a - b if p.subtract else a + b
        sat = min(max(raw, -32768), 32767)
        steps.append(Step(f"saturating {sign}", None, sat, f"{a} {sign} {b} = {raw}, saturated to int16"))
        steps.append(_bounds_step(lo, hi, c.act, "int16"))
        final, st = _clamp_step(sat, lo, hi, eq=11)
        steps.append(st)
        return final, steps, ["int16 power-of-two path (pot_scale_int16): shifts only, no multipliers"]
    L = int(p.left_shift)
    s1, s2, so = c.s(0), c.s(1), c.s(-1)
    twice_max = float(np.float32(2) * max(np.float32(s1), np.float32(s2)))
    shifted = []
    for k, (q, off) in enumerate(((q1, p.input1_offset), (q2, p.input2_offset)), 1):
        steps.append(Step(f"input{k}_offset", 21, int(off), f"-(input {k} zero point)"))
        v = _w32((q + off) << L)
        steps.append(Step(f"(x{k} + offset)·2^{L}", 21, v, f"({q} {int(off):+d}) << left_shift {L}"))
        shifted.append(v)
    scaled = []
    for k, (m0, sh, s) in enumerate(((p.input1_multiplier, p.input1_shift, s1),
                                     (p.input2_multiplier, p.input2_shift, s2)), 1):
        steps.append(_mult_step(f"input{k} multiplier", int(m0), int(sh), s / twice_max,
                                f"s{k} / (2·max(s1, s2)) = {_g(s)} / {_g(twice_max)}", eq=21))
        hi_ = _srdhm(shifted[k - 1], int(m0))
        steps.append(Step(f"SRDHM (input {k})", 7, hi_, f"SRDHM({shifted[k - 1]}, {m0})"))
        r = _rdbpot(hi_, -int(sh))
        steps.append(Step(f"scaled input {k}", 8, r, f"RoundingDivideByPOT({hi_}, {-int(sh)})"))
        scaled.append(r)
    raw = _w32(scaled[0] - scaled[1] if p.subtract else scaled[0] + scaled[1])
    steps.append(Step(f"scaled1 {sign} scaled2", 21, raw, f"{scaled[0]} {sign} {scaled[1]} (int32)"))
    real_out = twice_max / float(np.float32(np.float32(1 << L) * np.float32(so)))
    mo, eo = int(p.output_multiplier), int(p.output_shift)
    steps.append(_mult_step("output multiplier", mo, eo, real_out,
                            f"2·max(s1, s2) / (2^{L}·s_out) = {_g(twice_max)} / (2^{L}·{_g(so)})", eq=21))
    hi_ = _srdhm(raw, mo)
    steps.append(Step("SRDHM (output)", 7, hi_, f"SRDHM({raw}, {mo})"))
    notes = []
    if eo <= 0:
        r = _rdbpot(hi_, -eo)
        steps.append(Step("RoundingDivideByPOT (output)", 8, r, f"RoundingDivideByPOT({hi_}, {-eo})"))
    else:
        from quantcore.runtime.ops._broadcast import rounding_divide_by_pot_x86
        lane = False
        if p.flat:
            n = int(np.prod(p.output_shape, dtype=np.int64))
            flat_pos = int(np.ravel_multi_index(c.at, p.output_shape)) if c.at else 0
            lane = flat_pos < (n // 4) * 4
        r = int(rounding_divide_by_pot_x86(hi_, -eo, vector_lane=lane))
        steps.append(Step("RoundingDivideByPOT (output)", 8, r,
                          f"exponent {-eo} < 0 (output multiplier > 1): undefined in C++; as the "
                          f"x86 wheel computes it ({'vector' if lane else 'scalar'} code)"))
        notes.append("SUB output multiplier above 1: RoundingDivideByPOT by a negative exponent "
                     "(LiteRT undefined behaviour, reproduced as measured on x86)")
    v = r + int(p.output_offset)
    steps.append(Step("+ output_offset", 21, v, f"{r} + output zero point {int(p.output_offset)}"))
    steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
    final, st = _clamp_step(v, lo, hi, eq=21)
    steps.append(st)
    return final, steps, notes


def _explain_mul(c: _Ctx):
    p = c.params
    q1, q2, steps = _binary_inputs(c)
    lo, hi = int(p.output_activation_min), int(p.output_activation_max)
    if p.kind == "int16_to_8":
        ab = q1 * q2
        if q1 == q2 == -32768:
            h = 32767
        else:
            s = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
            h = _w16(s >> 15 if s >= 0 else -((-s) >> 15))
        steps.append(Step("SRDHM<int16>", 7, h, f"({q1}·{q2} + nudge) / 2^15: the Q0.15 product"))
        r = _w16(_rdbpot(h, 8))
        steps.append(Step("RoundingDivideByPOT", 8, r, f"{h} / 2^8, half away from zero"))
        off = int(p.output_offset)
        steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
        cr, st = _clamp_step(r, lo - off, hi - off)
        steps.append(Step("clamp before offset", 11, cr, f"to [act_min - zp, act_max - zp]; {st.detail}"))
        final = cr + off
        steps.append(Step("+ output_offset", 17, final, f"{cr} + {off}"))
        return final, steps, ["int16 x int16 -> 8-bit MUL ignores the scales (LiteRT)"]
    a = q1 + int(p.input1_offset)
    b = q2 + int(p.input2_offset)
    steps.append(Step("x1 + input1_offset", 1, a, f"{q1} {int(p.input1_offset):+d}"))
    steps.append(Step("x2 + input2_offset", 1, b, f"{q2} {int(p.input2_offset):+d}"))
    prod = _w32(a * b)
    steps.append(Step("product", None, prod, f"{a}·{b} (int32)"))
    s1, s2, so = c.s(0), c.s(1), c.s(-1)
    real = float(np.float32(np.float32(np.float32(s1) * np.float32(s2)) / np.float32(so)))
    m0, sh = int(p.output_multiplier), int(p.output_shift)
    steps.append(_mult_step("output multiplier", m0, sh, real,
                            f"f32(f32(s1·s2)/s_out) = f32({_g(s1)}·{_g(s2)})/{_g(so)}", eq=15))
    r, more = _mbqm_steps(prod, m0, sh, "product")
    steps += more
    v = r + int(p.output_offset)
    steps.append(Step("+ output_offset", 17, v, f"{r} + output zero point {int(p.output_offset)}"))
    steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
    final, st = _clamp_step(v, lo, hi)
    steps.append(st)
    return final, steps, []


# ---------------------------------------------------------------------------
# pooling, MEAN
# ---------------------------------------------------------------------------
def _explain_pool(c: _Ctx):
    p = c.params
    x = c.inputs[0]
    b, oy, ox, ch = c.at
    pt, _, pl, _ = p.padding
    sh, sw = p.stride
    fh, fw = p.filter
    window, vals, skipped = [], [], 0
    for fy in range(fh):
        row = []
        for fx in range(fw):
            iy, ix = oy * sh - pt + fy, ox * sw - pl + fx
            if 0 <= iy < x.shape[1] and 0 <= ix < x.shape[2]:
                v = int(x[b, iy, ix, ch])
                row.append(v)
                vals.append(v)
            else:
                row.append(None)
                skipped += 1
        window.append(row)
    y0, x0 = oy * sh - pt, ox * sw - pl
    detail = (f"rows {max(y0, 0)}..{min(y0 + fh, x.shape[1]) - 1}, cols {max(x0, 0)}.."
              f"{min(x0 + fw, x.shape[2]) - 1}, channel {ch}; values[fy][fx] (None = outside)")
    if skipped:
        detail += f"\n{skipped} taps outside the image are skipped (not counted)"
    steps = [Step("input window", 20 if p.pool == "average" else None, window, detail)]
    lo, hi = int(p.quantized_activation_min), int(p.quantized_activation_max)
    if p.pool == "average":
        acc = _w32(sum(vals))
        n = len(vals)
        steps.append(Step("acc = Σ q", 20, acc, f"sum of {n} raw codes (input and output share "
                                                 "scale and zero point: no rescaling)"))
        steps.append(Step("n (in-image taps)", 20, n, ""))
        if acc > 0:
            avg = _cdiv(acc + n // 2, n)
            how = f"({acc} + {n // 2}) / {n}"
        else:
            avg = _cdiv(acc - n // 2, n)
            how = f"({acc} - {n // 2}) / {n}"
        steps.append(Step("rounded average", 20, avg, f"{how} (C division): {_g(acc / n)} rounded "
                                                      "half away from zero"))
        v = avg
    else:
        v = max(vals) if vals else int(_QRANGE[np.dtype(x.dtype)][0])
        steps.append(Step("max", None, v, f"max of the {len(vals)} in-image taps"))
    steps.append(_bounds_step(lo, hi, c.act, str(c.output.dtype)))
    final, st = _clamp_step(v, lo, hi, eq=20 if p.pool == "average" else 11)
    steps.append(st)
    return final, steps, []


def _explain_mean(c: _Ctx):
    p = c.params
    x = c.inputs[0]
    rank = x.ndim
    axis = np.asarray(c.inputs[1]).reshape(-1).tolist()
    reduced = sorted({int(a) + rank if a < 0 else int(a) for a in axis})
    kept = [i for i in range(rank) if i not in reduced]
    base = {}
    for j, ax in enumerate(kept):
        base[ax] = c.at[ax] if p.keep_dims else c.at[j]
    vals = []
    data = x.view(np.uint8) if p.as_uint8 else x
    for combo in itertools.product(*[range(x.shape[a]) for a in reduced]):
        idx = dict(base)
        idx.update(zip(reduced, combo))
        vals.append(int(data[tuple(idx[i] for i in range(rank))]))
    n = len(vals)
    what = "SUM" if p.compute_sum else "MEAN"
    steps = [Step("reduced elements", None, vals,
                  f"axes {reduced} of input {list(x.shape)}, kept index "
                  f"{[base[a] for a in kept]}; N = {n}" +
                  ("; int8 read as uint8 bytes (LiteRT reference SUM)" if p.as_uint8 else ""))]
    total = _w32(sum(vals))
    steps.append(Step("Σ q", None, total, "raw codes, int32"))
    zp_in, zp_out = int(p.input_zero_point), int(p.output_zero_point)
    shifted = _w32(total - zp_in * n)
    steps.append(Step("Σ q - zp_in·N", 1, shifted, f"{total} - {zp_in}·{n}"))
    s_in, s_out = c.s(0), c.s(-1)
    m0, shift = quantize_multiplier(s_in / s_out)
    steps.append(_mult_step("multiplier s_in/s_out", m0, shift, s_in / s_out,
                            f"s_in / s_out = {_g(s_in)} / {_g(s_out)}"))
    if not p.compute_sum:
        kk = min(n.bit_length() - 1, 32, 31 + shift)
        m0 = int((m0 << kk) // n)
        shift = shift - kk
        steps.append(_mult_step("multiplier with 1/N folded in", m0, shift, s_in / s_out / n,
                                "s_in / (s_out·N)", extra=f"M0 = (M0 << {kk}) / {n} (int64 "
                                f"division), shift -= {kk}; k = min(floor(log2 N), 32, 31 + shift)"))
    r, more = _mbqm_steps(shifted, m0, shift, "sum")
    steps += more
    v = r + zp_out
    steps.append(Step("+ output zero point", None, v, f"{r} + {zp_out}"))
    lo, hi = (0, 255) if p.as_uint8 else (int(p.qmin), int(p.qmax))
    steps.append(_bounds_step(lo, hi, None, "uint8" if p.as_uint8 else str(c.output.dtype)))
    final, st = _clamp_step(v, lo, hi, eq=None)
    steps.append(st)
    notes = [f"{what}: QuantizedMeanOrSum (no fused activation)"]
    if p.as_uint8:
        final = final - 256 if final >= 128 else final
        steps.append(Step("stored as int8", None, final, "the uint8 result byte read as int8"))
    return final, steps, notes


# ---------------------------------------------------------------------------
# LOGISTIC / TANH / HARD_SWISH
# ---------------------------------------------------------------------------
def _lut_activation(c: _Ctx, fname: str):
    from quantcore.runtime.ops._lut import libm_f32
    p = c.params
    q = int(c.inputs[0][c.at])
    steps = [_input_step(c, 0, c.at, q)]
    f32 = np.float32
    s_in, zp_in, s_out, zp_out = c.s(0), c.z(0), c.s(-1), c.z(-1)
    qmin, qmax = _QRANGE[np.dtype(c.inputs[0].dtype)]
    steps.append(Step("table index", None, q - qmin, f"q - qmin = {q} - {qmin}: the 256-entry table "
                                                    "is built once in Prepare (LUTPopulate)"))
    deq = f32(f32(s_in) * f32(q - zp_in))
    steps.append(Step("dequantized input", 1, float(deq), f"f32(s_in·f32(q - zp)) = "
                                                         f"{_g(s_in)}·{q - zp_in}"))
    if fname == "LOGISTIC":
        y = f32(f32(1) / (f32(1) + libm_f32("expf", np.array([-deq], f32))[0]))
        how = f"1.0f / (1.0f + expf({_g(-deq)})) (platform libm, float32)"
        exact = 1.0 / (1.0 + math.exp(-float(deq)))
    else:
        y = libm_f32("tanhf", np.array([deq], f32))[0]
        how = f"tanhf({_g(deq)}) (platform libm, float32)"
        exact = math.tanh(float(deq))
    steps.append(Step("transformed", None, float(y), f"{how}; exact {_g(exact)}"))
    inv = f32(f32(1) / f32(s_out))
    scaled = f32(y * inv)
    steps.append(Step("· (1/s_out)", 1, float(scaled), f"f32({_g(y)} · f32(1/{_g(s_out)}))"))
    rounded = f32(round_half_away(scaled))
    steps.append(Step("roundf", 11, float(rounded), "rounded half away from zero"))
    shifted = f32(rounded + f32(zp_out))
    steps.append(Step("+ output zero point", 11, float(shifted), f"{_g(rounded)} + {zp_out} (float32)"))
    i = int(np.clip(np.trunc(np.clip(float(shifted), -(2.0**31), 2.0**31 - 1)), -(2**31), 2**31 - 1))
    entry, st = _clamp_step(i, qmin, qmax, eq=None)
    steps.append(Step("table entry", None, entry, f"int32 conversion, {st.detail}"))
    stored = int(p.lut[q - qmin])
    steps.append(Step("runtime table entry", None, stored, f"params.lut[{q - qmin}]"))
    if stored != entry:
        raise ExplainMismatchError(f"{fname} table entry {q - qmin}: recomputed {entry}, prepared "
                                   f"table holds {stored}")
    return entry, steps, []


def _int16_sigmoid_table(c: _Ctx, fname: str):
    from quantcore.runtime.ops._lut import SIGMOID_TABLE_UINT16 as T
    p = c.params
    q = int(c.inputs[0][c.at])
    steps = [_input_step(c, 0, c.at, q)]
    m, sh = int(p.input_multiplier), int(p.input_left_shift)
    if m == 0:
        m, sh = 3 << sh, 0
        how = "power-of-two input scale: multiplier 3·2^shift, no shift"
    else:
        how = f"input rescaled to 1/(3·4096) units: multiplier {m}, shift {sh}"
    rnd = (1 << (sh - 1)) if sh > 0 else 0
    v = _w32(q * m + rnd) >> sh
    steps.append(Step("rescaled input", None, v, f"({q}·{m} + {rnd}) >> {sh}; {how}"))
    a = abs(v) & 0xFFFFFFFF
    bits = 9 if fname == "LOGISTIC" else 8
    uh = a >> bits
    steps.append(Step("table position", None, uh, f"|v| >> {bits} = {a} >> {bits}; fraction "
                                                 f"{a & ((1 << bits) - 1)}/{1 << bits}"))
    if uh >= 255:
        r = (0x7FFF << 10) if fname == "LOGISTIC" else (0xFFFF << 8)
        steps.append(Step("saturated", None, r, "past the end of sigmoid_table_uint16"))
    else:
        ua, ub = int(T[uh]), int(T[uh + 1])
        r = (ua << bits) + (a & ((1 << bits) - 1)) * (ub - ua)
        steps.append(Step("interpolated", None, r, f"(T[{uh}] << {bits}) + frac·(T[{uh + 1}] - T[{uh}]) "
                                                   f"with T[{uh}] = {ua}, T[{uh + 1}] = {ub}"))
    if fname == "LOGISTIC":
        r = r + (1 << 9) if v >= 0 else (1 << 25) - r + (1 << 9) - 1
        final = r >> 10
        steps.append(Step("sign and rounding", None, r, "v >= 0: r + 2^9; else 2^25 - r + 2^9 - 1"))
        steps.append(Step(">> 10", None, final, "Q0.15 output"))
    else:
        r = r - (1 << 23) + (1 << 7) if v >= 0 else -r + (1 << 23) + (1 << 7) - 1
        final = _w16(r >> 8)
        steps.append(Step("2·sigmoid(2x) - 1", None, r, "v >= 0: r - 2^23 + 2^7; else -r + 2^23 + 2^7 - 1"))
        steps.append(Step(">> 8", None, final, "int16"))
    return final, steps, [f"int16 {fname}: linear interpolation in sigmoid_table_uint16"]


def _explain_logistic_tanh(c: _Ctx):
    if c.params.kind == "lut":
        return _lut_activation(c, c.op_name)
    return _int16_sigmoid_table(c, c.op_name)


def _explain_hard_swish(c: _Ctx):
    from quantcore.runtime.ops._gemmlowp_fixedpoint import (rdbpot16, saturating_doubling_high_mul16,
                                                            saturating_left_shift16, srdhm16)
    p = c.params
    q = int(c.inputs[0][c.at])
    steps = [_input_step(c, 0, c.at, q)]
    s_in, s_out = c.s(0), c.s(-1)
    xr = s_in * (q - int(p.input_zero_point))
    steps.append(Step("float reference", None, xr * min(6.0, max(0.0, xr + 3)) / 6 / s_out
                      + int(p.output_zero_point),
                      "x·relu6(x + 3)/6 / s_out + zp_out, for comparison (not used)"))
    v = _w16(q - int(p.input_zero_point))
    hires = _w16(v * 128)
    steps.append(Step("hires input", 1, hires, f"int16(q - zp_in)·128 = {v}·128"))
    f32 = np.float32
    hs = f32(f32(1.0 / 128.0) * f32(s_in))
    mo, eo = int(p.output_multiplier_fixedpoint_int16), int(p.output_multiplier_exponent)
    mr, er = int(p.reluish_multiplier_fixedpoint_int16), int(p.reluish_multiplier_exponent)
    steps.append(Step("output multiplier (Q0.15)", 6, {"M0_16": mo, "exponent": eo,
                      "encoded": mo * 2.0**eo / 2**15, "real": float(f32(hs / f32(s_out)))},
                      "f32(f32(s_in/128)/s_out) -> QuantizeMultiplier, rounded to 16 bits"))
    pre = int(srdhm16(hires, mo))
    steps.append(Step("SRDHM16(hires, output multiplier)", 7, pre, ""))
    steps.append(Step("reluish multiplier (Q0.15)", 6, {"M0_16": mr, "exponent": er,
                      "encoded": mr * 2.0**er / 2**15, "real": float(f32(hs / f32(f32(3) / f32(32768))))},
                      "f32(f32(s_in/128)/(3/32768)) -> QuantizeMultiplier, rounded to 16 bits"))
    r = hires
    if er > 0:
        r = int(saturating_left_shift16(r, er - 1))
    r = int(srdhm16(r, mr))
    if er > 0:
        r = int(saturating_left_shift16(r, 1))
    if er < 0:
        r = int(rdbpot16(r, -er))
    steps.append(Step("reluish value", 8, r, "hires·reluish multiplier, scaled by 2^exponent (saturating)"))
    r = (r + (1 << 15)) >> 1
    steps.append(Step("reluish in [0, 1]", None, r, "(r + 2^15) >> 1"))
    prod = int(saturating_doubling_high_mul16(r, pre))
    steps.append(Step("SaturatingDoublingHighMul16", None, prod, f"({r}·{pre}) / 2^15, truncated "
                                                                "(no rounding nudge)"))
    o = _w16(int(rdbpot16(prod, -eo)) + int(p.output_zero_point))
    steps.append(Step("RoundingDivideByPOT + zp_out", 8, o, f"RDBPOT16({prod}, {-eo}) + "
                                                            f"{int(p.output_zero_point)}"))
    steps.append(_bounds_step(p.qmin, p.qmax, None, str(c.output.dtype)))
    final, st = _clamp_step(o, p.qmin, p.qmax, eq=None)
    steps.append(st)
    return final, steps, []


# ---------------------------------------------------------------------------
# SOFTMAX
# ---------------------------------------------------------------------------
def _explain_softmax(c: _Ctx):
    from quantcore.runtime.ops import _gemmlowp_fixedpoint as gf
    p = c.params
    x = c.inputs[0]
    row = [int(v) for v in x[c.at[:-1]]]
    j = c.at[-1]
    steps = [Step("row", None, row, f"x[{', '.join(map(str, c.at[:-1]))}, :] ({len(row)} values; "
                                    f"this element is position {j}); {c.qname(0)}")]
    mx = max(row)
    steps.append(Step("row max", None, mx, ""))
    diffs = [v - mx for v in row]
    steps.append(Step("diff = x - max", None, diffs[j], f"all diffs: {_fmt(diffs)}"))
    s_in = c.s(0)
    if p.kind == "int16":
        m, sh = int(p.input_multiplier), int(p.input_left_shift)
        steps.append(_mult_step("input multiplier", m, sh, float(np.float32(np.float32(s_in) *
                                np.float32(p.beta))) / (10.0 / 65535.0), "f32(s_in·beta) / (10/65535)"))
        from quantcore.runtime.ops._lut import lut_lookup_int16
        exps = []
        for d in diffs:
            sc, _ = _mbqm_steps(d, m, sh)
            sym = min(max(sc + 32767, -32768), 32767)
            exps.append(int(lut_lookup_int16(sym, p.exp_lut)))
        sc, more = _mbqm_steps(diffs[j], m, sh, "diff")
        steps += more
        sym = min(max(sc + 32767, -32768), 32767)
        steps.append(Step("exp table index", None, sym, f"clamp({sc} + 32767) in int16 (exp over [-10, 0])"))
        steps.append(Step("exp (Q0.15)", None, exps[j], f"LUTLookup: {_g(exps[j] / 32768)} ≈ "
                          f"exp({_g(s_in * p.beta * diffs[j])}); row: {_fmt(exps)}"))
        total = _w32(sum(exps))
        steps.append(Step("sum of exps", None, total, ""))
        hp1 = int(gf.count_leading_zeros_u32(total))
        shifted = _w32(((total << max(hp1 - 1, 0)) + (1 << 13)) >> 14)
        sym2 = min(max(shifted - ((1 << 15) + (1 << 16)), -32768), 32767)
        rec = int(lut_lookup_int16(sym2, p.one_over_one_plus_x_lut))
        steps.append(Step("reciprocal", None, rec, f"headroom+1 = clz(sum) = {hp1}; normalized sum "
                          f"{shifted}, table index {sym2}; 1/(1+x) table"))
        rs = 31 - hp1
        res = _w32((exps[j] * rec + (1 << max(rs - 1, 0))) >> rs)
        steps.append(Step("exp·reciprocal", None, res, f"({exps[j]}·{rec} + 2^{rs - 1}) >> {rs}"))
        final, st = _clamp_step(res, 0, 32767, eq=None)
        steps.append(st)
        return final, steps, ["int16 SOFTMAX: exp and 1/(1+x) lookup tables"]
    m, sh = int(p.input_multiplier), int(p.input_left_shift)
    real = min(float(p.beta) * s_in * float(1 << 26), float(2**31 - 1))
    steps.append(_mult_step("input multiplier", m, sh, real, "beta·s_in·2^26 (Q5.26 diffs)"))
    steps.append(Step("diff_min", None, int(p.diff_min), "diffs below this give exp = 0 (output qmin)"))

    def fp_exp(d: int) -> int:
        rescaled = _srdhm(_w32(d << (sh & 31)), m)
        return int(gf.exp_on_negative_values(rescaled, 5))
    rescaled = _srdhm(_w32(diffs[j] << (sh & 31)), m)
    steps.append(Step("diff in Q5.26", 7, rescaled, f"SRDHM({diffs[j]}·2^{sh}, {m}) = "
                      f"{_g(rescaled / 2.0**26)} = beta·s_in·diff"))
    valid = [d >= p.diff_min for d in diffs]
    exps = [fp_exp(d) for d in diffs]
    e = exps[j]
    steps.append(Step("exp (Q0.31)", None, e, f"exp_on_negative_values: {_g(e / 2.0**31)}, exact "
                      f"{_g(math.exp(rescaled / 2.0**26))}; row (raw): {_fmt(exps, 8)}"))
    terms = [int(gf.rescale(v, 0, 12)) if ok else 0 for v, ok in zip(exps, valid)]
    total = _w32(sum(terms))
    steps.append(Step("sum of exps (Q12.19)", None, total, f"Σ Rescale<12>(exp) over the row = "
                      f"{_g(total / 2.0**19)}; terms {_fmt(terms, 8)}"))
    scale_, nbou = gf.get_reciprocal(total, 12)
    scale_, nbou = int(scale_), int(nbou)
    steps.append(Step("reciprocal (GetReciprocal)", None, {"shifted_scale": scale_,
                      "num_bits_over_unit": nbou},
                      f"1/sum = {_g(scale_ / 2.0**31)}·2^-{nbou} ≈ {_g(2.0**19 / total)}"))
    exponent = nbou + 31 - p.out_bits
    hi_ = _srdhm(scale_, e)
    steps.append(Step("SRDHM(shifted_scale, exp)", 7, hi_, ""))
    unsat = _rdbpot(hi_, exponent)
    steps.append(Step("RoundingDivideByPOT", 8, unsat, f"/ 2^{exponent} (num_bits_over_unit + 31 - "
                                                       f"{p.out_bits}): {_g(hi_ / 2.0**exponent)}"))
    v = unsat + p.out_min
    steps.append(Step("+ qmin", None, v, f"{unsat} + {p.out_min} (the output zero point is qmin)"))
    final, st = _clamp_step(v, p.out_min, p.out_max, eq=None)
    steps.append(st)
    if not valid[j]:
        final = p.out_min
        steps.append(Step("below diff_min", None, final, f"diff {diffs[j]} < diff_min {p.diff_min}"))
    return final, steps, []


# ---------------------------------------------------------------------------
# QUANTIZE
# ---------------------------------------------------------------------------
def _explain_quantize(c: _Ctx):
    p = c.params
    x = c.inputs[0]
    qmin, qmax = int(p.qmin), int(p.qmax)
    if p.from_float:
        xv = np.float32(x[c.at])
        ch = 0 if p.axis is None else c.at[p.axis]
        s = np.float32(p.scale[ch] if len(p.scale) > 1 else p.scale[0])
        z = int(p.zero_point[ch] if len(p.zero_point) > 1 else p.zero_point[0])
        steps = [Step("input (float32)", None, float(xv), f"x{list(c.at)}"),
                 Step("scale, zero point", 12, {"scale": float(s), "zero_point": z},
                      "per tensor" if p.axis is None else f"channel {ch} of axis {p.axis}")]
        with np.errstate(all="ignore"):
            d = np.float32(xv / s)
        steps.append(Step("x / s", 12, float(d), "float32 division"))
        r = round_half_away(d)
        i = int(float_to_int32_x86(r))
        steps.append(Step("roundf", 12, i, f"round half away from zero, int32 ({_g(r)})"))
        v = _w32(i + z)
        steps.append(Step("+ zero point", 12, v, f"{i} + {z}"))
        final, st = _clamp_step(v, qmin, qmax, eq=12)
        steps.append(st)
        return final, steps, []
    q = int(x[c.at])
    steps = [_input_step(c, 0, c.at, q)]
    zin, zout = int(p.input_zero_point), int(p.zero_point[0])
    steps.append(Step("x - zp_in", 13, q - zin, f"{q} - {zin}"))
    real = c.s(0) / c.s(-1)
    steps.append(_mult_step("multiplier s_in/s_out", int(p.output_multiplier), int(p.output_shift),
                            real, f"double(s_in)/double(s_out) = {_g(c.s(0))}/{_g(c.s(-1))}", eq=13))
    r, more = _mbqm_steps(q - zin, int(p.output_multiplier), int(p.output_shift), "(x - zp_in)")
    steps += more
    v = r + zout
    steps.append(Step("+ output zero point", 13, v, f"{r} + {zout}"))
    final, st = _clamp_step(v, qmin, qmax, eq=13)
    steps.append(st)
    return final, steps, []


_EXPLAINERS: dict[str, Callable[[_Ctx], tuple[int, list[Step], list[str]]]] = {
    "CONV_2D": _explain_conv,
    "DEPTHWISE_CONV_2D": _explain_depthwise,
    "FULLY_CONNECTED": _explain_fc,
    "ADD": _explain_add_sub,
    "SUB": _explain_add_sub,
    "MUL": _explain_mul,
    "AVERAGE_POOL_2D": _explain_pool,
    "MAX_POOL_2D": _explain_pool,
    "MEAN": _explain_mean,
    "SUM": _explain_mean,
    "LOGISTIC": _explain_logistic_tanh,
    "TANH": _explain_logistic_tanh,
    "SOFTMAX": _explain_softmax,
    "HARD_SWISH": _explain_hard_swish,
    "QUANTIZE": _explain_quantize,
}


def _variant(op_name: str, params: Any) -> str:
    if op_name == "QUANTIZE":
        return "float" if params.from_float else "requantize"
    if op_name in ("MEAN", "SUM"):
        return params.mode
    return getattr(params, "kind", "?")


def _supported_text() -> str:
    return ", ".join(f"{op} ({'/'.join(k)})" for op, k in SUPPORTED.items())


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------
def _load_model(model: Any):
    from quantcore.schema import read_model
    from quantcore.schema.model import Model
    if isinstance(model, Model):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_model(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        try:
            with open(model, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InputError(f"cannot read model {os.fspath(model)!r}: {e}") from None
        return read_model(data)
    raise InputError(f"model must be a path, bytes or a quantcore Model, not {type(model).__name__}")


def _default_inputs(model, seed: int) -> list[np.ndarray]:
    from quantcore.schema.model import numpy_dtype
    rng = np.random.default_rng(seed)
    sg = model.subgraphs[0]
    out = []
    for i in sg.inputs:
        t = sg.tensors[i]
        dt = numpy_dtype(t.type)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, int(info.max) + 1, t.shape, dtype=np.int64).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, t.shape).astype(bool))
        else:
            out.append(rng.uniform(-1, 1, t.shape).astype(dt))
    return out


def _producers(model) -> dict[int, int]:
    sg = model.subgraphs[0]
    prod = {}
    for o, op in enumerate(sg.operators):
        for t in op.outputs:
            if t >= 0:
                prod.setdefault(t, o)
    return prod


def _listing(model, producers: dict[int, int], limit: int = 20) -> str:
    sg = model.subgraphs[0]
    items = [f"{t} {sg.tensors[t].name!r} ({model.op_name(sg.operators[o])})"
             for t, o in sorted(producers.items(), key=lambda kv: kv[1])]
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more if items else "none"


def _resolve_tensor(model, tensor: str | int, producers: dict[int, int]) -> int:
    sg = model.subgraphs[0]
    n = len(sg.tensors)
    if isinstance(tensor, (bool, np.bool_)):
        raise InputError(f"tensor must be a name or an index, not {tensor!r}")
    if isinstance(tensor, (int, np.integer)):
        t = int(tensor)
        if not 0 <= t < n:
            raise InputError(f"tensor index {t} out of range: the model has {n} tensors "
                             f"[0, {n}); operator outputs: {_listing(model, producers)}")
        return t
    if isinstance(tensor, str):
        matches = [i for i, x in enumerate(sg.tensors) if x.name == tensor]
        if not matches and tensor.strip().isdigit():
            return _resolve_tensor(model, int(tensor), producers)   # "12" from a command line
        if not matches:
            raise InputError(f"no tensor named {tensor!r}; operator outputs: "
                             f"{_listing(model, producers)}")
        produced = [i for i in matches if i in producers]
        return produced[0] if produced else matches[0]
    raise InputError(f"tensor must be a name or an index, not {type(tensor).__name__}")


def explain(model: Any, tensor: str | int, at: tuple[int, ...],
            inputs: list[np.ndarray] | None = None, seed: int = 0) -> Explanation:
    """Recompute output element ``at`` of ``tensor`` the way its integer kernel does.

    ``model`` is a .tflite path, its bytes or a :class:`~quantcore.schema.model.Model`;
    ``tensor`` a tensor name or index in subgraph 0, produced by one of the operators in
    :data:`SUPPORTED`; ``at`` a full index into that tensor. ``inputs`` are the model's
    input arrays (default: seeded random inputs, full-range integers and floats in
    [-1, 1), as ``quantcore compare`` uses). The model runs once in quantcore's
    interpreter (reference numerics); the steps are then recomputed from the operator's
    prepared parameters, the model's scales and the values of its inputs.

    Raises :class:`~quantcore.errors.InputError` for an unknown tensor, a tensor not
    produced by a supported integer operator (the message lists what is supported) or
    an index outside the tensor's shape, and :class:`ExplainMismatchError` when the
    recomputed value differs from the runtime's (a bug in quantcore).
    """
    from quantcore.runtime import Interpreter
    m = _load_model(model)
    if not m.subgraphs:
        raise InputError("the model has no subgraphs")
    sg = m.subgraphs[0]
    producers = _producers(m)
    t = _resolve_tensor(m, tensor, producers)
    tname = sg.tensors[t].name
    if t not in producers:
        role = "a model input" if t in sg.inputs else "a constant" if m.tensor_data(0, t) is not None \
            else "not produced by any operator"
        raise InputError(f"tensor {t} {tname!r} is {role}; explain() needs an operator output. "
                         f"Operator outputs: {_listing(m, producers)}")
    o = producers[t]
    op = sg.operators[o]
    op_name = m.op_name(op)
    if op_name not in SUPPORTED:
        raise InputError(f"tensor {t} {tname!r} is produced by operator {o} ({op_name}), which "
                         f"explain() does not support. Supported: {_supported_text()}")
    if list(op.outputs).index(t) != 0:
        raise InputError(f"tensor {t} {tname!r} is output {list(op.outputs).index(t)} of {op_name}; "
                         "only the first output can be explained")

    it = Interpreter(model=m, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    prepared = it._states[0].ops[o]
    kind = _variant(op_name, prepared.params)
    if kind not in SUPPORTED[op_name]:
        raise InputError(f"tensor {t} {tname!r} is produced by {op_name} of kind {kind!r}, which "
                         f"explain() does not support (an integer kernel is needed). Supported: "
                         f"{_supported_text()}")
    if inputs is None:
        inputs = _default_inputs(m, seed)
    inputs = list(inputs)
    if len(inputs) != len(sg.inputs):
        raise InputError(f"{len(inputs)} input arrays given, the model has {len(sg.inputs)} inputs "
                         f"({[sg.tensors[i].name for i in sg.inputs]})")
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], np.asarray(x))
    it.invoke()
    out = it.get_tensor(t)

    try:
        idx = tuple(int(i) for i in at)
    except (TypeError, ValueError):
        raise InputError(f"index {at!r} must be a tuple of integers; tensor {t} {tname!r} has "
                         f"shape {list(out.shape)}") from None
    if len(idx) != out.ndim or any(not 0 <= i < d for i, d in zip(idx, out.shape)):
        raise InputError(f"index {list(idx)} out of range for tensor {t} {tname!r} of shape "
                         f"{list(out.shape)} (valid: 0 <= index[k] < shape[k], {out.ndim} indices)")

    ctx = _Ctx(model=m, sg=sg, op_index=o, op_name=op_name, options=op.options,
               params=prepared.params, input_ids=list(op.inputs),
               inputs=[None if i < 0 else it.get_tensor(i) for i in op.inputs],
               output=out, tensor=t, at=idx)
    final, steps, notes = _EXPLAINERS[op_name](ctx)
    final = int(final)
    runtime = int(out[idx])
    if final != runtime:
        raise ExplainMismatchError(
            f"explain() recomputed {final} for {op_name} (operator {o}) tensor {t} {tname!r} at "
            f"{list(idx)}, the runtime computed {runtime}: a bug in quantcore")
    qp = sg.tensors[t].qparams()
    scale = zp = real = None
    if qp is not None and len(qp[0]) == 1:
        scale, zp = float(qp[0][0]), int(qp[1][0])
        real = scale * (final - zp)
    from quantcore.schema.model import TensorType
    return Explanation(op_index=o, op=op_name, kind=kind, tensor=t, tensor_name=tname,
                       shape=tuple(int(d) for d in out.shape),
                       dtype=TensorType(sg.tensors[t].type).name.lower(), index=idx,
                       steps=steps, final=final, real=real, scale=scale, zero_point=zp,
                       notes=notes)
