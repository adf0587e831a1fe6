"""The command line: demo, quantize, run, compare, explain (content, not only exit codes).

compare runs LiteRT BUILTIN_REF in a child process; explain's final value is
checked against the runtime.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.compare import compare
from quantcore.runtime import Interpreter
from quantcore.runtime import ops as ops_pkg

EXAMPLES = Path(__file__).parent.parent / "quantcore" / "examples"
FLOAT = EXAMPLES / "small_cnn_float32.tflite"
CALIB = EXAMPLES / "small_cnn_calib.npy"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "q.tflite"
    assert main(["quantize", str(FLOAT), "-o", str(out), "--data", str(CALIB)]) == 0
    return out


def test_demo_quantizes_and_matches_litert(tmp_path, capsys):
    out = tmp_path / "demo.tflite"
    assert main(["demo", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SQNR" in text and "equal to LiteRT (reference)" in text
    assert out.exists()


def test_quantize_modes_and_io(tmp_path, capsys):
    for extra in (["--io", "int8"], ["--io", "uint8"], ["--per-tensor"], ["--mode", "int16x8"],
                  ["--denylist", "TANH"]):
        out = tmp_path / ("q" + "_".join(extra).replace("-", "") + ".tflite")
        assert main(["quantize", str(FLOAT), "-o", str(out), "--data", str(CALIB), *extra]) == 0
        it = Interpreter(model_path=out)
        want = {"int8": np.int8, "uint8": np.uint8}.get(extra[1] if extra[0] == "--io" else "", np.float32)
        assert it.get_input_details()[0]["dtype"] == want
    assert "kept in float: operator" in capsys.readouterr().out


def test_quantize_bad_data_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 5, 5), np.float32))
    out = tmp_path / "never.tflite"
    assert main(["quantize", str(FLOAT), "-o", str(out), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quantcore: error:") and "shape" in err[0]
    assert not out.exists()
    nan = tmp_path / "nan.npy"
    data = np.load(CALIB)[:2].copy()
    data[1, 0, 0, 0] = np.nan
    np.save(nan, data)
    assert main(["quantize", str(FLOAT), "-o", str(out), "--data", str(nan)]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not out.exists()


def test_run_writes_outputs(int8_model, tmp_path, capsys):
    out = tmp_path / "y.npz"
    assert main(["run", str(int8_model), "-o", str(out)]) == 0
    y = np.load(out)
    it = Interpreter(model_path=int8_model)
    assert list(y.keys()) == [d["name"] for d in it.get_output_details()]
    assert "float32 [1, 10]" in capsys.readouterr().out


def test_compare_equal_model_exits_0_with_json(int8_model, tmp_path, capsys):
    js = tmp_path / "c.json"
    assert main(["compare", str(int8_model), "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["equal"] and data["first_divergence"] is None
    assert [r["op"] for r in data["rows"]][:2] == ["QUANTIZE", "CONV_2D"]
    assert "equal to LiteRT (reference)" in capsys.readouterr().out


def test_compare_detects_one_flipped_lsb_and_names_the_op(int8_model, monkeypatch, capsys):
    """Plant a single-LSB error in quantcore's MUL output: compare must find exactly it."""
    mul = ops_pkg.get_kernel("MUL")
    real_eval = mul.eval

    def flipped(params, *args):
        out = [np.array(a, copy=True) for a in real_eval(params, *args)]
        flat = out[0].reshape(-1)
        flat[3] = flat[3] + 1 if flat[3] < 127 else flat[3] - 1
        return out
    monkeypatch.setattr(mul, "eval", flipped)
    result = compare(int8_model.read_bytes())
    assert result.exit_code == 1
    d = result.first_divergence
    assert d.op == "MUL" and abs(d.ours - d.theirs) == 1
    mul_row = next(r for r in result.rows if r.op == "MUL")
    assert mul_row.num_different == 1 and mul_row.max_lsb == 1
    assert main(["compare", str(int8_model)]) == 1
    assert "first divergent op" in capsys.readouterr().out


def test_explain_matches_runtime(int8_model, tmp_path, capsys):
    it = Interpreter(model_path=int8_model, experimental_preserve_all_tensors=True)
    conv = next(d for d in it.get_tensor_details() if d["name"].startswith("small_cnn/conv2d_1/Relu"))
    js = tmp_path / "e.json"
    assert main(["explain", str(int8_model), "--tensor", conv["name"], "--at", "0,2,3,1",
                 "--json", str(js)]) == 0
    steps = json.loads(js.read_text())
    it.allocate_tensors()
    from quantcore.compare import default_inputs
    from quantcore.schema import read_model
    x = default_inputs(read_model(int8_model))[0]
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    assert steps["final"] == int(it.get_tensor(conv["index"])[0, 2, 3, 1])
    assert "(eq. 14)" in capsys.readouterr().out
    assert main(["explain", str(int8_model), "--tensor", "no-such-tensor", "--at", "0"]) == 2


def test_missing_file_and_not_a_model(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.tflite")]) == 2
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"hello world, not a model")
    assert main(["compare", str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("quantcore: error:") for e in err)
