"""MUL against LiteRT BUILTIN_REF: float32, int32, int64, unquantized int16, quantized
int8, uint8, int16, and int16 x int16 -> int8/uint8; random broadcasts, scales, zero
points, fused activations, constructed ties, constant operands."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from test_binary import (ACTS, PATTERNS, assert_kernel_matches_litert, binary_model, broadcast_shapes,
                         check_refused_like_litert, log_scale, quantized_case, random_values,
                         shape_cases, special_float_inputs, unquantized_case, zero_point)

OP = "MUL"


@examples(60)
@given(shape_cases)
def test_mul_float32_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.float32, c["pattern"], c["act"]), "reference")


@examples(15)
@given(shape_cases)
def test_mul_float32_special_values_vs_litert_ref(oracle, c):
    """0 * inf = NaN; 3e38 * 3e38 overflows to inf, clamped to FLT_MAX."""
    rng = np.random.default_rng(c["seed"])
    model, inputs = unquantized_case(rng, OP, np.float32, c["pattern"], c["act"])
    assert_matches_litert(oracle, model, special_float_inputs(rng, inputs[0].shape, inputs[1].shape),
                          "reference")


@examples(40)
@given(shape_cases, st.sampled_from(["int32", "int64"]))
def test_mul_int32_int64_vs_litert_ref(oracle, c, dtype):
    """Full-range values: products wrap (WrappingMul) before the activation clamp."""
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"]),
                          "reference")


def test_mul_int16_unquantized_vs_litert_ref(oracle):
    rng = np.random.default_rng(16)
    for i in range(20):
        assert_matches_litert(oracle, *unquantized_case(rng, OP, np.int16, PATTERNS[i % 7], ACTS[i % 4]),
                              "reference")


def test_mul_int16_unquantized_kernel_vs_litert_ref(oracle):
    rng = np.random.default_rng(16)
    for i in range(20):
        model, inputs = unquantized_case(rng, OP, np.int16, PATTERNS[i % 7], ACTS[i % 4])
        assert_kernel_matches_litert(oracle, model, inputs)


@examples(100)
@given(shape_cases, st.sampled_from(["int8", "uint8", "int16"]))
def test_mul_quantized_vs_litert_ref(oracle, c, dtype):
    """Multiplier f32(f32(s1*s2)/s_out), including multipliers above 1 (positive shift)."""
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-7, 1.0))
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.dtype(dtype).type, c["pattern"], c["act"],
                                                  scales), "reference")


tie_cases = st.fixed_dictionaries(dict(
    e1=st.integers(-8, 0), e2=st.integers(-8, 0), eo=st.integers(-14, 2),
    dtype=st.sampled_from(["int8", "uint8", "int16"]), pattern=st.sampled_from(PATTERNS[:-1]),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


@examples(70)
@given(tie_cases)
def test_mul_rounding_ties_vs_litert_ref(oracle, c):
    """Power-of-two scales: M = 2^30 exactly, so (x1 - zp1)(x2 - zp2) * 2^k lands on exact
    halves for many products and the final RoundingDivideByPOT meets ties of both signs."""
    rng = np.random.default_rng(c["seed"])
    scales = (2.0 ** c["e1"], 2.0 ** c["e2"], 2.0 ** (c["e1"] + c["e2"] - c["eo"]))
    model, inputs = quantized_case(rng, OP, np.dtype(c["dtype"]).type, c["pattern"], c["act"], scales)
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(25)
@given(st.sampled_from(ACTS), st.integers(0, 2**31))
def test_mul_float32_product_multiplier_vs_litert_ref(oracle, act, seed):
    """Scales whose float32 product differs from the double product: the multiplier is
    rounded twice in float32 (mul.cc), which changes M on some of these."""
    rng = np.random.default_rng(seed)
    scales = tuple(float(np.float32(rng.uniform(0.001, 0.01))) for _ in range(2)) + \
        (float(np.float32(rng.uniform(1e-5, 1e-4))),)
    model, inputs = quantized_case(rng, OP, np.int8, "same", act, scales)
    assert_matches_litert(oracle, model, inputs, "reference")


int16_to_8_cases = st.fixed_dictionaries(dict(
    out=st.sampled_from(["int8", "uint8"]), n=st.integers(1, 40),
    shape=st.sampled_from(["same", "flat_extended"]), act=st.sampled_from(ACTS),
    seed=st.integers(0, 2**31)))


@examples(60)
@given(int16_to_8_cases)
def test_mul_int16_to_int8_uint8_vs_litert_ref(oracle, c):
    """int16 x int16 -> int8/uint8: Q0.15 product, rounding shift by 8, output zero
    point; scales are ignored by the kernel."""
    rng = np.random.default_rng(c["seed"])
    odt = np.dtype(c["out"]).type
    s = (c["n"],)
    s1, s2 = (s, s) if c["shape"] == "same" else ((1,) + s, s)
    model = binary_model(OP, np.int16, s1, s2, q1=(log_scale(rng, 1e-5, 1), 0),
                         q2=(log_scale(rng, 1e-5, 1), 0), qo=(log_scale(rng, 1e-3, 1), zero_point(rng, odt)),
                         out_dtype=odt, act=c["act"])
    x1 = random_values(rng, s1, np.int16)
    x2 = random_values(rng, s2, np.int16)
    x1.flat[0], x2.flat[0] = -32768, -32768              # the saturating SRDHM case
    assert_matches_litert(oracle, model, [x1, x2], "reference")


@examples(15)
@given(shape_cases, st.sampled_from(["int8", "float32"]))
def test_mul_constant_operand_vs_litert_ref(oracle, c, dtype):
    rng = np.random.default_rng(c["seed"])
    dt = np.dtype(dtype).type
    s1, s2 = broadcast_shapes(rng, c["pattern"])
    q = dict(q1=(0.02, -3), q2=(0.05, 10), qo=(0.01, 1)) if dt is np.int8 else {}
    model = binary_model(OP, dt, s1, s2, act=c["act"], const2=random_values(rng, s2, dt), **q)
    assert_matches_litert(oracle, model, [random_values(rng, s1, dt)], "reference")


def test_mul_both_constant_vs_litert_ref(oracle):
    """Both operands constant: LiteRT evaluates in Prepare (noop Eval); same numbers."""
    rng = np.random.default_rng(5)
    b = binary_model(OP, np.int8, [3, 4], [4], q1=(0.02, -3), q2=(0.05, 10), qo=(0.01, 1),
                     const1=random_values(rng, [3, 4], np.int8), const2=random_values(rng, [4], np.int8))
    theirs = oracle.run(b, [], "reference")
    assert theirs.ok, theirs.error
    np.testing.assert_array_equal(run_ours(b, []).get_tensor(2), theirs.outputs[0])


# ---------------------------------------------------------------------------
def test_mul_int16_to_int8_broadcast_refused(oracle):
    model = binary_model(OP, np.int16, [2, 3], [3], q1=(0.01, 0), q2=(0.01, 0), qo=(0.01, 0),
                         out_dtype=np.int8)
    inputs = [np.ones((2, 3), np.int16), np.ones(3, np.int16)]
    assert oracle.run(model, inputs, "reference").aborted
    with pytest.raises(ModelFormatError, match="cannot broadcast"):
        run_ours(model, inputs)


def test_mul_int16_nonzero_zero_point_refused(oracle):
    model = binary_model(OP, np.int16, [4], [4], q1=(0.01, 2), q2=(0.01, 0), qo=(0.01, 0))
    check_refused_like_litert(oracle, model, [np.ones(4, np.int16)] * 2, ModelFormatError)


def test_mul_int8_to_int16_refused(oracle):
    model = binary_model(OP, np.int8, [4], [4], q1=(0.01, 0), q2=(0.01, 0), qo=(0.01, 0),
                         out_dtype=np.int16)
    check_refused_like_litert(oracle, model, [np.ones(4, np.int8)] * 2, ModelFormatError)


def test_mul_uint32_unsupported():
    model = binary_model(OP, np.uint32, [4], [4])
    with pytest.raises(UnsupportedOpError):
        run_ours(model, [np.ones(4, np.uint32)] * 2)
