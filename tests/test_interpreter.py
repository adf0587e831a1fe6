"""The Interpreter's own API on wrong arguments: every misuse raises InputError (a
QuantcoreError and a ValueError, as LiteRT's Python API raises ValueError) naming
what was expected and what was given; nothing else escapes.

Also the runtime behaviours the fuzzer (tests/test_fuzz_runtime.py) pinned down:
declared intermediate shapes that differ from the computed ones (LiteRT's Prepare
resizes every output; quantcore prepares the operator again), and zero-element
constants.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantcore.errors import InputError, ModelFormatError, QuantcoreError
from quantcore.runtime import Interpreter
from quantcore.schema import read_model, write_model
from quantcore.schema.builder import ModelBuilder

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MLP = FIXTURES / "mlp_int8.tflite"     # float32 [1, 64] in, float32 [1, 8] out, int8 inside


@pytest.fixture
def it() -> Interpreter:
    interpreter = Interpreter(model_path=MLP)
    interpreter.allocate_tensors()
    return interpreter


def _input(it: Interpreter) -> tuple[int, tuple[int, ...], np.dtype]:
    d = it.get_input_details()[0]
    return int(d["index"]), tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])


def _add_relu(declared: list[int]) -> bytes:
    """x[2, 3] + y[2, 3] -> RELU, the ADD output declared with shape ``declared``."""
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    y = b.add_input("y", [2, 3], np.float32)
    s = b.add_tensor("sum", declared, np.float32)
    r = b.add_tensor("relu", [2, 3], np.float32)
    b.add_operator("ADD", [x, y], [s])
    b.add_operator("RELU", [s], [r])
    b.mark_outputs(r)
    return b.to_bytes()


# ---------------------------------------------------------------------------
# set_tensor / get_tensor
# ---------------------------------------------------------------------------
def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError) and issubclass(InputError, QuantcoreError)


def test_set_tensor_wrong_dtype_names_both(it):
    i, shape, _ = _input(it)
    with pytest.raises(InputError, match=r"got int32, expected float32"):
        it.set_tensor(i, np.zeros(shape, np.int32))
    with pytest.raises(InputError, match=r"got float64, expected float32"):
        it.set_tensor(i, np.zeros(shape).tolist())


def test_set_tensor_wrong_shape_names_both(it):
    i, _, dtype = _input(it)
    with pytest.raises(InputError, match=r"got shape \[1, 63\], expected \[1, 64\]"):
        it.set_tensor(i, np.zeros((1, 63), dtype))
    with pytest.raises(InputError, match=r"got shape \[64\], expected \[1, 64\]"):
        it.set_tensor(i, np.zeros(64, dtype))


@pytest.mark.parametrize("value", [[[1.0, 2.0], [3.0]], object(), None, "text", {"a": 1}],
                         ids=["ragged", "object", "None", "str", "dict"])
def test_set_tensor_non_arrays(it, value):
    i, _, _ = _input(it)
    with pytest.raises(InputError, match="cannot set tensor 0"):
        it.set_tensor(i, value)


def test_set_tensor_refuses_a_constant(it):
    const = next(d for d in it.get_tensor_details() if d["index"] not in (0,) and d["name"].endswith("BiasAdd"))
    with pytest.raises(InputError, match="is a constant of the model"):
        it.set_tensor(const["index"], np.zeros(const["shape"], const["dtype"]))


@pytest.mark.parametrize("index", [10**6, -1, 18, "0", 1.0, None])
def test_tensor_index_out_of_range(it, index):
    with pytest.raises(InputError, match=r"tensor index .* out of range \[0, 18\)"):
        it.get_tensor(index)
    with pytest.raises(InputError, match="out of range"):
        it.set_tensor(index, np.zeros(1, np.float32))
    with pytest.raises(InputError, match="out of range"):
        it.tensor(index)


@pytest.mark.parametrize("subgraph", [1, -1, "0", 0.0])
def test_subgraph_index_out_of_range(it, subgraph):
    i, shape, dtype = _input(it)
    with pytest.raises(InputError, match=r"subgraph index .* out of range \[0, 1\)"):
        it.get_tensor(i, subgraph_index=subgraph)
    with pytest.raises(InputError, match=r"subgraph index .* out of range"):
        it.set_tensor(i, np.zeros(shape, dtype), subgraph_index=subgraph)


def test_get_tensor_before_it_has_a_value(it):
    out = it.get_output_details()[0]["index"]
    with pytest.raises(InputError, match="has no value yet"):
        it.get_tensor(out)


# ---------------------------------------------------------------------------
# allocate / invoke order
# ---------------------------------------------------------------------------
def test_invoke_before_allocate_allocates():
    it = Interpreter(model_path=MLP)
    i, shape, dtype = _input(it)
    it.set_tensor(i, np.full(shape, 0.5, dtype))
    it.invoke()
    ref = Interpreter(model_path=MLP)
    ref.allocate_tensors()
    ref.set_tensor(i, np.full(shape, 0.5, dtype))
    ref.invoke()
    out = it.get_output_details()[0]["index"]
    np.testing.assert_array_equal(it.get_tensor(out), ref.get_tensor(out))


def test_invoke_without_inputs():
    it = Interpreter(model_path=MLP)
    with pytest.raises(InputError, match=r"input tensor 0 .* was not set"):
        it.invoke()


# ---------------------------------------------------------------------------
# resize_tensor_input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("size, message", [
    (None, "needs a list of integers"), (5, "needs a list of integers"),
    (["a"], "needs a list of integers"), ([1.5, 64], "needs a list of integers"),
    ([[1, 64]], "needs a list of integers"), ([-1, 64], r"invalid shape \[-1, 64\]"),
    ([2**31, 64], r"dimensions must be in \[0, 2\^31\)"),
    ([2**20, 2**20], "over the memory budget"),
])
def test_resize_invalid_shapes(it, size, message):
    i, _, _ = _input(it)
    with pytest.raises(InputError, match=message):
        it.resize_tensor_input(i, size)


def test_resize_not_an_input(it):
    with pytest.raises(InputError, match="is not an input"):
        it.resize_tensor_input(it.get_output_details()[0]["index"], [1, 8])
    with pytest.raises(InputError, match="out of range"):
        it.resize_tensor_input(999, [1, 64])


def test_resize_batch_runs_and_matches_batch_one(it):
    i, shape, dtype = _input(it)
    x = np.random.default_rng(0).uniform(0, 1, (3, 64)).astype(dtype)
    it.resize_tensor_input(i, np.array([3, 64]))
    it.allocate_tensors()
    it.set_tensor(i, x)
    it.invoke()
    out = it.get_output_details()[0]
    batch = it.get_tensor(out["index"])
    assert batch.shape == (3, 8) and list(out["shape"]) == [3, 8]
    one = Interpreter(model_path=MLP)
    one.allocate_tensors()
    for k in range(3):
        one.set_tensor(i, x[k:k + 1])
        one.invoke()
        np.testing.assert_array_equal(one.get_tensor(out["index"])[0], batch[k])


def test_resize_to_an_incompatible_shape_is_a_clean_error(it):
    i, _, dtype = _input(it)
    it.resize_tensor_input(i, [2, 2, 2])
    try:
        it.allocate_tensors()
        it.set_tensor(i, np.zeros((2, 2, 2), dtype))
        it.invoke()
    except QuantcoreError:
        pass


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------
def test_signature_runner_wrong_names(it):
    runner = it.get_signature_runner()
    with pytest.raises(InputError, match=r"takes inputs \['input'\]; unknown: \['x'\], missing: \['input'\]"):
        runner(x=np.zeros((1, 64), np.float32))
    with pytest.raises(InputError, match="missing"):
        runner()
    with pytest.raises(InputError, match="no signature 'nope'; the model has"):
        it.get_signature_runner("nope")


def test_signature_runner_wrong_values(it):
    runner = it.get_signature_runner("serving_default")
    with pytest.raises(InputError, match="got int32, expected float32"):
        runner(input=np.zeros((1, 64), np.int32))
    with pytest.raises(InputError, match="not an array"):
        runner(input=[[1.0], [1.0, 2.0]])
    assert runner(input=np.zeros((2, 64), np.float32))["output_0"].shape == (2, 8)


def test_signature_runner_without_signatures():
    b = ModelBuilder()
    x = b.add_input("x", [2], np.float32)
    y = b.add_tensor("y", [2], np.float32)
    b.add_operator("RELU", [x], [y])
    b.mark_outputs(y)
    it = Interpreter(model_content=b.to_bytes())
    assert it.get_signature_list() == {}
    with pytest.raises(InputError, match="no signature defs"):
        it.get_signature_runner()


# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"), ({"model_path": MLP, "model_content": b"x"}, "exactly one of"),
    ({"model_path": "/nonexistent/model.tflite"}, "No such file"),
    ({"model_path": "/"}, "Is a directory"),
    ({"model_content": 5}, "must be bytes or a path"),
    ({"model_path": MLP, "numerics": "fast"}, "numerics must be one of"),
])
def test_construction_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        Interpreter(**kwargs)


def test_model_content_as_bytearray_and_memoryview():
    data = MLP.read_bytes()
    for content in (bytearray(data), memoryview(data)):
        Interpreter(model_content=content).allocate_tensors()


# ---------------------------------------------------------------------------
# What the fuzzer found
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [[1], [2, 3, 1], [7, 7], []])
def test_wrong_declared_intermediate_shape_runs_like_litert(declared, oracle):
    """LiteRT ignores declared shapes of operator outputs (Prepare resizes them); an
    operator whose input shape differs from the declared one is prepared again."""
    data = _add_relu(declared)
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    y = np.full((2, 3), 0.5, np.float32)
    theirs = oracle.run(data, [x, y], "reference")
    assert theirs.ok, theirs.error
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(0, x)
    it.set_tensor(1, y)
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(3), theirs.outputs[0])
    np.testing.assert_array_equal(it.get_tensor(3), np.maximum(x + y, 0))


def test_zero_element_constant_is_an_empty_array():
    """An empty data vector makes a constant (the validator's rule); FILL with dims
    of shape [0] gives a scalar."""
    b = ModelBuilder()
    dims = b.add_constant("dims", np.zeros(0, np.int32))
    value = b.add_constant("value", np.array(2.5, np.float32))
    y = b.add_tensor("y", [], np.float32)
    b.add_operator("FILL", [dims, value], [y])
    b.mark_outputs(y)
    model = read_model(b.to_bytes())
    assert model.buffers[model.subgraphs[0].tensors[dims].buffer].data is not None
    it = Interpreter(model_content=write_model(model))
    it.allocate_tensors()
    it.invoke()
    assert it.get_tensor(y).shape == () and it.get_tensor(y) == np.float32(2.5)


def test_required_input_marked_absent_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("SHAPE", [x], [y], out_type="INT32")
    b.mark_outputs(y)
    model = read_model(b.to_bytes())
    model.subgraphs[0].operators[0].inputs = [-1]
    with pytest.raises(ModelFormatError, match=r"input 0 is required but marked absent \(-1\)") as info:
        Interpreter(model_content=write_model(model)).allocate_tensors()
    assert info.value.path == "subgraphs[0].operators[0].inputs[0]"


def test_memory_error_in_a_kernel_becomes_resource_limit_error(monkeypatch):
    """A kernel whose working arrays do not fit in the machine's memory: a
    ResourceLimitError naming the operator, not a MemoryError (ROBUSTNESS.md)."""
    from quantcore.errors import ResourceLimitError
    from quantcore.runtime.ops import conv_2d

    def no_memory(params, *args):
        raise MemoryError("Unable to allocate 64.0 GiB for an array")

    it = Interpreter(model_path=str(FIXTURES / "small_cnn_int8.tflite"))
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    monkeypatch.setattr(conv_2d, "eval", no_memory)
    with pytest.raises(ResourceLimitError, match=r"subgraphs\[0\]\.operators\[\d+\]: CONV_2D ran out of memory"):
        it.invoke()
    assert issubclass(ResourceLimitError, QuantcoreError)


def test_variable_tensor_zero_point_out_of_int8_range_is_model_format_error():
    """A variable int8 tensor is reset to its zero point; one outside int8 (a
    bit-flipped file found by the fuzzer) is refused with the tensor's path instead of
    an OverflowError from NumPy."""
    path = Path(__file__).parent / "fixtures" / "recurrent" / "lstm_tfkeras_int8.tflite"
    m = read_model(path)
    sg = m.subgraphs[0]
    k = next(i for i, t in enumerate(sg.tensors) if t.is_variable and t.type_name == "INT8")
    sg.tensors[k].quantization.zero_point = [-17592186044427]
    it = Interpreter(model_content=write_model(m))
    with pytest.raises(ModelFormatError, match=rf"subgraphs\[0\]\.tensors\[{k}\]\.quantization: .*zero point"):
        it.allocate_tensors()
