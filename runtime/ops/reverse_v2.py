"""REVERSE_V2: reverse a tensor along the axes listed in a 1-D int32 tensor.

Mirrors LiteRT's ``tflite/kernels/reverse.cc``: rank <= 8, axis tensor 1-D int32 with
at most rank elements; at eval negative axes are wrapped, every axis must lie in
[0, rank), and the sorted axes must be contiguous (``Non-contiguous axes not
supported``; a repeated axis counts as non-contiguous). Pure data movement; every
element type the kernel accepts (bool, int8/16/32/64, uint8, float16/32).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT32, NUMERICS as _ALL, OpContext

NUMERICS = _ALL


@dataclass(frozen=True)
class Params:
    rank: int
    axes: tuple | None      # constant axes, validated
    path: str


def _axes(values, rank: int, path: str) -> tuple:
    axes = sorted(int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(values).reshape(-1))
    if len(axes) > 8 or any(not 0 <= a < rank for a in axes):
        raise InputError(f"{path}: REVERSE_V2 axes {np.asarray(values).tolist()} out of range for "
                         f"rank {rank}")
    if any(b != a + 1 for a, b in zip(axes, axes[1:])):
        raise InputError(f"{path}: REVERSE_V2 axes {np.asarray(values).tolist()} are not "
                         "contiguous (LiteRT: non-contiguous axes not supported)")
    return tuple(axes)


def prepare(ctx: OpContext) -> Params:
    ctx.check_io_count(2, 1)
    x, axis = ctx.input(0), ctx.input(1)
    ctx.check(len(axis.shape) == 1, f"axis tensor must be 1-D, has shape {list(axis.shape)}")
    ctx.check(len(x.shape) <= 8, f"input rank {len(x.shape)} > 8")
    ctx.check(len(x.shape) >= axis.num_elements, "more axes than input dimensions")
    if axis.type != INT32:
        raise ctx.unsupported(f"axis type {axis.type_name} (LiteRT supports INT32)")
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    axes = _axes(axis.data, len(x.shape), ctx.path) if axis.is_constant else None
    return Params(len(x.shape), axes, ctx.path)


def eval(p: Params, x: np.ndarray, axis: np.ndarray) -> list[np.ndarray]:
    axes = p.axes if p.axes is not None else _axes(axis, x.ndim, p.path)
    return [np.ascontiguousarray(np.flip(x, axis=axes) if axes else x.copy())]
