"""SVDF on LiteRT's optimized and XNNPACK paths, and the int8-state SVDF LiteRT cannot run.

LiteRT registers one SVDF kernel (``tflite/kernels/svdf.cc``, ``Register_SVDF``) in
both its reference and builtin resolvers, and the XNNPACK delegate does not take SVDF:
quantcore's "optimized" and "xnnpack" paths run the reference arithmetic. These tests
compare them with LiteRT's BUILTIN_WITHOUT_DEFAULT_DELEGATES resolver over four invokes
(state carried) and with the BUILTIN resolver (XNNPACK delegate) on one invoke; float
results within 1e-4 of the tensor's range (at least three units, so that the range is
not 0: quantcore's float SVDF is a few ULP off LiteRT's, as on the reference path). The
reference path itself is tested in tests/ops/test_recurrent.py; TFLite Micro's integer
SVDF (int8 state) in tests/test_micro.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _litert_steps import assert_steps_match
from harness import assert_matches_litert, examples
from quantcore.errors import UnsupportedOpError
from quantcore.runtime import Interpreter
from quantcore.schema.builder import ModelBuilder
from test_recurrent import ACTS, RTOL, svdf_model

KINDS = st.sampled_from(["float", "hybrid", "integer"])


def _steps(rng, kind: str, n_batch: int, n_input: int, n: int = 4) -> list[list[np.ndarray]]:
    if kind == "integer":
        return [[rng.integers(-128, 128, (n_batch, n_input)).astype(np.int8)] for _ in range(n)]
    return [[(rng.normal(0, 1, (n_batch, n_input)) * rng.uniform(0.3, 3)).astype(np.float32)]
            for _ in range(n)]


def _model(rng, kind, n_batch, n_input, rank, units, memory, act, bias, asym):
    return svdf_model(rng, kind=kind, n_batch=n_batch, n_input=n_input, rank=rank, units=units,
                      memory=memory, act=ACTS[1 if kind == "integer" else act], bias=bias,
                      asym=asym)


@given(kind=KINDS, n_batch=st.integers(1, 3), n_input=st.integers(1, 20), rank=st.integers(1, 3),
       units=st.integers(3, 6), memory=st.integers(1, 6), act=st.sampled_from([0, 1, 4, 3]),
       bias=st.booleans(), asym=st.booleans(), seed=st.integers(0, 2**31 - 1))
@examples(15)
def test_svdf_vs_litert_optimized(kind, n_batch, n_input, rank, units, memory, act, bias, asym,
                                  seed):
    """numerics="optimized" against LiteRT's BUILTIN_WITHOUT_DEFAULT_DELEGATES resolver
    (the same Register_SVDF kernel), four invokes, every tensor."""
    rng = np.random.default_rng(seed)
    model = _model(rng, kind, n_batch, n_input, rank, units, memory, act, bias, asym)
    assert_steps_match(model, _steps(rng, kind, n_batch, n_input), "optimized", rtol=RTOL)


@given(kind=KINDS, n_batch=st.integers(1, 3), n_input=st.integers(1, 20), rank=st.integers(1, 3),
       units=st.integers(3, 6), memory=st.integers(1, 6), act=st.sampled_from([0, 1, 4, 3]),
       bias=st.booleans(), asym=st.booleans(), seed=st.integers(0, 2**31 - 1))
@examples(10)
def test_svdf_vs_litert_xnnpack(oracle, kind, n_batch, n_input, rank, units, memory, act, bias,
                                asym, seed):
    """numerics="xnnpack" against LiteRT's BUILTIN resolver with the XNNPACK delegate,
    which leaves SVDF to the builtin kernel: one invoke, output and state."""
    rng = np.random.default_rng(seed)
    model = _model(rng, kind, n_batch, n_input, rank, units, memory, act, bias, asym)
    assert_matches_litert(oracle, model, _steps(rng, kind, n_batch, n_input, 1)[0], "xnnpack",
                          rtol=RTOL)


def _int8_state_model() -> bytes:
    """An SVDF with int8 time weights and an int8 state (TFLite Micro's keyword-model form)."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int8, scale=0.02, zero_point=3)
    wf = b.add_constant("wf", rng.integers(-127, 128, (2, 4)).astype(np.int8), scale=0.01,
                        zero_point=0)
    wt = b.add_constant("wt", rng.integers(-127, 128, (2, 3)).astype(np.int8), scale=0.01,
                        zero_point=0)
    bi = b.add_constant("b", np.array([10, -10], np.int32), scale=0.0005, zero_point=0)
    st_ = b.add_tensor("state", [1, 6], np.int8, scale=0.05, zero_point=-7, is_variable=True)
    y = b.add_tensor("y", [1, 2], np.int8, scale=0.05, zero_point=0)
    b.add_operator("SVDF", [x, wf, wt, bi, st_], [y], rank=1, fused_activation_function="RELU")
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("numerics", ["reference", "optimized", "xnnpack"])
def test_svdf_int8_state_is_refused_outside_micro(numerics):
    """LiteRT reads the int8 time weights and state as int16 (GetTensorData<int16_t>,
    past their buffers): quantcore names that and points at numerics='micro'."""
    with pytest.raises(UnsupportedOpError, match="reads both as int16.*numerics='micro'"):
        Interpreter(model_content=_int8_state_model(), numerics=numerics).allocate_tensors()
