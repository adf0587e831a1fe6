"""MEAN, SUM, REDUCE_MAX, REDUCE_MIN and REDUCE_PROD, as LiteRT's reference resolver runs them.

Mirrors ``tflite/kernels/reduce.cc`` (``PrepareSimple``, ``PrepareMeanOrSum``,
``PrepareProd``, ``EvalMean``/``EvalSum``/``EvalProd``/``EvalGeneric`` for
``kReference``) and ``tflite/kernels/internal/reference/reduce.h`` (``Mean``,
``ReduceGeneric``, ``QuantizedMeanOrSum``, ``QuantizedReduceProd``).

Axes: negative axes count from the end, duplicates are dropped; a rank-0 input
ignores the axis tensor (its values are not even checked). The C++ walks the input
in row-major order, so every output accumulates its reduced elements in the
lexicographic order of their indices along the reduced axes (in increasing axis
number, whatever the order of the axis tensor). Float sums and products, and the
quantized product, depend on that order; here the reduced axes are moved last and
the accumulation runs sequentially in that order.

Which kernel each type takes (``kReference``):

* MEAN float32 / int32 / int64: ``Mean<T, U>``: sum in U (float, int64, int64) from 0,
  then ``sum / U(N)`` (float32 division; C truncating division for integers).
* MEAN int8 / uint8 / int16 and SUM uint8: ``QuantizedMeanOrSum`` (eq. below).
* SUM int8: ``EvalSum`` passes the tensors to ``QuantizedMeanOrSum`` as **uint8**
  (``GetTensorData<uint8_t>``), so each int8 value is read as its byte ``x & 0xFF``,
  the result is clamped to [0, 255] and stored as a byte. LiteRT BUILTIN_REF really
  computes this (measured: SUM of [-3, 5, 100, -100] with scale 0.1 in and out gives
  -1); quantcore reproduces it bit for bit. The optimized and XNNPACK paths compute
  the true sum.
* SUM int16: the same uint8 reinterpretation reads half of the input bytes and writes
  half of the output bytes, leaving the other half of the output uninitialised: no
  reproducible result exists, so quantcore raises NumericsPathError.
* SUM / REDUCE_MAX / REDUCE_MIN / REDUCE_PROD of the other types: ``EvalGeneric``:
  output = init, then ``reducer(output, x)`` for every element: SUM ``a + b``, PROD
  ``a * b`` (integers wrap), MAX ``x > cur ? x : cur`` from the lowest value, MIN
  ``x < cur ? x : cur`` from the highest. When every axis is reduced
  (``ReduceAllDims``) the reduction starts from the first element instead of the
  init value: for floats this differs on NaN (a leading NaN survives MAX/MIN, other
  NaNs are skipped) and on -inf (MAX over only -inf gives -inf there, the lowest
  float otherwise). int8/uint8/int16 MAX/MIN need equal input and output scale and
  zero point (no rescaling). Bool: SUM and MAX are "any", PROD and MIN are "all".
* REDUCE_PROD of a quantized int8/int16 input: ``QuantizedReduceProd``.

Quantized MEAN/SUM (``QuantizedMeanOrSum``; M0, shift = QuantizeMultiplier(double(s_in) /
double(s_out)); N = number of reduced elements)::

    MEAN only:  k = min(floor(log2 N), 32, 31 + shift)
                M0 = int32((int64(M0) << k) / N);  shift = shift - k
    sum = sum of the raw values (int32, wrapping)
    out = clamp(MBQM(int32(sum - zp_in * N), M0, shift) + zp_out, qmin, qmax)

MBQM is the double-rounding ``MultiplyByQuantizedMultiplier`` (eq. 9). There is no
fused activation. Quantized PROD (M0, shift = QuantizeMultiplier(s_in / s_out^(1/N)),
in double; MBQM64 = the int64 ``MultiplyByQuantizedMultiplier``, eq. 10)::

    p = x_0 - zp_in;  p = MBQM64(int64(p) * (x_i - zp_in), M0, shift) for i = 1..N-1
    out = clamp(MBQM64(p, M0, shift) + zp_out, qmin, qmax)

Two LiteRT behaviours quantcore does not follow (it has no thread count, and it never
evaluates operators at prepare time): ``ReduceAllDims`` splits reductions of every axis
with at least 1024 elements per thread across threads, each chunk starting from the
init value, so with ``num_threads > 1`` float sums change in the last bits and a NaN
first element no longer survives MAX/MIN (quantcore = one thread, the oracle's
default); and ``PrepareProd`` evaluates REDUCE_PROD of a constant input with a
constant axis and at most 8 outputs at prepare time with the *optimized* kernel
(``optimized_ops::QuantizedReduceProd`` copies the input unscaled when no axis is
reduced); quantcore computes the reference formula.

Empty inputs: MEAN fills its output with ``quiet_NaN`` of the type (NaN for float,
0 for integers); quantized MEAN/SUM with a zero-sized dimension write 0; the generic
reducers write the init value; quantized PROD leaves the output unwritten in LiteRT,
so quantcore refuses it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError, NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  wrap_int32)

from . import _paths_reduce
from ._common import BOOL, FLOAT32, INT8, INT16, INT32, INT64, QMAX, QMIN, UINT8, OpContext
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack", "micro")  # micro: SUM below

_OPS = {"MEAN": "mean", "SUM": "sum", "REDUCE_MAX": "max", "REDUCE_MIN": "min",
        "REDUCE_PROD": "prod"}
_KINDS = {FLOAT32: "float", INT32: "int32", INT64: "int64", BOOL: "bool", INT8: "int8",
          UINT8: "uint8", INT16: "int16"}
_DTYPES = {"float": np.float32, "int32": np.int32, "int64": np.int64, "bool": np.bool_,
           "int8": np.int8, "uint8": np.uint8, "int16": np.int16}
_QUANT_KINDS = ("int8", "uint8", "int16")


@dataclass(frozen=True)
class ReducePlan:
    """Resolved axes of one input shape."""
    reduced: tuple[int, ...]       # resolved axes, ascending, no duplicates
    kept: tuple[int, ...]
    out_shape: tuple[int, ...]
    num_elements_in_axis: int      # N, product of the reduced dimensions
    reduce_all: bool               # every axis reduced (ReduceAllDims in EvalGeneric)
    empty: bool                    # some input dimension is 0


@dataclass(frozen=True)
class ReduceParams:
    op: str                        # "mean", "sum", "max", "min", "prod"
    kind: str                      # "float", "int32", "int64", "bool", "int8", "uint8", "int16"
    mode: str                      # "mean", "quantized_mean_or_sum", "quantized_prod", "generic"
    keep_dims: bool
    plan: ReducePlan | None        # None when the axis tensor is not constant
    path: str
    compute_sum: bool = False
    as_uint8: bool = False         # reference SUM int8: bytes read and written as uint8
    input_zero_point: int = 0
    output_zero_point: int = 0
    output_multiplier: int = 0     # QuantizeMultiplier(s_in / s_out) (MEAN/SUM); PROD: per plan
    output_shift: int = 0
    input_scale: float = 0.0
    output_scale: float = 0.0
    qmin: int = 0
    qmax: int = 0
    out_dtype: type = np.float32


def make_plan(shape: tuple[int, ...], axis_values, keep_dims: bool, error) -> ReducePlan:
    """``ResolveAxis`` + ``GetOutputShape``; ``error(message)`` builds the exception for an
    axis out of range."""
    rank = len(shape)
    resolved: list[int] = []
    if rank > 0:
        for a in np.asarray(axis_values).reshape(-1).tolist():
            c = a + rank if a < 0 else a
            if not 0 <= c < rank:
                raise error(f"axis {a} out of range for a rank-{rank} input")
            if c not in resolved:
                resolved.append(c)
    reduced = tuple(sorted(resolved))
    kept = tuple(i for i in range(rank) if i not in reduced)
    if keep_dims:
        out_shape = tuple(1 if i in reduced else int(shape[i]) for i in range(rank))
    else:
        out_shape = tuple(int(shape[i]) for i in kept)
    n = 1
    for i in reduced:
        n *= int(shape[i])
    return ReducePlan(reduced=reduced, kept=kept, out_shape=out_shape, num_elements_in_axis=n,
                      reduce_all=len(reduced) == rank, empty=any(int(d) == 0 for d in shape))


def prepare(ctx: OpContext) -> ReduceParams | PathParams:
    # Other numerics paths (LiteRT's optimized MEAN/SUM, XNNPACK): see _paths_reduce.
    return _paths_reduce.for_reduce(ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> ReduceParams:
    op = _OPS.get(ctx.op_name)
    if op is None:
        raise ctx.unsupported("the reduce module implements MEAN, SUM, REDUCE_MAX, REDUCE_MIN "
                              "and REDUCE_PROD")
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    axis = ctx.input(1)
    out = ctx.output(0)
    keep_dims = bool(ctx.options.get("keep_dims", False))
    if axis.type != INT32:
        raise ctx.unsupported(f"axis tensor has type {axis.type_name}; reduce.cc requires INT32")
    kind = _KINDS.get(x.type)
    allowed = {"mean": ("float", "int32", "int64", "int8", "uint8", "int16"),
               "sum": ("float", "int32", "int64", "bool", "int8", "uint8", "int16")}.get(
                   op, tuple(_DTYPES))
    if kind not in allowed:
        names = {"float": "FLOAT32"}
        raise ctx.unsupported(f"input type {x.type_name}; supported: "
                              + ", ".join(names.get(k, k.upper()) for k in allowed))
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}",
              ".outputs[0]")
    plan = None
    if axis.is_constant or axis.num_elements == 0:   # an empty axis list may have no buffer
        values = axis.data if axis.is_constant else np.zeros(0, np.int32)
        plan = make_plan(x.shape, values, keep_dims, lambda msg: ctx.error(msg, ".inputs[1]"))
    if kind == "int16":   # PrepareSimple
        ctx.check(_zp(x) == 0 and _zp(out) == 0, "int16 reduction needs zero points 0")
    common = dict(op=op, kind=kind, keep_dims=keep_dims, plan=plan, path=ctx.path,
                  out_dtype=_DTYPES[kind])

    if op in ("mean", "sum") and kind in _QUANT_KINDS:
        ctx.require_quantized(x)
        ctx.require_quantized(out)
        # TFLM (micro reduce_common.cc EvalSumHelper) sums int8/int16 in their own types.
        micro = ctx.numerics == "micro"
        if op == "sum" and kind == "int16" and not micro:
            raise NumericsPathError(
                f"{ctx.path}: SUM int16: LiteRT BUILTIN_REF (reduce.cc EvalSum) reads the int16 "
                "tensors as uint8 bytes, so it sums half of the input bytes and leaves half of "
                "the output bytes uninitialised; no reproducible reference result exists "
                "(LiteRT's optimized path computes the int16 sum)")
        m, s = quantize_multiplier(float(x.s) / float(out.s))
        as_uint8 = op == "sum" and kind == "int8" and not micro
        qt = UINT8 if as_uint8 else x.type
        return ReduceParams(mode="quantized_mean_or_sum", compute_sum=op == "sum", as_uint8=as_uint8,
                            input_zero_point=x.zp, output_zero_point=out.zp, output_multiplier=m,
                            output_shift=s, qmin=QMIN[qt], qmax=QMAX[qt], **common)
    if op == "mean":
        return ReduceParams(mode="mean", **common)
    if op == "prod" and x.quantized:
        if kind not in ("int8", "int16"):
            raise ctx.unsupported(f"quantized REDUCE_PROD of {x.type_name} (LiteRT supports "
                                  "quantized int8 and int16)")
        ctx.require_quantized(x)
        ctx.require_quantized(out)
        m = s = 0
        if plan is not None:   # else PrepareProd leaves the multiplier to Eval
            m, s = prod_multiplier(float(x.s), float(out.s), plan, ctx.error)
        return ReduceParams(mode="quantized_prod", input_zero_point=x.zp, output_zero_point=out.zp,
                            input_scale=float(x.s), output_scale=float(out.s), output_multiplier=m,
                            output_shift=s, qmin=QMIN[x.type], qmax=QMAX[x.type], **common)
    if op in ("max", "min") and kind in _QUANT_KINDS:
        # EvalType: TF_LITE_ENSURE_EQ on params.scale and params.zero_point (0 when absent).
        ctx.check(_scale(x) == _scale(out) and _zp(x) == _zp(out),
                  f"{ctx.op_name} {x.type_name} needs equal input and output scale and zero point "
                  f"(input {_scale(x)}/{_zp(x)}, output {_scale(out)}/{_zp(out)})")
    return ReduceParams(mode="generic", **common)


def _scale(t) -> float:
    return float(t.scale[0]) if t.quantized else 0.0


def _zp(t) -> int:
    return int(t.zero_point[0]) if t.quantized else 0


def prod_multiplier(input_scale: float, output_scale: float, plan: ReducePlan,
                    error) -> tuple[int, int]:
    """``GetQuantProdScaling``: QuantizeMultiplier(s_in / pow(s_out, 1 / N)), in double.

    ``error(message)`` builds the exception for the inputs LiteRT cannot run."""
    if plan.empty:
        raise error("quantized REDUCE_PROD of an input with a zero-sized dimension: LiteRT "
                    "returns without writing the output")
    n = plan.num_elements_in_axis
    m, s = quantize_multiplier(input_scale / math.pow(output_scale, 1.0 / n))
    if s > 14:
        raise error(f"quantized REDUCE_PROD scaling s_in / s_out^(1/{n}) is 2^{s - 1} or more: "
                    "LiteRT's 64-bit MultiplyByQuantizedMultiplier would shift by a negative "
                    "amount (undefined behaviour)")
    return m, s


def _rows(x: np.ndarray, plan: ReducePlan) -> np.ndarray:
    """[M, N]: one row per output element, its reduced elements in the C++ visiting order."""
    m = 1
    for i in plan.kept:
        m *= int(x.shape[i])
    return np.transpose(x, plan.kept + plan.reduced).reshape(m, plan.num_elements_in_axis)


def _sequential(ufunc, rows: np.ndarray, init, dtype, from_first: bool) -> np.ndarray:
    """Left-to-right ``ufunc`` reduction of each row in ``dtype``, starting from ``init``
    (or from the row's first element when ``from_first``)."""
    rows = rows.astype(dtype, copy=False)
    if rows.shape[1] == 0:
        return np.full(rows.shape[0], init, dtype)
    if not from_first:
        rows = np.concatenate([np.full((rows.shape[0], 1), init, dtype), rows], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # float sums overflow to inf, as in C
        return ufunc.accumulate(rows, axis=1, dtype=dtype)[:, -1]


def _float_extreme(rows: np.ndarray, op: str, from_first: bool) -> np.ndarray:
    """``x > cur ? x : cur`` (max) or ``x < cur ? x : cur`` (min) over each row, from the
    lowest/highest float, or from the first element. NaN candidates never win."""
    big = np.float32(np.finfo(np.float32).max)
    init = -big if op == "max" else big
    if rows.shape[1] == 0:
        return np.full(rows.shape[0], init, np.float32)
    fill = np.float32(-np.inf if op == "max" else np.inf)
    clean = np.where(np.isnan(rows), fill, rows)
    best = clean.max(axis=1) if op == "max" else clean.min(axis=1)
    if not from_first:
        return (np.maximum(best, init) if op == "max" else np.minimum(best, init)).astype(np.float32)
    first = rows[:, 0]
    res = np.maximum(best, first) if op == "max" else np.minimum(best, first)
    return np.where(np.isnan(first), first, res).astype(np.float32)


def _generic(p: ReduceParams, x: np.ndarray, plan: ReducePlan) -> np.ndarray:
    rows = _rows(x, plan)
    from_first = plan.reduce_all  # ReduceAllDims: output = x[0], then the reducer
    if p.kind == "bool":
        if p.op in ("sum", "max"):
            return rows.any(axis=1)
        return rows.all(axis=1)
    if p.kind == "float":
        if p.op == "sum":
            return _sequential(np.add, rows, 0.0, np.float32, from_first)
        if p.op == "prod":
            return _sequential(np.multiply, rows, 1.0, np.float32, from_first)
        return _float_extreme(rows, p.op, from_first)
    dtype = _DTYPES[p.kind]
    info = np.iinfo(dtype)
    if p.op in ("max", "min"):
        init = info.min if p.op == "max" else info.max
        r = rows.max(axis=1, initial=init) if p.op == "max" else rows.min(axis=1, initial=init)
        return r.astype(dtype)
    # Wrapping sum / product: exact modulo 2^64 in int64, then wrapped to the type.
    wide = rows.astype(np.int64)
    with np.errstate(over="ignore"):
        r = wide.sum(axis=1, dtype=np.int64) if p.op == "sum" else wide.prod(axis=1, dtype=np.int64)
    return r.astype(dtype)


def _mean(p: ReduceParams, x: np.ndarray, plan: ReducePlan) -> np.ndarray:
    rows = _rows(x, plan)
    n = plan.num_elements_in_axis
    if p.kind == "float":
        total = _sequential(np.add, rows, 0.0, np.float32, False)
        return (total / np.float32(n)).astype(np.float32)
    with np.errstate(over="ignore"):
        total = rows.astype(np.int64).sum(axis=1, dtype=np.int64)   # wraps like the C++ int64
    q = total // n
    q = q + ((total % n != 0) & (total < 0))    # C truncating division
    return q.astype(_DTYPES[p.kind])


def _quantized_mean_or_sum(p: ReduceParams, x: np.ndarray, plan: ReducePlan) -> np.ndarray:
    data = x.view(np.uint8) if p.as_uint8 else x
    n = plan.num_elements_in_axis
    m, shift = p.output_multiplier, p.output_shift
    if not p.compute_sum:
        k = min(n.bit_length() - 1, 32, 31 + shift)
        m = int((m << k) // n)
        shift = shift - k
    temp_sum = wrap_int32(_rows(data, plan).astype(np.int64).sum(axis=1))
    shifted_sum = wrap_int32(temp_sum - p.input_zero_point * n)
    out = multiply_by_quantized_multiplier(shifted_sum, m, shift) + p.output_zero_point
    out = np.clip(out, p.qmin, p.qmax)
    if p.as_uint8:
        return out.astype(np.uint8).view(np.int8)
    return out.astype(p.out_dtype)


def _quantized_prod(p: ReduceParams, x: np.ndarray, plan: ReducePlan) -> np.ndarray:
    if p.plan is None:
        m, s = prod_multiplier(p.input_scale, p.output_scale, plan,
                               lambda msg: InputError(f"{p.path}: REDUCE_PROD: {msg}"))
    else:
        m, s = p.output_multiplier, p.output_shift
    rows = _rows(x, plan).astype(np.int64) - p.input_zero_point
    prod = rows[:, 0]
    for i in range(1, rows.shape[1]):
        prod = multiply_by_quantized_multiplier_int64(prod * rows[:, i], m, s)
    out = multiply_by_quantized_multiplier_int64(prod, m, s) + p.output_zero_point
    return np.clip(out, p.qmin, p.qmax).astype(p.out_dtype)


def eval(p: ReduceParams, x: np.ndarray, axis: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_reduce.eval_reduce(p, x, axis, eval)
    x = np.asarray(x)
    plan = p.plan
    if plan is None:   # axis computed at run time: LiteRT resolves it in Eval
        plan = make_plan(x.shape, axis, p.keep_dims,
                         lambda msg: InputError(f"{p.path}.inputs[1]: {msg}"))
    if p.mode in ("mean", "quantized_mean_or_sum") and plan.empty:
        # EvalMean: an empty input fills the output with quiet_NaN (0 for integers);
        # QuantizedMeanOrSum (SUM) writes T() = 0.
        fill = np.nan if p.kind == "float" else 0
        return [np.full(plan.out_shape, fill, p.out_dtype)]
    if p.mode == "generic":
        r = _generic(p, x, plan)
    elif p.mode == "mean":
        r = _mean(p, x, plan)
    elif p.mode == "quantized_mean_or_sum":
        r = _quantized_mean_or_sum(p, x, plan)
    else:
        r = _quantized_prod(p, x, plan)
    return [np.asarray(r).reshape(plan.out_shape)]
