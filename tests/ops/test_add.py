"""ADD against LiteRT BUILTIN_REF: float32, int32, int64, unquantized int16, and
quantized int8, uint8, int16 (general path and the power-of-two shift path), over
random broadcasts, log-uniform scales, full-range zero points, fused activations and
constructed rounding ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import ModelFormatError
from test_binary import (ACTS, PATTERNS, assert_kernel_matches_litert, binary_model, broadcast_shapes,
                         check_refused_like_litert, log_scale, quantized_case, random_values,
                         shape_cases, special_float_inputs, unquantized_case)

OP = "ADD"


def _general_multiplier(s1, s2, so, left_shift):
    twice = float(np.float32(2) * max(np.float32(s1), np.float32(s2)))
    return twice / float(np.float32(np.float32(1 << left_shift) * np.float32(so)))


@examples(60)
@given(shape_cases)
def test_add_float32_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.float32, c["pattern"], c["act"]), "reference")


@examples(15)
@given(shape_cases)
def test_add_float32_special_values_vs_litert_ref(oracle, c):
    """inf + -inf = NaN, NaN passes every clamp, and overflow to +-inf is clamped to
    +-FLT_MAX even without an activation (CalculateActivationRange<float>)."""
    rng = np.random.default_rng(c["seed"])
    model, inputs = unquantized_case(rng, OP, np.float32, c["pattern"], c["act"])
    s1, s2 = inputs[0].shape, inputs[1].shape
    assert_matches_litert(oracle, model, special_float_inputs(rng, s1, s2), "reference")


@examples(40)
@given(shape_cases, st.sampled_from(["int32", "int64"]))
def test_add_int32_int64_vs_litert_ref(oracle, c, dtype):
    """Full-range values: sums wrap (two's complement) before the activation clamp."""
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"]),
                          "reference")


def test_add_int16_unquantized_vs_litert_ref(oracle):
    """No quantization on an int16 ADD: plain wrapping int16 addition (broadcast loop)."""
    rng = np.random.default_rng(16)
    for i in range(20):
        model, inputs = unquantized_case(rng, OP, np.int16, PATTERNS[i % 7], ACTS[i % 4])
        assert_matches_litert(oracle, model, inputs, "reference")


def test_add_int16_unquantized_kernel_vs_litert_ref(oracle):
    """The same cases, bypassing the schema validator: the kernel itself matches."""
    rng = np.random.default_rng(16)
    for i in range(20):
        model, inputs = unquantized_case(rng, OP, np.int16, PATTERNS[i % 7], ACTS[i % 4])
        assert_kernel_matches_litert(oracle, model, inputs)


@examples(80)
@given(shape_cases, st.sampled_from(["int8", "uint8"]))
def test_add_int8_uint8_vs_litert_ref(oracle, c, dtype):
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-5, 2.0))
    assume(_general_multiplier(*scales, 20) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"],
                                                  scales), "reference")


@examples(60)
@given(shape_cases, st.sampled_from(["pot_false", "absent", "not_pot"]))
def test_add_int16_general_vs_litert_ref(oracle, c, how):
    """The general int16 path (left_shift 15): pot_scale_int16 false, the options table
    absent (LiteRT then reads pot_scale_int16 as false), or scales not powers of two."""
    rng = np.random.default_rng(c["seed"])
    if how == "not_pot":
        scales = tuple(log_scale(rng, 1e-5, 1.0) for _ in range(3))
        options = None
    else:
        scales = tuple(float(2.0 ** int(rng.integers(-16, 1))) for _ in range(3))
        options = {"pot_scale_int16": False} if how == "pot_false" else "absent"
    act = "NONE" if options == "absent" else c["act"]
    assume(_general_multiplier(*scales, 15) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.int16, c["pattern"], act, scales,
                                                  options=options), "reference")


pot_cases = st.fixed_dictionaries(dict(
    out_exp=st.integers(-15, 0), shift=st.integers(0, 31), shifted=st.sampled_from([0, 1]),
    pattern=st.sampled_from(["same", "flat_extended"]), act=st.sampled_from(ACTS),
    seed=st.integers(0, 2**31)))


@examples(60)
@given(pot_cases)
def test_add_int16_pot_vs_litert_ref(oracle, c):
    """Power-of-two scales with pot_scale_int16: one input is shifted right by up to 31
    bits (int16 RoundingDivideByPOT; from 16 bits on it returns +-1), then a saturating add."""
    rng = np.random.default_rng(c["seed"])
    so = 2.0 ** c["out_exp"]
    scales = [so, so, so]
    scales[c["shifted"]] = 2.0 ** (c["out_exp"] - c["shift"])
    model, inputs = quantized_case(rng, OP, np.int16, c["pattern"], c["act"], tuple(scales))
    inputs[c["shifted"]].flat[:4] = [0, -1, 1, -32768][: inputs[c["shifted"]].size]
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(20)
@given(shape_cases, st.integers(-12, 0), st.sampled_from([-1.5e-3, -6e-4, 3e-4, 8e-4, 1.5e-3]))
def test_add_int16_near_pot_scales_vs_litert_ref(oracle, c, e, rel):
    """CheckedLog2 accepts a scale whose log2 is within 1e-3 of an integer, so a
    scale 0.06% off a power of two still takes the shift-only path (and 0.1% does not)."""
    rng = np.random.default_rng(c["seed"])
    s = float(np.float32(2.0 ** e * 2.0 ** rel))
    scales = (s, 2.0 ** e, 2.0 ** e) if rng.random() < 0.5 else (2.0 ** e, 2.0 ** e, s)
    assume(_general_multiplier(*scales, 15) < 1)
    model, inputs = quantized_case(rng, OP, np.int16, "same", c["act"], scales)
    assert_matches_litert(oracle, model, inputs, "reference")


tie_cases = st.fixed_dictionaries(dict(
    e1=st.integers(-3, 3), e2=st.integers(-3, 3), eo=st.integers(-1, 4),
    dtype=st.sampled_from(["int8", "uint8", "int16"]), pattern=st.sampled_from(PATTERNS[:-1]),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


@examples(70)
@given(tie_cases)
def test_add_rounding_ties_vs_litert_ref(oracle, c):
    """Scales that are powers of two apart make every multiplier a power of two, so the
    exact result x.5 occurs often and both rounding steps meet exact ties."""
    rng = np.random.default_rng(c["seed"])
    base = log_scale(rng, 1e-3, 1e-1)
    scales = (base * 2.0 ** c["e1"], base * 2.0 ** c["e2"], base * 2.0 ** (max(c["e1"], c["e2"]) + c["eo"]))
    dtype = np.dtype(c["dtype"]).type
    options = {"pot_scale_int16": False} if dtype is np.int16 else None
    model, inputs = quantized_case(rng, OP, dtype, c["pattern"], c["act"], scales, options=options)
    assert_matches_litert(oracle, model, inputs, "reference")


def test_add_int8_ties_are_exercised(oracle):
    """The tie construction really reaches exact halves (both signs) before rounding, and
    LiteRT's ADD rounds them away from zero (gemmlowp RoundingDivideByPOT)."""
    rng = np.random.default_rng(0)
    s = float(np.float32(0.01))      # s_out = 2 s exactly in float32
    z1, z2, zo = 3, -7, 5
    x1 = rng.integers(-128, 128, 4096)
    x2 = rng.integers(-128, 128, 4096)
    exact = ((x1 - z1) * s + (x2 - z2) * s) / (2 * s)
    frac = np.abs(exact - np.trunc(exact))
    assert np.sum(np.isclose(frac, 0.5) & (exact > 0)) > 500
    assert np.sum(np.isclose(frac, 0.5) & (exact < 0)) > 500
    model = binary_model(OP, np.int8, [4096], [4096], q1=(s, z1), q2=(s, z2), qo=(2 * s, zo))
    out = run_ours(model, [x1.astype(np.int8), x2.astype(np.int8)]).get_tensor(2)
    ref = np.clip(np.where(exact >= 0, np.floor(exact + 0.5), np.ceil(exact - 0.5)) + zo, -128, 127)
    np.testing.assert_array_equal(out, ref)   # ties away from zero
    theirs = oracle.run(model, [x1.astype(np.int8), x2.astype(np.int8)], "reference")
    np.testing.assert_array_equal(theirs.outputs[0], ref)


@examples(15)
@given(shape_cases, st.sampled_from(["int8", "float32"]))
def test_add_constant_second_input_vs_litert_ref(oracle, c, dtype):
    """A constant operand (a folded bias), as converters emit."""
    rng = np.random.default_rng(c["seed"])
    dt = np.dtype(dtype).type
    s1, s2 = broadcast_shapes(rng, c["pattern"])
    q = dict(q1=(0.02, -3), q2=(0.05, 10), qo=(0.06, 1)) if dt is np.int8 else {}
    model = binary_model(OP, dt, s1, s2, act=c["act"], const2=random_values(rng, s2, dt), **q)
    assert_matches_litert(oracle, model, [random_values(rng, s1, dt)], "reference")


# ---------------------------------------------------------------------------
# Models LiteRT refuses or aborts on
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_add_output_scale_too_small_refused(oracle, dtype):
    """Output multiplier >= 1: QuantizeMultiplierSmallerThanOneExp CHECK aborts LiteRT."""
    model = binary_model(OP, dtype, [4], [4], q1=(1.0, 0), q2=(0.5, 0), qo=(1e-7, 0),
                         options={"pot_scale_int16": False})
    inputs = [np.ones(4, dtype), np.ones(4, dtype)]
    assert oracle.run(model, inputs, "reference").aborted
    with pytest.raises(ModelFormatError, match="too small"):
        run_ours(model, inputs)


def test_add_int16_pot_broadcast_refused(oracle):
    """The shift-only int16 ADD has no broadcast loop: MatchingElementsSize aborts."""
    model = binary_model(OP, np.int16, [2, 5], [5], q1=(2.0**-10, 0), q2=(2.0**-12, 0), qo=(2.0**-10, 0))
    inputs = [np.ones((2, 5), np.int16), np.ones(5, np.int16)]
    assert oracle.run(model, inputs, "reference").aborted
    with pytest.raises(ModelFormatError, match="cannot broadcast"):
        run_ours(model, inputs)


@pytest.mark.parametrize("scales", [(2.0**-12, 2.0**-12, 2.0**-10), (2.0**-8, 2.0**-12, 2.0**-10)])
def test_add_int16_pot_shift_rules_refused(oracle, scales):
    """Both inputs shifted, or an input scale above the output scale: LiteRT's Prepare fails."""
    model = binary_model(OP, np.int16, [4], [4], q1=(scales[0], 0), q2=(scales[1], 0), qo=(scales[2], 0))
    check_refused_like_litert(oracle, model, [np.ones(4, np.int16)] * 2, ModelFormatError)


def test_add_int16_nonzero_zero_point_refused(oracle):
    model = binary_model(OP, np.int16, [4], [4], q1=(0.01, 3), q2=(0.01, 0), qo=(0.02, 0))
    check_refused_like_litert(oracle, model, [np.ones(4, np.int16)] * 2, ModelFormatError)
