"""PACK: stack N tensors of equal shape along a new axis (``tflite/kernels/pack.cc``).

Quantized inputs must share the output's scale and zero point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import INT8, INT16, UINT8, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class PackParams:
    axis: int


def prepare(ctx: OpContext) -> PackParams:
    n = int(ctx.options.get("values_count", 0))
    ctx.check(n == len(ctx.inputs) and n >= 1, f"values_count {n} differs from {len(ctx.inputs)} inputs")
    ctx.check(len(ctx.outputs) == 1, "needs one output")
    t0 = ctx.input(0)
    rank = len(t0.shape)
    axis = int(ctx.options.get("axis", 0))
    if axis < 0:
        axis += rank + 1
    ctx.check(0 <= axis <= rank, f"axis {ctx.options.get('axis')} out of range for rank {rank}")
    out = ctx.output(0)
    for i, t in enumerate(ctx.inputs):
        ctx.check(t is not None and tuple(t.shape) == tuple(t0.shape) and t.type == t0.type,
                  f"input {i} differs from input 0 in shape or type", f".inputs[{i}]")
        if t.type in (INT8, UINT8, INT16) and t.quantized and out.quantized:
            ctx.check(t.s == out.s and t.zp == out.zp,
                      f"input {i} must share the output's scale and zero point", f".inputs[{i}]")
    return PackParams(axis)


def eval(p: PackParams, *xs: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [np.stack(xs, axis=p.axis)]
