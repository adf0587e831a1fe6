"""SQUARED_DIFFERENCE: float32, int32 and quantized int8, with broadcasting up to 8
dimensions (no fused activation: the operator has no options).

Mirrors ``tflite/kernels/squared_difference.cc`` in google-ai-edge/LiteRT (the
quantized element function is defined there; the loops are
``reference_integer_ops::ElementWise``/``BroadcastBinaryFunction6DSlow`` and
``reference_ops::BinaryFunction``/``BroadcastBinaryFunction4DSlow``).

* float32: ``d = x1 - x2; d * d`` in float32 (no clamp: overflow gives inf).
* int32: the same with two's-complement wrap.
* int8 (``left_shift`` 7)::

      twice_max_input_scale = 2 * max(s1, s2)                           (float32)
      m_i = QuantizeMultiplierSmallerThanOneExp(s_i / twice_max_input_scale)
      m_out = QuantizeMultiplierSmallerThanOneExp(
                  twice_max^2 / ((1 << 14) * s_out))        (double / float32 product)
      d = MBQM_<1((x1 - zp1) << 7, m_1) - MBQM_<1((x2 - zp2) << 7, m_2)
      out = clamp(MBQM_<1(d * d, m_out) + zp_out, -128, 127)

  An output multiplier of 1 or more aborts LiteRT (QuantizeMultiplierSmallerThanOneExp)
  and is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import quantize_multiplier, wrap_int32

from ._broadcast import binary_shapes, check_binary_io, check_output_type, to_dtype, wrap
from ._common import FLOAT32, INT8, INT32, OpContext
from .add import mbqm_smaller_than_one_exp

# Numerics paths: LiteRT registers one SQUARED_DIFFERENCE kernel in every resolver and
# XNNPACK takes float only ((a - b)^2 in float32, the same value): all paths agree.
NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class SquaredDifferenceParams:
    kind: str                     # "float", "int32", "int8"
    output_shape: tuple[int, ...]
    left_shift: int = 7
    input1_offset: int = 0
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_offset: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0


def prepare(ctx: OpContext) -> SquaredDifferenceParams:
    a, b, out = check_binary_io(ctx)
    check_output_type(ctx, a, out)
    ctx.check_type(a, (FLOAT32, INT32, INT8), "input")
    sh = binary_shapes(ctx, a, b, flat_test="same")
    if a.type == FLOAT32:
        return SquaredDifferenceParams(kind="float", output_shape=sh.output_shape)
    if a.type == INT32:
        return SquaredDifferenceParams(kind="int32", output_shape=sh.output_shape)
    for x in (a, b, out):
        ctx.require_quantized(x)
    left_shift = 7
    with np.errstate(over="ignore"):  # checked below
        twice_max = float(np.float32(2) * max(np.float32(a.s), np.float32(b.s)))
        ctx.check(np.isfinite(twice_max), "input scales overflow float32 when doubled")
        m1, e1 = quantize_multiplier(a.s / twice_max)
        m2, e2 = quantize_multiplier(b.s / twice_max)
        real_output = (twice_max * twice_max) / float(np.float32(np.float32(1 << (2 * left_shift)) *
                                                                 np.float32(out.s)))
    ctx.check(0.0 < real_output < 1.0,
              f"output multiplier (2*max(input scales))^2/(2^14*output scale) = {real_output:.9g} is "
              "not in (0, 1): the output scale is too small (LiteRT aborts in "
              "QuantizeMultiplierSmallerThanOneExp)")
    mo, eo = quantize_multiplier(real_output)
    return SquaredDifferenceParams(kind="int8", output_shape=sh.output_shape, left_shift=left_shift,
                                   input1_offset=-a.zp, input1_multiplier=m1, input1_shift=e1,
                                   input2_offset=-b.zp, input2_multiplier=m2, input2_shift=e2,
                                   output_offset=out.zp, output_multiplier=mo, output_shift=eo)


def eval(p: SquaredDifferenceParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        with np.errstate(over="ignore", invalid="ignore"):
            d = x1.astype(np.float32) - x2.astype(np.float32)
            r = d * d
        return [np.broadcast_to(r, p.output_shape).astype(np.float32)]
    if p.kind == "int32":
        with np.errstate(over="ignore"):
            d = wrap(x1.astype(np.int64) - x2.astype(np.int64), INT32)
            r = wrap(d * d, INT32)
        return [to_dtype(np.broadcast_to(r, p.output_shape), INT32)]
    a = (x1.astype(np.int64) + p.input1_offset) << p.left_shift
    b = (x2.astype(np.int64) + p.input2_offset) << p.left_shift
    a, b = np.broadcast_arrays(a, b)
    d = mbqm_smaller_than_one_exp(a, p.input1_multiplier, p.input1_shift) - \
        mbqm_smaller_than_one_exp(b, p.input2_multiplier, p.input2_shift)
    sq = wrap_int32(d * d)
    r = mbqm_smaller_than_one_exp(sq, p.output_multiplier, p.output_shift) + p.output_offset
    return [to_dtype(np.clip(r, -128, 127).reshape(p.output_shape), INT8)]
