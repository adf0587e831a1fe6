"""MAXIMUM and MINIMUM (one kernel, ``ctx.op_name`` selects): float32, int8, uint8,
int16, int32, int64, with broadcasting up to 8 dimensions.

Mirrors ``tflite/kernels/maximum_minimum.cc`` and
``tflite/kernels/internal/reference/maximum_minimum.h`` in google-ai-edge/LiteRT.
Pure data movement: the raw stored values are compared, ``x1 > x2 ? x1 : x2``
(MAXIMUM) and ``x1 < x2 ? x1 : x2`` (MINIMUM), with no rescaling. LiteRT checks no
quantization parameters (the converter gives inputs and output equal scales and zero
points; when they differ LiteRT still compares raw values, and so does this kernel).
With NaN, the second input wins unless the first input compares true, so
``MAXIMUM(NaN, 1) = 1`` but ``MAXIMUM(1, NaN) = NaN``; ``MAXIMUM(-0.0, 0.0) = 0.0``
and ``MAXIMUM(0.0, -0.0) = -0.0``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._broadcast import binary_shapes, check_binary_io, check_output_type
from ._common import FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class MaximumMinimumParams:
    maximum: bool
    output_shape: tuple[int, ...]
    dtype: np.dtype


def prepare(ctx: OpContext) -> MaximumMinimumParams:
    a, b, out = check_binary_io(ctx)
    check_output_type(ctx, a, out)
    ctx.check_type(a, (FLOAT32, INT8, UINT8, INT16, INT32, INT64), "input")
    sh = binary_shapes(ctx, a, b, flat_test="same")
    return MaximumMinimumParams(maximum=ctx.op_name == "MAXIMUM", output_shape=sh.output_shape,
                                dtype=a.dtype)


def eval(p: MaximumMinimumParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    with np.errstate(invalid="ignore"):
        pick_first = x1 > x2 if p.maximum else x1 < x2
    r = np.where(pick_first, x1, x2)
    return [np.broadcast_to(r, p.output_shape).astype(p.dtype)]
