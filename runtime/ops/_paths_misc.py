"""MAX_POOL_2D and RESIZE_BILINEAR on LiteRT's "optimized" and "xnnpack" paths.

Sources:

* MAX_POOL_2D: the maximum is exact on every path. XNNPACK (google-ai-edge/LiteRT
  ``xnnpack_delegate.cc`` ``VisitMaxPool2DNode``: 8-bit per tensor, stride <= filter
  in both directions) clamps a fused activation to ``xnn_qs8_quantize(bound)``
  (google/XNNPACK ``src/subgraph/max-pooling-2d.c``): ties to even after adding the
  zero point in float32, where LiteRT adds the zero point to ``round_half_away``.
* RESIZE_BILINEAR (LiteRT ``tflite/kernels/resize_bilinear.cc`` kOptimized and
  ``internal/optimized/resize_bilinear.h``): int8 and int16 run the reference
  ``ResizeBilinearInteger`` on every LiteRT path. uint8 runs
  ``ResizeBilinearGenericSmallChannel``: the four corner weights are multiplied first
  (``w00 = (1 - fy) * (1 - fx)``, ``w01 = (1 - fy) * fx``, ``w10 = fy * (1 - fx)``,
  ``w11 = fy * fx``, float32) and ``x00*w00 + x01*w01 + x10*w10 + x11*w11 + 0.5f`` is
  truncated (the reference multiplies ``x * (1 - fy) * (1 - fx)`` and adds the corners
  in the order 00, 10, 01, 11). Its NEON ``ResizeBilinear888Uint8`` (uint8,
  half-pixel centers, 8x upscaling, depth % 8 == 0, output at least 8x8) is not
  reproduced: quantcore raises NumericsPathError for it.
* RESIZE_BILINEAR on XNNPACK (int8/uint8 per tensor, static size; google/XNNPACK
  ``src/indirection.c`` ``xnn_indirection_init_resize_bilinear2d_hwc_q11`` and the
  ``s8-ibilinear``/``u8-ibilinear`` kernels)::

      scale = f32(in - a) / f32(out - a)     (a = 1 with align_corners and out != 1)
      legacy/align_corners: v = min(f32(i * scale), in - 1)
      half-pixel:           v = clamp(f32(f32(i * scale) + f32(f32(0.5 * scale) - 0.5)), 0, in - 1)
      i0 = int(v), i1 = min(i0 + 1, in - 1), alpha = lrintf(f32((v - i0) * 2048))
      t = (x00 << 11) + (x01 - x00) * ax;  b = (x10 << 11) + (x11 - x10) * ax
      out = ((t << 11) + (b - t) * ay + 2^21) >> 22
"""
from __future__ import annotations

import dataclasses

import numpy as np

from quantcore.errors import NumericsPathError

from ._common import INT8, UINT8, OpContext
from ._paths_common import PathParams, xnn_activation_bounds


def _per_tensor_8bit(t) -> bool:
    return t.type in (INT8, UINT8) and t.quantized and not t.per_channel and t.quantized_dimension == 0


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------
def for_pooling(ctx: OpContext, base):
    """AVERAGE_POOL_2D: LiteRT's optimized int8/uint8 kernels round like the reference and
    XNNPACK takes float only, so every path is the reference. MAX_POOL_2D on XNNPACK:
    the same maximum with XNNPACK's activation bounds."""
    if ctx.numerics != "xnnpack" or base.pool != "max" or base.kind not in ("int8", "uint8"):
        return base
    x, out = ctx.input(0), ctx.output(0)
    o = ctx.options
    if not (_per_tensor_8bit(x) and _per_tensor_8bit(out)):
        return base
    if o["stride_w"] > o["filter_width"] or o["stride_h"] > o["filter_height"]:
        return base
    act = int(o.get("fused_activation_function", 0))
    lo, hi = xnn_activation_bounds(act, out.s, out.zp, out.type)
    return dataclasses.replace(base, quantized_activation_min=lo, quantized_activation_max=hi)


# ---------------------------------------------------------------------------
# RESIZE_BILINEAR
# ---------------------------------------------------------------------------
def for_resize_bilinear(ctx: OpContext, base):
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    x, size, out = ctx.input(0), ctx.input(1), ctx.output(0)
    if ctx.numerics == "xnnpack" and _per_tensor_8bit(x) and _per_tensor_8bit(out) and size.is_constant \
            and bool(np.all(np.asarray(size.data).reshape(-1) > 0)):
        return PathParams("xnnpack", "xnnpack", base)
    if x.type == UINT8:
        return PathParams(ctx.numerics, "litert-optimized", base)
    return PathParams(ctx.numerics, "reference", base)


def _xnn_coords(out: int, inp: int, align: bool, half: bool):
    f32 = np.float32
    adj = 1 if (align and out != 1) else 0
    scale = f32(f32(inp - adj) / f32(out - adj))
    i = np.arange(out, dtype=np.float32)
    vmax = f32(inp - 1)
    if align or not half:
        v = np.minimum((i * scale).astype(np.float32), vmax)
    else:
        offset = f32(f32(f32(0.5) * scale) - f32(0.5))
        v = ((i * scale).astype(np.float32) + offset).astype(np.float32)
        v = np.minimum(np.maximum(v, f32(0)), vmax)
    lo = v.astype(np.int64)
    hi = np.minimum(lo + 1, inp - 1)
    alpha = np.rint(((v - lo.astype(np.float32)).astype(np.float32) * f32(2048)).astype(np.float32))
    return lo, hi, alpha.astype(np.int64)


def _xnn_resize(p, x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    n, ih, iw, c = x.shape
    y0, y1, ay = _xnn_coords(oh, ih, p.align_corners, p.half_pixel_centers)
    x0, x1, ax = _xnn_coords(ow, iw, p.align_corners, p.half_pixel_centers)
    xi = x.astype(np.int64)
    tl = xi[:, y0][:, :, x0]
    tr = xi[:, y0][:, :, x1]
    bl = xi[:, y1][:, :, x0]
    br = xi[:, y1][:, :, x1]
    axb = ax[None, None, :, None]
    ayb = ay[None, :, None, None]
    t = (tl << 11) + (tr - tl) * axb
    b = (bl << 11) + (br - bl) * axb
    acc = (t << 11) + (b - t) * ayb
    lo, hi = (-128, 127) if x.dtype == np.int8 else (0, 255)
    return np.clip((acc + (1 << 21)) >> 22, lo, hi).astype(x.dtype)


def _small_channel_uint8(p, x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """``ResizeBilinearGenericSmallChannel<uint8_t>`` (float32 throughout)."""
    f32 = np.float32
    n, ih, iw, c = x.shape
    if (not p.align_corners and p.half_pixel_centers and c % 8 == 0 and oh >= 8 and ow >= 8
            and oh // ih == 8 and ih * 8 == oh and iw * 8 == ow):
        raise NumericsPathError(
            f"{p.path}: RESIZE_BILINEAR uint8 8x upscaling with half-pixel centers runs LiteRT's "
            "NEON kernel ResizeBilinear888Uint8 on the optimized path, which quantcore does not "
            "reproduce")

    def coords(o: int, i: int):
        scale = f32(f32(i - 1) / f32(o - 1)) if (p.align_corners and o > 1) else f32(f32(i) / f32(o))
        v = np.arange(o, dtype=np.float32)
        if p.half_pixel_centers:
            v = ((v + f32(0.5)) * scale - f32(0.5)).astype(np.float32)
        else:
            v = (v * scale).astype(np.float32)
        lo = np.maximum(np.floor(v).astype(np.int64), 0)
        hi = np.minimum(np.ceil(v).astype(np.int64), i - 1)
        return v, lo, hi

    vy, y0, y1 = coords(oh, ih)
    vx, x0, x1 = coords(ow, iw)
    one = f32(1)
    fy = (vy - y0.astype(np.float32)).astype(np.float32)[None, :, None, None]
    fx = (vx - x0.astype(np.float32)).astype(np.float32)[None, None, :, None]
    w00 = ((one - fy) * (one - fx)).astype(np.float32)
    w01 = ((one - fy) * fx).astype(np.float32)
    w10 = (fy * (one - fx)).astype(np.float32)
    w11 = (fy * fx).astype(np.float32)
    xf = x.astype(np.float32)
    s = (xf[:, y0][:, :, x0] * w00).astype(np.float32)
    s = (s + (xf[:, y0][:, :, x1] * w01).astype(np.float32)).astype(np.float32)
    s = (s + (xf[:, y1][:, :, x0] * w10).astype(np.float32)).astype(np.float32)
    s = (s + (xf[:, y1][:, :, x1] * w11).astype(np.float32)).astype(np.float32)
    s = (s + f32(0.5)).astype(np.float32)
    return np.trunc(s).astype(np.int64).astype(np.uint8)


def eval_resize_bilinear(p: PathParams, x: np.ndarray, size: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "reference":
        return reference_eval(p.base, x, size)
    oh, ow = (int(v) for v in np.asarray(size).reshape(-1)[:2])
    if oh <= 0 or ow <= 0:
        return reference_eval(p.base, x, size)   # the reference raises the error
    if p.how == "xnnpack":
        return [_xnn_resize(p.base, x, oh, ow)]
    return [_small_channel_uint8(p.base, x, oh, ow)]
