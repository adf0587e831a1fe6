"""WHILE, IF, CALL_ONCE, resource variables (VAR_HANDLE / READ_VARIABLE /
ASSIGN_VARIABLE) and variable tensors against LiteRT BUILTIN_REF, single-op models
built with ModelBuilder (several subgraphs), over several consecutive invokes where
state persists; the loop limit; malformed control flow."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _litert_steps import assert_steps_match
from harness import assert_matches_litert, examples
from quantcore.errors import InputError, ModelFormatError, QuantcoreError
from quantcore.runtime import Interpreter
from quantcore.schema.builder import ModelBuilder
from quantcore.schema.model import TensorType


def while_model(n: int, limit: int, step: float, *, int8: bool = False) -> bytes:
    """i, acc -> WHILE(i < limit (as CAST(limit - i) != 0 with i <= limit)) {i + 1, acc * 0.5 + step}."""
    b = ModelBuilder()
    dt = np.int8 if int8 else np.float32
    q = dict(scale=0.05, zero_point=3) if int8 else {}
    i0 = b.add_input("i", [], np.int32)
    x0 = b.add_input("x", [n], dt, **q)
    i_out = b.add_tensor("i_out", [], np.int32)
    x_out = b.add_tensor("x_out", [n], dt, **q)
    b.add_operator("WHILE", [i0, x0], [i_out, x_out], cond_subgraph_index=1, body_subgraph_index=2)
    b.mark_outputs(i_out, x_out)
    # cond
    b.new_subgraph("cond")
    ci = b.add_input("ci", [], np.int32)
    cx = b.add_input("cx", [n], dt, **q)
    lim = b.add_constant("limit", np.array(limit, np.int32))
    d = b.add_tensor("d", [], np.int32)
    c = b.add_tensor("c", [], np.bool_)
    b.add_operator("SUB", [lim, ci], [d], fused_activation_function="NONE")
    b.add_operator("CAST", [d], [c])
    b.mark_outputs(c)
    # body
    b.new_subgraph("body")
    bi = b.add_input("bi", [], np.int32)
    bx = b.add_input("bx", [n], dt, **q)
    one = b.add_constant("one", np.array(1, np.int32))
    bi2 = b.add_tensor("bi2", [], np.int32)
    b.add_operator("ADD", [bi, one], [bi2], fused_activation_function="NONE")
    if int8:
        half = b.add_constant("half", np.array([100], np.int8), scale=0.005, zero_point=0)
        k = b.add_constant("k", np.array([int(round(step / 0.05)) + 3], np.int8), scale=0.05, zero_point=3)
    else:
        half = b.add_constant("half", np.array([0.5], np.float32))
        k = b.add_constant("k", np.array([step], np.float32))
    m = b.add_tensor("m", [n], dt, **q)
    bx2 = b.add_tensor("bx2", [n], dt, **q)
    b.add_operator("MUL", [bx, half], [m], fused_activation_function="NONE")
    b.add_operator("ADD", [m, k], [bx2], fused_activation_function="NONE")
    b.mark_outputs(bi2, bx2)
    return b.to_bytes()


@given(n=st.integers(1, 6), limit=st.integers(0, 12), start=st.integers(-3, 12),
       step=st.floats(-2, 2, width=32), seed=st.integers(0, 2**31 - 1), int8=st.booleans())
@examples(25)
def test_while_vs_litert_ref(oracle, n, limit, start, step, seed, int8):
    start = min(start, limit)   # the condition is "limit - i != 0": start at or below the limit
    rng = np.random.default_rng(seed)
    model = while_model(n, limit, step, int8=int8)
    x = rng.integers(-128, 128, n).astype(np.int8) if int8 else rng.normal(0, 3, n).astype(np.float32)
    it, _ = assert_matches_litert(oracle, model, [np.array(start, np.int32), x], "reference")
    assert int(it.get_tensor(it.get_output_details()[0]["index"])) == limit


def test_while_loop_limit_raises():
    model = while_model(2, 1000, 1.0)
    it = Interpreter(model_content=model, max_loop_iterations=50)
    it.allocate_tensors()
    it.set_tensor(0, np.array(0, np.int32))
    it.set_tensor(1, np.zeros(2, np.float32))
    with pytest.raises(QuantcoreError, match="max_loop_iterations=50"):
        it.invoke()
    # within the limit it runs
    it = Interpreter(model_content=model, max_loop_iterations=1000)
    it.allocate_tensors()
    it.set_tensor(0, np.array(0, np.int32))
    it.set_tensor(1, np.zeros(2, np.float32))
    it.invoke()


def test_while_infinite_loop_raises_not_hangs():
    # start above the limit: limit - i never reaches 0 (LiteRT would loop forever)
    model = while_model(1, 0, 1.0)
    it = Interpreter(model_content=model, max_loop_iterations=2000)
    it.allocate_tensors()
    it.set_tensor(0, np.array(1, np.int32))
    it.set_tensor(1, np.zeros(1, np.float32))
    with pytest.raises(QuantcoreError, match="WHILE ran 2000 iterations"):
        it.invoke()


def if_model(n: int) -> bytes:
    """IF(c) then (x + y, x) else (x * y, y)."""
    b = ModelBuilder()
    c = b.add_input("c", [1], np.bool_)
    x = b.add_input("x", [n], np.float32)
    y = b.add_input("y", [n], np.float32)
    o1 = b.add_tensor("o1", [n], np.float32)
    o2 = b.add_tensor("o2", [n], np.float32)
    b.add_operator("IF", [c, x, y], [o1, o2], then_subgraph_index=1, else_subgraph_index=2)
    b.mark_outputs(o1, o2)
    for name, op in (("then", "ADD"), ("else", "MUL")):
        b.new_subgraph(name)
        sx = b.add_input("sx", [n], np.float32)
        sy = b.add_input("sy", [n], np.float32)
        r = b.add_tensor("r", [n], np.float32)
        b.add_operator(op, [sx, sy], [r], fused_activation_function="NONE")
        b.mark_outputs(r, sx if op == "ADD" else sy)   # a branch output that is an input
    return b.to_bytes()


@given(n=st.integers(1, 8), cond=st.booleans(), seed=st.integers(0, 2**31 - 1))
@examples(12)
def test_if_vs_litert_ref(oracle, n, cond, seed):
    rng = np.random.default_rng(seed)
    x, y = (rng.normal(0, 2, n).astype(np.float32) for _ in range(2))
    assert_matches_litert(oracle, if_model(n), [np.array([cond]), x, y], "reference")


def stateful_model(n: int, *, with_call_once: bool = True, variable_tensor: bool = True) -> bytes:
    """CALL_ONCE(init: VAR_HANDLE('acc') <- ones*0.25); each invoke:
    s = READ('acc') * 0.5 + x; ASSIGN('acc', s); v(variable tensor) <- v + x via ADD into
    an output (v stays zero: only LSTM-like kernels write variables); outputs s."""
    b = ModelBuilder()
    x = b.add_input("x", [n], np.float32)
    if with_call_once:
        b.add_operator("CALL_ONCE", [], [], init_subgraph_index=1)
    h = b.add_tensor("h", [], None, tensor_type=int(TensorType.RESOURCE))
    b.add_operator("VAR_HANDLE", [], [h], container="", shared_name="acc")
    r = b.add_tensor("r", [n], np.float32)
    b.add_operator("READ_VARIABLE", [h], [r])
    half = b.add_constant("half", np.array([0.5], np.float32))
    m = b.add_tensor("m", [n], np.float32)
    s = b.add_tensor("s", [n], np.float32)
    b.add_operator("MUL", [r, half], [m], fused_activation_function="NONE")
    b.add_operator("ADD", [m, x], [s], fused_activation_function="NONE")
    b.add_operator("ASSIGN_VARIABLE", [h, s], [])
    outs = [s]
    if variable_tensor:
        v = b.add_tensor("v", [n], np.float32, is_variable=True)
        vo = b.add_tensor("vo", [n], np.float32)
        b.add_operator("ADD", [v, x], [vo], fused_activation_function="NONE")
        outs.append(vo)
    b.mark_outputs(*outs)
    b.new_subgraph("init")
    h2 = b.add_tensor("h2", [], None, tensor_type=int(TensorType.RESOURCE))
    b.add_operator("VAR_HANDLE", [], [h2], container="", shared_name="acc")
    init = b.add_constant("init", np.full(n, 0.25, np.float32))
    b.add_operator("ASSIGN_VARIABLE", [h2, init], [])
    return b.to_bytes()


@pytest.mark.parametrize("n", [1, 3])
def test_resource_variables_persist_across_invokes_vs_litert_ref(n):
    rng = np.random.default_rng(n)
    steps = [[rng.normal(0, 1, n).astype(np.float32)] for _ in range(4)]
    it = assert_steps_match(stateful_model(n), steps, "reference", reset_at=(2,))
    # reset_all_variables leaves resource variables (and CALL_ONCE) alone, as in LiteRT
    assert it.resources


def test_read_unassigned_variable_raises():
    model = stateful_model(2, with_call_once=False)
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(0, np.zeros(2, np.float32))
    with pytest.raises(InputError, match="never assigned"):
        it.invoke()


def test_resource_ids_follow_litert_order():
    from quantcore.runtime.ops.resource_variables import resource_ids
    from quantcore.schema import read_model
    ids = resource_ids(read_model(stateful_model(2)))
    assert ids == {("", "acc"): 0}


def test_while_bad_signatures_raise():
    b = ModelBuilder()
    i0 = b.add_input("i", [], np.int32)
    o = b.add_tensor("o", [], np.int32)
    b.add_operator("WHILE", [i0], [o], cond_subgraph_index=1, body_subgraph_index=1)
    b.mark_outputs(o)
    b.new_subgraph("c")
    ci = b.add_input("ci", [], np.int32)
    c = b.add_tensor("c", [], np.bool_)
    b.add_operator("CAST", [ci], [c])
    b.mark_outputs(c)
    with pytest.raises(ModelFormatError, match="same subgraph"):
        Interpreter(model_content=b.to_bytes()).allocate_tensors()
    # cond output not bool
    b2 = ModelBuilder()
    i0 = b2.add_input("i", [], np.int32)
    o = b2.add_tensor("o", [], np.int32)
    b2.add_operator("WHILE", [i0], [o], cond_subgraph_index=1, body_subgraph_index=2)
    b2.mark_outputs(o)
    b2.new_subgraph("c")
    ci = b2.add_input("ci", [], np.int32)
    b2.mark_outputs(ci)
    b2.new_subgraph("b")
    bi = b2.add_input("bi", [], np.int32)
    b2.mark_outputs(bi)
    with pytest.raises(ModelFormatError, match="not BOOL"):
        Interpreter(model_content=b2.to_bytes()).allocate_tensors()


def test_if_bad_condition_raises():
    b = ModelBuilder()
    c = b.add_input("c", [2], np.bool_)
    x = b.add_input("x", [1], np.float32)
    o = b.add_tensor("o", [1], np.float32)
    b.add_operator("IF", [c, x], [o], then_subgraph_index=1, else_subgraph_index=1)
    b.mark_outputs(o)
    b.new_subgraph("t")
    sx = b.add_input("sx", [1], np.float32)
    b.mark_outputs(sx)
    with pytest.raises(ModelFormatError, match="2 elements"):
        Interpreter(model_content=b.to_bytes()).allocate_tensors()


# ---------------------------------------------------------------------------
# the small ops converted Keras loops need: comparisons, logic, REVERSE_V2
# ---------------------------------------------------------------------------
CMP = ["LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL"]


@given(op=st.sampled_from(CMP), dtype=st.sampled_from(["float32", "int32", "int64", "int8", "uint8"]),
       shapes=st.sampled_from([([3], [3]), ([2, 3], [3]), ([1], [4, 1]), ([2, 1, 3], [1, 4, 1]), ([], [5])]),
       seed=st.integers(0, 2**31 - 1))
@examples(30)
def test_comparisons_vs_litert_ref(oracle, op, dtype, shapes, seed):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    b = ModelBuilder()
    q = []
    for k in range(2):
        if dt.kind in "iu" and dt.itemsize == 1:
            info = np.iinfo(dt)
            q.append(dict(scale=float(np.float32(rng.uniform(0.01, 0.9))),
                          zero_point=int(rng.integers(info.min, info.max + 1))))
        else:
            q.append({})
    a_ = b.add_input("a", shapes[0], dt, **q[0])
    b_ = b.add_input("b", shapes[1], dt, **q[1])
    out_shape = np.broadcast_shapes(tuple(shapes[0]), tuple(shapes[1]))
    y = b.add_tensor("y", out_shape, np.bool_)
    b.add_operator(op, [a_, b_], [y])
    b.mark_outputs(y)
    if dt.kind == "f":
        xs = [np.round(rng.normal(0, 2, s) * 2).astype(dt) / 2 for s in shapes]  # ties
    else:
        info = np.iinfo(dt)
        lo, hi = max(info.min, -50), min(info.max, 50)
        xs = [rng.integers(lo, hi + 1, s).astype(dt) for s in shapes]
    assert_matches_litert(oracle, b.to_bytes(), xs, "reference")


@given(op=st.sampled_from(["LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT"]), seed=st.integers(0, 2**31 - 1))
@examples(10)
def test_logical_vs_litert_ref(oracle, op, seed):
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    a_ = b.add_input("a", [2, 3], np.bool_)
    ins, xs = [a_], [rng.integers(0, 2, (2, 3)).astype(bool)]
    if op != "LOGICAL_NOT":
        ins.append(b.add_input("b", [3], np.bool_))
        xs.append(rng.integers(0, 2, 3).astype(bool))
    y = b.add_tensor("y", [2, 3], np.bool_)
    b.add_operator(op, ins, [y])
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), xs, "reference")


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(),
       dtype=st.sampled_from(["float32", "int8", "int32", "int16"]))
@examples(20)
def test_reverse_v2_vs_litert_ref(oracle, shape, data, dtype):
    rank = len(shape)
    start = data.draw(st.integers(0, rank - 1))
    n = data.draw(st.integers(1, rank - start))
    axes = list(range(start, start + n))
    if data.draw(st.booleans()):
        axes = [a - rank for a in axes]
    rng = np.random.default_rng(len(shape))
    b = ModelBuilder()
    x = b.add_input("x", shape, np.dtype(dtype))
    ax = b.add_constant("axis", np.array(axes, np.int32))
    y = b.add_tensor("y", shape, np.dtype(dtype))
    b.add_operator("REVERSE_V2", [x, ax], [y])
    b.mark_outputs(y)
    xv = (rng.normal(0, 3, shape) * 10).astype(dtype)
    assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")
