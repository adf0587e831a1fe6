"""SHAPE: the input's dimensions as int32 or int64 (``tflite/kernels/shape.cc``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import INT32, INT64, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class ShapeParams:
    out_dtype: type


def prepare(ctx: OpContext) -> ShapeParams:
    ctx.check_io_count(1, 1)
    ctx.input(0)
    out = ctx.output(0)
    ctx.check_type(out, (INT32, INT64), "output")
    return ShapeParams(np.int32 if out.type == INT32 else np.int64)


def eval(p: ShapeParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [np.array(x.shape, p.out_dtype)]
