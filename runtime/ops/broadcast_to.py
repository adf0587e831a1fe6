"""BROADCAST_TO a shape (``tflite/kernels/broadcast_to.cc``, up to 8 dimensions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class BroadcastToParams:
    path: str


def prepare(ctx: OpContext) -> BroadcastToParams:
    ctx.check_io_count(2, 1)
    int_param(ctx, 1, "shape")  # broadcast_to.cc: int32 or int64
    ctx.check(len(ctx.input(0).shape) <= 8, "BROADCAST_TO supports up to 8 dimensions")
    return BroadcastToParams(ctx.path)


def eval(p: BroadcastToParams, x: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    target = [int(d) for d in np.asarray(shape).reshape(-1)]
    if len(target) < x.ndim or len(target) > 8:
        raise InputError(f"{p.path}: cannot broadcast {list(x.shape)} to {target}")
    check_output_size(p.path, "BROADCAST_TO", [max(d, 0) for d in target], x.dtype)
    try:
        return [np.array(np.broadcast_to(x, target))]
    except ValueError:
        raise InputError(f"{p.path}: cannot broadcast {list(x.shape)} to {target}") from None
