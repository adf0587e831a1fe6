"""Unit tests of runtime/ops/_gemmlowp_fixedpoint.py: accuracy against float math and
the exact special values of gemmlowp's fixed-point functions.

exp, the reciprocal and log are also covered bit for bit by the SOFTMAX/LOG_SOFTMAX
differential tests, the inverse square root by RSQRT int8; ``tanh`` and ``logistic``
(used by no LiteRT reference kernel quantcore mirrors yet) only here."""
from __future__ import annotations

import numpy as np
import pytest

from quantcore.runtime.ops import _gemmlowp_fixedpoint as G

RNG = np.random.default_rng(20261123)


def test_exp_on_negative_values_accuracy_and_special_values():
    for bits in (0, 4, 5, 6):
        a = -RNG.integers(0, 2**31, 5000)
        got = G.exp_on_negative_values(a, bits) / 2**31
        want = np.exp(a / 2.0 ** (31 - bits))
        if bits > 5:
            want = np.where(a / 2.0 ** (31 - bits) < -32, 0.0, want)
        assert np.max(np.abs(got - want)) < 5e-7
        assert int(G.exp_on_negative_values(0, bits)) == 2**31 - 1  # One()


def test_reciprocal_functions_accuracy():
    a = RNG.integers(0, 2**31, 5000)
    x = a / 2**31
    assert np.max(np.abs(G.one_over_one_plus_x_for_x_in_0_1(a) / 2**31 - 1 / (1 + x))) < 1e-8
    assert np.max(np.abs(G.one_minus_x_over_one_plus_x_for_x_in_0_1(a) / 2**31
                         - (1 - x) / (1 + x))) < 2e-8
    s = RNG.integers(1, 2**31, 2000)
    scale, bits_over_unit = G.get_reciprocal(s, 12)
    value = s / 2**19
    assert np.max(np.abs(scale / 2**31 * 2.0 ** -bits_over_unit.astype(float) * value - 1)) < 1e-8


def test_tanh_logistic_accuracy_and_special_values():
    a = RNG.integers(-(2**31), 2**31, 5000)
    real = a / 2**27
    assert np.max(np.abs(G.tanh(a, 4) / 2**31 - np.tanh(real))) < 5e-7
    assert np.max(np.abs(G.logistic(a, 4) / 2**31 - 1 / (1 + np.exp(-real)))) < 5e-7
    assert int(G.tanh(0, 4)) == 0 and int(G.logistic(0, 4)) == 2**30


def test_log_accuracy():
    x = RNG.integers(2**19, 2**31, 5000)   # Q12.19 values >= 1
    got = G.log_x_for_x_greater_than_or_equal_to_1(x, 12, 5) / 2**26
    assert np.max(np.abs(got - np.log(x / 2**19))) < 1e-7


@pytest.mark.parametrize("value", [2, 3, 7, 100, 255, 2**20 + 1, 2**29, 2**31 - 1])
def test_inv_sqrt_accuracy(value):
    m, shift = G.get_inv_sqrt_quantized_multiplier_exp(value, -1)
    assert abs(m / 2**31 * 2.0**shift * np.sqrt(value) - 1) < 2e-6
    assert G.get_inv_sqrt_quantized_multiplier_exp(1, -1) == (2**31 - 1, 0)


def test_int32_wrapping_and_saturation():
    assert int(G.add(2**31 - 1, 1)) == -(2**31)
    assert int(G.neg(-(2**31))) == -(2**31)
    assert int(G.saturating_shift_left(2**28, 3)) == 2**31 - 1
    assert int(G.saturating_shift_left(-(2**28), 3)) == -(2**31)
    assert int(G.saturating_shift_left(-(2**27), 3)) == -(2**30)
    assert G.rounding_half_sum(np.array([3, -3]), np.array([0, 0])).tolist() == [2, -2]
    assert G.count_leading_zeros_u32(np.array([0, 1, 2**31 - 1, -1, 2**16])).tolist() == [32, 31, 1, 0, 15]
    assert G.saturating_rounding_multiply_by_pot_param(np.array([5, 5, 2**30]), np.array([0, 2, 1])).tolist() \
        == [5, 20, 2**31 - 1]


def test_int16_helpers():
    # rounding doubling high product: ties toward +inf (nudge), -1 * -1 saturates
    assert int(G.srdhm16(-32768, -32768)) == 32767
    assert int(G.srdhm16(16384, 1)) == 1 and int(G.srdhm16(-16384, 1)) == 0
    # the non-rounding one truncates toward zero
    assert int(G.saturating_doubling_high_mul16(16384, 3)) == 1
    assert int(G.saturating_doubling_high_mul16(-16384, 3)) == -1
    assert int(G.saturating_doubling_high_mul16(-32768, -32768)) == 32767
    # RoundingDivideByPOT in int16: ties away from zero, like the int32 one for small exponents
    x = np.arange(-32768, 32768, 7)
    for e in (1, 3, 8, 14):
        want = np.sign(x) * np.floor(np.abs(x) / 2**e + 0.5)
        np.testing.assert_array_equal(G.rdbpot16(x, e), want.astype(np.int64))
    assert G.saturating_left_shift16(np.array([20000, -20000, 3]), 1).tolist() == [32767, -32768, 6]
    assert G.wrap_int16(np.array([32768, -32769])).tolist() == [-32768, 32767]
