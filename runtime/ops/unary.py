"""Elementwise unary operators EXP, SQRT, RSQRT, ABS and NEG (the module reads
``ctx.op_name``).

Mirrors ``tflite/kernels/exp.cc`` (``Register_EXP_REF``), ``tflite/kernels/elementwise.cc``
(``Register_ABS``, ``Register_SQRT``, ``Register_RSQRT``: ``GenericPrepare``,
``AbsEval``, ``SqrtEvalQuantized``, ``RsqrtEvalQuantizedInt8/Int16``),
``tflite/kernels/neg.cc`` and the reference kernels ``reference/exp.h`` and
``reference/neg.h``; tables from ``internal/common.h`` (see :mod:`._lut`).

* EXP: float32 ``expf``; int8 256-entry table of ``expf``; int16 (zero points 0)
  513-entry interpolated table of ``expf`` in float32.
* SQRT: float32 ``sqrtf``; int8/int16 (quantized; int16 zero points 0), per element
  ``zp_out + int(f32(sqrtf(f32(s_in * (x - zp_in))) / s_out))`` -- the division is
  truncated toward zero, not rounded (a quotient beyond the int32 range becomes
  INT32_MIN, as x86's conversion gives, before the wrapping zero-point addition);
  a negative input is an error at invoke.
* RSQRT: float32 ``1 / sqrtf(x)``; int8: ``GetInvSqrtQuantizedMultiplierExp`` of
  ``x - zp_in`` (fixed-point Newton-Raphson, :mod:`._gemmlowp_fixedpoint`) followed by
  two MBQMs with a multiplier from ``1 / (sqrtf(s_in) * s_out)`` (computed here
  once per input code); ``x == zp_in`` gives 127; int16: interpolated table of
  ``1 / sqrtf(v)`` (``32767 * s_out`` for v <= 0). Inputs below the zero point are an
  error at invoke.
* ABS: float32, int32 (``abs(INT32_MIN)`` stays INT32_MIN), int16 without
  quantization (``int16(abs(x))``: -32768 stays -32768), int8 and int16 quantized:
  ``clamp(zp_out + |x - zp_in|)`` when the scales are equal, else
  ``clamp(zp_out + MBQM(|x - zp_in|, QuantizeMultiplier(f32(s_in / s_out))))``.
* NEG: float32, int32, int64, int8, int16: ``-x`` in the type (wraps; quantization
  parameters are ignored, as LiteRT does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import (float_to_int32_x86, multiply_by_quantized_multiplier,
                                  quantize_multiplier, wrap_int32)

from ._common import FLOAT32, INT16, INT32, INT64, INT8, QMAX, QMIN, OpContext, finite
from ._gemmlowp_fixedpoint import get_inv_sqrt_quantized_multiplier_exp, wrap_int16
from ._lut import (approx_f32, libm_f32, lut_lookup_int8, lut_lookup_int16, lut_populate_int8,
                   lut_populate_int16)

# Numerics paths: EXP, ABS, SQRT, RSQRT and NEG have one LiteRT kernel (Register_EXP
# returns the reference one) and XNNPACK takes their float versions only, so quantized
# results agree on every path (float EXP/SQRT/RSQRT under XNNPACK: within a few ulp).
NUMERICS = ("reference", "optimized", "xnnpack")

_DTYPES = {INT8: np.int8, INT16: np.int16, INT32: np.int32, INT64: np.int64, FLOAT32: np.float32}
_TYPES = {"EXP": (FLOAT32, INT8, INT16), "SQRT": (FLOAT32, INT8, INT16),
          "RSQRT": (FLOAT32, INT8, INT16), "ABS": (FLOAT32, INT8, INT16, INT32),
          "NEG": (FLOAT32, INT8, INT16, INT32, INT64)}


@dataclass(frozen=True)
class UnaryParams:
    op: str
    kind: str                         # "float", "int", "lut8", "lut16", "rsqrt8", "sqrt", "abs"
    path: str = ""
    out_dtype: type = np.float32
    lut: np.ndarray | None = None
    input_offset: int = 0             # input zero point
    output_offset: int = 0            # output zero point
    input_scale: float = 0.0
    output_scale: float = 0.0
    needs_rescale: bool = False
    multiplier: int = 0
    shift: int = 0
    qmin: int = 0
    qmax: int = 0


def _exp_f32(v: np.ndarray) -> np.ndarray:
    return libm_f32("expf", v)


def _rsqrt_int8_table(x_zp: int, multiplier: int, shift: int, out_zp: int) -> np.ndarray:
    """Output of ``RsqrtEvalQuantizedInt8`` for every int8 code (codes below the zero
    point are rejected at eval and get a placeholder)."""
    k_shift = 20
    table = np.zeros(256, np.int64)
    for code in range(-128, 128):
        value = code - x_zp
        if value < 0:
            continue
        if value == 0:
            table[code + 128] = 127
            continue
        inv, inv_shift = get_inv_sqrt_quantized_multiplier_exp(value, -1)
        data = multiply_by_quantized_multiplier(1, inv, inv_shift + k_shift)
        out = int(multiply_by_quantized_multiplier(data, multiplier, shift - k_shift)) + out_zp
        table[code + 128] = min(max(out, -128), 127)
    return table


def prepare(ctx: OpContext) -> UnaryParams:
    op = ctx.op_name
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    ctx.check_type(x, _TYPES[op], "input")
    dtype = _DTYPES[x.type]
    common = dict(op=op, path=ctx.path, out_dtype=dtype)
    if x.type == FLOAT32:
        return UnaryParams(kind="float", **common)
    if op == "NEG" or x.type in (INT32, INT64):
        return UnaryParams(kind="int", **common)
    if op == "ABS" and x.type == INT16 and not x.quantized:
        return UnaryParams(kind="int", **common)
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    if x.type == INT16:
        ctx.check(x.zp == 0 and out.zp == 0,
                  f"int16 {op} needs zero points 0, has {x.zp} and {out.zp}")
    q = dict(input_offset=x.zp, output_offset=out.zp, input_scale=x.s, output_scale=out.s,
             qmin=QMIN[x.type], qmax=QMAX[x.type], **common)
    f32 = np.float32
    if op == "EXP":
        if x.type == INT8:
            return UnaryParams(kind="lut8", lut=lut_populate_int8(x.s, x.zp, out.s, out.zp, _exp_f32,
                                                                  -128, 127), **q)
        return UnaryParams(kind="lut16", lut=lut_populate_int16(x.s, x.zp, out.s, out.zp, _exp_f32),
                           **q)
    if op == "SQRT":
        return UnaryParams(kind="sqrt", **q)
    if op == "RSQRT":
        if x.type == INT16:
            cap = f32(f32(32767) * f32(out.s))

            def rsqrt(v):
                v = np.asarray(v, f32)
                r = (f32(1) / libm_f32("sqrtf", np.maximum(v, f32(1e-30)))).astype(f32)
                return np.where(v <= 0, cap, r).astype(f32)
            return UnaryParams(kind="lut16", lut=lut_populate_int16(x.s, x.zp, out.s, out.zp, rsqrt),
                               **q)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            real = np.float64(1.0) / np.float64(f32(libm_f32("sqrtf", np.array([x.s], f32))[0] * f32(out.s)))
        m, s = quantize_multiplier(finite(ctx, real, "1 / (sqrt(input scale) * output scale)"))
        return UnaryParams(kind="rsqrt8", lut=_rsqrt_int8_table(x.zp, m, s, out.zp),
                           multiplier=m, shift=s, **q)
    # ABS, quantized int8/int16
    needs_rescale = f32(x.scale[0]) != f32(out.scale[0])
    with np.errstate(over="ignore"):
        real = f32(f32(x.scale[0]) / f32(out.scale[0]))
    m, s = quantize_multiplier(finite(ctx, real, "input scale / output scale")) if needs_rescale else (0, 0)
    return UnaryParams(kind="abs", needs_rescale=bool(needs_rescale), multiplier=m, shift=s, **q)


def _eval_float(p: UnaryParams, x: np.ndarray) -> np.ndarray:
    xf = np.asarray(x, np.float32)
    f32 = np.float32
    with np.errstate(all="ignore"):
        if p.op == "EXP":
            return approx_f32("expf", xf)
        if p.op == "SQRT":
            return np.sqrt(xf)
        if p.op == "RSQRT":
            return (f32(1) / np.sqrt(xf)).astype(f32)
        if p.op == "ABS":
            return np.abs(xf)
        return -xf


def _eval_int(p: UnaryParams, x: np.ndarray) -> np.ndarray:
    """NEG in any integer type, ABS of int32 and of unquantized int16 (two's-complement wraps)."""
    v = np.asarray(x)
    if p.op == "NEG":
        with np.errstate(over="ignore"):
            return np.negative(v).astype(p.out_dtype)
    w = np.abs(v.astype(np.int64))
    if p.out_dtype == np.int16:
        return wrap_int16(w).astype(np.int16)
    return (((w + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int32)


def _check_domain(p: UnaryParams, x: np.ndarray, message: str) -> None:
    bad = np.asarray(x, np.int64) < p.input_offset
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{p.path}: {p.op}: {message}; input element {first} is "
                         f"{int(np.asarray(x)[first])}, below the zero point {p.input_offset}")


def eval(p: UnaryParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        return [_eval_float(p, x).astype(np.float32)]
    if p.kind == "int":
        return [_eval_int(p, x)]
    if p.kind == "lut8":
        return [lut_lookup_int8(x, p.lut, -128, np.int8)]
    if p.kind == "lut16":
        if p.op == "RSQRT":
            _check_domain(p, x, "Rsqrt is only defined for positive values")
        return [lut_lookup_int16(x, p.lut).astype(np.int16)]
    if p.kind == "rsqrt8":
        _check_domain(p, x, "Rsqrt is only defined for positive values")
        return [lut_lookup_int8(x, p.lut, -128, np.int8)]
    if p.kind == "sqrt":
        f32 = np.float32
        centred = (np.asarray(x, np.int64) - p.input_offset).astype(f32)
        with np.errstate(over="ignore"):  # extreme scales saturate below, as in C
            dequantized = (f32(p.input_scale) * centred).astype(f32)
        neg = dequantized < 0
        if np.any(neg):
            first = tuple(int(i) for i in np.argwhere(neg)[0])
            raise InputError(f"{p.path}: SQRT: Sqrt is only defined for non-negative values; input "
                             f"element {first} dequantizes to {float(dequantized[first])}")
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = (np.sqrt(dequantized) / f32(p.output_scale)).astype(f32)
        # static_cast<int>: x86 cvttss2si, INT32_MIN when out of range (measured), then an
        # int32 addition of the zero point that wraps
        q = wrap_int32(float_to_int32_x86(ratio) + p.output_offset)
        return [np.clip(q, p.qmin, p.qmax).astype(p.out_dtype)]
    # abs
    value = np.abs(np.asarray(x, np.int64) - p.input_offset)
    if p.needs_rescale:
        value = multiply_by_quantized_multiplier(value, p.multiplier, p.shift)
    return [np.clip(value + p.output_offset, p.qmin, p.qmax).astype(p.out_dtype)]

