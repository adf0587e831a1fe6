"""UNIDIRECTIONAL_SEQUENCE_LSTM, RNN, UNIDIRECTIONAL_SEQUENCE_RNN and SVDF against
LiteRT BUILTIN_REF (single-op models built with ModelBuilder; float, hybrid and
integer; CIFG, peephole, projection, layer norm, clipping, time-major), state carried
across several invokes in variable tensors, and every recurrent fixture
(tests/fixtures/recurrent, built by scripts/make_fixtures_recurrent.py) over several
consecutive invokes. Integer tensors must be bit-exact; float within 1e-4 of the
output range (LiteRT's float LSTM uses its optimized GEMM)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _litert_steps import assert_steps_match
from harness import examples, random_scale
from quantcore.errors import ModelFormatError
from quantcore.runtime import Interpreter
from quantcore.schema.builder import ModelBuilder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recurrent"
RTOL = 1e-4
ACTS = {0: "NONE", 1: "RELU", 3: "RELU6", 4: "TANH"}


def _q8(rng, shape, scale):
    v = rng.integers(-127, 128, shape).astype(np.int8)
    return v, dict(scale=scale, zero_point=0)


def lstm_model(rng, *, kind, n_batch, n_time, n_input, n_cell, n_output, cifg=False,
               peephole=False, projection=False, proj_bias=False, layer_norm=False,
               time_major=False, act="TANH", cell_clip=0.0, proj_clip=0.0, asym=False):
    """A one-op UNIDIRECTIONAL_SEQUENCE_LSTM model and a function drawing its input."""
    b = ModelBuilder()
    shape = [n_time, n_batch, n_input] if time_major else [n_batch, n_time, n_input]
    out_shape = shape[:2] + [n_output]
    integer = kind == "integer"
    if integer:
        s_in = random_scale(rng, 0.01, 0.05)
        zp_in = int(rng.integers(-20, 20))
        x = b.add_input("x", shape, np.int8, scale=s_in, zero_point=zp_in)
    else:
        x = b.add_input("x", shape, np.float32)
    ins = [x]

    def weights(name, rows, cols):
        if kind == "float":
            return b.add_constant(name, rng.normal(0, 0.4, (rows, cols)).astype(np.float32))
        v, q = _q8(rng, (rows, cols), random_scale(rng, 0.002, 0.01))
        return b.add_constant(name, v, **q)

    gates = "ifco"
    for g in gates:                                   # 1-4 input-to-gate
        ins.append(-1 if (cifg and g == "i") else weights(f"i2{g}", n_cell, n_input))
    for g in gates:                                   # 5-8 recurrent-to-gate
        ins.append(-1 if (cifg and g == "i") else weights(f"r2{g}", n_cell, n_output))
    for g in "ifo":                                   # 9-11 peephole
        if not peephole or (cifg and g == "i"):
            ins.append(-1)
        elif kind == "float":
            ins.append(b.add_constant(f"c2{g}", rng.normal(0, 0.3, n_cell).astype(np.float32)))
        elif kind == "hybrid":
            v, q = _q8(rng, (n_cell,), random_scale(rng, 0.002, 0.01))
            ins.append(b.add_constant(f"c2{g}", v, **q))
        else:
            ins.append(b.add_constant(f"c2{g}", rng.integers(-3000, 3000, n_cell).astype(np.int16),
                                      scale=random_scale(rng, 1e-5, 1e-4), zero_point=0))
    for g in gates:                                   # 12-15 biases
        if cifg and g == "i":
            ins.append(-1)
        elif integer:
            ins.append(b.add_constant(f"b{g}", rng.integers(-3000, 3000, n_cell).astype(np.int32),
                                      scale=1e-5, zero_point=0))
        else:
            ins.append(b.add_constant(f"b{g}", rng.normal(0, 0.5, n_cell).astype(np.float32)))
    if projection:                                    # 16-17 projection
        ins.append(weights("proj_w", n_output, n_cell))
        if proj_bias:
            ins.append(b.add_constant("proj_b", rng.integers(-2000, 2000, n_output).astype(np.int32)
                                      if integer else rng.normal(0, 0.3, n_output).astype(np.float32)))
        else:
            ins.append(-1)
    else:
        ins += [-1, -1]
    if integer:                                       # 18-19 states
        s_h = random_scale(rng, 0.004, 0.01)
        zp_h = int(rng.integers(-10, 10))
        h = b.add_tensor("h", [n_batch, n_output], np.int8, scale=s_h, zero_point=zp_h, is_variable=True)
        c = b.add_tensor("c", [n_batch, n_cell], np.int16, scale=2.0 ** -11, zero_point=0, is_variable=True)
    else:
        h = b.add_tensor("h", [n_batch, n_output], np.float32, is_variable=True)
        c = b.add_tensor("c", [n_batch, n_cell], np.float32, is_variable=True)
    ins += [h, c]
    for g in gates:                                   # 20-23 layer norm
        if not layer_norm or (cifg and g == "i"):
            ins.append(-1)
        elif integer:
            ins.append(b.add_constant(f"ln_{g}", rng.integers(5000, 20000, n_cell).astype(np.int16),
                                      scale=random_scale(rng, 5e-5, 2e-4), zero_point=0))
        else:
            ins.append(b.add_constant(f"ln_{g}", rng.uniform(0.5, 1.5, n_cell).astype(np.float32)))
    inter = None
    if integer:
        y = b.add_tensor("y", out_shape, np.int8, scale=s_h, zero_point=zp_h)
        inter = []
        for g in gates:
            inter.append(b.add_tensor(f"inter_{g}", [], np.int16, scale=random_scale(rng, 2e-4, 1e-3),
                                      zero_point=0))
        inter.append(b.add_tensor("inter_hidden", [], np.int8, scale=random_scale(rng, 0.004, 0.01),
                                  zero_point=int(rng.integers(-5, 5))))
    else:
        y = b.add_tensor("y", out_shape, np.float32)
    b.add_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], intermediates=inter,
                   fused_activation_function=act, cell_clip=cell_clip, proj_clip=proj_clip,
                   time_major=time_major, asymmetric_quantize_inputs=asym)
    b.mark_outputs(y)

    def draw(r):
        if integer:
            return r.integers(-128, 128, shape).astype(np.int8)
        return (r.normal(0, 1, shape) * r.uniform(0.3, 3)).astype(np.float32)
    return b.to_bytes(), draw


lstm_case = st.fixed_dictionaries(dict(
    n_batch=st.integers(1, 3), n_time=st.integers(1, 5), n_input=st.integers(1, 20),
    n_cell=st.integers(1, 12), n_output=st.integers(1, 10), cifg=st.booleans(),
    peephole=st.booleans(), projection=st.booleans(), proj_bias=st.booleans(),
    layer_norm=st.booleans(), time_major=st.booleans(), seed=st.integers(0, 2**31 - 1)))


def _check_lstm(kind, c, steps=2, **kw):
    if not c["projection"]:
        c = dict(c, n_output=c["n_cell"])
    if kind == "integer" and c["peephole"]:
        # LiteRT walks n_output elements of the n_cell-sized buffers (out of bounds
        # beyond n_cell; refused by quantcore, see test_lstm_integer_peephole_oob)
        c = dict(c, n_output=min(c["n_output"], c["n_cell"]))
    rng = np.random.default_rng(c.pop("seed"))
    model, draw = lstm_model(rng, kind=kind, **c, **kw)
    inputs = [[draw(rng)] for _ in range(steps)]
    assert_steps_match(model, inputs, "reference", rtol=RTOL)


@given(c=lstm_case, act=st.sampled_from([4, 4, 1, 3, 0]),
       clips=st.sampled_from([(0.0, 0.0), (0.7, 0.0), (0.0, 0.5), (1.5, 0.8)]))
@examples(25)
def test_unidirectional_sequence_lstm_float_vs_litert_ref(c, act, clips):
    _check_lstm("float", c, act=ACTS[act], cell_clip=clips[0], proj_clip=clips[1])


@given(c=lstm_case, asym=st.booleans(), act=st.sampled_from([4, 4, 1, 0]),
       clips=st.sampled_from([(0.0, 0.0), (0.7, 0.3)]))
@examples(25)
def test_unidirectional_sequence_lstm_hybrid_vs_litert_ref(c, asym, act, clips):
    _check_lstm("hybrid", c, asym=asym, act=ACTS[act], cell_clip=clips[0], proj_clip=clips[1])


@given(c=lstm_case, clips=st.sampled_from([(0.0, 0.0), (3.0, 0.0), (0.0, 0.2), (2.0, 0.5)]))
@examples(40)
def test_unidirectional_sequence_lstm_int8_vs_litert_ref(c, clips):
    # LiteRT's integer layer norm divides by n_cell in a way that is only exact for
    # powers of two (its own TODO); any n_cell is compared here, bit for bit.
    _check_lstm("integer", c, steps=3, cell_clip=clips[0], proj_clip=clips[1])


def test_lstm_state_persists_and_resets():
    rng = np.random.default_rng(7)
    model, draw = lstm_model(rng, kind="float", n_batch=1, n_time=2, n_input=3, n_cell=4,
                             n_output=4)
    inputs = [[draw(rng)] for _ in range(4)]
    assert_steps_match(model, inputs, "reference", rtol=RTOL, reset_at=(2,))


def test_lstm_integer_needs_intermediates():
    rng = np.random.default_rng(3)
    model, _ = lstm_model(rng, kind="integer", n_batch=1, n_time=2, n_input=3, n_cell=4, n_output=4)
    from quantcore.schema import read_model
    from quantcore.schema.writer import write_model
    m = read_model(model)
    m.subgraphs[0].operators[0].intermediates = m.subgraphs[0].operators[0].intermediates[:3]
    with pytest.raises(ModelFormatError, match="5 intermediate"):
        Interpreter(model_content=write_model(m)).allocate_tensors()


def test_lstm_integer_peephole_oob_refused():
    rng = np.random.default_rng(5)
    model, _ = lstm_model(rng, kind="integer", n_batch=1, n_time=2, n_input=3, n_cell=2,
                          n_output=4, peephole=True, projection=True)
    with pytest.raises(ModelFormatError, match="out of bounds"):
        Interpreter(model_content=model).allocate_tensors()


@pytest.mark.parametrize("act", ["NONE", "RELU", "SIGN_BIT"])
def test_lstm_integer_ignores_the_activation_option(act):
    """LiteRT BUILTIN_REF: the integer 8x8_16 step never reads the fused activation (tanh
    for the cell gate and the output): a RELU/NONE/SIGN_BIT LSTM runs and matches."""
    rng = np.random.default_rng(4)
    model, draw = lstm_model(rng, kind="integer", n_batch=1, n_time=2, n_input=3, n_cell=4,
                             n_output=4, act=act)
    r = np.random.default_rng(5)
    assert_steps_match(model, [[draw(r)], [draw(r)]], "reference")


def test_lstm_rank2_input_rejected():
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.float32)
    y = b.add_tensor("y", [2, 3], np.float32)
    b.add_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", [x] + [-1] * 23, [y])
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError):
        Interpreter(model_content=b.to_bytes()).allocate_tensors()


def bilstm_model(rng, *, kind, n_batch, n_time, n_input, n_cell, n_output, cifg, peephole,
                 projection, merge, time_major, aux_mode, n_aux, act, asym):
    """A one-op BIDIRECTIONAL_SEQUENCE_LSTM (float or hybrid); aux_mode: "none",
    "stacking" (aux input and aux weights) or "non_stacking" (aux input only)."""
    b = ModelBuilder()
    shape = [n_time, n_batch, n_input] if time_major else [n_batch, n_time, n_input]
    x = b.add_input("x", shape, np.float32)
    aux_shape = shape[:2] + [n_aux if aux_mode == "stacking" else n_input]

    def weights(name, rows, cols):
        if kind == "float":
            return b.add_constant(name, rng.normal(0, 0.4, (rows, cols)).astype(np.float32))
        v, q = _q8(rng, (rows, cols), random_scale(rng, 0.002, 0.01))
        return b.add_constant(name, v, **q)

    ins = [x]
    for d in ("fw", "bw"):
        for g in "ifco":
            ins.append(-1 if (cifg and g == "i") else weights(f"{d}i2{g}", n_cell, n_input))
        for g in "ifco":
            ins.append(-1 if (cifg and g == "i") else weights(f"{d}r2{g}", n_cell, n_output))
        for g in "ifo":
            if not peephole or (cifg and g == "i"):
                ins.append(-1)
            elif kind == "float":
                ins.append(b.add_constant(f"{d}c2{g}", rng.normal(0, 0.3, n_cell).astype(np.float32)))
            else:
                v, q = _q8(rng, (n_cell,), random_scale(rng, 0.002, 0.01))
                ins.append(b.add_constant(f"{d}c2{g}", v, **q))
        for g in "ifco":
            ins.append(-1 if (cifg and g == "i") else
                       b.add_constant(f"{d}b{g}", rng.normal(0, 0.5, n_cell).astype(np.float32)))
        if projection:
            ins += [weights(f"{d}pw", n_output, n_cell),
                    b.add_constant(f"{d}pb", rng.normal(0, 0.3, n_output).astype(np.float32))]
        else:
            ins += [-1, -1]
    for d in ("fw", "bw"):
        ins.append(b.add_tensor(f"{d}h", [n_batch, n_output], np.float32, is_variable=True))
        ins.append(b.add_tensor(f"{d}c", [n_batch, n_cell], np.float32, is_variable=True))
    ins.append(-1 if aux_mode == "none" else b.add_input("aux", aux_shape, np.float32))
    for d in ("fw", "bw"):
        for g in "ifco":
            ins.append(weights(f"{d}a2{g}", n_cell, n_aux)
                       if aux_mode == "stacking" and not (cifg and g == "i") else -1)
    if merge:
        outs = [b.add_tensor("y", shape[:2] + [2 * n_output], np.float32)]
    else:
        outs = [b.add_tensor("y_fw", shape[:2] + [n_output], np.float32),
                b.add_tensor("y_bw", shape[:2] + [n_output], np.float32)]
    b.add_operator("BIDIRECTIONAL_SEQUENCE_LSTM", ins, outs, fused_activation_function=act,
                   merge_outputs=merge, time_major=time_major, asymmetric_quantize_inputs=asym)
    b.mark_outputs(*outs)

    def draw(r):
        xs = [(r.normal(0, 1, shape) * r.uniform(0.3, 3)).astype(np.float32)]
        if aux_mode != "none":
            xs.append(r.normal(0, 1, aux_shape).astype(np.float32))
        return xs
    return b.to_bytes(), draw


@given(kind=st.sampled_from(["float", "hybrid"]), n_batch=st.integers(1, 2),
       n_time=st.integers(1, 4), n_input=st.integers(1, 10), n_cell=st.integers(1, 8),
       n_output=st.integers(1, 8), cifg=st.booleans(), peephole=st.booleans(),
       projection=st.booleans(), merge=st.booleans(), time_major=st.booleans(),
       aux_mode=st.sampled_from(["none", "stacking", "non_stacking"]), n_aux=st.integers(1, 6),
       asym=st.booleans(), seed=st.integers(0, 2**31 - 1))
@examples(20)
def test_bidirectional_sequence_lstm_vs_litert_ref(kind, n_batch, n_time, n_input, n_cell,
                                                  n_output, cifg, peephole, projection, merge,
                                                  time_major, aux_mode, n_aux, asym, seed):
    if not projection:
        n_output = n_cell
    if merge and not time_major:
        n_batch = 1       # larger batches: LiteRT out of bounds, refused (test below)
    rng = np.random.default_rng(seed)
    model, draw = bilstm_model(rng, kind=kind, n_batch=n_batch, n_time=n_time, n_input=n_input,
                               n_cell=n_cell, n_output=n_output, cifg=cifg, peephole=peephole,
                               projection=projection, merge=merge, time_major=time_major,
                               aux_mode=aux_mode, n_aux=n_aux, act="TANH", asym=asym)
    assert_steps_match(model, [draw(rng) for _ in range(2)], "reference", rtol=RTOL)


def test_bidirectional_merge_batch_major_refused():
    rng = np.random.default_rng(1)
    model, _ = bilstm_model(rng, kind="float", n_batch=2, n_time=2, n_input=2, n_cell=2,
                            n_output=2, cifg=False, peephole=False, projection=False, merge=True,
                            time_major=False, aux_mode="none", n_aux=1, act="TANH", asym=False)
    with pytest.raises(ModelFormatError, match="out of"):
        Interpreter(model_content=model).allocate_tensors()


# ---------------------------------------------------------------------------
# RNN / UNIDIRECTIONAL_SEQUENCE_RNN
# ---------------------------------------------------------------------------
def rnn_model(rng, *, op, kind, n_batch, n_time, n_input, units, act, asym=False, time_major=False):
    b = ModelBuilder()
    if op == "RNN":
        shape = [n_batch, n_input]
        out_shape = [n_batch, units]
    else:
        shape = [n_time, n_batch, n_input] if time_major else [n_batch, n_time, n_input]
        out_shape = shape[:2] + [units]
    x = b.add_input("x", shape, np.float32)
    if kind == "float":
        w = b.add_constant("w", rng.normal(0, 0.4, (units, n_input)).astype(np.float32))
        r = b.add_constant("r", rng.normal(0, 0.3, (units, units)).astype(np.float32))
    else:
        v, q = _q8(rng, (units, n_input), random_scale(rng, 0.002, 0.01))
        w = b.add_constant("w", v, **q)
        v, q = _q8(rng, (units, units), random_scale(rng, 0.002, 0.01))
        r = b.add_constant("r", v, **q)
    bias = b.add_constant("b", rng.normal(0, 0.5, units).astype(np.float32))
    h = b.add_tensor("h", [n_batch, units], np.float32, is_variable=True)
    y = b.add_tensor("y", out_shape, np.float32)
    opts = dict(fused_activation_function=act, asymmetric_quantize_inputs=asym)
    if op != "RNN":
        opts["time_major"] = time_major
    b.add_operator(op, [x, w, r, bias, h], [y], **opts)
    b.mark_outputs(y)
    return b.to_bytes(), shape


@given(op=st.sampled_from(["RNN", "UNIDIRECTIONAL_SEQUENCE_RNN"]),
       kind=st.sampled_from(["float", "hybrid"]), n_batch=st.integers(1, 3),
       n_time=st.integers(1, 4), n_input=st.integers(1, 24), units=st.integers(1, 12),
       act=st.sampled_from([4, 1, 0, 3]), asym=st.booleans(), time_major=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
@examples(30)
def test_rnn_vs_litert_ref(op, kind, n_batch, n_time, n_input, units, act, asym, time_major, seed):
    rng = np.random.default_rng(seed)
    model, shape = rnn_model(rng, op=op, kind=kind, n_batch=n_batch, n_time=n_time,
                             n_input=n_input, units=units, act=ACTS[act], asym=asym,
                             time_major=time_major)
    steps = [[(rng.normal(0, 1, shape) * rng.uniform(0.3, 3)).astype(np.float32)] for _ in range(3)]
    assert_steps_match(model, steps, "reference", rtol=RTOL)


# ---------------------------------------------------------------------------
# SVDF
# ---------------------------------------------------------------------------
def svdf_model(rng, *, kind, n_batch, n_input, rank, units, memory, act, bias, asym=False):
    b = ModelBuilder()
    nf = rank * units
    if kind == "integer":
        s_in = random_scale(rng, 0.005, 0.05)
        x = b.add_input("x", [n_batch, n_input], np.int8, scale=s_in, zero_point=int(rng.integers(-30, 30)))
        v, q = _q8(rng, (nf, n_input), random_scale(rng, 0.002, 0.02))
        wf = b.add_constant("wf", v, **q)
        wt = b.add_constant("wt", rng.integers(-20000, 20000, (nf, memory)).astype(np.int16),
                            scale=random_scale(rng, 1e-5, 1e-4), zero_point=0)
        bi = b.add_constant("b", rng.integers(-5000, 5000, units).astype(np.int32)) if bias else -1
        st_ = b.add_tensor("state", [n_batch, memory * nf], np.int16, scale=random_scale(rng, 1e-4, 1e-3),
                           zero_point=0, is_variable=True)
        y = b.add_tensor("y", [n_batch, units], np.int8, scale=random_scale(rng, 0.005, 0.05),
                         zero_point=int(rng.integers(-128, 0)))
    else:
        x = b.add_input("x", [n_batch, n_input], np.float32)
        if kind == "float":
            wf = b.add_constant("wf", rng.normal(0, 0.4, (nf, n_input)).astype(np.float32))
            wt = b.add_constant("wt", rng.normal(0, 0.4, (nf, memory)).astype(np.float32))
        else:
            v, q = _q8(rng, (nf, n_input), random_scale(rng, 0.002, 0.01))
            wf = b.add_constant("wf", v, **q)
            v, q = _q8(rng, (nf, memory), random_scale(rng, 0.002, 0.01))
            wt = b.add_constant("wt", v, **q)
        bi = b.add_constant("b", rng.normal(0, 0.5, units).astype(np.float32)) if bias else -1
        st_ = b.add_tensor("state", [n_batch, memory * nf], np.float32, is_variable=True)
        y = b.add_tensor("y", [n_batch, units], np.float32)
    b.add_operator("SVDF", [x, wf, wt, bi, st_], [y], rank=rank, fused_activation_function=act,
                   asymmetric_quantize_inputs=asym)
    b.mark_outputs(y)
    return b.to_bytes()


@given(kind=st.sampled_from(["float", "hybrid", "integer"]), n_batch=st.integers(1, 3),
       n_input=st.integers(1, 20), rank=st.integers(1, 3), units=st.integers(1, 6),
       memory=st.integers(1, 6), act=st.sampled_from([0, 1, 4, 3]), bias=st.booleans(),
       asym=st.booleans(), seed=st.integers(0, 2**31 - 1))
@examples(40)
def test_svdf_vs_litert_ref(kind, n_batch, n_input, rank, units, memory, act, bias, asym, seed):
    if kind == "integer":
        act = 1
    rng = np.random.default_rng(seed)
    model = svdf_model(rng, kind=kind, n_batch=n_batch, n_input=n_input, rank=rank, units=units,
                       memory=memory, act=ACTS[act], bias=bias, asym=asym)
    if kind == "integer":
        steps = [[rng.integers(-128, 128, (n_batch, n_input)).astype(np.int8)] for _ in range(4)]
    else:
        steps = [[(rng.normal(0, 1, (n_batch, n_input)) * rng.uniform(0.3, 3)).astype(np.float32)]
                 for _ in range(4)]
    assert_steps_match(model, steps, "reference", rtol=RTOL)


def test_svdf_bad_rank_raises():
    rng = np.random.default_rng(0)
    model = svdf_model(rng, kind="float", n_batch=1, n_input=3, rank=2, units=2, memory=2,
                       act="NONE", bias=False)
    from quantcore.schema import read_model
    from quantcore.schema.writer import write_model
    m = read_model(model)
    m.subgraphs[0].operators[0].builtin_options["rank"] = 3
    with pytest.raises(ModelFormatError, match="rank"):
        Interpreter(model_content=write_model(m)).allocate_tensors()


# ---------------------------------------------------------------------------
# fixtures: trained Keras models, every conversion mode, several invokes
# ---------------------------------------------------------------------------
def _fixture_entries():
    path = FIXTURES / "manifest.json"
    if not path.exists():
        return []
    return [e for e in json.loads(path.read_text()) if e.get("status") == "ok"]


@pytest.mark.parametrize("entry", _fixture_entries(), ids=lambda e: e["file"])
def test_recurrent_fixture_vs_litert_ref(entry):
    model = (FIXTURES / entry["file"]).read_bytes()
    calib = np.load(FIXTURES / entry["calib"])
    steps = [[calib[i]] for i in range(4)]
    assert_steps_match(model, steps, "reference", rtol=RTOL)
