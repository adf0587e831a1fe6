"""Fixed-point primitives of TFLite's integer kernels, vectorized over NumPy arrays.

Each function mirrors one C++ helper and names its rounding mode. Sources:
``tflite/kernels/internal/common.{h,cc}`` and ``quantization_util.cc`` in
google-ai-edge/LiteRT, and gemmlowp ``fixedpoint/fixedpoint.h``. Equation numbers
refer to docs/quantization.md.

All integer work is done in int64 so nothing overflows silently; results that C++
holds in int32 are wrapped to int32 exactly where the C++ wraps (``wrap_int32``).
Rounding modes used here:

* ``round_half_away``: C ``round``/``roundf``/``std::round`` (ties away from zero).
  NumPy's ``np.round``/``np.rint`` round ties to even and are never used for this.
* ``round_half_even``: ``lrintf``/``vcvtnq`` under the default FP environment.
* ``rounding_divide_by_pot``: arithmetic shift right, ties away from zero.
"""
from __future__ import annotations

import math

import numpy as np

from quantcore.errors import InputError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range (what x86 does on overflow)."""
    x = np.asarray(x, np.int64)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """C ``round``: nearest integer, ties away from zero, in the input's float type.

    Computed as ``trunc(x) + (|x - trunc(x)| >= 0.5) * sign(x)``: the fractional part
    is exact in floating point, so there is no ``floor(x + 0.5)`` double-rounding trap
    (0.49999997f rounds to 0, as in C).
    """
    x = np.asarray(x)
    with np.errstate(invalid="ignore"):
        t = np.trunc(x)
        frac = x - t
        # np.where keeps the sign of zero results (round(-0.4) is -0.0, as in C).
        return np.where(np.abs(frac) >= 0.5, t + np.sign(x), t).astype(x.dtype)


def round_half_even(x: np.ndarray | float) -> np.ndarray:
    """``lrintf``/``nearbyint`` in the default rounding mode: ties to even."""
    return np.rint(x)


def float_to_int32_x86(x: np.ndarray) -> np.ndarray:
    """``static_cast<int32_t>(float)`` as x86 executes it (cvttss2si/cvttsd2si).

    Truncates toward zero; NaN and values outside the int32 range give INT32_MIN
    (the "integer indefinite" value), returned as int64.
    """
    x = np.asarray(x, np.float64)
    bad = ~np.isfinite(x) | (x >= 2.0**31) | (x < -(2.0**31))
    out = np.where(bad, 0.0, np.trunc(x)).astype(np.int64)
    return np.where(bad, INT32_MIN, out)


# ---------------------------------------------------------------------------
# QuantizeMultiplier (eq. 6)
# ---------------------------------------------------------------------------
def quantize_multiplier(real: float, *, single_rounding: bool = False) -> tuple[int, int]:
    """Encode a real multiplier as ``M0 * 2**shift`` with int32 ``M0`` in [2^30, 2^31).

    Mirrors ``QuantizeMultiplier(double, int32_t*, int*)``
    (tflite/kernels/internal/quantization_util.cc), eq. 6 of docs/quantization.md:
    ``q, shift = frexp(real)``; ``M0 = round_half_away(q * 2^31)``; if ``M0 == 2^31``
    it becomes ``2^30`` with ``shift + 1``; if ``shift < -31`` the multiplier is
    flushed to ``(0, 0)``. ``real == 0`` gives ``(0, 0)``. Negative reals give a
    negative ``M0``. With ``single_rounding`` (TFLITE_SINGLE_ROUNDING builds) a shift
    above 30 is clamped to ``(2^31 - 1, 30)``.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise ValueError(f"multiplier {real} is not finite")
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(np.float64(q) * float(1 << 31)))
    if abs(q_fixed) > (1 << 31):
        raise AssertionError("frexp fraction out of range")  # pragma: no cover
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if single_rounding and shift > 30:
        shift = 30
        q_fixed = (1 << 31) - 1
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierSmallerThanOneExp``: requires 0 < real < 1; shift <= 0."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} not in (0, 1)")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise ValueError(f"multiplier {real} gives shift {s} > 0")  # pragma: no cover
    return m, s


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierGreaterThanOne``: requires real > 1; shift >= 0."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real} not > 1")
    m, s = quantize_multiplier(real)
    return m, s


def quantize_multiplier_array(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantize_multiplier` over an array (per-channel multipliers), as int64 arrays."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    m = np.array([p[0] for p in pairs], np.int64)
    s = np.array([p[1] for p in pairs], np.int64)
    return m, s


# ---------------------------------------------------------------------------
# gemmlowp primitives (eq. 7, 8)
# ---------------------------------------------------------------------------
def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` (ARM ``vqrdmulh``), eq. 7.

    ``(a*b + nudge) / 2^31`` with C truncating division, nudge = 2^30 if a*b >= 0
    else 1 - 2^30: the high 32 bits of 2ab, rounded to nearest with ties toward
    +inf (``2.5 -> 3`` but ``-2.5 -> -2``: the negative nudge is one short of a half,
    so truncation sends negative ties toward zero), as ``vqrdmulh`` does. Its one
    overflow case, ``a == b == INT32_MIN``, saturates to INT32_MAX.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    # Truncating (ab + nudge) / 2^31 equals the floor shift (ab + 2^30) >> 31: for
    # ab >= 0 both add 2^30 and floor; for ab < 0, trunc((ab + 1 - 2^30) / 2^31) =
    # floor((ab + 2^30) / 2^31) on every integer ab (the nudges differ by 2^31 - 1, the
    # gap between truncation and floor of a non-multiple). One pass, no branches.
    q = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded half away from zero, eq. 8.

    ``exponent`` in [0, 31]. Arithmetic shift, then +1 when the remainder exceeds
    ``mask/2`` (``mask/2 + 1`` for negative x).
    """
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def rounding_divide_by_pot_ties_up(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """Rounding shift right with ties toward +inf (ARM ``vrshl`` by ``-exponent``, ruy's
    rounding right shift): ``(x + 2^(e-1)) >> e`` (floor shift) for ``e > 0``, ``x``
    for ``e <= 0``."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    ep = np.maximum(e, 1)
    return np.where(e > 0, (x + (np.int64(1) << (ep - 1))) >> ep, x)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int,
                                     shift: np.ndarray | int, *,
                                     rounding: str = "double") -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int32 x, int32 M0, int shift)``, eq. 9.

    ``rounding="double"`` (the default build, TFLITE_SINGLE_ROUNDING off; gemmlowp)::

        RoundingDivideByPOT(SRDHM(x * 2^max(shift, 0), M0), max(-shift, 0))

    where ``x * 2^left`` wraps in int32 as the C++ does. A shift of 32 or more
    (a real multiplier >= 2^31) is undefined behaviour in ``1 << left_shift``; x86
    masks the shift count to 5 bits, so LiteRT multiplies by ``2^(left mod 32)``
    (measured: M = 2^31 halves ``x``), and so does this function. ``rounding="single"``
    (TFLITE_SINGLE_ROUNDING builds)::

        (x * M0 + 2^(30 - shift)) >> (31 - shift)     # one rounding, ties up

    Returns int64 values in the int32 range. Broadcasts over per-channel
    ``multiplier``/``shift`` arrays.
    """
    x = np.asarray(x, np.int64)
    m = np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    if rounding == "double":
        left = np.maximum(s, 0) & 31  # x86 shl masks the count (C++ UB for >= 32)
        right = np.maximum(-s, 0)
        return rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(wrap_int32(x << left), m), right)
    if rounding == "single":
        total = 31 - s
        return wrap_int32((x * m + (np.int64(1) << (total - 1))) >> total)
    raise ValueError(f"rounding must be 'double' or 'single', not {rounding!r}")


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp``: RDBPOT(SRDHM(x, M0), -shift)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier),
                                  -np.asarray(shift, np.int64))


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierGreaterThanOne``: SRDHM(x * 2^shift, M0), x*2^shift wrapping
    (shift count taken mod 32, as x86 executes ``1 << shift``)."""
    x = np.asarray(x, np.int64)
    return saturating_rounding_doubling_high_mul(
        wrap_int32(x << (np.asarray(shift, np.int64) & 31)), multiplier)


def multiply_by_quantized_multiplier_int64(x: np.ndarray, multiplier: np.ndarray | int,
                                           shift: np.ndarray | int) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int64 x, int32 M0, int shift)`` for 16x8 accumulators, eq. 10.

    The multiplier is reduced to 16 bits, ``(M0 + 2^15) >> 16`` (0x7FFF when
    ``M0 >= 0x7FFF0000``), then one rounding with ties up:
    ``(x * m16 + 2^(14 - shift)) >> (15 - shift)``; the result is cast to int32.
    """
    x = np.asarray(x, np.int64)
    m = np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    m16 = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - s
    return wrap_int32((x * m16 + (np.int64(1) << (total - 1))) >> total)


def activation_range(activation: int, scale: float, zero_point: int,
                     qmin: int, qmax: int) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: the clamp of a fused activation, eq. 11.

    ``Q(f) = zero_point + int(roundf(f32(f / scale)))`` (float32 division, ties
    away); NONE -> [qmin, qmax], RELU -> [max(qmin, Q(0)), qmax], RELU6 ->
    [max(qmin, Q(0)), min(qmax, Q(6))], RELU_N1_TO_1 -> [max(qmin, Q(-1)),
    min(qmax, Q(1))]. ``activation`` is an ActivationFunctionType value
    (0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6).

    Like ``Quantize`` in tflite/kernels/kernel_util.cc, a rounded ``f / scale``
    outside ``[float(INT32_MIN), float(INT32_MAX)]`` (= [-2^31, 2^31]) is refused
    with :class:`~quantcore.errors.InputError` (LiteRT's
    ``no_integer_overflow_from_quantization`` check); exactly 2^31 passes the check
    and converts to INT32_MIN, as on x86. The zero-point addition wraps in int32.
    """
    def q(f: float) -> int:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            tmp = round_half_away(np.float32(np.float32(f) / np.float32(scale)))
        if not (-(2.0**31) <= float(tmp) <= 2.0**31):
            raise InputError(f"fused activation bound {f} / scale {scale} = {float(tmp)} does not fit "
                             "int32 (LiteRT: no_integer_overflow_from_quantization)")
        return int(wrap_int32(int(zero_point) + int(float_to_int32_x86(tmp))))
    if activation == 0:
        return qmin, qmax
    if activation == 1:
        return max(qmin, q(0.0)), qmax
    if activation == 2:
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    if activation == 3:
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    raise ValueError(f"fused activation {activation} has no quantized range")
