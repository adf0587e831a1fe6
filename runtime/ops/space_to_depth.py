"""SPACE_TO_DEPTH (``tflite/kernels/space_to_depth.cc``): [N, H, W, C] -> [N, H/b, W/b, b*b*C]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import FLOAT32, INT8, INT32, INT64, UINT8, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class SpaceToDepthParams:
    block_size: int


def prepare(ctx: OpContext) -> SpaceToDepthParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    ctx.check_type(x, (FLOAT32, UINT8, INT8, INT32, INT64), "input")
    b = int(ctx.options.get("block_size", 0))
    ctx.check(b > 0, f"block_size {b} must be > 0")
    ctx.check(len(x.shape) == 4 and x.shape[1] % b == 0 and x.shape[2] % b == 0,
              f"input {list(x.shape)} must be 4-D with height and width divisible by {b}")
    ctx.check(b * b * x.shape[3] < 2**31,
              f"block_size {b} with input {list(x.shape)}: LiteRT would overflow int computing "
              "the output depth (block_size^2 * C)", ".builtin_options")
    return SpaceToDepthParams(b)


def eval(p: SpaceToDepthParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    n, h, w, c = x.shape
    b = p.block_size
    y = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return [np.array(y.reshape(n, h // b, w // b, b * b * c))]
