"""MUL: float32, int32, int64, int16 without quantization, quantized int8, uint8 and
int16, and int16 x int16 -> int8/uint8, with broadcasting up to 8 dimensions and fused
activations.

Mirrors ``tflite/kernels/mul.cc`` and the reference kernels
``tflite/kernels/internal/reference/mul.h`` (float, integers, uint8),
``reference/integer_ops/mul.h`` (int8, int16, int16 -> int8) and ``reference_ops.h``
``Mul(int16, int16 -> uint8)`` in google-ai-edge/LiteRT.

Quantized (input and output of one type)::

    real_multiplier = f32(f32(s1 * s2) / s_out)        (float32 arithmetic, mul.cc)
    out = clamp(zp_out + MBQM((x1 - zp1) * (x2 - zp2), M, shift))

with the general MultiplyByQuantizedMultiplier (double rounding; the shift may be
positive). int16 needs zero points 0 (checked by LiteRT at Eval). Unquantized
integers multiply with two's-complement wrap (``WrappingMul``); float32 results are
clamped to [-FLT_MAX, FLT_MAX] even without an activation.

int16 x int16 -> int8/uint8 ignores every scale (LiteRT still computes the multiplier)::

    p = SaturatingRoundingDoublingHighMul_int16(x1, x2)     # Q0.15 product
    r = RoundingDivideByPOT_int16(p, 8)
    out = zp_out + clamp(r, act_min - zp_out, act_max - zp_out)

This kernel has no broadcasting: LiteRT aborts unless both inputs and the output
have the same number of elements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

from ._broadcast import (binary_shapes, check_binary_io, clamp_float, float_activation_range,
                         int_activation_range, quantized_activation_range,
                         rounding_divide_by_pot_int16, to_dtype, wrap, wrapping_int64)
from . import _lut2d, _paths_binary
from ._common import FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class MulParams:
    kind: str                     # "float", "int", "quantized", "int16_to_8"
    out_type: int
    output_shape: tuple[int, ...]
    output_activation_min: float = 0
    output_activation_max: float = 0
    input1_offset: int = 0
    input2_offset: int = 0
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    # int8/uint8 "quantized": the 65536-entry table form, built on demand (_lut2d)
    lut: _lut2d.LazyBinaryTable | None = field(default=None, compare=False, repr=False)


def srdhm_int16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul<int16_t>``: ``(a*b + nudge) / 2^15``
    (C division), nudge ``2^14`` or ``1 - 2^14``; ``-32768 * -32768`` saturates to 32767."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, q)


def prepare(ctx: OpContext) -> MulParams | PathParams:
    # Other numerics paths: see _paths_binary (LiteRT's NEON kernels, XNNPACK).
    return _paths_binary.for_mul(ctx, _prepare_reference(ctx))


def _prepare_reference(ctx: OpContext) -> MulParams:
    a, b, out = check_binary_io(ctx)
    t = a.type
    ctx.check_type(a, (FLOAT32, INT32, INT64, INT8, UINT8, INT16), "input")
    int16_to_8 = t == INT16 and out.type in (INT8, UINT8)
    if not int16_to_8:
        ctx.check(out.type == t, f"output type {out.type_name} differs from the input type "
                  f"{a.type_name} (LiteRT: unsupported combination of input and output types)",
                  ".outputs[0]")
    if t == FLOAT32 or t in (INT32, INT64) or (t == INT16 and not out.quantized):
        sh = binary_shapes(ctx, a, b, flat_test="extended")
        if t == FLOAT32:
            lo, hi = float_activation_range(ctx)
            kind = "float"
        else:
            lo, hi = int_activation_range(ctx, t)
            kind = "int"
        return MulParams(kind=kind, out_type=t, output_shape=sh.output_shape,
                         output_activation_min=lo, output_activation_max=hi)
    for x in (a, b, out):
        ctx.require_quantized(x)
    lo, hi = quantized_activation_range(ctx, out)
    # mul.cc: double real_multiplier = input1->params.scale * input2->params.scale
    #                                  / output->params.scale;  (all float32)
    with np.errstate(over="ignore", under="ignore"):  # checked below
        real = float(np.float32(np.float32(a.s) * np.float32(b.s)) / np.float32(out.s))
    if ctx.numerics == "micro":  # TFLM mul_common.cc: built in double (runtime/micro.py)
        from quantcore.runtime.micro import mul_real_multiplier
        real = mul_real_multiplier(a, b, out)
    ctx.check(np.isfinite(real), f"multiplier s1*s2/s_out = {real} is not finite")
    m, shift = quantize_multiplier(real)
    sh = binary_shapes(ctx, a, b, flat_test="extended")
    if int16_to_8:
        n = [int(np.prod(s, dtype=np.int64)) for s in (a.shape, b.shape, sh.output_shape)]
        ctx.check(n[0] == n[1] == n[2], f"int16 x int16 -> {out.type_name} MUL cannot broadcast "
                  f"{list(a.shape)} with {list(b.shape)} (LiteRT aborts: element counts differ)")
        return MulParams(kind="int16_to_8", out_type=out.type, output_shape=sh.output_shape,
                         output_activation_min=lo, output_activation_max=hi, output_offset=out.zp)
    if t == INT16:
        ctx.check(a.zp == 0 and b.zp == 0 and out.zp == 0,
                  "int16 MUL needs zero points 0 (symmetric int16)")
    lut = None
    if t in (INT8, UINT8):
        dt = _DTYPES[t]
        lut = _lut2d.LazyBinaryTable(dt, dt, dt)
    return MulParams(kind="quantized", out_type=t, output_shape=sh.output_shape,
                     output_activation_min=lo, output_activation_max=hi, input1_offset=-a.zp,
                     input2_offset=-b.zp, output_offset=out.zp, output_multiplier=m,
                     output_shift=shift, lut=lut)


_GRID = (256, 256)
_DTYPES = {INT8: np.int8, UINT8: np.uint8}


def table_plan(p: MulParams | PathParams, shape1: tuple[int, ...], shape2: tuple[int, ...]
               ) -> _lut2d.TablePlan:
    """The 65536-entry tables of an int8/uint8 MUL for inputs of these shapes, each built
    from the path's own kernel code on every input pair: reference (and micro, whose
    params differ only in the multiplier) :func:`eval_quantized`; LiteRT optimized: the
    reference table plus the NEON body's on the vector loop's positions
    (``_paths_binary.optimized_mul_8bit_plan``); XNNPACK ``_paths_binary.eval_xnn_mul``."""
    how = p.how if isinstance(p, PathParams) else "reference"
    base = p.base if isinstance(p, PathParams) else p
    if how == "xnnpack":
        xp = dataclasses.replace(p.extra, output_shape=_GRID)
        return _lut2d.TablePlan(_lut2d.TableSpec(("mul-xnnpack", _lut2d.params_key(xp)),
                                                 lambda a, b: _paths_binary.eval_xnn_mul(xp, a, b)))
    ref = _lut2d.TableSpec(("mul-reference", _lut2d.params_key(base)),
                           lambda a, b: eval_quantized(base, a, b))
    if how == "litert-optimized":
        body, lanes = _paths_binary.optimized_mul_8bit_plan(base, shape1, shape2, base.output_shape)
        if body is None:
            return _lut2d.TablePlan(ref)
        vec = _lut2d.TableSpec(("mul-optimized", body.__name__, _lut2d.params_key(base)),
                               lambda a, b: body(base, a.astype(np.int64), b.astype(np.int64)))
        return _lut2d.TablePlan(ref, vec, lanes)
    return _lut2d.TablePlan(ref)


def eval_quantized(p: MulParams, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The quantized MUL formula (int64 result, broadcast shape of the inputs)."""
    a = x1.astype(np.int64) + p.input1_offset
    b = x2.astype(np.int64) + p.input2_offset
    prod = wrap_int32(a * b)
    r = multiply_by_quantized_multiplier(prod, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(r, p.output_activation_min, p.output_activation_max)


def eval(p: MulParams | PathParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    """MUL on any numerics path: through the 8-bit tables once built (see
    :func:`table_plan`), else :func:`eval_direct` (``_lut2d.eval_binary``)."""
    return _lut2d.eval_binary(p, x1, x2, table_plan, eval_direct)


def eval_direct(p: MulParams | PathParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:
    """MUL through the kernels themselves (no tables)."""
    if isinstance(p, PathParams):
        return _paths_binary.eval_mul(p, x1, x2, eval_direct)
    if p.kind == "float":
        with np.errstate(over="ignore", invalid="ignore"):
            r = x1.astype(np.float32) * x2.astype(np.float32)
        return [clamp_float(np.broadcast_to(r, p.output_shape), p.output_activation_min,
                            p.output_activation_max)]
    if p.kind == "int":
        r = wrap(wrapping_int64(np.multiply, x1, x2), p.out_type)
        r = np.clip(r, p.output_activation_min, p.output_activation_max)
        return [to_dtype(np.broadcast_to(r, p.output_shape), p.out_type)]
    if p.kind == "int16_to_8":
        a, b = np.broadcast_arrays(x1.astype(np.int64), x2.astype(np.int64))
        r = rounding_divide_by_pot_int16(srdhm_int16(a, b), 8)
        r = np.clip(r, p.output_activation_min - p.output_offset, p.output_activation_max - p.output_offset)
        return [to_dtype((r + p.output_offset).reshape(p.output_shape), p.out_type)]
    r = eval_quantized(p, x1, x2)
    return [to_dtype(np.broadcast_to(r, p.output_shape), p.out_type)]
