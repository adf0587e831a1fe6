"""SUB against LiteRT BUILTIN_REF: float32, int32, int64, quantized int8, uint8, int16
(general and power-of-two paths), random broadcasts, scales, zero points, fused
activations, constructed ties, and the output-multiplier > 1 case."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import ModelFormatError
from test_binary import (ACTS, PATTERNS, binary_model, check_refused_like_litert, log_scale,
                         quantized_case, shape_cases, special_float_inputs, unquantized_case)

OP = "SUB"


def _real_output_multiplier(s1, s2, so, left_shift):
    twice = float(np.float32(2) * max(np.float32(s1), np.float32(s2)))
    return twice / float(np.float32(np.float32(1 << left_shift) * np.float32(so)))


@examples(60)
@given(shape_cases)
def test_sub_float32_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.float32, c["pattern"], c["act"]), "reference")


@examples(15)
@given(shape_cases)
def test_sub_float32_special_values_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    model, inputs = unquantized_case(rng, OP, np.float32, c["pattern"], c["act"])
    assert_matches_litert(oracle, model, special_float_inputs(rng, inputs[0].shape, inputs[1].shape),
                          "reference")


@examples(40)
@given(shape_cases, st.sampled_from(["int32", "int64"]))
def test_sub_int32_int64_vs_litert_ref(oracle, c, dtype):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"]),
                          "reference")


@examples(80)
@given(shape_cases, st.sampled_from(["int8", "uint8"]))
def test_sub_int8_uint8_vs_litert_ref(oracle, c, dtype):
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-5, 2.0))
    assume(_real_output_multiplier(*scales, 20) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"],
                                                  scales), "reference")


@examples(50)
@given(shape_cases, st.sampled_from(["pot_false", "absent", "not_pot"]))
def test_sub_int16_general_vs_litert_ref(oracle, c, how):
    rng = np.random.default_rng(c["seed"])
    if how == "not_pot":
        scales = tuple(log_scale(rng, 1e-5, 1.0) for _ in range(3))
        options = None
    else:
        scales = tuple(float(2.0 ** int(rng.integers(-16, 1))) for _ in range(3))
        options = {"pot_scale_int16": False} if how == "pot_false" else "absent"
    act = "NONE" if options == "absent" else c["act"]
    assume(_real_output_multiplier(*scales, 15) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.int16, c["pattern"], act, scales,
                                                  options=options), "reference")


pot_cases = st.fixed_dictionaries(dict(
    out_exp=st.integers(-15, 0), shift=st.integers(0, 31), shifted=st.sampled_from([0, 1]),
    pattern=st.sampled_from(PATTERNS[:-1]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


@examples(60)
@given(pot_cases)
def test_sub_int16_pot_vs_litert_ref(oracle, c):
    """Power-of-two int16 SUB, flat (Sub16) and broadcast (BroadcastSub16POTSlow)."""
    rng = np.random.default_rng(c["seed"])
    so = 2.0 ** c["out_exp"]
    scales = [so, so, so]
    scales[c["shifted"]] = 2.0 ** (c["out_exp"] - c["shift"])
    model, inputs = quantized_case(rng, OP, np.int16, c["pattern"], c["act"], tuple(scales))
    x = inputs[c["shifted"]]
    x.flat[: min(4, x.size)] = np.array([0, -1, 1, -32768], np.int16)[: min(4, x.size)]
    assert_matches_litert(oracle, model, inputs, "reference")


tie_cases = st.fixed_dictionaries(dict(
    e1=st.integers(-3, 3), e2=st.integers(-3, 3), eo=st.integers(-1, 4),
    dtype=st.sampled_from(["int8", "uint8", "int16"]), pattern=st.sampled_from(PATTERNS[:-1]),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


@examples(70)
@given(tie_cases)
def test_sub_rounding_ties_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    base = log_scale(rng, 1e-3, 1e-1)
    scales = (base * 2.0 ** c["e1"], base * 2.0 ** c["e2"], base * 2.0 ** (max(c["e1"], c["e2"]) + c["eo"]))
    dtype = np.dtype(c["dtype"]).type
    options = {"pot_scale_int16": False} if dtype is np.int16 else None
    model, inputs = quantized_case(rng, OP, dtype, c["pattern"], c["act"], scales, options=options)
    assert_matches_litert(oracle, model, inputs, "reference")


big_cases = st.fixed_dictionaries(dict(
    dtype=st.sampled_from(["int8", "uint8", "int16"]), pattern=st.sampled_from(PATTERNS[:-1]),
    log_ratio=st.floats(0.05, 30.0), act=st.sampled_from(["NONE", "RELU"]),
    seed=st.integers(0, 2**31)))


@examples(60)
@given(big_cases)
def test_sub_output_multiplier_above_one_vs_litert_ref(oracle, c):
    """A tiny output scale: sub.cc takes QuantizeMultiplierGreaterThanOne, then the
    kernel shifts right by a negative amount (undefined in C++). The wheel's result is
    zp_out +- 1 in the 4-lane vector blocks of the flat loop and (x >> (32 - shift)) +
    (x >= 0) elsewhere; quantcore reproduces both."""
    rng = np.random.default_rng(c["seed"])
    dtype = np.dtype(c["dtype"]).type
    left_shift = 15 if dtype is np.int16 else 20
    s1, s2 = log_scale(rng, 1e-3, 1.0), log_scale(rng, 1e-3, 1.0)
    so = float(np.float32(2 * max(s1, s2) / 2.0 ** left_shift / 2.0 ** c["log_ratio"]))
    assume(_real_output_multiplier(s1, s2, so, left_shift) > 1)
    options = {"pot_scale_int16": False} if dtype is np.int16 else None
    model, inputs = quantized_case(rng, OP, dtype, c["pattern"], c["act"], (s1, s2, so), options=options)
    assert_matches_litert(oracle, model, inputs, "reference")


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 8, 13, 64, 67])
def test_sub_output_multiplier_above_one_positions_vs_litert_ref(oracle, n):
    """The flat loop's vector blocks and scalar tail differ; lengths around multiples of 4."""
    rng = np.random.default_rng(n)
    model = binary_model(OP, np.int8, [n], [n], q1=(0.7, 3), q2=(0.9, -5), qo=(2e-8, 2))
    inputs = [rng.integers(-128, 128, n).astype(np.int8), rng.integers(-128, 128, n).astype(np.int8)]
    assert_matches_litert(oracle, model, inputs, "reference")


def test_sub_output_multiplier_exactly_one_refused(oracle):
    """real_output_multiplier == 1 is neither > 1 nor < 1: LiteRT aborts."""
    so = 2 * 0.5 / 2.0**20
    model = binary_model(OP, np.int8, [4], [4], q1=(0.5, 0), q2=(0.25, 0), qo=(so, 0))
    inputs = [np.ones(4, np.int8), np.ones(4, np.int8)]
    assert oracle.run(model, inputs, "reference").aborted
    with pytest.raises(ModelFormatError, match="not below 1"):
        run_ours(model, inputs)


def test_sub_int16_unquantized_refused(oracle):
    """There is no plain int16 SUB: LiteRT aborts on the zero scales."""
    model = binary_model(OP, np.int16, [4], [4])
    inputs = [np.ones(4, np.int16), np.ones(4, np.int16)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError):
        run_ours(model, inputs)


@pytest.mark.parametrize("scales", [(2.0**-12, 2.0**-12, 2.0**-10), (2.0**-8, 2.0**-12, 2.0**-10)])
def test_sub_int16_pot_shift_rules_refused(oracle, scales):
    model = binary_model(OP, np.int16, [4], [4], q1=(scales[0], 0), q2=(scales[1], 0), qo=(scales[2], 0))
    check_refused_like_litert(oracle, model, [np.ones(4, np.int16)] * 2, ModelFormatError)


def test_sub_int8_zero_point_out_of_range_refused(oracle):
    model = binary_model(OP, np.int8, [4], [4], q1=(0.1, 200), q2=(0.1, 0), qo=(0.1, 0))
    check_refused_like_litert(oracle, model, [np.ones(4, np.int8)] * 2, ModelFormatError)
