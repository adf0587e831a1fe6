"""gemmlowp's scalar fixed-point arithmetic (``fixedpoint/fixedpoint.h``) and the
fixed-point helpers of ``tflite/kernels/internal/common.h`` built on it, vectorized
over NumPy int64 arrays that hold int32 (or int16) values.

Sources: google/gemmlowp ``fixedpoint/fixedpoint.h`` (``exp_on_negative_values``,
``one_over_one_plus_x_for_x_in_0_1``, ``tanh``, ``logistic``, ``Rescale``,
``SaturatingRoundingMultiplyByPOT``, ``RoundingHalfSum``) and google-ai-edge/LiteRT
``tflite/kernels/internal/common.h`` (``GetReciprocal``,
``log_x_for_x_greater_than_or_equal_to_1``, ``SaturatingRoundingMultiplyByPOTParam``,
``GetInvSqrtQuantizedMultiplierExp``) and ``reference/hard_swish.h`` (the 16-bit helpers).

Conventions. A ``FixedPoint<int32, I>`` value is its raw int32 ``r`` and stands for
``r / 2^(31 - I)``; the functions take and return raw values (int64 arrays in the
int32 range) and name ``I`` in a parameter where it matters. gemmlowp's ``+``, ``-``
and unary ``-`` on int32 raw values are plain C++ int32 operations, which wrap on
x86: :func:`add`, :func:`sub` and :func:`neg` wrap the same way. The FixedPoint
product is ``SaturatingRoundingDoublingHighMul`` (:func:`srdhm`, ties toward +inf in
the doubled product, eq. 7 of docs/quantization.md); ``RoundingDivideByPOT``
(:func:`rdbpot`) rounds ties away from zero (eq. 8).
"""
from __future__ import annotations

import numpy as np

from quantcore.fixedpoint import (rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
                                  wrap_int32)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, np.int64)


def add(a, b) -> np.ndarray:
    """int32 ``a + b`` as x86 computes it (wraps)."""
    return wrap_int32(_i64(a) + _i64(b))


def sub(a, b) -> np.ndarray:
    """int32 ``a - b`` (wraps)."""
    return wrap_int32(_i64(a) - _i64(b))


def neg(a) -> np.ndarray:
    """int32 ``-a`` (``-INT32_MIN`` wraps to INT32_MIN)."""
    return wrap_int32(-_i64(a))


def srdhm(a, b) -> np.ndarray:
    """FixedPoint product: ``SaturatingRoundingDoublingHighMul`` on int32 raw values."""
    return saturating_rounding_doubling_high_mul(a, b)


def rdbpot(x, exponent) -> np.ndarray:
    """``RoundingDivideByPOT`` on int32: ``x / 2^exponent``, ties away from zero."""
    return rounding_divide_by_pot(x, exponent)


def saturating_shift_left(x, exponent: int) -> np.ndarray:
    """``SaturatingRoundingMultiplyByPOT<exponent>`` for exponent > 0 on int32.

    Values above ``2^(31 - exponent) - 1`` saturate to INT32_MAX, values below its
    negation to INT32_MIN; the rest are shifted left exactly.
    """
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """``SaturatingRoundingMultiplyByPOT<exponent>``: saturating left shift (exponent > 0),
    rounding right shift (exponent < 0, ties away from zero), identity for 0."""
    if exponent > 0:
        return saturating_shift_left(x, exponent)
    if exponent < 0:
        return rdbpot(x, -exponent)
    return _i64(x)


def saturating_rounding_multiply_by_pot_param(x, exponent) -> np.ndarray:
    """``SaturatingRoundingMultiplyByPOTParam`` (common.h): run-time exponent >= 0,
    saturating left shift (the exponent may differ per element)."""
    x = _i64(x)
    e = np.clip(_i64(exponent), 0, 31)
    threshold = (np.int64(1) << (31 - e)) - 1
    shifted = wrap_int32(x << e)
    out = np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))
    return np.where(e == 0, x, out)


def rescale(x, src_integer_bits: int, dst_integer_bits: int) -> np.ndarray:
    """``Rescale<dst>(FixedPoint<int32, src>)``: multiply the raw value by
    ``2^(src - dst)`` with saturation (left) or rounding (right)."""
    return saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a, b) -> np.ndarray:
    """``RoundingHalfSum`` on int32: ``(a + b + sign) / 2`` in int64, C truncating division,
    sign = +1 when ``a + b >= 0`` else -1 (halves round away from zero)."""
    s = _i64(a) + _i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))


def count_leading_zeros_u32(x) -> np.ndarray:
    """``CountLeadingZeros(static_cast<uint32_t>(x))``: 32 for 0."""
    u = _i64(x) & 0xFFFFFFFF
    n = np.full(u.shape, 32, np.int64)
    nz = u != 0
    # floor(log2(u)) is exact for u < 2^32 via frexp on float64.
    _, e = np.frexp(np.where(nz, u, 1).astype(np.float64))
    return np.where(nz, 32 - e.astype(np.int64), n)


def constant_pot(integer_bits: int, exponent: int) -> int:
    """Raw value of ``FixedPoint<int32, integer_bits>::ConstantPOT<exponent>()``."""
    return 1 << (31 - integer_bits + exponent)


def one(integer_bits: int) -> int:
    """Raw value of ``FixedPoint<int32, integer_bits>::One()`` (INT32_MAX for 0 bits)."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


# ---------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------
_EXP_MINUS_ONE_EIGHTH = 1895147668   # exp(-1/8) in Q0.31
_ONE_THIRD = 715827883               # 1/3 in Q0.31
# exp(-2^k) in Q0.31 for k = -2..4 (gemmlowp's barrel shifter constants)
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for Q0.31 ``a`` in [-1/4, 0): Taylor expansion around -1/8 (4th order)."""
    x = add(a, constant_pot(0, -3))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(add(srdhm(add(x4_over_4, x3), _ONE_THIRD), x2), 1)
    return add(_EXP_MINUS_ONE_EIGHTH, srdhm(_EXP_MINUS_ONE_EIGHTH, add(x, poly)))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: Q0.31 exp(a) of a FixedPoint<int32, integer_bits>
    ``a <= 0``.

    ``a`` is split into ``(a mod 1/4) - 1/4`` (evaluated by the Taylor kernel) and a
    remainder whose bits select multiplications by exp(-2^k); ``a == 0`` gives
    One() = INT32_MAX, and for more than 5 integer bits ``a < -32`` gives 0.
    """
    a = _i64(a)
    frac_bits = 31 - integer_bits
    quarter = constant_pot(integer_bits, -2)
    mask = quarter - 1
    a_mod_quarter_minus_one_quarter = sub(a & mask, quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = sub(a_mod_quarter_minus_one_quarter, a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, one(0), result)


# ---------------------------------------------------------------------------
# reciprocals, tanh, logistic
# ---------------------------------------------------------------------------
_48_OVER_17 = 1515870810      # Q2.29
_NEG_32_OVER_17 = -1010580540  # Q2.29


def _newton_reciprocal_half_denominator(a) -> np.ndarray:
    """Shared Newton-Raphson loop: x ~ 1 / half_denominator in Q2.29, 3 iterations."""
    half_denominator = rounding_half_sum(a, one(0))
    x = add(_48_OVER_17, srdhm(half_denominator, _NEG_32_OVER_17))
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = sub(one(2), half_denominator_times_x)
        x = add(x, rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: Q0.31 1/(1+a) for Q0.31 a in [0, 1)."""
    x = _newton_reciprocal_half_denominator(a)
    return rescale(x, 1, 0)  # ExactMulByPot<-1> makes it Q1.30, then Rescale<0>


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp ``one_minus_x_over_one_plus_x_for_x_in_0_1``: Q0.31 (1-a)/(1+a)."""
    x = _newton_reciprocal_half_denominator(a)
    return rescale(sub(x, one(2)), 2, 0)


def tanh(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``tanh`` of a FixedPoint<int32, integer_bits>, Q0.31 result."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, neg(a))
    # neg_tanh_on_negative_values: ExactMulByPot<1> reinterprets n with one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, neg(t), t))


def logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``logistic`` of a FixedPoint<int32, integer_bits>, Q0.31 result."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, neg(a))
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(neg(abs_input), integer_bits))
    result_if_negative = sub(one(0), result_if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, result_if_positive, result_if_negative))


def get_reciprocal(x, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """``GetReciprocal`` (common.h): returns (Q0.31 shifted_scale, num_bits_over_unit).

    ``x`` (a positive FixedPoint<int32, x_integer_digits>) is normalised by its
    leading zeros into [1, 2) and the reciprocal of that is taken with
    :func:`one_over_one_plus_x_for_x_in_0_1`; the caller shifts by
    ``num_bits_over_unit = x_integer_digits - clz(x)``.
    """
    x = _i64(x)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((x & 0xFFFFFFFF) << np.minimum(headroom_plus_one, 31)) & 0xFFFFFFFF
    shifted_sum_minus_one = wrap_int32(shifted - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def saturating_add_non_gemmlowp(a, b) -> np.ndarray:
    """int32 addition saturating to the int32 range."""
    return np.clip(_i64(a) + _i64(b), INT32_MIN, INT32_MAX)


def saturating_sub(a, b) -> np.ndarray:
    """int32 subtraction saturating to the int32 range."""
    return np.clip(_i64(a) - _i64(b), INT32_MIN, INT32_MAX)


# ---------------------------------------------------------------------------
# log (LOG_SOFTMAX)
# ---------------------------------------------------------------------------
_LOG_2 = 1488522236
_SQRT_SQRT_HALF = 1805811301
_SQRT_HALF = 1518500250
_ONE_QUARTER = 536870912
_ALPHA_N = 117049297
_ALPHA_D = 127690142
_ALPHA_I = 1057819769
_ALPHA_F = 638450708


def log_x_for_x_greater_than_or_equal_to_1(input_val, input_integer_bits: int,
                                           output_integer_bits: int) -> np.ndarray:
    """``log_x_for_x_greater_than_or_equal_to_1_impl`` (common.h): natural log of a
    FixedPoint<int32, input_integer_bits> ``x >= 1``, as FixedPoint<int32, output_integer_bits>.

    Splits x = 2^z * r with r in [sqrt(1/2), sqrt(2)) (two candidate normalisations,
    the better one chosen by min/max), evaluates log(r) with a rational approximation
    whose denominator uses :func:`one_over_one_plus_x_for_x_in_0_1`, and adds
    z * log(2), accumulating with one extra integer bit.
    """
    accum_bits = output_integer_bits + 1
    shifted_quarter = rescale(_ONE_QUARTER, 0, accum_bits)
    z_a = _i64(input_val)
    z_a_headroom_plus_1 = count_leading_zeros_u32(z_a)
    r_a_tmp = saturating_rounding_multiply_by_pot_param(z_a, z_a_headroom_plus_1 - 1)
    r_a_raw = saturating_rounding_multiply_by_pot_param(srdhm(r_a_tmp, _SQRT_HALF), 1)
    z_a_pow_2_adj = saturating_add_non_gemmlowp(
        saturating_rounding_multiply_by_pot_param(
            wrap_int32(input_integer_bits - z_a_headroom_plus_1), 31 - accum_bits),
        shifted_quarter)
    z_b = srdhm(z_a, _SQRT_HALF)
    z_b_headroom = count_leading_zeros_u32(z_b) - 1
    r_b_raw = saturating_rounding_multiply_by_pot_param(z_a, z_b_headroom)
    z_b_pow_2_adj = saturating_sub(
        saturating_rounding_multiply_by_pot_param(
            wrap_int32(input_integer_bits - z_b_headroom), 31 - accum_bits),
        shifted_quarter)
    r = np.minimum(r_a_raw, r_b_raw)
    z_pow_2_adj = np.maximum(z_a_pow_2_adj, z_b_pow_2_adj)

    p = rounding_half_sum(r, _SQRT_SQRT_HALF)
    q = sub(r, _SQRT_SQRT_HALF)
    q = add(q, q)
    common_sq = srdhm(q, q)
    num = add(srdhm(q, r), srdhm(srdhm(q, common_sq), _ALPHA_N))
    denom_minus_one_0 = add(
        srdhm(p, add(add(_ALPHA_I, q), srdhm(_ALPHA_D, common_sq))), srdhm(_ALPHA_F, q))
    recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0)
    num_scaled = rescale(num, 0, accum_bits)
    total = add(srdhm(z_pow_2_adj, _LOG_2), srdhm(num_scaled, recip_denom))
    return rescale(total, accum_bits, output_integer_bits)


# ---------------------------------------------------------------------------
# inverse square root (RSQRT int8)
# ---------------------------------------------------------------------------
def get_inv_sqrt_quantized_multiplier_exp(value: int, reverse_shift: int) -> tuple[int, int]:
    """``GetInvSqrtQuantizedMultiplierExp`` (common.h) for one positive int32 ``value``:
    (multiplier, shift) with ``multiplier * 2^shift ~ 1/sqrt(value)`` (scalar).

    Values <= 1 give (INT32_MAX, 0). Otherwise the input is normalised by pairs of
    bits into [2^27, 2^29), five Newton-Raphson steps ``x = 1.5x - (v/2) x^3`` run in
    Q3.28, the result is multiplied by sqrt(2)/2, and the shift (a right shift) is
    multiplied by ``reverse_shift`` (-1 turns it into a left shift).
    """
    value = int(value)
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    max_left_shift_bits = int(count_leading_zeros_u32(value)) - 1
    left_shift_bit_pairs = max_left_shift_bits // 2 - 1
    shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs
    fixedpoint_input = value >> 1                       # F3
    fixedpoint_half_input = int(rdbpot(fixedpoint_input, 1))
    half_three = (1 << 28) + (1 << 27)                  # 1.5 in F3
    x = one(3)
    for _ in range(5):
        x3 = int(rescale(srdhm(srdhm(x, x), x), 9, 3))
        x = int(rescale(sub(srdhm(half_three, x), srdhm(fixedpoint_half_input, x3)), 6, 3))
    x = int(srdhm(x, 1518500250))                       # * sqrt(2)/2 (F0)
    if shift < 0:
        x = int(wrap_int32(x << -shift))
        shift = 0
    return x, shift * reverse_shift


# ---------------------------------------------------------------------------
# 16-bit helpers (HARD_SWISH)
# ---------------------------------------------------------------------------
def wrap_int16(x) -> np.ndarray:
    """``static_cast<int16_t>`` of an int: two's-complement wrap."""
    return ((_i64(x) + 2**15) & 0xFFFF) - 2**15


def srdhm16(a, b) -> np.ndarray:
    """int16 ``SaturatingRoundingDoublingHighMul``: ``(a*b + nudge) / 2^15`` truncated,
    nudge 2^14 (or 1 - 2^14 for negative products); (-2^15)^2 saturates to 32767."""
    a = _i64(a)
    b = _i64(b)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, wrap_int16(q))


def saturating_doubling_high_mul16(a, b) -> np.ndarray:
    """``SaturatingDoublingHighMul`` of reference/hard_swish.h (ARM SQDMULH): the int16
    doubling high product truncated toward zero, ``(a*b) / 2^15``; no rounding nudge."""
    a = _i64(a)
    b = _i64(b)
    ab = a * b
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, wrap_int16(q))


def rdbpot16(x, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT<int16_t>``, every step in int16 as the template does.

    ``mask = int16(2^exponent - 1)`` (wraps to -1 for exponents >= 16), remainder
    ``x & mask``, threshold ``(mask >> 1) + (x < 0)``; result
    ``(x >> exponent) + (remainder > threshold)``.
    """
    x = _i64(x)
    e = int(exponent)
    mask = int(wrap_int16((1 << e) - 1))
    remainder = wrap_int16(x & mask)
    threshold = wrap_int16((mask >> 1) + (x < 0))
    return wrap_int16((x >> e) + (remainder > threshold))


def saturating_left_shift16(x, amount: int) -> np.ndarray:
    """``SaturatingLeftShift`` of reference/hard_swish.h: ``x * 2^amount`` clamped to int16."""
    return np.clip(_i64(x) * (1 << int(amount)), INT16_MIN, INT16_MAX)
