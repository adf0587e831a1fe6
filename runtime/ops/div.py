"""DIV: float32, int32, and quantized int8, uint8 and int16, with broadcasting up to 8
dimensions and fused activations.

Mirrors ``tflite/kernels/div.cc`` and ``tflite/kernels/internal/reference/div.h``
(``DivElementwise``, ``BroadcastDivSlowQuantized``, ``BroadcastDivSlow``, ``Div``) in
google-ai-edge/LiteRT, with ``GetReciprocal`` and ``CountLeadingSignBits`` from
``internal/common.h`` and gemmlowp's ``one_over_one_plus_x_for_x_in_0_1``.

* float32: ``x1 / x2`` in float32, clamped to the activation range, which is
  [-FLT_MAX, FLT_MAX] without an activation (division by zero gives +-FLT_MAX, 0/0 NaN).
* int32: C division (truncating), clamped; LiteRT fails at Eval when any element of
  input 2 is 0 (``CheckNonZero``); ``INT32_MIN / -1`` traps in C++ and is refused.
* quantized: ``real_multiplier = f32(s1 / f32(s2 * s_out))`` -> QuantizeMultiplier
  (M, shift). Per element::

      v1 = x1 - zp1;  v2 = x2 - zp2;  if v2 < 0: v1, v2 = -v1, -v2
      inv, recip_shift = GetReciprocal(v2)            # Q0.31 of 2^k / v2, k = bits of v2
      headroom = CountLeadingSignBits(v1)
      q = SRDHM(v1 << headroom, inv)
      out = clamp(zp_out + RoundingDivideByPOT(SRDHM(q, M), headroom + recip_shift - shift))

  LiteRT fails at Eval when any element of input 2 equals its zero point. The
  rounding exponent exceeds 31 whenever |v1| is small (v1 = 0 gives 31 + ...): the C++
  shift is then undefined, and the x86 wheel (scalar code, measured) takes the shift
  count mod 32 with a mask of all ones (:func:`_broadcast.rounding_divide_by_pot_x86`),
  so e.g. v1 = 0 gives ``zp_out + 1``, not ``zp_out``. Reproduced here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import quantize_multiplier, saturating_rounding_doubling_high_mul, wrap_int32

from ._broadcast import (binary_shapes, check_binary_io, check_output_type, clamp_float,
                         float_activation_range, int_activation_range, quantized_activation_range,
                         rounding_divide_by_pot_x86, to_dtype)
from ._common import FLOAT32, INT8, INT16, INT32, UINT8, OpContext

# Numerics paths (verified against LiteRT, tests/ops/test_paths_*.py): the optimized
# resolver's quantized DIV is optimized_ops::BroadcastDivSlowQuantized / reference Div,
# the same arithmetic; XNNPACK takes float DIV only (exact IEEE division).
NUMERICS = ("reference", "optimized", "xnnpack")

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


@dataclass(frozen=True)
class DivParams:
    kind: str                     # "float", "int32", "quantized"
    out_type: int
    output_shape: tuple[int, ...]
    path: str                     # operator path, for data-dependent errors
    output_activation_min: float = 0
    output_activation_max: float = 0
    input1_offset: int = 0
    input2_offset: int = 0
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    input2_zero_point: int = 0


# ---------------------------------------------------------------------------
# gemmlowp / common.h pieces (vectorized over int64 arrays holding int32 values)
# ---------------------------------------------------------------------------
def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent > 0>`` on int32."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _rounding_half_sum(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum<int32>``: (a + b + sign) / 2, C division."""
    s = a + b
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s >> 1, -((-s) >> 1))


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1`` on raw Q0.31 values (Newton-Raphson,
    three iterations, constants 48/17 and -32/17 in Q2.29)."""
    half_denominator = _rounding_half_sum(np.asarray(a, np.int64), INT32_MAX)
    x = wrap_int32(1515870810 + saturating_rounding_doubling_high_mul(half_denominator, -1010580540))
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus = wrap_int32((1 << 29) - half_denominator_times_x)
        x = wrap_int32(x + _saturating_shift_left(saturating_rounding_doubling_high_mul(x, one_minus), 2))
    return _saturating_shift_left(x, 1)


def _count_leading_zeros_u32(x: np.ndarray) -> np.ndarray:
    """CountLeadingZeros(uint32) (32 for 0), for values in [0, 2^32)."""
    x = np.asarray(x, np.int64)
    n = np.full(x.shape, 32, np.int64)
    nz = x > 0
    # floor(log2) exactly: frexp is exact for integers below 2^53.
    _, e = np.frexp(np.where(nz, x, 1).astype(np.float64))
    return np.where(nz, 32 - e.astype(np.int64), n)


def count_leading_sign_bits(x: np.ndarray) -> np.ndarray:
    """``CountLeadingSignBits(int32)``: redundant sign bits; 31 for 0 and -1."""
    x = np.asarray(x, np.int64)
    pos = _count_leading_zeros_u32(np.where(x >= 0, x, 0)) - 1
    neg = _count_leading_zeros_u32(np.where(x < 0, 2 * (-x) - 1, 0))
    return np.where(x >= 0, pos, np.where(x == INT32_MIN, 0, neg))


def get_reciprocal(x: np.ndarray, x_integer_digits: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """``GetReciprocal(x, 31, &num_bits_over_unit)`` for x >= 1: (Q0.31 inverse, shift)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = _count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def quantized_divide(v1: np.ndarray, v2: np.ndarray, output_multiplier: int, output_shift: int) -> np.ndarray:
    """DivElementwise's integer core (before the output offset and clamp)."""
    neg = v2 < 0
    v1 = wrap_int32(np.where(neg, -v1, v1))
    v2 = np.where(neg, -v2, v2)
    input2_inv, recip_shift = get_reciprocal(v2)
    headroom = count_leading_sign_bits(v1)
    unscaled = saturating_rounding_doubling_high_mul(wrap_int32(v1 << headroom), input2_inv)
    total_shift = output_shift - recip_shift - headroom
    return rounding_divide_by_pot_x86(
        saturating_rounding_doubling_high_mul(unscaled, output_multiplier), -total_shift)


# ---------------------------------------------------------------------------
def prepare(ctx: OpContext) -> DivParams:
    a, b, out = check_binary_io(ctx)
    check_output_type(ctx, a, out)
    t = a.type
    ctx.check_type(a, (FLOAT32, INT32, INT8, UINT8, INT16), "input")
    if t in (FLOAT32, INT32):
        sh = binary_shapes(ctx, a, b, flat_test="same")
        if t == FLOAT32:
            lo, hi = float_activation_range(ctx)
        else:
            lo, hi = int_activation_range(ctx, t)
        zp2 = 0
        if t == INT32 and b.quantized:
            # CheckNonZero compares against the tensor's zero point when it has one.
            ctx.check(len(b.zero_point) == 1, "DIV supports per-tensor quantization only",
                      ".inputs[1]")
            zp2 = b.zp
        return DivParams(kind="float" if t == FLOAT32 else "int32", out_type=t,
                         output_shape=sh.output_shape, path=ctx.path,
                         output_activation_min=lo, output_activation_max=hi, input2_zero_point=zp2)
    for x in (a, b, out):
        ctx.require_quantized(x)
    lo, hi = quantized_activation_range(ctx, out)
    # div.cc: input1->params.scale / (input2->params.scale * output->params.scale), in float32
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        real = float(np.float32(a.s) / np.float32(np.float32(b.s) * np.float32(out.s)))
    ctx.check(np.isfinite(real), f"multiplier s1/(s2*s_out) = {real} is not finite")
    m, shift = quantize_multiplier(real)
    sh = binary_shapes(ctx, a, b, flat_test="extended")
    return DivParams(kind="quantized", out_type=t, output_shape=sh.output_shape, path=ctx.path,
                     output_activation_min=lo, output_activation_max=hi, input1_offset=-a.zp,
                     input2_offset=-b.zp, output_offset=out.zp, output_multiplier=m,
                     output_shift=shift, input2_zero_point=b.zp)


def eval(p: DivParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            r = x1.astype(np.float32) / x2.astype(np.float32)
        return [clamp_float(np.broadcast_to(r, p.output_shape), p.output_activation_min,
                            p.output_activation_max)]
    if np.any(x2 == p.input2_zero_point):
        what = "0" if p.kind == "int32" else f"its zero point {p.input2_zero_point}"
        raise InputError(f"{p.path}: DIV: input 2 has an element equal to {what} "
                         "(division by zero; LiteRT fails at Eval)")
    if p.kind == "int32":
        a, b = np.broadcast_arrays(x1.astype(np.int64), x2.astype(np.int64))
        if np.any(b == 0):   # reachable when input 2 has a nonzero zero point
            raise InputError(f"{p.path}: DIV: input 2 has an element equal to 0 (LiteRT checks "
                             "against the zero point, then its integer division traps)")
        if np.any((a == INT32_MIN) & (b == -1)):
            raise InputError(f"{p.path}: DIV: INT32_MIN / -1 overflows int32 (a hardware trap "
                             "in LiteRT)")
        q = np.abs(a) // np.abs(b) * np.sign(a) * np.sign(b)     # C division truncates
        r = np.clip(q, p.output_activation_min, p.output_activation_max)
        return [r.astype(np.int32).reshape(p.output_shape)]
    v1 = x1.astype(np.int64) + p.input1_offset
    v2 = x2.astype(np.int64) + p.input2_offset
    v1, v2 = np.broadcast_arrays(v1, v2)
    r = quantized_divide(v1, v2, p.output_multiplier, p.output_shift) + p.output_offset
    r = np.clip(r, p.output_activation_min, p.output_activation_max)
    return [to_dtype(r.reshape(p.output_shape), p.out_type)]
