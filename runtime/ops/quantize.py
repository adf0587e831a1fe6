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
    ctx.check(not out.per_channel, "requantization to a per-channel output is not supported")
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
        return [affine_quantize(x, p.scale, p.zero_point, p.out_dtype, axis=p.axis)]
    acc = multiply_by_quantized_multiplier(x.astype(np.int64) - p.input_zero_point,
                                           p.output_multiplier, p.output_shift)
    return [np.clip(acc + int(p.zero_point[0]), p.qmin, p.qmax).astype(p.out_dtype)]
