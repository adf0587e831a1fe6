"""RESHAPE, SQUEEZE, EXPAND_DIMS: the same bytes under a new shape.

Mirrors ``tflite/kernels/reshape.cc`` (shape from the second input when present,
else ``new_shape`` in the options; one -1 is inferred), ``squeeze.cc``
(``squeeze_dims``, negative allowed; none = every size-1 dimension) and
``expand_dims.cc`` (axis in [-rank-1, rank]). Quantized inputs keep their
parameters: LiteRT copies bytes and does not rescale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT32, OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class ReshapeParams:
    op: str
    path: str
    new_shape: tuple[int, ...] | None
    squeeze_dims: tuple[int, ...]


def prepare(ctx: OpContext) -> ReshapeParams:
    if ctx.op_name == "RESHAPE":
        ctx.check_io_count((1, 2), 1)
        ctx.input(0)
        new_shape = None
        shape_t = ctx.inputs[1] if len(ctx.inputs) == 2 else None
        if shape_t is None or shape_t.type != INT32 or len(shape_t.shape) != 1:
            # reshape.cc ShapeIsVector: a shape tensor that is not an int32 vector is
            # ignored in favour of the new_shape option.
            ns = ctx.options.get("new_shape")
            new_shape = tuple(int(d) for d in ns) if ns is not None else tuple(ctx.output(0).shape)
        return ReshapeParams("RESHAPE", ctx.path, new_shape, ())
    if ctx.op_name == "SQUEEZE":
        ctx.check_io_count(1, 1)
        rank = len(ctx.input(0).shape)
        dims = tuple(int(d) for d in (ctx.options.get("squeeze_dims") or ()))
        for d in dims:
            ctx.check(-rank <= d < rank, f"squeeze dimension {d} out of range for rank {rank}")
        ctx.check(rank <= 8, "SQUEEZE supports up to 8 dimensions")
        return ReshapeParams("SQUEEZE", ctx.path, None, dims)
    ctx.check_io_count(2, 1)
    ctx.input(0)
    int_param(ctx, 1, "axis")
    return ReshapeParams("EXPAND_DIMS", ctx.path, None, ())


def _resolve(shape: list[int], size: int, path: str) -> tuple[int, ...]:
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in shape):
        raise InputError(f"{path}: RESHAPE target {shape} has more than one -1 or a negative size")
    known = 1
    for d in shape:
        if d != -1:
            known *= d
    if unknown:
        if known == 0 or size % known:
            raise InputError(f"{path}: cannot reshape {size} elements to {shape}")
        shape = list(shape)
        shape[unknown[0]] = size // known
    elif known != size:
        raise InputError(f"{path}: cannot reshape {size} elements to {shape}")
    return check_output_size(path, "RESHAPE", shape, np.uint8)


def eval(p: ReshapeParams, x: np.ndarray, arg: np.ndarray | None = None) -> list[np.ndarray]:  # noqa: A001
    if p.op == "RESHAPE":
        if p.new_shape is not None:
            target = list(p.new_shape)
        else:
            target = [int(d) for d in np.asarray(arg).reshape(-1)]
        return [x.reshape(_resolve(target, x.size, p.path))]
    if p.op == "SQUEEZE":
        if p.squeeze_dims:
            axes = tuple(sorted({d % x.ndim for d in p.squeeze_dims}))
            for a in axes:
                if x.shape[a] != 1:
                    raise InputError(f"{p.path}: cannot squeeze dimension {a} of size {x.shape[a]}")
            return [np.squeeze(x, axis=axes)]
        return [np.squeeze(x)]
    axis_arr = np.asarray(arg).reshape(-1)
    if axis_arr.size != 1:
        raise InputError(f"{p.path}: EXPAND_DIMS axis must have one element, has {axis_arr.size}")
    axis = int(axis_arr[0])
    if axis < 0:
        axis += x.ndim + 1
    if not 0 <= axis <= x.ndim:
        raise InputError(f"{p.path}: EXPAND_DIMS axis {int(axis_arr[0])} out of range for rank {x.ndim}")
    return [np.expand_dims(x, axis)]
