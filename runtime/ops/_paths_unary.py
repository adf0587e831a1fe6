"""QUANTIZE, DEQUANTIZE, LEAKY_RELU and the XNNPACK lookup tables of LOGISTIC, TANH
and ELU on LiteRT's "optimized" and "xnnpack" numerics paths.

Sources (google-ai-edge/LiteRT unless noted):

* QUANTIZE float -> integer: :func:`quantcore.numerics.quantize` with the path
  (``optimized_ops::AffineQuantize`` 8-wide blocks of ``x * f32(1/s)`` rounded to even,
  scalar tail ``round(double(x) / double(s))``; XNNPACK ``f32 -> qs8/qu8`` convert
  ``rint(f32(x * f32(1/s))) + zp``). Per-channel outputs use the reference kernel on
  every path; XNNPACK takes float -> int8/uint8 per tensor only.
* QUANTIZE integer -> integer, optimized: ``optimized_ops::Requantize`` has NEON
  specialisations for (int8|uint8) -> (int8|uint8): 16-wide blocks of
  ``MultiplyByQuantizedMultiplier4Rows`` (``internal/common.h``, double-rounding
  build): ``vrshl(vqrdmulh(x << max(shift, 0), m), min(shift, 0))`` -- the final
  rounding shift sends ties toward +inf, where the scalar tail (the reference
  ``MultiplyByQuantizedMultiplier``) sends them away from zero. Other type pairs
  run the reference ``Requantize``.
* QUANTIZE int8 -> int8 / uint8 -> uint8 on XNNPACK (``VisitUnaryNode``: taken when
  ``f32(s_in / s_out)`` is in [1/256, 128]); google/XNNPACK
  ``xnn_init_qs8_cvt_scalar_params`` and ``qs8-vcvt``::

      m = lrintf(256 * f32(s_in / s_out))
      out = clamp((((x - zp_in) * m + 128) >> 8) + zp_out)        (ties toward +inf)

* DEQUANTIZE: :func:`quantcore.numerics.dequantize` with the path.
* LEAKY_RELU, optimized: ``LeakyReluEval`` runs ``reference_ops::QuantizeLeakyRelu``
  for 8 bits. int16 goes to ``optimized_integer_ops::QuantizeLeakyRelu``
  (``optimized/integer_ops/leaky_relu.h``) whose AVX2 body is not compiled; its scalar
  loop applies a negative alpha multiplier directly, ``MBQM(d, -m, shift)``, where the
  reference computes ``-MBQM(d, m, shift)``: they differ by one on rounding ties for
  negative alpha. XNNPACK
  (int8/uint8; the delegate requires a normal nonzero alpha, ``f32(s_in/s_out)`` in
  [1/256, 128] and ``f32(that * alpha)`` in [-127.99609375, 128] with magnitude
  >= 1/256), ``xnn_init_qs8_lrelu_scalar_params`` / ``qs8-vlrelu``::

      m+ = lrintf(256 * f32(s_in / s_out)); m- = lrintf(256 * f32(f32(s_in / s_out) * alpha))
      d = x - zp_in; out = clamp(((d * (d >= 0 ? m+ : m-) + 128) >> 8) + zp_out)

* LOGISTIC, TANH (int8/uint8) and ELU (int8) on XNNPACK: no 8-bit kernel, so
  ``src/operators/unary-elementwise-nc.c`` builds a 256-entry table by running the
  reference operator (``src/reference/unary-elementwise.cc``) on every code::

      x = f32(f32(f32(q) - f32(zp_in)) * s_in)
      y = sigmoid: x > 100 ? 1 : x < -100 ? 0 : f32(e / (1 + e)), e = exp(double(x))
          tanh: tanhf(x); elu: x < 0 ? expm1f(x) : x
      entry = clamp(nearbyint(f32(f32(y * f32(1 / s_out)) + f32(zp_out))))   (ties to even)

  LiteRT's own table (reference and optimized) rounds ``y / s_out`` half away from
  zero before adding the zero point. int16 tensors are never delegated.
* int16 TANH / LOGISTIC with a power-of-two input scale (2^-12, or 2^-11 for TANH):
  LiteRT's optimized kernel is gemmlowp's fixed-point tanh/logistic on int16
  (:mod:`._paths_fixedpoint16`), not the reference table: up to 10 LSB apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import (multiply_by_quantized_multiplier, rounding_divide_by_pot_ties_up,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._common import INT8, UINT8, OpContext
from ._lut import libm_f32, libm_f64
from ._paths_common import PathParams, vector_mask, vshl

_QRANGE = {INT8: (-128, 127), UINT8: (0, 255)}


def _per_tensor_8bit(t) -> bool:
    return t.type in (INT8, UINT8) and t.quantized and not t.per_channel and t.quantized_dimension == 0


# ---------------------------------------------------------------------------
# QUANTIZE
# ---------------------------------------------------------------------------
def xnn_takes_requantize(x, out) -> bool:
    if not (_per_tensor_8bit(x) and _per_tensor_8bit(out)) or x.type != out.type:
        return False
    r = np.float32(np.float32(x.s) / np.float32(out.s))
    return bool(np.float32(1.0 / 256.0) <= r <= np.float32(128.0))


def for_quantize(ctx: OpContext, base):
    """Params of QUANTIZE on ``ctx.numerics`` (``base`` = quantize.QuantizeParams)."""
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    x, out = ctx.input(0), ctx.output(0)
    if base.from_float:
        if base.axis is not None:
            return PathParams(ctx.numerics, "reference", base)
        if ctx.numerics == "xnnpack" and _per_tensor_8bit(out):
            return PathParams("xnnpack", "xnnpack", base)
        return PathParams(ctx.numerics, "litert-optimized", base)
    if ctx.numerics == "xnnpack" and xnn_takes_requantize(x, out):
        m = int(np.rint(np.float32(256.0) * np.float32(np.float32(x.s) / np.float32(out.s))))
        return PathParams("xnnpack", "xnnpack", base, m)
    if x.type in (INT8, UINT8) and out.type in (INT8, UINT8):
        return PathParams(ctx.numerics, "litert-optimized", base)
    return PathParams(ctx.numerics, "reference", base)


def eval_quantize(p: PathParams, x: np.ndarray, reference_eval) -> list[np.ndarray]:
    from quantcore.numerics import quantize as affine_quantize

    b = p.base
    if p.how == "reference":
        return reference_eval(b, x)
    if b.from_float:
        return [affine_quantize(x, b.scale, b.zero_point, b.out_dtype, axis=None, numerics=p.how
                                if p.how == "xnnpack" else "optimized")]
    zp_out = int(b.zero_point[0])
    if p.how == "xnnpack":
        acc = wrap_int32((x.astype(np.int64) - b.input_zero_point) * p.extra + 128)
        return [np.clip((acc >> 8) + zp_out, b.qmin, b.qmax).astype(b.out_dtype)]
    ref = reference_eval(b, x)[0]
    flat = x.reshape(-1).astype(np.int64)
    lanes = vector_mask(flat.size, 16)
    if not lanes.any():
        return [ref]
    v = vshl(flat - b.input_zero_point, max(b.output_shift, 0))
    v = rounding_divide_by_pot_ties_up(saturating_rounding_doubling_high_mul(v, b.output_multiplier),
                                       max(-b.output_shift, 0))
    v = np.clip(wrap_int32(v + zp_out), b.qmin, b.qmax)
    out = np.where(lanes, v, ref.reshape(-1).astype(np.int64))
    return [out.reshape(x.shape).astype(b.out_dtype)]


# ---------------------------------------------------------------------------
# DEQUANTIZE
# ---------------------------------------------------------------------------
def for_dequantize(ctx: OpContext, base):
    if ctx.numerics not in ("optimized", "xnnpack") or base.from_float16:
        return base
    return PathParams(ctx.numerics, ctx.numerics, base)


def eval_dequantize(p: PathParams, x: np.ndarray) -> list[np.ndarray]:
    from quantcore.numerics import dequantize as affine_dequantize

    b = p.base
    return [affine_dequantize(x, b.scale, b.zero_point, axis=b.axis, numerics=p.how)]


# ---------------------------------------------------------------------------
# LEAKY_RELU
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class XnnLeakyReluParams:
    input_zero_point: int
    output_zero_point: int
    positive_multiplier: int
    negative_multiplier: int
    qmin: int
    qmax: int
    out_dtype: type


def xnn_takes_leaky_relu(ctx: OpContext) -> bool:
    x, out = ctx.input(0), ctx.output(0)
    if not (_per_tensor_8bit(x) and _per_tensor_8bit(out)) or x.type != out.type:
        return False
    alpha = np.float32(ctx.options.get("alpha", 0.0))
    if not np.isfinite(alpha) or alpha == 0 or abs(alpha) < np.finfo(np.float32).tiny:
        return False
    pos = np.float32(np.float32(x.s) / np.float32(out.s))
    if pos < np.float32(1.0 / 256.0) or pos > np.float32(128.0):
        return False
    neg = np.float32(pos * alpha)
    return not (neg < np.float32(-127.99609375) or neg > np.float32(128.0)
                or abs(neg) < np.float32(1.0 / 256.0))


def for_leaky_relu(ctx: OpContext, base):
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    if ctx.numerics == "xnnpack" and base.kind == "quantized" and xnn_takes_leaky_relu(ctx):
        x, out = ctx.input(0), ctx.output(0)
        alpha = np.float32(ctx.options.get("alpha", 0.0))
        pos = np.float32(np.float32(x.s) / np.float32(out.s))
        neg = np.float32(pos * alpha)
        mp = int(np.rint(np.float32(256.0) * pos))
        mn = int(np.rint(np.float32(np.float32(256.0) * neg)))
        qmin, qmax = _QRANGE[x.type]
        return PathParams("xnnpack", "xnnpack", base,
                          XnnLeakyReluParams(x.zp, out.zp, mp, mn, qmin, qmax,
                                             np.int8 if x.type == INT8 else np.uint8))
    if base.kind == "quantized" and base.out_dtype == np.int16 and base.output_multiplier_alpha < 0:
        return PathParams(ctx.numerics, "litert-optimized", base)
    return PathParams(ctx.numerics, "reference", base)


def eval_leaky_relu(p: PathParams, x: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "litert-optimized":      # int16, negative alpha: the signed multiplier as is
        b = p.base
        v = np.asarray(x, np.int64) - b.input_offset
        identity = multiply_by_quantized_multiplier(v, b.output_multiplier_identity,
                                                    b.output_shift_identity)
        alpha = multiply_by_quantized_multiplier(v, b.output_multiplier_alpha, b.output_shift_alpha)
        out = b.output_offset + np.where(v >= 0, identity, alpha)
        return [np.clip(out, b.qmin, b.qmax).astype(b.out_dtype)]
    if p.how != "xnnpack":
        return reference_eval(p.base, x)
    e = p.extra
    d = x.astype(np.int64) - e.input_zero_point
    acc = d * np.where(d >= 0, e.positive_multiplier, e.negative_multiplier) + 128
    return [np.clip((acc >> 8) + e.output_zero_point, e.qmin, e.qmax).astype(e.out_dtype)]


# ---------------------------------------------------------------------------
# XNNPACK lookup tables (LOGISTIC, TANH, ELU)
# ---------------------------------------------------------------------------
def _xnn_sigmoid(x: np.ndarray) -> np.ndarray:
    xd = x.astype(np.float64)
    e = libm_f64("exp", np.clip(xd, -100.0, 100.0))
    y = (e / (1.0 + e)).astype(np.float32)
    return np.where(x > 100, np.float32(1), np.where(x < -100, np.float32(0), y)).astype(np.float32)


def _xnn_tanh(x: np.ndarray) -> np.ndarray:
    return libm_f32("tanhf", x)


def _xnn_elu(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, libm_f32("expm1f", x), x).astype(np.float32)


XNN_TRANSFORMS = {"LOGISTIC": _xnn_sigmoid, "TANH": _xnn_tanh, "ELU": _xnn_elu}


def xnn_lut(op: str, s_in: float, zp_in: int, s_out: float, zp_out: int, out_type: int) -> np.ndarray:
    """The 256 outputs (for codes qmin..qmax) of XNNPACK's table for ``op``."""
    qmin, qmax = _QRANGE[out_type]
    codes = np.arange(qmin, qmax + 1, dtype=np.int64)
    with np.errstate(all="ignore"):
        x = ((codes.astype(np.float32) - np.float32(zp_in)) * np.float32(s_in)).astype(np.float32)
        y = XNN_TRANSFORMS[op](x)
        inv = np.float32(np.float32(1) / np.float32(s_out))
        v = ((y * inv).astype(np.float32) + np.float32(zp_out)).astype(np.float32)
    v = np.where(np.isnan(v), np.float32(0), v)
    return np.clip(np.rint(v), qmin, qmax).astype(np.int64)


def xnn_takes_lut(op: str, ctx: OpContext) -> bool:
    x, out = ctx.input(0), ctx.output(0)
    if x.type != out.type:
        return False
    allowed = (INT8,) if op == "ELU" else (INT8, UINT8)
    return x.type in allowed and _per_tensor_8bit(x) and _per_tensor_8bit(out)


def for_lut_activation(op: str, ctx: OpContext, prepare_reference):
    """LOGISTIC / TANH / ELU: XNNPACK's table when delegated, else LiteRT's kernel (whose
    8-bit table is the same on the reference and optimized paths).

    A delegated node never runs LiteRT's Prepare, so LiteRT's own checks (LOGISTIC's
    output scale of exactly 1/256) do not apply to it: XNNPACK accepts any output
    scale. ``prepare_reference(ctx)`` is called only when LiteRT's kernel runs.
    """
    if ctx.numerics == "xnnpack" and xnn_takes_lut(op, ctx):
        x, out = ctx.input(0), ctx.output(0)
        ctx.require_quantized(x)
        ctx.require_quantized(out)
        return PathParams("xnnpack", "xnnpack", None, xnn_lut(op, x.s, x.zp, out.s, out.zp, x.type))
    base = prepare_reference(ctx)
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    if op in ("TANH", "LOGISTIC") and getattr(base, "kind", "") == "int16" and base.input_multiplier == 0:
        # Power-of-two int16 input scale: LiteRT's optimized kernel is gemmlowp fixed point.
        return PathParams(ctx.numerics, "gemmlowp-int16", base, (op, base.input_left_shift))
    return PathParams(ctx.numerics, "reference", base)


def eval_lut_activation(p: PathParams, x: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "gemmlowp-int16":
        from ._paths_fixedpoint16 import optimized_logistic_int16, optimized_tanh_int16

        op, shift = p.extra
        return [optimized_tanh_int16(x, shift) if op == "TANH" else optimized_logistic_int16(x)]
    if p.how != "xnnpack":
        return reference_eval(p.base, x)
    qmin = -128 if x.dtype == np.int8 else 0
    return [p.extra[x.astype(np.int64) - qmin].astype(x.dtype)]


