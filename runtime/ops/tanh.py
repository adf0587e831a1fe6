"""TANH: float32, int8, uint8 (256-entry tables) and int16 (fixed-point table
interpolation).

Mirrors ``TanhPrepare``/``TanhEval`` with ``kernel_type = kReference`` in
``tflite/kernels/activations.cc`` (``Register_TANH_REF``):

* float32: ``reference/tanh.h``, ``tanhf`` per element;
* int8/uint8: ``LUTPopulate`` (``internal/common.h``) with ``tanhf``; any output
  scale and zero point (see :mod:`._lut` for the table formula and libm);
* int16: ``reference/integer_ops/tanh.h``: tanh(x) = 2 sigmoid(2x) - 1 read from
  ``sigmoid_table_uint16`` with 8 bits of interpolation; input rescaled to
  1/(3*4096) units unless the input scale is 2^-12 or 2^-11 (then used directly);
  zero points 0; the output scale must be a power of two with log2 = -15.

int16 kernel, per element::

    v = (x * input_multiplier + round) >> input_left_shift
    a = |v|; uh = a >> 8
    r = 0xFFFF << 8                                      if uh >= 255
      = (T[uh] << 8) + (a & 0xFF) * (T[uh+1] - T[uh])    otherwise
    r = r - 2^23 + 2^7 if v >= 0 else -r + 2^23 + 2^7 - 1
    out = int16(r >> 8)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _paths_unary
from ._common import FLOAT32, INT8, INT16, UINT8, QMAX, QMIN, OpContext
from ._paths_common import PathParams
from ._gemmlowp_fixedpoint import wrap_int16
from ._lut import (SIGMOID_TABLE_UINT16, approx_f32, checked_log2, int16_input_fixed,
                   int16_input_rescale, libm_f32, lut_lookup_int8, lut_populate_int8)

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class TanhParams:
    kind: str                         # "float", "lut", "int16"
    lut: np.ndarray | None = None
    qmin: int = 0
    out_dtype: type = np.float32
    input_multiplier: int = 0
    input_left_shift: int = 0


def prepare(ctx: OpContext) -> TanhParams | PathParams:
    # "xnnpack": XNNPACK's own 8-bit table when delegated (_paths_unary).
    return _paths_unary.for_lut_activation("TANH", ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> TanhParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    if x.type == FLOAT32:
        return TanhParams(kind="float")
    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    if x.type in (INT8, UINT8):
        lut = lut_populate_int8(x.s, x.zp, out.s, out.zp, lambda v: libm_f32("tanhf", v),
                                QMIN[x.type], QMAX[x.type])
        return TanhParams(kind="lut", lut=lut, qmin=QMIN[x.type],
                          out_dtype=np.int8 if x.type == INT8 else np.uint8)
    ctx.check(x.zp == 0, f"int16 TANH needs input zero point 0, has {x.zp}", ".inputs[0]")
    ctx.check(out.zp == 0, f"int16 TANH needs output zero point 0, has {out.zp}", ".outputs[0]")
    pot, log2 = checked_log2(out.s)
    ctx.check(pot and log2 == -15, f"int16 TANH needs an output scale of 2^-15, has {out.s!r}",
              ".outputs[0]")
    m, shift = int16_input_rescale(x.s, (0, 1))
    ctx.check(m < 2**31, f"input scale {x.s!r} gives an input multiplier {m} beyond int32 "
              "(LiteRT's static_cast<int32_t> of it is undefined)", ".inputs[0]")
    return TanhParams(kind="int16", out_dtype=np.int16, input_multiplier=m, input_left_shift=shift)


def _tanh_int16(p: TanhParams, x: np.ndarray) -> np.ndarray:
    v = int16_input_fixed(x, p.input_multiplier, p.input_left_shift)
    a = np.abs(v) & 0xFFFFFFFF
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_UINT16[idx]
    ub = SIGMOID_TABLE_UINT16[idx + 1]
    r = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return wrap_int16(r >> 8).astype(np.int16)


def eval(p: TanhParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_lut_activation(p, x, eval)
    if p.kind == "lut":
        return [lut_lookup_int8(x, p.lut, p.qmin, p.out_dtype)]
    if p.kind == "int16":
        return [_tanh_int16(p, x)]
    return [approx_f32("tanhf", x)]
