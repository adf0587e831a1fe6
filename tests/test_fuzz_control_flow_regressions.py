"""Regressions found by the structure-aware fuzzer's control-flow, resource variable
and DENSIFY recipes (tests/fuzz_models.py: WHILE, IF, CALL_ONCE, VAR_HANDLE,
READ_VARIABLE, ASSIGN_VARIABLE, DENSIFY), and by its differential acceptance run
against LiteRT.

Each test is a reduced model of one finding: a MemoryError escaping DENSIFY, or a
refusal of a model LiteRT runs whose message did not say why quantcore refuses it
(a declared type LiteRT overwrites; tests/test_fuzz_runtime.py KEEP_REFUSING).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from quantcore.errors import InputError, ModelFormatError
from quantcore.runtime.ops import _common
from quantcore.schema.builder import ModelBuilder

sys.path.insert(0, str(Path(__file__).parent))
from harness import run_outputs_no_warnings  # noqa: E402
from test_fuzz_runtime import KEEP_REFUSING

F32 = np.float32


_run = run_outputs_no_warnings


def _documented(message: str) -> bool:
    return any(k in message for k in KEEP_REFUSING)


# ---------------------------------------------------------------------------
# DENSIFY: the dense tensor was allocated without a bound
# ---------------------------------------------------------------------------
def test_densify_of_a_huge_declared_shape_is_bounded(monkeypatch):
    """A sparse constant stores a few values of a declared [1, 4 Mi] int8 tensor (the
    reader's budget counts the stored values only): DENSIFY allocated the dense tensor
    unchecked (a MemoryError under the fuzzer's address-space cap, for a dimension of
    2**31 - 1). Now the dense size is checked against the output budget first."""
    n = 4 << 20
    b = ModelBuilder()
    sparsity = {"traversal_order": np.array([0, 1], np.int32), "block_map": None,
                "dim_metadata": [
                    {"format": 0, "dense_size": 1, "array_segments_type": 0, "array_segments": None,
                     "array_indices_type": 0, "array_indices": None},
                    {"format": 1, "dense_size": 0,
                     "array_segments_type": 1, "array_segments": {"values": np.array([0, 2], np.int32)},
                     "array_indices_type": 1, "array_indices": {"values": np.array([3, n - 1], np.int32)}}]}
    buf = b.add_buffer(np.array([5, -7], np.int8).tobytes())
    w = b.add_tensor("w_sparse", [1, n], np.int8, buffer=buf, scale=0.1, zero_point=0)
    b.model.subgraphs[0].tensors[w].sparsity = sparsity
    y = b.add_tensor("w_dense", [1, n], np.int8, scale=0.1, zero_point=0)
    b.add_operator("DENSIFY", [w], [y])
    b.mark_outputs(y)
    monkeypatch.setattr(_common, "MAX_OUTPUT_BYTES", 1 << 20)   # the fuzzer lowers it too
    with pytest.raises(InputError, match="DENSIFY output shape .* over the limit"):
        _run(b.to_bytes(), [])


# ---------------------------------------------------------------------------
# Callee subgraphs whose declared types LiteRT overwrites (differential acceptance)
# ---------------------------------------------------------------------------
def _if_model(branch_input_type=np.float32) -> bytes:
    """IF(c) then RELU(x) else x, the then branch's input declared ``branch_input_type``."""
    b = ModelBuilder()
    c = b.add_input("c", [1], np.bool_)
    x = b.add_input("x", [3], F32)
    y = b.add_tensor("y", [3], F32)
    b.add_operator("IF", [c, x], [y], then_subgraph_index=1, else_subgraph_index=2)
    b.mark_outputs(y)
    b.new_subgraph("then")
    tx = b.add_input("tx", [3], branch_input_type)
    ty = b.add_tensor("ty", [3], F32)
    b.add_operator("RELU", [tx], [ty])
    b.mark_outputs(ty)
    b.new_subgraph("else")
    ex = b.add_input("ex", [3], F32)
    b.mark_outputs(ex)
    return b.to_bytes()


def test_if_branch_input_type_that_litert_overwrites_is_a_documented_refusal(oracle):
    """A branch input declared INT32 while the caller passes FLOAT32: LiteRT's
    CopyTensorsShapeAndType overwrites the declared type and runs the branch; quantcore
    refuses the contradiction, and now says that LiteRT would overwrite it (the
    message was not one of the documented refusals)."""
    model = _if_model(np.int32)
    inputs = [np.array([True]), np.array([-1.0, 0.5, 2.0], F32)]
    with pytest.raises(ModelFormatError, match="LiteRT would overwrite the declared type") as e:
        _run(model, inputs)
    assert "then subgraph 1 input 0 has type INT32, the caller passes FLOAT32" in str(e.value)
    assert _documented(str(e.value))
    theirs = oracle.run(model, inputs, "reference", preserve_all_tensors=False)
    assert theirs.ok, theirs.error   # why it must be documented
    # the well-typed model runs, as LiteRT does
    ours = _run(_if_model(), inputs)
    np.testing.assert_array_equal(ours[0], oracle.run(_if_model(), inputs, "reference",
                                                      preserve_all_tensors=False).outputs[0])


def _while_model(cond_output_type=np.bool_, body_output_type=np.int32) -> bytes:
    """i -> WHILE(i < 3) {i + 1}, the cond output and body output declared as given
    (LESS and ADD compute BOOL and INT32 whatever is declared)."""
    b = ModelBuilder()
    i0 = b.add_input("i", [], np.int32)
    out = b.add_tensor("o", [], np.int32)
    b.add_operator("WHILE", [i0], [out], cond_subgraph_index=1, body_subgraph_index=2)
    b.mark_outputs(out)
    b.new_subgraph("cond")
    ci = b.add_input("ci", [], np.int32)
    lim = b.add_constant("lim", np.array(3, np.int32))
    c = b.add_tensor("c", [], cond_output_type)
    b.add_operator("LESS", [ci, lim], [c])
    b.mark_outputs(c)
    b.new_subgraph("body")
    bi = b.add_input("bi", [], np.int32)
    one = b.add_constant("one", np.array(1, np.int32))
    bo = b.add_tensor("bo", [], body_output_type)
    b.add_operator("ADD", [bi, one], [bo], fused_activation_function="NONE")
    b.mark_outputs(bo)
    return b.to_bytes()


@pytest.mark.parametrize("what, kwargs, message", [
    ("cond", {"cond_output_type": np.int32}, "cond subgraph output type is INT32, not BOOL"),
    ("body", {"body_output_type": np.float32},
     "body output type FLOAT32 of loop variable 0 differs from its type INT32"),
])
def test_while_declared_output_types_litert_overwrites_are_documented_refusals(oracle, what, kwargs,
                                                                               message):
    """The cond subgraph's LESS declares an INT32 output, or the body's ADD a FLOAT32
    one: LiteRT's Prepare of LESS / ADD sets the computed type, so its WHILE checks
    pass and the loop runs; quantcore refuses the declared types, and now says it is
    an output type (the message was not one of the documented refusals)."""
    model = _while_model(**kwargs)
    inputs = [np.array(0, np.int32)]
    with pytest.raises(ModelFormatError, match=message) as e:
        _run(model, inputs)
    assert _documented(str(e.value)), str(e.value)
    theirs = oracle.run(model, inputs, "reference", preserve_all_tensors=False)
    assert theirs.ok, theirs.error
    assert int(_run(_while_model(), inputs)[0]) == 3 == int(
        oracle.run(_while_model(), inputs, "reference", preserve_all_tensors=False).outputs[0])


def test_callee_operator_refusing_a_declared_input_type_waits_for_the_caller(oracle):
    """IF reads a tensor an earlier operator computes (its checks wait for invoke) and
    its then branch's ADD reads the branch input declared INT32 with a FLOAT32 constant.
    allocate_tensors prepared the branch on its own and the ADD refused "input types
    differ" (undocumented: LiteRT overwrites the declared type with the caller's and
    runs it). The branch's operators on its inputs now wait for the caller's checks,
    whose refusal says why."""
    b = ModelBuilder()
    c = b.add_input("c", [1], np.bool_)
    x = b.add_input("x", [3], F32)
    r = b.add_tensor("r", [3], F32)
    b.add_operator("RELU", [x], [r])
    y = b.add_tensor("y", [3], F32)
    b.add_operator("IF", [c, r], [y], then_subgraph_index=1, else_subgraph_index=2)
    b.mark_outputs(y)
    b.new_subgraph("then")
    tx = b.add_input("tx", [3], np.int32)
    k = b.add_constant("k", np.array([1.0, 2.0, 3.0], F32))
    ty = b.add_tensor("ty", [3], F32)
    b.add_operator("ADD", [tx, k], [ty])
    b.mark_outputs(ty)
    b.new_subgraph("else")
    ex = b.add_input("ex", [3], F32)
    b.mark_outputs(ex)
    model = b.to_bytes()
    inputs = [np.array([True]), np.array([-1.0, 0.5, 2.0], F32)]
    with pytest.raises(ModelFormatError) as e:
        _run(model, inputs)
    assert _documented(str(e.value)), str(e.value)
    assert oracle.run(model, inputs, "reference", preserve_all_tensors=False).ok


def test_sparse_constant_read_by_another_operator_is_refused():
    """A sparse constant (stored values only) read by ADD instead of DENSIFY: the
    stored 1-D values reached ADD as if dense (ValueError: operands could not be
    broadcast). Only DENSIFY and FULLY_CONNECTED weights read the sparse format."""
    b = ModelBuilder()
    sparsity = {"traversal_order": np.array([0, 1], np.int32), "block_map": None,
                "dim_metadata": [
                    {"format": 0, "dense_size": 2, "array_segments_type": 0, "array_segments": None,
                     "array_indices_type": 0, "array_indices": None},
                    {"format": 1, "dense_size": 0,
                     "array_segments_type": 1, "array_segments": {"values": np.array([0, 1, 2], np.int32)},
                     "array_indices_type": 1, "array_indices": {"values": np.array([0, 2], np.int32)}}]}
    buf = b.add_buffer(np.array([1.5, -2.0], F32).tobytes())
    w = b.add_tensor("w_sparse", [2, 3], F32, buffer=buf)
    b.model.subgraphs[0].tensors[w].sparsity = sparsity
    x = b.add_input("x", [2, 3], F32)
    y = b.add_tensor("y", [2, 3], F32)
    b.add_operator("ADD", [x, w], [y])
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="sparse format") as e:
        _run(b.to_bytes(), [np.ones((2, 3), F32)])
    assert "inputs[1]" in str(e.value) and _documented(str(e.value))
