"""Quantizing recurrent models (issue 10): WHILE loops, resource variables, fused LSTMs.

Every float fixture of tests/fixtures/recurrent (trained Keras models, built by
scripts/make_fixtures_recurrent.py) is quantized by quantcore in ``int8``,
``dynamic`` and ``float16`` modes, including the WHILE models the TensorFlow 2.21
converter crashes on in int8. Each result

* runs in LiteRT ``BUILTIN_REF`` (the ``oracle`` fixture, one invoke, every tensor of
  subgraph 0) and over four consecutive invokes (state carried in variable tensors
  and resource variables), equal to quantcore's runtime on every integer tensor and
  within 1e-5 of the range on float tensors;
* has an output SQNR against the float model of at least 15 dB on the calibration
  sequences, fed one per invoke in order as in calibration.

The fused LSTMs are also compared with the converter's own int8 output
(``<model>_int8.tflite``, the independent reference for tensor types and
parameters).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import assert_matches_litert
from ops._litert_steps import assert_steps_match
from quantcore import InputError, quantize
from quantcore.quantizer import QuantizationReport
from quantcore.quantizer.recurrent import RecurrentStats, cell_state_scale
from quantcore.runtime import Interpreter
from quantcore.schema import read_model
from quantcore.schema.builder import ModelBuilder

FIXTURES = Path(__file__).parent / "fixtures" / "recurrent"
WHILE_MODELS = ["lstm_k3", "gru_k3", "simplernn_k3", "gru_stateful_tfkeras"]
LSTM_MODELS = ["lstm_tfkeras", "lstm_seq_tfkeras", "bilstm_tfkeras"]
ALL = LSTM_MODELS + WHILE_MODELS + ["accumulator"]
RESOURCE_MODELS = ("accumulator", "gru_stateful_tfkeras")
RTOL = 1e-5
_CACHE: dict = {}


def calib(name: str) -> np.ndarray:
    return np.load(FIXTURES / f"{name}_calib.npy")   # [16, 1, 8, 4]


def float_path(name: str) -> Path:
    return FIXTURES / f"{name}_float32.tflite"


def quantized(name: str, mode: str = "int8", **kw) -> tuple[bytes, QuantizationReport]:
    key = (name, mode, tuple(sorted(kw.items())))
    if key not in _CACHE:
        report = QuantizationReport([])
        data = calib(name)
        ds = (lambda: ([x] for x in data)) if mode == "int8" else None
        _CACHE[key] = quantize(float_path(name), representative_dataset=ds, mode=mode,
                               report=report, **kw), report
    return _CACHE[key]


def outputs_over(model, sequences: np.ndarray) -> np.ndarray:
    """Output 0 after each invoke, one sequence per invoke, state carried over."""
    it = Interpreter(model_content=model) if isinstance(model, bytes) else Interpreter(model_path=model)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for x in sequences:
        it.set_tensor(d["index"], x.astype(np.float32))
        it.invoke()
        outs.append(it.get_tensor(o["index"]))
    return np.array(outs)


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref, test = ref.astype(np.float64), test.astype(np.float64)
    noise = np.sum((ref - test) ** 2)
    return float(10 * np.log10(np.sum(ref ** 2) / noise)) if noise > 0 else float("inf")


# ---------------------------------------------------------------------------
# int8: every fixture, converter crashes included
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_int8_runs_in_litert_ref_bit_exact(oracle, name):
    """int8 model vs LiteRT BUILTIN_REF: one invoke (every tensor of subgraph 0), then
    four consecutive invokes (state in variable tensors / resource variables)."""
    model, _ = quantized(name)
    x = calib(name)
    # (LiteRT returns RESOURCE tensors as opaque objects: those models are compared
    # tensor by tensor in the steps check, which skips them)
    assert_matches_litert(oracle, model, [x[0]], "reference", rtol=RTOL,
                          all_tensors=name not in RESOURCE_MODELS)
    assert_steps_match(model, [[x[i]] for i in range(4)], "reference", rtol=RTOL)


@pytest.mark.parametrize("name", ALL)
def test_int8_sqnr_at_least_15db(name):
    model, _ = quantized(name)
    x = calib(name)
    assert sqnr_db(outputs_over(float_path(name), x), outputs_over(model, x)) >= 15.0


@pytest.mark.parametrize("name", WHILE_MODELS)
def test_while_loop_runs_in_int8(name):
    """The loop-carried float values are int8 at the WHILE boundary (one set of
    parameters for the WHILE's, the cond's and the body's input k and the body's
    output k) and the body's arithmetic is integer: no float operator left in it."""
    model, report = quantized(name)
    m = read_model(model)
    assert not any(n == "WHILE" or "in subgraph" in n for _, n, _ in report.float_ops), report.float_ops
    assert any("integer loop-carried values" in n for n in report.notes), report.notes
    main = m.subgraphs[0]
    loop = next(op for op in main.operators if m.op_name(op) == "WHILE")
    cond, body = (m.subgraphs[loop.options[k]] for k in ("cond_subgraph_index", "body_subgraph_index"))
    for k, t in enumerate(loop.inputs):
        kind = main.tensors[t].type_name
        assert kind in ("INT8", "INT32"), (k, kind)
        params = _params(main.tensors[t])
        for tensor in (main.tensors[loop.outputs[k]], cond.tensors[cond.inputs[k]],
                       body.tensors[body.inputs[k]], body.tensors[body.outputs[k]]):
            assert (tensor.type_name, _params(tensor)) == (kind, params), (k, tensor.name)
    body_ops = {(m.op_name(op), body.tensors[op.outputs[0]].type_name) for op in body.operators}
    assert not {n for n, t in body_ops if t == "FLOAT32"}, body_ops
    assert {"FULLY_CONNECTED", "TANH"} <= {n for n, _ in body_ops}


@pytest.mark.parametrize("name", ["lstm_k3", "gru_stateful_tfkeras"])
def test_while_denylisted_keeps_float_boundary(name):
    """WHILE in the denylist: loop-carried values stay float at the boundary and the
    body quantizes them on entry and dequantizes on exit (the simple design): LiteRT
    BUILTIN_REF over three invokes, >= 15 dB."""
    model, report = quantized(name, denylist=("WHILE",))
    assert ("WHILE", "denylist") in {(n, r) for _, n, r in report.float_ops}
    m = read_model(model)
    loop = next(op for op in m.subgraphs[0].operators if m.op_name(op) == "WHILE")
    body = m.subgraphs[loop.options["body_subgraph_index"]]
    assert {body.tensors[t].type_name for t in body.inputs} <= {"FLOAT32", "INT32"}
    assert "QUANTIZE" in {m.op_name(op) for op in body.operators}
    x = calib(name)
    assert_steps_match(model, [[x[i]] for i in range(3)], "reference", rtol=RTOL)
    assert sqnr_db(outputs_over(float_path(name), x), outputs_over(model, x)) >= 15.0


def test_body_calibrated_at_every_iteration():
    """Each body tensor is observed once per WHILE iteration: 8 steps x 16 sequences."""
    from quantcore.quantizer.calibrate import calibrate
    from quantcore.schema import read_model as rm
    m = rm(float_path("simplernn_k3"))
    stats = RecurrentStats(m)
    data = calib("simplernn_k3")
    calibrate(m, lambda: ([x] for x in data), op_observer=stats)
    body = next(op.options["body_subgraph_index"] for op in m.subgraphs[0].operators
                if m.op_name(op) == "WHILE")
    tanh = next(op.outputs[0] for op in m.subgraphs[body].operators if m.op_name(op) == "TANH")
    assert stats.cals[(body, tanh)].count == 8 * len(data)


def test_lstm_replay_equals_the_kernel():
    """The calibration replay of the fused LSTM (float steps from the tracked state)
    ends in exactly the state the LSTM kernel leaves in its variable tensors, invoke
    after invoke, so the logged per-step cell and hidden values are the kernel's."""
    m = read_model(float_path("lstm_seq_tfkeras"))
    stats = RecurrentStats(m)
    it = Interpreter(model=m)
    it.allocate_tensors()
    it.op_observer = stats
    d = it.get_input_details()[0]
    for x in calib("lstm_seq_tfkeras")[:3]:
        it.set_tensor(d["index"], x)
        it.invoke()
    ops = m.subgraphs[0].operators
    assert len(stats.lstm) == 2
    for o, log in stats.lstm.items():
        np.testing.assert_array_equal(log.h.reshape(-1), it.get_tensor(ops[o].inputs[18]).reshape(-1))
        np.testing.assert_array_equal(log.c.reshape(-1), it.get_tensor(ops[o].inputs[19]).reshape(-1))
        assert log.hidden.count == 3 * 8


@pytest.mark.parametrize("name,io", [("lstm_tfkeras", np.int8), ("lstm_k3", np.uint8),
                                     ("gru_stateful_tfkeras", np.int8)])
def test_integer_io_matches_litert_ref(name, io):
    """int8 / uint8 model inputs and outputs: LiteRT BUILTIN_REF over three invokes."""
    model, _ = quantized(name, inference_input_type=io, inference_output_type=io)
    d = Interpreter(model_content=model).get_input_details()[0]
    s, z = d["quantization"]
    info = np.iinfo(io)
    steps = [[np.clip(np.round(x / s) + z, info.min, info.max).astype(io)] for x in calib(name)[:3]]
    assert_steps_match(model, steps, "reference", rtol=RTOL)


def test_lstm_in_16x8_stays_float_and_runs():
    """LiteRT's integer LSTM is 8x8_16 only: in int16x8 mode the LSTM stays float with
    QUANTIZE/DEQUANTIZE around it, says why, and the model runs in LiteRT BUILTIN_REF."""
    report = QuantizationReport([])
    data = calib("lstm_tfkeras")
    model = quantize(float_path("lstm_tfkeras"), representative_dataset=lambda: ([x] for x in data),
                     mode="int16x8", report=report)
    assert [n for _, n, _ in report.float_ops] == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert "int8 mode only" in report.float_ops[0][2]
    assert_steps_match(model, [[x] for x in data[:3]], "reference", rtol=RTOL)


def counting_loop(n: int = 3, limit: int = 5) -> bytes:
    """i, x -> WHILE(i < limit) {i + 1, tanh(x * 0.5 + 0.7)}: the loop value x is also
    the model output, and a float variable tensor v feeds an ADD (v + x)."""
    b = ModelBuilder()
    i0 = b.add_input("i", [], np.int32)
    x0 = b.add_input("x", [n], np.float32)
    i_out = b.add_tensor("i_out", [], np.int32)
    x_out = b.add_tensor("x_out", [n], np.float32)
    b.add_operator("WHILE", [i0, x0], [i_out, x_out], cond_subgraph_index=1, body_subgraph_index=2)
    v = b.add_tensor("v", [n], np.float32, is_variable=True)
    vo = b.add_tensor("vo", [n], np.float32)
    b.add_operator("ADD", [v, x_out], [vo], fused_activation_function="NONE")
    b.mark_outputs(x_out, vo)
    b.new_subgraph("cond")
    ci = b.add_input("ci", [], np.int32)
    b.add_input("cx", [n], np.float32)
    lim = b.add_constant("limit", np.array(limit, np.int32))
    c = b.add_tensor("c", [], np.bool_)
    b.add_operator("LESS", [ci, lim], [c])
    b.mark_outputs(c)
    b.new_subgraph("body")
    bi = b.add_input("bi", [], np.int32)
    bx = b.add_input("bx", [n], np.float32)
    one = b.add_constant("one", np.array(1, np.int32))
    bi2 = b.add_tensor("bi2", [], np.int32)
    b.add_operator("ADD", [bi, one], [bi2], fused_activation_function="NONE")
    half = b.add_constant("half", np.array([0.5], np.float32))
    k = b.add_constant("k", np.array([0.7], np.float32))
    m, a, t = (b.add_tensor(nm, [n], np.float32) for nm in ("m", "a", "t"))
    b.add_operator("MUL", [bx, half], [m], fused_activation_function="NONE")
    b.add_operator("ADD", [m, k], [a], fused_activation_function="NONE")
    b.add_operator("TANH", [a], [t])
    b.mark_outputs(bi2, t)
    return b.to_bytes()


@pytest.mark.parametrize("io", [np.float32, np.int8])
def test_loop_value_that_is_a_model_output(io):
    """A loop-carried value that is also a model output is int8 through the loop (a
    DEQUANTIZE follows the WHILE for a float output), the body's TANH output is
    requantized to the loop's parameters, and a float variable tensor read by an int8
    ADD is quantized by a QUANTIZE: LiteRT BUILTIN_REF over three invokes, and the
    result close to the float model."""
    model = counting_loop()
    rng = np.random.default_rng(3)
    data = [[np.array(0, np.int32), rng.uniform(-2, 2, 3).astype(np.float32)] for _ in range(16)]
    report = QuantizationReport([])
    q = quantize(model, representative_dataset=data, report=report, inference_output_type=io)
    assert report.float_ops == []
    m = read_model(q)
    body = m.subgraphs[2]
    assert body.tensors[body.outputs[1]].type_name == "INT8"
    assert m.op_name(body.operators[-1]) == "QUANTIZE"    # TANH's 1/128 -> the loop's scale
    assert_steps_match(q, data[:3], "reference", rtol=RTOL)
    ours = Interpreter(model_content=q)
    ours.allocate_tensors()
    ref = Interpreter(model_content=model)
    ref.allocate_tensors()
    for it in (ours, ref):
        for d, x in zip(it.get_input_details(), data[0]):
            it.set_tensor(d["index"], x)
        it.invoke()
    d = ours.get_output_details()[0]
    got = ours.get_tensor(d["index"]).astype(np.float64)
    if io != np.float32:
        got = (got - d["quantization"][1]) * d["quantization"][0]
    want = ref.get_tensor(ref.get_output_details()[0]["index"])
    assert np.max(np.abs(got - want)) <= 2 * 2.0 / 255 + 1 / 128


def test_loop_value_model_output_refused_in_uint8():
    """uint8 model outputs need a requantization the loop value cannot have: it stays
    float, and asking for a uint8 output of it is refused with a QuantcoreError."""
    rng = np.random.default_rng(4)
    data = [[np.array(0, np.int32), rng.uniform(-2, 2, 3).astype(np.float32)] for _ in range(4)]
    with pytest.raises(InputError, match="inference_output_type=float32"):
        quantize(counting_loop(), representative_dataset=data, inference_output_type=np.uint8)


@pytest.mark.parametrize("name", ["lstm_tfkeras", "gru_stateful_tfkeras"])
def test_dummy_quantization_without_data_runs_in_litert_ref(name):
    """default_ranges and no dataset: loop values, bodies and the LSTM (cell scale from
    its cell clip) get parameters from the default range; LiteRT BUILTIN_REF agrees."""
    model = quantize(float_path(name), default_ranges=(-2.0, 2.0))
    x = calib(name)
    assert_steps_match(model, [[x[i]] for i in range(3)], "reference", rtol=RTOL)


@pytest.mark.parametrize("name", ["accumulator", "gru_stateful_tfkeras"])
def test_resource_variable_state_persists(name):
    """The state kept in a resource variable carries across invokes in the int8 model
    as in the float one: the same input twice gives different outputs, and the
    quantized outputs track the float ones step by step."""
    model, report = quantized(name)
    assert {"READ_VARIABLE", "ASSIGN_VARIABLE"} <= {n for _, n, _ in report.float_ops}
    x = np.repeat(calib(name)[:1], 3, axis=0)
    f, q = outputs_over(float_path(name), x), outputs_over(model, x)
    assert not np.allclose(f[0], f[1])
    assert not np.array_equal(q[0], q[1])
    assert sqnr_db(f, q) >= 15.0


# ---------------------------------------------------------------------------
# fused LSTM against the converter's int8 output
# ---------------------------------------------------------------------------
def _lstms(m):
    sg = m.subgraphs[0]
    return sg, [op for op in sg.operators if m.op_name(op) == "UNIDIRECTIONAL_SEQUENCE_LSTM"]


def _params(t):
    qp = t.qparams()
    return None if qp is None else (qp[0].tolist(), qp[1].tolist())


def _close(a, b) -> bool:
    """Same parameters: zero points equal, scales within 1e-6 (one float32 ulp: the
    converter multiplies double scales, quantcore the stored float32 ones)."""
    if a is None or b is None:
        return a is b
    return a[1] == b[1] and np.allclose(a[0], b[0], rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["lstm_tfkeras", "lstm_seq_tfkeras"])
def test_lstm_int8_equals_tensorflow_converter(name):
    """Every LSTM input, intermediate and output: same type, scales within 1e-6,
    same zero points and quantized constants as the TF 2.21 converter's int8 model
    (calibrated on the same sequences)."""
    ours, theirs = read_model(quantized(name)[0]), read_model(FIXTURES / f"{name}_int8.tflite")
    assert [(ours.op_name(o), ours.operator_codes[o.opcode_index].version)
            for o in ours.subgraphs[0].operators] == \
        [(theirs.op_name(o), theirs.operator_codes[o.opcode_index].version)
         for o in theirs.subgraphs[0].operators]
    (osg, ol), (tsg, tl) = _lstms(ours), _lstms(theirs)
    problems = []
    for a, b in zip(ol, tl):
        for j, (i, k) in enumerate(zip(a.inputs + a.intermediates + a.outputs,
                                       b.inputs + b.intermediates + b.outputs)):
            if i < 0 and k < 0:
                continue
            ti, tk = osg.tensors[i], tsg.tensors[k]
            pi, pk = _params(ti), _params(tk)
            if ti.type != tk.type or (pi is None) != (pk is None):
                problems.append(f"slot {j}: {ti.type_name} {pi} vs {tk.type_name} {pk}")
                continue
            if pi is not None and (not np.allclose(pi[0], pk[0], rtol=1e-6) or pi[1] != pk[1]):
                problems.append(f"slot {j}: parameters {pi} vs {pk}")
            di, dk = ours.tensor_data(0, i), theirs.tensor_data(0, k)
            if (di is None) != (dk is None) or (di is not None and not np.array_equal(di, dk)):
                problems.append(f"slot {j}: constant values differ")
    assert not problems, "\n".join(problems)


def test_accumulator_int8_equals_tensorflow_converter():
    """The resource-variable model the converter does quantize: every tensor of both
    subgraphs (matched by name) has the converter's type and parameters (scales
    within 1e-6)."""
    ours, theirs = read_model(quantized("accumulator")[0]), read_model(FIXTURES / "accumulator_int8.tflite")
    problems = []
    for s, (osg, tsg) in enumerate(zip(ours.subgraphs, theirs.subgraphs)):
        by_name = {t.name: t for t in osg.tensors}
        for t in tsg.tensors:
            o = by_name.get(t.name)
            if o is None:
                problems.append(f"subgraph {s}: {t.name!r} missing")
            elif o.type != t.type or not _close(_params(o), _params(t)):
                problems.append(f"subgraph {s}: {t.name!r} {o.type_name} {_params(o)} vs "
                                f"{t.type_name} {_params(t)}")
    assert not problems, "\n".join(problems)


def test_bilstm_int8_keeps_output_state_and_hidden_consistent():
    """Without projection LiteRT's integer LSTM writes the hidden value (quantized with
    intermediate 4) into the output state and the output, so the three must share
    parameters. quantcore does; the converter's Bidirectional model does not (it
    calibrates them apart), and loses accuracy: SQNR of quantcore's model above the
    converter's, both measured in LiteRT-equivalent runtime on the calibration data."""
    model, _ = quantized("bilstm_tfkeras")
    m = read_model(model)
    sg, lstms = _lstms(m)
    assert len(lstms) == 2
    for op in lstms:
        out, h, hid = (_params(sg.tensors[t]) for t in (op.outputs[0], op.inputs[18], op.intermediates[4]))
        assert out == h == hid
        assert sg.tensors[op.inputs[19]].type_name == "INT16"
        s = float(sg.tensors[op.inputs[19]].quantization.scale[0])
        assert np.log2(s * 32768) == round(np.log2(s * 32768))   # power of two (eq. 31)
    x = calib("bilstm_tfkeras")
    ref = outputs_over(float_path("bilstm_tfkeras"), x)
    ours = sqnr_db(ref, outputs_over(model, x))
    converter = sqnr_db(ref, outputs_over(FIXTURES / "bilstm_tfkeras_int8.tflite", x))
    assert ours >= 15.0 and ours > converter


def test_cell_state_scale_power_of_two():
    """eq. 31, against the values of TF's GetPowerOfTwoScale: 2^p >= max|c|, p <= 10."""
    assert cell_state_scale(7.9487) == 2.0 ** -12      # prepare-quantize-post-training.mlir
    assert cell_state_scale(8.0) == 2.0 ** -12
    assert cell_state_scale(0.5) == 2.0 ** -15
    assert cell_state_scale(1e6) == 2.0 ** -5


# ---------------------------------------------------------------------------
# dynamic range and float16
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_dynamic_hybrid_matches_litert_ref(name):
    """dynamic mode with a threshold low enough that every LSTM / FULLY_CONNECTED
    weight (loop bodies included) becomes int8: LiteRT BUILTIN_REF's hybrid kernels
    over four invokes, float outputs within 1e-5 of their range."""
    model, _ = quantized(name, "dynamic", dynamic_min_elements=16)
    m = read_model(model)
    int8_weights = [(s, m.op_name(op)) for s, sg in enumerate(m.subgraphs) for op in sg.operators
                    if m.op_name(op) in ("FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM")
                    and sg.tensors[op.inputs[1]].type_name == "INT8"]
    assert any(n == "UNIDIRECTIONAL_SEQUENCE_LSTM" for _, n in int8_weights) or \
        any(s > 0 for s, _ in int8_weights) or name == "accumulator"
    x = calib(name)
    assert_steps_match(model, [[x[i]] for i in range(4)], "reference", rtol=RTOL)
    assert sqnr_db(outputs_over(float_path(name), x), outputs_over(model, x)) >= 15.0


def test_dynamic_default_threshold_keeps_small_lstm_float():
    """With the converter's 1024-element threshold the 12-unit LSTM stays float, as in
    the converter's dynamic output committed for this model."""
    m = read_model(quantized("lstm_tfkeras", "dynamic")[0])
    theirs = read_model(FIXTURES / "lstm_tfkeras_dynamic.tflite")
    (sg, [op]), (tsg, [top]) = _lstms(m), _lstms(theirs)
    assert [sg.tensors[i].type_name for i in op.inputs if i >= 0] == \
        [tsg.tensors[i].type_name for i in top.inputs if i >= 0]


@pytest.mark.parametrize("name", ALL)
def test_float16_matches_litert_ref(name):
    model, _ = quantized(name, "float16")
    x = calib(name)
    assert_steps_match(model, [[x[i]] for i in range(3)], "reference", rtol=RTOL)


def test_cli_prints_loop_notes_and_takes_dynamic_min_elements(tmp_path, capsys):
    """The command line shows report.notes (loop parameters, in-process calibration)
    and passes --dynamic-min-elements; a negative value is one clear error."""
    from quantcore.cli import main

    model = FIXTURES / "lstm_k3_float32.tflite"
    out = tmp_path / "q.tflite"
    assert main(["quantize", str(model), "-o", str(out), "--data", str(FIXTURES / "lstm_k3_calib.npy"),
                 "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "WHILE: integer loop-carried values" in text and "calibrated in this process" in text
    lstm = FIXTURES / "lstm_tfkeras_float32.tflite"
    assert main(["quantize", str(lstm), "-o", str(out), "--mode", "dynamic", "--dynamic-min-elements", "16"]) == 0
    small = out.read_bytes()
    assert main(["quantize", str(lstm), "-o", str(out), "--mode", "dynamic"]) == 0
    assert len(small) < len(out.read_bytes())            # int8 LSTM weights only with the lower bound
    assert main(["quantize", str(lstm), "-o", str(tmp_path / "x.tflite"), "--mode", "dynamic",
                 "--dynamic-min-elements", "-3"]) == 2
    assert "dynamic_min_elements must be an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x.tflite").exists()
