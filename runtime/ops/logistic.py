"""LOGISTIC (sigmoid): float32, int8, uint8 (256-entry tables) and int16 (fixed-point
table interpolation).

Mirrors ``SigmoidPrepare``/``SigmoidEval`` with ``kernel_type = kReference`` in
``tflite/kernels/activations.cc`` (``Register_LOGISTIC_REF``), which uses:

* float32: ``reference/logistic.h``: ``1`` above 16.619047f, ``expf(x)`` below -9,
  else ``1 / (1 + expf(-x))``, in float32;
* int8/uint8: ``LUTPopulate`` (``internal/common.h``) with ``1.0f / (1.0f + expf(-x))``;
  the output scale must be exactly 1/256 (any output zero point is accepted and
  folded into the table). See :mod:`._lut` for the table formula and libm;
* int16: ``reference/integer_ops/logistic.h``: input rescaled to 1/(3*4096) units
  (or a power-of-two scale 2^-12 used directly), then linear interpolation in
  ``sigmoid_table_uint16``; zero points 0, output scale exactly 1/32768.

int16 kernel, per element (uint32 arithmetic)::

    v = (x * input_multiplier + round) >> input_left_shift
    a = |v|; uh = a >> 9
    r = 0x7FFF << 10                                      if uh >= 255
      = (T[uh] << 9) + (a & 0x1FF) * (T[uh+1] - T[uh])   otherwise
    r = r + 2^9 if v >= 0 else 2^25 - r + 2^9 - 1
    out = r >> 10
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _paths_unary
from ._common import FLOAT32, INT8, INT16, UINT8, QMAX, QMIN, OpContext
from ._paths_common import PathParams
from ._lut import (SIGMOID_TABLE_UINT16, approx_f32, int16_input_fixed, int16_input_rescale,
                   libm_f32, lut_lookup_int8, lut_populate_int8)

NUMERICS = ("reference", "optimized", "xnnpack")

_CUTOFF_UPPER = np.float32(16.619047164916992188)
_CUTOFF_LOWER = np.float32(-9.0)


@dataclass(frozen=True)
class LogisticParams:
    kind: str                         # "float", "lut", "int16"
    lut: np.ndarray | None = None     # int8/uint8: 256 outputs for codes qmin..qmax
    qmin: int = 0
    out_dtype: type = np.float32
    input_multiplier: int = 0
    input_left_shift: int = 0


def _sigmoid_f32(x: np.ndarray) -> np.ndarray:
    """The LUT transform ``1.0f / (1.0f + std::exp(-value))`` with the platform's expf."""
    one = np.float32(1)
    return (one / (one + libm_f32("expf", -x))).astype(np.float32)


def prepare(ctx: OpContext) -> LogisticParams | PathParams:
    # "xnnpack": XNNPACK's own 8-bit table when delegated (_paths_unary).
    return _paths_unary.for_lut_activation("LOGISTIC", ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> LogisticParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    if x.type == FLOAT32:
        return LogisticParams(kind="float")
    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    if x.type in (INT8, UINT8):
        ctx.check(float(out.scale[0]) == 1.0 / 256,
                  f"quantized LOGISTIC needs an output scale of exactly 1/256, has {out.s!r}",
                  ".outputs[0]")
        lut = lut_populate_int8(x.s, x.zp, out.s, out.zp, _sigmoid_f32, QMIN[x.type], QMAX[x.type])
        return LogisticParams(kind="lut", lut=lut, qmin=QMIN[x.type],
                              out_dtype=np.int8 if x.type == INT8 else np.uint8)
    ctx.check(float(out.scale[0]) == 1.0 / 32768 and out.zp == 0,
              f"int16 LOGISTIC needs output scale 1/32768 and zero point 0, has "
              f"{out.s!r}, {out.zp}", ".outputs[0]")
    ctx.check(x.zp == 0, f"int16 LOGISTIC needs input zero point 0, has {x.zp}", ".inputs[0]")
    m, shift = int16_input_rescale(x.s, (0,))
    ctx.check(m < 2**31, f"input scale {x.s!r} gives an input multiplier {m} beyond int32 "
              "(LiteRT's static_cast<int32_t> of it is undefined)", ".inputs[0]")
    return LogisticParams(kind="int16", out_dtype=np.int16, input_multiplier=m,
                          input_left_shift=shift)


def _logistic_int16(p: LogisticParams, x: np.ndarray) -> np.ndarray:
    v = int16_input_fixed(x, p.input_multiplier, p.input_left_shift)
    a = np.abs(v) & 0xFFFFFFFF
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_UINT16[idx]
    ub = SIGMOID_TABLE_UINT16[idx + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)


def eval(p: LogisticParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_lut_activation(p, x, eval)
    if p.kind == "lut":
        return [lut_lookup_int8(x, p.lut, p.qmin, p.out_dtype)]
    if p.kind == "int16":
        return [_logistic_int16(p, x)]
    xf = np.asarray(x, np.float32)
    one = np.float32(1)
    with np.errstate(over="ignore"):
        mid = (one / (one + approx_f32("expf", -xf))).astype(np.float32)
        out = np.where(xf > _CUTOFF_UPPER, one, np.where(xf < _CUTOFF_LOWER, approx_f32("expf", xf), mid))
    return [out.astype(np.float32)]
