"""LOG_SOFTMAX: float32, int8 and uint8 (gemmlowp fixed point).

Mirrors ``LogSoftmaxPrepare<kReference>``/``LogSoftmaxEval<kReference>``
(``Register_LOG_SOFTMAX_REF``) in ``tflite/kernels/activations.cc``,
``reference/log_softmax.h`` (uint8, float), ``reference/integer_ops/log_softmax.h``
(int8) and ``PreprocessLogSoftmaxScalingExp`` in ``internal/quantization_util.cc``.
The fixed-point exp and log are :mod:`._gemmlowp_fixedpoint`.

The output parameters are fixed: scale exactly 16/256, zero point 127 (int8) or 255
(uint8), i.e. outputs cover [-255/16, 0]. Prepare (beta = 1; eq. 6)::

    input_multiplier, input_left_shift = QuantizeMultiplierGreaterThanOne(
        min(s_in * 2^26, 2^31 - 1))                      # CHECK: > 1, else LiteRT aborts
    reverse_scaling_divisor, -reverse_scaling_right_shift = QuantizeMultiplierSmallerThanOneExp(
        2^(31 - input_left_shift) / input_multiplier)
    diff_min = -floor(31 * 2^26 / 2^input_left_shift)

Per row, with d = x - max(row) and d5 = SRDHM(d * 2^input_left_shift, input_multiplier)
(a Q5.26 value)::

    sum = sum of Rescale<12>(exp_on_negative_values(d5)) over d >= diff_min   # Q12.19
    log_sum = log_x_for_x_greater_than_or_equal_to_1<5>(sum)                 # Q5.26
    adjusted_diff_min = max(diff_min - 1,
                            MBQM(log_sum + INT32_MIN, reverse_scaling_divisor,
                                 -reverse_scaling_right_shift))
    out = clamp(RDBPOT(d5 - log_sum, 22) + qmax, qmin, qmax)   if d > adjusted_diff_min
        = qmin                                                 otherwise

Float32 (``reference_ops::LogSoftmax``): ``x - max - logf(sum(expf(x - max)))`` with the
sum accumulated in order in float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_greater_than_one,
                                  quantize_multiplier, wrap_int32)

from . import _paths_softmax
from ._common import FLOAT32, INT8, UINT8, QMAX, QMIN, OpContext
from ._paths_common import PathParams
from ._gemmlowp_fixedpoint import (exp_on_negative_values, log_x_for_x_greater_than_or_equal_to_1,
                                   rdbpot, rescale, sub)
from ._lut import approx_f32
from .softmax import calculate_input_radius, softmax_real_multiplier

NUMERICS = ("reference", "optimized", "xnnpack")

INPUT_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
OUTPUT_INTEGER_BITS = 4


@dataclass(frozen=True)
class LogSoftmaxParams:
    kind: str                                # "float" or "quantized"
    input_multiplier: int = 0
    input_left_shift: int = 0
    reverse_scaling_divisor: int = 0
    reverse_scaling_right_shift: int = 0
    diff_min: int = 0
    qmin: int = 0
    qmax: int = 0
    out_dtype: type = np.float32


def prepare(ctx: OpContext) -> LogSoftmaxParams | PathParams:
    # "optimized"/"xnnpack" (8-bit): LiteRT's float lookup table, see _paths_softmax.
    return _paths_softmax.for_softmax(True, ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> LogSoftmaxParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    ctx.check(len(x.shape) >= 1, "input must have at least one dimension", ".inputs[0]")
    if x.type == FLOAT32:
        return LogSoftmaxParams(kind="float")
    ctx.check_type(x, (FLOAT32, INT8, UINT8), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    ctx.check(float(out.scale[0]) == 16.0 / 256,
              f"quantized LOG_SOFTMAX needs an output scale of exactly 16/256, has {out.s!r}",
              ".outputs[0]")
    zp = 127 if x.type == INT8 else 255
    ctx.check(out.zp == zp, f"{x.type_name} LOG_SOFTMAX needs output zero point {zp}, has {out.zp}",
              ".outputs[0]")
    real = softmax_real_multiplier(1.0, x.s, INPUT_INTEGER_BITS)
    if not real > 1.0:
        raise NumericsPathError(
            f"{ctx.path}: LOG_SOFTMAX: LiteRT's reference kernel aborts the process on this model "
            f"(input_scale * 2^26 = {real:.6g} <= 1 fails the CHECK in "
            f"QuantizeMultiplierGreaterThanOne; input scale {x.s:.6g}). The optimized path "
            f"(numerics=\"optimized\", LiteRT's lookup-table log-softmax) can run it.")
    m, shift = quantize_multiplier(real)
    reverse = float(1 << (31 - shift)) / float(m)
    if not reverse < 1.0:
        # s_in * 2^26 in (1, 1 + 2^-31]: the multiplier rounds to 2^30 with shift 1, and
        # QuantizeMultiplierSmallerThanOneExp(1.0) CHECK-fails
        raise NumericsPathError(
            f"{ctx.path}: LOG_SOFTMAX: LiteRT's reference kernel aborts the process on this model "
            f"(input scale {x.s!r} gives a reverse scaling factor of {reverse}, which fails the "
            f"CHECK in QuantizeMultiplierSmallerThanOneExp). The optimized path "
            f"(numerics=\"optimized\") can run it.")
    rm, rs = quantize_multiplier(reverse)
    return LogSoftmaxParams(kind="quantized", input_multiplier=m, input_left_shift=shift,
                            reverse_scaling_divisor=rm, reverse_scaling_right_shift=-rs,
                            diff_min=-calculate_input_radius(INPUT_INTEGER_BITS, shift),
                            qmin=QMIN[x.type], qmax=QMAX[x.type],
                            out_dtype=np.int8 if x.type == INT8 else np.uint8)


def _log_softmax_float(x: np.ndarray) -> np.ndarray:
    xf = np.asarray(x, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN inputs: NaN, as in C
        centred = (xf - np.max(xf, axis=-1, keepdims=True)).astype(np.float32)
        total = np.add.accumulate(approx_f32("expf", centred), axis=-1, dtype=np.float32)[..., -1:]
        return (centred - approx_f32("logf", total)).astype(np.float32)


def eval(p: LogSoftmaxParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if x.size == 0:  # nothing to normalize (LiteRT's loops run zero times)
        return [np.zeros(x.shape, x.dtype)]
    if isinstance(p, PathParams):
        return _paths_softmax.eval_softmax(p, x, eval)
    if p.kind == "float":
        return [_log_softmax_float(x)]
    xi = np.asarray(x, np.int64)
    diff = xi - np.max(xi, axis=-1, keepdims=True)
    d5 = multiply_by_quantized_multiplier_greater_than_one(diff, p.input_multiplier,
                                                           p.input_left_shift)
    exps = rescale(exp_on_negative_values(d5, INPUT_INTEGER_BITS), 0, ACCUMULATION_INTEGER_BITS)
    sum_of_exps = wrap_int32(np.sum(np.where(diff >= p.diff_min, exps, 0), axis=-1, keepdims=True))
    log_sum = log_x_for_x_greater_than_or_equal_to_1(sum_of_exps, ACCUMULATION_INTEGER_BITS,
                                                    INPUT_INTEGER_BITS)
    shifted_log_sum = wrap_int32(log_sum - 2**31)
    adjusted_diff_min = np.maximum(p.diff_min - 1, multiply_by_quantized_multiplier(
        shifted_log_sum, p.reverse_scaling_divisor, -p.reverse_scaling_right_shift))
    shift = 31 - INPUT_INTEGER_BITS - OUTPUT_INTEGER_BITS
    out = np.clip(rdbpot(sub(d5, log_sum), shift) + p.qmax, p.qmin, p.qmax)
    return [np.where(diff > adjusted_diff_min, out, p.qmin).astype(p.out_dtype)]
