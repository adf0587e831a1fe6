"""ARG_MAX and ARG_MIN: float32, uint8, int8, int32 and bool inputs; int32 or int64
axis; int32 or int64 output.

Mirrors ``tflite/kernels/arg_min_max.cc`` (``Prepare``, ``Eval``; both resolvers run
``optimized_ops::ArgMinMax``) and ``tflite/kernels/internal/reference/arg_min_max.h``.
Quantization parameters are ignored: the kernel compares raw values.

Along the axis, starting from element 0, a later element replaces the current one
only when strictly greater (ARG_MAX) or strictly less (ARG_MIN), so ties give the first
index. Floats use LiteRT's NaN-aware comparator (``GetComparefunction``, July 2026;
measured in this wheel): a NaN candidate never wins, any non-NaN candidate replaces a
NaN current value, an all-NaN row gives 0::

    idx = 0; cur = x[0]
    for i in 1..n-1:
        if !isnan(x[i]) and (isnan(cur) or x[i] > cur): cur = x[i]; idx = i

When every dimension after the axis is 1 and the axis has 4 or more float elements,
``optimized_ops::ArgMinMax`` takes ``ArgMaxVector``/``ArgMinVector``, written with
NEON intrinsics that x86 builds run through NEON_2_SSE (intel/ARM_NEON_2_x86_SSE):
four lanes each keep the best of elements 4k + lane with the rule above over full
groups of 4, then ``vpmax_f32``/``vpmin_f32`` fold the lanes as ``a < b ? b : a``
(``a > b ? b : a``), which keeps the first operand when either is NaN; the lowest
lane index holding that value wins; the leftover elements follow the scalar rule;
a NaN result gives 0. Without NaN this equals the scalar rule; with NaN it can differ
(ARG_MAX of [NaN, 1, 2, 2] is 0 there, 2 in the scalar rule) and is reproduced here.
int8/uint8 ArgMax on that path and every other case give the first extreme index.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import BOOL, FLOAT32, INT8, INT32, INT64, UINT8, OpContext

# Both LiteRT resolvers run optimized_ops::ArgMinMax, and XNNPACK does not take ARG_MAX/
# ARG_MIN: one kernel for the three LiteRT paths (tested against each). TFLite Micro has
# its own kernel (not checked).
NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class ArgMinMaxParams:
    is_arg_max: bool
    axis: int | None               # normalized; None when the axis tensor is not constant
    rank: int
    out_dtype: type
    path: str


def normalize_axis(value: int, rank: int, error) -> int:
    """``ReadAndNormalizeAxis``: negative counts from the end; must land in [0, rank)."""
    a = value + rank if value < 0 else value
    if not 0 <= a < rank:
        raise error(f"axis {value} out of range for a rank-{rank} input")
    return a


def prepare(ctx: OpContext) -> ArgMinMaxParams:
    if ctx.op_name not in ("ARG_MAX", "ARG_MIN"):
        raise ctx.unsupported("the arg_min_max module implements ARG_MAX and ARG_MIN only")
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    axis = ctx.input(1)
    out = ctx.output(0)
    ctx.check(axis.num_elements == 1, f"axis must have exactly one element, has shape "
              f"{list(axis.shape)}", ".inputs[1]")
    if axis.type not in (INT32, INT64):
        raise ctx.unsupported(f"axis tensor has type {axis.type_name}; supported: INT32, INT64")
    output_type = ctx.options.get("output_type")
    if output_type not in (INT32, INT64):
        raise ctx.unsupported(f"output_type {output_type}; supported: INT32, INT64")
    ctx.check(out.type == output_type, f"output tensor has type {out.type_name} but output_type "
              f"says {'INT32' if output_type == INT32 else 'INT64'}", ".outputs[0]")
    ctx.check_type(x, (FLOAT32, UINT8, INT8, INT32, BOOL), "input")
    rank = len(x.shape)
    ctx.check(rank >= 1, "input must have rank >= 1", ".inputs[0]")
    a = None
    if axis.is_constant:
        a = normalize_axis(int(np.asarray(axis.data).reshape(-1)[0]), rank,
                           lambda msg: ctx.error(msg, ".inputs[1]"))
        ctx.check(x.shape[a] > 0, "cannot compute ArgMin/ArgMax over an empty axis", ".inputs[0]")
    return ArgMinMaxParams(is_arg_max=ctx.op_name == "ARG_MAX", axis=a, rank=rank,
                           out_dtype=np.int32 if output_type == INT32 else np.int64, path=ctx.path)


def eval(p: ArgMinMaxParams, x: np.ndarray, axis: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    x = np.asarray(x)
    a = p.axis
    if a is None:
        a = normalize_axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim,
                           lambda msg: InputError(f"{p.path}.inputs[1]: {msg}"))
        if x.shape[a] == 0:
            raise InputError(f"{p.path}: cannot compute ArgMin/ArgMax over an empty axis")
    if x.dtype.kind == "f":
        inner = int(np.prod(x.shape[a + 1:], dtype=np.int64))
        if inner == 1 and x.shape[a] >= 4:
            rows = x.reshape(-1, x.shape[a])
            idx = vector_arg_min_max_f32(rows, p.is_arg_max).reshape(x.shape[:a] + x.shape[a + 1:])
        else:
            idx = scalar_arg_min_max_f32(x, a, p.is_arg_max)
    else:
        idx = np.argmax(x, axis=a) if p.is_arg_max else np.argmin(x, axis=a)
    return [idx.astype(p.out_dtype)]


def scalar_arg_min_max_f32(x: np.ndarray, a: int, is_arg_max: bool) -> np.ndarray:
    """First index of the largest (smallest) non-NaN value along axis ``a``; 0 if all NaN."""
    fill = -np.inf if is_arg_max else np.inf
    clean = np.where(np.isnan(x), fill, x)
    best = clean.max(axis=a, keepdims=True) if is_arg_max else clean.min(axis=a, keepdims=True)
    return np.argmax((clean == best) & ~np.isnan(x), axis=a)


def vector_arg_min_max_f32(rows: np.ndarray, is_arg_max: bool) -> np.ndarray:
    """``ArgMaxVector<float>``/``ArgMinVector<float>`` as NEON_2_SSE runs them, per row of
    ``rows`` [M, n] with n >= 4 (see the module docstring)."""
    def better(v, cur):   # the NaN-aware comparator
        strict = v > cur if is_arg_max else v < cur
        return ~np.isnan(v) & (np.isnan(cur) | strict)

    def fold(u, w):       # vpmax_f32 / vpmin_f32 on one pair
        return np.where(u < w, w, u) if is_arg_max else np.where(u > w, w, u)

    m, n = rows.shape
    val = rows[:, 0:4].copy()
    lane_idx = np.broadcast_to(np.arange(4, dtype=np.int64), (m, 4)).copy()
    i = 4
    while i <= n - 4:
        v = rows[:, i:i + 4]
        upd = better(v, val)
        val = np.where(upd, v, val)
        lane_idx = np.where(upd, np.arange(i, i + 4), lane_idx)
        i += 4
    best = fold(fold(val[:, 0], val[:, 1]), fold(val[:, 2], val[:, 3]))
    idx = np.where(val == best[:, None], lane_idx, np.iinfo(np.int32).max).min(axis=1)
    for j in range(i, n):
        upd = better(rows[:, j], best)
        best = np.where(upd, rows[:, j], best)
        idx = np.where(upd, j, idx)
    return np.where(np.isnan(best), 0, idx)
