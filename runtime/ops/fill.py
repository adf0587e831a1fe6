"""FILL: a tensor of shape ``dims`` with every element ``value`` (``tflite/kernels/fill.cc``).
Quantized int8/int16 fill requires value and output to share scale and zero point."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class FillParams:
    path: str


def prepare(ctx: OpContext) -> FillParams:
    ctx.check_io_count(2, 1)
    int_param(ctx, 0, "dims")  # fill.cc: int32 or int64
    v = ctx.input(1)
    out = ctx.output(0)
    ctx.check(v.num_elements == 1, "value must be a scalar", ".inputs[1]")
    ctx.check(out.type == v.type, "output type differs from the value's type")
    if v.quantized and out.quantized:
        ctx.check(v.s == out.s and v.zp == out.zp, "value and output must share scale and zero point")
    return FillParams(ctx.path)


def eval(p: FillParams, dims: np.ndarray, value: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    shape = [int(d) for d in np.asarray(dims).reshape(-1)]
    if any(d < 0 for d in shape):
        raise InputError(f"{p.path}: FILL dims {shape} must be non-negative")
    check_output_size(p.path, "FILL", shape, value.dtype)
    return [np.full(shape, np.asarray(value).reshape(-1)[0], dtype=value.dtype)]
