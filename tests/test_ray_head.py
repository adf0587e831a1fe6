"""The same API against a separately started cluster (``ray start --head``).

tests/test_ray.py runs everything on a cluster that quantcore starts in-process.
Here a head node is started the way a user starts one -- ``ray start --head`` in
its own process group -- and the command line and the Python API are run in
separate driver processes, as a user runs them, against it:

* ``RAY_ADDRESS=HOST:PORT`` (with ``RAY_AUTH_MODE=token``: Ray >= 2.5x turns token
  authentication on for ``ray start`` clusters and sends the token to an explicit
  address only in that mode; quantcore's error says so when it is missing);
* ``--workers ray`` with no address (Ray's own lookup finds the running cluster);
* ``--workers ray:HOST:PORT``.

Expected results are the in-process ones (no Ray): the quantized bytes of 1,000
samples in 8 shards and the baseline check report.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quantcore
from quantcore import baseline

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(shutil.which("ray") is None, reason="the `ray` command is not on PATH")

MODELS = Path(__file__).parent / "fixtures" / "models"
MLP = MODELS / "mlp_float32.tflite"
SAMPLES, SHARD = 1000, 125       # 8 shards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update(RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A head node started by ``ray start --head --block`` (2 CPUs); yields its
    GCS address; stopped (with every process it started) at the end."""
    import ray

    if ray.is_initialized():          # a session of another test module
        ray.shutdown()
    port = _free_port()
    log = tmp_path_factory.mktemp("ray_head") / "head.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats"],
            stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    address = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            # the GCS address: the node IP Ray chose ("Local node IP: 10.0.0.2") and our
            # port (Ray prints no "ray start --address=..." hint when the IP is 127.0.0.1)
            ip = "127.0.0.1"
            for line in text.splitlines():
                if "Local node IP:" in line:
                    ip = line.split("Local node IP:")[1].strip()
                    break
            address = f"{ip}:{port}"
            break
        time.sleep(0.5)
    if address is None:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.skip(f"`ray start --head` did not come up: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # a head stopped by a signal leaves Ray's address file behind (quantcore's
        # connect() copes: tests/test_ray.py starts a new cluster despite it)
        stale = Path(ray._private.utils.get_ray_address_file(None))
        if stale.is_file() and stale.read_text().strip() == address:
            stale.unlink()


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    calib = np.load(MODELS / "mlp_calib.npy")
    rng = np.random.default_rng(0)
    data = (calib[rng.integers(0, len(calib), SAMPLES)] * rng.uniform(0.5, 1.5, (SAMPLES, 1))).astype(np.float32)
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, data)
    return path


@pytest.fixture(scope="module")
def in_process(calib) -> bytes:
    return quantcore.quantize(MLP, representative_dataset=np.load(calib))


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("how", ["RAY_ADDRESS", "found", "argument"])
def test_cli_quantize_on_a_started_head_gives_the_in_process_bytes(head, calib, in_process, tmp_path, how):
    env = _env(RAY_AUTH_MODE="token")
    workers = "ray"
    if how == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = head
    elif how == "found":
        env.pop("RAY_AUTH_MODE")          # Ray's lookup of the local cluster brings its token along
    else:
        workers = f"ray:{head}"
    out = tmp_path / "q.tflite"
    r = _run([sys.executable, "-m", "quantcore.cli", "quantize", str(MLP), "-o", str(out),
              "--data", str(calib), "--workers", workers], env, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_bytes() == in_process


def test_python_api_in_8_shards_on_a_started_head(head, calib, in_process, tmp_path):
    script = (
        "import sys, numpy as np, quantcore, ray\n"
        "from quantcore.distributed import RayOptions\n"
        f"data = np.load({str(calib)!r})\n"
        f"q = quantcore.quantize({str(MLP)!r}, representative_dataset=data,\n"
        f"                       workers=RayOptions(shard_size={SHARD}))\n"
        "print(ray.get_runtime_context().gcs_address)\n"
        "sys.stdout.buffer.write(b'BYTES' + q)\n")
    r = subprocess.run([sys.executable, "-c", script], env=_env(RAY_AUTH_MODE="token", RAY_ADDRESS=head),
                       cwd=tmp_path, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    gcs, _, q = r.stdout.partition(b"BYTES")
    assert gcs.decode().strip() == head          # ran on the started head, not a new local cluster
    assert q == in_process


def test_baseline_check_on_a_started_head_gives_the_local_report(head, calib, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    data = np.load(calib)[:16]
    (models / "mlp_int8.tflite").write_bytes(quantcore.quantize(MLP, representative_dataset=data))
    baseline.record(sorted(models.glob("*.tflite")), tmp_path / "base", numerics=["reference", "optimized"])
    (models / "mlp_int8.tflite").write_bytes(quantcore.quantize(MLP, representative_dataset=data[:4]))
    local = _run([sys.executable, "-m", "quantcore.cli", "baseline", "check", str(tmp_path / "base"),
                  "--json", str(tmp_path / "local.json")], _env(), tmp_path)
    remote = _run([sys.executable, "-m", "quantcore.cli", "baseline", "check", str(tmp_path / "base"),
                   "--workers", "ray", "--json", str(tmp_path / "ray.json")],
                  _env(RAY_AUTH_MODE="token", RAY_ADDRESS=head), tmp_path)
    assert local.returncode == remote.returncode == 1, remote.stderr[-3000:]
    assert remote.stdout == local.stdout
    assert (tmp_path / "ray.json").read_text() == (tmp_path / "local.json").read_text()


def test_a_stale_address_file_does_not_stop_a_new_local_cluster(monkeypatch):
    """A head killed without ``ray stop`` leaves Ray's address file behind; Ray's
    own lookup would then try to join the dead cluster. quantcore checks that the
    recorded address accepts connections before relying on it."""
    import ray

    from quantcore.distributed import _running_local_cluster

    port = _free_port()                  # nothing listens there
    monkeypatch.setattr(ray._private.utils, "read_ray_address", lambda temp_dir=None: f"127.0.0.1:{port}")
    assert not _running_local_cluster(ray)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        live = server.getsockname()[1]
        monkeypatch.setattr(ray._private.utils, "read_ray_address", lambda temp_dir=None: f"127.0.0.1:{live}")
        assert _running_local_cluster(ray)
