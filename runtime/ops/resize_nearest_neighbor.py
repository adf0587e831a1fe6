"""RESIZE_NEAREST_NEIGHBOR (``tflite/kernels/resize_nearest_neighbor.cc``,
``reference/resize_nearest_neighbor.h`` ``GetNearestNeighbor``).

Source index: ``scale = in / out`` in float32 (``(in - 1) / (out - 1)`` with
align_corners); ``offset = 0.5`` with half-pixel centers; index =
``min(round_away((i + offset) * scale), in - 1)`` with align_corners, else
``min(floor((i + offset) * scale), in - 1)``; clamped at 0 with half-pixel centers.
Values are copied, so every type works the same way.

Numerics paths: LiteRT's optimized kernel (also under XNNPACK, which has no nearest
resize) computes uint8 without align_corners / half_pixel_centers in 16-bit fixed point
(``optimized_ops::ResizeNearestNeighbor``): ``scale = ((in << 16) // out) + 1`` and
index ``min((i * scale) >> 16, in - 1)``, which exceeds the float index by one for some
positions of large outputs; every other case is the reference kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import round_half_away

from ._common import INT32, UINT8, OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class ResizeNearestParams:
    path: str
    align_corners: bool
    half_pixel_centers: bool
    fixed_point: bool = False       # optimized uint8 kernel (16-bit fixed-point index)


def prepare(ctx: OpContext) -> ResizeNearestParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(list(ctx.input(1).shape) == [2], "size must have shape [2]", ".inputs[1]")
    # An empty image leaves nothing to pick from (LiteRT reads out of bounds).
    ctx.check(x.shape[1] > 0 and x.shape[2] > 0, f"input {list(x.shape)} has no pixels", ".inputs[0]")
    int_param(ctx, 1, "size", (INT32,))  # resize_nearest_neighbor.cc: int32
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    ac = bool(ctx.options.get("align_corners", False))
    hp = bool(ctx.options.get("half_pixel_centers", False))
    fixed = ctx.numerics in ("optimized", "xnnpack") and x.type == UINT8 and not ac and not hp
    return ResizeNearestParams(ctx.path, ac, hp, fixed)


def _index_fixed_point(out: int, inp: int) -> np.ndarray:
    """``optimized_ops::ResizeNearestNeighbor`` (uint8): 16 fractional bits plus one."""
    scale = (inp << 16) // out + 1
    return np.minimum((np.arange(out, dtype=np.int64) * scale) >> 16, inp - 1)


def _index(out: int, inp: int, align: bool, half: bool) -> np.ndarray:
    if align and out > 1:
        scale = np.float32(inp - 1) / np.float32(out - 1)
    else:
        scale = np.float32(inp) / np.float32(out)
    v = ((np.arange(out, dtype=np.float32) + np.float32(0.5 if half else 0.0)) * scale).astype(np.float32)
    idx = (round_half_away(v) if align else np.floor(v)).astype(np.int64)
    idx = np.minimum(idx, inp - 1)
    if half:
        idx = np.maximum(idx, 0)
    return idx


def eval(p: ResizeNearestParams, x: np.ndarray, size: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    oh, ow = (int(v) for v in np.asarray(size).reshape(-1)[:2])
    if oh <= 0 or ow <= 0:
        raise InputError(f"{p.path}: output size {oh}x{ow} must be positive")
    # (an empty batch or depth still builds index vectors of oh and ow entries)
    check_output_size(p.path, "RESIZE_NEAREST_NEIGHBOR", (max(x.shape[0], 1), oh, ow, max(x.shape[3], 1)),
                      np.int64)
    if p.fixed_point:
        iy, ix = _index_fixed_point(oh, x.shape[1]), _index_fixed_point(ow, x.shape[2])
    else:
        iy = _index(oh, x.shape[1], p.align_corners, p.half_pixel_centers)
        ix = _index(ow, x.shape[2], p.align_corners, p.half_pixel_centers)
    return [x[:, iy][:, :, ix]]
