"""Unit and property tests of :mod:`quantcore.fixedpoint` against pure-Python references.

Every reference here is written with Python integers and :class:`fractions.Fraction`
straight from the definitions (gemmlowp ``fixedpoint/fixedpoint.h``; LiteRT
``tflite/kernels/internal/quantization_util.cc``, ``common.{h,cc}``,
``kernel_util.cc``); none calls the code under test. Equation numbers refer to
docs/quantization.md.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantcore.errors import InputError
from quantcore.fixedpoint import (INT32_MAX, INT32_MIN, activation_range, float_to_int32_x86,
                                  multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_greater_than_one,
                                  multiply_by_quantized_multiplier_int64,
                                  multiply_by_quantized_multiplier_smaller_than_one_exp,
                                  quantize_multiplier, quantize_multiplier_array,
                                  quantize_multiplier_greater_than_one,
                                  quantize_multiplier_smaller_than_one_exp, round_half_away,
                                  round_half_even, rounding_divide_by_pot,
                                  rounding_divide_by_pot_ties_up,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

SLOW = os.environ.get("QUANTCORE_SLOW") == "1"


def examples(n: int) -> settings:
    return settings(max_examples=n * 20 if SLOW else n, deadline=None, derandomize=not SLOW,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------
# pure-Python references
# ---------------------------------------------------------------------------
HALF = Fraction(1, 2)


def ref_round_half_away(x: Fraction) -> int:
    """Nearest integer, ties away from zero (C ``round``), exactly."""
    n = math.floor(abs(x) + HALF)
    return n if x >= 0 else -n


def ref_round_half_up(x: Fraction) -> int:
    """Nearest integer, ties toward +inf, exactly."""
    return math.floor(x + HALF)


def ref_wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def ref_c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero); b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier from its definition: real = q * 2^e with |q| in [0.5, 1),
    M0 = round_away(q * 2^31); M0 == 2^31 -> (2^30, e + 1); e < -31 -> (0, 0)."""
    if real == 0.0:
        return 0, 0
    r = Fraction(real)
    mag = abs(r)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    while mag >= Fraction(2) ** e:
        e += 1
    while mag < Fraction(2) ** (e - 1):
        e -= 1
    q_fixed = ref_round_half_away(r / Fraction(2) ** e * 2**31)
    if q_fixed == 2**31:
        q_fixed, e = 2**30, e + 1
    if e < -31:
        return 0, 0
    return q_fixed, e


def ref_srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, as written there."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = 2**30 if ab >= 0 else 1 - 2**30
    return ref_c_div(ab + nudge, 2**31)


def ref_rdbpot(x: int, e: int) -> int:
    """RoundingDivideByPOT as its contract: x / 2^e rounded half away from zero."""
    return ref_round_half_away(Fraction(x, 2**e))


def ref_mbqm_double(x: int, m: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier, double rounding. ``x * (1 << left)`` wraps in int32 and
    x86 takes the shift count mod 32 (C++ UB for left >= 32)."""
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(ref_wrap32(x * (1 << (left % 32))), m), right)


def ref_mbqm_single(x: int, m: int, shift: int) -> int:
    """TFLITE_SINGLE_ROUNDING: x * M0 / 2^(31 - shift), one rounding, ties up."""
    return ref_round_half_up(Fraction(x * m, 2 ** (31 - shift)))


def ref_mbqm64(x: int, m: int, shift: int) -> int:
    """The int64-input MultiplyByQuantizedMultiplier: 16-bit multiplier, one rounding, ties up,
    cast to int32."""
    m16 = (m + 2**15) >> 16 if m < 0x7FFF0000 else 0x7FFF
    return ref_wrap32(ref_round_half_up(Fraction(x * m16, 2 ** (15 - shift))))


def ref_activation_range(act: int, scale: float, zp: int, qmin: int, qmax: int) -> tuple[int, int]:
    def q(f: float) -> int:
        v = np.float32(f) / np.float32(scale)          # float32 division, as the C++
        return zp + ref_round_half_away(Fraction(float(v)))
    return {0: (qmin, qmax), 1: (max(qmin, q(0.0)), qmax),
            2: (max(qmin, q(-1.0)), min(qmax, q(1.0))),
            3: (max(qmin, q(0.0)), min(qmax, q(6.0)))}[act]


int32s = st.integers(INT32_MIN, INT32_MAX)
multipliers = st.integers(2**30, 2**31 - 1)          # a normalized M0
shifts = st.integers(-31, 30)


def _arr(values) -> np.ndarray:
    return np.array(values, np.int64)


# ---------------------------------------------------------------------------
# QuantizeMultiplier (eq. 6)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("real,expected", [
    (1.0, (2**30, 1)),
    (0.5, (2**30, 0)),
    (0.75, (3 * 2**29, 0)),
    (3.0, (3 * 2**29, 2)),
    (1 - 2.0**-40, (2**30, 1)),        # rounds up to 2^31: halved, shift + 1
    (0.5 - 2.0**-45, (2**30, 0)),      # same, from the bottom of a binade
    (2.0**-32, (2**30, -31)),          # smallest shift kept
    (2.0**-33, (0, 0)),                # shift -32 < -31: flushed
    (1e-12, (0, 0)),
    (0.0, (0, 0)),
    (-0.0, (0, 0)),
    (-0.75, (-3 * 2**29, 0)),          # negative: negative M0
    (-(1 - 2.0**-40), (INT32_MIN, 0)),  # -2^31 fits int32: not halved (only +2^31 is)
    (2.0**31, (2**30, 32)),            # a shift no kernel can apply without UB
    (1234.5678, None),
])
def test_quantize_multiplier_edge_cases(real, expected):
    """eq. 6 on edge cases, against the pure-Python reference (and the literal value)."""
    got = quantize_multiplier(real)
    assert got == ref_quantize_multiplier(real)
    if expected is not None:
        assert got == expected
    assert all(type(v) is int for v in got)


@examples(1500)
@given(real=st.floats(2.0**-45, 2.0**40, allow_subnormal=False))
def test_quantize_multiplier_matches_reference(real):
    """eq. 6: M0 in [2^30, 2^31) and |M0 * 2^(shift-31) - real| <= 2^(shift-32), equal to the reference."""
    m, shift = quantize_multiplier(real)
    assert (m, shift) == ref_quantize_multiplier(real)
    m_neg, shift_neg = quantize_multiplier(-real)
    assert (m_neg, shift_neg) == ref_quantize_multiplier(-real)
    if (m, shift) != (0, 0):
        assert 2**30 <= m < 2**31
        err = abs(Fraction(m) * Fraction(2) ** (shift - 31) - Fraction(real))
        assert err <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_single_rounding_clamps_large_shifts():
    """With TFLITE_SINGLE_ROUNDING a shift above 30 saturates to (2^31 - 1, 30)."""
    assert quantize_multiplier(2.0**31, single_rounding=True) == (2**31 - 1, 30)
    assert quantize_multiplier(2.0**29, single_rounding=True) == (2**30, 30)
    assert quantize_multiplier(0.3, single_rounding=True) == quantize_multiplier(0.3)


def test_quantize_multiplier_refuses_non_finite():
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def test_quantize_multiplier_range_variants():
    """QuantizeMultiplierSmallerThanOneExp needs 0 < M < 1 (shift <= 0);
    QuantizeMultiplierGreaterThanOne needs M > 1 (shift >= 0)."""
    m, s = quantize_multiplier_smaller_than_one_exp(0.3)
    assert (m, s) == ref_quantize_multiplier(0.3) and s <= 0
    m, s = quantize_multiplier_greater_than_one(5.5)
    assert (m, s) == ref_quantize_multiplier(5.5) and s >= 0
    for bad in (0.0, 1.0, 1.5, -0.5):
        with pytest.raises(ValueError):
            quantize_multiplier_smaller_than_one_exp(bad)
    for bad in (1.0, 0.5, -2.0):
        with pytest.raises(ValueError):
            quantize_multiplier_greater_than_one(bad)


def test_quantize_multiplier_array_is_elementwise():
    reals = np.array([0.0, 1e-12, 0.3, 1 - 2.0**-40, 7.25, 123.456])
    m, s = quantize_multiplier_array(reals)
    assert m.dtype == s.dtype == np.int64
    assert list(zip(m.tolist(), s.tolist())) == [ref_quantize_multiplier(float(r)) for r in reals]


# ---------------------------------------------------------------------------
# SaturatingRoundingDoublingHighMul (eq. 7)
# ---------------------------------------------------------------------------
def test_srdhm_saturates_its_single_overflow_case():
    """INT32_MIN * INT32_MIN is the one product whose doubled high half overflows: INT32_MAX."""
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN)) == INT32_MAX
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX)) == ref_srdhm(INT32_MIN, INT32_MAX)
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, -INT32_MAX)) == INT32_MAX  # 2^31 - 1, exact
    assert int(saturating_rounding_doubling_high_mul(INT32_MAX, INT32_MAX)) == INT32_MAX - 1


def test_srdhm_ties_go_toward_plus_infinity():
    """gemmlowp's negative nudge is 1 - 2^30, one short of a half: 2.5 -> 3 but -2.5 -> -2."""
    half = 2**30  # b = 2^30 makes the result a * 2^30 / 2^31 = a / 2
    got = saturating_rounding_doubling_high_mul(_arr([5, -5, 3, -3, 1, -1]), half)
    np.testing.assert_array_equal(got, [3, -2, 2, -1, 1, 0])


@examples(500)
@given(a=st.lists(int32s, min_size=1, max_size=64), b=int32s)
def test_srdhm_matches_gemmlowp_definition(a, b):
    """eq. 7 vs gemmlowp's definition, and vs its closed form floor(a*b / 2^31 + 1/2)."""
    got = saturating_rounding_doubling_high_mul(_arr(a), b)
    want = [ref_srdhm(x, b) for x in a]
    np.testing.assert_array_equal(got, want, err_msg=f"b={b}")
    for x, w in zip(a, want):
        if not x == b == INT32_MIN:
            assert w == ref_round_half_up(Fraction(x * b, 2**31))
            assert INT32_MIN <= w <= INT32_MAX


# ---------------------------------------------------------------------------
# RoundingDivideByPOT (eq. 8)
# ---------------------------------------------------------------------------
def test_rdbpot_ties_away_from_zero():
    x = _arr([5, -5, 6, -6, 7, -7, 1, -1, 3, -3])
    np.testing.assert_array_equal(rounding_divide_by_pot(x, 1), [3, -3, 3, -3, 4, -4, 1, -1, 2, -2])
    np.testing.assert_array_equal(rounding_divide_by_pot(_arr([2, -2, 6, -6, 10, -10]), 2),
                                  [1, -1, 2, -2, 3, -3])


def test_rdbpot_exponent_0_and_31():
    x = _arr([INT32_MIN, -(2**30), -(2**30) - 1, -1, 0, 1, 2**30 - 1, 2**30, INT32_MAX])
    np.testing.assert_array_equal(rounding_divide_by_pot(x, 0), x)
    np.testing.assert_array_equal(rounding_divide_by_pot(x, 31), [ref_rdbpot(int(v), 31) for v in x])
    np.testing.assert_array_equal(rounding_divide_by_pot(x, 31), [-1, -1, -1, 0, 0, 0, 0, 1, 1])


@examples(500)
@given(x=st.lists(int32s, min_size=1, max_size=64), e=st.integers(0, 31))
def test_rdbpot_matches_reference(x, e):
    """eq. 8: x / 2^e rounded half away from zero, for every int32 x and exponent in [0, 31]."""
    np.testing.assert_array_equal(rounding_divide_by_pot(_arr(x), e), [ref_rdbpot(v, e) for v in x])
    # a per-element exponent array broadcasts
    np.testing.assert_array_equal(rounding_divide_by_pot(_arr(x), _arr([e] * len(x))),
                                  [ref_rdbpot(v, e) for v in x])


@examples(300)
@given(x=st.lists(int32s, min_size=1, max_size=64), e=st.integers(0, 31))
def test_rounding_shift_ties_up_matches_reference(x, e):
    """ARM vrshl-style rounding shift: x / 2^e, ties toward +inf."""
    np.testing.assert_array_equal(rounding_divide_by_pot_ties_up(_arr(x), e),
                                  [ref_round_half_up(Fraction(v, 2**e)) for v in x])


# ---------------------------------------------------------------------------
# MultiplyByQuantizedMultiplier (eq. 9, 10)
# ---------------------------------------------------------------------------
@examples(600)
@given(x=st.lists(int32s, min_size=1, max_size=32), m=multipliers, shift=shifts)
def test_mbqm_double_rounding_matches_reference(x, m, shift):
    """eq. 9, default build: RDBPOT(SRDHM(x * 2^left, M0), right) with the int32 wrap of x * 2^left."""
    got = multiply_by_quantized_multiplier(_arr(x), m, shift)
    np.testing.assert_array_equal(got, [ref_mbqm_double(v, m, shift) for v in x],
                                  err_msg=f"M0={m} shift={shift}")


@examples(600)
@given(x=st.lists(int32s, min_size=1, max_size=32), m=multipliers, shift=st.integers(-31, 0))
def test_mbqm_single_rounding_matches_reference(x, m, shift):
    """eq. 9, TFLITE_SINGLE_ROUNDING: (x * M0 + 2^(30 - shift)) >> (31 - shift)."""
    got = multiply_by_quantized_multiplier(_arr(x), m, shift, rounding="single")
    np.testing.assert_array_equal(got, [ref_mbqm_single(v, m, shift) for v in x])


@st.composite
def mbqm_cases(draw):
    """(x, M0, shift) with x * 2^max(shift, 0) inside int32 (no wrap in the double path);
    half of them exact ties: with M0 = c * 2^t (c odd), right = -shift <= t and
    x = y * 2^(30 + right - t) (y odd), x * M0 / 2^(31 + right) = y * c / 2 is a half-integer."""
    if draw(st.booleans()):
        right = draw(st.integers(1, 30))
        t = draw(st.integers(right, 30))
        c = draw(st.integers(2 ** (29 - t), 2 ** (30 - t) - 1)) * 2 + 1 if t < 30 else 1
        p = 30 + right - t
        y = draw(st.integers(-(2 ** (30 - p)), 2 ** (30 - p) - 1)) * 2 + 1
        return y * 2**p, c * 2**t, -right
    m = draw(multipliers)
    shift = draw(st.integers(-31, 12))
    bound = 2 ** (31 - max(shift, 0))
    return draw(st.integers(-bound, bound - 1)), m, shift


@examples(1500)
@given(case=mbqm_cases())
def test_mbqm_double_vs_single_rounding(case):
    """eq. 9: the two builds differ by at most 1; they agree whenever the exact value
    v = x * M0 * 2^shift / 2^31 is farther than 2^-(right+1) from a half-integer (the first
    rounding of the double path then cannot cross a rounding boundary); on exact ties
    (right >= 1) positive values agree and negative ones differ by exactly 1 (double rounds
    away from zero, single toward +inf)."""
    x, m, shift = case
    double = int(multiply_by_quantized_multiplier(x, m, shift))
    single = int(multiply_by_quantized_multiplier(x, m, shift, rounding="single"))
    assert double == ref_mbqm_double(x, m, shift)
    assert single == ref_mbqm_single(x, m, shift)
    assert abs(double - single) <= 1
    right = max(-shift, 0)
    v = Fraction(x * m * 2 ** max(shift, 0), 2 ** (31 + right))
    dist = abs(v - math.floor(v) - HALF)   # distance to the nearest half-integer
    if dist > Fraction(1, 2 ** (right + 1)):
        assert double == single == ref_round_half_away(v)
    if dist == 0 and right >= 1:
        assert single == ref_round_half_up(v)
        assert double == ref_round_half_away(v)
        assert double == single - (1 if v < 0 else 0)


def test_mbqm_double_vs_single_on_constructed_ties():
    """M0 = 2^30, shift = -1 multiplies by exactly 1/4: x = +-2, +-6, +-10 are ties (negative
    ones differ). x = 1 shows the cost of rounding twice: 0.25 -> SRDHM 0.5 -> 1 -> RDBPOT 0.5
    -> 1, an error of 0.75 LSB, where single rounding gives 0."""
    x = _arr([2, 6, 10, -2, -6, -10, 1, -1, 3, -3])
    double = multiply_by_quantized_multiplier(x, 2**30, -1)
    single = multiply_by_quantized_multiplier(x, 2**30, -1, rounding="single")
    np.testing.assert_array_equal(double, [1, 2, 3, -1, -2, -3, 1, 0, 1, -1])
    np.testing.assert_array_equal(single, [1, 2, 3, 0, -1, -2, 0, 0, 1, -1])


def test_mbqm_left_shift_wraps_in_int32_and_masks_shift_count():
    """x * 2^left wraps in int32 before SRDHM; shifts >= 32 act mod 32 (x86; LiteRT measured in
    test_numerics.py)."""
    m = 2**30  # SRDHM(y, 2^30) = y / 2 rounded
    np.testing.assert_array_equal(multiply_by_quantized_multiplier(_arr([2**30, 3]), m, 2),
                                  [ref_mbqm_double(2**30, m, 2), ref_mbqm_double(3, m, 2)])
    assert int(multiply_by_quantized_multiplier(2**30, m, 2)) == 0      # 2^32 wraps to 0
    assert int(multiply_by_quantized_multiplier(5, m, 32)) == 3         # 1 << 32 acts as 1 << 0
    assert int(multiply_by_quantized_multiplier(5, m, 33)) == 5


def test_mbqm_per_channel_broadcast():
    x = np.arange(-50, 50, dtype=np.int64).reshape(25, 4)
    m = _arr([2**30, 1518500250, 2**31 - 1, 1234567890])
    s = _arr([-1, 0, -7, 3])
    got = multiply_by_quantized_multiplier(x, m, s)
    want = [[ref_mbqm_double(int(v), int(m[c]), int(s[c])) for c, v in enumerate(row)] for row in x]
    np.testing.assert_array_equal(got, want)


def test_mbqm_rejects_unknown_rounding():
    with pytest.raises(ValueError):
        multiply_by_quantized_multiplier(1, 2**30, 0, rounding="twice")


@examples(300)
@given(x=st.lists(int32s, min_size=1, max_size=32), m=multipliers, shift=st.integers(-31, 0))
def test_mbqm_smaller_than_one_exp_equals_general(x, m, shift):
    """MultiplyByQuantizedMultiplierSmallerThanOneExp = RDBPOT(SRDHM(x, M0), -shift)."""
    np.testing.assert_array_equal(multiply_by_quantized_multiplier_smaller_than_one_exp(_arr(x), m, shift),
                                  [ref_mbqm_double(v, m, shift) for v in x])


@examples(300)
@given(x=st.lists(int32s, min_size=1, max_size=32), m=multipliers, shift=st.integers(0, 31))
def test_mbqm_greater_than_one_equals_general(x, m, shift):
    """MultiplyByQuantizedMultiplierGreaterThanOne = SRDHM(x * 2^shift, M0), x * 2^shift wrapping."""
    np.testing.assert_array_equal(multiply_by_quantized_multiplier_greater_than_one(_arr(x), m, shift),
                                  [ref_mbqm_double(v, m, shift) for v in x])


@examples(1000)
@given(x=st.lists(st.integers(-(2**47), 2**47 - 1), min_size=1, max_size=32),
       m=st.integers(0, 2**31 - 1), shift=st.integers(-31, 7))
def test_mbqm_int64_matches_reference(x, m, shift):
    """eq. 10: int64 accumulators (16x8): multiplier rounded to 16 bits ((M0 + 2^15) >> 16,
    0x7FFF from 0x7FFF0000), one rounding with ties up, result cast to int32."""
    got = multiply_by_quantized_multiplier_int64(_arr(x), m, shift)
    np.testing.assert_array_equal(got, [ref_mbqm64(v, m, shift) for v in x])


def test_mbqm_int64_edge_multipliers():
    x = _arr([-(2**47), -3, -1, 0, 1, 3, 2**47 - 1])
    for m in (0, 2**30, 0x7FFEFFFF, 0x7FFF0000, 2**31 - 1):
        for shift in (-31, -15, -1, 0, 7):
            np.testing.assert_array_equal(multiply_by_quantized_multiplier_int64(x, m, shift),
                                          [ref_mbqm64(int(v), m, shift) for v in x])
    # 0x7FFF0000 saturates the 16-bit multiplier at 0x7FFF instead of rounding up to 0x8000
    assert int(multiply_by_quantized_multiplier_int64(2**16, 0x7FFF0000, 0)) == 0x7FFF * 2


# ---------------------------------------------------------------------------
# rounding and casts
# ---------------------------------------------------------------------------
def test_round_half_away_matches_c_round():
    """C roundf semantics: 0.49999997f -> 0 (no floor(x + 0.5) trap), 2.5 -> 3, -2.5 -> -3."""
    x = np.float32([0.49999997, -0.49999997, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 8388609.0, -8388609.0,
                    4194304.5, 1e30, -1e30])
    want = np.float32([0, -0.0, 1, -1, 2, -2, 3, -3, 8388609.0, -8388609.0, 4194305.0, 1e30, -1e30])
    got = round_half_away(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert np.signbit(round_half_away(np.float32(-0.4)))     # C round(-0.4) is -0.0
    special = round_half_away(np.float64([np.inf, -np.inf, np.nan, -0.0]))
    assert special[0] == np.inf and special[1] == -np.inf and np.isnan(special[2]) and np.signbit(special[3])
    assert float(round_half_away(0.49999999999999994)) == 0.0   # float64: the same trap
    assert float(round_half_away(2.5)) == 3.0 and float(round_half_away(-2.5)) == -3.0


@examples(500)
@given(x=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_round_half_away_matches_reference_float32(x):
    got = round_half_away(np.float32(x))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.astype(np.float64), [ref_round_half_away(Fraction(v)) for v in x])


@examples(500)
@given(x=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_round_half_away_matches_reference_float64(x):
    got = round_half_away(np.float64(x))
    np.testing.assert_array_equal(got, [float(ref_round_half_away(Fraction(v))) for v in x])


def test_round_half_even_is_lrint():
    np.testing.assert_array_equal(round_half_even(np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])),
                                  [0, 2, 2, -0, -2, -2])


def test_float_to_int32_x86_truncates_and_gives_integer_indefinite():
    """cvttss2si: truncation toward zero; NaN and out-of-range values give INT32_MIN."""
    x = np.float64([-2.7, 2.7, -0.0, 2147483520.0, -(2.0**31), 2.0**31, -(2.0**31) - 1024.0,
                    np.inf, -np.inf, np.nan, 1e300])
    np.testing.assert_array_equal(float_to_int32_x86(x),
                                  [-2, 2, 0, 2147483520, INT32_MIN, INT32_MIN, INT32_MIN,
                                   INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN])


def test_wrap_int32():
    v = [0, 2**31, -(2**31) - 1, 2**32 + 5, -(2**33), INT32_MAX, INT32_MIN]
    np.testing.assert_array_equal(wrap_int32(_arr(v)), [ref_wrap32(x) for x in v])


# ---------------------------------------------------------------------------
# fused activation clamp (eq. 11)
# ---------------------------------------------------------------------------
def test_activation_range_known_cases():
    assert activation_range(0, 0.1, 3, -128, 127) == (-128, 127)            # NONE
    assert activation_range(1, 6 / 255, -128, -128, 127) == (-128, 127)    # RELU: Q(0) = zp
    assert activation_range(1, 0.05, 10, -128, 127) == (10, 127)
    assert activation_range(3, 6 / 255, -128, -128, 127) == (-128, 127)    # RELU6 spanning the range
    assert activation_range(3, 0.01, -100, -128, 127) == (-100, 127)       # Q(6) = 500 clamps
    assert activation_range(3, 0.1, -100, -128, 127) == (-100, -40)
    assert activation_range(2, 1 / 128, 0, -128, 127) == (-128, 127)       # RELU_N1_TO_1
    assert activation_range(2, 0.02, 0, -128, 127) == (-50, 50)
    assert activation_range(3, 6 / 32767, 0, -32768, 32767) == (0, 32767)  # int16
    assert activation_range(3, 0.08, 0, -128, 127) == (0, 75)              # 6 / 0.08 = 75
    assert activation_range(2, 0.4, 0, -128, 127) == (-3, 3)               # 2.5 -> 3: ties away
    with pytest.raises(ValueError):
        activation_range(4, 0.1, 0, -128, 127)                              # TANH has no clamp


def test_activation_range_refuses_int32_overflow_like_litert():
    """kernel_util.cc Quantize: a rounded bound beyond the int32 range is refused
    (no_integer_overflow_from_quantization)."""
    with pytest.raises(InputError):
        activation_range(3, 1e-10, 0, -128, 127)
    assert activation_range(1, 1e-10, 0, -128, 127) == (0, 127)             # Q(0) never overflows


@examples(1000)
@given(act=st.sampled_from([0, 1, 2, 3]),
       scale=st.floats(-4.0, 2.0).map(lambda e: float(np.float32(10.0**e))),
       dt=st.sampled_from([(-128, 127), (0, 255), (-32768, 32767)]), data=st.data())
def test_activation_range_matches_reference(act, scale, dt, data):
    qmin, qmax = dt
    zp = data.draw(st.integers(qmin, qmax))
    assert activation_range(act, scale, zp, qmin, qmax) == ref_activation_range(act, scale, zp, qmin, qmax)
