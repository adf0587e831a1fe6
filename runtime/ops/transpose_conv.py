"""TRANSPOSE_CONV: float32, int8 (per-channel or per-tensor weights), uint8 (legacy),
16x8 (int16 activations, int8 weights, int64 or int32 bias) and hybrid (float32
input, int8 weights).

Inputs: ``output_shape`` (int32, 1-D), ``weights`` [O, KH, KW, I] (OHWI), ``input``
[N, H, W, I] and an optional ``bias`` [O] (4th input, may be -1). Mirrors
``tflite/kernels/transpose_conv.cc`` (Prepare/Eval checks, multipliers, which
kernel each type uses) and the reference kernels
``tflite/kernels/internal/reference/transpose_conv.h`` (float, uint8,
``HybridTransposeConv``) and ``reference/integer_ops/transpose_conv.h`` (int8;
int16 templated on the int32/int64 scratch type).

Geometry (Eval): the output height/width come from ``output_shape``;
``ComputePaddingHeightWidth`` run "backwards" on them (dilation 1) must give the
input's height/width back, and yields ``pad = max((H - 1) * s + KH - OH, 0) // 2``.
A constant ``output_shape`` is checked in prepare; otherwise in eval.

The reference kernels scatter: every input pixel adds ``x * w`` to the outputs it
touches, at ``out_y = in_y * stride - pad + fy``, dropping positions outside the
output. Integer paths accumulate into an int32 (int64 for 16x8 with int64 bias)
scratch buffer, then requantize per output channel::

    acc = scratch + bias[oc]
    int8/uint8: out = clamp(MBQM(int32 acc, m[oc], shift[oc]) + output_offset)
    16x8:       out = clamp(MBQM(acc, m[oc], shift[oc]))   # 64-bit MBQM for int64

with ``(x + input_offset) * w`` for int8, ``(x + input_offset) * (w + weights_offset)``
for uint8 and ``x * w`` for int16; the int8 kernel ignores a weights zero point.
The sums are exact (order does not matter); int32 scratch wraps as in C++.

TFLite Micro (``numerics="micro"``, tflite-micro ``kernels/transpose_conv.cc``): the
output height/width are the output tensor's declared ones (TFLM never reads
``output_shape``), the padding is ``ComputePaddingHeightWidth`` on them (zero when
VALID's ``OH + s - KH`` is negative), and nothing checks that the input height/width
are the ones the output implies: the scatter drops what falls outside the output. LiteRT
rejects such a model at invoke (``computed_input_height == SizeOfDimension(input, 1)``
after ``ComputePaddingHeightWidthChecked``), so the other paths refuse it and name
numerics='micro'. 16x8 in TFLM always accumulates in int64 with the int64
``MultiplyByQuantizedMultiplier``; an int16 bias is widened to int64 (LiteRT accepts
only int32/int64), an int32 bias would be read as int64 (``runtime.micro`` refuses it);
non-zero int16 zero points, which LiteRT refuses, are accepted and ignored (the int16
kernel adds no offsets; the activation range still uses the output zero point).

Float and hybrid accumulate in float32 in the scatter order, which for one output
element is (in_y, in_x, in_channel) ascending, i.e. (fy, fx) descending and
in_channel ascending; this module adds the terms in exactly that order. Float
terms are ``f32(x * w)``; hybrid terms are ``f32(f32(f32((q - offset_b) * w) *
scale[oc]) * factor_b)`` with the batch quantized asymmetrically
(:mod:`runtime.ops._hybrid`). Then ``acc + bias`` and the clamp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError, NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  quantize_multiplier_array, wrap_int32)

from . import _hybrid, _paths
from ._common import clamp_float, FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext

# "optimized": optimized_integer_ops::TransposeConvV2 / optimized_ops::TransposeConvV2
# (NEON Quantize: per-channel blocks of 8, or flat blocks of 16 for uint8; ties up, scalar
# leftovers gemmlowp); "xnnpack": XNNPACK's fp32 requantization where the delegate takes
# the operator. See runtime/ops/_paths.py. "micro": TFLite Micro (module docstring).
NUMERICS = ("reference", "optimized", "xnnpack", "micro")

INT16_MAX = 32767


@dataclass(frozen=True)
class TransposeConvParams:
    kind: str                          # "float", "int8", "uint8", "int16", "hybrid"
    path: str
    stride: tuple[int, int]            # (stride_height, stride_width)
    padding: int                       # schema Padding (0 SAME, 1 VALID)
    input_hw: tuple[int, int]
    filter_hw: tuple[int, int]
    batches: int
    out_channels: int
    geometry: tuple[int, int, int, int] | None   # (OH, OW, pad_h, pad_w); None: from output_shape
    has_bias: bool
    input_offset: int = 0
    weights_offset: int = 0
    output_offset: int = 0
    output_multiplier: np.ndarray | None = None
    output_shift: np.ndarray | None = None
    quantized_activation_min: int = 0
    quantized_activation_max: int = 0
    float_activation_min: float = 0.0
    float_activation_max: float = 0.0
    int64_scratch: bool = False
    per_channel_scale: np.ndarray | None = None
    out_dtype: type = np.float32
    requant: _paths.Requant | None = None   # non-reference paths (None: reference MBQM)


def _geometry(shape_values, batches: int, in_hw: tuple[int, int], filter_hw: tuple[int, int],
              out_channels: int, stride: tuple[int, int], padding: int, fail) -> tuple[int, int, int, int]:
    """(OH, OW, pad_h, pad_w) from the output_shape values, with transpose_conv.cc's Eval checks."""
    dims = [int(v) for v in np.asarray(shape_values).reshape(-1)]
    if len(dims) != 4:
        raise fail(f"output_shape has {len(dims)} elements, the output must be 4-D")
    n, oh, ow, oc = dims
    if n != batches:
        raise fail(f"output_shape batch {n} differs from the input batch {batches}")
    if oh <= 0 or ow <= 0:
        raise fail(f"output_shape {dims} has a non-positive height or width")
    if oc != out_channels:
        raise fail(f"output_shape channels {oc} differ from the weights' {out_channels} output channels")
    pads = []
    for size, k, s, h_in, name in ((oh, filter_hw[0], stride[0], in_hw[0], "height"),
                                   (ow, filter_hw[1], stride[1], in_hw[1], "width")):
        eff = k
        if padding == 0:
            computed = (size + s - 1) // s
        else:
            num = size + s - eff
            if num < 0:
                raise fail(f"output {name} {size} is smaller than the filter")
            computed = num // s
        if computed != h_in:
            raise fail(f"output {name} {size} gives input {name} {computed}, the input has {h_in} "
                       "(LiteRT's Eval rejects it; TFLite Micro does not check and runs it: "
                       "numerics='micro')")
        pads.append(_hybrid.padding_with_offset(s, 1, size, k, computed)[0])
    return oh, ow, pads[0], pads[1]


def _micro_geometry(out_shape, batches: int, filter_hw: tuple[int, int], out_channels: int,
                    stride: tuple[int, int], padding: int, fail) -> tuple[int, int, int, int]:
    """(OH, OW, pad_h, pad_w) as TFLM's ``CalculateOpData`` gets them: OH/OW from the
    output tensor's declared shape, ``ComputePaddingHeightWidth(stride, 1, OH, OW, KH,
    KW)``: the implied input size ``n = ceil(size / s)`` (SAME) or ``(size + s - K) // s``
    (VALID), then ``pad = max((n - 1) * s + K - size, 0) // 2``; when an implied size is
    negative, both paddings stay 0. The reference kernel's ``MatchingDim`` DCHECKs (batch,
    output channels) are checked here."""
    dims = [int(v) for v in out_shape]
    if len(dims) != 4:
        raise fail(f"output has {len(dims)} dimensions, must be 4-D")
    n, oh, ow, oc = dims
    if n != batches or oc != out_channels or oh <= 0 or ow <= 0:
        raise fail(f"output shape {dims} does not fit the input batch {batches} and "
                   f"{out_channels} output channels")
    implied = []
    for size, k, s in ((oh, filter_hw[0], stride[0]), (ow, filter_hw[1], stride[1])):
        implied.append((size + s - 1) // s if padding == 0 else (size + s - k) // s)
    if min(implied) < 0:
        return oh, ow, 0, 0
    pad_h = _hybrid.padding_with_offset(stride[0], 1, oh, filter_hw[0], implied[0])[0]
    pad_w = _hybrid.padding_with_offset(stride[1], 1, ow, filter_hw[1], implied[1])[0]
    return oh, ow, pad_h, pad_w


def prepare(ctx: OpContext) -> TransposeConvParams:
    o = ctx.options
    ctx.check_io_count((3, 4), 1)
    shp = ctx.input(0)
    w = ctx.input(1)
    x = ctx.input(2)
    b = ctx.input(3, optional=True)
    out = ctx.output(0)
    micro = ctx.numerics == "micro"
    ctx.check(len(shp.shape) == 1, f"output_shape must be 1-D, is {list(shp.shape)}", ".inputs[0]")
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[2]")
    ctx.check(len(w.shape) == 4, f"weights must be 4-D, is {list(w.shape)}", ".inputs[1]")
    sh, sw = o.get("stride_h", 0), o.get("stride_w", 0)
    ctx.check(0 < sh <= INT16_MAX and 0 < sw <= INT16_MAX,
              f"strides must be in [1, {INT16_MAX}], are ({sh}, {sw})", ".builtin_options")
    n, h, wd, cin = x.shape
    cout, kh, kw, wcin = w.shape
    ctx.check(min(h, wd, cin) > 0, f"input has a zero-sized dimension: {list(x.shape)}", ".inputs[2]")
    ctx.check(min(cout, kh, kw) > 0, f"weights have a zero-sized dimension: {list(w.shape)}", ".inputs[1]")
    if x.type not in (FLOAT32, UINT8, INT8, INT16):
        raise ctx.unsupported(f"input type {x.type_name}")
    if x.type == FLOAT32:
        ctx.check_type(w, (FLOAT32, INT8), "weights")
    elif x.type == UINT8:
        ctx.check_type(w, (UINT8,), "weights")
    else:
        ctx.check_type(w, (INT8,), "weights")
    if b is not None:
        bw = ctx.where(b)
        if x.type in (UINT8, INT8):
            ctx.check_type(b, (INT32,), "bias")
            if x.type == INT8 and b.quantized:
                ctx.check(len(b.zero_point) > 1 or b.zp == 0, "bias zero point must be 0", bw)
        elif x.type == INT16:
            # TFLM widens an int16 bias to int64 (runtime.micro refuses an int32 one)
            ctx.check_type(b, (INT64, INT32, INT16) if micro else (INT64, INT32), "bias")
            if b.quantized:
                ctx.check(len(b.zero_point) > 1 or b.zp == 0, "bias zero point must be 0", bw)
        else:
            ctx.check(b.type == FLOAT32, f"bias must be float32, is {b.type_name}", bw)
        ctx.check(b.num_elements == cout, f"bias has {b.num_elements} elements for {cout} channels", bw)
    int64_scratch = False
    if x.type == INT16:
        ctx.require_quantized(x)
        ctx.require_quantized(out)
        # TFLM does not check; its int16 kernel ignores both zero points (eval below)
        ctx.check(micro or (x.zp == 0 and out.zp == 0),
                  "16x8 TRANSPOSE_CONV needs zero points 0 (symmetric int16; TFLite Micro runs "
                  "it ignoring them: numerics='micro')")
        qbt = o.get("quantized_bias_type", FLOAT32)
        if qbt != FLOAT32 and not micro:   # TFLM ignores quantized_bias_type
            ctx.check(qbt in (INT32, INT64), "quantized_bias_type must be INT32 or INT64", ".builtin_options")
            ctx.check(b is None or b.type == qbt, "bias type differs from quantized_bias_type", ".inputs[3]")
        # Only quantized_bias_type INT32 selects the int32 kernel; otherwise LiteRT reads the
        # bias as int64, past the end of an int32 buffer.
        ctx.check(micro or b is None or b.type == INT64 or qbt == INT32,
                  "16x8 TRANSPOSE_CONV with an int32 bias needs quantized_bias_type INT32 (LiteRT "
                  "would read the int32 bias as int64, out of bounds)", ".inputs[3]")
        # TFLM: always the int64 accumulator (an int16 bias is widened to int64)
        int64_scratch = micro or qbt != INT32
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    ctx.check(wcin == cin, f"weights have {wcin} input channels, the input has {cin}", ".inputs[1]")
    ctx.check(shp.type == INT32, f"output_shape must be int32, is {shp.type_name}", ".inputs[0]")

    padding = o.get("padding", 0)
    ctx.check(padding in (0, 1), f"unknown padding {padding}", ".builtin_options")
    geometry = None
    if micro:
        geometry = _micro_geometry(out.shape, n, (kh, kw), cout, (sh, sw), padding,
                                   lambda m: ctx.error(m, ".outputs[0]"))
    elif shp.is_constant:
        geometry = _geometry(shp.data, n, (h, wd), (kh, kw), cout, (sh, sw), padding,
                             lambda m: ctx.error(m, ".inputs[0]"))
    common = dict(path=ctx.path, stride=(sh, sw), padding=padding, input_hw=(h, wd), filter_hw=(kh, kw),
                  batches=n, out_channels=cout, geometry=geometry, has_bias=b is not None)

    if x.type == FLOAT32:
        lo, hi = ctx.float_activation_range()
        if w.type == FLOAT32:
            return TransposeConvParams(kind="float", float_activation_min=lo, float_activation_max=hi, **common)
        scales = _hybrid.hybrid_filter_scales(ctx, w, "TRANSPOSE_CONV")
        channels = w.shape[w.quantized_dimension]
        if len(scales) != channels:
            ctx.check(len(scales) == 1, f"weights have {len(scales)} scales, dimension "
                      f"{w.quantized_dimension} has {channels} entries", ".inputs[1]")
            scales = np.repeat(scales, channels)
        ctx.check(len(scales) >= cout, f"weights have {len(scales)} scales for {cout} output channels "
                  "(LiteRT would read scales past the end)", ".inputs[1]")
        ctx.check(n > 0, "hybrid TRANSPOSE_CONV needs a batch size > 0", ".inputs[2]")
        if _paths.path_of(ctx) == "xnnpack" and _xnnpack_geometry_ok(ctx, shp, w, x) and \
                (b is None or b.is_constant) and ctx.options.get("fused_activation_function", 0) in (0, 1, 2, 3):
            raise NumericsPathError(f"{ctx.path}: hybrid TRANSPOSE_CONV (float input, int8 weights) "
                                    "runs in XNNPACK's dynamically quantized kernels on LiteRT's "
                                    "xnnpack path, which quantcore does not implement; use "
                                    "numerics='optimized'")
        return TransposeConvParams(kind="hybrid", per_channel_scale=scales[:cout].astype(np.float32),
                                   float_activation_min=lo, float_activation_max=hi, **common)

    ctx.require_quantized_filter(x, w, out, cout, role="weights")
    lo, hi = ctx.activation_range(out)
    if x.type == UINT8:
        ctx.check_uint8_bias_scale(x, w, b, out, ".inputs[3]", role="weights")
        m, s = quantize_multiplier(float(np.float32(x.scale[0] * w.scale[0])) / float(out.s))
        requant = _path_requant(ctx, shp, x, w, b, out, np.full(cout, m, np.int64),
                                np.full(cout, s, np.int64), lo, hi, "flat_blocks")
        return TransposeConvParams(kind="uint8", input_offset=-x.zp, weights_offset=-w.zp,
                                   requant=requant,
                                   output_offset=out.zp, output_multiplier=np.full(cout, m, np.int64),
                                   output_shift=np.full(cout, s, np.int64), quantized_activation_min=lo,
                                   quantized_activation_max=hi, out_dtype=np.uint8, **common)
    filter_scales = np.broadcast_to(w.scale.astype(np.float64), (cout,))
    m, s = quantize_multiplier_array(float(x.s) * filter_scales / float(out.s))
    # 16x8: TransposeConvV2 only with an int32 bias and zero points 0 (the weights' legacy
    # per-tensor zero point; per-channel tensors have none)
    gemm = x.type == INT8 or (not int64_scratch and (len(w.scale) > 1 or w.zp == 0))
    requant = _path_requant(ctx, shp, x, w, b, out, m, s, lo, hi, "channel_blocks" if gemm else None)
    # reference_integer_ops::TransposeConv for int16 adds no input or output offset
    int16 = x.type == INT16
    return TransposeConvParams(kind="int16" if int16 else "int8",
                               input_offset=0 if int16 else -x.zp, requant=requant,
                               output_offset=0 if int16 else out.zp, output_multiplier=m,
                               output_shift=s,
                               quantized_activation_min=lo, quantized_activation_max=hi,
                               int64_scratch=int64_scratch,
                               out_dtype=np.int8 if x.type == INT8 else np.int16, **common)


def _xnnpack_geometry_ok(ctx: OpContext, shp, w, x) -> bool:
    """The shape checks of ``VisitTransposeConvNode``: a static 4-element output_shape
    whose channels match the weights, and ``CalculateTransposeConvPaddings``: VALID needs
    the kernel to fit the output, SAME needs kernel >= stride."""
    if not shp.is_constant or not w.is_constant or shp.num_elements != 4:
        return False
    n, oh, ow, oc = (int(v) for v in np.asarray(shp.data).reshape(-1))
    cout, kh, kw, cin = w.shape
    if oc != cout or cin != x.shape[3]:
        return False
    sh, sw = ctx.options.get("stride_h", 0), ctx.options.get("stride_w", 0)
    if ctx.options.get("padding", 0) == 1:
        return kh <= oh and kw <= ow
    return kh >= sh and kw >= sw


def _path_requant(ctx: OpContext, shp, x, w, b, out, m: np.ndarray, s: np.ndarray, lo: int, hi: int,
                  optimized_mode: str | None) -> _paths.Requant | None:
    """The requantization of ``ctx.numerics`` (None: the reference kernel's).

    optimized: ``optimized_mode`` ("channel_blocks" for int8 and 16x8 with an int32 bias,
    "flat_blocks" for uint8, None where transpose_conv.cc runs the reference kernel).
    xnnpack (``VisitTransposeConvNode``): int8/uint8 with static weights, bias and
    output_shape, and the geometry XNNPACK supports.
    """
    path = _paths.path_of(ctx)
    cout = int(w.shape[0])
    if path == "xnnpack" and _xnnpack_geometry_ok(ctx, shp, w, x) and (b is None or len(b.shape) == 1) \
            and _paths.xnnpack_takes(ctx, x, w, b, out, channel_dim=0, bias_required=False):
        return _paths.xnnpack_requant(ctx, x, w, out, cout)
    if path not in ("optimized", "xnnpack") or optimized_mode is None:
        return None
    return _paths.Requant(mode=optimized_mode, output_offset=out.zp, act_min=lo, act_max=hi,
                          multiplier=np.asarray(m, np.int64), shift=np.asarray(s, np.int64),
                          block=16 if optimized_mode == "flat_blocks" else 8)


def _buffer_shape(p: TransposeConvParams, oh: int, ow: int, pad_h: int, pad_w: int) -> tuple[int, int]:
    """Scatter buffer rows/cols: in_y * stride + fy for every tap, and the output window."""
    (h, wd), (kh, kw), (sh, sw) = p.input_hw, p.filter_hw, p.stride
    return max((h - 1) * sh + kh, pad_h + oh), max((wd - 1) * sw + kw, pad_w + ow)


def _scatter_int(p: TransposeConvParams, xc: np.ndarray, wc: np.ndarray, geom) -> np.ndarray:
    """Exact scatter sums, int64 [N, OH, OW, O]."""
    oh, ow, pad_h, pad_w = geom
    n, h, wd, cin = xc.shape
    cout, kh, kw, _ = wc.shape
    sh, sw = p.stride
    # cols[n, y, x, o, fy, fx] = sum_ic x[n, y, x, ic] * w[o, fy, fx, ic]: exact in float64
    # (|products| < 2^23, fewer than 2^30 terms).
    cols = (xc.reshape(-1, cin).astype(np.float64) @ wc.reshape(-1, cin).astype(np.float64).T)
    cols = np.rint(cols).astype(np.int64).reshape(n, h, wd, cout, kh, kw)
    hb, wb = _buffer_shape(p, oh, ow, pad_h, pad_w)
    buf = np.zeros((n, hb, wb, cout), np.int64)
    for fy in range(kh):
        for fx in range(kw):
            buf[:, fy: fy + (h - 1) * sh + 1: sh, fx: fx + (wd - 1) * sw + 1: sw, :] += cols[..., fy, fx]
    return buf[:, pad_h: pad_h + oh, pad_w: pad_w + ow, :]


def _scatter_float(p: TransposeConvParams, geom, term) -> np.ndarray:
    """float32 scatter sums in the reference order: (fy, fx) descending, in_channel ascending.

    ``term(fy, fx, ic)`` is the float32 contribution [N, H, W, O] of that tap.
    """
    oh, ow, pad_h, pad_w = geom
    h, wd = p.input_hw
    kh, kw = p.filter_hw
    sh, sw = p.stride
    hb, wb = _buffer_shape(p, oh, ow, pad_h, pad_w)
    buf = np.zeros((p.batches, hb, wb, p.out_channels), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN sums, as in C
        for fy in reversed(range(kh)):
            for fx in reversed(range(kw)):
                view = buf[:, fy: fy + (h - 1) * sh + 1: sh, fx: fx + (wd - 1) * sw + 1: sw, :]
                for t in term(fy, fx):
                    view += t           # float32 in place, one rounding per term
    return buf[:, pad_h: pad_h + oh, pad_w: pad_w + ow, :]


def _runtime_shape_error(path: str):
    """The error for a bad output_shape input value (LiteRT fails to invoke, e.g.
    "BytesRequired number of elements overflowed" when it was never set); TFLite Micro
    never reads output_shape."""
    def fail(message: str) -> InputError:
        if "numerics='micro'" not in message:
            message += (" (TFLite Micro never reads output_shape and uses the output tensor's "
                        "declared shape: numerics='micro')")
        return InputError(f"{path}: TRANSPOSE_CONV: {message}")
    return fail


def eval(p: TransposeConvParams, output_shape: np.ndarray, w: np.ndarray, x: np.ndarray,  # noqa: A001
         b: np.ndarray | None = None) -> list[np.ndarray]:
    if b is not None:
        b = np.asarray(b).reshape(-1)   # LiteRT checks only the element count ([O] or [O,1,1,1])
    geom = p.geometry
    if geom is None:
        geom = _geometry(output_shape, p.batches, p.input_hw, p.filter_hw, p.out_channels, p.stride,
                         p.padding, _runtime_shape_error(p.path))
    if p.kind in ("float", "hybrid"):
        cin = x.shape[3]
        if p.kind == "float":
            xf = np.asarray(x, np.float32)
            wf = np.asarray(w, np.float32)

            def term(fy, fx):
                for ic in range(cin):
                    yield (xf[..., ic, None] * wf[:, fy, fx, ic]).astype(np.float32)
        else:
            n = x.shape[0]
            q, sf, offset = _hybrid.asymmetric_quantize_floats(np.asarray(x, np.float32).reshape(n, -1))
            xq = (q - offset[:, None]).reshape(x.shape)
            wi = np.asarray(w, np.int64)
            scale = p.per_channel_scale
            sfb = sf[:, None, None, None]

            def term(fy, fx):
                for ic in range(cin):
                    acc = (xq[..., ic, None] * wi[:, fy, fx, ic]).astype(np.float32)
                    yield ((acc * scale).astype(np.float32) * sfb).astype(np.float32)
        acc = _scatter_float(p, geom, term)
        if p.has_bias:
            with np.errstate(over="ignore", invalid="ignore"):  # inf sums, as in C
                acc = (acc + np.asarray(b, np.float32)).astype(np.float32)
        return [clamp_float(acc, p.float_activation_min, p.float_activation_max)]
    xc = np.asarray(x, np.int64) + p.input_offset
    wc = np.asarray(w, np.int64) + p.weights_offset
    acc = _scatter_int(p, xc, wc, geom)
    if p.has_bias:
        acc = acc + np.asarray(b, np.int64)
    if p.requant is not None:   # optimized / xnnpack (runtime/ops/_paths.py)
        return [p.requant.apply(acc).astype(p.out_dtype)]
    if p.kind == "int16" and p.int64_scratch:
        scaled = multiply_by_quantized_multiplier_int64(acc, p.output_multiplier, p.output_shift)
    else:
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), p.output_multiplier, p.output_shift)
    out = np.clip(scaled + p.output_offset, p.quantized_activation_min, p.quantized_activation_max)
    return [out.astype(p.out_dtype)]
