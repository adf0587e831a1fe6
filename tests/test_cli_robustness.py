"""The command line on bad input: exit code 2, exactly one clear line on stderr
(``quantcore: error: ...``), no traceback unless ``--debug``, and no partial output
file -- also when the write fails or the run is interrupted.

Running as root ignores file permissions, so a read-only directory is simulated by
making the temporary-file creation fail (as tests/test_schema.py does).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.schema import writer as writer_module
from quantcore.schema.builder import ModelBuilder


@pytest.fixture(scope="module")
def float_model(tmp_path_factory) -> Path:
    """A small float model: x [1, 6, 6, 2] -> CONV_2D 3x3 (RELU) -> MAX_POOL_2D."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [1, 6, 6, 2], np.float32)
    w = b.add_constant("w", rng.uniform(-1, 1, (3, 3, 3, 2)).astype(np.float32))
    bias = b.add_constant("bias", rng.uniform(-0.1, 0.1, 3).astype(np.float32))
    c = b.add_tensor("conv", [1, 6, 6, 3], np.float32)
    y = b.add_tensor("y", [1, 3, 3, 3], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [c], padding="SAME", stride_w=1, stride_h=1,
                   fused_activation_function="RELU")
    b.add_operator("MAX_POOL_2D", [c], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    b.mark_outputs(y)
    path = tmp_path_factory.mktemp("model") / "float.tflite"
    path.write_bytes(b.to_bytes())
    return path


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, np.random.default_rng(1).uniform(0, 1, (8, 6, 6, 2)).astype(np.float32))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, list[str]]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_error_line(code: int, err: list[str], *words: str) -> None:
    assert code == 2, (code, err)
    assert len(err) == 1, err
    assert err[0].startswith("quantcore: error: "), err
    assert "Traceback" not in err[0]
    for w in words:
        assert w in err[0], (w, err[0])


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------
# Bad models
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["quantize", "run", "inspect", "compare"])
def test_truncated_model(float_model, calib, tmp_path, capsys, command):
    data = float_model.read_bytes()
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    extra = ["-o", out / "q.tflite", "--data", calib] if command == "quantize" else []
    code, _, err = run_cli(capsys, command, bad, *extra)
    assert_one_error_line(code, err, "truncated.tflite: ", "past the end")
    assert files(out) == []


@pytest.mark.parametrize("content, words", [
    (b"not a model at all, just some text\n" * 4, ("not a .tflite model",)),
    (b"", ("0 bytes",)),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), ("not a .tflite model",)),
], ids=["text", "empty", "png"])
def test_not_a_tflite_file(calib, tmp_path, capsys, content, words):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli(capsys, "quantize", bad, "-o", out / "q.tflite", "--data", calib)
    assert_one_error_line(code, err, "model.tflite", *words)
    assert files(out) == []


def test_model_path_is_a_directory_or_missing(calib, tmp_path, capsys):
    for path, words in ((tmp_path, "Is a directory"), (tmp_path / "missing.tflite", "No such file")):
        code, _, err = run_cli(capsys, "quantize", path, "-o", tmp_path / "q.tflite", "--data", calib)
        assert_one_error_line(code, err, words)
    assert not (tmp_path / "q.tflite").exists()


# ---------------------------------------------------------------------------
# Bad calibration data
# ---------------------------------------------------------------------------
def _quantize_with(capsys, float_model, tmp_path, data_path) -> tuple[int, list[str], Path]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", out / "q.tflite", "--data", data_path)
    return code, err, out


@pytest.mark.parametrize("array, words", [
    (np.zeros((3, 5, 5), np.float32), ("shape [3, 5, 5]", "expected [N, 6, 6, 2]")),
    (np.zeros((0, 6, 6, 2), np.float32), ("no samples",)),
    (np.zeros((4, 6, 6, 2), np.int32), ("dtype int32",)),
], ids=["wrong-shape", "no-samples", "wrong-dtype"])
def test_calibration_array_of_the_wrong_kind(float_model, tmp_path, capsys, array, words):
    path = tmp_path / "data.npy"
    np.save(path, array)
    code, err, out = _quantize_with(capsys, float_model, tmp_path, path)
    assert_one_error_line(code, err, *words)
    assert files(out) == []


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_calibration_data(float_model, tmp_path, capsys, value, word):
    data = np.random.default_rng(2).uniform(0, 1, (4, 6, 6, 2)).astype(np.float32)
    data[2, 1, 2, 1] = value
    path = tmp_path / "bad.npy"
    np.save(path, data)
    code, err, out = _quantize_with(capsys, float_model, tmp_path, path)
    assert_one_error_line(code, err, "sample 2", f"contains {word}", "(0, 1, 2, 1)")
    assert files(out) == []


def test_unreadable_calibration_files(float_model, tmp_path, capsys):
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x93NUMPY this is not an array")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([object()], dtype=object), allow_pickle=True)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for path, words in ((garbage, "cannot read calibration data"), (objects, "allow_pickle"),
                        (empty_dir, "no .npy files or images"), (tmp_path / "missing.npy", "does not exist")):
        code, err, out = _quantize_with(capsys, float_model, tmp_path, path)
        assert_one_error_line(code, err, words)
        assert files(out) == []


@pytest.mark.parametrize("ranges, words", [(["nan", "1"], "finite"), (["5", "1"], "min <= max"),
                                           (["0", "inf"], "finite")])
def test_bad_default_ranges(float_model, tmp_path, capsys, ranges, words):
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", tmp_path / "q.tflite",
                           "--default-ranges", *ranges)
    assert_one_error_line(code, err, "default_ranges", words)
    assert not (tmp_path / "q.tflite").exists()


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------
def test_output_directory_missing(float_model, calib, tmp_path, capsys):
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", tmp_path / "no" / "such" / "q.tflite",
                           "--data", calib)
    assert_one_error_line(code, err, "cannot write", "No such file or directory")
    assert not (tmp_path / "no").exists()


def test_output_path_is_a_directory(float_model, calib, tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", target, "--data", calib)
    assert_one_error_line(code, err, "cannot write", "Is a directory")
    assert files(tmp_path) == ["target"] and files(target) == []


def test_output_directory_read_only(float_model, calib, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(writer_module.tempfile, "mkstemp", refuse)
    out = tmp_path / "ro"
    out.mkdir()
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", out / "q.tflite", "--data", calib)
    assert_one_error_line(code, err, "cannot write", "Permission denied")
    assert files(out) == []


def test_interrupted_during_replace_leaves_nothing(float_model, calib, tmp_path, capsys, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(writer_module.os, "replace", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", out / "q.tflite", "--data", calib)
    assert code == 130 and err == ["quantcore: interrupted"]
    assert files(out) == []


def test_interrupted_during_write_leaves_nothing(float_model, calib, tmp_path, capsys, monkeypatch):
    real_fdopen = os.fdopen

    class HalfWritten:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(writer_module.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", out / "q.tflite", "--data", calib)
    assert code == 130 and err == ["quantcore: interrupted"]
    assert files(out) == []


def test_failed_write_keeps_the_previous_file(float_model, calib, tmp_path, capsys, monkeypatch):
    out = tmp_path / "q.tflite"
    out.write_bytes(b"previous")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(writer_module.os, "replace", disk_full)
    code, _, err = run_cli(capsys, "quantize", float_model, "-o", out, "--data", calib)
    assert_one_error_line(code, err, "No space left on device")
    assert out.read_bytes() == b"previous" and files(tmp_path) == ["q.tflite"]


def test_run_output_not_writable(float_model, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", float_model, "-o", tmp_path / "missing" / "y.npz")
    assert_one_error_line(code, err, "cannot write")


def test_quantize_succeeds_and_writes_one_file(float_model, calib, tmp_path, capsys):
    code, out, err = run_cli(capsys, "quantize", float_model, "-o", tmp_path / "q.tflite", "--data", calib)
    assert code == 0 and err == [], err
    assert files(tmp_path) == ["q.tflite"]


# ---------------------------------------------------------------------------
# Tracebacks, warnings, internal errors
# ---------------------------------------------------------------------------
def test_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(16))
    cmd = [sys.executable, "-m", "quantcore.cli", "inspect", str(bad)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("quantcore: error: ")
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_internal_error_is_one_line_with_exit_70(float_model, tmp_path, capsys, monkeypatch):
    import quantcore.schema as schema

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")
    monkeypatch.setattr(schema, "read_model", broken)
    code, _, err = run_cli(capsys, "run", float_model)
    assert code == 70 and len(err) == 1
    assert err[0].startswith("quantcore: internal error: IndexError") and "--debug" in err[0]


def test_warnings_do_not_reach_stderr(tmp_path, capsys):
    """A float model whose activations overflow to inf: the runtime computes inf as
    LiteRT does, without printing NumPy warnings in the command line's output."""
    b = ModelBuilder()
    x = b.add_input("x", [4], np.float32)
    y = b.add_tensor("y", [4], np.float32)
    b.add_operator("MUL", [x, x], [y])
    b.mark_outputs(y)
    model = tmp_path / "square.tflite"
    model.write_bytes(b.to_bytes())
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.array([1e30, -1e30, 2.0, np.inf], np.float32))
    code, out, err = run_cli(capsys, "run", model, "--inputs", inputs)
    assert code == 0 and err == [], err
