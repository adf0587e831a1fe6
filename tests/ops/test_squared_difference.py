"""SQUARED_DIFFERENCE against LiteRT BUILTIN_REF: float32, int32 and quantized int8
over random broadcasts, scales, zero points and constructed ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from test_binary import (PATTERNS, binary_model, log_scale, quantized_case, shape_cases,
                         special_float_inputs, unquantized_case)

OP = "SQUARED_DIFFERENCE"


def _real_output_multiplier(s1, s2, so):
    twice = float(np.float32(2) * max(np.float32(s1), np.float32(s2)))
    return twice * twice / float(np.float32(np.float32(1 << 14) * np.float32(so)))


@examples(60)
@given(shape_cases)
def test_squared_difference_float32_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.float32, c["pattern"], None), "reference")


@examples(15)
@given(shape_cases)
def test_squared_difference_float32_special_values_vs_litert_ref(oracle, c):
    """No activation clamp: (3e38 - -3e38)^2 stays +inf."""
    rng = np.random.default_rng(c["seed"])
    model, inputs = unquantized_case(rng, OP, np.float32, c["pattern"], None)
    assert_matches_litert(oracle, model, special_float_inputs(rng, inputs[0].shape, inputs[1].shape),
                          "reference")


@examples(40)
@given(shape_cases)
def test_squared_difference_int32_vs_litert_ref(oracle, c):
    """Full-range values: difference and square wrap in int32."""
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.int32, c["pattern"], None), "reference")


@examples(120)
@given(shape_cases)
def test_squared_difference_int8_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-6, 1.0))
    assume(_real_output_multiplier(*scales) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.int8, c["pattern"], None, scales), "reference")


@examples(80)
@given(st.integers(-3, 3), st.integers(-3, 3), st.integers(-6, 8), st.sampled_from(PATTERNS[:-1]),
       st.integers(0, 2**31))
def test_squared_difference_int8_ties_vs_litert_ref(oracle, e1, e2, eo, pattern, seed):
    """Power-of-two scale ratios: exact multipliers, so the squared difference rounds
    from exact halves."""
    rng = np.random.default_rng(seed)
    base = log_scale(rng, 1e-3, 1e-1)
    m = max(e1, e2)
    scales = (base * 2.0**e1, base * 2.0**e2, base * base * 2.0 ** (2 * m + eo))
    assume(_real_output_multiplier(*scales) < 1)
    assert_matches_litert(oracle, *quantized_case(rng, OP, np.int8, pattern, None, scales), "reference")


def test_squared_difference_output_scale_too_small_refused(oracle):
    model = binary_model(OP, np.int8, [4], [4], q1=(1.0, 0), q2=(1.0, 0), qo=(1e-5, 0))
    inputs = [np.ones(4, np.int8), np.ones(4, np.int8)]
    assert oracle.run(model, inputs, "reference").aborted
    with pytest.raises(ModelFormatError, match="too small"):
        run_ours(model, inputs)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64])
def test_squared_difference_unsupported_types(oracle, dtype):
    q = (0.1, 0) if dtype in (np.uint8, np.int16) else None
    model = binary_model(OP, dtype, [4], [4], q1=q, q2=q, qo=q)
    inputs = [np.ones(4, dtype), np.ones(4, dtype)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(UnsupportedOpError):
        run_ours(model, inputs)
