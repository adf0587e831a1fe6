"""MEAN and SUM (8/16-bit quantized) on LiteRT's "optimized" and "xnnpack" paths.

Sources (google-ai-edge/LiteRT ``tflite/kernels/reduce.cc`` EvalMean / EvalSum with
kGenericOptimized, unless noted):

* MEAN int8 / uint8, 4-D input, ``keep_dims``, axes exactly {1, 2}:
  ``optimized/integer_ops/mean.h`` (int8) and ``optimized/reduce.h`` (uint8)::

      temp = f32(f32(zp_in * s_in) / s_out); bias = zp_out - int32(f32(temp +- 0.5f))
      M0, shift = QuantizeMultiplier(f32(s_in / f32(f32(H * W) * s_out)))
      sum = sum of the raw values of the channel (int32)
      out = clamp(MBQM(sum) + bias)

  For each batch the channels are processed in blocks of 16 (NEON body,
  ``MultiplyByQuantizedMultiplier4Rows``: the final rounding shift rounds ties toward
  +inf) while 16 remain; the ``C % 16`` leftover channels use the scalar
  ``MultiplyByQuantizedMultiplier`` (ties away from zero). With more than one thread
  LiteRT splits the channels into ranges of at least 8 and each range has its own
  blocks; this module reproduces one thread (the setting quantcore's oracle uses).
  Every other MEAN runs the reference kernel.
* SUM int8 / uint8 / int16: ``optimized_ops::QuantizedMeanOrSum`` (``optimized/reduce.h``)
  in float32, not the reference's uint8 reinterpretation::

      scale = f32(s_in / s_out); bias = f32(f32(-zp_in * scale) * f32(N))
      out = clamp(int32(roundf(f32(f32(float(sum) * scale) + bias))) + zp_out)

* XNNPACK (``VisitReduceNode``: 8-bit per-tensor input and output, a static int32
  axis tensor with 1 to 6 entries) computes MEAN and SUM of int8/uint8 with
  google/XNNPACK ``src/operators/reduce-nd.c`` (int32 sum of the raw values, then the
  reference int32 -> qs8 convert with a folded zero point)::

      sc = f32(f32(s_in / s_out) * f32(1 / N))            (SUM: sc = f32(s_in / s_out))
      zp' = f32(zp_out - f32(f32(N * zp_in) * sc))
      out = clamp(nearbyint(f32(f32(float(sum) * sc) + zp')))   (ties to even)

  REDUCE_MAX / REDUCE_MIN are delegated too but compute the same values.
* REDUCE_PROD (quantized): ``optimized_ops::QuantizedReduceProd`` multiplies in the same
  order with the same rescaling, but with no axis to reduce it copies the input bytes
  (``ReduceIsCopy``) where the reference rescales every element.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (float_to_int32_x86, multiply_by_quantized_multiplier,
                                  quantize_multiplier, round_half_away,
                                  rounding_divide_by_pot_ties_up,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._common import INT8, INT16, QMAX, QMIN, UINT8, OpContext
from ._paths_common import PathParams, vshl

_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}


@dataclass(frozen=True)
class QuantReduceParams:
    """What the optimized/XNNPACK MEAN and SUM need (``plan`` from reduce.make_plan)."""
    op: str                  # "mean" or "sum"
    keep_dims: bool
    plan: object | None
    rank: int
    input_zero_point: int
    output_zero_point: int
    input_scale: float
    output_scale: float
    qmin: int
    qmax: int
    out_dtype: type
    path: str


def _xnn_takes(ctx: OpContext) -> bool:
    x, axis, out = ctx.input(0), ctx.input(1), ctx.output(0)
    for t in (x, out):
        if t.type not in (INT8, UINT8) or not t.quantized or t.per_channel or t.quantized_dimension != 0:
            return False
    if x.type != out.type or len(x.shape) > 6:
        return False
    if not axis.is_constant or len(axis.shape) > 1:
        return False
    n = axis.num_elements
    if n <= 0 or n > 6:
        return False
    if n == 1 and int(np.asarray(axis.data).reshape(-1)[0]) == 0 and len(x.shape) == 0:
        return False
    return True


def for_reduce(ctx: OpContext, prepare_reference):
    """Params of MEAN/SUM/REDUCE_* on ``ctx.numerics``."""
    if ctx.numerics not in ("optimized", "xnnpack"):
        return prepare_reference(ctx)
    op = {"MEAN": "mean", "SUM": "sum"}.get(ctx.op_name)
    x = ctx.input(0) if ctx.inputs else None
    quant = op is not None and x is not None and x.type in (INT8, UINT8, INT16)
    try:
        base = prepare_reference(ctx)
    except NumericsPathError:
        # The reference SUM int16 has no reproducible result; LiteRT's optimized one does.
        if not (quant and op == "sum"):
            raise
        base = None
    if (ctx.op_name == "REDUCE_PROD" and getattr(base, "mode", "") == "quantized_prod"
            and base.plan is not None and not base.plan.reduced):
        return PathParams(ctx.numerics, "litert-optimized-copy", base)
    if not quant:
        return PathParams(ctx.numerics, "reference", base)
    from .reduce import make_plan   # runtime import: reduce.py imports this module

    out, axis = ctx.output(0), ctx.input(1)
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    keep_dims = bool(ctx.options.get("keep_dims", False))
    plan = None
    if axis.is_constant or axis.num_elements == 0:
        values = axis.data if axis.is_constant else np.zeros(0, np.int32)
        plan = make_plan(x.shape, values, keep_dims, lambda msg: ctx.error(msg, ".inputs[1]"))
    q = QuantReduceParams(op, keep_dims, plan, len(x.shape), x.zp, out.zp, float(x.s), float(out.s),
                          QMIN[x.type], QMAX[x.type], _DTYPES[x.type], ctx.path)
    if ctx.numerics == "xnnpack" and _xnn_takes(ctx):
        return PathParams("xnnpack", "xnnpack", base, q)
    if op == "sum":
        return PathParams(ctx.numerics, "litert-optimized", base, q)
    if (x.type in (INT8, UINT8) and keep_dims and len(x.shape) == 4 and plan is not None
            and plan.reduced == (1, 2)):
        return PathParams(ctx.numerics, "litert-optimized", base, q)
    return PathParams(ctx.numerics, "reference", base)


def _sums(x: np.ndarray, plan) -> np.ndarray:
    from .reduce import _rows

    return wrap_int32(_rows(x, plan).astype(np.int64).sum(axis=1))


def _optimized_mean_4d(q: QuantReduceParams, x: np.ndarray) -> np.ndarray:
    """``optimized_integer_ops::Mean`` / ``optimized_ops::Mean`` (uint8), one thread."""
    n_b, h, w, c = x.shape
    f32 = np.float32
    temp = f32(f32(f32(q.input_zero_point) * f32(q.input_scale)) / f32(q.output_scale))
    temp = f32(temp + f32(0.5)) if temp > 0 else f32(temp - f32(0.5))
    bias = q.output_zero_point - int(float_to_int32_x86(temp))
    real = f32(f32(q.input_scale) / f32(f32(h * w) * f32(q.output_scale)))
    m, shift = quantize_multiplier(float(real))
    sums = wrap_int32(x.astype(np.int64).sum(axis=(1, 2)))            # [B, C]
    scalar = multiply_by_quantized_multiplier(sums, m, shift)
    vec = rounding_divide_by_pot_ties_up(
        saturating_rounding_doubling_high_mul(vshl(sums, max(shift, 0)), m), max(-shift, 0))
    lanes = np.arange(c) < 16 * (c // 16)
    r = np.where(lanes[None, :], vec, scalar)
    out = np.clip(wrap_int32(r + bias), q.qmin, q.qmax)
    return out.reshape(n_b, 1, 1, c)


def _optimized_sum(q: QuantReduceParams, x: np.ndarray, plan) -> np.ndarray:
    f32 = np.float32
    n = plan.num_elements_in_axis
    scale = f32(f32(q.input_scale) / f32(q.output_scale))
    bias = f32(f32(f32(-q.input_zero_point) * scale) * f32(n))
    s = _sums(x, plan).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = ((s * scale).astype(np.float32) + bias).astype(np.float32)
    r = wrap_int32(float_to_int32_x86(round_half_away(v)) + q.output_zero_point)
    return np.clip(r, q.qmin, q.qmax)


def _xnn_mean_sum(q: QuantReduceParams, x: np.ndarray, plan) -> np.ndarray:
    f32 = np.float32
    n = plan.num_elements_in_axis
    sc = f32(f32(q.input_scale) / f32(q.output_scale))
    if q.op == "mean":
        sc = f32(sc * f32(f32(1.0) / f32(n)))
    zp = f32(f32(q.output_zero_point) - f32(f32(n * q.input_zero_point) * sc))
    s = _sums(x, plan).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = ((s * sc).astype(np.float32) + zp).astype(np.float32)
    v = np.where(np.isnan(v), f32(0), v)
    return np.clip(np.rint(v), q.qmin, q.qmax).astype(np.int64)


def eval_reduce(p: PathParams, x: np.ndarray, axis: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "reference":
        return reference_eval(p.base, x, axis)
    if p.how == "litert-optimized-copy":
        return [np.array(x, copy=True).reshape(p.base.plan.out_shape)]
    q: QuantReduceParams = p.extra
    x = np.asarray(x)
    plan = q.plan
    if plan is None:
        from quantcore.errors import InputError
        from .reduce import make_plan

        plan = make_plan(x.shape, axis, q.keep_dims, lambda msg: InputError(f"{q.path}.inputs[1]: {msg}"))
    if plan.empty:
        return [np.zeros(plan.out_shape, q.out_dtype)]
    if p.how == "xnnpack":
        r = _xnn_mean_sum(q, x, plan)
    elif q.op == "sum":
        r = _optimized_sum(q, x, plan)
    else:
        r = _optimized_mean_4d(q, x)
    return [np.asarray(r).reshape(plan.out_shape).astype(q.out_dtype)]
