"""SLICE: ``x[begin : begin + size]`` per dimension, size -1 meaning "to the end".

Mirrors ``tflite/kernels/slice.cc`` (begin/size int32 or int64, up to 5 dimensions,
begin >= 0 and begin + size <= dim checked).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT32, INT64, OpContext, copy_array as _copy

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class SliceParams:
    path: str


def prepare(ctx: OpContext) -> SliceParams:
    ctx.check_io_count(3, 1)
    x = ctx.input(0)
    ctx.check(len(x.shape) <= 5, "SLICE supports up to 5 dimensions")
    for i in (1, 2):
        t = ctx.input(i)
        ctx.check_type(t, (INT32, INT64), ("begin", "size")[i - 1])  # slice.cc: int32 or int64
        ctx.check(len(t.shape) == 1 and t.shape[0] == len(x.shape),
                  f"input {i} must have {len(x.shape)} elements", f".inputs[{i}]")
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    return SliceParams(ctx.path)


def eval(p: SliceParams, x, begin, size) -> list[np.ndarray]:  # noqa: A001
    index = []
    for d, (b, s) in enumerate(zip(np.asarray(begin).reshape(-1), np.asarray(size).reshape(-1))):
        b, s = int(b), int(s)
        if s == -1:
            s = x.shape[d] - b
        if b < 0 or s < 0 or b + s > x.shape[d]:
            raise InputError(f"{p.path}: slice begin {b} size {s} out of range for dimension {d} "
                             f"of size {x.shape[d]}")
        index.append(slice(b, b + s))
    return [_copy(x[tuple(index)])]
