"""Calibration and baseline checks on Ray (quantcore.distributed).

The Ray tests share one local cluster (2 CPUs, started by quantcore's own
``connect``, which binds it to 127.0.0.1 and turns usage statistics off); they are
skipped when Ray is not installed. The tests of argument parsing, the progress
line and the missing-Ray message run without Ray.
"""
from __future__ import annotations

import io
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import quantcore
from quantcore import CalibrationError, InputError, baseline
from quantcore.calibration import MSE, Entropy, MovingAverageMinMax, Percentile
from quantcore.cli import main
from quantcore.distributed import (FAULT_ENV, Progress, RayOptions, default_shard_size, parse_workers)
from quantcore.quantizer import calibrate
from quantcore.schema import read_model
from test_quantizer import float_model

MODELS = Path(__file__).parent / "fixtures" / "models"
MLP = MODELS / "mlp_float32.tflite"
N = 1000


def _mlp_data(n: int = N, seed: int = 0) -> np.ndarray:
    """``n`` samples for the MLP fixture: its calibration samples, rescaled."""
    calib = np.load(MODELS / "mlp_calib.npy")
    rng = np.random.default_rng(seed)
    return (calib[rng.integers(0, len(calib), n)] * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)


def _bits(r) -> bytes:
    return np.asarray(r, np.float64).tobytes()


def _state(c) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(c).items()}


# ---------------------------------------------------------------------------
# Without Ray
# ---------------------------------------------------------------------------
def test_parse_workers():
    assert parse_workers(None) is None and parse_workers(1) is None and parse_workers("1") is None
    assert parse_workers(3) == 3 and parse_workers("4") == 4
    assert parse_workers("ray") == RayOptions()
    assert parse_workers("ray://head:10001") == RayOptions(address="ray://head:10001")
    assert parse_workers("ray:auto") == RayOptions(address="auto")
    opts = RayOptions(shard_size=7)
    assert parse_workers(opts) is opts
    for bad in (0, -2, "zero", "ray://", "", True, 2.5):
        with pytest.raises(InputError, match="workers"):
            parse_workers(bad)
    with pytest.raises(InputError, match="shard_size"):
        RayOptions(shard_size=0)
    assert default_shard_size(1000, 2) == 125          # 8 shards on a 2-CPU cluster
    assert default_shard_size(10, 64) == 16 and default_shard_size(10**9, 2) == 1024
    assert default_shard_size(None, 2) == 256


def test_progress_line_shows_count_rate_and_eta():
    out = io.StringIO()
    p = Progress(200, "samples", "calibrating", enabled=True, stream=out)
    p.start -= 10.0                                     # as if 10 s had passed
    p.advance(50)
    p.advance(150)
    p.close()
    text = out.getvalue()
    assert "calibrating: 50/200 samples" in text and "5.0 samples/s, ETA 30 s" in text
    assert "200/200 samples [####################] 100%" in text and text.endswith("\n")
    quiet = io.StringIO()
    q = Progress(10, "samples", "x", stream=quiet)       # not a terminal: nothing drawn
    q.advance(10)
    q.close()
    assert quiet.getvalue() == ""


def test_without_ray_workers_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)       # `import ray` raises ImportError
    np.save(tmp_path / "calib.npy", _mlp_data(8))
    out = tmp_path / "q.tflite"
    code = main(["quantize", str(MLP), "-o", str(out), "--data", str(tmp_path / "calib.npy"),
                 "--workers", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'quantcore[ray]'" in err and not out.exists()
    with pytest.raises(InputError, match=r"quantcore\[ray\]"):
        quantcore.quantize(MLP, representative_dataset=_mlp_data(8), workers="ray")
    assert main(["quantize", str(MLP), "-o", str(out), "--workers", "many"]) == 2
    assert "workers must be" in capsys.readouterr().err


def test_glob_and_path_datasets_in_process(tmp_path):
    data = _mlp_data(12)
    for k, x in enumerate(data):
        np.save(tmp_path / f"s{k:02d}.npy", x)
    np.save(tmp_path / "all.npy", data)
    want = quantcore.quantize(MLP, representative_dataset=data)
    assert quantcore.quantize(MLP, representative_dataset=str(tmp_path / "s*.npy")) == want
    assert quantcore.quantize(MLP, representative_dataset=tmp_path / "all.npy") == want
    with pytest.raises(CalibrationError, match="no .npy files or images match"):
        quantcore.quantize(MLP, representative_dataset=str(tmp_path / "nothing*.npy"))


def test_calibration_does_not_depend_on_blas_threads():
    """mobilenet_v2_tiny's batch-1 FULLY_CONNECTED gave another float32 result with two
    BLAS threads than with one (Ray runs tasks with one): calibration pins BLAS to one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    m = read_model(MODELS / "mobilenet_v2_tiny_float32.tflite")
    data = np.load(MODELS / "mobilenet_v2_tiny_calib.npy")[:6]
    with threadpoolctl.threadpool_limits(2):
        two = calibrate(m, data, "minmax")
    with threadpoolctl.threadpool_limits(1):
        one = calibrate(m, data, "minmax")
    assert all(_state(two[t]) == _state(one[t]) for t in one)


# ---------------------------------------------------------------------------
# On a local Ray cluster
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local 2-CPU cluster on 127.0.0.1 for this module; QUANTCORE_FAULT_ONCE points at a
    flag file (absent unless a test creates it) that the workers inherit."""
    pytest.importorskip("ray")
    flag = tmp_path_factory.mktemp("ray") / "fault-once"
    saved = {k: os.environ.get(k) for k in (FAULT_ENV, "RAY_ADDRESS")}
    os.environ[FAULT_ENV] = str(flag)
    os.environ.pop("RAY_ADDRESS", None)
    from quantcore.distributed import connect

    ray = connect(RayOptions(num_cpus=2))
    yield ray, flag
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def mlp_reference() -> bytes:
    return quantcore.quantize(MLP, representative_dataset=_mlp_data())


@pytest.fixture(scope="module")
def mlp_minmax() -> dict:
    return calibrate(read_model(MLP), _mlp_data(), "minmax")


def test_cluster_is_on_loopback(ray_cluster):
    ray, _ = ray_cluster
    nodes = ray.nodes()
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)
    assert ray.cluster_resources()["CPU"] == 2


@pytest.mark.parametrize("workers", ["ray", RayOptions(shard_size=97)], ids=["ray-8-shards", "ray-11-shards"])
def test_quantize_on_ray_gives_the_in_process_bytes(ray_cluster, mlp_reference, workers, capsys):
    q = quantcore.quantize(MLP, representative_dataset=_mlp_data(), workers=workers)
    assert q == mlp_reference


# Small histograms keep the range searches quick; the merge is the same at any size.
CALIBRATORS = {"moving_average": MovingAverageMinMax(0.9), "percentile": Percentile(99.0, bins=256),
               "mse": MSE(bins=64, candidates=16), "entropy": Entropy(bins=64, num_quantized_bins=7)}


def test_conv_model_on_ray_gives_the_in_process_bytes(ray_cluster):
    path = MODELS / "mobilenet_v2_tiny_float32.tflite"
    data = np.load(MODELS / "mobilenet_v2_tiny_calib.npy")[:12]
    assert quantcore.quantize(path, representative_dataset=data, workers=RayOptions(shard_size=2)) == \
        quantcore.quantize(path, representative_dataset=data)


@pytest.mark.parametrize("name", list(CALIBRATORS))
def test_every_calibrator_merges_exactly_across_shards(ray_cluster, name):
    m = read_model(float_model())
    rng = np.random.default_rng(3)
    data = [[x] for x in rng.uniform(-1, 1, (96, 1, 8, 8, 3)).astype(np.float32)]
    one = calibrate(m, data, CALIBRATORS[name])
    many = calibrate(m, data, CALIBRATORS[name], workers=RayOptions(shard_size=7))   # 14 shards, last short
    assert one.keys() == many.keys()
    for t in one:
        assert _bits(many[t].compute_range()) == _bits(one[t].compute_range()), t
        assert _state(many[t]) == _state(one[t]), t


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_task_that_fails_once_is_retried_and_nothing_is_counted_twice(ray_cluster, mlp_reference,
                                                                        mlp_minmax, how):
    _, flag = ray_cluster
    flag.write_text(how)            # the first task to claim the flag dies (exit) or raises OSError
    cals = calibrate(read_model(MLP), _mlp_data(), "minmax", workers=RayOptions(shard_size=100))
    assert not flag.exists()        # the fault happened
    assert {c.count for c in cals.values()} == {N}                 # every sample once
    assert all(_state(cals[t]) == _state(mlp_minmax[t]) for t in mlp_minmax)
    flag.write_text(how)
    assert quantcore.quantize(MLP, representative_dataset=_mlp_data(), workers="ray") == mlp_reference
    assert not flag.exists()


def test_bad_data_is_not_retried_and_names_the_global_sample(ray_cluster):
    data = _mlp_data(300)
    data[237, 5] = np.nan
    with pytest.raises(CalibrationError, match=r"sample 237: input '.*' contains NaN"):
        quantcore.quantize(MLP, representative_dataset=data, workers=RayOptions(shard_size=50))


def test_path_datasets_are_read_by_the_tasks(ray_cluster, tmp_path, capsys):
    data = _mlp_data(40)
    want = quantcore.quantize(MLP, representative_dataset=data)
    np.save(tmp_path / "calib.npy", data)
    np.savez(tmp_path / "calib.npz", data)
    (tmp_path / "dir").mkdir()
    for k, x in enumerate(data):
        np.save(tmp_path / "dir" / f"{k:03d}.npy", x)
    opts = RayOptions(shard_size=9)
    for src in (tmp_path / "calib.npy", str(tmp_path / "calib.npz"), tmp_path / "dir",
                str(tmp_path / "dir" / "*.npy")):
        assert quantcore.quantize(MLP, representative_dataset=src, workers=opts) == want, src
    # the command line hands the path to the tasks, with one progress line on a terminal
    out = tmp_path / "q.tflite"
    assert main(["quantize", str(MLP), "-o", str(out), "--data", str(tmp_path / "dir" / "*.npy"),
                 "--workers", "ray"]) == 0
    assert out.read_bytes() == want


def test_progress_counts_every_sample_once(ray_cluster, capsys):
    calibrate(read_model(MLP), _mlp_data(300), "minmax", workers=RayOptions(shard_size=40, progress=True))
    err = capsys.readouterr().err
    assert "calibrating on Ray (2 CPUs, 8 shards)" in err and "300/300 samples" in err
    assert "samples/s" in err and err.endswith("\n")


def test_ctrl_c_cancels_the_run_and_the_cluster_stays_usable(ray_cluster, mlp_reference):
    data = _mlp_data()

    def interrupted():
        for k, x in enumerate(data):
            if k == 350:
                raise KeyboardInterrupt
            yield [x[None]]
    with pytest.raises(KeyboardInterrupt):
        quantcore.quantize(MLP, representative_dataset=interrupted,
                           workers=RayOptions(shard_size=50, max_in_flight=2))
    assert quantcore.quantize(MLP, representative_dataset=data, workers="ray") == mlp_reference


# ---------------------------------------------------------------------------
# Baseline checks
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """Three recorded quantized models (reference and optimized); cnn_int8 is then
    re-quantized with other data, so the check has a failure to report."""
    root = tmp_path_factory.mktemp("baselines")
    models = root / "models"
    models.mkdir()
    cnn_calib = np.load(MODELS / "small_cnn_calib.npy")
    quant = {
        "cnn_int8": quantcore.quantize(MODELS / "small_cnn_float32.tflite",
                                       representative_dataset=cnn_calib[:6]),
        "mlp_int8": quantcore.quantize(MLP, representative_dataset=_mlp_data(16)),
        "mlp_int8_io": quantcore.quantize(MLP, representative_dataset=_mlp_data(16),
                                          inference_input_type=np.int8, inference_output_type=np.int8),
    }
    for name, data in quant.items():
        (models / f"{name}.tflite").write_bytes(data)
    baseline.record(sorted(models.glob("*.tflite")), root / "base", numerics=["reference", "optimized"])
    (models / "cnn_int8.tflite").write_bytes(
        quantcore.quantize(MODELS / "small_cnn_float32.tflite", representative_dataset=cnn_calib[10:14]))
    return root


def _cases(junit: bytes) -> list[tuple[str, bool]]:
    """(testcase name, failed) of a JUnit report, in order."""
    return [(c.get("name"), c.find("failure") is not None) for c in ET.fromstring(junit).iter("testcase")]


def test_baseline_check_on_ray_gives_the_local_report(ray_cluster, baselines):
    local = baseline.check(baselines / "base")
    remote = baseline.check(baselines / "base", workers="ray")
    assert local.exit_code == remote.exit_code == 1
    assert remote.format() == local.format()
    assert remote.to_json() == local.to_json()
    assert _cases(remote.junit()) == _cases(local.junit()) and len(_cases(local.junit())) == 6   # 3 x 2
    # restricted to some models and one mode: still the same report
    some = dict(models=["mlp_int8", str(baselines / "models" / "cnn_int8.tflite")], numerics=["optimized"])
    assert baseline.check(baselines / "base", workers=RayOptions(max_in_flight=1), **some).format() == \
        baseline.check(baselines / "base", **some).format()


def test_baseline_check_cli_with_workers(ray_cluster, baselines, tmp_path, capsys):
    base = str(baselines / "base")
    assert main(["baseline", "check", base, "--json", str(tmp_path / "local.json")]) == 1
    local_out = capsys.readouterr().out
    assert main(["baseline", "check", base, "--workers", "ray", "--json", str(tmp_path / "ray.json"),
                 "--junit", str(tmp_path / "ray.xml")]) == 1
    ray_out = capsys.readouterr().out
    assert ray_out == local_out and "FAILED cnn_int8" in " ".join(ray_out.split())
    assert json.loads((tmp_path / "ray.json").read_text()) == json.loads((tmp_path / "local.json").read_text())
    assert b"cnn_int8[optimized]" in (tmp_path / "ray.xml").read_bytes()


def test_baseline_check_in_local_processes_gives_the_local_report(baselines, tmp_path, capsys):
    base = str(baselines / "base")
    assert main(["baseline", "check", base, "--numerics", "reference"]) == 1
    local_out = capsys.readouterr().out
    assert main(["baseline", "check", base, "--numerics", "reference", "--workers", "2"]) == 1
    assert capsys.readouterr().out == local_out


def test_quantize_cli_with_local_processes(tmp_path, capsys):
    np.save(tmp_path / "calib.npy", _mlp_data(24))
    out = tmp_path / "q.tflite"
    assert main(["quantize", str(MLP), "-o", str(out), "--data", str(tmp_path / "calib.npy"),
                 "--workers", "2"]) == 0
    assert out.read_bytes() == quantcore.quantize(MLP, representative_dataset=_mlp_data(24))


def test_baseline_check_task_failure_is_retried(ray_cluster, baselines):
    _, flag = ray_cluster
    flag.write_text("exit")
    assert baseline.check(baselines / "base", workers="ray").format() == \
        baseline.check(baselines / "base").format()
    assert not flag.exists()


def test_unreadable_baseline_reports_like_a_local_check(ray_cluster, baselines, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(baselines / "base", base)
    (base / "mlp_int8.npz").write_bytes(b"not a zip")
    man = json.loads((base / "mlp_int8_io.json").read_text())
    man["model"] = "../models/missing.tflite"
    (base / "mlp_int8_io.json").write_text(json.dumps(man))
    local = baseline.check(base)
    assert local.exit_code == 2
    assert baseline.check(base, workers="ray").format() == local.format()


def test_nodes_with_other_numerics_are_refused():
    from quantcore.distributed import DistributedError, _check_fingerprints, numerics_fingerprint

    version, np_version, digest = numerics_fingerprint()
    _check_fingerprints({numerics_fingerprint()})
    with pytest.raises(DistributedError, match="computes float32 matrix products differently"):
        _check_fingerprints({(version, np_version, "0" * 16)})
    _check_fingerprints({(version, np_version, "0" * 16)}, version_only=True)   # integer models
    with pytest.raises(DistributedError, match="runs quantcore 0.0.1"):
        _check_fingerprints({("0.0.1", np_version, digest)}, version_only=True)
