"""The microcontroller fixtures of tests/fixtures/micro (scripts/make_fixtures_micro.py:
trained person-detection and streaming wake-word models, converted by TensorFlow 2.21)
against TFLite Micro and LiteRT.

* ``numerics="micro"`` against the TFLM interpreter (the ``tflite-micro`` wheel,
  quantcore.micro_oracle, in a child process): one interpreter, several consecutive
  invokes with different inputs (the streaming model's state carries across them), and
  after every invoke every model output and every tensor TFLM preserves
  (``kPreserveAllTensors``, every subgraph): integer tensors bit for bit, float
  tensors within 1e-5 of their range.
* ``quantcore micro --json``: the arena head equals what TFLM's
  ``RecordingMicroAllocator`` records, byte for byte; the total (and the persistent
  tail) within 10%.
* numerics "reference", "optimized" and "xnnpack" against LiteRT's three paths
  (``BUILTIN_REF``, ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, ``BUILTIN`` with XNNPACK), on
  one LiteRT interpreter per path over the same consecutive invokes (state included):
  every integer tensor bit for bit.

The inputs are the converter's calibration data (``*_calib*.npy``), quantized with the
model input's parameters for integer inputs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harness import compare_tensor
from ops import _litert_steps
from quantcore.cli import main
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "micro"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
ENTRIES = [e for e in MANIFEST if e["status"] == "ok"]
IDS = [e["file"].removesuffix(".tflite") for e in ENTRIES]
FLOAT_RTOL = 1e-5
LITERT_FLOAT_RTOL = 1e-4     # quantcore's float kernels are not bit-exact (tests/test_models.py)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def calibration(entry: dict) -> np.ndarray:
    """The float32 inputs the converter calibrated with, [N, 1, ...] (the person images
    are stored as uint8 pixels, x = u8 / 127.5 - 1; see the fixture README)."""
    data = np.load(FIXTURES / entry["calib"])
    if data.dtype == np.uint8:
        return (data.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)
    return data


def invokes_for(entry: dict, data: bytes) -> list[list[np.ndarray]]:
    """Consecutive invokes with different inputs: 3 images, or 6 frames of the stream
    (the window holds 12 frames, so the state after each invoke differs)."""
    m = read_model(data)
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    calib = calibration(entry)
    n = 6 if entry["model"] == "wake_word_stream" else 3
    out = []
    for k in range(n):
        x = calib[k]
        q = t.qparams()
        if q is not None and t.type_name != "FLOAT32":
            scale, zero_point = q
            info = np.iinfo(t.dtype)
            x = np.clip(np.round(x / scale[0]) + zero_point[0], info.min, info.max).astype(t.dtype)
        out.append([x])
    return out


def _entry_and_model(entry: dict) -> tuple[dict, bytes]:
    return entry, (FIXTURES / entry["file"]).read_bytes()


# ---------------------------------------------------------------------------
# The fixtures themselves
# ---------------------------------------------------------------------------
def test_manifest_lists_every_fixture_with_its_hash_and_ops():
    files = sorted(p.name for p in FIXTURES.glob("*.tflite"))
    assert files == sorted(e["file"] for e in ENTRIES)
    for e in ENTRIES:
        data = (FIXTURES / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        assert len(data) == e["size_bytes"]
        m = read_model(data)
        ops = [sorted({m.op_name(op) for op in sg.operators}) for sg in m.subgraphs]
        assert ops == e["ops"], e["file"]


def test_fixtures_are_the_deployed_shapes():
    """Person detection: 96x96x1 image, MobileNet-style stack, 2 classes; the streaming
    model: CALL_ONCE initialisation and resource variables in every mode."""
    by = {(e["model"], e["mode"]): e for e in ENTRIES}
    pd = by[("person_detect", "int8")]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
            "SOFTMAX"} <= set(pd["ops"][0])
    assert pd["types"] == {"inputs": ["int8"], "outputs": ["int8"], "variables": []}
    m = read_model((FIXTURES / pd["file"]).read_bytes())
    sg = m.subgraphs[0]
    assert list(sg.tensors[sg.inputs[0]].shape) == [1, 96, 96, 1]
    assert list(sg.tensors[sg.outputs[0]].shape) == [1, 2]
    assert by[("person_detect", "int8_floatio")]["types"]["inputs"] == ["float32"]
    for mode in ("int8", "int8_state", "float32"):
        ops = by[("wake_word_stream", mode)]["ops"]
        assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= set(ops[0])
    # What the converter gives: the variable stays float32 in a full-integer model
    # unless variable quantization is asked for.
    assert by[("wake_word_stream", "int8")]["types"]["variables"] == ["float32"]
    assert by[("wake_word_stream", "int8_state")]["types"]["variables"] == ["int8"]


# ---------------------------------------------------------------------------
# numerics="micro" against TFLite Micro
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def micro():
    pytest.importorskip("tflite_micro")
    from quantcore.micro_oracle import MicroOracle
    o = MicroOracle()
    yield o
    o.close()


def micro_mismatches(micro, data: bytes, invokes) -> tuple[list[str], int]:
    """Run TFLM and quantcore (numerics="micro") on the same consecutive invokes;
    return the mismatches and the number of tensors compared."""
    theirs = micro.run(data, invokes)
    assert theirs.ok, f"TFLM failed: {theirs.error}"
    m = read_model(data, micro=True)
    it = Interpreter(model_content=data, numerics="micro")
    it.allocate_tensors()
    # Operator intermediates (the LSTM's gate-scale tensors) are read for their
    # quantization only: neither runtime ever writes them.
    intermediates = {(s, t) for s, sg in enumerate(m.subgraphs) for op in sg.operators
                     for t in (op.intermediates or [])}
    problems, compared = [], 0
    for k, inputs in enumerate(invokes):
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()
        for (s, t), value in sorted(theirs.tensors[k].items()):
            if m.tensor_data(s, t) is not None or (s, t) in intermediates:
                continue            # constants, intermediates
            mine = it.get_tensor(t, s)
            if mine.shape != value.shape and mine.size == value.size:
                mine = mine.reshape(value.shape)   # TFLM keeps the declared shape
            name = m.subgraphs[s].tensors[t].name
            msg = compare_tensor(f"invoke {k} subgraph {s} tensor {t} {name!r}", mine, value,
                                 FLOAT_RTOL)
            compared += 1
            if msg:
                problems.append(msg)
        for j, t in enumerate(m.subgraphs[0].outputs):
            ref = theirs.outputs[k][j]
            msg = compare_tensor(f"invoke {k} output {j}", it.get_tensor(t).reshape(ref.shape),
                                 ref, FLOAT_RTOL)
            if msg:
                problems.append(msg)
    return problems, compared


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_micro_equals_tflm_over_consecutive_invokes(micro, entry):
    entry, data = _entry_and_model(entry)
    invokes = invokes_for(entry, data)
    problems, compared = micro_mismatches(micro, data, invokes)
    assert not problems, "quantcore micro differs from TFLite Micro:\n" + "\n".join(problems[:20])
    assert compared >= 3 * len(invokes)


def test_streaming_state_changes_the_output(micro):
    """The wake-word state really carries: the same frame gives another output after
    other frames, in TFLM and in quantcore's micro mode alike."""
    entry = next(e for e in ENTRIES if (e["model"], e["mode"]) == ("wake_word_stream", "int8_state"))
    data = (FIXTURES / entry["file"]).read_bytes()
    frames = invokes_for(entry, data)
    seq = [frames[3]] + frames[:3] + [frames[3]]
    theirs = micro.run(data, seq)
    assert theirs.ok, theirs.error
    assert not np.array_equal(theirs.outputs[0][0], theirs.outputs[-1][0])
    problems, _ = micro_mismatches(micro, data, seq)
    assert not problems, problems[:5]


def test_micro_json_arena_matches_tflm(micro, capsys):
    """``quantcore micro --json`` on every fixture: head equal to TFLM's recorded head,
    total and tail within 10%; all well below 300 KB."""
    for entry in ENTRIES:
        path = FIXTURES / entry["file"]
        measured = micro.allocations(path.read_bytes())
        assert measured.ok, measured.error
        assert main(["micro", str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        arena = report["arena"]
        assert arena["head"] == measured.head, (entry["file"], arena, measured.head)
        assert abs(arena["total"] - measured.total) <= 0.10 * measured.total, \
            (entry["file"], arena, measured.total)
        assert abs(arena["tail"] - measured.tail) <= 0.10 * measured.tail, \
            (entry["file"], arena, measured.tail)
        assert measured.total < 300 * 1024
        assert report["unsupported"] == []
        assert report["flash_bytes"] == entry["size_bytes"]


# ---------------------------------------------------------------------------
# The other modes against LiteRT's three paths, over consecutive invokes
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def litert_steps():
    """``run(model, steps, numerics)``: one LiteRT interpreter (in a child process, LiteRT
    can abort) invoked on each step's inputs in turn; per step the outputs and every
    readable tensor of subgraph 0 (RESOURCE tensors, opaque in LiteRT, left out)."""
    pytest.importorskip("ai_edge_litert")
    return _litert_steps.litert_steps


@pytest.mark.parametrize("numerics", list(_litert_steps.RESOLVERS))
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_modes_equal_litert_paths_over_consecutive_invokes(litert_steps, entry, numerics):
    """quantcore's numerics path against the LiteRT path of the same name
    (reference: BUILTIN_REF, optimized: BUILTIN_WITHOUT_DEFAULT_DELEGATES, xnnpack:
    BUILTIN with the XNNPACK delegate): every integer tensor bit for bit after every
    invoke, float tensors within 1e-4 of their range."""
    entry, data = _entry_and_model(entry)
    steps = invokes_for(entry, data)
    theirs = litert_steps(data, steps, numerics)
    assert "error" not in theirs, theirs["error"]
    m = read_model(data)
    sg = m.subgraphs[0]
    it = Interpreter(model_content=data, numerics=numerics, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    problems, integer = [], 0
    for k, (inputs, (outs, tensors)) in enumerate(zip(steps, theirs["steps"])):
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()
        for j, t in enumerate(sg.outputs):
            msg = compare_tensor(f"invoke {k} output {j}", it.get_tensor(t), outs[j],
                                 LITERT_FLOAT_RTOL)
            if msg:
                problems.append(msg)
        for t, value in tensors.items():
            if t >= len(sg.tensors) or t in sg.inputs or m.tensor_data(0, t) is not None:
                continue    # LiteRT's own temporaries (im2col, ...), inputs, constants
            integer += value.dtype.kind in "iu"
            msg = compare_tensor(f"invoke {k} tensor {t} {sg.tensors[t].name!r}", it.get_tensor(t),
                                 value, LITERT_FLOAT_RTOL)
            if msg:
                problems.append(msg)
    assert not problems, f"quantcore differs from LiteRT ({numerics}):\n" + "\n".join(problems[:20])
    if entry["mode"] != "float32":
        assert integer >= 3 * len(steps)


# ---------------------------------------------------------------------------
# Published TFLite Micro models (tests/fixtures/micro/tflm, copied from tflite-micro)
# ---------------------------------------------------------------------------
PUBLISHED = sorted((FIXTURES / "tflm").glob("*.tflite"))


def _published_invokes(data: bytes, n: int, seed: int) -> list[list[np.ndarray]]:
    """``n`` invokes of seeded full-range integer inputs; a 4-element int32 input is the
    TRANSPOSE_CONV ``output_shape``, given the declared output shape."""
    m = read_model(data, micro=True)
    sg = m.subgraphs[0]
    out_shape = np.array(sg.tensors[sg.outputs[0]].shape, np.int32)
    rng = np.random.default_rng(seed)
    invokes = []
    for _ in range(n):
        arrays = []
        for i in sg.inputs:
            t = sg.tensors[i]
            if t.type_name == "INT32" and list(t.shape) == [4]:
                arrays.append(out_shape.copy())
                continue
            info = np.iinfo(t.dtype)
            arrays.append(rng.integers(info.min, info.max + 1, size=t.shape).astype(t.dtype))
        invokes.append(arrays)
    return invokes


@pytest.mark.parametrize("path", PUBLISHED, ids=[p.stem for p in PUBLISHED])
def test_published_tflm_model_micro_equals_tflm(micro, path):
    """numerics="micro" equals the TFLM interpreter on every tensor it preserves, over
    consecutive invokes (the SVDF state carries across them)."""
    data = path.read_bytes()
    invokes = _published_invokes(data, 4 if "keyword" in path.stem else 3, seed=len(data))
    problems, compared = micro_mismatches(micro, data, invokes)
    assert not problems, "quantcore micro differs from TFLite Micro:\n" + "\n".join(problems[:20])
    assert compared >= len(invokes)


@pytest.mark.parametrize("numerics", ["reference", "optimized", "xnnpack"])
def test_int8_state_svdf_model_names_micro_mode_in_the_other_modes(numerics):
    """keyword_scrambled_8bit: LiteRT crashes on it (it reads the int8 state as int16);
    quantcore's LiteRT modes refuse it with that reason and point to micro mode."""
    from quantcore.errors import QuantcoreError

    it = Interpreter(model_content=(FIXTURES / "tflm" / "keyword_scrambled_8bit.tflite").read_bytes(),
                     numerics=numerics)
    with pytest.raises(QuantcoreError, match="numerics='micro'"):
        it.allocate_tensors()


def test_published_tflm_models_arena_matches_tflm(micro, capsys):
    """``quantcore micro --json`` on the published models: head equal to TFLM's
    recorded head, total within 10%."""
    for path in PUBLISHED:
        measured = micro.allocations(path.read_bytes())
        assert measured.ok, (path.name, measured.error)
        assert main(["micro", str(path), "--json"]) == 0
        arena = json.loads(capsys.readouterr().out)["arena"]
        assert arena["head"] == measured.head, (path.name, arena, measured.head)
        assert abs(arena["total"] - measured.total) <= 0.10 * measured.total, (path.name, arena, measured.total)
