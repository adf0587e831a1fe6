"""DEQUANTIZE: int8/uint8/int16/int4 (per tensor or per channel) and float16 -> float32.

Mirrors ``tflite/kernels/dequantize.cc`` and ``reference/dequantize.h``:
``f = float(double(s) * (q - zp))`` (eq. 1); float16 converts exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.numerics import dequantize as affine_dequantize

from . import _paths_unary
from ._common import FLOAT16, FLOAT32, INT8, INT16, UINT8, OpContext
from ._paths_common import PathParams
from quantcore.schema.model import TensorType

NUMERICS = ("reference", "optimized", "xnnpack", "micro")
_INT4 = int(TensorType.INT4)


@dataclass(frozen=True)
class DequantizeParams:
    from_float16: bool
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    axis: int | None


def prepare(ctx: OpContext) -> DequantizeParams | PathParams:
    # "optimized": 8-wide blocks with two float32 roundings (see quantcore.numerics.dequantize).
    return _paths_unary.for_dequantize(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> DequantizeParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == FLOAT32, f"output must be float32, is {out.type_name}", ".outputs[0]")
    if x.type == FLOAT16:
        return DequantizeParams(True, None, None, None)
    ctx.check_type(x, (INT8, UINT8, INT16, _INT4), "input")
    ctx.require_quantized(x, per_channel_dim=x.quantized_dimension)
    if x.type == INT16:
        ctx.check(bool(np.all(x.zero_point == 0)), "int16 DEQUANTIZE needs zero point 0")
    return DequantizeParams(False, x.scale, x.zero_point, x.quantized_dimension if x.per_channel else None)


def eval(p: DequantizeParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_dequantize(p, x)
    if p.from_float16:
        return [x.astype(np.float32)]
    with np.errstate(over="ignore"):  # a huge scale gives +-inf, as in C
        return [affine_dequantize(x, p.scale, p.zero_point, axis=p.axis)]
