"""Helpers shared by FULLY_CONNECTED and BATCH_MATMUL: exact integer GEMM, float64
requantization, sequential float32 dot products and the dynamic-range ("hybrid")
input quantization of ``tensor_utils``.

Sources (google-ai-edge/LiteRT):

* ``tflite/kernels/internal/portable_tensor_utils.h`` ``BatchQuantizeFloats``;
* ``tflite/kernels/internal/optimized/sse_tensor_utils.h``: on x86 with SSE4.1 the
  float quantizers dispatch ``NEON_OR_PORTABLE`` to the NEON versions (compiled
  through NEON_2_SSE, ``optimized/neon_check.h``), the int8 matrix products to the SSE
  ones;
* ``tflite/kernels/internal/optimized/neon_tensor_utils.cc``
  ``NeonSymmetricQuantizeFloats``, ``NeonAsymmetricQuantizeFloats``, ``NeonMinMax``
  and ``RoundToNearest`` (the pre-ARMv8 branch, which is what x86 compiles);
* ``tflite/kernels/internal/optimized/sse_tensor_utils.cc``
  ``SseMatrixBatchVectorMultiplyAccumulateImpl`` (int32 dot products, then one float32
  multiply-add per output) and ``SseReductionSumVector`` (int16 lanes).

Non-finite inputs (NaN, +-inf) follow the x86 wheel exactly: ``std::minmax_element`` of
libstdc++ and NEON_2_SSE's ``_mm_min_ps``/``_mm_max_ps`` decide which NaN is ignored,
x86's float -> int conversions what a NaN code becomes (see the quantizers below;
tests/ops/test_hybrid_nonfinite.py compares them bit for bit with LiteRT).

Exactness of the integer GEMM: every product of two operands below 2^16 in
magnitude is an integer below 2^32, and any partial sum of fewer than 2^21 of them
stays below 2^53, so a float64 GEMM represents every partial sum exactly whatever
order BLAS adds them in; the result converts to int64 without rounding.
"""
from __future__ import annotations

import numpy as np

from quantcore.fixedpoint import float_to_int32_x86, round_half_away, wrap_int32

F32 = np.float32


def exact_int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of integer-valued float64 arrays (NumPy matmul broadcasting), as int64.

    Exact when every partial sum stays below 2^53 (module docstring).
    """
    return np.matmul(np.asarray(a, np.float64), np.asarray(b, np.float64)).astype(np.int64)


def requantize_double(acc: np.ndarray, effective_scale: np.ndarray | float, output_offset: int,
                      act_min: int, act_max: int, *, clamp_before_offset: bool = False) -> np.ndarray:
    """LiteRT's float-scale requantization (``reference_integer_ops::FullyConnected``)::

        acc_scaled = int32(round(double(acc) * effective_output_scale))  # round: half away
        acc_scaled += output_offset                                       # int32, wraps
        acc_scaled = clamp(acc_scaled, act_min, act_max)

    ``effective_output_scale = double(s_in) * double(s_w) / double(s_out)``, evaluated
    left to right by the caller. The int32 cast is x86's (out of range -> INT32_MIN).
    ``clamp_before_offset`` is the uint8 -> int16 variant of ``reference_ops``, which
    clamps to ``[act_min - offset, act_max - offset]`` and then adds the offset.
    Returns int64 values.
    """
    v = np.asarray(acc).astype(np.float64) * np.asarray(effective_scale, np.float64)
    q = float_to_int32_x86(round_half_away(v))
    if clamp_before_offset:
        return np.clip(q, act_min - output_offset, act_max - output_offset) + output_offset
    return np.clip(wrap_int32(q + output_offset), act_min, act_max)


def sequential_dot_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_k a[..., k] * b[..., k]`` in float32, added in order k = 0, 1, ... from 0.0f.

    Mirrors the reference kernels' ``total += x * w`` loop (no FMA contraction: measured,
    the wheel rounds the product and the sum separately). ``a`` and ``b`` broadcast
    against each other over the leading axes; the last axis is the reduction axis.
    """
    # reduction axis first and contiguous, so each step reads two contiguous slices
    at = np.ascontiguousarray(np.moveaxis(np.asarray(a, F32), -1, 0))
    bt = np.ascontiguousarray(np.moveaxis(np.asarray(b, F32), -1, 0))
    shape = np.broadcast_shapes(at.shape[1:], bt.shape[1:])
    total = np.zeros(shape, F32)
    prod = np.empty(shape, F32)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN sums, as in C
        for k in range(at.shape[0]):
            np.multiply(at[k], bt[k], out=prod)
            np.add(total, prod, out=total)
    return total


# ---------------------------------------------------------------------------
# Dynamic-range input quantization (tensor_utils::BatchQuantizeFloats)
# ---------------------------------------------------------------------------
_BLOCK = 8  # NEON quantizers handle 2 x 4 floats per step; the rest is a scalar postamble
_LANES = 4  # NeonMinMax: one float32x4 per step
_INT32_MAX = 2**31 - 1


def _std_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``std::max(a, b)`` = ``a < b ? b : a``: a NaN ``a`` is kept, a NaN ``b`` ignored."""
    return np.where(a < b, b, a)


def _std_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``std::min(a, b)`` = ``b < a ? b : a``: a NaN ``a`` is kept, a NaN ``b`` ignored."""
    return np.where(b < a, b, a)


def minmax_element(row: np.ndarray) -> tuple[F32, F32]:
    """``*std::minmax_element`` of a float32 row as libstdc++ runs it (``bits/stl_algo.h``
    ``__minmax_element``, comparator ``<``), for rows holding NaN.

    The first two values seed (min, max) (the smaller as min, a tie or NaN keeps the
    first as min); then pairs (a, b) are compared with each other and ``if b < a:
    (b < min -> min = b; !(a < max) -> max = a)`` else the same with a and b swapped; a
    single last value ``v``: ``v < min -> min = v``, else ``!(v < max) -> max = v``. So
    a NaN never becomes the min after the first position, can become the max
    (``!(NaN < max)``), and a NaN max is replaced by the next candidate. Without NaN
    this is the plain minimum and maximum.
    """
    n = len(row)
    if not np.isnan(row).any():
        return F32(row.min()), F32(row.max())
    v = [float(t) for t in row]
    if n == 1:
        return F32(v[0]), F32(v[0])
    mn, mx = (v[1], v[0]) if v[1] < v[0] else (v[0], v[1])
    i = 2
    while i < n:
        a = v[i]
        if i + 1 == n:
            if a < mn:
                mn = a
            elif not a < mx:
                mx = a
            break
        b = v[i + 1]
        if b < a:
            if b < mn:
                mn = b
            if not a < mx:
                mx = a
        else:
            if a < mn:
                mn = a
            if not b < mx:
                mx = b
        i += 2
    return F32(mn), F32(mx)


def _sse_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``_mm_min_ps(a, b)`` (NEON_2_SSE's ``vminq_f32``/``vmin_f32``/``vpmin_f32``):
    ``a < b ? a : b``, so a NaN in either operand gives ``b``."""
    return np.where(a < b, a, b)


def _sse_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``_mm_max_ps(a, b)``: ``a > b ? a : b``, so a NaN in either operand gives ``b``."""
    return np.where(a > b, a, b)


def _lane_fold(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per lane of ``blocks`` [steps, 4]: ``acc = blocks[0]``, then ``acc = _sse_min(acc,
    blocks[i])`` (and ``_sse_max``) for i = 1, 2, ... Vectorized: a NaN value replaces
    the accumulator and the next value replaces a NaN accumulator, so each lane ends as
    NaN if its last value is NaN, else as the plain min (max) of the values after its
    last NaN (all of them if it has none)."""
    steps = blocks.shape[0]
    nan = np.isnan(blocks)
    idx = np.arange(steps)[:, None]
    last_nan = np.where(nan, idx, -1).max(axis=0)                     # [4], -1: no NaN
    after = idx > last_nan[None, :]
    lo = np.where(after, blocks, np.inf).min(axis=0).astype(F32)
    hi = np.where(after, blocks, -np.inf).max(axis=0).astype(F32)
    ends_nan = last_nan == steps - 1
    lo[ends_nan] = np.nan
    hi[ends_nan] = np.nan
    return lo, hi


def neon_min_max(row: np.ndarray) -> tuple[F32, F32]:
    """``NeonMinMax`` (neon_tensor_utils.cc, the non-aarch64 branch x86 compiles) of a
    float32 row: (min(0, min x), max(0, max x)) for rows without NaN.

    With NaN: four lanes start at ``x[0:4]`` and take ``vminq_f32(acc, x[i:i+4])`` /
    ``vmaxq_f32`` over the whole vectors (:func:`_sse_min`: a NaN in either operand gives
    the new value), the lanes are reduced by ``vmin_f32(low, high)`` and ``vpmin_f32``
    (lane 1 against lane 0),
    then ``rmin = std::min(0, lane)`` (a NaN lane is ignored); the ``size % 4`` tail goes
    through :func:`minmax_element` and ``std::min(rmin, tail_min)``. NaN never comes out.
    """
    if not np.isnan(row).any():
        return F32(min(F32(0), F32(row.min()))), F32(max(F32(0), F32(row.max())))
    n = len(row)
    start = n - n % _LANES
    rmin, rmax = F32(0), F32(0)
    if start:
        lo, hi = _lane_fold(row[:start].reshape(-1, _LANES))
        lo2 = _sse_min(lo[:2], lo[2:])
        hi2 = _sse_max(hi[:2], hi[2:])
        # vpmin_f32 / vpmax_f32 (NEON_2_SSE) compare lane 1 against lane 0: measured, a
        # NaN in lane 1 is ignored
        rmin = F32(_std_min(rmin, _sse_min(lo2[1], lo2[0])))
        rmax = F32(_std_max(rmax, _sse_max(hi2[1], hi2[0])))
    if start < n:
        tmin, tmax = minmax_element(row[start:])
        rmin = F32(_std_min(rmin, tmin))
        rmax = F32(_std_max(rmax, tmax))
    return rmin, rmax


def neon_cvt_s32(v: np.ndarray) -> np.ndarray:
    """NEON_2_SSE's ``vcvtq_s32_f32``: ``_mm_cvttps_epi32`` (truncation; NaN and values
    below -2^31 give INT32_MIN) with values >= 2^31 saturated to INT32_MAX. int64."""
    v = np.asarray(v, F32)
    return np.where(v >= F32(2.0**31), _INT32_MAX, float_to_int32_x86(v))


def _round_neon_x86(v: np.ndarray) -> np.ndarray:
    """``RoundToNearest`` of neon_tensor_utils.cc as x86 runs it (``__ARM_ARCH < 8``):
    ``vcvtq_s32_f32(v + (v < 0 ? -0.5f : 0.5f))``: the addition rounds in float32 (so
    0.49999997f becomes 1), then the conversion truncates toward zero (NaN gives
    INT32_MIN, +inf INT32_MAX; see :func:`neon_cvt_s32`)."""
    half = np.where(v < 0, F32(-0.5), F32(0.5)).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        return neon_cvt_s32((v + half).astype(F32))


def _float_to_int32_via_int64(v: np.ndarray) -> np.ndarray:
    """``static_cast<int32>(float)`` as the wheel compiles the asymmetric quantizer's
    scalar tail: a 64-bit ``cvttss2si`` whose low 32 bits are kept, so NaN and +-inf
    (INT64_MIN, low half 0) give 0 (measured: a NaN in the tail quantizes to 0, where the
    symmetric tail's 32-bit conversion gives INT32_MIN). int64 values."""
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v) & (np.abs(v) < 2.0**63)
    return wrap_int32(np.where(ok, np.trunc(np.where(ok, v, 0.0)), 0.0).astype(np.int64))


def _split(k: int) -> int:
    """Columns handled by the 8-wide vector loop; the rest is the scalar postamble."""
    return k - k % _BLOCK


def _row_ranges(rows: np.ndarray, reduce) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (min, max) by ``reduce`` (a function of one row), NumPy for rows without NaN."""
    nan_rows = np.isnan(rows).any(axis=1)
    lo = np.empty(len(rows), F32)
    hi = np.empty(len(rows), F32)
    for i in np.flatnonzero(nan_rows):
        lo[i], hi[i] = reduce(rows[i])
    clean = ~nan_rows
    if clean.any():
        part = rows[clean]
        if reduce is neon_min_max:
            lo[clean] = np.minimum(F32(0), part.min(axis=1))
            hi[clean] = np.maximum(F32(0), part.max(axis=1))
        else:
            lo[clean] = part.min(axis=1)
            hi[clean] = part.max(axis=1)
    return lo, hi


def symmetric_quantize_floats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``NeonSymmetricQuantizeFloats`` per row of a float32 [R, K] array.

    ``(min, max) = std::minmax_element`` (:func:`minmax_element`; NaN handling as
    libstdc++), ``range = std::max(|min|, |max|)``; a zero range gives zeros and scale
    1; otherwise ``scale = f32(range / 127)``, ``inv = f32(127 / range)`` and
    ``q = clamp(round(f32(x * inv)), -127, 127)``: vector rounding
    (:func:`_round_neon_x86`) for the first ``K & ~7`` values, ``static_cast<int32>(
    roundf(.))`` (x86: NaN and out of range give INT32_MIN) for the rest. A NaN value
    becomes -127; a NaN range (NaN first value) gives NaN scale. Measured against
    LiteRT's hybrid FULLY_CONNECTED on BUILTIN_REF and BUILTIN_WITHOUT_DEFAULT_DELEGATES
    (the same function runs on both). Returns (int8 [R, K], float32 [R]).
    """
    rows = np.asarray(rows, F32)
    r, k = rows.shape
    if k == 0:
        return np.zeros((r, 0), np.int8), np.ones(r, F32)
    mn, mx = _row_ranges(rows, minmax_element)
    rng = _std_max(np.abs(mn), np.abs(mx)).astype(F32)
    zero = rng == 0
    safe = np.where(zero, F32(1), rng).astype(F32)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
        scale = np.where(zero, F32(1), (safe / F32(127)).astype(F32)).astype(F32)
        inv = (F32(127) / safe).astype(F32)
        prod = (rows * inv[:, None]).astype(F32)
        split = _split(k)
        q = np.empty((r, k), np.int64)
        q[:, :split] = _round_neon_x86(prod[:, :split])
        q[:, split:] = float_to_int32_x86(round_half_away(prod[:, split:]))
    q = np.clip(q, -127, 127)
    q[zero] = 0
    return q.astype(np.int8), scale


def _asymmetric_zero_point(rmin: np.ndarray, rmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(double scale, int64 nudged zero point) of ``NeonAsymmetricQuantizeFloats``; an
    infinite range makes the zero point NaN, which ``static_cast<int8>`` turns into 0
    (x86: INT32_MIN, whose low byte is 0)."""
    qmin, qmax = -128.0, 127.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scale = (rmax - rmin).astype(F32).astype(np.float64) / (qmax - qmin)
        rmin_d = rmin.astype(np.float64)
        rmax_d = rmax.astype(np.float64)
        zp_from_min = qmin - rmin_d / scale
        zp_from_max = qmax - rmax_d / scale
        err_min = abs(qmin) + np.abs(rmin_d / scale)
        err_max = abs(qmax) + np.abs(rmax_d / scale)
        zp_d = np.where(err_min < err_max, zp_from_min, zp_from_max)
        rounded = np.where(np.isnan(zp_d), 0.0, round_half_away(np.nan_to_num(zp_d)))
    nudged = np.where(zp_d <= qmin, qmin, np.where(zp_d >= qmax, qmax, rounded))
    return scale, nudged.astype(np.int64)


def asymmetric_quantize_floats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``NeonAsymmetricQuantizeFloats`` per row of a float32 [R, K] array.

    ``rmin, rmax`` from :func:`neon_min_max` (0 included; NaN ignored, see there);
    ``rmin == rmax`` gives zeros, scale 1, offset 0. Otherwise, in double:
    ``scale = f32(rmax - rmin) / 255`` (the subtraction is in float32), zero point
    from whichever of min/max has the smaller error, nudged into [-128, 127] and
    rounded half away (:func:`_asymmetric_zero_point`); the stored scale is
    ``f32(scale)``, ``inv = f32(1.0 / double(f32 scale))`` (0 for a zero scale). The
    first ``K & ~7`` values: ``q = clamp(wrap32(round(f32(x * inv)) + offset), -128,
    127)`` (int32 vector add: INT32_MIN from a NaN plus a negative offset wraps to a
    large positive value); the rest: ``q = clamp(int32(f32(offset + roundf(f32(x *
    inv)))), -128, 127)`` (a float addition; NaN gives 0, see
    :func:`_float_to_int32_via_int64`). Measured against
    LiteRT's hybrid FULLY_CONNECTED (BUILTIN_REF and BUILTIN_WITHOUT_DEFAULT_DELEGATES).
    Returns (int8 [R, K], float32 scales [R], int64 offsets [R]).
    """
    rows = np.asarray(rows, F32)
    r, k = rows.shape
    if k == 0:
        return np.zeros((r, 0), np.int8), np.ones(r, F32), np.zeros(r, np.int64)
    rmin, rmax = _row_ranges(rows, neon_min_max)
    same = rmin == rmax
    scale, nudged = _asymmetric_zero_point(np.where(same, F32(-1), rmin).astype(F32),
                                           np.where(same, F32(1), rmax).astype(F32))
    offset = np.where(same, 0, nudged).astype(np.int64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
        scale_f = np.where(same, F32(1), scale.astype(F32)).astype(F32)
        inv = np.where(scale_f == 0, 0.0, 1.0 / np.where(scale_f == 0, F32(1), scale_f).astype(np.float64))
        inv = inv.astype(F32)
        prod = (rows * inv[:, None]).astype(F32)
        split = _split(k)
        q = np.empty((r, k), np.int64)
        q[:, :split] = wrap_int32(_round_neon_x86(prod[:, :split]) + offset[:, None])
        tail = (offset[:, None].astype(F32) + round_half_away(prod[:, split:]).astype(F32)).astype(F32)
        q[:, split:] = _float_to_int32_via_int64(tail)
    q = np.clip(q, -128, 127)
    q[same] = 0
    return q.astype(np.int8), scale_f, offset


def batch_quantize_floats(rows: np.ndarray, asymmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``tensor_utils::BatchQuantizeFloats``: (int8 rows, float32 scales, int64 offsets)."""
    if asymmetric:
        return asymmetric_quantize_floats(rows)
    q, s = symmetric_quantize_floats(rows)
    return q, s, np.zeros(len(s), np.int64)


# ---------------------------------------------------------------------------
# SSE int8 kernels of tensor_utils (sse_tensor_utils.cc)
# ---------------------------------------------------------------------------
def sse_matrix_batch_vector_dot(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The int32 dot products of ``SseMatrixBatchVectorMultiplyAccumulateImpl``:
    ``q [B, K] . w [N, K]^T``, exact except for one quirk of ``DotProdInt8x4x4``
    (and its AVX2 twin), used on the first ``K & ~15`` columns: it moves the sign of
    the input onto the weight with ``_mm_sign_epi8``, and negating an int8 -128 gives
    -128, so a weight of -128 times a negative input counts as ``128 * x`` instead of
    ``-128 * x``. (Symmetric int8 weights never hold -128; uint8 hybrid weights read
    as int8 can.) Returns int64, wrapped to int32.
    """
    qf = np.asarray(q, np.float64)
    wf = np.asarray(w, np.float64)
    acc = exact_int_matmul(qf, wf.T)
    k16 = qf.shape[-1] & ~15
    if k16:
        bad = (wf[:, :k16] == -128).astype(np.float64)
        if bad.any():
            qneg = np.minimum(qf[:, :k16], 0.0)
            acc = acc + 256 * exact_int_matmul(qneg, bad.T)
    return wrap_int32(acc)


def sse_reduction_sum_int8(m: np.ndarray) -> np.ndarray:
    """``SseReductionSumVector`` for int8 rows [R, K]: blocks of 16 are summed pairwise
    into eight int16 lanes (``_mm_maddubs_epi16`` then ``_mm_add_epi16``, which wraps),
    a block of 8 is added into the lanes, the lanes are summed in int32 and the last
    ``K % 8`` values added one by one. Returns int64 values in the int32 range."""
    w = np.asarray(m, np.int64)
    r, k = w.shape
    k16 = k & ~15
    lanes = np.zeros((r, 8), np.int64)
    if k16:
        lanes += w[:, :k16].reshape(r, k16 // 16, 8, 2).sum(axis=(1, 3))
    col = k16
    if col < (k & ~7):
        lanes += w[:, col:col + 8]
        col += 8
    lanes = ((lanes + 2**15) & 0xFFFF) - 2**15
    return wrap_int32(lanes.sum(axis=1) + w[:, col:].sum(axis=1))


# Eigen's ptanh_float (EIGEN_FAST_MATH, no FMA): a [9/8] rational approximation in float32.
_TANH_CLAMP = F32(7.90738964080810547)
_TANH_ALPHA = [F32(v) for v in (1.394553628e-8, 2.102733560e-5, 3.520756727e-3, 1.340216100e-1)]
_TANH_BETA = [F32(v) for v in (8.015776984e-7, 3.326951409e-4, 2.597254514e-2, 4.673548340e-1, 1.0)]


def eigen_tanh_f32(v: np.ndarray) -> np.ndarray:
    """``Eigen::ArrayBase::tanh()`` on float32 as the x86 wheel computes it (measured
    bit-exact against LiteRT's fused TANH on 10^4 values): clamp to +-7.90738964f,
    ``p = x + x^3 * P(x^2)``, ``q = Q(x^2)`` by Horner with separate float32 multiply
    and add (no FMA), result ``p / q``. Used by ``tensor_utils::ApplyTanhToVector``."""
    x = np.clip(np.asarray(v, F32), -_TANH_CLAMP, _TANH_CLAMP).astype(F32)
    x2 = (x * x).astype(F32)
    x3 = (x2 * x).astype(F32)
    p = np.full(x.shape, _TANH_ALPHA[0], F32)
    for a in _TANH_ALPHA[1:]:
        p = ((p * x2).astype(F32) + a).astype(F32)
    q = np.full(x.shape, _TANH_BETA[0], F32)
    for b in _TANH_BETA[1:]:
        q = ((q * x2).astype(F32) + b).astype(F32)
    p = ((x3 * p).astype(F32) + x).astype(F32)
    return (p / q).astype(F32)


def float_to_int32_trunc(x: np.ndarray) -> np.ndarray:
    """``static_cast<int32_t>(float)`` (truncation; x86 out-of-range gives INT32_MIN)."""
    return float_to_int32_x86(np.asarray(x, np.float64))
