"""LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, EQUAL, NOT_EQUAL -> bool (WHILE loop
conditions of converted Keras RNNs use LESS).

Mirrors LiteRT's ``tflite/kernels/comparisons.cc``: both inputs of one type, NumPy
broadcasting (LiteRT's broadcast path is ``BroadcastComparison4DSlow``: rank <= 4);
float32, int32, int64 (and bool for EQUAL/NOT_EQUAL) compare the values; int8, uint8
and int16 compare ``MultiplyByQuantizedMultiplierSmallerThanOneExp((q - zp) << 8,
M(scale))`` of each input (``ComparisonWithScaling``), which LiteRT only defines for
scales below 1 (a larger scale gives a left shift where the helper expects a right
shift; refused here).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import (quantize_multiplier, rounding_divide_by_pot,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._common import BOOL, FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")

_OPS = {"LESS": np.less, "LESS_EQUAL": np.less_equal, "GREATER": np.greater,
        "GREATER_EQUAL": np.greater_equal, "EQUAL": np.equal, "NOT_EQUAL": np.not_equal}


@dataclass(frozen=True)
class Params:
    op: str
    scaling: tuple | None   # ((offset, multiplier, shift) x 2) for quantized inputs


def prepare(ctx: OpContext) -> Params:
    ctx.check_io_count(2, 1)
    a, b = ctx.input(0), ctx.input(1)
    ctx.check(a.type == b.type, f"input types differ ({a.type_name}, {b.type_name})")
    allowed = (FLOAT32, INT32, INT64, INT8, UINT8, INT16) + (
        (BOOL,) if ctx.op_name in ("EQUAL", "NOT_EQUAL") else ())
    ctx.check_type(a, allowed, "input")
    ctx.check(ctx.output(0).type == BOOL, "output must be BOOL")
    if tuple(a.shape) != tuple(b.shape):
        ctx.check(max(len(a.shape), len(b.shape)) <= 4, "broadcast comparison supports rank <= 4")
        try:  # kernel_util.cc CalculateShapeForBroadcast
            np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
        except ValueError:
            raise ctx.error(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    scaling = None
    if a.type in (INT8, UINT8, INT16):
        sc = []
        for t in (a, b):
            ctx.require_quantized(t)
            m, s = quantize_multiplier(t.s)
            if s > 0:
                raise ctx.unsupported(f"quantized comparison with scale {t.s} >= 1")
            sc.append((-t.zp, m, s))
        scaling = tuple(sc)
    return Params(ctx.op_name, scaling)


def _scaled(x, offset, m, s):
    v = wrap_int32((np.asarray(x, np.int64) + offset) << 8)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(v, m), -s)


def eval(p: Params, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    if p.scaling is not None:
        a = _scaled(a, *p.scaling[0])
        b = _scaled(b, *p.scaling[1])
    return [np.ascontiguousarray(_OPS[p.op](a, b))]
