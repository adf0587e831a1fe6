"""`quantcore baseline record/check`: golden parameters and outputs, JUnit for CI.

The models are quantcore.quantize outputs of the float fixtures; "re-quantized with
other calibration data" is the same float model calibrated on other samples and
written under the same file name.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import quantcore
from quantcore import baseline
from quantcore.cli import main

MODELS = Path(__file__).parent / "fixtures" / "models"
CNN_CALIB = np.load(MODELS / "small_cnn_calib.npy")
MLP_CALIB = np.load(MODELS / "mlp_calib.npy")


def _quantize(float_name: str, calib: np.ndarray, **kw) -> bytes:
    return quantcore.quantize(MODELS / float_name, representative_dataset=[[x[None]] for x in calib], **kw)


@pytest.fixture(scope="module")
def quantized() -> dict[str, bytes]:
    return {
        "cnn": _quantize("small_cnn_float32.tflite", CNN_CALIB[:8]),
        "cnn_io": _quantize("small_cnn_float32.tflite", CNN_CALIB[:8], inference_input_type=np.int8,
                            inference_output_type=np.int8),
        "cnn_other_calib": _quantize("small_cnn_float32.tflite", CNN_CALIB[16:20]),
        "mlp": _quantize("mlp_float32.tflite", MLP_CALIB[:8]),
    }


@pytest.fixture
def workspace(tmp_path, quantized):
    """models/ with three quantized models, inputs.npz (float) for the two CNNs."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "cnn_int8.tflite").write_bytes(quantized["cnn"])
    (models / "cnn_int8_io.tflite").write_bytes(quantized["cnn_io"])
    (models / "mlp_int8.tflite").write_bytes(quantized["mlp"])
    np.savez(tmp_path / "inputs.npz", **{"serving_default_input:0": CNN_CALIB[30:31]})
    return tmp_path


def _record(ws: Path, capsys, numerics="reference") -> None:
    m = ws / "models"
    assert main(["baseline", "record", str(m / "cnn_int8.tflite"), str(m / "cnn_int8_io.tflite"),
                 "--inputs", str(ws / "inputs.npz"), "-o", str(ws / "base"), "--numerics", numerics]) == 0
    assert main(["baseline", "record", str(m / "mlp_int8.tflite"), "-o", str(ws / "base"),
                 "--numerics", numerics]) == 0
    out = capsys.readouterr().out
    assert out.count("recorded ") == 3


def test_record_writes_readable_manifest_and_arrays(workspace, capsys):
    _record(workspace, capsys)
    base = workspace / "base"
    assert sorted(p.name for p in base.iterdir()) == [
        "cnn_int8.json", "cnn_int8.npz", "cnn_int8_io.json", "cnn_int8_io.npz", "mlp_int8.json", "mlp_int8.npz"]
    text = (base / "cnn_int8.json").read_text()
    man = json.loads(text)
    assert man["format"] == baseline.FORMAT and man["name"] == "cnn_int8"
    assert man["model"] == "../models/cnn_int8.tflite"
    import hashlib
    assert man["sha256"] == hashlib.sha256((workspace / "models" / "cnn_int8.tflite").read_bytes()).hexdigest()
    # quantization parameters of every tensor, scales on one line for git diff
    tensors = {t["name"]: t for t in man["graph"]["tensors"]}
    conv_w = tensors["small_cnn/conv2d/Conv2D"]
    assert conv_w["constant"] and len(conv_w["scale"]) == 16 and conv_w["zero_point"] == [0] * 16
    assert '"scale": [' in text and '"shape": [16, 3, 3, 3]' in text
    assert man["inputs"][0]["source"].endswith("inputs.npz")
    [out] = man["numerics"]["reference"]["outputs"]
    with np.load(base / "cnn_int8.npz") as z:
        np.testing.assert_array_equal(z["input_0"], CNN_CALIB[30:31])
        assert z[out["key"]].shape == (1, 10)
    # the int8-I/O model got the float inputs quantized with its input parameters
    io = json.loads((base / "cnn_int8_io.json").read_text())
    assert io["inputs"][0]["dtype"] == "int8"
    mlp = json.loads((base / "mlp_int8.json").read_text())
    assert mlp["inputs"][0]["source"] == "seeded random (seed 0)"


def test_check_unchanged_models_passes(workspace, capsys):
    _record(workspace, capsys, numerics="reference,optimized")
    junit = workspace / "junit.xml"
    assert main(["baseline", "check", str(workspace / "base"), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "result: all 3 models match their baselines (exit 0)" in out
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 6                     # 3 models x 2 numerics modes
    assert {c.get("name") for c in cases} >= {"cnn_int8[reference]", "cnn_int8[optimized]"}
    assert root.find(".//failure") is None and root.find(".//error") is None


def test_requantized_model_fails_and_is_named(workspace, capsys, quantized):
    _record(workspace, capsys)
    (workspace / "models" / "cnn_int8.tflite").write_bytes(quantized["cnn_other_calib"])
    junit = workspace / "junit.xml"
    code = main(["baseline", "check", str(workspace / "base"), "--junit", str(junit),
                 "--json", str(workspace / "check.json")])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert any(line.split()[:2] == ["FAILED", "cnn_int8"] for line in lines)
    assert any(line.split()[:2] == ["ok", "cnn_int8_io"] for line in lines)
    assert any(line.split()[:2] == ["ok", "mlp_int8"] for line in lines)
    assert "model file changed: sha256" in out
    assert "tensors changed" in out and "scale x" in out          # activation ranges moved
    assert "1 of 3 models changed or failed: cnn_int8 (exit 1)" in out
    js = json.loads((workspace / "check.json").read_text())
    assert {m["name"]: m["passed"] for m in js["models"]} == {"cnn_int8": False, "cnn_int8_io": True,
                                                              "mlp_int8": True}
    root = ET.parse(junit).getroot()
    [suite] = root.findall("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "0"
    [failed] = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed.get("name") == "cnn_int8[reference]"
    f = failed.find("failure")
    assert f.get("message").startswith("cnn_int8 [reference]: model file changed")
    assert "tensors changed" in f.text
    # only this model: --models restricts the check
    assert main(["baseline", "check", str(workspace / "base"), "--models", "mlp_int8"]) == 0
    capsys.readouterr()


def test_output_tolerance_in_lsb(workspace, capsys):
    _record(workspace, capsys)
    base = workspace / "base"
    man = json.loads((base / "cnn_int8_io.json").read_text())
    key = man["numerics"]["reference"]["outputs"][0]["key"]
    with np.load(base / "cnn_int8_io.npz") as z:
        arrays = {k: z[k] for k in z.files}
    y = arrays[key].copy()                    # int8 output: pretend the runtime moved by one LSB
    i = int(np.argmax(y < 127))
    y.flat[i] += 1
    arrays[key] = y
    np.savez(base / "cnn_int8_io.npz", **arrays)
    assert main(["baseline", "check", str(base), "--models", "cnn_int8_io"]) == 1
    out = capsys.readouterr().out
    assert "reference: output StatefulPartitionedCall:0 int8 [1, 10]: 1/10 differ" in out and "(1 LSB)" in out
    assert main(["baseline", "check", str(base), "--models", "cnn_int8_io", "--tolerance", "1"]) == 0
    assert "within tolerance" in capsys.readouterr().out


def test_model_path_override_and_errors(workspace, capsys, quantized, tmp_path):
    _record(workspace, capsys)
    base = workspace / "base"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "cnn_int8.tflite").write_bytes(quantized["cnn_other_calib"])
    assert main(["baseline", "check", str(base), "--models", str(other / "cnn_int8.tflite")]) == 1
    assert "FAILED cnn_int8" in capsys.readouterr().out
    # a missing model is an error (exit 2), reported as a JUnit <error>
    (workspace / "models" / "mlp_int8.tflite").unlink()
    junit = workspace / "j.xml"
    assert main(["baseline", "check", str(base), "--junit", str(junit)]) == 2
    assert "ERROR  mlp_int8" in capsys.readouterr().out
    err = ET.parse(junit).getroot().find(".//error")
    assert err is not None and "mlp_int8.tflite" in err.get("message")
    # bad usage
    assert main(["baseline", "check", str(tmp_path / "nothing")]) == 2
    assert main(["baseline", "check", str(base), "--models", "no_such_model"]) == 2
    assert main(["baseline", "record", str(workspace / "models" / "cnn_int8.tflite"), "-o", str(base),
                 "--numerics", "fast"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_api_record_and_check_bytes(tmp_path, quantized):
    r = baseline.record_model(quantized["mlp"], tmp_path, name="mlp_bytes")
    assert r.numerics == {"reference": None}
    ok = baseline.check_model(tmp_path, "mlp_bytes", model=quantized["mlp"])
    assert ok.passed and ok.details() == []
    bad = baseline.check_model(tmp_path, "mlp_bytes", model=_quantize("mlp_float32.tflite", MLP_CALIB[20:24]))
    assert not bad.passed and any("tensors changed" in d for d in bad.details())
