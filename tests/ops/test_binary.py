"""Elementwise binary operators: shared model builders and strategies (imported by
test_add.py, test_sub.py, test_mul.py, test_div.py, test_squared_difference.py,
test_maximum_minimum.py), and the broadcasting rules and model errors all seven
operators share, each checked against LiteRT BUILTIN_REF."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, compare_tensor, examples, random_input, run_ours
from quantcore.runtime import Interpreter
from quantcore.schema import read_model
from quantcore.errors import InputError, ModelFormatError, QuantcoreError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

OPS = ["ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"]
NO_OPTIONS = ("SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM")
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64, "int8": np.int8,
          "uint8": np.uint8, "int16": np.int16}


# ---------------------------------------------------------------------------
# Model building
# ---------------------------------------------------------------------------
def binary_model(op: str, dtype, shape1, shape2, *, q1=None, q2=None, qo=None, out_dtype=None,
                 act: str | None = None, options: dict | str | None = None, const1=None,
                 const2=None, version: int = 1) -> bytes:
    """A one-operator model ``y = op(x1, x2)``.

    ``q1/q2/qo`` are ``(scale, zero_point)`` or None (unquantized); ``options="absent"``
    writes no builtin options table; ``const1/const2`` make an input a constant.
    """
    b = ModelBuilder()
    tensors = []
    for name, shape, q, const in (("x1", shape1, q1, const1), ("x2", shape2, q2, const2)):
        kw = {} if q is None else dict(scale=q[0], zero_point=q[1])
        if const is not None:
            tensors.append(b.add_constant(name, np.asarray(const, dtype).reshape(shape), **kw))
        else:
            tensors.append(b.add_input(name, list(shape), dtype, **kw))
    kw = {} if qo is None else dict(scale=qo[0], zero_point=qo[1])
    out_shape = np.broadcast_shapes(tuple(shape1), tuple(shape2))
    y = b.add_tensor("y", list(out_shape), out_dtype or dtype, **kw)
    opts = {} if options in (None, "absent") else dict(options)
    if act is not None and op not in NO_OPTIONS:
        opts["fused_activation_function"] = act
    b.add_operator(op, tensors, [y], version=version, **opts)
    if options == "absent":
        o = b.subgraph.operators[-1]
        o.builtin_options_type = 0
        o.builtin_options = None
    b.mark_outputs(y)
    return b.to_bytes()


def random_values(rng: np.random.Generator, shape, dtype, float_scale: float = 1.0) -> np.ndarray:
    x = random_input(rng, shape, dtype)
    if np.dtype(dtype).kind == "f":
        x = (x * np.float32(float_scale)).astype(dtype)
    return x


def zero_point(rng: np.random.Generator, dtype) -> int:
    """A zero point over the type's full range (0 for symmetric int16)."""
    if np.dtype(dtype) == np.int16:
        return 0
    info = np.iinfo(dtype)
    return int(rng.integers(info.min, int(info.max) + 1))


def log_scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def pot_scale(rng: np.random.Generator, lo: int = -12, hi: int = 0) -> float:
    return float(2.0 ** int(rng.integers(lo, hi + 1)))


# ---------------------------------------------------------------------------
# Shapes: every broadcast pattern LiteRT allows
# ---------------------------------------------------------------------------
PATTERNS = ["same", "random", "scalar1", "scalar2", "rank0", "drop_leading", "flat_extended", "zero"]


def broadcast_shapes(rng: np.random.Generator, pattern: str, max_rank: int = 6,
                     max_dim: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two broadcast-compatible shapes following ``pattern``."""
    rank = int(rng.integers(1, max_rank + 1))
    dims = [int(d) for d in rng.integers(1, max_dim + 1, rank)]
    if pattern == "same":
        return tuple(dims), tuple(dims)
    if pattern == "scalar1":
        return (1,) * int(rng.integers(0, 3)), tuple(dims)
    if pattern == "scalar2":
        return tuple(dims), (1,) * int(rng.integers(0, 3))
    if pattern == "rank0":
        return ((), tuple(dims)) if rng.random() < 0.5 else (tuple(dims), ())
    if pattern == "flat_extended":          # equal after padding with leading 1s
        short = tuple(dims)
        return ((1,) * int(rng.integers(1, 3)) + short, short) if rng.random() < 0.5 else \
            (short, (1,) * int(rng.integers(1, 3)) + short)
    s1 = [d if rng.random() < 0.6 else 1 for d in dims]
    s2 = [d if rng.random() < 0.6 else 1 for d in dims]
    if pattern == "zero":
        k = int(rng.integers(0, rank))
        s1[k] = 0
        s2[k] = 0 if rng.random() < 0.5 else 1
    if pattern == "drop_leading":
        cut = int(rng.integers(1, rank + 1))
        if rng.random() < 0.5:
            s1 = s1[cut:]
        else:
            s2 = s2[cut:]
    return tuple(s1), tuple(s2)


shape_cases = st.fixed_dictionaries(dict(
    pattern=st.sampled_from(PATTERNS[:-1]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def check_refused_like_litert(oracle, model: bytes, inputs, error=QuantcoreError) -> str:
    """quantcore raises ``error``; LiteRT refuses the model or aborts. Returns LiteRT's error."""
    theirs = oracle.run(model, inputs, "reference")
    assert not theirs.ok, "LiteRT ran a model quantcore refuses"
    with pytest.raises(error):
        run_ours(model, inputs)
    return theirs.error


# ---------------------------------------------------------------------------
# Shared behaviour
# ---------------------------------------------------------------------------
def _op_model(op, dtype, s1, s2, act="NONE"):
    q = None
    if np.dtype(dtype) in (np.int8, np.uint8, np.int16) and op not in ("MAXIMUM", "MINIMUM"):
        q = (0.05, 0)
    qo = (0.1, 0) if q is not None else None
    if op == "SQUARED_DIFFERENCE" and q is not None:
        qo = (0.5, 0)
    return binary_model(op, dtype, s1, s2, q1=q, q2=q, qo=qo, act=act)


def _inputs(rng, op, dtype, s1, s2):
    x1 = random_values(rng, s1, dtype)
    x2 = random_values(rng, s2, dtype)
    if op == "DIV" and np.dtype(dtype).kind != "f":
        x2 = np.where(x2 == 0, 1, x2).astype(dtype)
    return [x1, x2]


@examples(12)
@given(st.sampled_from(OPS), st.sampled_from(["float32", "int8"]), st.sampled_from(PATTERNS),
       st.integers(0, 2**31))
def test_broadcast_patterns_vs_litert_ref(oracle, op, dtype, pattern, seed):
    rng = np.random.default_rng(seed)
    s1, s2 = broadcast_shapes(rng, pattern)
    dt = DTYPES[dtype]
    assert_matches_litert(oracle, _op_model(op, dt, s1, s2), _inputs(rng, op, dt, s1, s2), "reference")


@pytest.mark.parametrize("op", OPS)
def test_eight_dim_broadcast_vs_litert_ref(oracle, op):
    rng = np.random.default_rng(8)
    s1, s2 = (2, 1, 3, 1, 1, 2, 1, 2), (1, 2, 1, 1, 2, 1, 3, 1)
    for dtype in (np.float32, np.int8):
        assert_matches_litert(oracle, _op_model(op, dtype, s1, s2), _inputs(rng, op, dtype, s1, s2),
                              "reference")


@pytest.mark.parametrize("op", OPS)
def test_nine_dim_broadcast_refused_litert_aborts(oracle, op):
    """BroadcastBinaryOpSimple TFLITE_CHECKs rank <= 8: LiteRT aborts the process."""
    s1, s2 = (2,) + (1,) * 8, (1,) * 8 + (3,)
    rng = np.random.default_rng(9)
    model = _op_model(op, np.float32, s1, s2)
    theirs = oracle.run(model, _inputs(rng, op, np.float32, s1, s2), "reference")
    assert theirs.aborted
    with pytest.raises(ModelFormatError, match="at most 8"):
        run_ours(model, _inputs(rng, op, np.float32, s1, s2))


@pytest.mark.parametrize("op", ["ADD", "MUL", "MAXIMUM"])
def test_nine_dim_same_shapes_run_flat_vs_litert_ref(oracle, op):
    """No rank limit when no broadcast is needed."""
    s = (1, 2, 1, 2, 1, 1, 2, 1, 3)
    rng = np.random.default_rng(10)
    assert_matches_litert(oracle, _op_model(op, np.float32, s, s), _inputs(rng, op, np.float32, s, s),
                          "reference")


@pytest.mark.parametrize("op", OPS)
def test_not_broadcastable_refused(oracle, op):
    rng = np.random.default_rng(11)
    s1, s2 = (2, 3), (4, 3)
    b = ModelBuilder()
    x1 = b.add_input("x1", list(s1), np.float32)
    x2 = b.add_input("x2", list(s2), np.float32)
    y = b.add_tensor("y", [4, 3], np.float32)
    b.add_operator(op, [x1, x2], [y])
    b.mark_outputs(y)
    model = b.to_bytes()
    err = check_refused_like_litert(oracle, model, _inputs(rng, op, np.float32, s1, s2), ModelFormatError)
    assert "broadcast" in err


@pytest.mark.parametrize("op", OPS)
def test_input_types_differ_refused(oracle, op):
    b = ModelBuilder()
    x1 = b.add_input("x1", [3], np.float32)
    x2 = b.add_input("x2", [3], np.int32)
    y = b.add_tensor("y", [3], np.float32)
    b.add_operator(op, [x1, x2], [y])
    b.mark_outputs(y)
    check_refused_like_litert(oracle, b.to_bytes(), [np.ones(3, np.float32), np.ones(3, np.int32)],
                              ModelFormatError)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE"])
def test_int8_without_quantization_refused(oracle, op):
    """An unquantized int8 output has scale 0: LiteRT divides by it (ADD and
    SQUARED_DIFFERENCE abort in QuantizeMultiplierSmallerThanOneExp; SUB, MUL and DIV
    run with an infinite multiplier and return garbage). quantcore refuses the model
    and names the tensor."""
    model = binary_model(op, np.int8, [4], [4], q1=(0.1, 0), q2=(0.1, 0), qo=None)
    inputs = [np.ones(4, np.int8), np.ones(4, np.int8)]
    theirs = oracle.run(model, inputs, "reference")
    with pytest.raises(ModelFormatError, match="no quantization"):
        run_ours(model, inputs)
    if op in ("ADD", "SQUARED_DIFFERENCE"):
        assert theirs.aborted


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "DIV"])
def test_unsupported_activation_refused(op):
    model = binary_model(op, np.float32, [3], [3], act="TANH")
    with pytest.raises(UnsupportedOpError, match="TANH"):
        run_ours(model, [np.ones(3, np.float32), np.ones(3, np.float32)])


@pytest.mark.parametrize("op", OPS)
def test_bool_inputs_unsupported(oracle, op):
    b = ModelBuilder()
    x1 = b.add_input("x1", [3], np.bool_)
    x2 = b.add_input("x2", [3], np.bool_)
    y = b.add_tensor("y", [3], np.bool_)
    b.add_operator(op, [x1, x2], [y])
    b.mark_outputs(y)
    inputs = [np.ones(3, bool), np.zeros(3, bool)]
    assert not oracle.run(b.to_bytes(), inputs, "reference").ok
    with pytest.raises(UnsupportedOpError):
        run_ours(b.to_bytes(), inputs)


@pytest.mark.parametrize("op", ["ADD", "MUL", "DIV", "SUB"])
def test_relu6_bound_overflowing_int32_refused(oracle, op):
    """CalculateActivationRangeQuantized fails when round(6 / scale) leaves int32."""
    model = binary_model(op, np.int8, [4], [4], q1=(1e-3, 0), q2=(1e-3, 0), qo=(1e-10, 0), act="RELU6")
    inputs = [np.ones(4, np.int8), np.ones(4, np.int8)]
    check_refused_like_litert(oracle, model, inputs, ModelFormatError)


def test_output_type_must_match_input():
    model = binary_model("ADD", np.int8, [3], [3], q1=(0.1, 0), q2=(0.1, 0), qo=(0.1, 0),
                         out_dtype=np.int16)
    with pytest.raises(ModelFormatError, match="output type"):
        run_ours(model, [np.ones(3, np.int8), np.ones(3, np.int8)])


def test_input_error_is_a_value_error():
    """Data-dependent failures (DIV by zero) raise InputError, a ValueError as in LiteRT."""
    model = binary_model("DIV", np.int32, [3], [3])
    with pytest.raises(ValueError):
        run_ours(model, [np.ones(3, np.int32), np.array([1, 0, 2], np.int32)])
    assert issubclass(InputError, ValueError)


# ---------------------------------------------------------------------------
# Case builders used by the per-operator test files
# ---------------------------------------------------------------------------
SPECIAL_FLOATS = np.array([0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan, 3.0e38, -3.0e38,
                           1e-45, -1e-45, 6.0, 2.5], np.float32)


def special_float_inputs(rng: np.random.Generator, s1, s2) -> list[np.ndarray]:
    """Inputs drawn from zeros of both signs, infinities, NaN, huge and subnormal values."""
    return [rng.choice(SPECIAL_FLOATS, size=s1).astype(np.float32),
            rng.choice(SPECIAL_FLOATS, size=s2).astype(np.float32)]


def unquantized_case(rng, op, dtype, pattern, act, *, max_rank: int = 6):
    """(model, inputs) for float/int32/int64/unquantized int16 with random magnitudes."""
    s1, s2 = broadcast_shapes(rng, pattern, max_rank=max_rank)
    model = binary_model(op, dtype, s1, s2, act=act)
    mag = float(np.exp(rng.uniform(np.log(1e-3), np.log(1e3))))
    return model, [random_values(rng, s1, dtype, mag), random_values(rng, s2, dtype, mag)]


def quantized_case(rng, op, dtype, pattern, act, scales, *, zero_points=None, options=None,
                   max_rank: int = 6, out_dtype=None):
    """(model, inputs) for a quantized op with scales ``(s1, s2, s_out)``; zero points
    over the full range (0 for int16) unless given."""
    s1, s2 = broadcast_shapes(rng, pattern, max_rank=max_rank)
    odt = out_dtype or dtype
    if zero_points is None:
        zero_points = (zero_point(rng, dtype), zero_point(rng, dtype), zero_point(rng, odt))
    model = binary_model(op, dtype, s1, s2, q1=(scales[0], zero_points[0]),
                         q2=(scales[1], zero_points[1]), qo=(scales[2], zero_points[2]),
                         act=act, options=options, out_dtype=out_dtype)
    return model, [random_values(rng, s1, dtype), random_values(rng, s2, dtype)]


def assert_kernel_matches_litert(oracle, model: bytes, inputs) -> None:
    """Like assert_matches_litert, but reads the model without quantcore's schema
    validation, to test a kernel on models the validator (wrongly) refuses."""
    theirs = oracle.run(model, inputs, "reference")
    assert theirs.ok, f"LiteRT failed: {theirs.error}"
    it = Interpreter(model=read_model(model, validate=False))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    out = it.get_output_details()[0]["index"]
    msg = compare_tensor("output", it.get_tensor(out), theirs.outputs[0])
    assert msg is None, msg
