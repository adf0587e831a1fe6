"""DEQUANTIZE: int8/uint8/int16/int4 (per tensor or per channel) and float16 -> float32.

Mirrors ``tflite/kernels/dequantize.cc`` and ``reference/dequantize.h``:
``f = float(double(s) * (q - zp))`` (eq. 1); float16 converts exactly.
"""
from __future__ import annotations

import functools
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
    if p.axis is None and x.dtype in (np.int8, np.uint8):
        table = _code_table(float(p.scale[0]), int(p.zero_point[0]), x.dtype.str)
        return [np.take(table, x.view(np.uint8))]
    with np.errstate(over="ignore"):  # a huge scale gives +-inf, as in C
        return [affine_dequantize(x, p.scale, p.zero_point, axis=p.axis)]


@functools.lru_cache(maxsize=256)
def _code_table(scale: float, zero_point: int, dtype_str: str) -> np.ndarray:
    """Per-tensor 8-bit DEQUANTIZE as a table: entry ``b`` is the kernel's own result
    (``quantcore.numerics.dequantize``) for the code whose raw byte is ``b``, so
    ``table[x.view(uint8)]`` is exact by construction."""
    codes = np.arange(256, dtype=np.uint8).view(np.dtype(dtype_str))
    with np.errstate(over="ignore"):
        table = affine_dequantize(codes, np.array([scale], np.float32), np.array([zero_point]), axis=None)
    table = np.ascontiguousarray(table, np.float32)
    table.flags.writeable = False
    return table
