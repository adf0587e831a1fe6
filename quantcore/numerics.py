"""Quantization numerics: choosing parameters, quantizing, dequantizing.

Equation numbers refer to docs/quantization.md. Every function states the TFLite
code it mirrors and its rounding mode; see :mod:`quantcore.fixedpoint` for the
integer primitives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import (float_to_int32_x86, multiply_by_quantized_multiplier,
                                  quantize_multiplier, round_half_away, wrap_int32)

_QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
           np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-(2**31), 2**31 - 1)}


def qrange(dtype, narrow_range: bool = False) -> tuple[int, int]:
    """(qmin, qmax) of an integer storage type; narrow range drops the lowest value."""
    dt = np.dtype(dtype)
    if dt not in _QRANGE:
        raise InputError(f"no quantized range for dtype {dt}")
    lo, hi = _QRANGE[dt]
    return (lo + 1 if narrow_range else lo), hi


@dataclass(frozen=True)
class QParams:
    """Scale (float32) and zero point (int64) arrays; length 1 for per-tensor."""
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


def choose_qparams(min_value, max_value, dtype=np.int8, *, symmetric: bool = False,
                   narrow_range: bool | None = None) -> QParams:
    """Scale and zero point for the float range [min, max], as the TFLite converter sets them.

    ``min_value``/``max_value`` are scalars (per tensor) or 1-D arrays (per channel).

    Asymmetric (int8/uint8 activations; the MLIR quantizer with
    ``legacy_float_scale``, ``DownCastScale`` in quantization_utils.cc), eq. 3-4::

        rmin = min(min, 0); rmax = max(max, 0)               # zero must be exact (eq. 2)
        scale = f32((f32(rmax) - f32(rmin)) / f32(qmax - qmin))
        zp = clamp(round_half_away(f32(qmin - rmin / double(scale))), qmin, qmax)

    Symmetric (weights: int8 narrow range [-127, 127]; int16 activations), eq. 5::

        a = max(|min|, |max|); scale = f32(f32(a) / qmax); zp = 0

    Degenerate ranges: a symmetric range with ``2a <= 1e-6`` is widened to
    ``a = 5e-7`` (the converter's ``ExpandVerySmallRange`` for weights, so an all-zero
    channel gets scale ~3.9e-9); an asymmetric range with ``rmax == rmin`` (a tensor
    that is always 0) gets scale 1.0 and ``zp = qmin``, the converter's
    ``fakeQuantAttrsToType`` choice before down-casting, which would otherwise divide
    by zero. ``narrow_range`` defaults to True for symmetric int8, else False.
    """
    dt = np.dtype(dtype)
    if narrow_range is None:
        narrow_range = symmetric and dt == np.dtype(np.int8)
    qmin, qmax = qrange(dt, narrow_range)
    mn = np.atleast_1d(np.asarray(min_value, np.float64))
    mx = np.atleast_1d(np.asarray(max_value, np.float64))
    if mn.shape != mx.shape:
        raise InputError(f"min has shape {mn.shape}, max has shape {mx.shape}")
    if not (np.all(np.isfinite(mn)) and np.all(np.isfinite(mx))):
        raise InputError("min and max must be finite")
    if np.any(mn > mx):
        raise InputError("min must not exceed max")
    if symmetric:
        a = np.maximum(np.abs(np.minimum(mn, 0.0)), np.abs(np.maximum(mx, 0.0)))
        a = np.where(2 * a <= 1e-6, 5e-7, a)
        scale = (a.astype(np.float32) / np.float32(qmax)).astype(np.float32)
        return QParams(scale, np.zeros(scale.shape, np.int64))
    rmin = np.minimum(mn, 0.0)
    rmax = np.maximum(mx, 0.0)
    degenerate = rmax - rmin < np.finfo(np.float64).eps
    scale = ((rmax.astype(np.float32) - rmin.astype(np.float32)) / np.float32(qmax - qmin)).astype(np.float32)
    scale = np.where(degenerate, np.float32(1.0), scale).astype(np.float32)
    zpf = (qmin - rmin / scale.astype(np.float64)).astype(np.float32)
    zp = np.clip(round_half_away(zpf), qmin, qmax).astype(np.int64)
    zp = np.where(degenerate, qmin, zp)
    return QParams(scale, zp)


def _axis_shape(x: np.ndarray, n: int, axis: int | None) -> tuple:
    if axis is None:
        if n != 1:
            raise InputError(f"{n} scales given without an axis")
        return ()
    if not -x.ndim <= axis < x.ndim:
        raise InputError(f"axis {axis} out of range for rank {x.ndim}")
    axis %= x.ndim
    if x.shape[axis] != n:
        raise InputError(f"{n} scales for axis {axis} of size {x.shape[axis]}")
    shape = [1] * x.ndim
    shape[axis] = n
    return tuple(shape)


def quantize(x, scale, zero_point, dtype=np.int8, axis: int | None = None) -> np.ndarray:
    """float32 -> integer, as LiteRT's reference QUANTIZE (``reference_ops::AffineQuantize``), eq. 12.

    ``q = clamp(int32(roundf(f32(x / scale))) + zero_point, qmin, qmax)``: the
    division is in float32 and ties round away from zero (unlike ``np.round``).
    The int32 cast follows x86 (NaN and |x/scale| >= 2^31 give INT32_MIN) and the
    zero-point addition wraps in int32, exactly as the C++ does. Per channel when
    ``axis`` is given (``scale``/``zero_point`` of length ``x.shape[axis]``).
    """
    x = np.asarray(x, np.float32)
    scale = np.atleast_1d(np.asarray(scale, np.float32))
    zp = np.atleast_1d(np.asarray(zero_point, np.int64))
    shape = _axis_shape(x, len(scale), axis)
    s = scale.reshape(shape) if shape else scale[0]
    z = zp.reshape(shape) if shape else zp[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = (x / s).astype(np.float32)
    q = wrap_int32(float_to_int32_x86(round_half_away(v)) + z)
    qmin, qmax = qrange(dtype)
    return np.clip(q, qmin, qmax).astype(dtype)


def dequantize(q, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """integer -> float32, as LiteRT's DEQUANTIZE (``reference_ops::Dequantize``), eq. 1.

    ``f = float(double(scale) * (q - zero_point))``: the product in double, one
    rounding to float32.
    """
    q = np.asarray(q)
    scale = np.atleast_1d(np.asarray(scale, np.float32)).astype(np.float64)
    zp = np.atleast_1d(np.asarray(zero_point, np.int64))
    shape = _axis_shape(q, len(scale), axis)
    s = scale.reshape(shape) if shape else scale[0]
    z = zp.reshape(shape) if shape else zp[0]
    return (s * (q.astype(np.int64) - z)).astype(np.float32)


def requantize(q, in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int,
               dtype=np.int8) -> np.ndarray:
    """integer -> integer, as LiteRT's reference QUANTIZE with an integer input, eq. 13.

    ``M = double(s_in) / double(s_out)`` encoded by :func:`quantize_multiplier`;
    ``out = clamp(MBQM(q - zp_in, M0, shift) + zp_out)`` with gemmlowp double
    rounding (``reference_ops::Requantize``).
    """
    m, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    acc = multiply_by_quantized_multiplier(np.asarray(q, np.int64) - int(in_zero_point), m, shift)
    qmin, qmax = qrange(dtype)
    return np.clip(acc + int(out_zero_point), qmin, qmax).astype(dtype)
