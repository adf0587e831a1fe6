"""MAXIMUM and MINIMUM against LiteRT BUILTIN_REF: float32 (NaN, signed zeros), int8,
uint8, int16, int32, int64 over random broadcasts, with constructed ties (equal
elements) and mismatched quantization parameters (compared raw, no rescale)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import UnsupportedOpError
from test_binary import (binary_model, broadcast_shapes, log_scale, random_values, shape_cases,
                         special_float_inputs, zero_point)

OPS = ["MAXIMUM", "MINIMUM"]
TYPES = ["float32", "int8", "uint8", "int16", "int32", "int64"]


def _case(rng, op, dtype, pattern, quantization):
    s1, s2 = broadcast_shapes(rng, pattern)
    q = {}
    if quantization == "same" and np.dtype(dtype).kind in "iu" and np.dtype(dtype).itemsize <= 2:
        qp = (log_scale(rng, 1e-3, 1.0), zero_point(rng, dtype))
        q = dict(q1=qp, q2=qp, qo=qp)
    elif quantization == "different" and np.dtype(dtype).kind in "iu" and np.dtype(dtype).itemsize <= 2:
        q = {k: (log_scale(rng, 1e-3, 1.0), zero_point(rng, dtype)) for k in ("q1", "q2", "qo")}
    model = binary_model(op, dtype, s1, s2, **q)
    x1 = random_values(rng, s1, dtype)
    x2 = random_values(rng, s2, dtype)
    # Ties: copy part of x1 into x2 where the shapes allow it.
    if x1.shape == x2.shape:
        mask = rng.random(x1.shape) < 0.3
        x2 = np.where(mask, x1, x2).astype(dtype)
    return model, [x1, x2]


@examples(240)
@given(shape_cases, st.sampled_from(OPS), st.sampled_from(TYPES), st.sampled_from(["same", "different"]))
def test_maximum_minimum_vs_litert_ref(oracle, c, op, dtype, quantization):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *_case(rng, op, np.dtype(dtype).type, c["pattern"], quantization),
                          "reference")


@examples(60)
@given(shape_cases, st.sampled_from(OPS))
def test_maximum_minimum_float32_special_values_vs_litert_ref(oracle, c, op):
    """NaN in input 1 loses, NaN in input 2 wins (x1 > x2 ? x1 : x2); -0.0 vs 0.0 picks
    input 2. Checked bit for bit (the harness compares -0.0 == 0.0)."""
    rng = np.random.default_rng(c["seed"])
    s1, s2 = broadcast_shapes(rng, c["pattern"])
    model = binary_model(op, np.float32, s1, s2)
    inputs = special_float_inputs(rng, s1, s2)
    _, theirs = assert_matches_litert(oracle, model, inputs, "reference")
    ours = run_ours(model, inputs).get_tensor(2)
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.outputs[0].view(np.uint32))


@pytest.mark.parametrize("op", OPS)
def test_maximum_minimum_bool_unsupported(oracle, op):
    model = binary_model(op, np.bool_, [3], [3])
    inputs = [np.array([True, False, True]), np.array([False, False, True])]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(UnsupportedOpError):
        run_ours(model, inputs)
