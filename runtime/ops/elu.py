"""ELU: float32 and int8 (256-entry table).

Mirrors ``EluPrepare``/``EluEval`` in ``tflite/kernels/activations.cc`` and
``reference/elu.h``:

* float32: ``x < 0 ? expm1f(x) : x``;
* int8: ``LUTPopulate<int8_t>`` (``internal/common.h``) with the same function in
  float32 (see :mod:`._lut`: ``expm1f`` from the platform libm, because glibc's
  ``expm1f`` is not correctly rounded and decides some table entries).

LiteRT has a single ELU kernel (``Register_ELU``), registered by the builtin
(optimized) resolver only: ``BuiltinRefOpResolver`` (``register_ref.cc``) has no
ELU, so LiteRT's ``BUILTIN_REF`` refuses ELU models ("Didn't find op for builtin
opcode 'ELU'"). quantcore runs ELU on both its "reference" and "optimized" paths with
that one kernel; the differential tests compare against
``BUILTIN_WITHOUT_DEFAULT_DELEGATES``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _paths_unary
from ._common import FLOAT32, INT8, QMAX, QMIN, OpContext
from ._paths_common import PathParams
from ._lut import approx_f32, libm_f32, lut_lookup_int8, lut_populate_int8

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class EluParams:
    kind: str                       # "float" or "lut"
    lut: np.ndarray | None = None


def _elu_f32(v: np.ndarray) -> np.ndarray:
    """``value < 0.0f ? std::expm1(value) : value`` with the platform's expm1f."""
    v = np.asarray(v, np.float32)
    return np.where(v < 0, libm_f32("expm1f", v), v).astype(np.float32)


def prepare(ctx: OpContext) -> EluParams | PathParams:
    # "xnnpack": XNNPACK's own 8-bit table when delegated (_paths_unary).
    return _paths_unary.for_lut_activation("ELU", ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> EluParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input type {x.type_name}")
    if x.type == FLOAT32:
        return EluParams(kind="float")
    ctx.check_type(x, (INT8,), "input")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    return EluParams(kind="lut", lut=lut_populate_int8(x.s, x.zp, out.s, out.zp, _elu_f32,
                                                        QMIN[INT8], QMAX[INT8]))


def eval(p: EluParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if isinstance(p, PathParams):
        return _paths_unary.eval_lut_activation(p, x, eval)
    if p.kind == "lut":
        return [lut_lookup_int8(x, p.lut, QMIN[INT8], np.int8)]
    xf = np.asarray(x, np.float32)
    return [np.where(xf < 0, approx_f32("expm1f", xf), xf).astype(np.float32)]
