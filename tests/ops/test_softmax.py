"""SOFTMAX and LOG_SOFTMAX against LiteRT BUILTIN_REF (gemmlowp fixed-point exp, log and
reciprocal), and the models on which LiteRT's reference kernel aborts the process."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, NumericsPathError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

QRANGE = {np.int8: (-128, 127), np.uint8: (0, 255), np.int16: (-32768, 32767)}
DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "float": np.float32}
FIXED_OUT = {  # (scale, zero point) LiteRT expects or that the converter writes
    ("SOFTMAX", np.int8): (1 / 256, -128), ("SOFTMAX", np.uint8): (1 / 256, 0),
    ("SOFTMAX", np.int16): (1 / 32768, 0),
    ("LOG_SOFTMAX", np.int8): (16 / 256, 127), ("LOG_SOFTMAX", np.uint8): (16 / 256, 255),
}


def model_for(op, in_dtype, out_dtype, shape, s_in=None, zp_in=0, *, beta=None, s_out=None,
              zp_out=None) -> bytes:
    b = ModelBuilder()
    if in_dtype == np.float32:
        x = b.add_input("x", shape, np.float32)
        y = b.add_tensor("y", shape, np.float32)
    else:
        fs, fz = FIXED_OUT[(op, out_dtype)]
        x = b.add_input("x", shape, in_dtype, scale=s_in, zero_point=zp_in)
        y = b.add_tensor("y", shape, out_dtype, scale=fs if s_out is None else s_out,
                         zero_point=fz if zp_out is None else zp_out)
    opts = {} if op == "LOG_SOFTMAX" else {"beta": 1.0 if beta is None else beta}
    b.add_operator(op, [x], [y], **opts)
    b.mark_outputs(y)
    return b.to_bytes()


def softmax_input(rng, shape, dtype) -> np.ndarray:
    """Random codes; sometimes clustered near the row maximum, with ties and equal rows."""
    x = random_input(rng, shape, dtype)
    mode = int(rng.integers(0, 4))
    lo, hi = QRANGE[dtype]
    if mode == 1:      # clustered: differences of a few codes, many near-maxima
        top = int(rng.integers(lo + 20, hi + 1))
        x = (top - rng.integers(0, 20, size=shape)).astype(dtype)
    elif mode == 2:    # a few equal maxima per row
        x = np.minimum(x, np.percentile(x, 90).astype(x.dtype)).astype(dtype)
    return x


def random_shape(rng, max_rank=4, max_depth=40):
    rank = int(rng.integers(1, max_rank + 1))
    outer = [int(d) for d in rng.integers(1, 5, size=rank - 1)]
    depth = int(rng.integers(1, max_depth + 1)) if rng.integers(0, 6) else int(rng.integers(100, 500))
    return outer + [depth]


seeds = st.integers(0, 2**31 - 1)


def _beta_scale(rng):
    s_in = random_scale(rng, 1e-4, 1.0) if rng.integers(0, 8) else random_scale(rng, 1.0, 100.0)
    beta = float(np.float32(np.exp(rng.uniform(np.log(0.05), np.log(20))))) if rng.integers(0, 2) else 1.0
    return s_in, beta


@examples(120)
@given(seeds, st.sampled_from([("int8", "int8"), ("uint8", "uint8"), ("int8", "int16"),
                               ("uint8", "int16")]))
def test_softmax_8bit_vs_litert_ref(oracle, seed, types):
    rng = np.random.default_rng(seed)
    dt_in, dt_out = DTYPES[types[0]], DTYPES[types[1]]
    s_in, beta = _beta_scale(rng)
    assume(beta * s_in * 2**26 > 1)
    shape = random_shape(rng)
    lo, hi = QRANGE[dt_in]
    model = model_for("SOFTMAX", dt_in, dt_out, shape, s_in, int(rng.integers(lo, hi + 1)), beta=beta)
    assert_matches_litert(oracle, model, [softmax_input(rng, shape, dt_in)], "reference")


@examples(50)
@given(seeds)
def test_softmax_int16_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    s_in = random_scale(rng, 1e-5, 1e-2)
    beta = float(np.float32(np.exp(rng.uniform(np.log(0.1), np.log(10))))) if rng.integers(0, 2) else 1.0
    shape = random_shape(rng, max_rank=5)
    model = model_for("SOFTMAX", np.int16, np.int16, shape, s_in, 0, beta=beta)
    assert_matches_litert(oracle, model, [softmax_input(rng, shape, np.int16)], "reference")


@examples(20)
@given(seeds)
def test_softmax_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(rng.uniform(1, 20))).astype(np.float32)
    beta = float(np.float32(rng.uniform(0.1, 3)))
    assert_matches_litert(oracle, model_for("SOFTMAX", np.float32, np.float32, shape, beta=beta), [x],
                          "reference")


@pytest.mark.parametrize("shape", [[1, 12], [8, 30], [9, 30], [2, 300], [12, 257], [3, 2, 256]])
@pytest.mark.parametrize("types", [("int8", "int8"), ("uint8", "int16")])
def test_softmax_8bit_row_layouts_vs_litert_ref(oracle, shape, types):
    """Both reciprocal implementations (Python ints up to 8 rows, NumPy beyond) and both
    output stages (per element, per-row 256-entry table for rows longer than 256) of
    softmax.py, against LiteRT BUILTIN_REF; a large input scale makes diff_min cut rows."""
    dt_in, dt_out = DTYPES[types[0]], DTYPES[types[1]]
    for seed, s_in in ((0, 0.03), (1, 0.9)):
        rng = np.random.default_rng(seed)
        model = model_for("SOFTMAX", dt_in, dt_out, shape, s_in, 3)
        assert_matches_litert(oracle, model, [softmax_input(rng, shape, dt_in)], "reference")


def test_get_reciprocal_int_equals_numpy_get_reciprocal():
    """softmax.get_reciprocal_int (Python ints) == _gemmlowp_fixedpoint.get_reciprocal (the
    NumPy version the LiteRT differential tests pin down) on random and edge int32 sums."""
    from quantcore.runtime.ops._gemmlowp_fixedpoint import get_reciprocal
    from quantcore.runtime.ops.softmax import get_reciprocal_int

    rng = np.random.default_rng(0)
    edges = [1, 2, 3, 2**19 - 1, 2**19, 2**19 + 1, 2**30, 2**31 - 1, -1, -(2**31), 0x5555_5555]
    xs = np.concatenate([np.array(edges, np.int64), rng.integers(1, 2**31, 20000),
                         rng.integers(1, 2**20, 2000), rng.integers(-(2**31), 0, 500)])
    want_scale, want_bits = get_reciprocal(xs, 12)
    got = [get_reciprocal_int(int(v), 12) for v in xs]
    np.testing.assert_array_equal(np.array([g[0] for g in got]), want_scale)
    np.testing.assert_array_equal(np.array([g[1] for g in got]), want_bits)


def test_softmax_int8_row_sums_at_the_abort_threshold(oracle):
    # the row's fixed-point sum of exp reaches 2^28 (512 times exp(0)) exactly at depth 512:
    # 511 equal values run, and 511 maxima plus smaller values run too
    x = np.zeros((1, 511), np.int8)
    assert_matches_litert(oracle, model_for("SOFTMAX", np.int8, np.int8, [1, 511], 0.05, 0), [x])
    x = np.concatenate([np.zeros((1, 511)), np.full((1, 89), -100)], axis=1).astype(np.int8)
    assert_matches_litert(oracle, model_for("SOFTMAX", np.int8, np.int8, [1, 600], 0.05, 0), [x])
    # the int16 output has 8 more bits of exponent room: no abort
    x = np.zeros((2, 600), np.int8)
    assert_matches_litert(oracle, model_for("SOFTMAX", np.int8, np.int16, [2, 600], 0.05, 0), [x])


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
def test_reference_abort_on_tiny_input_scale_raises(oracle, op):
    """beta * s_in * 2^26 <= 1: QuantizeMultiplierGreaterThanOne CHECK-fails in LiteRT."""
    s_in = 1.4e-8   # 1.4e-8 * 2^26 = 0.94
    model = model_for(op, np.int8, np.int8, [2, 10], s_in, 0)
    x = np.zeros((2, 10), np.int8)
    result = oracle.run(model, [x], "reference")
    assert result.aborted, result.error
    with pytest.raises(NumericsPathError, match="aborts.*optimized"):
        run_ours(model, [x], "reference")
    if op == "SOFTMAX":
        assert oracle.run(model, [x], "optimized").ok


def test_softmax_reference_abort_on_large_row_sum_raises(oracle):
    """512 equal maxima: the sum of exps is 2^28 and TFLITE_CHECK(exponent <= 31) fails."""
    model = model_for("SOFTMAX", np.int8, np.int8, [1, 512], 0.05, 0)
    x = np.zeros((1, 512), np.int8)
    assert oracle.run(model, [x], "reference").aborted
    with pytest.raises(NumericsPathError, match="overflows"):
        run_ours(model, [x], "reference")


def test_softmax_beta_just_above_abort_threshold_vs_litert_ref(oracle):
    s_in = float(np.float32(1.6e-8))   # 1.6e-8 * 2^26 = 1.07: runs, diff_min tiny
    rng = np.random.default_rng(3)
    x = random_input(rng, [3, 20], np.int8)
    assert_matches_litert(oracle, model_for("SOFTMAX", np.int8, np.int8, [3, 20], s_in, 0), [x])


# ---------------------------------------------------------------------------
# LOG_SOFTMAX
# ---------------------------------------------------------------------------
@examples(80)
@given(seeds, st.sampled_from(["int8", "uint8"]))
def test_log_softmax_8bit_vs_litert_ref(oracle, seed, kind):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    s_in = random_scale(rng, 1e-4, 1.0) if rng.integers(0, 8) else random_scale(rng, 1.0, 100.0)
    shape = random_shape(rng)
    lo, hi = QRANGE[dt]
    model = model_for("LOG_SOFTMAX", dt, dt, shape, s_in, int(rng.integers(lo, hi + 1)))
    assert_matches_litert(oracle, model, [softmax_input(rng, shape, dt)], "reference")


@examples(20)
@given(seeds)
def test_log_softmax_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(rng.uniform(1, 20))).astype(np.float32)
    assert_matches_litert(oracle, model_for("LOG_SOFTMAX", np.float32, np.float32, shape), [x],
                          "reference")


# ---------------------------------------------------------------------------
# bad models
# ---------------------------------------------------------------------------
def test_softmax_int8_wrong_output_params_raise(oracle):
    x = np.zeros((1, 4), np.int8)
    for kw in ({"zp_out": 0}, {"s_out": 1 / 128}):
        model = model_for("SOFTMAX", np.int8, np.int8, [1, 4], 0.1, 0, **kw)
        assert not oracle.run(model, [x], "reference").ok
        with pytest.raises(ModelFormatError, match="SOFTMAX needs output"):
            run_ours(model, [x])


def test_log_softmax_wrong_output_params_raise(oracle):
    x = np.zeros((1, 4), np.uint8)
    for kw in ({"zp_out": 127}, {"s_out": 1 / 16 + 1e-6}):
        model = model_for("LOG_SOFTMAX", np.uint8, np.uint8, [1, 4], 0.1, 0, **kw)
        assert not oracle.run(model, [x], "reference").ok
        with pytest.raises(ModelFormatError, match="LOG_SOFTMAX needs (an )?output"):
            run_ours(model, [x])


def test_softmax_unsupported_output_type_raises():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 4], np.uint8, scale=1 / 256, zero_point=0)
    b.add_operator("SOFTMAX", [x], [y], beta=1.0)
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="UINT8 output for INT8 input"):
        run_ours(b.to_bytes(), [np.zeros((1, 4), np.int8)])


def test_softmax_missing_quantization_and_rank0_raise():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int8)
    y = b.add_tensor("y", [1, 4], np.int8)
    b.add_operator("SOFTMAX", [x], [y], beta=1.0)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="no quantization"):
        run_ours(b.to_bytes(), [np.zeros((1, 4), np.int8)])
    with pytest.raises(ModelFormatError, match="at least one dimension"):
        run_ours(model_for("SOFTMAX", np.float32, np.float32, []), [np.zeros((), np.float32)])


def test_softmax_int32_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int32)
    y = b.add_tensor("y", [1, 4], np.int32)
    b.add_operator("SOFTMAX", [x], [y], beta=1.0)
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="INT32"):
        run_ours(b.to_bytes(), [np.zeros((1, 4), np.int32)])
