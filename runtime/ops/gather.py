"""GATHER along ``axis`` with ``batch_dims`` (``tflite/kernels/gather.cc``).

Indices (int16/int32/int64) are checked at eval time: one outside [0, dim) raises
InputError, as LiteRT's "gather index out of bounds" error does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT16, INT32, INT64, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class GatherParams:
    path: str
    axis: int
    batch_dims: int


def prepare(ctx: OpContext) -> GatherParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    idx = ctx.input(1)
    ctx.check_type(idx, (INT16, INT32, INT64), "indices")  # gather.cc: int16, int32, int64
    rank = len(x.shape)
    axis = int(ctx.options.get("axis", 0))
    if axis < 0:
        axis += rank
    ctx.check(0 <= axis < rank, f"axis {ctx.options.get('axis')} out of range for rank {rank}")
    bd = int(ctx.options.get("batch_dims", 0))
    if bd < 0:
        bd += len(idx.shape)
    ctx.check(0 <= bd <= axis and bd <= len(idx.shape), f"batch_dims {bd} out of range")
    for d in range(bd):
        ctx.check(x.shape[d] == idx.shape[d], f"batch dimension {d} differs between params and indices")
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    return GatherParams(ctx.path, axis, bd)


def eval(p: GatherParams, x: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    idx = np.asarray(indices).astype(np.int64)
    n = x.shape[p.axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"{p.path}: gather index out of bounds [0, {n})")
    if p.batch_dims == 0:
        return [np.take(x, idx, axis=p.axis)]
    bshape = x.shape[:p.batch_dims]
    nb = int(np.prod(bshape)) if bshape else 1
    xb = x.reshape((nb,) + x.shape[p.batch_dims:])
    ib = idx.reshape((nb,) + idx.shape[p.batch_dims:])
    outs = [np.take(xb[b], ib[b], axis=p.axis - p.batch_dims) for b in range(nb)]
    out = np.stack(outs) if outs else np.zeros((0,), x.dtype)
    return [out.reshape(bshape + out.shape[1:])]
