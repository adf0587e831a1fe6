"""The int16 fixed-point helpers of the integer LSTM, as LiteRT's x86 wheel runs them
(``tflite/kernels/internal/reference/portable_tensor_utils.cc``: ``PortableApplySigmoid``,
``PortableApplyTanh``, ``PortableCwiseMul``, ``PortableApplyLayerNorm``).

``PortableApplySigmoid``/``PortableApplyTanh`` call gemmlowp's generic ``logistic`` and
``tanh`` on ``FixedPoint<int16_t, I>`` (google/gemmlowp ``fixedpoint/fixedpoint.h``).
The algorithm is the int32 one of ``_gemmlowp_fixedpoint.py`` with every raw value an
int16: ``+``/``-``/unary ``-`` wrap to int16, the product is the int16
``SaturatingRoundingDoublingHighMul``, and each constant is the int32 constant
rounded by ``RoundingDivideByPOT(c, 16)`` (``RescaleConstantInitializer``). The
functions here take the raw-bit width ``B`` (16, or 32 to check against the int32
implementation) and work on int64 arrays.
"""
from __future__ import annotations

import numpy as np

from quantcore.fixedpoint import (multiply_by_quantized_multiplier, rounding_divide_by_pot,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._gemmlowp_fixedpoint import get_inv_sqrt_quantized_multiplier_exp, srdhm16, wrap_int16


def _i(x):
    return np.asarray(x, np.int64)


def _wrap(x, B):
    return wrap_int16(x) if B == 16 else wrap_int32(x)


def _lim(B):
    return -(1 << (B - 1)), (1 << (B - 1)) - 1


def _mul(a, b, B):
    return srdhm16(a, b) if B == 16 else saturating_rounding_doubling_high_mul(a, b)


def _const(v: int, B: int) -> int:
    """``RescaleConstantInitializer``: the int32 raw constant rounded to B bits."""
    return int(rounding_divide_by_pot(np.int64(v), 32 - B)) if B < 32 else v


def _rdbpot(x, e, B):
    # gemmlowp RoundingDivideByPOT on the raw type; for int16 the steps stay in int16
    # but for exponents < 15 the result equals the exact computation.
    return _wrap(rounding_divide_by_pot(_i(x), e), B)


def _srmpot(x, exponent: int, B: int):
    """``SaturatingRoundingMultiplyByPOT<exponent>`` on B-bit raw values."""
    x = _i(x)
    lo, hi = _lim(B)
    if exponent > 0:
        threshold = (1 << (B - 1 - exponent)) - 1
        return np.where(x > threshold, hi, np.where(x < -threshold, lo, _wrap(x << exponent, B)))
    if exponent < 0:
        return _rdbpot(x, -exponent, B)
    return x


def _rescale(x, src: int, dst: int, B: int):
    return _srmpot(x, src - dst, B)


def _one(ib: int, B: int) -> int:
    return (1 << (B - 1)) - 1 if ib == 0 else 1 << (B - 1 - ib)


def _pot(ib: int, exponent: int, B: int) -> int:
    return 1 << (B - 1 - ib + exponent)


def _half_sum(a, b, B):
    s = _i(a) + _i(b)
    t = s + np.where(s >= 0, 1, -1)
    return _wrap(np.where(t >= 0, t // 2, -((-t) // 2)), B)


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def _exp_quarter(a, B):
    """``exp_on_interval_between_negative_one_quarter_and_0_excl`` (F0 in, F0 out)."""
    c = _const(1895147668, B)
    third = _const(715827883, B)
    x = _wrap(a + _pot(0, -3, B), B)
    x2 = _mul(x, x, B)
    x3 = _mul(x2, x, B)
    x4 = _mul(x2, x2, B)
    x4_4 = _srmpot(x4, -2, B)
    poly = _srmpot(_wrap(_mul(_wrap(x4_4 + x3, B), third, B) + x2, B), -1, B)
    return _wrap(c + _mul(c, _wrap(x + poly, B), B), B)


def exp_on_negative_values(a, ib: int, B: int):
    a = _i(a)
    frac = B - 1 - ib
    quarter = _pot(ib, -2, B)
    mask = quarter - 1
    amq = _wrap((a & mask) - quarter, B)
    result = _exp_quarter(_rescale(amq, ib, 0, B), B)
    remainder = _wrap(amq - a, B)
    for exponent, mult in _EXP_BARREL:
        if ib > exponent:
            bit = np.int64(1) << (frac + exponent)
            result = np.where((remainder & bit) != 0, _mul(result, _const(mult, B), B), result)
    if ib > 5:
        clamp = _const(-(1 << (36 - ib)), B)
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, _one(0, B), result)


def _newton(a, B):
    half_den = _half_sum(a, _one(0, B), B)
    x = _wrap(_const(1515870810, B) + _mul(half_den, _const(-1010580540, B), B), B)
    for _ in range(3):
        hdx = _mul(half_den, x, B)
        one_minus = _wrap(_one(2, B) - hdx, B)
        x = _wrap(x + _rescale(_mul(x, one_minus, B), 4, 2, B), B)
    return x


def _one_over_one_plus_x(a, B):
    return _rescale(_newton(a, B), 1, 0, B)


def _one_minus_x_over_one_plus_x(a, B):
    return _rescale(_wrap(_newton(a, B) - _one(2, B), B), 2, 0, B)


def tanh_fp(a, ib: int, B: int = 16):
    """gemmlowp ``tanh`` of FixedPoint<intB, ib> raw ``a``; F0 raw result."""
    a = _i(a)
    neg = a < 0
    n = np.where(neg, a, _wrap(-a, B))
    t = _one_minus_x_over_one_plus_x(exp_on_negative_values(n, ib + 1, B), B)
    return np.where(a == 0, 0, np.where(neg, _wrap(-t, B), t))


def logistic_fp(a, ib: int, B: int = 16):
    """gemmlowp ``logistic`` of FixedPoint<intB, ib> raw ``a``; F0 raw result."""
    a = _i(a)
    pos = a > 0
    ab = np.where(pos, a, _wrap(-a, B))
    rp = _one_over_one_plus_x(exp_on_negative_values(_wrap(-ab, B), ib, B), B)
    rn = _wrap(_one(0, B) - rp, B)
    return np.where(a == 0, _pot(0, -1, B), np.where(pos, rp, rn))


def logistic16(x, integer_bits: int):
    """``PortableApplySigmoid``: Q(integer_bits) int16 in, Q0.15 int16 out."""
    return logistic_fp(x, integer_bits, 16)


def tanh16(x, integer_bits: int):
    """``PortableApplyTanh(integer_bits, ...)`` (0..6; other values leave the output
    untouched in LiteRT, which callers reject)."""
    return tanh_fp(x, integer_bits, 16)


def cwise_mul_shift(a, b, shift: int):
    """``PortableCwiseMul(..., shift, int16* out)``: ``int16(RoundingDivideByPOT(a*b, shift))``
    (the cast wraps)."""
    return wrap_int16(rounding_divide_by_pot(_i(a) * _i(b), shift))


def apply_layer_norm(x, weights, bias, scale_a: int, scale_b: int, variance_limit: int):
    """``PortableApplyLayerNorm`` per batch row of int16 ``x`` [B, n]."""
    x = _i(x)
    n = x.shape[1]
    w = _i(weights)
    b = _i(bias)
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        v = x[r]
        s = int(v.sum())
        sq = int((v * v).sum())
        mean = int(np.trunc(s * 1024 / n)) if abs(s * 1024) < 2**52 else \
            (abs(s * 1024) // n) * (1 if s >= 0 else -1)
        mean = int(wrap_int32(mean))
        temp = (1 << 20) // n
        variance = sq * temp - mean * mean
        variance2 = int(wrap_int32(abs(variance) // (1 << 20) * (1 if variance >= 0 else -1)))
        if variance2 < 1:
            variance2 = variance_limit
        inv_a, inv_b = get_inv_sqrt_quantized_multiplier_exp(variance2, -1)
        shifted = wrap_int32(1024 * v - mean)
        rescaled = multiply_by_quantized_multiplier(shifted, inv_a, inv_b)
        val3 = wrap_int32(wrap_int32(rescaled * w) + b)
        val4 = np.where(val3 > 0, (val3 + 512) // 1024, -((-(val3 - 512)) // 1024))
        val5 = multiply_by_quantized_multiplier(wrap_int32(val4), scale_a, scale_b + 12)
        out[r] = np.clip(val5, -32768, 32767)
    return out
