"""HARD_SWISH: float32, int8 and uint8.

Mirrors ``HardSwishPrepare``/``HardSwishEval<kReference>`` (``Register_HARD_SWISH_REF``)
in ``tflite/kernels/activations.cc`` and ``reference/hard_swish.h``.

Prepare (float32 products, then QuantizeMultiplier, then the multiplier rounded to
16 bits by ``DownScaleInt32ToInt16Multiplier``: ``(m + 2^15) >> 16``, 32767 when
``m >= 2^31 - 1 - 2^15``)::

    hires_input_scale = f32(s_in / 128)
    output_multiplier  = f32(hires_input_scale / s_out)       # exponent must be <= 0
    reluish_multiplier = f32(hires_input_scale / f32(3 / 32768))

Eval, in int16 (every cast wraps as the C++ does)::

    v    = int16(x - zp_in) * 128
    pre  = SRDHM16(v, output_multiplier_fixedpoint_int16)
    r    = v, shifted left (saturating) by reluish_exponent - 1 when that is > 0
    r    = SRDHM16(r, reluish_multiplier_fixedpoint_int16)
    r    = SatLeftShift16(r, 1) if reluish_exponent > 0; RDBPOT16(r, -e) if e < 0
    r    = (r + 2^15) >> 1                                   # [-1, 1] -> [0, 1]
    out  = clamp(int16(RDBPOT16(SDHM16(r, pre), -output_exponent) + zp_out), qmin, qmax)

``SDHM16`` is the non-rounding doubling high product (``(a*b) / 2^15`` truncated toward
zero, ARM SQDMULH), which LiteRT uses on purpose to cancel the bias of the rounding
products. Float32: ``x * min(6, max(0, x + 3)) / 6``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import quantize_multiplier

from ._common import FLOAT32, INT8, QMAX, QMIN, UINT8, OpContext, finite
from ._gemmlowp_fixedpoint import (rdbpot16, saturating_doubling_high_mul16,
                                   saturating_left_shift16, srdhm16, wrap_int16)

# Numerics paths: optimized_ops::HardSwish has a NEON body only under __ARM_NEON, which the
# x86 wheel (NEON_2_SSE) does not define, so it runs reference_ops::HardSwish; XNNPACK
# takes float only. Quantized results agree on every path (float ones within a few ulp:
# the optimized and XNNPACK float kernels are vectorized approximations).
NUMERICS = ("reference", "optimized", "xnnpack")

_DTYPES = {INT8: np.int8, UINT8: np.uint8}


@dataclass(frozen=True)
class HardSwishParams:
    kind: str                                     # "float" or "quantized"
    input_zero_point: int = 0
    output_zero_point: int = 0
    reluish_multiplier_fixedpoint_int16: int = 0
    reluish_multiplier_exponent: int = 0
    output_multiplier_fixedpoint_int16: int = 0
    output_multiplier_exponent: int = 0
    qmin: int = 0
    qmax: int = 0
    out_dtype: type = np.float32


def down_scale_int32_to_int16_multiplier(m: int) -> int:
    """``DownScaleInt32ToInt16Multiplier``: round an int32 Q0.31 multiplier to Q0.15."""
    if m >= 2**31 - 1 - 2**15:
        return 2**15 - 1
    return (m + 2**15) >> 16


def prepare(ctx: OpContext) -> HardSwishParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    if x.type == FLOAT32:
        return HardSwishParams(kind="float")
    ctx.check_type(x, (FLOAT32, INT8, UINT8), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    f32 = np.float32
    hires_input_scale = f32(f32(1.0 / 128.0) * f32(x.scale[0]))
    with np.errstate(over="ignore"):
        output_multiplier = f32(hires_input_scale / f32(out.scale[0]))
    m_out, e_out = quantize_multiplier(finite(ctx, output_multiplier, "input scale / (128 output scale)"))
    ctx.check(e_out <= 0, f"the output multiplier s_in / (128 s_out) = {output_multiplier} "
              f"must be below 1 (LiteRT requires output_multiplier_exponent <= 0, is {e_out})")
    reluish_multiplier = f32(hires_input_scale / f32(f32(3.0) / f32(32768.0)))
    m_rel, e_rel = quantize_multiplier(float(reluish_multiplier))
    return HardSwishParams(
        kind="quantized", input_zero_point=x.zp, output_zero_point=out.zp,
        reluish_multiplier_fixedpoint_int16=down_scale_int32_to_int16_multiplier(m_rel),
        reluish_multiplier_exponent=e_rel,
        output_multiplier_fixedpoint_int16=down_scale_int32_to_int16_multiplier(m_out),
        output_multiplier_exponent=e_out, qmin=QMIN[x.type], qmax=QMAX[x.type],
        out_dtype=_DTYPES[x.type])


def eval(p: HardSwishParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        xf = np.asarray(x, np.float32)
        f32 = np.float32
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN inputs, as in C
            relu6 = np.minimum(f32(6), np.maximum(f32(0), (xf + f32(3)).astype(f32)))
            return [((xf * relu6).astype(f32) / f32(6)).astype(f32)]
    v = wrap_int16(np.asarray(x, np.int64) - p.input_zero_point)
    hires = wrap_int16(v * 128)
    preshift = srdhm16(hires, p.output_multiplier_fixedpoint_int16)
    e = p.reluish_multiplier_exponent
    r = hires
    if e > 0:
        r = saturating_left_shift16(r, e - 1)
    r = srdhm16(r, p.reluish_multiplier_fixedpoint_int16)
    if e > 0:
        r = saturating_left_shift16(r, 1)
    if e < 0:
        r = rdbpot16(r, -e)
    r = (r + (1 << 15)) >> 1
    prod = saturating_doubling_high_mul16(r, preshift)
    o = wrap_int16(rdbpot16(prod, -p.output_multiplier_exponent) + p.output_zero_point)
    return [np.clip(o, p.qmin, p.qmax).astype(p.out_dtype)]
