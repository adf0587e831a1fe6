"""Requantization of the GEMM-family kernels (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL) on LiteRT's non-reference numerics
paths, and the XNNPACK delegate's decision whether it takes such an operator.

Every kernel of the family first computes exact integer accumulators (the sums do
not depend on the path: every path accumulates exactly in int32, or int64 for 16x8
with an int64 bias); the paths differ only in how an accumulator becomes an output.
A kernel's ``prepare`` builds a :class:`Requant` for the path ``ctx.numerics``
selects and ``eval`` calls :meth:`Requant.apply` on the accumulators (channels last).

Paths (ai-edge-litert 2.3, x86-64 with AVX-512; sources in google-ai-edge/LiteRT
unless noted):

``gemmlowp`` (the reference kernels, and every scalar leftover loop of the optimized
kernels): ``MultiplyByQuantizedMultiplier`` of ``internal/common.h``, i.e.
``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, M), right)``. The
first step rounds ties toward +inf (its nudge ``1 - 2^30`` for a negative product is
followed by a truncating division), the second half away from zero.

``ties_up``: the same two steps with every tie sent toward +inf (the first step is
identical, so the two modes differ only on negative ties of the right shift)::

    hi  = (wrap32(x << left) * M + 2^30) >> 31          # floor shift
    out = (hi + 2^(right - 1)) >> right                 # right > 0

This is what ruy's x86 kernels compute (google/ruy ``kernel_avx512.cc`` /
``kernel_avx2_fma.cc``: 64-bit multiply, add 2^30, shift 31, then a rounding right
shift with a nudge of 2^(e-1)), and what ARM ``vqrdmulh`` + ``vrshl`` compute; the
NEON code of ``optimized_ops.h`` runs on x86 through NEON_2_SSE
(``optimized/neon_check.h`` defines ``USE_NEON`` when SSE4.1 is on), whose
``vqrdmulhq_s32`` adds bit 31 of the doubled product and whose ``vrshlq_s32`` adds
bit (n-1) after the shift (intel/ARM_NEON_2_x86_SSE ``NEON_2_SSE.h``): ties up as on
ARM. Used by:

* CONV_2D int8/uint8/16x8 (groups == 1; 16x8 only with an int32 bias and zero points
  0): ``optimized_integer_ops::ConvPerChannel`` / ``optimized_ops::Conv`` ->
  ``cpu_backend_gemm::Gemm`` -> ruy (``cpu_backend_gemm_x86.h``: ruy for every
  8-bit GEMM on CPUs with AVX), or the ``CustomGemv`` NEON kernel when the GEMM has
  one column (``cpu_backend_gemm_custom_gemv.h``: vqrdmulh + vrshl, also ties up);
* FULLY_CONNECTED int8/uint8 (and 16x8 with int32 bias, zero points 0):
  ``optimized_integer_ops::FullyConnected(PerChannel)``, ``optimized_ops::
  FullyConnected`` (uint8 -> uint8 and uint8 -> int16), same GEMM backends.

``channel_blocks``: ``optimized_ops::Quantize`` (per-channel overloads, double
rounding build, ``optimized/optimized_ops.h``): channels ``[0, C - C % 8)`` go through
the NEON loop (ties up), the last ``C % 8`` channels through the scalar
``MultiplyByQuantizedMultiplier`` (gemmlowp). Used by DEPTHWISE_CONV_2D int8
(``optimized_integer_ops::DepthwiseConvGeneral``; the 3x3 fast kernels are aarch64
only) and TRANSPOSE_CONV int8 and 16x8-with-int32-bias
(``optimized_integer_ops::TransposeConvV2``).

``flat_blocks``: ``optimized_ops::Quantize`` (uint8 overload): the flattened output in
blocks of 16 through ``MultiplyByQuantizedMultiplier4Rows`` (vqrdmulh + vrshl, ties
up), the last ``size % 16`` values scalar (gemmlowp). TRANSPOSE_CONV uint8.

Not a mode of its own: DEPTHWISE_CONV_2D uint8 on the optimized path
(``optimized_ops::depthwise_conv::DepthwiseConvGeneral``, ``optimized/depthwiseconv_uint8.h``)
runs its NEON output stage as ``vqrdmulh`` then gemmlowp's vector ``RoundingDivideByPOT``
(ties away from zero), or ``x * 2^shift`` then ``vqrdmulh`` for a multiplier of one or
more; ``vqrdmulh`` equals gemmlowp's ``SaturatingRoundingDoublingHighMul`` (see
:func:`srdhm_ties_up`), so every value, vector block or scalar leftover, rounds as the
reference kernel does (measured: tie-heavy cases and a ties-up model both checked).

``fp32`` (the XNNPACK delegate, google/XNNPACK ``qs8_qc8w``/``qu8`` ``*_fp32_*``
microkernels): ``scale[c] = f32(f32(s_in * s_w[c]) / s_out)`` (the C float expression
of ``init_requantization_scale_*``, ``operators/convolution-nhwc.c``) and
``out = clamp(rint(f32(f32(acc) * scale[c])) + zp, lo, hi)`` with ties to even; the
fused-activation bounds are ``lrintf(clamp(f32(f32(bound / s_out) + zp), qmin,
qmax))`` (``xnn_qs8_quantize``/``xnn_qu8_quantize``, ``xnnpack/requantization.h``).

Which operators XNNPACK takes (``tflite/delegates/xnnpack/xnnpack_delegate.cc``,
``Visit*Node``) is decided per operator by :func:`xnnpack_takes`; an operator it
declines runs on LiteRT's optimized kernels, so a kernel in ``"xnnpack"`` mode falls
back to its ``"optimized"`` requantization.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier, rounding_divide_by_pot_ties_up,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._common import INT8, INT32, QMAX, QMIN, UINT8, OpContext, TensorInfo

_F32 = np.float32
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------------------
# Fixed-point primitives with ties toward +inf
# ---------------------------------------------------------------------------
# ruy / NEON ``vqrdmulh``: floor((a * b + 2^30) / 2^31), the same function as gemmlowp's
# SaturatingRoundingDoublingHighMul (quantcore/fixedpoint.py proves it), so the paths
# differ only in the rounding right shift: ``vrshl`` by -e, (x + 2^(e-1)) >> e.
srdhm_ties_up = saturating_rounding_doubling_high_mul
rdbpot_ties_up = rounding_divide_by_pot_ties_up


def _shift_left_wrap(x: np.ndarray, left: np.ndarray) -> np.ndarray:
    """``x << left`` in int32 lanes (``vshlq_s32``/``_mm*_sllv_epi32``): wraps, and a
    count of 32 or more gives 0."""
    x = np.asarray(x, np.int64)
    left = np.asarray(left, np.int64)
    safe = np.minimum(left, 32)
    return np.where(left >= 32, 0, wrap_int32(x << safe))


def mbqm_ties_up(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier`` with both roundings toward +inf (ruy, NEON).

    ``x`` int32 values (int64 array), ``multiplier`` in [2^30, 2^31), ``shift`` the
    TFLite exponent (positive = left). Returns int64 values in the int32 range.
    """
    s = np.asarray(shift, np.int64)
    xs = _shift_left_wrap(x, np.maximum(s, 0))
    return rdbpot_ties_up(srdhm_ties_up(xs, multiplier), np.maximum(-s, 0))


def mbqm_gemmlowp(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """The reference (scalar) ``MultiplyByQuantizedMultiplier``: ties away from zero."""
    return multiply_by_quantized_multiplier(wrap_int32(x), multiplier, shift)


# ---------------------------------------------------------------------------
# XNNPACK fp32 requantization
# ---------------------------------------------------------------------------
def xnn_requantization_scale(s_in: float, s_w: np.ndarray, s_out: float) -> np.ndarray:
    """``f32(f32(s_in * s_w[c]) / s_out)`` per channel (float32)."""
    s_w = np.asarray(s_w, _F32)
    return ((_F32(s_in) * s_w).astype(_F32) / _F32(s_out)).astype(_F32)


def xnn_quantize_bound(value: float, scale: float, zero_point: int, qmin: int, qmax: int) -> int:
    """``xnn_qs8_quantize``/``xnn_qu8_quantize``: ``lrintf(min(max(f32(f32(v / s) + zp),
    qmin), qmax))`` (ties to even; infinite bounds clamp to the type range)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = _F32(_F32(value) / _F32(scale))
        v = _F32(v + _F32(zero_point))
    v = min(max(float(v), float(qmin)), float(qmax))
    return int(np.rint(v))


_ACT_BOUNDS = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def xnn_activation_range(act: int, out: TensorInfo) -> tuple[int, int]:
    """The XNNPACK output clamp of a fused NONE/RELU/RELU_N1_TO_1/RELU6 activation."""
    lo, hi = _ACT_BOUNDS[act]
    qmin, qmax = QMIN[out.type], QMAX[out.type]
    return (xnn_quantize_bound(lo, out.s, out.zp, qmin, qmax),
            xnn_quantize_bound(hi, out.s, out.zp, qmin, qmax))


# ---------------------------------------------------------------------------
# The requantization step of one kernel on one path
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Requant:
    """How accumulators (channels last) become outputs on one numerics path.

    ``mode``: "ties_up", "channel_blocks", "flat_blocks" or "fp32" (see the
    module docstring). ``multiplier``/``shift`` are per output channel (int64);
    ``scale`` is the float32 per-channel scale of the fp32 mode. ``output_offset`` is
    added after the multiplication and the result is clamped to
    ``[act_min, act_max]``. ``block`` is the vector width of the blocked modes;
    ``wrap`` says whether the accumulator is an int32 (wrapped before use).
    """
    mode: str
    output_offset: int
    act_min: int
    act_max: int
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    block: int = 8
    wrap: bool = True

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """int64 outputs (clamped) for int64 accumulators ``acc`` [..., C]."""
        acc = np.asarray(acc, np.int64)
        if self.wrap:
            acc = wrap_int32(acc)
        if self.mode == "fp32":
            # The kernels clamp the float to (max - zp) before the conversion and saturate
            # when narrowing, so no integer wraps: clamp in int64.
            with np.errstate(over="ignore", invalid="ignore"):
                y = (acc.astype(_F32) * self.scale).astype(_F32)
            y = np.clip(y, -(2.0**40), 2.0**40)
            return np.clip(np.rint(y).astype(np.int64) + self.output_offset, self.act_min, self.act_max)
        if self.mode == "ties_up":
            scaled = mbqm_ties_up(acc, self.multiplier, self.shift)
        elif self.mode == "channel_blocks":
            c = acc.shape[-1]
            vec = c - c % self.block
            scaled = np.empty(acc.shape, np.int64)
            scaled[..., :vec] = mbqm_ties_up(acc[..., :vec], self.multiplier[:vec], self.shift[:vec])
            scaled[..., vec:] = mbqm_gemmlowp(acc[..., vec:], self.multiplier[vec:], self.shift[vec:])
        elif self.mode == "flat_blocks":
            flat = acc.reshape(-1)
            m, s = int(self.multiplier[0]), int(self.shift[0])
            vec = flat.size - flat.size % self.block
            out = np.empty(flat.shape, np.int64)
            out[:vec] = mbqm_ties_up(flat[:vec], m, s)
            out[vec:] = mbqm_gemmlowp(flat[vec:], m, s)
            scaled = out.reshape(acc.shape)
        else:  # pragma: no cover
            raise ValueError(f"unknown requantization mode {self.mode!r}")
        return np.clip(wrap_int32(scaled + self.output_offset), self.act_min, self.act_max)


# ---------------------------------------------------------------------------
# XNNPACK delegation (xnnpack_delegate.cc)
# ---------------------------------------------------------------------------
def normal_positive(scales: np.ndarray) -> bool:
    s = np.asarray(scales, _F32)
    tiny = np.finfo(_F32).tiny
    return bool(np.all(np.isfinite(s) & (s >= tiny)))


def _activation_ok(t: TensorInfo) -> bool:
    """``CheckTensorFloat32OrQUInt8Type`` for a quantized activation: int8 or uint8,
    one scale (quantized_dimension 0), a valid XNNPACK quantized tensor."""
    if t.type not in (INT8, UINT8) or not t.quantized or len(t.scale) != 1:
        return False
    return t.quantized_dimension == 0 and normal_positive(t.scale)


def _filter_ok(t: TensorInfo, channel_dim: int) -> bool:
    """``CheckTensorFloat32OrQCInt8Type``: static; int8 per tensor, or per channel along
    ``channel_dim`` with zero point 0; uint8 per tensor only."""
    if not t.is_constant or not t.quantized or not normal_positive(t.scale):
        return False
    if t.type == UINT8:
        return len(t.scale) == 1 and t.quantized_dimension == 0
    if t.type != INT8:
        return False
    if len(t.scale) > 1:
        return t.quantized_dimension == channel_dim and int(t.zero_point[0]) == 0
    return True


def _bias_ok(t: TensorInfo | None) -> bool:
    """``CheckTensorFloat32OrFloat16OrQCInt32Type`` for an int32 bias: static,
    quantized along dimension 0 with zero point 0."""
    if t is None:
        return True
    if t.type != INT32 or not t.is_constant or not t.quantized or t.quantized_dimension != 0:
        return False
    return normal_positive(t.scale) and int(t.zero_point[0]) == 0


def xnnpack_takes(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None,
                  out: TensorInfo, *, channel_dim: int, bias_required: bool) -> bool:
    """Whether LiteRT's XNNPACK delegate takes this quantized CONV_2D /
    DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV (the type and quantization
    checks shared by their ``Visit*Node``; op-specific checks stay in the kernels).

    int8 or uint8 per-tensor input and output of the same type, a static filter of that
    type (int8 per tensor or per channel along ``channel_dim`` with zero point 0; uint8
    per tensor), a static int32 bias (``bias_required``: CONV_2D and DEPTHWISE_CONV_2D
    refuse a missing one) and a fused activation among NONE, RELU, RELU_N1_TO_1, RELU6.
    Any int16 tensor means no. (A requantization scale of 256 or more does not make the
    delegate decline: XNNPACK fails to create the operator and LiteRT's allocation fails,
    see :func:`xnnpack_requant`.)
    """
    if not (_activation_ok(x) and _activation_ok(out)) or x.type != out.type or w.type != x.type:
        return False
    if not _filter_ok(w, channel_dim):
        return False
    if b is None and bias_required:
        return False
    if not _bias_ok(b):
        return False
    return ctx.options.get("fused_activation_function", 0) in (0, 1, 2, 3)


def xnnpack_requant(ctx: OpContext, x: TensorInfo, w: TensorInfo, out: TensorInfo,
                    channels: int, output_offset: int | None = None) -> Requant:
    """The fp32 :class:`Requant` of an operator XNNPACK takes (per-tensor filter scales
    are copied to every channel).

    A requantization scale of 256 or more makes XNNPACK refuse to create the operator
    (``init_requantization_scale_*``); LiteRT then fails the whole allocation ("failed
    to create XNNPACK runtime", measured), so this raises NumericsPathError.
    """
    scale = np.broadcast_to(xnn_requantization_scale(x.s, w.scale, out.s), (channels,)).copy()
    if not bool(np.all(scale < _F32(256.0))):
        raise NumericsPathError(
            f"{ctx.path}: {ctx.op_name}: requantization scale s_in * s_w / s_out = "
            f"{float(np.max(scale))} >= 256: LiteRT's XNNPACK delegate fails to create its runtime "
            "for this model (the xnnpack path cannot run it; numerics='optimized' can)")
    lo, hi = xnn_activation_range(ctx.options.get("fused_activation_function", 0), out)
    return Requant(mode="fp32", output_offset=out.zp if output_offset is None else output_offset,
                   act_min=lo, act_max=hi, scale=scale)


def path_of(ctx: OpContext) -> str:
    """The numerics path a kernel reproduces: ``ctx.numerics`` ("micro" and unknown
    values are the caller's business)."""
    return getattr(ctx, "numerics", "reference")
