"""DEPTHWISE_CONV_2D: float32, int8 (per-channel along dimension 3 or per-tensor
weights), uint8 (legacy), 16x8 (int16 activations, int8 weights, int64 bias) and
hybrid (float32 input, int8 weights).

Mirrors ``tflite/kernels/depthwise_conv.cc`` (Prepare checks, multipliers, which
depth multiplier each path uses) and the reference kernels
``tflite/kernels/internal/reference/depthwiseconv_float.h``,
``reference/depthwiseconv_uint8.h`` (``DepthwiseConvBasicKernel<kAwayFromZero>``,
i.e. the double-rounding MBQM) and ``reference/integer_ops/depthwise_conv.h``
(``DepthwiseConvPerChannel`` for int8 and int16, ``DepthwiseConvHybridPerChannel``).

Output channel ``oc = ic * depth_multiplier + m`` reads input channel ``ic`` and
filter ``[0, fy, fx, oc]``; taps outside the image are skipped. Integer paths::

    acc = sum_{fy,fx} (x + input_offset) * (w + weights_offset) + bias[oc]
    int8/uint8: out = clamp(MBQM(int32 acc, m[oc], shift[oc]) + output_offset)
    16x8:       out = clamp(MBQM64(int64 acc, m[oc], shift[oc]))

``weights_offset`` is ``-filter_zero_point`` for uint8 and 0 otherwise (the int8
kernel ignores a filter zero point, as LiteRT does). Multipliers come from
``PopulateConvolutionQuantizationParams``: ``double(s_in) * double(s_w[c]) /
double(s_out)`` for int8/int16; uint8 uses ``double(f32(s_in * s_w)) / s_out``. The
sums are exact in int64 and wrap to int32 where the C++ accumulator is int32.

Float: ``total`` starts at 0.0f and adds ``f32(x * w)`` tap by tap in (fy, fx)
order, then ``total + bias`` and the clamp. Hybrid: each batch is quantized
asymmetrically (:mod:`runtime.ops._hybrid`), ``acc = sum w * (q - offset_b)`` in
int32, ``out = f32(f32(acc) * f32(scale[oc] * factor_b)) + bias[oc]``, clamped.

Depth multiplier: the float, int8 and uint8 paths derive it from the shapes
(``ComputeDepthMultiplier``); the 16x8 and hybrid paths use the options'
``depth_multiplier``, so there it must equal ``out_channels / in_channels``
(LiteRT leaves outputs unwritten or reads past the filter otherwise, unchecked).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  quantize_multiplier_array, wrap_int32)

from quantcore.schema.model import TensorType

from . import _fastconv, _gemm, _hybrid, _paths
from ._common import clamp_float, FLOAT32, FLT_MAX, INT8, INT16, INT32, INT64, UINT8, OpContext

# "optimized": optimized_integer_ops::DepthwiseConvGeneral (int8: NEON Quantize in blocks
# of 8 channels, ties up, gemmlowp for the leftover channels), the optimized hybrid
# kernel; uint8 (NEON, but rounding as gemmlowp) and 16x8 (the reference kernel) round
# as on the reference path. "xnnpack": XNNPACK's fp32 requantization where the delegate takes the
# operator. See runtime/ops/_paths.py.
NUMERICS = ("reference", "optimized", "xnnpack")

INT16_MAX = 32767


@dataclass(frozen=True)
class DepthwiseParams:
    kind: str                                  # "float", "int8", "uint8", "int16", "hybrid"
    path: str
    stride: tuple[int, int]                    # (stride_height, stride_width)
    dilation: tuple[int, int]                  # (dilation_height_factor, dilation_width_factor)
    padding_values: tuple[int, int, int, int]  # top, bottom, left, right
    out_hw: tuple[int, int]
    depth_multiplier: int
    out_channels: int
    has_bias: bool
    input_offset: int = 0
    weights_offset: int = 0
    output_offset: int = 0
    output_multiplier: np.ndarray | None = None   # per output channel (int64)
    output_shift: np.ndarray | None = None
    quantized_activation_min: int = 0
    quantized_activation_max: int = 0
    float_activation_min: float = 0.0
    float_activation_max: float = 0.0
    per_channel_scale: np.ndarray | None = None   # hybrid: float32 filter scale per channel
    out_dtype: type = np.float32
    requant: _paths.Requant | None = None         # non-reference paths (None: reference MBQM)
    hybrid_split: int | None = None               # optimized hybrid: channels in NEON blocks of 4
    fast: _fastconv.FastDepthwise | None = None   # exact float32 path (runtime/ops/_fastconv.py)
    numerics: str = "reference"                   # the LiteRT path reproduced (float NaN details)


def prepare(ctx: OpContext) -> DepthwiseParams:
    """Validation and multipliers (:func:`_prepare`), plus the fast exact path's plan."""
    return _fastconv.attach_depthwise(_prepare(ctx), ctx)


def _prepare(ctx: OpContext) -> DepthwiseParams:
    o = ctx.options
    ctx.check_io_count((2, 3), 1)
    x = ctx.input(0)
    w = ctx.input(1)
    has_bias = len(ctx.inputs) == 3
    b = ctx.input(2) if has_bias else None   # -1 here: "optional but was expected"
    out = ctx.output(0)
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(len(w.shape) == 4, f"filter must be 4-D, is {list(w.shape)}", ".inputs[1]")
    sh, sw = o.get("stride_h", 0), o.get("stride_w", 0)
    dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    ctx.check(0 < dh <= INT16_MAX and 0 < dw <= INT16_MAX,
              f"dilations must be in [1, {INT16_MAX}], are ({dh}, {dw})", ".builtin_options")
    ctx.check(0 < sh <= INT16_MAX and 0 < sw <= INT16_MAX,
              f"strides must be in [1, {INT16_MAX}], are ({sh}, {sw})", ".builtin_options")
    n, h, wd, cin = x.shape
    _, kh, kw, cout = w.shape
    ctx.check(min(h, wd, cin) > 0, f"input has a zero-sized dimension: {list(x.shape)}", ".inputs[0]")
    ctx.check(min(kh, kw, cout) > 0, f"filter has a zero-sized dimension: {list(w.shape)}", ".inputs[1]")

    hybrid = x.type == FLOAT32 and w.type == INT8
    if b is None and x.type in (INT8, UINT8, FLOAT32) and _paths.path_of(ctx) in ("optimized", "xnnpack"):
        # The optimized float/int8/uint8/hybrid kernels copy or load the bias unconditionally
        # (DepthwiseConvInitAccBuffer's memcpy, vld1q_f32(bias_data + c)): LiteRT dies with
        # SIGSEGV on such a model (measured); XNNPACK declines a depthwise without bias.
        # (16x8 runs the reference kernel on every path.)
        raise NumericsPathError(f"{ctx.path}: DEPTHWISE_CONV_2D without a bias crashes LiteRT's "
                                "optimized kernel (null bias pointer); numerics='reference' runs it")
    if x.type not in (FLOAT32, UINT8, INT8, INT16):
        raise ctx.unsupported(f"input type {x.type_name}")
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    if not hybrid:
        if w.type == int(TensorType.INT4):
            raise ctx.unsupported("int4 filters")
        if x.type == INT16:
            ctx.check_type(w, (INT8,), "filter")
        elif w.type != x.type:
            raise ctx.unsupported(f"{x.type_name} input with a {w.type_name} filter")
    if x.type == INT16:
        ctx.require_quantized(x)
        ctx.require_quantized(out)
        ctx.check(x.zp == 0 and out.zp == 0, "16x8 DEPTHWISE_CONV_2D needs zero points 0 (symmetric int16)")
    ctx.check(w.shape[0] == 1, f"filter must be [1, H, W, C], is {list(w.shape)}", ".inputs[1]")
    ctx.check(cout % cin == 0, f"filter channels {cout} not a multiple of input channels {cin}")
    if b is not None:
        bw = ctx.where(b)
        if x.type in (UINT8, INT8):
            ctx.check_type(b, (INT32,), "bias")
        elif x.type == INT16:
            ctx.check_type(b, (INT64,), "bias")
        else:
            ctx.check(b.type == FLOAT32, f"bias must be float32, is {b.type_name}", bw)
        if x.type != FLOAT32 and b.quantized:
            ctx.check(len(b.zero_point) > 1 or b.zp == 0, "bias zero point must be 0", bw)
        ctx.check(len(b.shape) == 1, f"bias must be 1-D, is {list(b.shape)}", bw)
        ctx.check(b.shape[0] == cout, f"bias has {b.shape[0]} elements for {cout} channels", bw)

    padding = o.get("padding", 0)
    oh = _hybrid.out_size_checked(ctx, padding, h, kh, sh, dh, "height")
    ow = _hybrid.out_size_checked(ctx, padding, wd, kw, sw, dw, "width")
    pt = _hybrid.padding_with_offset(sh, dh, h, kh, oh)[0]
    pl = _hybrid.padding_with_offset(sw, dw, wd, kw, ow)[0]
    # The reference kernels only use the leading padding; the trailing side follows
    # from the output size. Pad enough for every tap the loops reach.
    pb = max((oh - 1) * sh + (kh - 1) * dh + 1 - h - pt, 0)
    pr = max((ow - 1) * sw + (kw - 1) * dw + 1 - wd - pl, 0)
    dm = cout // cin
    common = dict(path=ctx.path, numerics=_paths.path_of(ctx), stride=(sh, sw), dilation=(dh, dw),
                  padding_values=(pt, pb, pl, pr),
                  out_hw=(oh, ow), depth_multiplier=dm, out_channels=cout, has_bias=b is not None)

    if x.type == INT16 or hybrid:
        opt_dm = o.get("depth_multiplier", 0)
        ctx.check(opt_dm == dm, f"depth_multiplier option {opt_dm} != output channels / input channels "
                  f"= {dm}; LiteRT's {'hybrid' if hybrid else '16x8'} kernel loops over the option "
                  "(unwritten outputs or reads past the filter)", ".builtin_options")

    if hybrid:
        scales = _hybrid.hybrid_filter_scales(ctx, w, "DEPTHWISE_CONV_2D")
        qd = w.quantized_dimension
        ctx.check(len(scales) == w.shape[qd], f"filter has {len(scales)} scales, dimension {qd} has "
                  f"{w.shape[qd]} entries", ".inputs[1]")
        ctx.check(len(scales) >= cout, f"filter has {len(scales)} scales for {cout} output channels "
                  "(LiteRT would read scales past the end)", ".inputs[1]")
        ctx.check(n > 0, "hybrid DEPTHWISE_CONV_2D needs a batch size > 0", ".inputs[0]")
        lo, hi = ctx.float_activation_range()
        split = None
        if _paths.path_of(ctx) in ("optimized", "xnnpack"):   # XNNPACK declines mixed types
            split = cout - cout % 4
        return DepthwiseParams(kind="hybrid", per_channel_scale=scales[:cout], hybrid_split=split,
                               float_activation_min=lo, float_activation_max=hi, **common)
    if x.type == FLOAT32:
        lo, hi = ctx.float_activation_range()
        if _paths.path_of(ctx) == "xnnpack":
            # XNNPACK's clamp has no FLT_MAX bound: NONE and RELU leave +-inf results
            # (measured against LiteRT 2.3 BUILTIN); NaN passes its clamp
            lo = -np.inf if lo <= -FLT_MAX else lo
            hi = np.inf if hi >= FLT_MAX else hi
        return DepthwiseParams(kind="float", float_activation_min=lo, float_activation_max=hi, **common)

    ctx.require_quantized_filter(x, w, out, cout)
    lo, hi = ctx.activation_range(out)
    if x.type == UINT8:
        ctx.check_uint8_bias_scale(x, w, b, out, ".inputs[2]")
        m, s = quantize_multiplier(float(np.float32(x.scale[0] * w.scale[0])) / float(out.s))
        requant = _path_requant(ctx, x, w, b, out, np.full(cout, m, np.int64),
                                np.full(cout, s, np.int64), lo, hi, cin)
        return DepthwiseParams(kind="uint8", input_offset=-x.zp, weights_offset=-w.zp, output_offset=out.zp,
                               requant=requant,
                               output_multiplier=np.full(cout, m, np.int64),
                               output_shift=np.full(cout, s, np.int64), quantized_activation_min=lo,
                               quantized_activation_max=hi, out_dtype=np.uint8, **common)
    filter_scales = np.broadcast_to(w.scale.astype(np.float64), (cout,))
    m, s = quantize_multiplier_array(float(x.s) * filter_scales / float(out.s))
    requant = _path_requant(ctx, x, w, b, out, m, s, lo, hi, cin) if x.type == INT8 else None
    return DepthwiseParams(kind="int8" if x.type == INT8 else "int16", input_offset=-x.zp,
                           requant=requant,
                           output_offset=out.zp, output_multiplier=m, output_shift=s,
                           quantized_activation_min=lo, quantized_activation_max=hi,
                           out_dtype=np.int8 if x.type == INT8 else np.int16, **common)


def _path_requant(ctx: OpContext, x, w, b, out, m: np.ndarray, s: np.ndarray, lo: int, hi: int,
                  cin: int) -> _paths.Requant | None:
    """The requantization of ``ctx.numerics`` for int8/uint8 (None: the reference one).

    optimized: int8 -> ``channel_blocks`` (``optimized_ops::Quantize``); uint8 rounds as
    the reference kernel (see _paths.py). xnnpack (``VisitDepthwiseConv2DNode``): a 1-D bias is required, the
    filter may be per-channel along dimension 3 only, and XNNPACK derives the input
    channels from the options' ``depth_multiplier``, which must match the shapes.
    """
    path = _paths.path_of(ctx)
    cout = int(w.shape[3])
    dm_option = ctx.options.get("depth_multiplier", 0)
    if (path == "xnnpack" and b is not None and len(b.shape) == 1 and dm_option > 0
            and cout % dm_option == 0 and cout // dm_option == cin
            and _paths.xnnpack_takes(ctx, x, w, b, out, channel_dim=3, bias_required=True)):
        return _paths.xnnpack_requant(ctx, x, w, out, cout)
    if path not in ("optimized", "xnnpack") or x.type == UINT8:
        return None
    return _paths.Requant(mode="channel_blocks", output_offset=out.zp, act_min=lo, act_max=hi,
                          multiplier=np.asarray(m, np.int64), shift=np.asarray(s, np.int64), block=8)


def _taps(p: DepthwiseParams, xc: np.ndarray, kh: int, kw: int):
    """Yield (fy, fx, input window repeated to output channels [N, OH, OW, Cout])."""
    padded = _hybrid.zero_pad_nhwc(xc, p.padding_values)
    for fy in range(kh):
        for fx in range(kw):
            win = _hybrid.window_slices(padded, fy, fx, p.stride, p.dilation, p.out_hw)
            yield fy, fx, np.repeat(win, p.depth_multiplier, axis=3)


def _inside_image(p: DepthwiseParams, x_shape: tuple[int, ...], fy: int, fx: int) -> np.ndarray:
    """[OH, OW, 1] mask: output positions whose tap (fy, fx) reads inside the image.

    The float kernels of BUILTIN_REF and BUILTIN_WITHOUT_DEFAULT_DELEGATES skip taps
    outside the image, so padding never meets an inf/NaN weight (``0 * inf`` would be
    NaN); XNNPACK (BUILTIN) reads zeros there and gives NaN (measured, LiteRT 2.3). Only
    taps with a non-finite weight need the mask: for finite weights both agree.
    """
    (sh, sw), (dh, dw) = p.stride, p.dilation
    pt, _, pl, _ = p.padding_values
    iy = np.arange(p.out_hw[0]) * sh - pt + fy * dh
    ix = np.arange(p.out_hw[1]) * sw - pl + fx * dw
    return (((iy >= 0) & (iy < x_shape[1]))[:, None] & ((ix >= 0) & (ix < x_shape[2]))[None, :])[..., None]


_ACC_BUFFER_FLOATS = 4832   # kAccBufferMaxSize of optimized/depthwiseconv_float.h


def _scalar_leftovers_clamp_nan_to_max(clamped: np.ndarray, raw: np.ndarray, act_max: float) -> None:
    """The optimized float kernel's output stage (``optimized_ops::FloatDepthwiseConvImpl``):
    per output row, pixels are accumulated in segments of ``4832 // C`` pixels; each
    segment's ``C * pixels`` values are clamped 16 and 4 at a time with NEON (NaN kept)
    and the last ``count % 4`` one by one with ``std::max(min, std::min(max, v))``, where
    ``std::min(max, NaN)`` is ``max``: a NaN there becomes the activation maximum
    (measured, BUILTIN_WITHOUT_DEFAULT_DELEGATES). Edits ``clamped`` [N, OH, OW, C] in place."""
    n, oh, ow, c = raw.shape
    seg = max(_ACC_BUFFER_FLOATS // c, 1)
    for start in range(0, ow, seg):
        stop = min(ow, start + seg)
        count = (stop - start) * c
        if count % 4 == 0:
            continue
        raw_seg = raw[:, :, start:stop, :].reshape(n, oh, count)[..., count - count % 4:]
        out_seg = clamped[:, :, start:stop, :].reshape(n, oh, count)
        out_seg[..., count - count % 4:] = np.where(np.isnan(raw_seg), np.float32(act_max),
                                                   out_seg[..., count - count % 4:])
        clamped[:, :, start:stop, :] = out_seg.reshape(n, oh, stop - start, c)


def _int_sum(p: DepthwiseParams, xc: np.ndarray, wc: np.ndarray) -> np.ndarray:
    """Exact sum over the taps of window * filter, int64 [N, OH, OW, Cout]."""
    _, kh, kw, _ = wc.shape
    acc = np.zeros((xc.shape[0],) + p.out_hw + (p.out_channels,), np.int64)
    for fy, fx, win in _taps(p, xc, kh, kw):
        acc += win * wc[0, fy, fx]
    return acc


def eval(p: DepthwiseParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> list[np.ndarray]:  # noqa: A001
    if x.shape[0] == 0 or 0 in p.out_hw:
        return [np.zeros((x.shape[0],) + p.out_hw + (p.out_channels,), p.out_dtype)]
    _, kh, kw, _ = w.shape
    if p.kind == "float":
        xf = np.asarray(x, np.float32)
        wf = np.asarray(w, np.float32)
        total = np.zeros((x.shape[0],) + p.out_hw + (p.out_channels,), np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN sums, as in C
            for fy, fx, win in _taps(p, xf, kh, kw):
                prod = (win * wf[0, fy, fx]).astype(np.float32)
                if p.numerics != "xnnpack" and not np.all(np.isfinite(wf[0, fy, fx])):
                    prod = np.where(_inside_image(p, x.shape, fy, fx), prod, np.float32(0))
                total = (total + prod).astype(np.float32)
            bias = np.asarray(b, np.float32) if p.has_bias else np.zeros(p.out_channels, np.float32)
            out = (total + bias).astype(np.float32)
        clamped = clamp_float(out, p.float_activation_min, p.float_activation_max)
        if p.numerics == "optimized":
            _scalar_leftovers_clamp_nan_to_max(clamped, out, p.float_activation_max)
        return [clamped]
    if p.kind == "hybrid":
        # non-finite inputs give NaN/inf scaling factors (0 * inf): NaN, as in C
        with np.errstate(invalid="ignore", over="ignore"):
            n = x.shape[0]
            q, sf, offset = _hybrid.asymmetric_quantize_floats(np.asarray(x, np.float32).reshape(n, -1))
            xc = (q - offset[:, None]).reshape(x.shape)
            acc = wrap_int32(_int_sum(p, xc, np.asarray(w, np.int64)))
            if p.hybrid_split is not None:
                # optimized DepthwiseConvHybridGeneral: NEON blocks of 4 channels compute
                # f32(f32(acc) * scale[c]) * s_b, the scalar leftovers f32(acc * s_b) * scale[c]
                accf = acc.astype(np.float32)
                sfb = sf[:, None, None, None]
                k = p.hybrid_split
                acc_float = np.empty(accf.shape, np.float32)
                acc_float[..., :k] = ((accf[..., :k] * p.per_channel_scale[:k]).astype(np.float32)
                                      * sfb).astype(np.float32)
                acc_float[..., k:] = ((accf[..., k:] * sfb).astype(np.float32)
                                      * p.per_channel_scale[k:]).astype(np.float32)
            else:
                scale = (p.per_channel_scale[None, :] * sf[:, None]).astype(np.float32)   # [N, Cout]
                acc_float = (acc.astype(np.float32) * scale[:, None, None, :]).astype(np.float32)
            if p.has_bias:
                acc_float = (acc_float + np.asarray(b, np.float32)).astype(np.float32)
            out = clamp_float(acc_float, p.float_activation_min, p.float_activation_max)
            if p.hybrid_split:
                # the NEON blocks clamp with vmaxq_f32 / vminq_f32 (NEON_2_SSE: _mm_max_ps(v,
                # min) gives min for a NaN v): a NaN becomes the activation minimum there
                # (measured, LiteRT 2.3 BUILTIN_WITHOUT_DEFAULT_DELEGATES); the scalar
                # leftovers' std::max/std::min keep NaN
                k = p.hybrid_split
                out[..., :k] = np.where(np.isnan(acc_float[..., :k]), np.float32(p.float_activation_min),
                                        out[..., :k])
            return [out]
    if p.fast is not None and _gemm.ENABLED and p.fast.matches(x):
        return [p.fast(x, p.requant)]
    xc = np.asarray(x, np.int64) + p.input_offset
    wc = np.asarray(w, np.int64) + p.weights_offset
    acc = _int_sum(p, xc, wc)
    if p.has_bias:
        acc = acc + np.asarray(b, np.int64)
    if p.requant is not None:   # optimized / xnnpack (runtime/ops/_paths.py)
        return [p.requant.apply(acc).astype(p.out_dtype)]
    if p.kind == "int16":
        scaled = multiply_by_quantized_multiplier_int64(acc, p.output_multiplier, p.output_shift)
    else:
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), p.output_multiplier, p.output_shift)
    out = np.clip(scaled + p.output_offset, p.quantized_activation_min, p.quantized_activation_max)
    return [out.astype(p.out_dtype)]
