"""PRELU: float32, int8, uint8 and int16 (int8 alpha), alpha broadcast to the input.

Mirrors ``PreluPrepare``/``PreluEval<kReference>`` (``Register_PRELU_REF``) in
``tflite/kernels/activations.cc`` and ``reference/prelu.h``. Two multipliers formed
in float32 (``input->params.scale * alpha->params.scale / output->params.scale``)::

    multiplier_1 = QuantizeMultiplier(f32(s_in / s_out))                 # eq. 6
    multiplier_2 = QuantizeMultiplier(f32(f32(s_in * s_alpha) / s_out))
    v = x - zp_in
    out = clamp(zp_out + (v >= 0 ? MBQM(v, multiplier_1)
                                 : MBQM(v * (alpha - zp_alpha), multiplier_2)), qmin, qmax)

The alpha tensor broadcasts to the input (numpy rules); the output shape must equal
the input shape. Alpha has the input's type for uint8 and int8 and is int8 for int16
inputs (LiteRT does not check the alpha type and would reinterpret the bytes; quantcore
refuses other alpha types). Float32: ``x >= 0 ? x : x * alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier

from ._common import FLOAT32, INT16, INT8, QMAX, QMIN, UINT8, OpContext, finite

# Numerics paths: PreluEval<kGenericOptimized> runs the reference kernels for quantized
# types (its float path computes the same x >= 0 ? x : x * alpha); XNNPACK takes float
# with a constant alpha only. All paths agree.
NUMERICS = ("reference", "optimized", "xnnpack")

_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}
_ALPHA_TYPE = {FLOAT32: FLOAT32, INT8: INT8, UINT8: UINT8, INT16: INT8}


@dataclass(frozen=True)
class PreluParams:
    kind: str                       # "float" or "quantized"
    input_offset: int = 0           # -zp_in, as PreluParams
    alpha_offset: int = 0           # -zp_alpha
    output_offset: int = 0
    output_multiplier_1: int = 0
    output_shift_1: int = 0
    output_multiplier_2: int = 0
    output_shift_2: int = 0
    qmin: int = 0
    qmax: int = 0
    out_dtype: type = np.float32


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for da, db in zip(a, b):
        if da != db and da != 1 and db != 1:
            return None
        out.append(db if da == 1 else da)
    return tuple(out)


def prepare(ctx: OpContext) -> PreluParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    alpha = ctx.input(1)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    ctx.check_type(x, (FLOAT32, INT8, UINT8, INT16), "input")
    ctx.check_type(alpha, (_ALPHA_TYPE[x.type],), "alpha")
    shape = _broadcast_shape(x.shape, alpha.shape)
    ctx.check(shape is not None, f"alpha shape {list(alpha.shape)} does not broadcast to input "
              f"shape {list(x.shape)}", ".inputs[1]")
    ctx.check(shape == tuple(x.shape), f"alpha shape {list(alpha.shape)} broadcast with input "
              f"shape {list(x.shape)} gives {list(shape)}, which is not the input shape", ".inputs[1]")
    if x.type == FLOAT32:
        return PreluParams(kind="float")
    ctx.require_quantized(x)
    ctx.require_quantized(alpha)
    ctx.require_quantized(out)
    s_in, s_alpha, s_out = (np.float32(t.scale[0]) for t in (x, alpha, out))
    with np.errstate(over="ignore"):
        real1, real2 = np.float32(s_in / s_out), np.float32(np.float32(s_in * s_alpha) / s_out)
    m1, sh1 = quantize_multiplier(finite(ctx, real1, "input scale / output scale"))
    m2, sh2 = quantize_multiplier(finite(ctx, real2, "input scale * alpha scale / output scale"))
    return PreluParams(kind="quantized", input_offset=-x.zp, alpha_offset=-alpha.zp,
                       output_offset=out.zp, output_multiplier_1=m1, output_shift_1=sh1,
                       output_multiplier_2=m2, output_shift_2=sh2, qmin=QMIN[x.type],
                       qmax=QMAX[x.type], out_dtype=_DTYPES[x.type])


def eval(p: PreluParams, x: np.ndarray, alpha: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if p.kind == "float":
        xf = np.asarray(x, np.float32)
        af = np.broadcast_to(np.asarray(alpha, np.float32), xf.shape)
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN products, as in C
            return [np.where(xf >= 0, xf, (xf * af).astype(np.float32)).astype(np.float32)]
    v = np.asarray(x, np.int64) + p.input_offset
    a = np.broadcast_to(np.asarray(alpha, np.int64) + p.alpha_offset, v.shape)
    positive = multiply_by_quantized_multiplier(v, p.output_multiplier_1, p.output_shift_1)
    negative = multiply_by_quantized_multiplier(v * a, p.output_multiplier_2, p.output_shift_2)
    out = p.output_offset + np.where(v >= 0, positive, negative)
    return [np.clip(out, p.qmin, p.qmax).astype(p.out_dtype)]
