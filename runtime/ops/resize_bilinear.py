"""RESIZE_BILINEAR: float32/uint8 through the float reference, int8/int16 through
the 10-bit fixed-point reference.

Mirrors ``tflite/kernels/resize_bilinear.cc`` (kReference) and
``reference/resize_bilinear.h``:

* float and uint8 (``ResizeBilinear``): scales in float32, source coordinate
  ``(y + 0.5) * scale - 0.5`` with half-pixel centers, else ``y * scale``;
  ``y0 = max(floor(v), 0)``, ``y1 = min(ceil(v), in - 1)``; the four products are
  summed left to right in float32, plus 0.5 for integer types, then truncated.
* int8 and int16 (``ResizeBilinearInteger``): ``scale_10 = (1024 * in + out / 2) / out``,
  coordinates in 1/1024 units, an int64 sum of the four weighted values, divided
  by 2^20 with rounding half away from zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from . import _paths_misc
from ._common import FLOAT32, INT16, INT32, INT8, UINT8, OpContext, check_output_size, int_param
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class ResizeBilinearParams:
    path: str
    align_corners: bool
    half_pixel_centers: bool
    integer: bool


def prepare(ctx: OpContext) -> ResizeBilinearParams | PathParams:
    # Other numerics paths (LiteRT's uint8 float kernel, XNNPACK's Q11 kernel): _paths_misc.
    return _paths_misc.for_resize_bilinear(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> ResizeBilinearParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    size = ctx.input(1)
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(list(size.shape) == [2], "size must have shape [2]", ".inputs[1]")
    # An empty image leaves nothing to interpolate from (LiteRT reads out of bounds).
    ctx.check(x.shape[1] > 0 and x.shape[2] > 0, f"input {list(x.shape)} has no pixels", ".inputs[0]")
    int_param(ctx, 1, "size", (INT32,))  # resize_bilinear.cc: int32
    ctx.check_type(x, (FLOAT32, UINT8, INT8, INT16), "input")
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    ac = bool(ctx.options.get("align_corners", False))
    hp = bool(ctx.options.get("half_pixel_centers", False))
    ctx.check(not (ac and hp), "align_corners and half_pixel_centers cannot both be set")
    return ResizeBilinearParams(ctx.path, ac, hp, x.type in (INT8, INT16))


def _float_coords(out: int, inp: int, align: bool, half: bool):
    scale = np.float32(inp) / np.float32(out)
    if align and out > 1:
        scale = np.float32(inp - 1) / np.float32(out - 1)
    v = np.arange(out, dtype=np.float32)
    if half:
        v = ((v + np.float32(0.5)) * scale - np.float32(0.5)).astype(np.float32)
    else:
        v = (v * scale).astype(np.float32)
    lo = np.maximum(np.floor(v).astype(np.int64), 0)
    hi = np.minimum(np.ceil(v).astype(np.int64), inp - 1)
    return v, lo, hi


def _int_coords(out: int, inp: int, align: bool, half: bool):
    scale = ((1 << 10) * inp + out // 2) // out
    if align and out > 1:
        scale = ((1 << 10) * (inp - 1) + (out - 1) // 2) // (out - 1)
    v = np.arange(out, dtype=np.int64) * scale
    if half:
        v = v + scale // 2 - (1 << 9)
    lo = np.maximum(np.trunc(v / 1024).astype(np.int64), 0)  # C division truncates
    hi = np.minimum(np.trunc((v + 1023) / 1024).astype(np.int64), inp - 1)
    return v, lo, hi


def eval(p: ResizeBilinearParams, x: np.ndarray, size: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_misc.eval_resize_bilinear(p, x, size, eval)
    oh, ow = (int(v) for v in np.asarray(size).reshape(-1)[:2])
    if oh <= 0 or ow <= 0:
        raise InputError(f"{p.path}: output size {oh}x{ow} must be positive")
    n, ih, iw, c = x.shape
    # The arithmetic works on int64 / float32 arrays of the output's size.
    # (an empty batch or depth still builds coordinate vectors of oh and ow entries)
    check_output_size(p.path, "RESIZE_BILINEAR", (max(n, 1), oh, ow, max(c, 1)),
                      np.int64 if p.integer else np.float32)
    if p.integer:
        vy, y0, y1 = _int_coords(oh, ih, p.align_corners, p.half_pixel_centers)
        vx, x0, x1 = _int_coords(ow, iw, p.align_corners, p.half_pixel_centers)
        dy = (vy - 1024 * y0)[:, None, None]
        dx = (vx - 1024 * x0)[None, :, None]
        xi = x.astype(np.int64)
        acc = (xi[:, y0][:, :, x0] * (1024 - dy) * (1024 - dx) + xi[:, y1][:, :, x0] * dy * (1024 - dx)
               + xi[:, y0][:, :, x1] * (1024 - dy) * dx + xi[:, y1][:, :, x1] * dy * dx)
        r = np.where(acc > 0, acc + (1 << 19), acc - (1 << 19))
        q = np.where(r >= 0, r >> 20, -((-r) >> 20))
        return [q.astype(x.dtype)]
    vy, y0, y1 = _float_coords(oh, ih, p.align_corners, p.half_pixel_centers)
    vx, x0, x1 = _float_coords(ow, iw, p.align_corners, p.half_pixel_centers)
    one = np.float32(1)
    fy = (vy - y0.astype(np.float32)).astype(np.float32)[:, None, None]
    fx = (vx - x0.astype(np.float32)).astype(np.float32)[None, :, None]
    xf = x.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN inputs, as in C
        t1 = xf[:, y0][:, :, x0] * (one - fy) * (one - fx)
        t2 = xf[:, y1][:, :, x0] * fy * (one - fx)
        t3 = xf[:, y0][:, :, x1] * (one - fy) * fx
        t4 = xf[:, y1][:, :, x1] * fy * fx
        s = (((t1 + t2) + t3) + t4).astype(np.float32)
    if x.dtype == np.float32:
        return [s]
    return [np.trunc(s + np.float32(0.5)).astype(x.dtype)]
