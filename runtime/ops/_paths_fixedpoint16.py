"""gemmlowp's fixed-point ``tanh`` and ``logistic`` on int16 raw values, as LiteRT's
optimized int16 TANH / LOGISTIC run them for power-of-two input scales.

``tflite/kernels/activations.cc`` (TanhEval / SigmoidEval, int16): the optimized
resolver calls ``optimized_ops::Tanh(TanhParams, int16)`` / ``optimized_ops::Logistic
(LogisticParams, int16)`` when ``input_multiplier == 0``, i.e. when the input scale is
2^-12 (either op) or 2^-11 (TANH, which first doubles the input with
``SaturatingRoundingMultiplyByPOT<1>``); every other int16 input uses the reference
table kernel on every path. On x86 neither ``GEMMLOWP_NEON`` nor the SSE4 branch
computes anything different from the scalar loop::

    TANH:     out = gemmlowp::tanh(FixedPoint<int16, 3>(x or 2x saturated)).raw()
    LOGISTIC: out = gemmlowp::logistic(FixedPoint<int16, 3>(x)).raw()

google/gemmlowp ``fixedpoint/fixedpoint.h`` with ``tRawType = int16_t``: int16
``SaturatingRoundingDoublingHighMul`` (``(a*b + (ab >= 0 ? 2^14 : 1 - 2^14)) / 2^15``),
int16 wrapping ``+``/``-``, ``AddSaturatingIf16Bit`` = saturating add, int32 constants
rescaled to 16 bits by ``RoundingDivideByPOT<int32>(c, 16)``
(``RescaleConstantInitializer``), ``One()`` of 0 integer bits = 32767.
"""
from __future__ import annotations

import numpy as np

from quantcore.fixedpoint import rounding_divide_by_pot


def _w16(x) -> np.ndarray:
    x = np.asarray(x, np.int64)
    return ((x + 2**15) & 0xFFFF) - 2**15


def _add(a, b):
    return _w16(np.asarray(a, np.int64) + b)


def _sub(a, b):
    return _w16(np.asarray(a, np.int64) - b)


def _neg(a):
    return _w16(-np.asarray(a, np.int64))


def _sat_add(a, b):
    return np.clip(np.asarray(a, np.int64) + b, -32768, 32767)


def _srdhm(a, b):
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, _w16(q))


def _rdbpot(x, e: int):
    return _w16(rounding_divide_by_pot(np.asarray(x, np.int64), e))


def _sat_shift_left(x, e: int):
    x = np.asarray(x, np.int64)
    t = (1 << (15 - e)) - 1
    return np.where(x > t, 32767, np.where(x < -t, -32768, _w16(x << e)))


def _rescale(x, src: int, dst: int):
    e = src - dst
    if e > 0:
        return _sat_shift_left(x, e)
    if e < 0:
        return _rdbpot(x, -e)
    return np.asarray(x, np.int64)


def _c(v32: int) -> int:
    """``RescaleConstantInitializer<int16>``: an int32 constant rounded to 16 bits."""
    return int(rounding_divide_by_pot(np.int64(v32), 16))


def _pot(integer_bits: int, exponent: int) -> int:
    return 1 << (15 - integer_bits + exponent)


def _one(integer_bits: int) -> int:
    return 32767 if integer_bits == 0 else 1 << (15 - integer_bits)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def _exp_on_interval(a):
    constant_term = _c(1895147668)
    one_third = _c(715827883)
    x = _add(a, _pot(0, -3))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_add(_srdhm(_add(x4_over_4, x3), one_third), x2), 1)
    return _sat_add(constant_term, _srdhm(constant_term, _add(x, poly)))


def exp_on_negative_values(a, integer_bits: int):
    a = np.asarray(a, np.int64)
    frac = 15 - integer_bits
    quarter = _pot(integer_bits, -2)
    amq = _sub(a & (quarter - 1), quarter)
    result = _exp_on_interval(_rescale(amq, integer_bits, 0))
    remainder = _sub(amq, a)
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac + exponent)
            result = np.where((remainder & bit) != 0, _srdhm(result, _c(multiplier)), result)
    if integer_bits > 5:
        result = np.where(a < _c(-(1 << (36 - integer_bits))), 0, result)
    return np.where(a == 0, _one(0), result)


def _rounding_half_sum(a, b):
    """``RoundingHalfSum<int16>``: ``(a + b + sign) / 2`` in int32, C truncating division."""
    t = np.asarray(a, np.int64) + b
    t = t + np.where(t >= 0, 1, -1)
    return _w16(np.where(t >= 0, t // 2, -((-t) // 2)))


def _newton(a):
    """Newton-Raphson reciprocal of the half denominator (1 + a) / 2, Q2.13, 3 steps."""
    half_denominator = _rounding_half_sum(a, _one(0))
    x = _add(_c(1515870810), _srdhm(half_denominator, _c(-1010580540)))
    for _ in range(3):
        one_minus = _sub(_one(2), _srdhm(half_denominator, x))
        x = _add(x, _rescale(_srdhm(x, one_minus), 4, 2))
    return x


def tanh(a, integer_bits: int):
    """``gemmlowp::tanh`` of FixedPoint<int16, integer_bits> raw values; Q0.15 result."""
    a = np.asarray(a, np.int64)
    negative = a < 0
    n = np.where(negative, a, _neg(a))
    t = _rescale(_sub(_newton(exp_on_negative_values(n, integer_bits + 1)), _one(2)), 2, 0)
    return np.where(a == 0, 0, np.where(negative, _neg(t), t))


def logistic(a, integer_bits: int):
    """``gemmlowp::logistic`` of FixedPoint<int16, integer_bits> raw values; Q0.15 result."""
    a = np.asarray(a, np.int64)
    positive = a > 0
    abs_input = np.where(positive, a, _neg(a))
    result_if_positive = _rescale(_newton(exp_on_negative_values(_neg(abs_input), integer_bits)), 1, 0)
    result_if_negative = _sub(_one(0), result_if_positive)
    return np.where(a == 0, _c(1 << 30), np.where(positive, result_if_positive, result_if_negative))


def optimized_tanh_int16(x: np.ndarray, input_left_shift: int) -> np.ndarray:
    v = np.asarray(x, np.int64)
    if input_left_shift == 1:
        v = _sat_shift_left(v, 1)
    return tanh(v, 3).astype(np.int16)


def optimized_logistic_int16(x: np.ndarray) -> np.ndarray:
    return logistic(np.asarray(x, np.int64), 3).astype(np.int16)
