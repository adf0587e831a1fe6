"""SOFTMAX and LOG_SOFTMAX with 8-bit inputs on LiteRT's "optimized" path (and on
"xnnpack", which leaves quantized softmax to LiteRT: ``VisitSoftmaxNode`` accepts
float tensors only).

Sources (google-ai-edge/LiteRT): ``tflite/kernels/activations.cc``
(``SoftmaxPrepare``/``LogSoftmaxPrepare`` for kGenericOptimized,
``SoftmaxQuantized``, ``LogSoftmaxEval``) and ``internal/optimized/optimized_ops.h``
(``PopulateSoftmaxLookupTable``, ``Softmax<In, Out>``, ``QuantizeSoftmaxOutput``,
``LogSoftmax<T>``). ``TFLITE_SOFTMAX_USE_UINT16_LUT`` is an aarch64-only build flag,
so x86 uses the float table. Every step is float32 (``f32``)::

    table[255 - v] = expf(f32(f32(-s_in * beta) * v))        v = 0..255  (LOG_SOFTMAX: beta 1)
    per row: e_j = table[255 - max(row) + x_j];  S = e_0 + e_1 + ...  (in order)

    SOFTMAX:     p_j = f32(e_j * f32(1 / f32(S * s_out)))
                 out = int32(round(p_j)) + zp_out   (int8 and int16 outputs; ties away)
                 out = int32(f32(p_j + 0.5f))   (uint8 output, x86 build: the zero point
                                                 is not added)
    LOG_SOFTMAX: pre = f32(f32(f32(s_in * max) + logf(S)) / s_out)
                 out = rint(f32(f32(f32(s_in / s_out) * x_j) - pre)) + zp_out   (ties to even)

then clamped to the output type. The reference kernels' gemmlowp fixed-point
preprocessing (which aborts LiteRT on tiny input scales) does not exist on this path:
models the reference path refuses run here. int16 SOFTMAX and float tensors are the
reference kernels on this path (float differs only in the last bits: Eigen's vector
exp and summation order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import float_to_int32_x86, round_half_away

from ._common import INT8, INT16, QMAX, QMIN, UINT8, OpContext
from ._lut import libm_f32
from ._paths_common import PathParams

_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}


@dataclass(frozen=True)
class SoftmaxTableParams:
    log: bool
    table: np.ndarray              # float32[256]
    input_scale: float
    output_scale: float
    output_zero_point: int
    uint8_output: bool
    qmin: int
    qmax: int
    out_dtype: type


def populate_softmax_lookup_table(input_scale: float, beta: float) -> np.ndarray:
    """``PopulateSoftmaxLookupTable``: ``table[255 - v] = expf(f32(-s_in * beta) * v)``."""
    scale = np.float32(np.float32(-np.float32(input_scale)) * np.float32(beta))
    v = np.arange(256, dtype=np.float32)
    values = libm_f32("expf", (scale * v).astype(np.float32))
    return values[::-1].copy()


def for_softmax(log: bool, ctx: OpContext, prepare_reference):
    """Params of SOFTMAX (``log=False``) or LOG_SOFTMAX on ``ctx.numerics``."""
    if ctx.numerics not in ("optimized", "xnnpack"):
        return prepare_reference(ctx)
    x, out = ctx.input(0), ctx.output(0)
    eight_bit = x.type in (INT8, UINT8)
    try:
        base = prepare_reference(ctx)
    except NumericsPathError:
        # Only the reference kernel's fixed-point preprocessing aborts; every model check
        # ran before it (see softmax.py / log_softmax.py prepare).
        if not eight_bit:
            raise
        base = None
    if not eight_bit:
        return PathParams(ctx.numerics, "reference", base)
    beta = 1.0 if log else float(np.float32(ctx.options.get("beta", 1.0)))
    table = populate_softmax_lookup_table(x.s, beta)
    q = SoftmaxTableParams(log, table, float(x.s), float(out.s), out.zp, out.type == UINT8,
                           QMIN[out.type], QMAX[out.type], _DTYPES[out.type])
    return PathParams(ctx.numerics, "litert-optimized", base, q)


def eval_softmax(p: PathParams, x: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "reference":
        return reference_eval(p.base, x)
    q: SoftmaxTableParams = p.extra
    f32 = np.float32
    xi = np.asarray(x, np.int64)
    mx = xi.max(axis=-1, keepdims=True)
    e = q.table[255 - mx + xi]
    total = np.cumsum(e, axis=-1, dtype=np.float32)[..., -1:]
    with np.errstate(all="ignore"):
        if q.log:
            log_sum = libm_f32("logf", total)
            pre = ((f32(q.input_scale) * mx.astype(np.float32)).astype(np.float32) + log_sum
                   ).astype(np.float32)
            pre = (pre / f32(q.output_scale)).astype(np.float32)
            scale = f32(f32(q.input_scale) / f32(q.output_scale))
            v = ((scale * xi.astype(np.float32)).astype(np.float32) - pre).astype(np.float32)
            r = float_to_int32_x86(np.rint(v)) + q.output_zero_point
        else:
            inv = (f32(1) / (total * f32(q.output_scale)).astype(np.float32)).astype(np.float32)
            prob = (e * inv).astype(np.float32)
            if q.uint8_output:   # QuantizeSoftmaxOutput<uint8_t> drops the zero point
                r = float_to_int32_x86((prob + f32(0.5)).astype(np.float32))
            else:
                r = float_to_int32_x86(round_half_away(prob)) + q.output_zero_point
    return [np.clip(r, q.qmin, q.qmax).astype(q.out_dtype)]
