"""CONV_2D: float32, int8 (per-tensor and per-channel weights), uint8 (legacy) and
16x8 (int16 activations, int8 weights, int32 or int64 bias).

Mirrors ``tflite/kernels/conv.cc`` (Prepare checks and multipliers) and the
reference kernels ``tflite/kernels/internal/reference/conv.h`` (float, uint8) and
``reference/integer_ops/conv.h`` (``ConvPerChannel`` for int8 and int16).

Integer arithmetic (docs/quantization.md eq. 14, 15, 17)::

    acc[oc] = sum_{fy,fx,ic} (x[iy, ix, g*Cf + ic] + input_offset)
                           * (w[oc, fy, fx, ic] + weights_offset) + bias[oc]
    out = clamp(MBQM(acc, output_multiplier[oc], output_shift[oc]) + output_offset,
                output_activation_min, output_activation_max)

Taps outside the image are skipped, which equals padding the centred input
``x + input_offset`` with zeros. The sum is computed exactly with a float64 GEMM:
every product is an integer below 2^23 in magnitude and any partial sum of fewer
than 2^30 of them stays below 2^53, so float64 represents each partial sum exactly
whatever order BLAS adds them in. The int32 accumulator then wraps as the C++
int32 does (int8, uint8, 16x8 with int32 bias); 16x8 with int64 bias uses the
64-bit MBQM (eq. 10).

Hybrid (dynamic-range) CONV_2D: float32 input, int8 (or legacy uint8) filter, float32 bias, as
``conv.cc`` EvalHybrid / EvalHybridPerChannel (input quantization: see
:mod:`runtime.ops._hybrid`):

* per-channel filter scales that are not all equal, or groups > 1:
  ``EvalHybridPerChannel`` -> ``reference_ops::HybridConvPerChannel``
  (``reference/conv.h``). Each batch is quantized asymmetrically (offset o_b,
  factor s_b); ``acc = sum w * (q - o_b)`` (int32, taps outside the image skipped);
  ``out = f32(f32(f32(acc) * scale[oc]) * s_b) + bias[oc]``, then the clamp.
* one scale (or equal per-channel scales), groups == 1: ``EvalHybrid`` ->
  ``optimized_ops::HybridConv`` (used on the reference path too: "only one
  implementation"). Each batch is quantized symmetrically; its factor becomes
  ``f32(s_b * scale)``; ``acc = sum w * q`` via im2col (zero padding) and
  ``MatrixBatchVectorMultiplyAccumulate``, which adds ``f32(f32(acc) * s)`` to the
  zero-filled output; then ``BiasAndClamp`` adds the bias and clamps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64,
                                  quantize_multiplier, quantize_multiplier_array, wrap_int32)

from . import _common, _fastconv, _gemm, _hybrid, _paths
from ._common import (FLOAT32, FLT_MAX, INT8, INT16, INT32, INT64, UINT8, OpContext, clamp_float,
                      compute_padding)

# "optimized" and "xnnpack": the requantization of runtime/ops/_paths.py (ruy ties-up
# rounding, XNNPACK fp32); the accumulators are the same on every path.
NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class ConvParams:
    kind: str                      # "float", "int8", "uint8", "int16", "hybrid"
    stride: tuple[int, int]        # (stride_height, stride_width)
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    out_hw: tuple[int, int]
    groups: int
    filter: np.ndarray             # [Cout, KH, KW, Cf]; float64 (+ weights_offset) for ints
    bias: np.ndarray | None
    input_offset: int = 0
    output_offset: int = 0
    output_multiplier: np.ndarray | None = None
    output_shift: np.ndarray | None = None
    output_activation_min: float = 0
    output_activation_max: float = 0
    int64_bias: bool = False
    out_dtype: type = np.float32
    hybrid_scale: np.ndarray | None = None   # hybrid: float32 filter scale per output channel
    hybrid_asymmetric: bool = False          # hybrid: EvalHybridPerChannel (asymmetric input)
    requant: _paths.Requant | None = None    # non-reference paths (None: the reference MBQM)
    hybrid_fused_scale: bool = False         # optimized HybridConvPerChannel: f32(acc) * f32(pcs * s_b)
    fast: _fastconv.FastConv | None = None   # exact float32-BLAS path (runtime/ops/_fastconv.py)
    skip_padding_taps: bool = False          # float: taps outside the image skipped (not 0 * w)


def prepare(ctx: OpContext) -> ConvParams:
    """Validation and multipliers (:func:`_prepare`), plus the fast exact path's plan."""
    return _fastconv.attach_conv(_prepare(ctx), ctx)


def _prepare(ctx: OpContext) -> ConvParams:
    ctx.check_io_count((2, 3), 1)
    x = ctx.input(0)
    w = ctx.input(1)
    b = ctx.input(2, optional=True)
    out = ctx.output(0)
    o = ctx.options
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(len(w.shape) == 4, f"filter must be 4-D, is {list(w.shape)}", ".inputs[1]")
    if not w.is_constant:   # LiteRT runs it; quantcore prepares weights once, in prepare
        raise ctx.unsupported("a non-constant filter (computed by the graph) is not supported yet")
    n, h, wd, cin = x.shape
    cout, kh, kw, cf = w.shape
    ctx.check(min(h, wd, cin, cout, kh, kw, cf) > 0, "zero-sized input or filter dimension")
    ctx.check(cin % cf == 0, f"input channels {cin} not a multiple of filter channels {cf}")
    groups = cin // cf
    ctx.check(cout % groups == 0, f"output channels {cout} not a multiple of {groups} groups")
    sh, sw = o["stride_h"], o["stride_w"]
    dh, dw = o["dilation_h_factor"], o["dilation_w_factor"]
    ctx.check(sh > 0 and sw > 0, f"strides must be > 0, are ({sh}, {sw})", ".builtin_options")
    ctx.check(dh > 0 and dw > 0, f"dilations must be > 0, are ({dh}, {dw})", ".builtin_options")
    oh, pt, pb = compute_padding(o["padding"], h, kh, sh, dh)
    ow, pl, pr = compute_padding(o["padding"], wd, kw, sw, dw)
    ctx.check(oh > 0 and ow > 0, f"output would be empty ({oh}x{ow})")
    padded = n * (h + pt + pb) * (wd + pl + pr) * cin * 8   # the float64 padded input
    ctx.check(padded <= _common.MAX_OUTPUT_BYTES, f"dilations ({dh}, {dw}) pad the input to "
              f"{padded} bytes, over the memory budget of {_common.MAX_OUTPUT_BYTES}", ".builtin_options")
    ctx.check(b is not None, "bias is required (conv.cc: TF_LITE_ENSURE(has_bias))", ".inputs")
    ctx.check(b.num_elements == cout,
              f"bias has {b.num_elements} elements, filter has {cout} output channels", ".inputs[2]")
    ctx.check(b.is_constant, "a non-constant bias is not supported", ".inputs[2]")
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    common = dict(stride=(sh, sw), dilation=(dh, dw), padding=(pt, pb, pl, pr), out_hw=(oh, ow),
                  groups=groups)

    if x.type == FLOAT32:
        if w.type in (INT8, UINT8):
            return _prepare_hybrid(ctx, w, b, cout, common)
        if w.type != FLOAT32:
            raise ctx.unsupported(f"hybrid CONV_2D (float input, {w.type_name} filter)")
        ctx.check(b.type == FLOAT32, "bias must be float32", ".inputs[2]")
        lo, hi = ctx.float_activation_range()
        if _paths.path_of(ctx) == "xnnpack":
            # XNNPACK's clamp has no FLT_MAX bound: NONE and RELU leave +-inf results
            # (measured against LiteRT 2.3 BUILTIN); NaN passes its clamp as the reference's
            lo = -np.inf if lo <= -FLT_MAX else lo
            hi = np.inf if hi >= FLT_MAX else hi
        filt = w.data.astype(np.float32)
        return ConvParams(kind="float", filter=filt, bias=b.data.astype(np.float32).reshape(-1),
                          output_activation_min=lo, output_activation_max=hi,
                          skip_padding_taps=_float_skips_padding_taps(ctx, filt, common), **common)

    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    lo, hi = ctx.activation_range(out)
    if x.type == UINT8:
        ctx.check_type(w, (UINT8,), "filter")
        ctx.require_quantized(w)
        ctx.check(not w.per_channel, "uint8 CONV_2D supports per-tensor filters only", ".inputs[1]")
        ctx.check_type(b, (INT32,), "bias")
        in_prod = float(np.float32(x.scale[0] * w.scale[0]))  # float product (kernel_util.cc)
        if b.quantized:
            ctx.check(abs(float(x.s) * float(w.s) - b.s) / out.s <= 0.02,
                      "bias scale differs from input scale x filter scale by more than 2% of "
                      "the output scale", ".inputs[2]")
        m, s = quantize_multiplier(in_prod / out.s)
        requant = _path_requant(ctx, x, w, b, out, np.full(cout, m, np.int64),
                                np.full(cout, s, np.int64), lo, hi, cout, groups, True)
        return ConvParams(kind="uint8", requant=requant, filter=w.data.astype(np.float64) - w.zp,
                          bias=b.data.astype(np.int64).reshape(-1), input_offset=-x.zp, output_offset=out.zp,
                          output_multiplier=np.array([m] * cout, np.int64),
                          output_shift=np.array([s] * cout, np.int64),
                          output_activation_min=lo, output_activation_max=hi, out_dtype=np.uint8,
                          **common)

    ctx.check_type(w, (INT8,), "filter")
    ctx.require_quantized(w, per_channel_dim=0, symmetric=True)
    ctx.check(len(w.scale) in (1, cout), f"filter has {len(w.scale)} scales for {cout} channels",
              ".inputs[1]")
    filter_scales = np.broadcast_to(w.scale.astype(np.float64), (cout,))
    # PopulateConvolutionQuantizationParams: double(s_in) * double(s_w[c]) / double(s_out)
    m, s = quantize_multiplier_array(float(x.s) * filter_scales / float(out.s))
    if x.type == INT8:
        ctx.check_type(b, (INT32,), "bias")
        bias = b.data.astype(np.int64).reshape(-1)
        int64_bias = False
    else:
        ctx.check(x.zp == 0 and out.zp == 0, "16x8 CONV_2D needs zero points 0 (symmetric int16)")
        ctx.check_type(b, (INT32, INT64), "bias")
        qbt = o.get("quantized_bias_type", FLOAT32)
        if qbt != FLOAT32:
            ctx.check(qbt in (INT32, INT64) and b.type == qbt,
                      f"bias type {b.type_name} differs from quantized_bias_type", ".inputs[2]")
        # conv.cc takes the int32-bias kernel only when quantized_bias_type says INT32;
        # otherwise it reads the bias as int64, past the end of an int32 buffer.
        ctx.check(b.type == INT64 or qbt == INT32,
                  "16x8 CONV_2D with an int32 bias needs quantized_bias_type INT32 (LiteRT "
                  "would read the int32 bias as int64, out of bounds)", ".inputs[2]")
        bias = b.data.astype(np.int64).reshape(-1)
        int64_bias = b.type == INT64
    if b.quantized:
        ctx.check(bool(np.all(b.zero_point == 0)), "bias zero point must be 0", ".inputs[2]")
    requant = _path_requant(ctx, x, w, b, out, m, s, lo, hi, cout, groups,
                            x.type == INT8 or (b.type == INT32 and qbt == INT32))
    return ConvParams(kind="int8" if x.type == INT8 else "int16", filter=w.data.astype(np.float64),
                      requant=requant,
                      bias=bias, input_offset=-x.zp, output_offset=out.zp, output_multiplier=m,
                      output_shift=s, output_activation_min=lo, output_activation_max=hi,
                      int64_bias=int64_bias, out_dtype=np.int8 if x.type == INT8 else np.int16,
                      **common)


def _float_skips_padding_taps(ctx: OpContext, filt: np.ndarray, common: dict) -> bool:
    """Whether float CONV_2D must skip the taps outside the image instead of multiplying
    zero padding by the weight. The two differ only for an inf/NaN weight (``0 * inf``
    is NaN), so finite filters (decided here, the filter is constant) keep the GEMM.

    Measured against LiteRT 2.3 (tests/ops/test_conv_2d.py, non-finite weights):
    ``reference_ops::Conv`` (BUILTIN_REF, and the optimized path's grouped
    convolutions, conv.cc EvalFloat) skips out-of-bounds taps; ``optimized_ops::Conv``
    (BUILTIN_WITHOUT_DEFAULT_DELEGATES, groups == 1) runs im2col with zero padding, and
    XNNPACK (BUILTIN) reads a zero buffer for the padding: both give NaN there.
    """
    if not any(common["padding"]) or bool(np.all(np.isfinite(filt))):
        return False
    path = _paths.path_of(ctx)
    if path == "xnnpack" or (path == "optimized" and common["groups"] == 1):
        return False
    return True


def _accumulate_skipping_padding(p: ConvParams, x: np.ndarray) -> np.ndarray:
    """Float convolution sum [N, OH, OW, Cout] as ``reference_ops::Conv`` forms it: a tap
    whose input position lies outside the image contributes nothing (not ``0 * w``)."""
    n, h, wd, cin = x.shape
    cout, kh, kw, cf = p.filter.shape
    pt, pb, pl, pr = p.padding
    oh, ow = p.out_hw
    (sh, sw), (dh, dw) = p.stride, p.dilation
    fpg = cout // p.groups
    padded = _hybrid.zero_pad_nhwc(x, p.padding)
    acc = np.zeros((n, oh, ow, cout), np.float32)
    for fy in range(kh):
        iy = np.arange(oh) * sh - pt + fy * dh
        for fx in range(kw):
            ix = np.arange(ow) * sw - pl + fx * dw
            valid = ((iy >= 0) & (iy < h))[:, None] & ((ix >= 0) & (ix < wd))[None, :]
            if not valid.any():
                continue
            win = _hybrid.window_slices(padded, fy, fx, p.stride, p.dilation, p.out_hw)
            parts = [win[..., g * cf:(g + 1) * cf] @ p.filter[g * fpg:(g + 1) * fpg, fy, fx, :].T
                     for g in range(p.groups)]
            tap = parts[0] if p.groups == 1 else np.concatenate(parts, axis=-1)
            acc += np.where(valid[None, :, :, None], tap, np.float32(0))
    return acc


def _path_requant(ctx: OpContext, x, w, b, out, m: np.ndarray, s: np.ndarray, lo: int, hi: int,
                  cout: int, groups: int, gemm: bool) -> _paths.Requant | None:
    """The requantization of ``ctx.numerics`` (None: the reference kernel's).

    optimized (conv.cc Eval*): grouped convolutions run the reference kernel; 16x8 runs
    ``optimized_integer_ops::ConvPerChannel`` only with an int32 bias (``gemm``; zero
    points are 0 here), otherwise the reference kernel. The GEMM path (ruy, or the
    NEON ``CustomGemv`` for a single output pixel) rounds ties up.
    xnnpack: operators the delegate takes (``VisitConv2DNode``: int8/uint8, bias
    present and 1-D) use its fp32 requantization; the rest run the optimized kernels.
    """
    path = _paths.path_of(ctx)
    if path == "xnnpack" and len(b.shape) == 1 and _paths.xnnpack_takes(
            ctx, x, w, b, out, channel_dim=0, bias_required=True):
        return _paths.xnnpack_requant(ctx, x, w, out, cout)
    if path in ("optimized", "xnnpack") and groups == 1 and gemm:
        return _paths.Requant(mode="ties_up", output_offset=out.zp, act_min=lo, act_max=hi,
                              multiplier=np.asarray(m, np.int64), shift=np.asarray(s, np.int64))
    return None


def _prepare_hybrid(ctx: OpContext, w, b, cout: int, common: dict) -> ConvParams:
    """Float input, int8 filter (conv.cc Prepare with is_hybrid).

    A UINT8 filter is also hybrid in LiteRT: its bytes are read as int8 (the old
    weight quantizer stored int8 values in uint8 tensors), its zero point ignored,
    and it always takes the per-tensor kernel with ``scale[0]``.
    """
    ctx.check(b.type == FLOAT32, "bias must be float32", ".inputs[2]")
    scales = _hybrid.hybrid_filter_scales(ctx, w, "CONV_2D")
    per_channel = w.type == INT8 and len(scales) > 1 and bool(np.any(scales != scales[0]))
    grouped = common["groups"] > 1
    if per_channel:
        # checks of the wheel's conv.cc (messages at conv.cc:751 and :484)
        ctx.check(w.quantized_dimension == 0, "hybrid per-channel filter must be quantized along "
                  f"dimension 0, is {w.quantized_dimension}", ".inputs[1]")
    if per_channel or grouped:
        ctx.check(len(scales) == cout, f"filter has {len(scales)} scales for {cout} output channels "
                  "(the per-channel hybrid kernel needs one per channel)", ".inputs[1]")
    lo, hi = ctx.float_activation_range()
    if _paths.path_of(ctx) == "xnnpack" and w.type == INT8:
        # VisitConv2DNode takes float input with int8 filter as a dynamically quantized
        # (qd8) convolution, whose arithmetic quantcore does not reproduce yet.
        raise NumericsPathError(f"{ctx.path}: hybrid CONV_2D (float input, int8 filter) runs in "
                                "XNNPACK's dynamically quantized kernels on LiteRT's xnnpack path, "
                                "which quantcore does not implement; use numerics='optimized'")
    filt = w.data.view(np.int8) if w.type == UINT8 else w.data
    return ConvParams(kind="hybrid", filter=filt.astype(np.float64), bias=b.data.astype(np.float32).reshape(-1),
                      output_activation_min=lo, output_activation_max=hi,
                      hybrid_scale=scales if (per_channel or grouped) else scales[:1],
                      hybrid_asymmetric=per_channel or grouped,
                      hybrid_fused_scale=_paths.path_of(ctx) != "reference" and not grouped,
                      **common)


def _eval_hybrid(p: ConvParams, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float32)
    if p.hybrid_asymmetric:
        q, sf, offset = _hybrid.asymmetric_quantize_floats(flat)
        xc = (q - offset[:, None]).astype(np.float64).reshape(x.shape)
        acc = wrap_int32(np.rint(_accumulate(p, xc)).astype(np.int64))
        if p.hybrid_fused_scale:
            # optimized_ops::HybridConvPerChannel: f32(acc) * f32(scale[oc] * s_b)
            fused = (p.hybrid_scale[None, :] * sf[:, None]).astype(np.float32)
            acc_float = (acc.astype(np.float32) * fused[:, None, None, :]).astype(np.float32)
        else:
            acc_float = (acc.astype(np.float32) * p.hybrid_scale).astype(np.float32)
            acc_float = (acc_float * sf[:, None, None, None]).astype(np.float32)
    else:
        q, sf = _hybrid.symmetric_quantize_floats(flat)
        sf = (sf * p.hybrid_scale[0]).astype(np.float32)
        xq = q.astype(np.float64).reshape(x.shape)
        acc = np.rint(_accumulate(p, xq)).astype(np.int64)
        if p.filter.shape[0] % 4:
            acc = acc - 256 * _psignb_deficit(p, xq)
        acc = wrap_int32(acc)
        prod = (acc.astype(np.float32) * sf[:, None, None, None]).astype(np.float32)
        acc_float = (np.float32(0.0) + prod).astype(np.float32)
    out = (acc_float + p.bias).astype(np.float32)
    return clamp_float(out, p.output_activation_min, p.output_activation_max)


def _psignb_deficit(p: ConvParams, xq: np.ndarray) -> np.ndarray:
    """What LiteRT's SSE int8 dot product loses on a -128 filter value, per output.

    With output channels not a multiple of 4 (otherwise ruy's exact GEMM runs, on CPUs
    with AVX), ``SseMatrixBatchVectorMultiplyAccumulateImpl`` multiplies 16 columns at
    a time as ``|q| * psignb(w, q)``; ``psignb`` negates ``w`` where ``q < 0``, and the
    negation of -128 wraps to -128, so such a product comes out as ``-128 |q|``
    instead of ``128 |q|``. The 8- and 4-column postambles and the scalar tail
    (SSE4.1) are exact. Returns ``sum |q|`` over the affected products (the caller
    subtracts 256 times it). Int8 filters from a quantizer lie in [-127, 127] and
    never meet this; a legacy uint8 filter value 128 does.
    """
    cout, kh, kw, cf = p.filter.shape
    m_cols = kh * kw * cf
    simd_cols = m_cols & ~15
    bad = (p.filter.reshape(cout, m_cols) == -128)
    bad[:, simd_cols:] = False
    if not bad.any():
        return np.zeros(1, np.int64)
    neg = np.maximum(-xq, 0.0)
    deficit = _accumulate(dataclasses.replace(p, filter=bad.reshape(p.filter.shape).astype(np.float64)), neg)
    return np.rint(deficit).astype(np.int64)


def im2col(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int],
           padding: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Patches [N, OH, OW, KH*KW, C] of a zero-padded NHWC input (order fy, fx, c)."""
    pt, pb, pl, pr = padding
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = [xp[:, fy * dh: fy * dh + (oh - 1) * sh + 1: sh, fx * dw: fx * dw + (ow - 1) * sw + 1: sw, :]
            for fy in range(kh) for fx in range(kw)]
    return np.stack(cols, axis=3)


def _accumulate(p: ConvParams, xc: np.ndarray) -> np.ndarray:
    """Grouped convolution sum, [N, OH, OW, Cout], in xc's float type."""
    cout, kh, kw, cf = p.filter.shape
    cols = im2col(xc, kh, kw, p.stride, p.dilation, p.padding, p.out_hw)
    n, oh, ow = cols.shape[:3]
    fpg = cout // p.groups
    outs = []
    for g in range(p.groups):
        a = cols[..., g * cf:(g + 1) * cf].reshape(n * oh * ow, kh * kw * cf)
        wm = p.filter[g * fpg:(g + 1) * fpg].reshape(fpg, kh * kw * cf).astype(xc.dtype)
        outs.append(a @ wm.T)
    acc = outs[0] if p.groups == 1 else np.concatenate(outs, axis=1)
    return acc.reshape(n, oh, ow, cout)


def eval(p: ConvParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> list[np.ndarray]:  # noqa: A001
    if x.shape[0] == 0:  # an empty batch: LiteRT's loops run zero times
        return [np.zeros((0,) + tuple(p.out_hw) + (p.filter.shape[0],), p.out_dtype)]
    if p.kind == "hybrid":
        # non-finite inputs give NaN/inf scaling factors (0 * inf): NaN, as in C
        with np.errstate(invalid="ignore", over="ignore"):
            return [_eval_hybrid(p, x)]
    if p.kind == "float":
        # inf - inf sums and 0 * inf give NaN, as in C; overflow gives inf
        with np.errstate(invalid="ignore", over="ignore"):
            if p.skip_padding_taps:
                acc = _accumulate_skipping_padding(p, x.astype(np.float32)) + p.bias
            else:
                acc = _accumulate(p, x.astype(np.float32)) + p.bias
        return [clamp_float(acc.astype(np.float32), p.output_activation_min, p.output_activation_max)]
    if p.fast is not None and _gemm.ENABLED and p.fast.matches(x):
        return [p.fast(x, p.requant)]
    xc = x.astype(np.float64) + p.input_offset
    acc = np.rint(_accumulate(p, xc)).astype(np.int64) + p.bias
    if p.requant is not None:   # optimized / xnnpack (runtime/ops/_paths.py)
        return [p.requant.apply(acc).astype(p.out_dtype)]
    if p.int64_bias:
        scaled = multiply_by_quantized_multiplier_int64(acc, p.output_multiplier, p.output_shift)
    else:
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), p.output_multiplier, p.output_shift)
    out = np.clip(scaled + p.output_offset, p.output_activation_min, p.output_activation_max)
    return [out.astype(p.out_dtype)]
