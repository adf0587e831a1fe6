"""UNPACK: split along ``axis`` into ``num`` tensors of rank - 1 (``tflite/kernels/unpack.cc``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import OpContext, copy_array as _copy

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class UnpackParams:
    axis: int


def prepare(ctx: OpContext) -> UnpackParams:
    ctx.check_io_count(1, len(ctx.outputs))
    x = ctx.input(0)
    rank = len(x.shape)
    axis = int(ctx.options.get("axis", 0))
    if axis < 0:
        axis += rank
    ctx.check(0 <= axis < rank, f"axis {ctx.options.get('axis')} out of range for rank {rank}")
    num = int(ctx.options.get("num", 0))
    ctx.check(num == x.shape[axis] == len(ctx.outputs),
              f"num {num}, dimension {x.shape[axis]} and {len(ctx.outputs)} outputs must agree")
    return UnpackParams(axis)


def eval(p: UnpackParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [_copy(np.take(x, i, axis=p.axis)) for i in range(x.shape[p.axis])]
