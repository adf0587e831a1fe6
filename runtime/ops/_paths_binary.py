"""ADD, SUB and MUL on LiteRT's "optimized" and "xnnpack" numerics paths.

The reference kernels live in add.py / mul.py; this module only holds what the other
two paths compute differently. Sources (google-ai-edge/LiteRT unless noted):

optimized (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, ``Register_ADD/SUB/MUL`` =
kNeonOptimized; NEON through NEON_2_SSE, see _paths_common):

* ADD int8: ``optimized/integer_ops/add.h``. Flat: ``AddElementwiseInt8``, 16-wide
  vector body then the reference formula on the tail. Vector formula per input:
  ``vqrdmulh((x + offset) << (20 + input_shift), input_multiplier)`` (ONE rounding;
  the reference rounds twice: SRDHM then RoundingDivideByPOT by -input_shift).
  Broadcast: ``BinaryBroadcastFiveFold`` (runs of ``AddElementwiseInt8``, or of
  ``AddScalarBroadcast`` when the innermost run is one element; its 8-wide body uses
  ``vshl(vqrdmulh(x << 20, m), input_shift)``: a FLOORING right shift); the generic
  broadcast is the reference loop. Output of every vector body:
  ``RoundingDivideByPOT(vqrdmulh(sum, m_out), -shift_out)`` like the reference, then
  ``vmovn_s32`` (keeps the low 16 bits), ``+ zp_out`` in int16 (wraps), ``vqmovn_s16``.
* ADD uint8: ``optimized_ops.h`` ``AddElementwise``/``AddScalarBroadcast`` (uint8):
  8-wide bodies with the flooring input shift of ``AddScalarBroadcast`` and
  ``vqmovun_s16``.
* ADD int16 (general scales): non-broadcast only, ``AddElementwiseInt16``: the
  ``__AVX2__`` body is not compiled in the wheel, the NEON one is: 16-wide, input
  formula as int8, output ``RDBPOT(vqrdmulh(.)) + zp``, clamp, ``vqmovn_s32``.
  Broadcast int16 and the power-of-two int16 path are the reference kernels.
* SUB: ``sub.cc`` EvalQuantized runs the reference kernels for int8 and uint8 on
  every resolver; int16 general goes to ``optimized_integer_ops::Sub`` whose only
  vector body is AVX2 (absent), the power-of-two int16 to ``reference_ops::Sub16``:
  SUB is the reference on this path.
* MUL int8: ``optimized/integer_ops/mul.h`` (16-wide ``MulElementwise`` and
  ``MulSimpleBroadcast``), uint8: ``optimized_ops.h`` (8-wide): same two roundings as
  the reference; the vector bodies narrow ``vqmovn_s32`` (saturate to int16; the
  uint8 scalar-broadcast body uses the wrapping ``vmovn_s32``), add ``zp_out`` in
  int16 (wrapping) and saturate to 8 bits. They differ from the reference only when
  ``|MBQM(product)|`` leaves the int16 range. int16 MUL is the reference kernel.

xnnpack (``BUILTIN``; ``tflite/delegates/xnnpack/xnnpack_delegate.cc``
``VisitBinaryNode``): int8/uint8 per-tensor ADD/SUB when ``f32(s_in / s_out)`` is in
[2^-10, 2^8) for both inputs, MUL when ``f32(f32(s1 * s2) / s_out)`` is in
[2^-16, 2^8); at most 6 dimensions. Otherwise (and for every int16 tensor) the
optimized kernel runs. google/XNNPACK:

* ADD/SUB ``src/microparams-init.c`` ``xnn_init_qs8_add_minmax_scalar_params`` (SUB
  negates input 2's scale, ``src/operators/binary-elementwise-nd.c``)::

      shift = 20 - exponent(max(|f32(s_a/s_o)|, |f32(s_b/s_o)|))
      m_a = lrintf(f32(s_a/s_o) * 2^shift)        (likewise m_b, negative for SUB)
      out = ((2^(shift-1) + (a - z_a) m_a + (b - z_b) m_b) >> shift) + z_o

  (``qs8-vadd`` kernels; arithmetic shift: ties toward +inf), clamped to the type.
* MUL ``xnn_init_qs8_mul_minmax_scalar_params``, ``qs8-vmul`` fp32 kernels::

      out = rint(f32(f32((a - z_a)(b - z_b)) * f32(f32(s_a s_b) / s_o))) + z_o

* A fused activation becomes a separate XNNPACK clamp node (``src/subgraph/binary.c``
  ``xnn_insert_clamp_node``) with bounds ``xnn_qs8_quantize(bound)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import wrap_int32

from ._common import INT8, INT16, UINT8, OpContext
from ._paths_common import (PathParams, broadcast_layout, narrow_to_8bit, rdbpot, sat, vqrdmulh, vshl,
                            wrap16, xnn_activation_bounds)

XNN_MAX_DIMS = 6


# ---------------------------------------------------------------------------
# Delegation decisions (xnnpack_delegate.cc VisitBinaryNode)
# ---------------------------------------------------------------------------
def _xnn_type_ok(ctx: OpContext) -> bool:
    ins = [ctx.input(0), ctx.input(1)]
    out = ctx.output(0)
    ts = {t.type for t in ins + [out]}
    if len(ts) != 1 or ts.pop() not in (INT8, UINT8):
        return False
    for t in ins + [out]:
        if not t.quantized or t.per_channel or t.quantized_dimension != 0:
            return False
        if len(t.shape) > XNN_MAX_DIMS:
            return False
    return int(ctx.options.get("fused_activation_function", 0)) in (0, 1, 2, 3)


def xnn_takes_add_sub(ctx: OpContext) -> bool:
    """ADD/SUB: 8-bit per tensor and ``f32(s_in/s_out)`` in [1/1024, 256) for both inputs."""
    if not _xnn_type_ok(ctx):
        return False
    so = np.float32(ctx.output(0).s)
    for t in (ctx.input(0), ctx.input(1)):
        r = np.float32(np.float32(t.s) / so)
        if not (np.float32(1.0 / 1024.0) <= r < np.float32(256.0)):
            return False
    return True


def xnn_takes_mul(ctx: OpContext) -> bool:
    """MUL: 8-bit per tensor and ``f32(f32(s1*s2)/s_out)`` in [1/65536, 256)."""
    if not _xnn_type_ok(ctx):
        return False
    r = np.float32(np.float32(np.float32(ctx.input(0).s) * np.float32(ctx.input(1).s))
                   / np.float32(ctx.output(0).s))
    return bool(np.float32(1.0 / 65536.0) <= r < np.float32(256.0))


# ---------------------------------------------------------------------------
# XNNPACK ADD / SUB / MUL
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class XnnAddParams:
    """``xnn_qs8_add_minmax_params`` plus the clamp node of a fused activation."""
    out_type: int
    output_shape: tuple[int, ...]
    a_zero_point: int
    b_zero_point: int
    a_multiplier: int
    b_multiplier: int
    shift: int
    output_zero_point: int
    output_min: int
    output_max: int


def _float_bits_exponent(x: np.float32) -> int:
    return int((np.asarray(x, np.float32).view(np.uint32) >> 23) & 0xFF) - 127


def prepare_xnn_add_sub(ctx: OpContext, output_shape: tuple[int, ...], subtract: bool) -> XnnAddParams:
    a, b, out = ctx.input(0), ctx.input(1), ctx.output(0)
    so = np.float32(out.s)
    ra = np.float32(np.float32(a.s) / so)
    rb = np.float32(np.float32(-b.s if subtract else b.s) / so)
    mx = max(abs(ra), abs(rb))
    shift = 20 - _float_bits_exponent(np.float32(mx))

    def mult(r: np.float32) -> int:
        # lrintf(uint32_as_float(float_as_uint32(|r|) + (shift << 23))): |r| * 2^shift exactly.
        m = int(np.rint(np.float64(abs(r)) * 2.0 ** shift))
        return -m if np.signbit(r) else m

    act = int(ctx.options.get("fused_activation_function", 0))
    lo, hi = xnn_activation_bounds(act, out.s, out.zp, out.type)
    return XnnAddParams(out.type, output_shape, a.zp, b.zp, mult(ra), mult(rb), shift, out.zp, lo, hi)


def eval_xnn_add(p: XnnAddParams, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(x1.astype(np.int64), x2.astype(np.int64))
    acc = wrap_int32((1 << (p.shift - 1)) + (a - p.a_zero_point) * p.a_multiplier
                     + (b - p.b_zero_point) * p.b_multiplier)
    qmin, qmax = (0, 255) if p.out_type == UINT8 else (-128, 127)
    out = np.clip((acc >> p.shift) + p.output_zero_point, qmin, qmax)
    return np.clip(out, p.output_min, p.output_max).reshape(p.output_shape)


@dataclass(frozen=True)
class XnnMulParams:
    out_type: int
    output_shape: tuple[int, ...]
    a_zero_point: int
    b_zero_point: int
    scale: float           # float32 value
    output_zero_point: int
    output_min: int
    output_max: int


def prepare_xnn_mul(ctx: OpContext, output_shape: tuple[int, ...]) -> XnnMulParams:
    a, b, out = ctx.input(0), ctx.input(1), ctx.output(0)
    scale = np.float32(np.float32(np.float32(a.s) * np.float32(b.s)) / np.float32(out.s))
    act = int(ctx.options.get("fused_activation_function", 0))
    lo, hi = xnn_activation_bounds(act, out.s, out.zp, out.type)
    return XnnMulParams(out.type, output_shape, a.zp, b.zp, float(scale), out.zp, lo, hi)


def eval_xnn_mul(p: XnnMulParams, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(x1.astype(np.int64) - p.a_zero_point, x2.astype(np.int64) - p.b_zero_point)
    acc = (a * b).astype(np.float32)          # |acc| <= 65025: exact
    v = (acc * np.float32(p.scale)).astype(np.float32)
    qmin, qmax = (0, 255) if p.out_type == UINT8 else (-128, 127)
    v = np.clip(v, np.float32(qmin - p.output_zero_point), np.float32(qmax - p.output_zero_point))
    out = np.rint(v).astype(np.int64) + p.output_zero_point
    return np.clip(out, p.output_min, p.output_max).reshape(p.output_shape)


# ---------------------------------------------------------------------------
# LiteRT optimized ADD (NEON bodies)
# ---------------------------------------------------------------------------
def _add_vector_out(p, s: np.ndarray) -> np.ndarray:
    """Output stage shared by the 8-bit vector bodies: RDBPOT(vqrdmulh(sum)), vmovn_s32,
    + zp in int16, saturating narrow, activation clamp."""
    r = rdbpot(vqrdmulh(wrap_int32(s), p.output_multiplier), -p.output_shift)
    v = wrap16(wrap16(r) + p.output_offset)
    return np.clip(narrow_to_8bit(v, p.out_type), p.output_activation_min, p.output_activation_max)


def _add_elementwise_vector(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AddElementwiseInt8`` (and the int16 NEON body's input stage): one rounding."""
    x1 = vqrdmulh(vshl(a + p.input1_offset, p.left_shift + p.input1_shift), p.input1_multiplier)
    x2 = vqrdmulh(vshl(b + p.input2_offset, p.left_shift + p.input2_shift), p.input2_multiplier)
    return wrap_int32(x1 + x2)


def _add_scalar_broadcast_vector(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``AddScalarBroadcast`` (int8 and uint8) and uint8 ``AddElementwise``: the input
    shift is a flooring ``vshl`` after the rounding doubling multiply."""
    x1 = vshl(vqrdmulh(vshl(a + p.input1_offset, p.left_shift), p.input1_multiplier), p.input1_shift)
    x2 = vshl(vqrdmulh(vshl(b + p.input2_offset, p.left_shift), p.input2_multiplier), p.input2_shift)
    return wrap_int32(x1 + x2)


def eval_optimized_add(p, x1: np.ndarray, x2: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """LiteRT's optimized ADD for the general quantized path (``p`` is add.AddParams with
    kind "quantized", not subtract). ``reference`` is the reference kernel's result,
    used for the elements the scalar tails (or the generic broadcast loop) compute."""
    out_shape = reference.shape
    a, b = np.broadcast_arrays(x1.astype(np.int64), x2.astype(np.int64))
    if p.out_type == INT16:
        if not p.flat:
            return reference                      # BroadcastAdd6DSlow (reference)
        lanes = (np.arange(a.size) < 16 * (a.size // 16)).reshape(out_shape)
        if not lanes.any():
            return reference
        r = rdbpot(vqrdmulh(_add_elementwise_vector(p, a, b), p.output_multiplier), -p.output_shift)
        v = sat(np.clip(r + p.output_offset, p.output_activation_min, p.output_activation_max),
                -32768, 32767)
        return np.where(lanes, v, reference)
    body, lanes = optimized_add_8bit_plan(p, x1.shape, x2.shape, out_shape)
    if body is None:
        return reference
    return np.where(lanes, body(p, a, b), reference)


def optimized_add_8bit_plan(p, shape1: tuple[int, ...], shape2: tuple[int, ...],
                            out_shape: tuple[int, ...]):
    """Which vector body LiteRT's optimized int8/uint8 ADD runs and where:
    ``(body, lanes)`` with ``body(p, a, b)`` the vector lanes' result (int64 arrays in,
    int64 out) and ``lanes`` the output positions it computes; ``(None, None)`` when
    every element is the reference formula. The body is a pure function of the two
    input values (used for the 65536-entry tables, see _lut2d)."""
    layout = broadcast_layout(shape1, shape2) if not p.flat else broadcast_layout((1,), (1,))
    if layout.kind == "generic":
        return None, None
    if p.out_type == UINT8:
        lanes = layout.vector_lanes(out_shape, 8, 8)
        body = _add_body_scalar_broadcast
    else:
        lanes = layout.vector_lanes(out_shape, 16, 8)
        body = _add_body_scalar_broadcast if layout.scalar_kernel else _add_body_elementwise
    if not lanes.any():
        return None, None
    return body, lanes


def _add_body_scalar_broadcast(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _add_vector_out(p, _add_scalar_broadcast_vector(p, a, b))


def _add_body_elementwise(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _add_vector_out(p, _add_elementwise_vector(p, a, b))


# ---------------------------------------------------------------------------
# LiteRT optimized MUL (NEON bodies)
# ---------------------------------------------------------------------------
def eval_optimized_mul(p, x1: np.ndarray, x2: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """LiteRT's optimized MUL for int8/uint8 with one type (``p`` is mul.MulParams kind
    "quantized"); int16 is the reference kernel on this path."""
    if p.out_type == INT16:
        return reference
    body, lanes = optimized_mul_8bit_plan(p, x1.shape, x2.shape, reference.shape)
    if body is None:
        return reference
    a, b = np.broadcast_arrays(x1.astype(np.int64), x2.astype(np.int64))
    return np.where(lanes, body(p, a, b), reference)


def optimized_mul_8bit_plan(p, shape1: tuple[int, ...], shape2: tuple[int, ...],
                            out_shape: tuple[int, ...]):
    """``(body, lanes)`` of LiteRT's optimized int8/uint8 MUL, as
    :func:`optimized_add_8bit_plan`; ``(None, None)``: every element is the reference."""
    layout = broadcast_layout(shape1, shape2)
    if layout.kind == "generic":
        return None, None
    block = 16 if p.out_type == INT8 else 8
    lanes = layout.vector_lanes(out_shape, block, block)
    if not lanes.any():
        return None, None
    if p.out_type == UINT8 and layout.scalar_kernel:
        return _mul_body_wrapping_narrow, lanes
    return _mul_body_saturating_narrow, lanes


def _mul_vector_body(p, a: np.ndarray, b: np.ndarray, wrapping_narrow: bool) -> np.ndarray:
    """The 8-bit MUL vector body on int64 inputs: product, two roundings, narrow to
    int16 (``vmovn_s32`` wraps, ``vqmovn_s32`` saturates), + zp in int16, narrow to 8 bits."""
    prod = vshl((a + p.input1_offset) * (b + p.input2_offset), max(0, p.output_shift))
    r = rdbpot(vqrdmulh(prod, p.output_multiplier), max(0, -p.output_shift))
    r16 = wrap16(r) if wrapping_narrow else sat(r, -32768, 32767)
    v = wrap16(r16 + p.output_offset)
    return np.clip(narrow_to_8bit(v, p.out_type), p.output_activation_min, p.output_activation_max)


def _mul_body_wrapping_narrow(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _mul_vector_body(p, a, b, True)        # vmovn_s32 in the uint8 broadcast body


def _mul_body_saturating_narrow(p, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _mul_vector_body(p, a, b, False)       # vqmovn_s32


# ---------------------------------------------------------------------------
# Dispatch (called from add.py, sub.py, mul.py)
# ---------------------------------------------------------------------------
def for_add_sub(ctx: OpContext, base):
    """The params ADD/SUB prepare returns on ``ctx.numerics`` (``base`` = reference params)."""
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    if ctx.numerics == "xnnpack" and base.kind == "quantized" and xnn_takes_add_sub(ctx):
        return PathParams("xnnpack", "xnnpack", base,
                          prepare_xnn_add_sub(ctx, base.output_shape, base.subtract))
    if base.kind == "quantized" and not base.subtract and base.out_type in (INT8, UINT8, INT16):
        return PathParams(ctx.numerics, "litert-optimized", base)
    return PathParams(ctx.numerics, "reference", base)


def eval_add_sub(p: PathParams, x1: np.ndarray, x2: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "xnnpack":
        return [eval_xnn_add(p.extra, x1, x2).astype(_DTYPES[p.base.out_type])]
    ref = reference_eval(p.base, x1, x2)
    if p.how == "reference":
        return ref
    out = eval_optimized_add(p.base, x1, x2, ref[0].astype(np.int64))
    return [out.astype(ref[0].dtype)]


def for_mul(ctx: OpContext, base):
    """The params MUL prepare returns on ``ctx.numerics``."""
    if ctx.numerics not in ("optimized", "xnnpack"):
        return base
    if ctx.numerics == "xnnpack" and base.kind == "quantized" and xnn_takes_mul(ctx):
        return PathParams("xnnpack", "xnnpack", base, prepare_xnn_mul(ctx, base.output_shape))
    if base.kind == "quantized" and base.out_type in (INT8, UINT8):
        return PathParams(ctx.numerics, "litert-optimized", base)
    return PathParams(ctx.numerics, "reference", base)


def eval_mul(p: PathParams, x1: np.ndarray, x2: np.ndarray, reference_eval) -> list[np.ndarray]:
    if p.how == "xnnpack":
        return [eval_xnn_mul(p.extra, x1, x2).astype(_DTYPES[p.base.out_type])]
    ref = reference_eval(p.base, x1, x2)
    if p.how == "reference":
        return ref
    out = eval_optimized_mul(p.base, x1, x2, ref[0].astype(np.int64))
    return [out.astype(ref[0].dtype)]


_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}
