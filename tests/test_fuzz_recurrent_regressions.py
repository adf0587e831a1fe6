"""Regressions found by the structure-aware fuzzer's recurrent recipes
(tests/fuzz_models.py: RNN, UNIDIRECTIONAL_SEQUENCE_RNN, SVDF,
UNIDIRECTIONAL_SEQUENCE_LSTM, BIDIRECTIONAL_SEQUENCE_LSTM).

Each test is a reduced model of one finding: before the fix it escaped as a plain
NumPy exception (ValueError, AxisError) or a NumPy warning (inf/NaN arithmetic, a
float-to-int or complex cast); now it is refused with a ModelFormatError naming the
problem, or runs (non-finite values propagate as in C, without warnings).
NumPy warnings are errors here, as in the fuzzer's guard.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import run_outputs_no_warnings
from quantcore.errors import ModelFormatError
from quantcore.runtime import Interpreter
from quantcore.schema import read_model, write_model
from quantcore.schema.builder import ModelBuilder
from quantcore.schema.model import Buffer

FIXTURES = Path(__file__).parent / "fixtures"
F32 = np.float32


_run = run_outputs_no_warnings


def _lstm_slots(b: ModelBuilder, rng, n_in: int, n_cell: int, n_out: int, *, proj: bool = False,
                recurrent_shapes: dict | None = None, prefix: str = "") -> list[int]:
    """Inputs 1-17 of a float LSTM direction (no CIFG, no peephole)."""
    shapes = recurrent_shapes or {}

    def c(name, shape):
        return b.add_constant(prefix + name, rng.uniform(-1, 1, shape).astype(F32))

    slots = [c("i2" + g, (n_cell, n_in)) for g in "ifco"]
    slots += [c("r2" + g, shapes.get(g, (n_cell, n_out))) for g in "ifco"]
    slots += [-1, -1, -1]
    slots += [c("b" + g, (n_cell,)) for g in "ifco"]
    slots += [c("proj_w", (n_out, n_cell)), -1] if proj else [-1, -1]
    return slots


def _uni_lstm(*, n_in=1, n_cell=2, n_out=2, steps=2, proj=False, recurrent_shapes=None,
              layer_norm=False, h_type=np.float32, c_type=np.float32) -> bytes:
    rng = np.random.default_rng(0)
    b = ModelBuilder("regression")
    x = b.add_input("x", (1, steps, n_in), F32)
    slots = _lstm_slots(b, rng, n_in, n_cell, n_out, proj=proj, recurrent_shapes=recurrent_shapes)
    h = b.add_tensor("h", (1, n_out), h_type, is_variable=True)
    c = b.add_tensor("c", (1, n_cell), c_type, is_variable=True)
    ln = [b.add_constant(f"ln_{g}", np.ones(n_cell, F32)) for g in "ifco"] if layer_norm else [-1] * 4
    y = b.add_tensor("y", (1, steps, n_out), F32)
    b.add_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", [x] + slots + [h, c] + ln, [y],
                   fused_activation_function="TANH", time_major=False)
    b.mark_outputs(y)
    return b.to_bytes()


# ---------------------------------------------------------------------------
# UNIDIRECTIONAL_SEQUENCE_LSTM
# ---------------------------------------------------------------------------
def test_float_lstm_state_of_another_type_is_refused():
    """A float LSTM whose cell state is declared COMPLEX64 (fuzzer: "tensor 1 type FLOAT32
    -> COMPLEX64"): ComplexWarning at _lstm.py run_sequence (h0.astype(float32)); an INT32
    state gave "invalid value encountered in cast" writing NaN back."""
    data = _uni_lstm(c_type=np.complex64)
    with pytest.raises(ModelFormatError, match="cell state must be FLOAT32"):
        _run(data, [np.ones((1, 2, 1), F32)])
    data = _uni_lstm(h_type=np.int32)
    with pytest.raises(ModelFormatError, match="must be FLOAT32 with a float input"):
        _run(data, [np.full((1, 2, 1), np.inf, F32)])


def test_lstm_diagonal_recurrent_weights_need_n_output_equal_n_cell():
    """A 1-D (diagonal) recurrent_to_forget weight in an LSTM with projection
    (n_output 3 != n_cell 2): the diagonal product walks n_cell elements of each output
    state row (ValueError: operands could not be broadcast / matmul core dimension)."""
    data = _uni_lstm(n_cell=2, n_out=3, proj=True, recurrent_shapes={"f": (2,)})
    with pytest.raises(ModelFormatError, match=r"is diagonal but n_output \(3\) != n_cell \(2\)"):
        _run(data, [np.ones((1, 2, 1), F32)])


def test_integer_lstm_diagonal_input_gate_recurrent_weights_refused():
    """The converter's integer LSTM with recurrent_to_input (input 5) replaced by a 1-D
    tensor of n_cell elements: the integer path refused only diagonal f/c/o weights, and
    the zero-point row sums raised AxisError at _lstm.py integer_params."""
    m = read_model((FIXTURES / "recurrent" / "lstm_seq_tfkeras_int8.tflite").read_bytes())
    sg = m.subgraphs[0]
    op = next(o for o in sg.operators
              if m.operator_codes[o.opcode_index].name == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    op.inputs[5] = op.inputs[12]          # the INT32 [8] input gate bias: 1-D, n_cell elements
    with pytest.raises(ModelFormatError, match="integer LSTM needs 2-D recurrent weights"):
        _run(write_model(m), [np.zeros((1, 8, 4), F32)])


def _integer_layer_norm_lstm(ln_scale: float) -> bytes:
    """An 8x8_16 LSTM with layer norm (n_input 1, n_cell = n_output 2) and its five
    intermediates, as the converter writes them."""
    rng = np.random.default_rng(3)
    b = ModelBuilder("regression")
    x = b.add_input("x", (1, 2, 1), np.int8, scale=0.02, zero_point=0)

    def w(name, shape):
        return b.add_constant(name, rng.integers(-127, 128, shape).astype(np.int8), scale=0.01,
                              zero_point=0)

    slots = [w("i2" + g, (2, 1)) for g in "ifco"] + [w("r2" + g, (2, 2)) for g in "ifco"]
    slots += [-1, -1, -1]
    slots += [b.add_constant("b" + g, np.array([100, -100], np.int32), scale=2e-4, zero_point=0)
              for g in "ifco"]
    slots += [-1, -1]
    h = b.add_tensor("h", (1, 2), np.int8, scale=0.01, zero_point=0, is_variable=True)
    c = b.add_tensor("c", (1, 2), np.int16, scale=2.0 ** -11, zero_point=0, is_variable=True)
    ln = [b.add_constant("ln_" + g, np.array([1000, 2000], np.int16), scale=ln_scale, zero_point=0)
          for g in "ifco"]
    inter = [b.add_tensor(f"im{k}", (0,), np.int16, scale=1e-3, zero_point=0) for k in range(4)]
    inter.append(b.add_tensor("im4", (0,), np.int8, scale=0.01, zero_point=0))
    y = b.add_tensor("y", (1, 2, 2), np.int8, scale=0.01, zero_point=0)
    b.add_operator("UNIDIRECTIONAL_SEQUENCE_LSTM", [x] + slots + [h, c] + ln, [y],
                   intermediates=inter, fused_activation_function="TANH", time_major=False)
    b.mark_outputs(y)
    return b.to_bytes()


def test_integer_lstm_layer_norm_scale_overflowing_the_variance_guard():
    """An integer layer-norm LSTM whose layer norm coefficients' scale is 3.4e38 (fuzzer:
    "tensor 20 scale[0] = 3.4e38"): the variance guard int(10000 * scale) raised
    OverflowError (cannot convert float infinity to integer) at _lstm.py integer_params."""
    x = [np.array([[[5], [-7]]], np.int8)]
    assert _run(_integer_layer_norm_lstm(1e-4), x)[0].shape == (1, 2, 2)   # the valid model runs
    with pytest.raises(ModelFormatError, match=r"variance guard \(10000 \* scale\) beyond int32"):
        _run(_integer_layer_norm_lstm(3.4e38), x)


def test_float_lstm_infinite_input_runs_without_warnings():
    """A layer-norm float LSTM fed +inf: the gate sums are +inf and -inf, and the layer
    norm's mean gave "invalid value encountered in reduce" (_lstm.py
    mean_stddev_normalization). LiteRT computes NaN there: so do we, silently."""
    data = _uni_lstm(n_in=1, n_cell=4, n_out=4, layer_norm=True)
    out, = _run(data, [np.full((1, 2, 1), np.inf, F32)])
    assert out.shape == (1, 2, 4) and np.isnan(out).any()


# ---------------------------------------------------------------------------
# BIDIRECTIONAL_SEQUENCE_LSTM
# ---------------------------------------------------------------------------
def _bi_lstm(*, steps=2, aux_shape=None, fw_recurrent_shapes=None, merge=True) -> tuple[bytes, list]:
    rng = np.random.default_rng(1)
    b = ModelBuilder("regression")
    n_in, n = 2, 2
    x = b.add_input("x", (steps, 1, n_in), F32)
    inputs = [np.ones((steps, 1, n_in), F32)]
    fw = _lstm_slots(b, rng, n_in, n, n, recurrent_shapes=fw_recurrent_shapes, prefix="fw_")
    bw = _lstm_slots(b, rng, n_in, n, n, prefix="bw_")
    states = [b.add_tensor(f"s{k}", (1, n), F32, is_variable=True) for k in range(4)]
    aux = -1
    if aux_shape is not None:
        aux = b.add_input("aux", aux_shape, F32)
        inputs.append(np.ones(aux_shape, F32))
    outs = [b.add_tensor("y", (steps, 1, 2 * n), F32)] if merge else \
        [b.add_tensor(f"y{k}", (steps, 1, n), F32) for k in range(2)]
    b.add_operator("BIDIRECTIONAL_SEQUENCE_LSTM", [x] + fw + bw + states + [aux] + [-1] * 8, outs,
                   fused_activation_function="TANH", time_major=True, merge_outputs=merge)
    b.mark_outputs(*outs)
    return b.to_bytes(), inputs


def test_bilstm_aux_input_without_weights_must_match_the_input():
    """A BiLSTM with an aux input but no aux weights (the backward LSTM reads the aux
    input) whose aux input has 3 time steps, the input 2: the two directions' outputs
    could not be concatenated (ValueError in numpy.concatenate)."""
    data, inputs = _bi_lstm(steps=2, aux_shape=(3, 1, 2))
    with pytest.raises(ModelFormatError, match="aux input without aux weights must have the input's shape"):
        _run(data, inputs)
    data, inputs = _bi_lstm(steps=2, aux_shape=(2, 1, 2))   # matching: runs
    assert _run(data, inputs)[0].shape == (2, 1, 4)


def test_bilstm_recurrent_weights_must_be_2d():
    """A BiLSTM whose forward recurrent_to_forget weights (input 6) are a 1-D tensor:
    LiteRT has no diagonal form here (dims->size == 2); quantcore took it as diagonal
    (ValueError: matmul core dimension mismatch with a projection)."""
    data, inputs = _bi_lstm(fw_recurrent_shapes={"f": (2,)})
    with pytest.raises(ModelFormatError, match="fw: recurrent_to_f weights must be 2-D"):
        _run(data, inputs)


# ---------------------------------------------------------------------------
# SVDF
# ---------------------------------------------------------------------------
def _svdf(*, bias_shape=(2,), x_dtype=F32, wt=None) -> bytes:
    rng = np.random.default_rng(2)
    b = ModelBuilder("regression")
    x = b.add_input("x", (1, 3), x_dtype)
    wf = b.add_constant("wf", rng.uniform(0.1, 1, (2, 3)).astype(F32))
    wt = b.add_constant("wt", (rng.uniform(-1, 1, (2, 2)) if wt is None else wt).astype(F32))
    bias = b.add_constant("bias", rng.uniform(-1, 1, bias_shape).astype(F32))
    state = b.add_tensor("state", (1, 4), F32, is_variable=True)
    y = b.add_tensor("y", (1, 2), F32)
    b.add_operator("SVDF", [x, wf, wt, bias, state], [y], rank=1, fused_activation_function="NONE")
    b.mark_outputs(y)
    return b.to_bytes()


def test_svdf_bias_of_rank_two_reads_num_units_values(oracle):
    """An SVDF bias [num_units, 3] (fuzzer: "operator 0 input 3 -> tensor 1"): LiteRT checks
    only dims[0] == num_units and reads num_units values; quantcore broadcast the whole
    bias (ValueError: operands could not be broadcast together)."""
    x = [np.array([[0.5, -1.0, 2.0]], F32)]
    wide = _run(_svdf(bias_shape=(2, 3)), x)[0]
    m = read_model(_svdf(bias_shape=(2, 3)))
    sg = m.subgraphs[0]
    t = sg.tensors[sg.operators[0].inputs[3]]
    flat = np.frombuffer(m.buffers[t.buffer].data, F32)[:2].copy()
    m.buffers[t.buffer] = Buffer(data=flat.tobytes())
    t.shape = [2]
    narrow = _run(write_model(m), x)[0]
    np.testing.assert_array_equal(wide, narrow)
    from harness import assert_matches_litert
    assert_matches_litert(oracle, _svdf(bias_shape=(2, 3)), x, "reference")   # BUILTIN_REF runs it


def test_svdf_infinite_input_runs_without_warnings():
    """A float SVDF fed +inf with a zero time weight: inf * 0 in the time products gave
    "invalid value encountered in multiply" (svdf.py _time_and_output)."""
    out, = _run(_svdf(wt=np.array([[0.0, 1.0], [1.0, 0.0]])), [np.array([[np.inf, 1, 1]], F32)])
    assert np.isinf(out[0, 0]) and np.isnan(out[0, 1])   # inf * 1 + 0 * 0; 0 * 1 + inf * 0


# ---------------------------------------------------------------------------
# RNN / UNIDIRECTIONAL_SEQUENCE_RNN
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["RNN", "UNIDIRECTIONAL_SEQUENCE_RNN"])
def test_hybrid_rnn_infinite_input_runs_without_warnings(op):
    """A hybrid RNN fed +inf: the input's row scale is inf and a zero dot product times
    it gave "invalid value encountered in multiply" (_lstm.py _mbvma_hybrid via
    rnn.rnn_step)."""
    b = ModelBuilder("regression")
    shape = (1, 2, 2) if op != "RNN" else (1, 2)
    x = b.add_input("x", shape, F32)
    w = b.add_constant("w", np.array([[0, 0], [1, -1]], np.int8), scale=0.05, zero_point=0)
    r = b.add_constant("r", np.array([[1, 0], [0, 1]], np.int8), scale=0.05, zero_point=0)
    bias = b.add_constant("b", np.zeros(2, F32))
    h = b.add_tensor("h", (1, 2), F32, is_variable=True)
    y = b.add_tensor("y", shape[:-1] + (2,), F32)
    b.add_operator(op, [x, w, r, bias, h], [y], fused_activation_function="TANH")
    b.mark_outputs(y)
    out, = _run(b.to_bytes(), [np.full(shape, np.inf, F32)])
    assert out.shape == shape[:-1] + (2,)


@pytest.mark.parametrize("op", ["RNN", "UNIDIRECTIONAL_SEQUENCE_RNN"])
def test_rnn_bias_of_rank_two_as_litert(oracle, op):
    """A float RNN whose bias is [units, 3] (differential fuzz: "operator 0 input 3 ->
    tensor 1"): LiteRT's RNN checks only the bias's dims[0] == units and reads its first
    units values (quantcore refused it; now equal to LiteRT BUILTIN_REF, child process);
    its UNIDIRECTIONAL_SEQUENCE_RNN checks the bias is 1-D, and both refuse it."""
    from harness import assert_matches_litert

    b = ModelBuilder("regression")
    shape = (1, 2, 3) if op != "RNN" else (1, 3)
    x = b.add_input("x", shape, F32)
    w = b.add_constant("w", np.array([[0.5, -1, 0.25], [1, 0.5, -0.5]], F32))
    r = b.add_constant("r", np.array([[0.5, 0.1], [-0.2, 0.3]], F32))
    bias = b.add_constant("b", np.arange(6, dtype=F32).reshape(2, 3) / 4)
    h = b.add_tensor("h", (1, 2), F32, is_variable=True)
    y = b.add_tensor("y", shape[:-1] + (2,), F32)
    b.add_operator(op, [x, w, r, bias, h], [y], fused_activation_function="TANH")
    b.mark_outputs(y)
    inputs = [np.linspace(-1, 1, int(np.prod(shape)), dtype=F32).reshape(shape)]
    if op == "RNN":
        assert_matches_litert(oracle, b.to_bytes(), inputs, "reference")
    else:
        assert not oracle.run(b.to_bytes(), inputs, "reference").ok
        with pytest.raises(ModelFormatError, match="bias 1-D"):
            _run(b.to_bytes(), inputs)


def _int8_lstm_fixture():
    m = read_model((FIXTURES / "recurrent" / "lstm_tfkeras_int8.tflite").read_bytes())
    op = next(o for o in m.subgraphs[0].operators
              if m.operator_codes[o.opcode_index].builtin_code == 44)   # UNIDIRECTIONAL_SEQUENCE_LSTM
    return m, op


@pytest.mark.parametrize("activation", [0, 1, 5])
def test_integer_lstm_ignores_the_activation_option_as_litert(oracle, activation):
    """Differential fuzz: an integer 8x8_16 LSTM whose fused activation is not TANH ran in
    LiteRT and quantcore refused it ("LiteRT asserts"). lstm_eval.cc's integer step never
    reads the option (cell gate and output always tanh): every tensor equals LiteRT
    BUILTIN_REF (child process)."""
    from harness import assert_matches_litert

    m, op = _int8_lstm_fixture()
    op.builtin_options = dict(op.builtin_options, fused_activation_function=activation)
    x = [np.linspace(-1, 1, 32, dtype=F32).reshape(1, 8, 4)]
    assert_matches_litert(oracle, write_model(m), x, "reference")


@pytest.mark.parametrize("factor, runs", [(1.0005, True), (1.01, False)])
def test_integer_lstm_cell_scale_power_of_two_within_checked_log2(oracle, factor, runs):
    """CheckedLog2 accepts a cell-state scale within 1e-3 of a power of two in log2
    (2^-12 * 1.0005 is used as 2^-12, and equals LiteRT BUILTIN_REF); quantcore
    required an exact power of two. Further off, LiteRT's Prepare ignores the failed
    check and runs with unset parameters: quantcore refuses."""
    from harness import assert_matches_litert

    m, op = _int8_lstm_fixture()
    t = m.subgraphs[0].tensors[op.inputs[19]]
    t.quantization.scale = [float(np.float32(2.0 ** -12 * factor))]
    x = [np.linspace(-1, 1, 32, dtype=F32).reshape(1, 8, 4)]
    if runs:
        assert_matches_litert(oracle, write_model(m), x, "reference")
    else:
        with pytest.raises(ModelFormatError, match="not a power of two"):
            _run(write_model(m), x)


@pytest.mark.parametrize("shape", [(1, 3, 1), (1, 3, 2)])
def test_svdf_input_of_rank_three_as_litert(oracle, shape):
    """Differential fuzz ("tensor 0 gains a dimension"): svdf.cc reads the input's
    dims[0] and dims[1] without checking its rank, and its first batch * input_size
    values; quantcore refused it. Equal to LiteRT BUILTIN_REF (child process), state
    included, over two invokes."""
    from ops._litert_steps import assert_steps_match

    m = read_model(_svdf())
    m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].shape = list(shape)
    x = np.linspace(-1, 1, int(np.prod(shape)), dtype=F32).reshape(shape)
    assert_steps_match(write_model(m), [[x], [x * F32(-0.5)]], "reference")


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3, 2)])
def test_rnn_input_of_rank_three_as_litert(oracle, shape):
    """Differential fuzz ("tensor 0 gains a dimension"): basic_rnn.cc takes dims[0] as the
    batch and dims[1] as the input size whatever the rank, and reads the first
    batch * input_size values; quantcore refused it. Equal to LiteRT BUILTIN_REF."""
    from ops._litert_steps import assert_steps_match

    b = ModelBuilder("regression")
    x = b.add_input("x", shape, F32)
    w = b.add_constant("w", np.array([[0.5, -1, 0.25], [1, 0.5, -0.5]], F32))
    r = b.add_constant("r", np.array([[0.5, 0.1], [-0.2, 0.3]], F32))
    bias = b.add_constant("b", np.array([0.1, -0.2], F32))
    h = b.add_tensor("h", (2, 2), F32, is_variable=True)
    y = b.add_tensor("y", (2, 2), F32)
    b.add_operator("RNN", [x, w, r, bias, h], [y], fused_activation_function="TANH")
    b.mark_outputs(y)
    v = np.linspace(-1, 1, int(np.prod(shape)), dtype=F32).reshape(shape)
    assert_steps_match(b.to_bytes(), [[v], [v * F32(-0.5)]], "reference")


def test_integer_lstm_activation_option_in_micro_mode_must_be_tanh():
    """TFLite Micro (unlike LiteRT) applies the activation option to the cell gate and
    only handles tanh/sigmoid: micro mode refuses a RELU integer LSTM, reference runs it."""
    m, op = _int8_lstm_fixture()
    op.builtin_options = dict(op.builtin_options, fused_activation_function=1)
    data = write_model(m)
    it = Interpreter(model_content=data, numerics="micro")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 8, 4), F32))
    with pytest.raises(ModelFormatError, match="TFLite Micro"):
        it.invoke()
    _run(data, [np.zeros((1, 8, 4), F32)])
