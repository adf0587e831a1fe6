"""RESIZE_NEAREST_NEIGHBOR (``tflite/kernels/resize_nearest_neighbor.cc``,
``reference/resize_nearest_neighbor.h`` ``GetNearestNeighbor``).

Source index: ``scale = in / out`` in float32 (``(in - 1) / (out - 1)`` with
align_corners); ``offset = 0.5`` with half-pixel centers; index =
``min(round_away((i + offset) * scale), in - 1)`` with align_corners, else
``min(floor((i + offset) * scale), in - 1)``; clamped at 0 with half-pixel centers.
Values are copied, so every type works the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError
from quantcore.fixedpoint import round_half_away

from ._common import OpContext

NUMERICS = ("reference", "optimized", "micro")


@dataclass(frozen=True)
class ResizeNearestParams:
    path: str
    align_corners: bool
    half_pixel_centers: bool


def prepare(ctx: OpContext) -> ResizeNearestParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    ctx.check(len(x.shape) == 4, f"input must be 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(list(ctx.input(1).shape) == [2], "size must have shape [2]", ".inputs[1]")
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    return ResizeNearestParams(ctx.path, bool(ctx.options.get("align_corners", False)),
                               bool(ctx.options.get("half_pixel_centers", False)))


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
    iy = _index(oh, x.shape[1], p.align_corners, p.half_pixel_centers)
    ix = _index(ow, x.shape[2], p.align_corners, p.half_pixel_centers)
    return [x[:, iy][:, :, ix]]
