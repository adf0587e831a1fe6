"""quantcore.testing assertions and the pytest plugin's quantcore_baseline fixture.

The fixture is exercised in pytester sessions (in-process, a few tenths of a second
each): record, check unchanged, check after the model changed, and the error when
no baseline exists.
"""
from __future__ import annotations

import shutil
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from quantcore.testing import assert_bit_exact, assert_same_quantization

pytest_plugins = ["pytester"]

MODELS = Path(__file__).parent / "fixtures" / "models"
PER_CHANNEL = MODELS / "small_cnn_int8.tflite"
PER_TENSOR = MODELS / "small_cnn_int8_pertensor.tflite"


# ---------------------------------------------------------------------------
# assert_same_quantization
# ---------------------------------------------------------------------------
def test_assert_same_quantization_passes_on_same_model():
    assert_same_quantization(PER_CHANNEL, PER_CHANNEL)
    assert_same_quantization(PER_CHANNEL, PER_CHANNEL.read_bytes(), values=True)


def test_assert_same_quantization_lists_changed_tensors():
    with pytest.raises(AssertionError) as e:
        assert_same_quantization(PER_CHANNEL, PER_TENSOR)
    msg = str(e.value)
    assert msg.startswith("quantization changed in 14 tensors")
    assert "  small_cnn/conv2d/Conv2D: per-channel (16, dim 0) -> per-tensor; scale x" in msg
    assert "small_cnn/depthwise_conv2d/depthwise: per-channel (16, dim 3) -> per-tensor" in msg
    assert "small_cnn/add/add" not in msg and "values:" not in msg
    with pytest.raises(AssertionError, match=r"(?s)serving_default_input:0: dtype float32 -> int8.*"
                                             r"only in OLD: 'tfl.quantize'"):
        assert_same_quantization(PER_CHANNEL, MODELS / "small_cnn_int8_io.tflite")


# ---------------------------------------------------------------------------
# assert_bit_exact (LiteRT in a child process)
# ---------------------------------------------------------------------------
def test_assert_bit_exact_passes_on_fixture():
    x = np.load(MODELS / "small_cnn_calib.npy")[:1]
    result = assert_bit_exact(PER_CHANNEL, x)
    assert result.equal and len(result.rows) == 19
    assert_bit_exact(MODELS / "small_cnn_int8_io.tflite", {"serving_default_input:0": x})  # quantized


def test_assert_bit_exact_names_first_divergent_op(monkeypatch):
    from quantcore.runtime.ops import add

    real_eval = add.eval

    def off_by_one(params, *inputs):
        out = [o.copy() for o in real_eval(params, *inputs)]
        flat = out[0].reshape(-1)
        flat[7] = flat[7] + 1 if flat[7] < 127 else flat[7] - 1
        return out

    monkeypatch.setattr(add, "eval", off_by_one)
    with pytest.raises(AssertionError) as e:
        assert_bit_exact(PER_CHANNEL)
    msg = str(e.value)
    assert msg.startswith("quantcore differs from LiteRT (reference)")
    assert "first divergent op: 3 ADD, tensor 19 'small_cnn/add/add'" in msg
    assert "worst element (0, 0, 0, 7): quantcore" in msg and "zero point [-128]" in msg


# ---------------------------------------------------------------------------
# the quantcore_baseline fixture (pytester)
# ---------------------------------------------------------------------------
def _autoloaded() -> bool:
    return any(ep.name == "quantcore" for ep in entry_points(group="pytest11"))


def _run(pytester, *args):
    plugin = () if _autoloaded() else ("-p", "quantcore.pytest_plugin")
    return pytester.runpytest_inprocess(*plugin, "-p", "no:cacheprovider", "-q", *args)


TEST_FILE = """
import numpy as np

def test_model(quantcore_baseline):
    x = np.load("inputs.npy")
    quantcore_baseline.check("model.tflite", x)

def test_bytes_named(quantcore_baseline):
    quantcore_baseline.check(open("model.tflite", "rb").read(), name="model_bytes")
"""


@pytest.fixture
def project(pytester):
    shutil.copy(PER_CHANNEL, pytester.path / "model.tflite")
    np.save(pytester.path / "inputs.npy", np.load(MODELS / "small_cnn_calib.npy")[:1])
    pytester.makepyfile(test_guard=TEST_FILE)
    return pytester


def test_fixture_records_then_checks_then_catches_change(project):
    r = _run(project, "--quantcore-baseline=golden", "--quantcore-record")
    r.assert_outcomes(passed=2)
    golden = project.path / "golden"
    assert sorted(p.name for p in golden.iterdir()) == ["model.json", "model.npz", "model_bytes.json",
                                                        "model_bytes.npz"]
    _run(project, "--quantcore-baseline=golden").assert_outcomes(passed=2)

    shutil.copy(PER_TENSOR, project.path / "model.tflite")
    r = _run(project, "--quantcore-baseline=golden")
    r.assert_outcomes(failed=2)
    out = r.stdout.str()
    assert "model 'model' differs from its quantcore baseline" in out
    assert "model 'model_bytes' differs" in out
    assert "small_cnn/conv2d/Conv2D: per-channel (16, dim 0) -> per-tensor" in out
    assert "re-record with --quantcore-record" in out


def test_fixture_ini_option_and_missing_baseline(project):
    r = _run(project)                                        # no directory configured
    r.assert_outcomes(failed=2)
    assert "--quantcore-baseline DIR or set quantcore_baseline_dir" in r.stdout.str()
    project.makeini("[pytest]\nquantcore_baseline_dir = baselines\n")
    r = _run(project)
    r.assert_outcomes(failed=2)
    assert "no quantcore baseline 'model' in" in r.stdout.str()
    assert "--quantcore-record" in r.stdout.str()
    _run(project, "--quantcore-record").assert_outcomes(passed=2)
    assert (project.path / "baselines" / "model.json").exists()
    r = _run(project, "-v")                                  # -q -v: the header is shown
    r.assert_outcomes(passed=2)
    assert "quantcore baselines: " in r.stdout.str() and "(checking)" in r.stdout.str()

