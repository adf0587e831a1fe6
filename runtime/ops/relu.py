"""Standalone RELU, RELU6, RELU_N1_TO_1 and RELU_0_TO_1: float32 and quantized with an
input-to-output rescale.

Mirrors ``ReluPrepare`` and ``ReluEval``/``Relu6Eval``/``Relu1Eval``/``Relu0to1Eval``
in ``tflite/kernels/activations.cc`` (one kernel in both LiteRT resolvers, hence the
"optimized" numerics path too), with
``QuantizedReluX`` and ``reference_ops::ReluX`` (``reference/reference_ops.h``)::

    output_multiplier, output_shift = QuantizeMultiplier(f32(s_in / s_out))   # eq. 6
    Q(f) = zp_out + int32(roundf(f32(f / s_out)))
    act_min = max(qmin, Q(lo)); act_max = qmax if hi = +inf else min(qmax, Q(hi))
    out = clamp(zp_out + MBQM(x - zp_in, output_multiplier, output_shift), act_min, act_max)

with (lo, hi) = (0, inf) RELU, (0, 6) RELU6, (-1, 1) RELU_N1_TO_1, (0, 1) RELU_0_TO_1.
Types: RELU and RELU6 take uint8, int8 and int16 (zero points 0); RELU_N1_TO_1 and
RELU_0_TO_1 only uint8 and int8 (LiteRT fails at invoke on int16). Float32 is a plain
clamp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import (float_to_int32_x86, multiply_by_quantized_multiplier,
                                  quantize_multiplier, round_half_away)

from ._common import FLOAT32, INT16, INT8, QMAX, QMIN, UINT8, OpContext, finite

# Register_RELU/RELU6/RELU_N1_TO_1/RELU_0_TO_1 is the same registration in LiteRT's
# reference and builtin resolvers, so both paths compute exactly this.
# Numerics paths: one kernel in both resolvers; XNNPACK takes the float ops only (a clamp,
# the same values). All paths agree.
NUMERICS = ("reference", "optimized", "xnnpack", "micro")  # micro: RELU6 below

# real bounds (lo, hi) of each operator
_BOUNDS = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
           "RELU_0_TO_1": (0.0, 1.0)}
_QUANTIZED_TYPES = {"RELU": (INT8, UINT8, INT16), "RELU6": (INT8, UINT8, INT16),
                    "RELU_N1_TO_1": (INT8, UINT8), "RELU_0_TO_1": (INT8, UINT8)}
_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}


@dataclass(frozen=True)
class ReluParams:
    kind: str                       # "float" or "quantized"
    lo: float = 0.0
    hi: float = np.inf
    input_offset: int = 0           # zero point of the input (subtracted)
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    quantized_activation_min: int = 0
    quantized_activation_max: int = 0
    out_dtype: type = np.float32


def _quantize_bound(f: float, scale: float, zero_point: int) -> int:
    """``zero_point + static_cast<int32>(roundf(f / scale))`` in float32."""
    q = np.float32(np.float32(f) / np.float32(scale))
    return int(zero_point) + int(float_to_int32_x86(round_half_away(q)))


def prepare(ctx: OpContext) -> ReluParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    lo, hi = _BOUNDS[ctx.op_name]
    if x.type == FLOAT32:
        return ReluParams(kind="float", lo=lo, hi=hi)
    ctx.check_type(x, (FLOAT32,) + _QUANTIZED_TYPES[ctx.op_name], "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    if x.type == INT16:
        ctx.check(x.zp == 0, f"int16 {ctx.op_name} needs input zero point 0, has {x.zp}", ".inputs[0]")
        ctx.check(out.zp == 0, f"int16 {ctx.op_name} needs output zero point 0, has {out.zp}",
                  ".outputs[0]")
    with np.errstate(over="ignore"):
        real = np.float32(x.scale[0]) / np.float32(out.scale[0])
    m, shift = quantize_multiplier(finite(ctx, real, "input scale / output scale"))
    qmin, qmax = QMIN[x.type], QMAX[x.type]
    if ctx.numerics == "micro" and ctx.op_name == "RELU":
        # The tflite-micro wheel builds the multiplier from the double quotient (measured:
        # int16 RELU, scales 0.0630492/0.0286164, input 8445 -> 18606, not 18607; the
        # August 2026 source still divides in float).
        m, shift = quantize_multiplier(float(x.scale[0]) / float(out.scale[0]))
    if ctx.numerics == "micro" and ctx.op_name == "RELU6":
        # TFLM (micro activations_common.cc Relu6Prepare): clamp the input codes to
        # [zp_in, FloatToQuantizedType(6, s_in, zp_in)]; the output's quantization is ignored.
        six = min(qmax, max(qmin, _quantize_bound(6.0, x.s, x.zp)))
        return ReluParams(kind="quantized", lo=lo, hi=hi, input_offset=x.zp, output_offset=x.zp,
                          output_multiplier=1 << 30, output_shift=1, quantized_activation_min=x.zp,
                          quantized_activation_max=six, out_dtype=_DTYPES[x.type])
    act_min = max(qmin, _quantize_bound(lo, out.s, out.zp))
    act_max = qmax if hi == np.inf else min(qmax, _quantize_bound(hi, out.s, out.zp))
    return ReluParams(kind="quantized", lo=lo, hi=hi, input_offset=x.zp, output_offset=out.zp,
                      output_multiplier=m, output_shift=shift, quantized_activation_min=act_min,
                      quantized_activation_max=act_max, out_dtype=_DTYPES[x.type])


def eval(p: ReluParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        xf = np.asarray(x, np.float32)
        lo, hi = np.float32(p.lo), np.float32(p.hi)
        # val > hi ? hi : val < lo ? lo : val (RELU: Eigen cwiseMax(0))
        out = np.where(xf > hi, hi, np.where(xf < lo, lo, xf)) if p.hi != np.inf else np.maximum(xf, lo)
        return [out.astype(np.float32)]
    v = np.asarray(x, np.int64) - p.input_offset
    scaled = multiply_by_quantized_multiplier(v, p.output_multiplier, p.output_shift)
    out = np.clip(scaled + p.output_offset, p.quantized_activation_min, p.quantized_activation_max)
    return [out.astype(p.out_dtype)]
