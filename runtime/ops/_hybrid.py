"""Shared pieces of the hybrid (dynamic-range) kernels and of the depthwise and
transposed convolutions (output sizes with C++ division, activation ranges, taps).

A hybrid kernel takes a float32 input and int8 weights. Each batch of the input is
quantized to int8 on the fly, the products are accumulated in int32, and the sum is
scaled back to float with the weight scale(s) and the batch's input scaling factor.
Used by CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV.

Input quantization (one implementation, in :mod:`runtime.ops._matmul_hybrid`, shared with
FULLY_CONNECTED, BATCH_MATMUL and the recurrent kernels; the functions here only return
int64 codes; NaN / inf handling is documented there and measured against LiteRT in
tests/ops/test_hybrid_nonfinite.py). LiteRT's kernels call ``tensor_utils::SymmetricQuantizeFloats`` /
``AsymmetricQuantizeFloats`` even on the reference path. In the x86 wheel
``USE_NEON`` is defined (``optimized/neon_check.h``: GCC-compatible compiler with
SSE4.1 includes NEON_2_SSE), so ``NEON_OR_PORTABLE`` picks the ``Neon*`` versions in
``tflite/kernels/internal/optimized/neon_tensor_utils.cc``; the portable ones in
``reference/portable_tensor_utils.cc`` are not what runs. The two differ:

* blocks of 8 values go through ``RoundToNearest``, which without ``__ARM_ARCH >= 8``
  is ``trunc(f32(v * inv +- 0.5))``: the half is added in float32, so a product just
  below .5 can round up (0.49999997 -> 1), unlike C ``round``; the remaining
  ``size % 8`` values use ``roundf(f32(inv * v))``;
* asymmetric: the zero point is added after rounding (``offset + round(v * inv)``),
  where the portable code rounds ``offset + v * inv``; ``rmax - rmin`` is a float32
  subtraction (the portable code subtracts doubles); ``NeonMinMax`` includes 0 in
  the range.

Symmetric (``NeonSymmetricQuantizeFloats``), per batch of ``n`` values::

    range = max(|min(v)|, |max(v)|)                      (float32)
    range == 0: q = 0, scaling_factor = 1
    scaling_factor = f32(range / 127); inv = f32(127 / range)
    q = clamp(round(f32(v * inv)), -127, 127)

Asymmetric (``NeonAsymmetricQuantizeFloats``)::

    rmin = min(0, min(v)); rmax = max(0, max(v))        (float32)
    rmin == rmax: q = 0, scaling_factor = 1, offset = 0
    scale = double(f32(rmax - rmin)) / 255
    zp_from_min = -128 - rmin / scale; zp_from_max = 127 - rmax / scale     (double)
    zp = zp_from_min if 128 + |rmin / scale| < 127 + |rmax / scale| else zp_from_max
    offset = -128 if zp <= -128, 127 if zp >= 127, else round_half_away(zp)
    scaling_factor = f32(scale); inv = f32(1.0 / double(scaling_factor))
    q = clamp(offset + round(f32(v * inv)), -128, 127)

Float arithmetic. The kernels run as scalar SSE code without FMA (checked in the
wheel's disassembly: ``mulss``/``addss`` only), so every float32 product and sum
rounds once, in the order of the C++ loops; NumPy float32 arithmetic reproduces it
when done in the same order. Fused activations clamp with
``_common.clamp_float`` over ``OpContext.float_activation_range`` ("no activation"
is ``[-FLT_MAX, FLT_MAX]``, so an infinite result becomes +-FLT_MAX).
"""
from __future__ import annotations

import numpy as np

from . import _matmul_hybrid
from ._common import OpContext, TensorInfo

_F32 = np.float32


def symmetric_quantize_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``NeonSymmetricQuantizeFloats`` per row of a [batches, n] float32 array: the one
    implementation in :func:`runtime.ops._matmul_hybrid.symmetric_quantize_floats`
    (NaN/inf handling as LiteRT's, documented there).

    Returns (int8 values as int64 [batches, n], float32 scaling factors [batches]).
    """
    q, sf = _matmul_hybrid.symmetric_quantize_floats(values)
    return q.astype(np.int64), sf


def asymmetric_quantize_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``NeonAsymmetricQuantizeFloats`` per row of a [batches, n] float32 array: the one
    implementation in :func:`runtime.ops._matmul_hybrid.asymmetric_quantize_floats`.

    Returns (int8 values as int64 [batches, n], float32 scaling factors [batches],
    int32 offsets (the zero points) as int64 [batches]).
    """
    q, sf, offset = _matmul_hybrid.asymmetric_quantize_floats(values)
    return q.astype(np.int64), sf, offset


def hybrid_filter_scales(ctx: OpContext, w: TensorInfo, what: str) -> np.ndarray:
    """The float32 scales of a hybrid kernel's int8 filter: present, finite, > 0.

    The hybrid kernels index ``scale[out_channel]`` after checking at most that the
    number of scales equals ``filter.dims[quantized_dimension]``; each caller also
    refuses a scale vector shorter than the output channels (LiteRT would read past
    it). The filter zero point is ignored by every hybrid kernel, as in LiteRT.
    """
    wh = ctx.where(w)
    ctx.check(w.quantized, f"hybrid {what}: the int8 filter has no quantization parameters", wh)
    ctx.check(bool(np.all(np.isfinite(w.scale)) and np.all(w.scale > 0)),
              f"hybrid {what}: filter scales must be finite and > 0", wh)
    qd = w.quantized_dimension
    ctx.check(0 <= qd < len(w.shape), f"quantized_dimension {qd} outside the filter's rank", wh)
    return np.asarray(w.scale, _F32)


def zero_pad_nhwc(x: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    """Pad H and W of an NHWC array with zeros: (top, bottom, left, right)."""
    pt, pb, pl, pr = padding
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def window_slices(padded: np.ndarray, fy: int, fx: int, stride: tuple[int, int],
                  dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """The padded input seen by filter tap (fy, fx) at every output position: [N, OH, OW, C]."""
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    return padded[:, fy * dh: fy * dh + (oh - 1) * sh + 1: sh, fx * dw: fx * dw + (ow - 1) * sw + 1: sw, :]


def out_size_checked(ctx: OpContext, padding: int, image: int, filter_size: int, stride: int,
                     dilation: int, what: str) -> int:
    """``ComputeOutSizeChecked`` (padding.h): SAME ``ceil(image / stride)``, VALID
    ``(image + stride - eff) / stride`` with C++ division (truncating toward zero), so a
    filter slightly larger than the image gives an empty output while a negative
    quotient is an error. ``eff = (filter - 1) * dilation + 1``.
    """
    eff = (filter_size - 1) * dilation + 1
    if padding == 0:
        value = (image + stride - 1) // stride
    elif padding == 1:
        num = image + stride - eff
        value = num // stride if num >= 0 else -((-num) // stride)
    else:
        raise ctx.error(f"unknown padding {padding}", ".builtin_options")
    ctx.check(value >= 0, f"{what}: the effective filter ({eff}) does not fit the input ({image})")
    return value


def padding_with_offset(stride: int, dilation: int, in_size: int, filter_size: int,
                        out_size: int) -> tuple[int, int]:
    """``ComputePaddingWithOffset``: (padding before, odd offset) of one dimension."""
    eff = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2, total % 2
