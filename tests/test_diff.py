"""`quantcore diff`: graph, tensors and numbers of two models (content, not only exit codes).

Fixtures are TensorFlow-converter outputs of the same trained Keras model
(tests/fixtures/models): per-channel int8, per-tensor int8, int8 I/O, float32.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.diff import diff
from quantcore.errors import InputError
from quantcore.schema import read_model, write_model

MODELS = Path(__file__).parent / "fixtures" / "models"
PER_CHANNEL = MODELS / "small_cnn_int8.tflite"
PER_TENSOR = MODELS / "small_cnn_int8_pertensor.tflite"
INT8_IO = MODELS / "small_cnn_int8_io.tflite"
WEIGHT = "small_cnn/conv2d_1/Conv2D"          # int8 [16, 1, 1, 16], read by operator 4 (CONV_2D)


def _run(argv, tmp_path, capsys):
    out = tmp_path / "diff.json"
    code = main(["diff", *map(str, argv), "--json", str(out)])
    text = capsys.readouterr().out
    return code, text, (json.loads(out.read_text()) if out.exists() else None)


def test_diff_of_a_file_with_itself_is_identical(tmp_path, capsys):
    code, text, js = _run([PER_CHANNEL, PER_CHANNEL], tmp_path, capsys)
    assert code == 0
    assert js["identical"] is True
    assert js["changed_tensors"] == [] and js["added_tensors"] == [] and js["removed_tensors"] == []
    assert js["ops"] == {"added": [], "removed": [], "changed": []}
    assert js["first_divergent_op"] is None
    [out] = js["outputs"]
    assert out["name"] == "StatefulPartitionedCall:0"
    assert out["max_abs_diff"] == 0.0 and out["max_lsb_diff"] == 0
    assert all(t["equal"] for t in js["tensors"]) and len(js["tensors"]) == 19
    assert "result: IDENTICAL (exit 0)" in text and "0 of 19 matched operator outputs differ" in text


def test_one_changed_int8_weight_is_named_with_its_value(tmp_path, capsys):
    m = read_model(PER_CHANNEL)
    sg = m.subgraphs[0]
    [t] = [i for i, x in enumerate(sg.tensors) if x.name == WEIGHT]
    w = m.tensor_data(0, t).copy()
    at = (3, 0, 0, 5)
    old = int(w[at])
    new = old + 1 if old < 127 else old - 1
    w[at] = new
    m.buffers[sg.tensors[t].buffer].data = w.tobytes()
    edited = tmp_path / "edited.tflite"
    edited.write_bytes(write_model(m))

    code, text, js = _run([PER_CHANNEL, edited], tmp_path, capsys)
    assert code == 1
    assert js["identical"] is False
    [c] = js["changed_tensors"]
    assert c["name"] == WEIGHT and c["kinds"] == ["values"]
    [what] = c["what"]
    assert "values: 1/256 changed, max 1 LSB" in what
    assert f"at [3, 0, 0, 5]: {old} -> {new}" in what
    # one LSB of this weight in real units is its channel-3 scale
    scale3 = float(sg.tensors[t].quantization.scale[3])
    assert f"max |real| {scale3:.4g}" in what
    assert js["ops"] == {"added": [], "removed": [], "changed": []}
    # the first operator whose output moved is the CONV_2D reading that weight
    fd = js["first_divergent_op"]
    assert fd["op_index"] == 4 and fd["op"] == "CONV_2D" and fd["changed_inputs"] == [WEIGHT]
    assert fd["max_lsb_diff"] >= 1 and fd["worst_index"][3] == 3      # output channel 3
    assert WEIGHT in text and "result: DIFFERENT (exit 1)" in text


def test_per_channel_vs_per_tensor_lists_every_weight_and_bias(tmp_path, capsys):
    code, text, js = _run([PER_CHANNEL, PER_TENSOR], tmp_path, capsys)
    assert code == 1
    m = read_model(PER_CHANNEL)
    sg = m.subgraphs[0]
    expected = {x.name for i, x in enumerate(sg.tensors)
                if m.tensor_data(0, i) is not None and x.quantization is not None and x.quantization.per_channel}
    assert len(expected) == 14                       # 7 weights + 7 biases (4 conv, 1 depthwise, 2 dense)
    changed = {c["name"]: c for c in js["changed_tensors"]}
    assert set(changed) == expected
    for name, c in changed.items():
        assert any("per-channel" in w and "-> per-tensor" in w for w in c["what"]), c
        assert "quantization" in c["kinds"]
        assert any(w.startswith("scale x") for w in c["what"])
        assert any(w.startswith("values: ") and "LSB" in w for w in c["what"])
    assert "per-channel (16, dim 3) -> per-tensor" in " ".join(
        changed["small_cnn/depthwise_conv2d/depthwise"]["what"])
    assert js["ops"] == {"added": [], "removed": [], "changed": []}
    # activations keep their (identically calibrated) parameters
    assert not any(n.startswith("small_cnn/add/") for n in changed)
    [out] = js["outputs"]
    assert out["name"] == "StatefulPartitionedCall:0"
    assert out["max_abs_diff"] > 0 and out["max_lsb_diff"] >= 1
    assert out["num_different"] > 0 and out["sqnr_db"] is not None and out["sqnr_db"] > 10
    # one LSB of the float output is one step of the int8 softmax (1/256)
    assert abs(out["max_abs_diff"] - out["max_lsb_diff"] / 256) < 0.5 / 256
    fd = js["first_divergent_op"]
    assert fd["op_index"] == 1 and fd["op"] == "CONV_2D"
    assert "small_cnn/conv2d/Conv2D" in fd["changed_inputs"]
    assert "first divergent op: 1 CONV_2D" in text and "SQNR" in text
    assert "tensors: 14 changed (quantization 14, values 14)" in text


def test_int8_io_against_float_io_converts_inputs_through_quantization(tmp_path, capsys):
    code, text, js = _run([PER_CHANNEL, INT8_IO], tmp_path, capsys)
    assert code == 1
    removed = sorted(o["op"] for o in js["ops"]["removed"])
    assert removed == ["DEQUANTIZE", "QUANTIZE"] and js["ops"]["added"] == []
    changed = {c["name"]: c["what"] for c in js["changed_tensors"]}
    assert changed["serving_default_input:0"][0] == "dtype float32 -> int8"
    # the same real input reaches both models: every matched operator output is equal
    assert js["first_divergent_op"] is None
    assert all(t["equal"] for t in js["tensors"])
    [out] = js["outputs"]
    assert out["max_abs_diff"] == 0.0 and out["dtype"] == "float32->int8"


def test_given_inputs_in_either_models_types(tmp_path):
    x = np.load(MODELS / "small_cnn_calib.npy")[:1]
    f = tmp_path / "x.npz"
    np.savez(f, x)
    r1 = diff(PER_CHANNEL, INT8_IO, inputs=f)
    assert r1.inputs_source == str(f) and r1.first_divergence is None
    xq = ((x / np.float32(1 / 255)).round() - 128).astype(np.int8)   # the int8 model's input scale
    r2 = diff(PER_CHANNEL, INT8_IO, inputs=[xq])
    assert r2.first_divergence is None and r2.outputs[0].equal
    with pytest.raises(InputError, match=r"must be float32 \[1, 32, 32, 3\], got float32 \[1, 8, 8, 3\]"):
        diff(PER_CHANNEL, INT8_IO, inputs=[np.zeros((1, 8, 8, 3), np.float32)])


def test_float_model_against_int8_shows_versions_and_quantization():
    r = diff(MODELS / "small_cnn_float32.tflite", PER_CHANNEL)
    assert r.exit_code == 1
    assert [o.op for o in r.structure.ops_added] == ["QUANTIZE", "DEQUANTIZE"]
    conv = [o for o in r.structure.ops_changed if o.new_index == 1]
    assert conv and "version 1 -> 3" in conv[0].what
    weight = {c.name: c for c in r.structure.tensors_changed}["small_cnn/conv2d/Conv2D"]
    assert "dtype float32 -> int8" in weight.what and "not quantized -> per-channel (16, dim 0)" in weight.what
    assert r.outputs[0].sqnr_db is not None and r.outputs[0].sqnr_db > 10


def test_no_run_and_tolerance_in_json(tmp_path, capsys):
    code, text, js = _run([PER_CHANNEL, PER_CHANNEL, "--no-run", "--tolerance", "2"], tmp_path, capsys)
    assert code == 0 and js["outputs"] == [] and js["tolerance"] == 2
    assert "numbers: not run" in text


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "missing.tflite"), str(PER_CHANNEL)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quantcore: error:") and "missing.tflite" in err[0]
    bad = tmp_path / "bad.npz"
    np.savez(bad, np.zeros((2, 3), np.float32))
    assert main(["diff", str(PER_CHANNEL), str(PER_TENSOR), "--inputs", str(bad)]) == 2
    assert "quantcore: error:" in capsys.readouterr().err
    assert main(["diff", str(PER_CHANNEL), str(PER_TENSOR), "--tolerance", "-1"]) == 2
