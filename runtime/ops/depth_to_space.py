"""DEPTH_TO_SPACE, DCR order (``tflite/kernels/depth_to_space.cc``):
[N, H, W, b*b*C] -> [N, H*b, W*b, C]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import FLOAT32, INT8, INT32, INT64, UINT8, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class DepthToSpaceParams:
    block_size: int


def prepare(ctx: OpContext) -> DepthToSpaceParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    ctx.check_type(x, (FLOAT32, UINT8, INT8, INT32, INT64), "input")
    b = int(ctx.options.get("block_size", 0))
    ctx.check(b > 0, f"block_size {b} must be > 0")
    ctx.check(len(x.shape) == 4 and x.shape[3] % (b * b) == 0,
              f"input {list(x.shape)} must be 4-D with depth divisible by {b * b}")
    _, h, w, _ = x.shape
    ctx.check(b * b < 2**31 and h * b < 2**31 and w * b < 2**31,
              f"block_size {b} with input {list(x.shape)}: LiteRT would overflow int computing "
              "the output shape (H * block_size, W * block_size, block_size^2)", ".builtin_options")
    return DepthToSpaceParams(b)


def eval(p: DepthToSpaceParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    n, h, w, c = x.shape
    b = p.block_size
    y = x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
    return [np.array(y.reshape(n, h * b, w * b, c // (b * b)))]
