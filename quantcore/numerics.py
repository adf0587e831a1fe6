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
                                  quantize_multiplier, round_half_away, round_half_even,
                                  wrap_int32)

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


def quantize(x, scale, zero_point, dtype=np.int8, axis: int | None = None, *,
             numerics: str = "reference") -> np.ndarray:
    """float32 -> integer, as LiteRT's QUANTIZE kernel on the chosen numerics path, eq. 12.

    ``numerics="reference"`` (``BUILTIN_REF``; ``reference_ops::AffineQuantize`` and
    ``PerChannelQuantize``, tflite/kernels/internal/reference/quantize.h)::

        q = clamp(int32(roundf(f32(x / scale))) + zero_point, qmin, qmax)

    The division is in float32 and ties round away from zero (unlike ``np.round``).
    The int32 cast follows x86 (NaN and |x/scale| >= 2^31 give INT32_MIN) and the
    zero-point addition wraps in int32, exactly as the C++ does. Per channel when
    ``axis`` is given (``scale``/``zero_point`` of length ``x.shape[axis]``).

    ``numerics="optimized"`` (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``;
    ``optimized_ops::AffineQuantize`` in tflite/kernels/internal/optimized/optimized_ops.h,
    with ``USE_NEON`` on in the x86 wheel): per tensor, the first ``8 * (n // 8)``
    elements in flat order go through the vector loop,
    ``q = clamp(wrap(cvtps2dq(f32(x * f32(1 / scale))) + zero_point))`` (ties to even;
    NaN and out-of-range give INT32_MIN); the leftover ``n % 8`` elements use
    ``int32(round(double(x) / double(scale)))`` (ties away). Per-channel outputs use
    the reference kernel.

    ``numerics="xnnpack"`` (``BUILTIN``): int8/uint8 per tensor is XNNPACK's convert,
    ``q = clamp(rint(f32(x * f32(1 / scale))) + zero_point)`` with ties to even and
    saturation (+inf -> qmax, -inf -> qmin, NaN -> qmax); int16 or per-channel outputs
    are not delegated and follow the optimized path.
    """
    if numerics not in ("reference", "optimized", "xnnpack"):
        raise InputError(f"numerics must be 'reference', 'optimized' or 'xnnpack', not {numerics!r}")
    x = np.asarray(x, np.float32)
    scale = np.atleast_1d(np.asarray(scale, np.float32))
    zp = np.atleast_1d(np.asarray(zero_point, np.int64))
    shape = _axis_shape(x, len(scale), axis)
    s = scale.reshape(shape) if shape else scale[0]
    z = zp.reshape(shape) if shape else zp[0]
    qmin, qmax = qrange(dtype)
    per_tensor = len(scale) == 1
    if numerics == "xnnpack" and per_tensor and np.dtype(dtype) in (np.dtype(np.int8), np.dtype(np.uint8)):
        inv = np.float32(1.0) / np.float32(s)
        with np.errstate(invalid="ignore", over="ignore"):
            v = (x * inv).astype(np.float32)
            v = np.clip(v, np.float32(qmin - int(z)), np.float32(qmax - int(z)))
        q = np.where(np.isnan(v), qmax, round_half_even(np.nan_to_num(v)).astype(np.int64) + int(z))
        return q.astype(dtype)
    if numerics != "reference" and per_tensor:
        flat = x.reshape(-1)
        nv = 8 * (flat.size // 8)
        inv = np.float32(1.0 / np.float64(s))  # 1.0f / double(scale), stored as float
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            v = (flat[:nv] * inv).astype(np.float32)
            tail = flat[nv:].astype(np.float64) / np.float64(s)
        q = np.concatenate([float_to_int32_x86(round_half_even(v)),
                            float_to_int32_x86(round_half_away(tail))])
        q = wrap_int32(q + int(z)).reshape(x.shape)
        return np.clip(q, qmin, qmax).astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = (x / s).astype(np.float32)
    q = wrap_int32(float_to_int32_x86(round_half_away(v)) + z)
    return np.clip(q, qmin, qmax).astype(dtype)


def dequantize(q, scale, zero_point, axis: int | None = None, *,
               numerics: str = "reference") -> np.ndarray:
    """integer -> float32, as LiteRT's DEQUANTIZE kernel on the chosen numerics path, eq. 1.

    ``numerics="reference"`` (tflite/kernels/internal/reference/dequantize.h): per
    tensor (``Dequantize``), ``f = float(double(scale) * (q - zero_point))``, the
    product in double, one rounding to float32; per channel (``PerChannelDequantize``),
    ``f = scale[c] * float(q - zero_point[c])`` in float32. Both give the correctly
    rounded ``f32(scale * (q - zp))`` whenever ``|q - zp| < 2^24``. LiteRT has no
    per-channel int16 DEQUANTIZE ("Type 7 not supported for per-channel").

    ``numerics="optimized"`` (``optimized_ops::Dequantize``, tflite/kernels/internal/
    optimized/optimized_ops.h, ``USE_NEON`` on, no FMA on x86): per tensor, the first
    ``8 * (n // 8)`` elements in flat order get two float32 roundings,
    ``f = f32(f32(float(q) * f32(scale)) + f32(-zero_point * double(scale)))``; the
    leftover elements use the reference formula. Per channel is the reference kernel.

    ``numerics="xnnpack"``: int8/uint8 per tensor is XNNPACK's convert, which gives the
    correctly rounded ``f32(scale * (q - zp))`` (= reference); int16 and per-channel
    inputs are not delegated and follow the optimized path.
    """
    if numerics not in ("reference", "optimized", "xnnpack"):
        raise InputError(f"numerics must be 'reference', 'optimized' or 'xnnpack', not {numerics!r}")
    q = np.asarray(q)
    scale32 = np.atleast_1d(np.asarray(scale, np.float32))
    zp = np.atleast_1d(np.asarray(zero_point, np.int64))
    shape = _axis_shape(q, len(scale32), axis)
    z = zp.reshape(shape) if shape else zp[0]
    d = wrap_int32(q.astype(np.int64) - z)
    if len(scale32) > 1:
        return (scale32.reshape(shape) * d.astype(np.float32)).astype(np.float32)
    out = (np.float64(scale32[0]) * d).astype(np.float32)
    if numerics == "optimized" or (numerics == "xnnpack" and q.dtype == np.dtype(np.int16)):
        flat = out.reshape(-1)  # a fresh array: safe to overwrite
        nv = 8 * (flat.size // 8)
        offset = np.float32(-int(z) * np.float64(scale32[0]))
        with np.errstate(over="ignore"):
            flat[:nv] = (q.reshape(-1)[:nv].astype(np.float32) * scale32[0]).astype(np.float32) + offset
    return out


def requantize(q, in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int,
               dtype=np.int8) -> np.ndarray:
    """integer -> integer, as LiteRT's reference QUANTIZE with an integer input, eq. 13.

    ``M = double(s_in) / double(s_out)`` encoded by :func:`quantize_multiplier`
    (tflite/kernels/quantize.cc Prepare);
    ``out = clamp(MBQM(q - zp_in, M0, shift) + zp_out)`` with gemmlowp double
    rounding (``reference_ops::Requantize``, tflite/kernels/internal/reference/requantize.h).

    Special cases of that kernel, mirrored here:

    * int8 -> uint8 with ``zp_out - zp_in == 128``, or uint8 -> int8 with
      ``zp_in - zp_out == 128``, and ``M == 1`` exactly (``M0 == 2^30``, shift 1):
      ``out = q XOR 0x80``. This equals the general formula (verified against LiteRT).
    * int16 -> int16 requires both zero points to be 0 (quantize.cc Prepare refuses
      the model otherwise); :class:`InputError` here.
    """
    q = np.asarray(q)
    out_dt = np.dtype(dtype)
    if q.dtype == np.dtype(np.int16) and out_dt == np.dtype(np.int16) and (
            int(in_zero_point) != 0 or int(out_zero_point) != 0):
        raise InputError(f"int16 -> int16 requantize needs zero points 0, got "
                         f"{int(in_zero_point)} and {int(out_zero_point)}")
    m, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    if m == 1 << 30 and shift == 1:
        zp_diff = int(in_zero_point) - int(out_zero_point)
        if ((q.dtype == np.dtype(np.int8) and out_dt == np.dtype(np.uint8) and zp_diff == -128)
                or (q.dtype == np.dtype(np.uint8) and out_dt == np.dtype(np.int8) and zp_diff == 128)):
            return (q.view(np.uint8) ^ np.uint8(0x80)).view(out_dt)
    acc = multiply_by_quantized_multiplier(wrap_int32(q.astype(np.int64) - int(in_zero_point)),
                                           m, shift)
    qmin, qmax = qrange(out_dt)
    return np.clip(wrap_int32(acc + int(out_zero_point)), qmin, qmax).astype(out_dt)
