"""ARG_MAX and ARG_MIN against LiteRT BUILTIN_REF: random ranks and axes (negative,
int32/int64), int32/int64 outputs, float32/uint8/int8/int32/bool inputs, many ties,
NaN and infinities, run-time axes, and bad models."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

DTYPES = {"float": np.float32, "uint8": np.uint8, "int8": np.int8, "int32": np.int32,
          "bool": np.bool_, "int16": np.int16}


def arg_model(op, kind, shape, axis, out_type="INT32", axis_dtype=np.int32, const_axis=True,
              quantized=False):
    rank = len(shape)
    a = axis + rank if axis < 0 else axis
    b = ModelBuilder()
    q = dict(scale=0.1, zero_point=3) if quantized else {}
    x = b.add_input("x", shape, DTYPES[kind], **q)
    av = np.array([axis], axis_dtype)
    ax = b.add_constant("axis", av) if const_axis else b.add_input("axis", av.shape, axis_dtype)
    y = b.add_tensor("y", [d for i, d in enumerate(shape) if i != a],
                     np.int32 if out_type == "INT32" else np.int64)
    b.add_operator(op, [x, ax], [y], output_type=out_type)
    b.mark_outputs(y)
    return b.to_bytes()


@st.composite
def arg_cases(draw, max_dim=7):
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, max_dim)) for _ in range(rank)]
    axis = draw(st.integers(-rank, rank - 1))
    return dict(shape=shape, axis=axis, out_type=draw(st.sampled_from(["INT32", "INT64"])),
                axis_dtype=draw(st.sampled_from([np.int32, np.int64])),
                ties=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


def _input(rng, kind, shape, ties):
    if ties:   # few distinct values: many ties, first index must win
        vals = {"float": [-1.0, 0.0, -0.0, 2.5], "bool": [False, True]}.get(kind, [0, 1, 7])
        return rng.choice(np.asarray(vals), size=shape).astype(DTYPES[kind])
    if kind == "float":
        return (rng.normal(0, 10, size=shape)).astype(np.float32)
    return random_input(rng, shape, DTYPES[kind])


def _run(oracle, op, kind, c, *, const_axis=True, quantized=False, x=None):
    rng = np.random.default_rng(c["seed"])
    model = arg_model(op, kind, c["shape"], c["axis"], c["out_type"], c["axis_dtype"], const_axis,
                      quantized)
    if x is None:
        x = _input(rng, kind, c["shape"], c["ties"])
    inputs = [x] if const_axis else [x, np.array([c["axis"]], c["axis_dtype"])]
    assert_matches_litert(oracle, model, inputs, "reference")


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("kind", ["float", "uint8", "int8", "int32", "bool"])
@examples(30)
@given(c=arg_cases())
def test_arg_min_max_vs_litert_ref(oracle, op, kind, c):
    _run(oracle, op, kind, c)


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("kind", ["uint8", "int8"])
@examples(10)
@given(c=arg_cases())
def test_arg_min_max_quantized_input_vs_litert_ref(oracle, op, kind, c):
    """Quantization parameters are ignored: raw values are compared."""
    _run(oracle, op, kind, c, quantized=True)


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("kind", ["float", "uint8", "int8"])
@examples(10)
@given(c=arg_cases(max_dim=40))
def test_arg_min_max_long_last_axis_vs_litert_ref(oracle, op, kind, c):
    """Innermost axes of 16+ elements take LiteRT's vectorized last-axis kernels."""
    c = dict(c, axis=-1, shape=c["shape"][:-1] + [c["shape"][-1] + 17])
    _run(oracle, op, kind, c)


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@examples(30)
@given(c=arg_cases(max_dim=12), nan_share=st.sampled_from([0.1, 0.4, 0.8]))
def test_arg_min_max_float_nan_inf_vs_litert_ref(oracle, op, c, nan_share):
    """NaN never wins and is replaced by any number (scalar path); on the 4-lane path of
    innermost axes of 4+ elements, the NEON_2_SSE lane folding decides."""
    rng = np.random.default_rng(c["seed"])
    x = rng.choice(np.array([np.inf, -np.inf, 1.0, -1.0, 0.0], np.float32), size=c["shape"])
    x[rng.random(c["shape"]) < nan_share] = np.nan
    _run(oracle, op, "float", c, x=x.astype(np.float32))


@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("row", [[np.nan, 1, 2, 2], [1, np.nan, 3, 3], [np.nan] * 4,
                                 [np.nan] * 5 + [1.0] * 20, [-np.inf, np.nan, -np.inf, 1],
                                 [np.nan, 2, np.nan, np.nan, 5, np.nan], [np.nan, -1.0]])
def test_arg_min_max_float_nan_rows_vs_litert_ref(oracle, op, row):
    for shape, axis in (([1, len(row)], 1), ([len(row), 2], 0)):
        x = np.array(row, np.float32).reshape(1, -1)
        x = x if axis == 1 else np.repeat(x.T, 2, axis=1)
        c = dict(shape=shape, axis=axis, out_type="INT32", axis_dtype=np.int32, ties=False, seed=0)
        _run(oracle, op, "float", c, x=np.ascontiguousarray(x))


@pytest.mark.parametrize("op,kind", [("ARG_MAX", "float"), ("ARG_MIN", "int8"),
                                     ("ARG_MAX", "bool")])
@examples(10)
@given(c=arg_cases())
def test_arg_min_max_runtime_axis_vs_litert_ref(oracle, op, kind, c):
    _run(oracle, op, kind, c, const_axis=False)


@pytest.mark.parametrize("numerics", ["optimized", "xnnpack"])
@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
@pytest.mark.parametrize("kind", ["float", "uint8", "int8", "int32", "bool"])
@examples(6)
@given(c=arg_cases(max_dim=9))
def test_arg_min_max_vs_litert_optimized_and_xnnpack(oracle, numerics, op, kind, c):
    """Both resolvers run optimized_ops::ArgMinMax and XNNPACK leaves ARG_MAX/ARG_MIN to
    them: the same kernel serves all three LiteRT paths."""
    rng = np.random.default_rng(c["seed"])
    model = arg_model(op, kind, c["shape"], c["axis"], c["out_type"], c["axis_dtype"])
    x = _input(rng, kind, c["shape"], c["ties"])
    if kind == "float" and c["ties"]:
        x[rng.random(c["shape"]) < 0.3] = np.nan
    assert_matches_litert(oracle, model, [x], numerics)


# -- bad models -----------------------------------------------------------------------------
def test_arg_max_int16_is_unsupported():
    model = arg_model("ARG_MAX", "int16", [2, 3], 1)
    with pytest.raises(UnsupportedOpError, match="INT16"):
        run_ours(model, [np.zeros((2, 3), np.int16)])


def test_arg_max_axis_out_of_range_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    ax = b.add_constant("axis", np.array([2], np.int32))
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("ARG_MAX", [x, ax], [y], output_type="INT32")
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="out of range"):
        run_ours(b.to_bytes(), [np.zeros((2, 3), np.float32)])


def test_arg_max_two_axis_values_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    ax = b.add_constant("axis", np.array([0, 1], np.int32))
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("ARG_MIN", [x, ax], [y], output_type="INT32")
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="exactly one"):
        run_ours(b.to_bytes(), [np.zeros((2, 3), np.float32)])


def test_arg_max_output_type_mismatch_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    ax = b.add_constant("axis", np.array([1], np.int32))
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("ARG_MAX", [x, ax], [y], output_type="INT64")
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="output_type"):
        run_ours(b.to_bytes(), [np.zeros((2, 3), np.float32)])


def test_arg_max_missing_output_type_is_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    ax = b.add_constant("axis", np.array([1], np.int32))
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("ARG_MAX", [x, ax], [y])
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="output_type"):
        run_ours(b.to_bytes(), [np.zeros((2, 3), np.float32)])
