"""Calibration throughput: samples per second in one process, in N local processes,
and on Ray, on this machine.

For each model (float fixtures of tests/fixtures/models) the same representative
data -- the model's 32 calibration samples, tiled and rescaled to ``--samples`` --
is calibrated (``quantcore.quantize`` with the minmax calibrator) by

* ``1 process``: in this process (``workers=None``);
* ``N processes``: ``workers=N`` (spawned processes; the time includes their start);
* ``Ray (N CPUs)``: ``workers=RayOptions(...)`` on a local Ray cluster started
  once with ``num_cpus=N`` (its start-up is reported separately; a small warm-up
  run starts Ray's worker processes first, as a long-lived cluster would have them).

Every run's quantized model must be byte-identical to the in-process one; the
script fails otherwise. Rates are samples / wall-clock seconds of the whole
``quantize`` call, best of ``--repeat`` runs.

Usage: ``python benchmarks/calibration_throughput.py [--samples 2000] [--workers 2]
[--models mlp small_cnn] [--shard-size N] [--markdown]``
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import quantcore
from quantcore.distributed import RayOptions, connect, default_shard_size

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"


def data_for(model: str, n: int) -> np.ndarray:
    calib = np.load(FIXTURES / f"{model}_calib.npy")
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 1.5, (n,) + (1,) * (calib.ndim - 1))
    return (calib[rng.integers(0, len(calib), n)] * scale).astype(np.float32)


def timed(model: Path, data: np.ndarray, workers, repeat: int) -> tuple[float, bytes]:
    best, out = float("inf"), b""
    for _ in range(repeat):
        t = time.perf_counter()
        out = quantcore.quantize(model, representative_dataset=data, workers=workers)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["mlp", "small_cnn", "mobilenet_v2_tiny"])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2, help="local processes and Ray CPUs")
    ap.add_argument("--shard-size", type=int, default=None, help="samples per Ray task (default: automatic)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    ray_start = None
    if not args.no_ray:
        t = time.perf_counter()
        connect(RayOptions(num_cpus=args.workers))
        ray_start = time.perf_counter() - t
    opts = RayOptions(num_cpus=args.workers, shard_size=args.shard_size)
    rows = []
    for name in args.models:
        path = FIXTURES / f"{name}_float32.tflite"
        data = data_for(name, args.samples)
        t1, ref = timed(path, data, None, args.repeat)
        row = {"model": name, "samples": args.samples, "1 process": args.samples / t1}
        tn, q = timed(path, data, args.workers, args.repeat)
        assert q == ref, f"{name}: {args.workers} processes changed the model"
        row[f"{args.workers} processes"] = args.samples / tn
        if not args.no_ray:
            quantcore.quantize(path, representative_dataset=data[:4 * args.workers],
                               workers=RayOptions(shard_size=1))                  # warm-up
            tr, q = timed(path, data, opts, args.repeat)
            assert q == ref, f"{name}: Ray changed the model"
            row[f"Ray ({args.workers} CPUs)"] = args.samples / tr
        rows.append(row)

    cols = list(rows[0])
    shard = args.shard_size or default_shard_size(args.samples, args.workers)
    notes = [f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
             f"Ray shards: {shard} samples ({-(-args.samples // shard)} tasks per model)"]
    if ray_start is not None:
        notes.append(f"local Ray cluster start: {ray_start:.1f} s (not included)")
    notes.append("every quantized model byte-identical to the in-process one")
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(f"{r[c]:.0f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
        print()
        for n in notes:
            print(f"- {n}")
    else:
        print("samples/s")
        print("  ".join(f"{c:>18}" for c in cols))
        for r in rows:
            print("  ".join(f"{r[c]:>18.1f}" if isinstance(r[c], float) else f"{r[c]:>18}" for c in cols))
        for n in notes:
            print(n)


if __name__ == "__main__":
    main()
