"""ADD: float32, int32, int64, int16 without quantization, and quantized int8, uint8
and int16 (general scales, and the power-of-two "pot_scale_int16" shift-only path),
with broadcasting up to 8 dimensions and fused activations.

Mirrors ``tflite/kernels/add.cc`` (Prepare: multipliers and the choice of the int16
path; Eval: which kernel runs) and the reference kernels
``tflite/kernels/internal/reference/add.h`` (float, int32/int64, uint8 and int16) and
``reference/integer_ops/add.h`` (int8), in google-ai-edge/LiteRT.

Quantized arithmetic, general path (``left_shift`` 20 for 8-bit, 15 for int16)::

    twice_max_input_scale = 2 * max(s1, s2)                       (float32, exact)
    input{1,2}_multiplier = s{1,2} / twice_max_input_scale         (double, < 1)
    output_multiplier     = twice_max_input_scale / ((1 << left_shift) * s_out)
    scaled_i = MBQM_SmallerThanOneExp((x_i - zp_i) << left_shift, m_i, shift_i)
    out = clamp(MBQM_SmallerThanOneExp(scaled_1 + scaled_2, m_out, shift_out) + zp_out)

where ``MBQM_SmallerThanOneExp(x, m, s) = RoundingDivideByPOT(SRDHM(x, m), -s)``. An
output multiplier of 1 or more makes LiteRT abort (``QuantizeMultiplierSmallerThanOneExp``
CHECK), so such a model is refused.

int16 power-of-two path: taken when the options table is present with
``pot_scale_int16`` (schema default true) AND all three scales pass ``CheckedLog2``
(within 1e-3 of a power of two in log2); an absent options table gives
``pot_scale_int16 = false``. Zero points must be 0. One input is shifted right
(RoundingDivideByPOT on int16) by the difference of log2 scales and the two are added
with int16 saturation; LiteRT requires ``shift1 == 0 or shift2 == 0`` and both <= 0.
This path has no broadcasting: LiteRT aborts (``MatchingElementsSize``) unless both
inputs and the output have the same number of elements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from quantcore.fixedpoint import (quantize_multiplier, rounding_divide_by_pot,
                                  saturating_rounding_doubling_high_mul, wrap_int32)

from ._broadcast import (binary_shapes, check_binary_io, check_output_type, checked_log2,
                         clamp_float, flat_positions, float_activation_range, int_activation_range,
                         quantized_activation_range, rounding_divide_by_pot_int16,
                         rounding_divide_by_pot_x86, to_dtype, wrap, wrapping_int64)
from . import _lut2d, _paths_binary
from ._common import FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext, TensorInfo
from ._paths_common import PathParams

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class AddParams:
    kind: str                     # "float", "int", "quantized", "pot_int16"
    out_type: int
    output_shape: tuple[int, ...]
    flat: bool                    # LiteRT's flat (non-broadcast) loop
    output_activation_min: float = 0
    output_activation_max: float = 0
    left_shift: int = 0
    input1_offset: int = 0
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_offset: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    subtract: bool = False        # SUB shares this kernel with input 2 negated
    # int8/uint8 "quantized": the 65536-entry table form, built on demand (_lut2d)
    lut: _lut2d.LazyBinaryTable | None = field(default=None, compare=False, repr=False)


def mbqm_smaller_than_one_exp(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (double rounding), shift <= 0."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def general_multipliers(ctx: OpContext, a: TensorInfo, b: TensorInfo, out: TensorInfo,
                        left_shift: int) -> tuple[tuple[int, int], tuple[int, int], float]:
    """Input multipliers (QuantizeMultiplierSmallerThanOneExp) and the real output
    multiplier, computed as add.cc/sub.cc do (float32 products, double quotients)."""
    with np.errstate(over="ignore"):  # overflows are checked, or give a 0 multiplier as in C
        twice_max = float(np.float32(2) * max(np.float32(a.s), np.float32(b.s)))
        ctx.check(np.isfinite(twice_max), "input scales overflow float32 when doubled")
        m1 = quantize_multiplier(a.s / twice_max)
        m2 = quantize_multiplier(b.s / twice_max)
        real_output = twice_max / float(np.float32(np.float32(1 << left_shift) * np.float32(out.s)))
    return m1, m2, real_output


def prepare_int16_pot(ctx: OpContext, a: TensorInfo, b: TensorInfo, out: TensorInfo) -> tuple[int, int]:
    """Shifts of the power-of-two int16 path (log2 differences, LiteRT's checks)."""
    _, l1 = checked_log2(a.s)
    _, l2 = checked_log2(b.s)
    _, lo = checked_log2(out.s)
    s1, s2 = l1 - lo, l2 - lo
    ctx.check(s1 == 0 or s2 == 0, f"power-of-two int16 path: one input must have the output's scale "
              f"(input shifts {s1}, {s2})")
    ctx.check(s1 <= 0 and s2 <= 0, f"power-of-two int16 path: input scales must not be larger than the "
              f"output scale (input shifts {s1}, {s2})")
    ctx.check(max(-s1, -s2) <= 31, f"power-of-two int16 path: a shift of {max(-s1, -s2)} bits is "
              "undefined behaviour in LiteRT's RoundingDivideByPOT")
    return s1, s2


def uses_pot_int16(ctx: OpContext, a: TensorInfo, b: TensorInfo, out: TensorInfo) -> bool:
    """add.cc/sub.cc: the shift-only path needs ``pot_scale_int16`` (false when the options
    table is absent) and all three scales within 1e-3 (log2) of a power of two."""
    if not ctx.options.get("pot_scale_int16", False):
        return False
    return all(checked_log2(t.s)[0] for t in (a, b, out))


def prepare(ctx: OpContext) -> AddParams | PathParams:
    # Other numerics paths: see _paths_binary (LiteRT's NEON kernels, XNNPACK).
    return _paths_binary.for_add_sub(ctx, prepare_add_sub(ctx, subtract=False))


def prepare_add_sub(ctx: OpContext, *, subtract: bool) -> AddParams:
    """Prepare of add.cc (``subtract=False``) and sub.cc (``subtract=True``).

    Differences (sub.cc): float/int32/int64 choose the broadcast loop by
    ``HaveSameShapes``; there is no unquantized int16 SUB; the power-of-two int16 SUB
    broadcasts; an output multiplier above 1 is encoded with
    ``QuantizeMultiplierGreaterThanOne`` instead of aborting.
    """
    a, b, out = check_binary_io(ctx)
    check_output_type(ctx, a, out)
    t = a.type
    op = "SUB" if subtract else "ADD"
    common = dict(out_type=t, subtract=subtract)
    if t == FLOAT32 or t in (INT32, INT64) or (t == INT16 and not out.quantized and not subtract):
        if t == INT16:
            flat_test = "never"         # add.cc: BroadcastAdd6DSlow<int16_t, true> always
        else:
            flat_test = "same" if subtract else "extended"
        sh = binary_shapes(ctx, a, b, flat_test=flat_test)
        if t == FLOAT32:
            lo, hi = float_activation_range(ctx)
            kind = "float"
        else:
            lo, hi = int_activation_range(ctx, t)
            kind = "int"
        return AddParams(kind=kind, output_shape=sh.output_shape, flat=sh.flat,
                         output_activation_min=lo, output_activation_max=hi, **common)
    ctx.check_type(a, (FLOAT32, INT32, INT64, INT8, UINT8, INT16), "input")
    for x in (a, b, out):
        ctx.require_quantized(x)
    lo, hi = quantized_activation_range(ctx, out)
    sh = binary_shapes(ctx, a, b, flat_test="extended")
    if t == INT16:
        ctx.check(a.zp == 0 and b.zp == 0 and out.zp == 0,
                  f"int16 {op} needs zero points 0 (symmetric int16)")
        if uses_pot_int16(ctx, a, b, out):
            s1, s2 = prepare_int16_pot(ctx, a, b, out)
            flat = sh.flat
            if not subtract:
                n = [int(np.prod(s, dtype=np.int64)) for s in (a.shape, b.shape, sh.output_shape)]
                ctx.check(n[0] == n[1] == n[2], "the power-of-two int16 ADD cannot broadcast "
                          f"{list(a.shape)} with {list(b.shape)} (LiteRT aborts: element counts differ)")
                flat = True
            return AddParams(kind="pot_int16", output_shape=sh.output_shape, flat=flat,
                             output_activation_min=lo, output_activation_max=hi,
                             input1_shift=s1, input2_shift=s2, **common)
    left_shift = 15 if t == INT16 else 20
    (m1, e1), (m2, e2), real_output = general_multipliers(ctx, a, b, out, left_shift)
    if subtract and real_output > 1.0:
        mo, eo = quantize_multiplier(real_output)     # QuantizeMultiplierGreaterThanOne
    else:
        ctx.check(0.0 < real_output < 1.0,
                  f"output multiplier 2*max(input scales)/(2^{left_shift}*output scale) = "
                  f"{real_output:.9g} is not below 1: the output scale is too small for these input "
                  "scales (LiteRT aborts in QuantizeMultiplierSmallerThanOneExp)")
        mo, eo = quantize_multiplier(real_output)
    lut = None
    if t in (INT8, UINT8):
        dt = _DTYPES[t]
        lut = _lut2d.LazyBinaryTable(dt, dt, dt)
    return AddParams(kind="quantized", output_shape=sh.output_shape, flat=sh.flat,
                     output_activation_min=lo, output_activation_max=hi, left_shift=left_shift,
                     input1_offset=-a.zp, input1_multiplier=m1, input1_shift=e1,
                     input2_offset=-b.zp, input2_multiplier=m2, input2_shift=e2,
                     output_offset=out.zp, output_multiplier=mo, output_shift=eo, lut=lut, **common)


def eval_quantized(p: AddParams, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The general rescaling path of ADD and SUB (raw result before the dtype cast).

    SUB with an output multiplier above 1 has a positive ``output_shift``, which
    LiteRT still passes to ``MultiplyByQuantizedMultiplierSmallerThanOneExp``: a
    RoundingDivideByPOT by a negative exponent, undefined in C++. The wheel computes
    it as :func:`rounding_divide_by_pot_x86` describes: on the flat path the first
    ``4 * (n // 4)`` elements run in vector lanes (result ``zp_out +- 1`` by the sign of
    the high product), the rest and every broadcast element in scalar code.
    """
    a = wrap_int32((x1.astype(np.int64) + p.input1_offset) << p.left_shift)
    b = wrap_int32((x2.astype(np.int64) + p.input2_offset) << p.left_shift)
    a, b = np.broadcast_arrays(a, b)
    s1 = mbqm_smaller_than_one_exp(a, p.input1_multiplier, p.input1_shift)
    s2 = mbqm_smaller_than_one_exp(b, p.input2_multiplier, p.input2_shift)
    raw = wrap_int32(s1 - s2 if p.subtract else s1 + s2)
    if p.output_shift <= 0:
        scaled = mbqm_smaller_than_one_exp(raw, p.output_multiplier, p.output_shift)
    else:
        # SUB with an output multiplier > 1: RoundingDivideByPOT with a negative exponent.
        high = saturating_rounding_doubling_high_mul(raw, p.output_multiplier)
        if p.flat:
            n = high.size
            lanes = flat_positions(high.shape) < (n // 4) * 4
        else:
            lanes = False
        scaled = rounding_divide_by_pot_x86(high, -p.output_shift, vector_lane=lanes)
    return np.clip(scaled + p.output_offset, p.output_activation_min, p.output_activation_max)


def eval_pot_int16(p: AddParams, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """int16 shift-only path; both shifts <= 0 and one of them is 0."""
    a = rounding_divide_by_pot_int16(x1.astype(np.int64), -p.input1_shift)
    b = rounding_divide_by_pot_int16(x2.astype(np.int64), -p.input2_shift)
    a, b = np.broadcast_arrays(a, b)
    r = np.clip(a - b if p.subtract else a + b, -(2**15), 2**15 - 1)   # SaturatingAdd/Sub
    return np.clip(r, p.output_activation_min, p.output_activation_max)


def eval(p: AddParams | PathParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    """ADD/SUB on any numerics path: through the 8-bit tables once built (see
    :func:`table_plan`), else :func:`eval_direct` (``_lut2d.eval_binary``)."""
    return _lut2d.eval_binary(p, x1, x2, table_plan, eval_direct)


_GRID = (256, 256)
_DTYPES = {INT8: np.int8, UINT8: np.uint8}


def table_plan(p: AddParams | PathParams, shape1: tuple[int, ...], shape2: tuple[int, ...]
               ) -> _lut2d.TablePlan:
    """The 65536-entry tables of an int8/uint8 ADD/SUB for inputs of these shapes, each
    built from the path's own kernel code on every input pair:

    * reference: :func:`eval_quantized` (scalar code). SUB with an output multiplier
      above one on the flat path also gets the vector-lane table (``flat=True`` on the
      65536-element grid puts every element in a lane) for the first ``4 * (n // 4)``
      positions;
    * LiteRT optimized: the reference table, and the NEON body's table on the
      positions the vector loop computes (``_paths_binary.optimized_add_8bit_plan``);
    * XNNPACK: ``_paths_binary.eval_xnn_add`` (position-independent).
    """
    how = p.how if isinstance(p, PathParams) else "reference"
    base = p.base if isinstance(p, PathParams) else p
    if how == "xnnpack":
        xp = dataclasses.replace(p.extra, output_shape=_GRID)
        return _lut2d.TablePlan(_lut2d.TableSpec(("add-xnnpack", _lut2d.params_key(xp)),
                                                 lambda a, b: _paths_binary.eval_xnn_add(xp, a, b)))
    scalar = dataclasses.replace(base, output_shape=_GRID, flat=False)
    ref = _lut2d.TableSpec(("add-reference", _lut2d.params_key(base)),
                           lambda a, b: eval_quantized(scalar, a, b))
    if how == "litert-optimized":
        body, lanes = _paths_binary.optimized_add_8bit_plan(base, shape1, shape2, base.output_shape)
        if body is None:
            return _lut2d.TablePlan(ref)
        vec = _lut2d.TableSpec(("add-optimized", body.__name__, _lut2d.params_key(base)),
                               lambda a, b: body(base, a.astype(np.int64), b.astype(np.int64)))
        return _lut2d.TablePlan(ref, vec, lanes)
    if base.flat and base.output_shift > 0:
        n = int(np.prod(base.output_shape, dtype=np.int64))
        lanes = flat_positions(base.output_shape) < (n // 4) * 4
        vector = dataclasses.replace(base, output_shape=_GRID, flat=True)
        vec = _lut2d.TableSpec(("add-reference-vector-lanes", _lut2d.params_key(base)),
                               lambda a, b: eval_quantized(vector, a, b))
        return _lut2d.TablePlan(ref, vec, lanes)
    return _lut2d.TablePlan(ref)


def eval_direct(p: AddParams | PathParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:
    """ADD/SUB through the kernels themselves (no tables)."""
    if isinstance(p, PathParams):
        return _paths_binary.eval_add_sub(p, x1, x2, eval_direct)
    if p.kind == "float":
        with np.errstate(over="ignore", invalid="ignore"):
            r = x1.astype(np.float32) - x2.astype(np.float32) if p.subtract else \
                x1.astype(np.float32) + x2.astype(np.float32)
        return [clamp_float(np.broadcast_to(r, p.output_shape), p.output_activation_min,
                            p.output_activation_max)]
    if p.kind == "int":
        r = wrapping_int64(np.subtract if p.subtract else np.add, x1, x2)
        r = np.clip(wrap(r, p.out_type), p.output_activation_min, p.output_activation_max)
        return [to_dtype(np.broadcast_to(r, p.output_shape), p.out_type)]
    if p.kind == "pot_int16":
        return [to_dtype(eval_pot_int16(p, x1, x2).reshape(p.output_shape), p.out_type)]
    return [to_dtype(eval_quantized(p, x1, x2).reshape(p.output_shape), p.out_type)]
