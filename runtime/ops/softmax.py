"""SOFTMAX: float32; int8/uint8 inputs with int8/uint8/int16 outputs (gemmlowp fixed
point); int16 (interpolated tables).

Mirrors ``SoftmaxPrepare<kReference>``/``SoftmaxEval<kReference>``
(``Register_SOFTMAX_REF``) in ``tflite/kernels/activations.cc``, ``reference/softmax.h``,
``PreprocessSoftmaxScaling``/``CalculateInputRadius`` in
``internal/quantization_util.cc`` and ``GetReciprocal`` in ``internal/common.h``.
The fixed-point exp and reciprocal are :mod:`._gemmlowp_fixedpoint`.

8-bit inputs (eq. 6 for QuantizeMultiplier)::

    real = min(beta * s_in * 2^26, 2^31 - 1)            # double
    input_multiplier, input_left_shift = QuantizeMultiplierGreaterThanOne(real)
    diff_min = -floor(31 * 2^26 / 2^input_left_shift)
    per row:  d = x - max(row)
      e[d] = exp_on_negative_values<5 integer bits>(SRDHM(d * 2^input_left_shift,
                                                           input_multiplier))   if d >= diff_min
      sum = sum over the row of Rescale<12>(e[d])        # Q12.19, int32 adds
      shifted_scale, num_bits_over_unit = GetReciprocal(sum, 12)
      out = clamp(RDBPOT(SRDHM(shifted_scale, e[d]), num_bits_over_unit + 31 - bits)
                  + qmin, qmin, qmax)                     if d >= diff_min, else qmin

``bits`` is 8 for int8/uint8 outputs and 16 for int16 outputs; the output zero point
is not read (it is ``qmin``: -128, 0 or -32768). LiteRT checks the int8 output
parameters (zero point -128, scale 1/256 within 0.1%) but not uint8 or int16 ones.

``QuantizeMultiplierGreaterThanOne`` CHECK-fails (SIGABRT, the whole process dies)
when ``beta * s_in * 2^26 <= 1``; ``prepare`` raises NumericsPathError for those
models instead. ``TFLITE_CHECK(0 <= exponent <= 31)`` in the kernel also aborts when
``sum`` overflows int32 (rows of more than 4096 elements near the maximum);
``eval`` raises NumericsPathError then.

int16 (``SoftmaxInt16``; zero points 0, output scale 1/32768 within 0.1%)::

    exp_lut = LUTPopulate<int16>(f64) of exp over [-10, 0];  recip_lut of 1/(1+x) over [0, 1]
    input_multiplier, input_left_shift = QuantizeMultiplier(f32(s_in * beta) / (10 / 65535))
    e = LUTLookup(clamp(MBQM(x - max, ...) + 32767, int16), exp_lut)
    sum = sum(e) (int32);  h = clz(sum)
    r = LUTLookup(clamp(((sum << (h - 1)) + 2^13 >> 14) - 3 * 2^15, int16), recip_lut)
    out = clamp((e * r + 2^(30 - h)) >> (31 - h), 0, 32767)

Float32 (``reference_ops::Softmax``): ``e = expf((x - max) * beta)`` in float32, summed
in order in float32, ``out = e / sum``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_greater_than_one,
                                  quantize_multiplier, wrap_int32)

from . import _paths_softmax
from ._common import FLOAT32, INT16, INT8, QMAX, QMIN, UINT8, OpContext, finite
from ._paths_common import PathParams
from ._gemmlowp_fixedpoint import (count_leading_zeros_u32, exp_on_negative_values,
                                   get_reciprocal, rdbpot, rescale, srdhm)
from ._lut import approx_f32, libm_f64, lut_lookup_int16, lut_populate_int16

NUMERICS = ("reference", "optimized", "xnnpack", "micro")  # micro: runtime/micro.py

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
_DTYPES = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16}


@dataclass(frozen=True)
class SoftmaxParams:
    kind: str                          # "float", "quantized", "int16"
    path: str = ""
    beta: float = 1.0
    input_multiplier: int = 0
    input_left_shift: int = 0
    diff_min: int = 0
    out_dtype: type = np.float32
    out_bits: int = 8
    out_min: int = 0
    out_max: int = 0
    exp_lut: np.ndarray | None = None
    one_over_one_plus_x_lut: np.ndarray | None = None
    # 8-bit "quantized": per-difference tables (see _diff_tables), index -(x - max(row))
    exps_by_diff: np.ndarray | None = None
    terms_by_diff: np.ndarray | None = None


def softmax_real_multiplier(beta: float, input_scale: float, input_integer_bits: int = 5) -> float:
    """The real multiplier of ``PreprocessSoftmaxScaling`` (in double):
    ``min(beta * s_in * 2^(31 - input_integer_bits), 2^31 - 1)``. LiteRT passes it to
    ``QuantizeMultiplierGreaterThanOne``, which aborts unless it exceeds 1."""
    return min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)),
               float((1 << 31) - 1))


@functools.lru_cache(maxsize=1)
def _int16_tables() -> tuple[np.ndarray, np.ndarray]:
    """The two int16 SOFTMAX tables (they do not depend on the model): exp over [-10, 0]
    and 1/(1+x) over [0, 1], both with a symmetric [-1, 1] output range, in double."""
    f64 = np.float64
    exp_lut = lut_populate_int16(10.0 / 65535, 32767, 2.0 / 65535, 0,
                                 lambda v: libm_f64("exp", v), f64)
    recip_lut = lut_populate_int16(1.0 / 65535, -32768, 2.0 / 65535, 0,
                                   lambda v: 1.0 / (1.0 + np.asarray(v, f64)), f64)
    exp_lut.flags.writeable = False
    recip_lut.flags.writeable = False
    return exp_lut, recip_lut


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """``CalculateInputRadius``: floor((2^bits - 1) * 2^(total - bits) / 2^left_shift)."""
    v = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
         / float(1 << input_left_shift))
    return int(math.floor(v))


def _near(scale, denominator: int) -> bool:
    """``TF_LITE_ENSURE_NEAR(scale, 1.f / d, 0.001f * 1.f / d)``, in float32."""
    f32 = np.float32
    target = f32(1) / f32(denominator)
    return bool(abs(f32(scale) - target) <= f32(f32(f32(0.001) * f32(1)) / f32(denominator)))


def prepare(ctx: OpContext) -> SoftmaxParams | PathParams:
    # "optimized"/"xnnpack" (8-bit): LiteRT's float lookup table, see _paths_softmax.
    return _paths_softmax.for_softmax(False, ctx, _prepare_reference)


def _prepare_reference(ctx: OpContext) -> SoftmaxParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(len(x.shape) >= 1, "input must have at least one dimension", ".inputs[0]")
    beta = float(np.float32(ctx.options.get("beta", 1.0)))
    if x.type == FLOAT32:
        ctx.check(out.type == FLOAT32, f"output type {out.type_name} differs from input type FLOAT32")
        return SoftmaxParams(kind="float", beta=beta, path=ctx.path)
    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    ctx.require_quantized(x)
    finite(ctx, beta, "beta")
    if out.type != x.type and (x.type == INT16 or out.type != INT16):
        supported = x.type_name + ("" if x.type == INT16 else ", INT16")
        raise ctx.unsupported(f"{out.type_name} output for {x.type_name} input (supported: "
                              f"{supported})")
    ctx.require_quantized(out)
    if x.type == INT8 and out.type == INT8:
        ctx.check(out.zp == -128, f"int8 SOFTMAX needs output zero point -128, has {out.zp}",
                  ".outputs[0]")
        ctx.check(_near(out.scale[0], 256), f"int8 SOFTMAX needs output scale 1/256, has {out.s!r}",
                  ".outputs[0]")
    if x.type == INT16:
        ctx.check(out.zp == 0, f"int16 SOFTMAX needs output zero point 0, has {out.zp}", ".outputs[0]")
        ctx.check(_near(out.scale[0], 32768), f"int16 SOFTMAX needs output scale 1/32768, has "
                  f"{out.s!r}", ".outputs[0]")
        ctx.check(x.zp == 0, f"int16 SOFTMAX needs input zero point 0, has {x.zp}", ".inputs[0]")
        exp_lut, recip_lut = _int16_tables()
        with np.errstate(over="ignore"):
            real = float(np.float32(np.float32(x.scale[0]) * np.float32(beta))) / (10.0 / 65535.0)
        if ctx.numerics == "micro":  # TFLM softmax_common.cc: float32 tables, double multiplier
            from quantcore.runtime.micro import softmax_int16_tables
            exp_lut, recip_lut = softmax_int16_tables()
            real = float(np.float32(x.scale[0])) * float(np.float32(beta)) / (10.0 / 65535.0)
        m, shift = quantize_multiplier(finite(ctx, real, "input scale * beta"))
        return SoftmaxParams(kind="int16", path=ctx.path, beta=beta, input_multiplier=m,
                             input_left_shift=shift, out_dtype=np.int16, exp_lut=exp_lut,
                             one_over_one_plus_x_lut=recip_lut)
    real = softmax_real_multiplier(beta, x.s, SCALED_DIFF_INTEGER_BITS)
    if not real > 1.0:
        raise NumericsPathError(
            f"{ctx.path}: SOFTMAX: LiteRT's reference kernel aborts the process on this model "
            f"(beta * input_scale * 2^26 = {real:.6g} <= 1 fails the CHECK in "
            f"QuantizeMultiplierGreaterThanOne; input scale {x.s:.6g}, beta {beta:.6g}). The "
            f"optimized path (numerics=\"optimized\", LiteRT's lookup-table softmax) can run it.")
    m, shift = quantize_multiplier(real)   # QuantizeMultiplierGreaterThanOne, real > 1
    diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, shift)
    bits = 16 if out.type == INT16 else 8
    exps, terms = _diff_tables(m, shift, diff_min)
    return SoftmaxParams(kind="quantized", path=ctx.path, beta=beta, input_multiplier=m,
                         input_left_shift=shift, diff_min=diff_min, out_dtype=_DTYPES[out.type],
                         out_bits=bits, out_min=QMIN[out.type], out_max=QMAX[out.type],
                         exps_by_diff=exps, terms_by_diff=terms)


@functools.lru_cache(maxsize=64)
def _diff_tables(input_multiplier: int, input_left_shift: int, diff_min: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The per-element part of the 8-bit kernel as two 256-entry tables indexed by
    ``k = max(row) - x`` (0..255 for 8-bit inputs), computed with the kernel's own
    fixed-point code on every ``d = -k``::

        exps[k]  = exp_on_negative_values<5>(MBQM_GreaterThanOne(d, M, shift))  if d >= diff_min else 0
        terms[k] = Rescale<12>(exps[k])                                         if d >= diff_min else 0

    A zero ``exps`` entry makes the output stage give exactly ``qmin`` (SRDHM(s, 0) = 0),
    which is what the kernel writes for ``d < diff_min``.
    """
    diff = -np.arange(256, dtype=np.int64)
    valid = diff >= diff_min
    rescaled = multiply_by_quantized_multiplier_greater_than_one(diff, input_multiplier, input_left_shift)
    exps = np.where(valid, exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS), 0)
    terms = np.where(valid, rescale(exps, 0, ACCUMULATION_INTEGER_BITS), 0)
    exps.flags.writeable = False
    terms.flags.writeable = False
    return exps, terms


_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1


def _wrap32(v: int) -> int:
    return ((v + 2**31) & 0xFFFFFFFF) - 2**31


def _srdhm_int(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul on Python ints (as quantcore.fixedpoint)."""
    if a == _I32_MIN and b == _I32_MIN:
        return _I32_MAX
    return (a * b + (1 << 30)) >> 31


def _saturating_shift_left_int(x: int, exponent: int) -> int:
    threshold = (1 << (31 - exponent)) - 1
    return _I32_MAX if x > threshold else _I32_MIN if x < -threshold else x << exponent


def get_reciprocal_int(x: int, x_integer_digits: int) -> tuple[int, int]:
    """``GetReciprocal`` (common.h) on one Python int: the same steps as
    ``_gemmlowp_fixedpoint.get_reciprocal`` (normalise by the leading zeros, then
    gemmlowp's ``one_over_one_plus_x_for_x_in_0_1``: a half-sum and three Newton-Raphson
    iterations in Q2.29, then ``Rescale<0>``) without NumPy's per-call overhead, for
    softmaxes with a few rows. Returns (Q0.31 shifted_scale, num_bits_over_unit)."""
    u = int(x) & 0xFFFFFFFF
    headroom_plus_one = 32 - u.bit_length()
    shifted = (u << min(headroom_plus_one, 31)) & 0xFFFFFFFF
    a = _wrap32(shifted - (1 << 31))
    s = a + _I32_MAX                                   # RoundingHalfSum(a, One())
    t = s + (1 if s >= 0 else -1)
    half_denominator = t // 2 if t >= 0 else -((-t) // 2)
    r = _wrap32(1515870810 + _srdhm_int(half_denominator, -1010580540))   # 48/17 - 32/17 d
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm_int(half_denominator, r))
        r = _wrap32(r + _saturating_shift_left_int(_srdhm_int(r, one_minus), 2))
    return _saturating_shift_left_int(r, 1), x_integer_digits - headroom_plus_one


def _softmax_float(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    xf = np.asarray(x, np.float32)
    mx = np.max(xf, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN inputs or beta: NaN, as in C
        e = approx_f32("expf", ((xf - mx).astype(np.float32) * np.float32(p.beta)).astype(np.float32))
        total = np.add.accumulate(e, axis=-1, dtype=np.float32)[..., -1:]
        return (e / total).astype(np.float32)


#: Rows up to which the per-row reciprocal runs on Python ints (get_reciprocal_int).
_SCALAR_RECIPROCAL_ROWS = 8


def _softmax_quantized(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    """8-bit input: per-element exps from the 256-entry tables, the row sums and
    reciprocals, then the output stage (per element, or as one 256-entry table per
    row when rows are longer than 256)."""
    xi = np.asarray(x)
    k = np.max(xi, axis=-1, keepdims=True).astype(np.intp) - xi       # 0..255
    sum_of_exps = wrap_int32(np.sum(p.terms_by_diff[k], axis=-1, keepdims=True))
    rows = sum_of_exps.size
    if rows <= _SCALAR_RECIPROCAL_ROWS:
        pairs = [get_reciprocal_int(int(v), ACCUMULATION_INTEGER_BITS) for v in sum_of_exps.reshape(-1)]
        shifted_scale = np.array([q for q, _ in pairs], np.int64).reshape(sum_of_exps.shape)
        num_bits_over_unit = np.array([n for _, n in pairs], np.int64).reshape(sum_of_exps.shape)
    else:
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    exponent = num_bits_over_unit + 31 - p.out_bits
    if np.any((exponent < 0) | (exponent > 31)):
        raise NumericsPathError(
            f"{p.path}: SOFTMAX: LiteRT's reference kernel aborts the process on this input: the "
            f"fixed-point sum of exponentials of a row overflows int32 (TFLITE_CHECK(0 <= exponent "
            f"<= 31) fails). The optimized path (numerics=\"optimized\") can run it.")
    if xi.shape[-1] > 256:    # output per row as a table over the 256 differences
        out = _output_stage(p, shifted_scale, p.exps_by_diff, exponent)
        return np.take_along_axis(out, k, axis=-1)
    return _output_stage(p, shifted_scale, p.exps_by_diff[k], exponent)


def _output_stage(p: SoftmaxParams, shifted_scale: np.ndarray, exps: np.ndarray,
                  exponent: np.ndarray) -> np.ndarray:
    """``clamp(RDBPOT(SRDHM(shifted_scale, exps), exponent) + qmin, qmin, qmax)``.

    ``shifted_scale`` (a Q0.31 reciprocal in [1/2, 1]) and ``exps`` are never negative,
    so SRDHM cannot saturate and is ``(s * e + 2^30) >> 31``, and RDBPOT of a
    non-negative value rounds half up: ``(v + (2^exponent >> 1)) >> exponent``; the
    result is >= 0, so only the upper clamp can act. Negative operands (not produced
    by GetReciprocal) take the general gemmlowp functions.
    """
    if np.any(shifted_scale < 0):
        unsat = rdbpot(srdhm(shifted_scale, exps), exponent)
        return np.clip(unsat + p.out_min, p.out_min, p.out_max).astype(p.out_dtype)
    high = (shifted_scale * exps + (1 << 30)) >> 31
    high += (np.int64(1) << exponent) >> 1
    high >>= exponent
    high += p.out_min
    np.minimum(high, p.out_max, out=high)
    return high.astype(p.out_dtype)


def _softmax_int16(p: SoftmaxParams, x: np.ndarray) -> np.ndarray:
    xi = np.asarray(x, np.int64)
    diff = xi - np.max(xi, axis=-1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift)
    sym = np.clip(scaled + 32767, -32768, 32767)
    exps = lut_lookup_int16(sym, p.exp_lut)
    sum_of_exps = wrap_int32(np.sum(exps, axis=-1, keepdims=True))
    headroom_plus_one = count_leading_zeros_u32(sum_of_exps)
    shifted_sum = wrap_int32(((sum_of_exps << np.maximum(headroom_plus_one - 1, 0)) + (1 << 13)) >> 14)
    sym_shifted_sum = np.clip(shifted_sum - ((1 << 15) + (1 << 16)), -32768, 32767)
    reciprocal = lut_lookup_int16(sym_shifted_sum, p.one_over_one_plus_x_lut)
    right_shift = 31 - headroom_plus_one
    rnd = np.int64(1) << np.maximum(right_shift - 1, 0)
    result = wrap_int32((exps * reciprocal + rnd) >> right_shift)
    return np.clip(result, 0, 32767).astype(np.int16)


def eval(p: SoftmaxParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if x.size == 0:  # nothing to normalize (LiteRT's loops run zero times)
        return [np.zeros(x.shape, getattr(p.base if isinstance(p, PathParams) else p, "out_dtype"))]
    if isinstance(p, PathParams):
        return _paths_softmax.eval_softmax(p, x, eval)
    if p.kind == "float":
        return [_softmax_float(p, x)]
    if p.kind == "int16":
        return [_softmax_int16(p, x)]
    return [_softmax_quantized(p, x)]
