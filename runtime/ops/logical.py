"""LOGICAL_AND, LOGICAL_OR (broadcasting) and LOGICAL_NOT on bool tensors.

Mirrors LiteRT's ``tflite/kernels/logical.cc`` (bool inputs and output; binary ops
broadcast, ``BroadcastBinaryFunction4DSlow``: rank <= 4) and ``elementwise.cc``
(LOGICAL_NOT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import BOOL, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class Params:
    op: str


def prepare(ctx: OpContext) -> Params:
    n = 1 if ctx.op_name == "LOGICAL_NOT" else 2
    ctx.check_io_count(n, 1)
    for i in range(n):
        ctx.check(ctx.input(i).type == BOOL, f"input {i} must be BOOL")
    ctx.check(ctx.output(0).type == BOOL, "output must be BOOL")
    if n == 2 and tuple(ctx.input(0).shape) != tuple(ctx.input(1).shape):
        ctx.check(max(len(ctx.input(0).shape), len(ctx.input(1).shape)) <= 4,
                  "broadcasting supports rank <= 4")
        try:  # kernel_util.cc CalculateShapeForBroadcast
            np.broadcast_shapes(tuple(ctx.input(0).shape), tuple(ctx.input(1).shape))
        except ValueError:
            raise ctx.error(f"input shapes {list(ctx.input(0).shape)} and {list(ctx.input(1).shape)} "
                            "do not broadcast") from None
    return Params(ctx.op_name)


def eval(p: Params, a: np.ndarray, b: np.ndarray | None = None) -> list[np.ndarray]:
    if p.op == "LOGICAL_NOT":
        return [np.logical_not(a)]
    f = np.logical_and if p.op == "LOGICAL_AND" else np.logical_or
    return [np.ascontiguousarray(f(a, b))]
