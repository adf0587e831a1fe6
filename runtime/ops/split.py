"""SPLIT (equal parts; inputs: axis, value) and SPLIT_V (given sizes, one -1
inferred; inputs: value, size_splits, axis). Mirrors ``tflite/kernels/split.cc``
and ``split_v.cc``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import OpContext, copy_array as _copy, int_param, require_inputs

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class SplitParams:
    path: str
    op: str
    num_splits: int


def prepare(ctx: OpContext) -> SplitParams:
    n = int(ctx.options.get("num_splits", 0))
    ctx.check(n > 0 and n == len(ctx.outputs), f"num_splits {n} differs from {len(ctx.outputs)} outputs")
    ctx.check(len(ctx.inputs) == (2 if ctx.op_name == "SPLIT" else 3), "wrong number of inputs")
    require_inputs(ctx)
    if ctx.op_name == "SPLIT":
        int_param(ctx, 0, "axis")
    else:
        int_param(ctx, 1, "size_splits")  # split_v.cc: int32 or int64
        int_param(ctx, 2, "axis")
    return SplitParams(ctx.path, ctx.op_name, n)


def _axis(a, rank: int, path: str) -> int:
    arr = np.asarray(a).reshape(-1)
    if arr.size != 1:
        raise InputError(f"{path}: axis must have one element")
    axis = int(arr[0])
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise InputError(f"{path}: axis {int(arr[0])} out of range for rank {rank}")
    return axis


def eval(p: SplitParams, *args) -> list[np.ndarray]:  # noqa: A001
    if p.op == "SPLIT":
        axis_t, x = args
        axis = _axis(axis_t, x.ndim, p.path)
        if x.shape[axis] % p.num_splits:
            raise InputError(f"{p.path}: dimension {axis} of size {x.shape[axis]} does not split "
                             f"into {p.num_splits} equal parts")
        return [_copy(a) for a in np.split(x, p.num_splits, axis=axis)]
    x, sizes_t, axis_t = args
    axis = _axis(axis_t, x.ndim, p.path)
    sizes = [int(s) for s in np.asarray(sizes_t).reshape(-1)]
    if len(sizes) != p.num_splits or sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        raise InputError(f"{p.path}: invalid size_splits {sizes}")
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise InputError(f"{p.path}: size_splits {sizes} do not add up to {x.shape[axis]}")
    cuts = np.cumsum(sizes)[:-1]
    return [_copy(a) for a in np.split(x, cuts, axis=axis)]
