"""AVERAGE_POOL_2D and MAX_POOL_2D: float32, int8, uint8 and int16.

Mirrors ``tflite/kernels/pooling.cc`` (``GenericPrepare``, ``AverageEval``,
``MaxEval`` for ``kReference``) and the reference kernels
``tflite/kernels/internal/reference/pooling.h`` (float, uint8) and
``reference/integer_ops/pooling.h`` (int8, int16).

For every output position the window is clamped to the image: taps outside it are
skipped, so padding never enters a sum, a count or a maximum. Per channel::

    AVERAGE (int):   acc = sum(x) over the n in-image taps        (raw values, int32)
                     avg = acc > 0 ? (acc + n/2) / n : (acc - n/2) / n
                           (C truncating division: rounding half away from zero;
                            uint8 always takes the first form, acc >= 0)
    AVERAGE (float): total = 0.f; total += x (taps in fy, fx order, float32);
                     avg = total / float(n)
    MAX:             max over the taps, starting from the type's lowest value
    out = min(max(v, activation_min), activation_max)

No rescaling happens: LiteRT only DCHECKs that input and output share scale and
zero point (compiled out), so with different parameters it copies raw values and
applies the output's activation range; quantcore does the same.

Float details reproduced from the C++: the float activation range of NONE is
[lowest float, max float], not [-inf, inf], so +-inf outputs are clamped to
+-3.4028235e38 (measured); ``std::max(max, v)`` ignores NaN taps in MAX_POOL
(an all-NaN window gives the lowest float); AVERAGE_POOL propagates NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _paths_misc
from ._common import FLOAT32, INT8, INT16, QMAX, QMIN, UINT8, OpContext, compute_padding

NUMERICS = ("reference", "optimized", "xnnpack")

F32_LOWEST = float(np.finfo(np.float32).min)
F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class PoolParams:
    pool: str                          # "average" or "max"
    kind: str                          # "float", "int8", "uint8", "int16"
    stride: tuple[int, int]            # (stride_height, stride_width)
    filter: tuple[int, int]            # (filter_height, filter_width)
    padding: tuple[int, int, int, int]  # top, bottom, left, right (padding_values + offset)
    out_hw: tuple[int, int]
    float_activation_min: float = F32_LOWEST
    float_activation_max: float = F32_MAX
    quantized_activation_min: int = 0
    quantized_activation_max: int = 0
    out_dtype: type = np.float32
    # Computed once in prepare (the input shape is fixed until the next prepare):
    counts: np.ndarray | None = None   # in-image taps per output position, [1, OH, OW, 1] int64
    tiled: bool = False                # windows tile the image: no padding, stride == filter


def _tiles(x_shape: tuple[int, ...], padding: tuple[int, ...], stride: tuple[int, int],
           filt: tuple[int, int]) -> bool:
    """True when every window lies inside the image and windows neither overlap nor
    leave gaps between them (no padding, stride == filter: the common 2x2/2 pool), so
    a reshape to [N, OH, FH, OW, FW, C] holds exactly the taps of every window."""
    return not any(padding) and tuple(stride) == tuple(filt)


def float_activation_range(ctx: OpContext) -> tuple[float, float]:
    """``CalculateActivationRange<float>``: finite bounds; NONE (and any other
    activation) gives [lowest, max] of float32, so infinities are clamped."""
    act = ctx.options.get("fused_activation_function", 0)
    ranges = {1: (0.0, F32_MAX), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
    if act == 0:
        return F32_LOWEST, F32_MAX
    if act not in ranges:
        raise ctx.unsupported(f"fused activation {act} (LiteRT's pooling kernels ignore it)")
    return ranges[act]


def check_activation_quantizable(ctx: OpContext, out) -> None:
    """``Quantize`` in kernel_util.cc: round(bound / scale) must fit in int32, else LiteRT
    leaves the activation bounds uninitialised (the int8 kernels ignore the status)."""
    act = ctx.options.get("fused_activation_function", 0)
    bounds = {1: (0.0,), 2: (-1.0, 1.0), 3: (0.0, 6.0)}.get(act, ())
    for f in bounds:
        with np.errstate(over="ignore"):
            q = np.float32(f) / np.float32(out.s)
        ctx.check(bool(np.isfinite(q)) and -(2.0**31) <= float(q) < 2.0**31,
                  f"activation bound {f} / output scale {out.s} does not fit in int32",
                  ctx.where(out))


def prepare(ctx: OpContext) -> PoolParams:
    # "optimized" computes the same; "xnnpack" MAX_POOL quantizes its clamp bounds its own
    # way (_paths_misc).
    return _paths_misc.for_pooling(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> PoolParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    o = ctx.options
    pool = {"AVERAGE_POOL_2D": "average", "MAX_POOL_2D": "max"}.get(ctx.op_name)
    if pool is None:
        raise ctx.unsupported("the pooling module implements AVERAGE_POOL_2D and MAX_POOL_2D only")
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    ctx.check(o["padding"] in (0, 1), f"padding {o['padding']} is neither SAME nor VALID",
              ".builtin_options.padding")
    sh, sw = o["stride_h"], o["stride_w"]
    fh, fw = o["filter_height"], o["filter_width"]
    ctx.check(sh > 0 and sw > 0, f"strides must be > 0, are ({sh}, {sw})", ".builtin_options")
    ctx.check(fh > 0 and fw > 0, f"filter size must be > 0, is ({fh}, {fw})", ".builtin_options")
    n, h, w, c = x.shape
    oh, pt, pb = compute_padding(o["padding"], h, fh, sh)
    ow, pl, pr = compute_padding(o["padding"], w, fw, sw)
    ctx.check(oh > 0 and ow > 0, f"output would be empty ({oh}x{ow})")
    common = dict(pool=pool, stride=(sh, sw), filter=(fh, fw), padding=(pt, pb, pl, pr), out_hw=(oh, ow))
    tiled = _tiles(x.shape, common["padding"], (sh, sw), (fh, fw))
    counts = None
    if pool == "average" and not tiled:
        counts = tap_counts(x.shape, PoolParams(kind="", **common))
    common.update(tiled=tiled, counts=counts)

    if x.type == FLOAT32:
        lo, hi = float_activation_range(ctx)
        return PoolParams(kind="float", float_activation_min=lo, float_activation_max=hi, **common)

    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    act = o.get("fused_activation_function", 0)
    if act in (1, 2, 3) or pool == "average":
        ctx.require_quantized(out)
        check_activation_quantizable(ctx, out)
        lo, hi = ctx.activation_range(out)
    else:
        if act != 0:
            raise ctx.unsupported(f"fused activation {act} (LiteRT's pooling kernels ignore it)")
        lo, hi = QMIN[out.type], QMAX[out.type]
    kind = {INT8: "int8", UINT8: "uint8", INT16: "int16"}[x.type]
    dtype = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}[x.type]
    return PoolParams(kind=kind, quantized_activation_min=lo, quantized_activation_max=hi,
                      out_dtype=dtype, **common)


def taps(x: np.ndarray, p: PoolParams, fill):
    """The window taps in the C++ order (fy, then fx), each an [N, OH, OW, C] view of x
    padded with ``fill`` (taps outside the image read ``fill``)."""
    pt, pb, pl, pr = p.padding
    sh, sw = p.stride
    fh, fw = p.filter
    oh, ow = p.out_hw
    # Taps that no window places inside the image read only ``fill`` and change no
    # result; LiteRT's loops skip them (filter_start/filter_end). Skipping them here
    # too keeps a huge filter from costing time and memory.
    fy0, fy1 = _useful_taps(pt, oh, sh, fh, x.shape[1])
    fx0, fx1 = _useful_taps(pl, ow, sw, fw, x.shape[2])
    # Pad enough that every used window part lies inside, however the last one overhangs.
    need_b = max(0, (oh - 1) * sh + fy1 - x.shape[1] - pt)
    need_r = max(0, (ow - 1) * sw + fx1 - x.shape[2] - pl)
    xp = np.pad(x, ((0, 0), (pt - fy0, need_b), (pl - fx0, need_r), (0, 0)), constant_values=fill)
    for fy in range(fy1 - fy0):
        for fx in range(fx1 - fx0):
            yield xp[:, fy: fy + (oh - 1) * sh + 1: sh, fx: fx + (ow - 1) * sw + 1: sw, :]


def _useful_taps(pad: int, out: int, stride: int, size: int, inp: int) -> tuple[int, int]:
    """Filter offsets [lo, hi) that can land inside an input of ``inp`` pixels: offset
    f reads rows ``o * stride - pad + f`` for o in [0, out)."""
    lo = max(0, pad - (out - 1) * stride)
    hi = min(size, inp + pad)
    return lo, max(hi, lo + 1)


def tap_counts(shape: tuple[int, ...], p: PoolParams) -> np.ndarray:
    """Number of in-image taps of each output position, [1, OH, OW, 1] (int64)."""
    return sum(taps(np.ones((1, shape[1], shape[2], 1), np.int64), p, 0))


def _windows(x: np.ndarray, p: PoolParams) -> np.ndarray:
    """For tiled windows (``p.tiled``): the view [N, OH, FH, OW, FW, C] of x whose
    [:, oy, :, ox, :, :] are the taps of output (oy, ox); rows and columns past the
    last whole window (VALID) are left out, as LiteRT never reads them."""
    n, _, _, c = x.shape
    (oh, ow), (fh, fw) = p.out_hw, p.filter
    return x[:, :oh * fh, :ow * fw, :].reshape(n, oh, fh, ow, fw, c)


def _counts(x: np.ndarray, p: PoolParams) -> np.ndarray:
    if p.tiled:
        return np.int64(p.filter[0] * p.filter[1])
    return p.counts if p.counts is not None else tap_counts(x.shape, p)


def eval(p: PoolParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        x = np.asarray(x, np.float32)
        if p.pool == "average":
            total = np.float32(0)
            with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN sums, as in C
                for t in taps(x, p, 0.0):   # float32 additions in the C++ order (+0.0 off-image)
                    total = total + t
                v = total / np.asarray(_counts(x, p)).astype(np.float32)
        else:
            lowest = np.float32(F32_LOWEST)
            clean = np.where(np.isnan(x), lowest, x)
            if p.tiled:     # max is order-free: one reduction over the window axes
                v = _windows(clean, p).max(axis=(2, 4))
            else:
                v = np.full((x.shape[0],) + p.out_hw + (x.shape[3],), lowest, np.float32)
                for t in taps(clean, p, lowest):
                    v = np.maximum(v, t)
        # ActivationFunctionWithMinMax: min(max(v, lo), hi); NaN passes through.
        v = np.minimum(np.maximum(v, np.float32(p.float_activation_min)), np.float32(p.float_activation_max))
        return [v.astype(np.float32)]

    x = np.asarray(x)
    if p.pool == "average":
        if p.tiled:     # integer sums are order-free
            acc = _windows(x, p).sum(axis=(2, 4), dtype=np.int64)
        else:
            acc = sum(taps(x.astype(np.int64), p, 0))
        acc = ((acc + 2**31) & 0xFFFFFFFF) - 2**31   # int32 accumulator
        n = _counts(x, p)
        half = n // 2
        # C truncating division of acc +- n/2 by n (rounding half away from zero).
        avg = np.where(acc > 0, (acc + half) // n, -((half - acc) // n))
    elif p.tiled:
        avg = _windows(x, p).max(axis=(2, 4))
    else:
        avg = np.full((x.shape[0],) + p.out_hw + (x.shape[3],), np.iinfo(x.dtype).min, np.int64)
        for t in taps(x, p, np.iinfo(x.dtype).min):
            avg = np.maximum(avg, t)
    out = np.clip(avg, p.quantized_activation_min, p.quantized_activation_max)
    return [out.astype(p.out_dtype)]
