"""quantcore debug: per-layer quantization error against the float model.

Content checks: one row per quantized operator output with numbers recomputed
independently here, a layer whose range was deliberately widened ranked worst and
suggested for the denylist, selective re-quantization recovering the output SQNR,
the JSON and PNG outputs, and one-line errors for bad input.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.debug import debug, detect_settings
from quantcore.errors import InputError
from quantcore.numerics import dequantize
from quantcore.quantizer import quantize
from quantcore.runtime import Interpreter
from quantcore.schema import read_model, write_model
from quantcore.schema.model import TensorType

MODELS = Path(__file__).parent / "fixtures" / "models"
FLOAT = MODELS / "small_cnn_float32.tflite"
INT8 = MODELS / "small_cnn_int8.tflite"
CALIB = MODELS / "small_cnn_calib.npy"
WIDENED = "small_cnn/conv2d_2/BiasAdd;small_cnn/conv2d_2/Conv2D;small_cnn/conv2d_2/BiasAdd/ReadVariableOp1"
QUANT_TYPES = (TensorType.INT8, TensorType.INT16, TensorType.UINT8)


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return 10 * math.log10(float(np.sum(ref ** 2)) / float(np.sum((got - ref) ** 2)))


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.load(CALIB)


@pytest.fixture(scope="module")
def converter_result():
    return debug(FLOAT, INT8, CALIB)


@pytest.fixture(scope="module")
def widened(tmp_path_factory, calib) -> tuple[Path, float]:
    """quantcore's int8 small_cnn with the output scale of conv2d_2 (a CONV_2D feeding
    TANH, which requantizes its input) made 50 times wider; returns (path, old scale)."""
    m = read_model(quantize(FLOAT, representative_dataset=calib))
    sg = m.subgraphs[0]
    t = next(i for i, tensor in enumerate(sg.tensors) if tensor.name == WIDENED)
    q = sg.tensors[t].quantization
    old = float(q.scale[0])
    q.scale = (q.scale * 50).astype(np.float32)
    path = tmp_path_factory.mktemp("debug") / "widened.tflite"
    path.write_bytes(write_model(m))
    return path, old


@pytest.fixture(scope="module")
def widened_result(widened, calib):
    return debug(FLOAT, widened[0], calib[:12], selective=True)


# -- (1) converter fixture pair ------------------------------------------------------------------
def test_one_row_per_quantized_op_output(converter_result):
    m = read_model(INT8)
    sg = m.subgraphs[0]
    expected = {(o, t) for o, op in enumerate(sg.operators) for t in op.outputs
                if sg.tensors[t].type in QUANT_TYPES and sg.tensors[t].qparams() is not None}
    r = converter_result
    assert len(expected) == 18
    assert {(row.op_index, row.tensor) for row in r.rows} == expected
    assert r.unmatched == [] and r.samples == 32
    for row in r.rows:
        assert math.isfinite(row.sqnr_db) and 25 < row.sqnr_db < 70, row
        # local error: finite for arithmetic ops, exact (+inf) for MAX_POOL/CONCATENATION/RESHAPE
        assert row.local_sqnr_db is not None and row.local_sqnr_db >= row.sqnr_db - 3.5, row
        if row.op in ("MAX_POOL_2D", "CONCATENATION", "RESHAPE"):
            assert row.local_sqnr_db == math.inf
        assert row.num_elements == int(np.prod(sg.tensors[row.tensor].shape))
        assert row.mse == pytest.approx(row.std_error ** 2 + row.mean_error ** 2, rel=1e-9)
        assert 0 < row.rmse_lsb < 2 and row.max_abs_error > 0
    by_op = {row.op_index: row for row in r.rows}
    # the input QUANTIZE of data in [0, 1] at scale 1/255: pure rounding, 1/sqrt(12) LSB
    assert by_op[0].op == "QUANTIZE" and by_op[0].match == "quantize-input"
    assert by_op[0].float_name == "serving_default_input:0"
    assert by_op[0].rmse_lsb == pytest.approx(1 / math.sqrt(12), abs=0.01)
    # the integer copy of the output is matched through the DEQUANTIZE after it
    assert by_op[17].name == "StatefulPartitionedCall:01"
    assert by_op[17].float_name == "StatefulPartitionedCall:0" and by_op[17].match == "conversion"
    local = [row.local_sqnr_db for row in r.rows]
    assert local == sorted(local)
    assert r.suggested == [] and r.median_db is not None
    assert r.settings == {"mode": "int8", "per_channel": True, "input_type": "float32",
                          "output_type": "float32", "denylist": []}


def test_numbers_match_an_independent_computation(converter_result, calib):
    """Whole-model SQNR of one layer and of the model output, recomputed here."""
    fi, qi = Interpreter(model_path=FLOAT), Interpreter(model_path=INT8)
    fi.allocate_tensors()
    qi.allocate_tensors()
    row = next(r for r in converter_result.rows if r.op == "DEPTHWISE_CONV_2D")
    ft = next(d["index"] for d in fi.get_tensor_details() if d["name"] == row.name)
    refs, gots, outs_f, outs_q = [], [], [], []
    for x in calib:
        for it in (fi, qi):
            it.set_tensor(it.get_input_details()[0]["index"], x[None])
            it.invoke()
        refs.append(fi.get_tensor(ft).astype(np.float64))
        gots.append(dequantize(qi.get_tensor(row.tensor), row.scale, row.zero_point).astype(np.float64))
        outs_f.append(fi.get_tensor(fi.get_output_details()[0]["index"]).astype(np.float64))
        outs_q.append(qi.get_tensor(qi.get_output_details()[0]["index"]).astype(np.float64))
    ref, got = np.concatenate(refs), np.concatenate(gots)
    assert row.sqnr_db == pytest.approx(_sqnr(ref, got), abs=1e-9)
    assert row.max_abs_error == pytest.approx(float(np.max(np.abs(got - ref))), rel=1e-12)
    assert row.mean_error == pytest.approx(float(np.mean(got - ref)), rel=1e-9, abs=1e-15)
    assert row.rmse_lsb == pytest.approx(math.sqrt(float(np.mean((got - ref) ** 2))) / row.scale, rel=1e-9)
    out = _sqnr(np.concatenate(outs_f), np.concatenate(outs_q))
    assert converter_result.output_sqnr_db == pytest.approx(out, abs=1e-9)
    assert 30 < out < 70


def test_renamed_tensors_fall_back_to_graph_position(converter_result, calib):
    m = read_model(INT8)
    for i, t in enumerate(m.subgraphs[0].tensors):
        t.name = f"renamed_{i}"
    r = debug(FLOAT, write_model(m), calib)
    assert r.unmatched == [] and len(r.rows) == len(converter_result.rows)
    want = {row.op_index: row for row in converter_result.rows}
    for row in r.rows:
        assert row.match in ("position", "quantize-input"), row
        assert row.float_name == want[row.op_index].float_name
        assert row.sqnr_db == want[row.op_index].sqnr_db
        assert row.local_sqnr_db == want[row.op_index].local_sqnr_db


def test_detected_settings():
    assert detect_settings(read_model(MODELS / "small_cnn_int8_pertensor.tflite"))["per_channel"] is False
    assert detect_settings(read_model(MODELS / "small_cnn_int16x8.tflite"))["mode"] == "int16x8"
    s = detect_settings(read_model(MODELS / "small_cnn_uint8_io.tflite"))
    assert (s["mode"], s["input_type"], s["output_type"]) == ("int8", "uint8", "uint8")


def test_operators_already_in_float_stay_in_float(calib):
    q = quantize(FLOAT, representative_dataset=calib[:4], denylist=["TANH"])
    r = debug(FLOAT, q, calib[:4], selective=True)
    assert r.settings["denylist"] == ["small_cnn/conv2d_2/Tanh"]
    assert all(row.op != "TANH" for row in r.rows)
    assert "--denylist small_cnn/conv2d_2/Tanh" in r.quantize_command()
    base = r.selective[0]
    assert base.denylist == [] and [k[1:] for k in base.kept_in_float] == [("TANH", "denylist")]
    assert base.output_sqnr_db == r.output_sqnr_db   # the same settings and data: the same model


# -- (2) a deliberately widened range is ranked worst and suggested ---------------------------------
def test_widened_layer_is_ranked_worst_and_suggested(widened, widened_result):
    _, old_scale = widened
    r = widened_result
    worst = r.rows[0]
    assert worst.name == WIDENED and worst.op == "CONV_2D"
    assert worst.scale == pytest.approx(50 * old_scale, rel=1e-6)
    assert worst.local_sqnr_db < 15 < r.median_db - 20      # a few grid steps over its whole range
    assert [row.name for row in r.suggested] == [WIDENED] and worst.suggested
    assert r.denylist == [WIDENED]
    # the whole-model SQNR also blames the layers after it (TANH saturates the error)
    tanh = next(row for row in r.rows if row.op == "TANH")
    assert tanh.sqnr_db < 15 and tanh.local_sqnr_db > 40
    cmd = r.quantize_command("f.tflite", "d.npy")
    assert cmd.startswith("quantcore quantize f.tflite -o OUT.tflite --data d.npy --denylist ")
    assert f"'{WIDENED}'" in cmd


# -- (3) --selective ---------------------------------------------------------------------------------
def test_selective_recovers_the_output_sqnr(widened_result):
    r = widened_result
    assert r.output_sqnr_db < 25
    base, layer = r.selective
    assert base.denylist == [] and layer.denylist == [WIDENED]
    conv = [k for k in layer.kept_in_float if k[1] == "CONV_2D"]
    assert len(conv) == 1 and conv[0][2] == "denylist"
    assert layer.output_sqnr_db > r.output_sqnr_db + 15
    assert layer.gain_db == pytest.approx(layer.output_sqnr_db - r.output_sqnr_db)
    assert layer.gain_vs_requantized_db == pytest.approx(layer.output_sqnr_db - base.output_sqnr_db)
    text = r.format()
    assert "selective quantization" in text and f"{layer.gain_db:+.2f}" in text


# -- (4) CLI text and --json ---------------------------------------------------------------------------
def test_cli_text_and_json(widened, calib, tmp_path, capsys):
    out = tmp_path / "debug.json"
    assert main(["debug", str(FLOAT), str(widened[0]), "--data", str(CALIB), "--max-samples", "8",
                 "--json", str(out), "--selective", "--top", "5"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("op "))
    assert "local dB" in lines[head] and "SQNR dB" in lines[head] and lines[head].endswith("tensor")
    table = lines[head + 2:head + 7]
    assert table[0].split()[:2] == [f"{_op_of(widened[0], WIDENED)}*", "CONV_2D"]
    assert "... 13 more rows" in lines[head + 7]
    # aligned columns: every row's tensor name starts under the "tensor" header
    col = lines[head].index("tensor")
    for line in table:
        assert line[col - 2:col] == "  " and line[col] != " " and line[col - 3] != " ", line
    assert f"--denylist '{WIDENED}'" in text and f"--data {CALIB}" in text

    data = json.loads(out.read_text())
    assert data["samples"] == 8 and len(data["rows"]) == 18
    assert data["suggestion"]["denylist"] == [WIDENED]
    assert data["suggestion"]["layers"][0]["op"] == "CONV_2D"
    assert "--denylist" in data["suggestion"]["command"]
    assert [s["denylist"] for s in data["selective"]] == [[], [WIDENED]]
    lib = debug(FLOAT, widened[0], calib[:8])
    for row, want in zip(data["rows"], lib.rows):
        assert row["name"] == want.name and row["sqnr_db"] == want.sqnr_db
        # strict JSON: an exact layer's SQNR (+inf) is written as the string "inf"
        assert row["local_sqnr_db"] == ("inf" if want.local_sqnr_db == math.inf else want.local_sqnr_db)
        assert set(row) >= {"op_index", "op", "scale", "zero_point", "num_elements", "mean_error",
                            "std_error", "max_abs_error", "mse", "rmse_lsb"}


def _op_of(path: Path, name: str) -> int:
    m = read_model(path)
    sg = m.subgraphs[0]
    return next(o for o, op in enumerate(sg.operators) if sg.tensors[op.outputs[0]].name == name)


# -- (5) --plot ------------------------------------------------------------------------------------------
def test_plot_writes_a_png(widened, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "debug.png"
    assert main(["debug", str(FLOAT), str(widened[0]), "--data", str(CALIB), "--max-samples", "4",
                 "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debug.png"]   # no temporary left
    assert f"wrote {out}" in capsys.readouterr().out


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib -> ImportError
    out = tmp_path / "debug.png"
    assert main(["debug", str(FLOAT), str(INT8), "--data", str(CALIB), "--plot", str(out)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quantcore: error:")
    assert "pip install 'quantcore[plot]'" in err[0]
    assert cap.out == "" and not out.exists()


# -- (6) bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, needle", [
    ("missing", "cannot read"),
    ("swapped", "float model is quantized"),
    ("not_tflite", "TFL3"),
    ("other_model", "do not match"),
    ("bad_data", "shape"),
    ("top", "--top"),
])
def test_bad_input_is_one_line_exit_2(case, needle, tmp_path, capsys):
    args = [str(FLOAT), str(INT8), "--data", str(CALIB)]
    if case == "missing":
        args[1] = str(tmp_path / "nope.tflite")
    elif case == "swapped":
        args[:2] = [str(INT8), str(FLOAT)]
    elif case == "not_tflite":
        (tmp_path / "x.tflite").write_bytes(b"not a model at all, just some bytes")
        args[1] = str(tmp_path / "x.tflite")
    elif case == "other_model":
        args[1] = str(MODELS / "mlp_int8.tflite")
    elif case == "bad_data":
        np.save(tmp_path / "bad.npy", np.zeros((3, 5, 5), np.float32))
        args[3] = str(tmp_path / "bad.npy")
    elif case == "top":
        args += ["--top", "-1"]
    json_out = tmp_path / "never.json"
    assert main(["debug", *args, "--json", str(json_out)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quantcore: error:") and needle in err[0], err
    assert cap.out == "" and not json_out.exists()


def test_library_argument_errors():
    with pytest.raises(InputError, match="sort"):
        debug(FLOAT, INT8, CALIB, sort="worst")
    with pytest.raises(InputError, match="max_samples"):
        debug(FLOAT, INT8, CALIB, max_samples=0)
    with pytest.raises(InputError, match="no samples"):
        debug(FLOAT, INT8, [])
