"""QUANTIZE: float32 -> int8/uint8/int16 (per tensor or per channel), and requantize
between integer types (int8, uint8, int16, int32 inputs).

Mirrors ``tflite/kernels/quantize.cc`` with ``reference/quantize.h``
(``AffineQuantize``, ``PerChannelQuantize``) and ``reference/requantize.h``:

* float input (eq. 12): ``q = clamp(int32(roundf(f32(x / s))) + zp)``;
* integer input (eq. 13): ``M = double(s_in) / double(s_out)`` -> ``(M0, shift)``,
  ``q = clamp(MBQM(x - zp_in, M0, shift) + zp_out)`` (gemmlowp double rounding).
  The int8<->uint8 "xor 0x80" fast path of requantize.h gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from quantcore.numerics import quantize as affine_quantize

from . import _paths_unary
from ._common import FLOAT32, INT8, INT16, INT32, QMAX, QMIN, UINT8, OpContext
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class QuantizeParams:
    from_float: bool
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    input_zero_point: int
    output_multiplier: int
    output_shift: int
    qmin: int
    qmax: int
    out_dtype: type


def prepare(ctx: OpContext) -> QuantizeParams | PathParams:
    # Other numerics paths (LiteRT's NEON blocks, XNNPACK's convert): see _paths_unary.
    return _paths_unary.for_quantize(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> QuantizeParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.require_quantized(out, per_channel_dim=out.quantized_dimension)
    out_dtype = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}.get(out.type)
    if x.type == FLOAT32:
        if out_dtype is None:
            raise ctx.unsupported(f"QUANTIZE float32 -> {out.type_name}")
        axis = out.quantized_dimension if out.per_channel else None
        return QuantizeParams(True, out.scale, out.zero_point, axis, 0, 0, 0,
                              QMIN[out.type], QMAX[out.type], out_dtype)
    allowed = {INT16: (INT8, INT16, INT32), INT32: (INT8, INT16), INT8: (INT8, UINT8, INT16),
               UINT8: (INT8, UINT8, INT16)}
    if x.type not in allowed or out.type not in allowed[x.type]:
        raise ctx.unsupported(f"QUANTIZE {x.type_name} -> {out.type_name}")
    ctx.require_quantized(x)
    ctx.check(not out.per_channel, "requantization to a per-channel output: LiteRT would divide by "
              "the output's legacy per-tensor scale, which is 0 for a per-channel tensor (an "
              "infinite multiplier, undefined behaviour in QuantizeMultiplier)", ctx.where(out))
    if x.type == INT16 and out.type == INT16:
        ctx.check(x.zp == 0 and out.zp == 0, "int16 -> int16 QUANTIZE needs zero points 0")
    m, shift = quantize_multiplier(float(x.s) / float(out.s))
    if out.type == INT32:
        out_dtype = np.int32
    return QuantizeParams(False, out.scale, out.zero_point, None, x.zp, m, shift,
                          QMIN[out.type], QMAX[out.type], out_dtype)


def eval(p: QuantizeParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_quantize(p, x, eval)
    if p.from_float:
        if p.axis is None:
            q = quantize_float_per_tensor(x, float(p.scale[0]), int(p.zero_point[0]), p.qmin, p.qmax,
                                          p.out_dtype)
            if q is not None:
                return [q]
        return [affine_quantize(x, p.scale, p.zero_point, p.out_dtype, axis=p.axis)]
    acc = multiply_by_quantized_multiplier(x.astype(np.int64) - p.input_zero_point,
                                           p.output_multiplier, p.output_shift)
    return [np.clip(acc + int(p.zero_point[0]), p.qmin, p.qmax).astype(p.out_dtype)]


#: ``|2 x / s|`` below this for every element: no element reaches the x86 int32
#: conversion's "indefinite" result or the int32 wrap of ``+ zp`` (see below).
_SAFE_TWICE = np.float32(2.0**31)


def quantize_float_per_tensor(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int,
                              out_dtype) -> np.ndarray | None:
    """The reference float -> integer QUANTIZE, ``clamp(int32(roundf(f32(x / s))) + zp)``,
    in fewer passes; None when an element needs the general formula
    (``quantcore.numerics.quantize``): NaN, or ``|x / s| >= 2^30``, where x86's
    conversion gives INT32_MIN and ``+ zp`` may wrap.

    Exactness:

    * ``v2 = f32(x / f32(s / 2))`` equals ``2 * f32(x / s)``: halving is exact and
      scaling by two commutes with rounding (``s`` is kept >= 2^-120 so that ``s / 2``
      stays normal; quotients too small to be normal are below 0.5 and give 0 either
      way).
    * ``roundf(v)`` (ties away from zero) from ``t = trunc(2 v)``: ``(t + (t > 0)) >> 1``
      (arithmetic shift). ``t = 2m`` gives ``m``; ``t = 2m + 1 > 0`` (fraction >= 0.5)
      gives ``m + 1``; ``t = -(2m + 1)`` gives ``-(m + 1)``.
    * Clamping ``v2`` first to the even integers ``[2 (qmin - zp), 2 (qmax - zp)]``
      commutes with rounding and the final clamp (monotone maps, integer bounds), so
      no integer clamp is needed afterwards.
    """
    s = np.float32(scale)
    if not (np.isfinite(s) and s >= np.float32(2.0**-120)) or x.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        # (np.array, not np.asarray: a 0-d input must stay an array for out= below)
        v2 = np.divide(np.array(x, np.float32, ndmin=1), s / np.float32(2), dtype=np.float32)
    lo, hi = v2.min(), v2.max()          # NaN propagates: the comparisons below fail
    if not (-_SAFE_TWICE < lo and hi < _SAFE_TWICE):
        return None
    np.clip(v2, np.float32(2 * (qmin - zero_point)), np.float32(2 * (qmax - zero_point)), out=v2)
    t = v2.astype(np.int32)
    np.add(t, t > 0, out=t)
    np.right_shift(t, 1, out=t)
    if zero_point:
        t += np.int32(zero_point)
    return t.astype(out_dtype).reshape(np.shape(x))
