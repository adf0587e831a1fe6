"""CAST between numeric types and bool (``tflite/kernels/cast.cc``).

Floating -> integer saturates (``SaturatingCastFloatingToInteger``: truncation,
values beyond the range clamp, NaN gives the type's maximum); to bool is ``!= 0``;
everything else is a C ``static_cast`` (integers wrap).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class CastParams:
    out_dtype: np.dtype


def prepare(ctx: OpContext) -> CastParams:
    ctx.check_io_count(1, 1)
    ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.dtype != np.dtype(object), "CAST to string is not supported")
    return CastParams(out.dtype)


def eval(p: CastParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    dt = p.out_dtype
    if dt == np.bool_:
        return [x != 0]
    if x.dtype.kind == "f" and dt.kind in "iu":
        info = np.iinfo(dt)
        v = x.astype(np.float64)
        nan = np.isnan(v)
        # Saturate before converting: float(int64 max) is 2^63, which does not fit.
        hi, lo = v >= float(info.max), v <= float(info.min)
        mid = np.where(nan | hi | lo, 0, np.trunc(v)).astype(dt)
        return [np.where(nan | hi, dt.type(info.max), np.where(lo, dt.type(info.min), mid))]
    if x.dtype.kind in "iub" and dt.kind in "iu":
        return [x.astype(np.int64).astype(dt) if x.dtype != np.uint64 else x.astype(dt)]
    with np.errstate(over="ignore"):  # to float16: out of range gives +-inf, as in C
        return [x.astype(dt)]
