"""LEAKY_RELU: float32, int8, uint8 and int16.

Mirrors ``LeakyReluPrepare``/``LeakyReluEval`` (``kReference``) in
``tflite/kernels/activations.cc`` and ``reference/leaky_relu.h``. Two multipliers,
both formed in float32 (``input->params.scale * params->alpha / output->params.scale``
is float arithmetic) before QuantizeMultiplier (eq. 6)::

    identity = QuantizeMultiplier(f32(s_in / s_out))
    alpha    = QuantizeMultiplier(f32(f32(s_in * alpha) / s_out))
    v = x - zp_in
    out = clamp(zp_out + (v >= 0 ? MBQM(v, identity) : +-MBQM(v, |alpha|)), qmin, qmax)

A negative alpha gives a negative multiplier; the kernel applies its magnitude and
negates the product (``is_alpha_negative``). int16 needs zero points 0. Float32:
``x > 0 ? x : x * alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier

from . import _paths_unary
from ._common import FLOAT32, INT16, INT8, QMAX, QMIN, UINT8, OpContext, finite
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack")

_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}


@dataclass(frozen=True)
class LeakyReluParams:
    kind: str                              # "float" or "quantized"
    alpha: float = 0.0
    input_offset: int = 0                  # input zero point (subtracted)
    output_offset: int = 0
    output_multiplier_identity: int = 0
    output_shift_identity: int = 0
    output_multiplier_alpha: int = 0
    output_shift_alpha: int = 0
    qmin: int = 0
    qmax: int = 0
    out_dtype: type = np.float32


def prepare(ctx: OpContext) -> LeakyReluParams | PathParams:
    # "optimized" is this kernel; "xnnpack": 8-bit fixed-point multipliers (_paths_unary).
    return _paths_unary.for_leaky_relu(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> LeakyReluParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    alpha = np.float32(ctx.options.get("alpha", 0.0))
    if x.type == FLOAT32:
        return LeakyReluParams(kind="float", alpha=float(alpha))
    ctx.check_type(x, (FLOAT32, INT8, UINT8, INT16), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    ctx.check(bool(np.isfinite(alpha)), f"alpha must be finite, is {alpha}", ".builtin_options")
    if x.type == INT16:
        ctx.check(x.zp == 0 and out.zp == 0,
                  f"int16 LEAKY_RELU needs zero points 0, has {x.zp} and {out.zp}")
    s_in, s_out = np.float32(x.scale[0]), np.float32(out.scale[0])
    with np.errstate(over="ignore"):
        real_alpha = np.float32(np.float32(s_in * alpha) / s_out)
        real_id = np.float32(s_in / s_out)
    m_alpha, s_alpha = quantize_multiplier(finite(ctx, real_alpha, "input scale * alpha / output scale"))
    m_id, s_id = quantize_multiplier(finite(ctx, real_id, "input scale / output scale"))
    return LeakyReluParams(kind="quantized", alpha=float(alpha), input_offset=x.zp,
                           output_offset=out.zp, output_multiplier_identity=m_id,
                           output_shift_identity=s_id, output_multiplier_alpha=m_alpha,
                           output_shift_alpha=s_alpha, qmin=QMIN[x.type], qmax=QMAX[x.type],
                           out_dtype=_DTYPES[x.type])


def eval(p: LeakyReluParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_leaky_relu(p, x, eval)
    if p.kind == "float":
        xf = np.asarray(x, np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # x * alpha may overflow to inf, as in C
            return [np.where(xf > 0, xf, (xf * np.float32(p.alpha)).astype(np.float32)).astype(np.float32)]
    v = np.asarray(x, np.int64) - p.input_offset
    identity = multiply_by_quantized_multiplier(v, p.output_multiplier_identity,
                                                p.output_shift_identity)
    negative = p.output_multiplier_alpha < 0
    scaled_alpha = multiply_by_quantized_multiplier(v, abs(p.output_multiplier_alpha),
                                                    p.output_shift_alpha)
    if negative:
        scaled_alpha = -scaled_alpha
    out = p.output_offset + np.where(v >= 0, identity, scaled_alpha)
    return [np.clip(out, p.qmin, p.qmax).astype(p.out_dtype)]
