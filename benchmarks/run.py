#!/usr/bin/env python3
"""quantcore vs LiteRT: latency, calibration time and inference memory (a script, not a test).

Run it single-threaded on both sides, with OpenBLAS on its own kernel choice::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/run.py

(Some machines pin OpenBLAS to an older kernel through OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE, which halves float GEMM speed; the BLAS kernel in use is printed.)

Per model: median latency of quantcore's fast path (the default), of quantcore's plain
reference kernels (``_gemm.reference_kernels()`` and ``_lut2d.policy("never")``: the
conv/FC and ADD/SUB/MUL code before the fast paths), and
of LiteRT's three op resolvers with ``num_threads=1``: BUILTIN_REF (reference
kernels), BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized kernels, ruy) and BUILTIN
(XNNPACK); ratios are quantcore / LiteRT from the same run. Then the calibration of
MobileNetV2-224 from 32 samples with ``quantcore.quantize`` next to the TensorFlow
converter's time recorded by ``benchmarks/make_models.py``, and quantcore's memory
during inference (tracemalloc: what ``allocate_tensors`` keeps, the peak during one
``invoke``) next to the model size and the two largest activations.

Models: ``benchmarks/models/`` (build with ``benchmarks/make_models.py``) and the
fixtures ``tests/fixtures/models/dscnn_kws_int8.tflite``, ``small_cnn_int8.tflite``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import _data  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "models"
MODELS = {
    "mobilenet_v2_224_int8": HERE / "models" / "mobilenet_v2_224_int8.tflite",
    "dscnn_kws_int8": FIX / "dscnn_kws_int8.tflite",
    "cnn28_int8": HERE / "models" / "cnn28_int8.tflite",
    "small_cnn_int8": FIX / "small_cnn_int8.tflite",
}
RESOLVERS = [("ref", "BUILTIN_REF"), ("opt", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"), ("xnn", "BUILTIN")]


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (pip install threadpoolctl)"
    rows = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
            f"threads={i.get('num_threads')}" for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(rows) or "no BLAS found"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sample_input(name: str, details: dict) -> np.ndarray:
    shape = [int(s) for s in details["shape"]]
    if name.startswith("mobilenet_v2_224"):
        x = _data.calibration("mobilenet_v2_224")[:1]
    elif name.startswith("cnn28"):
        x = _data.calibration("cnn28")[:1]
    else:
        calib = FIX / (name.rsplit("_int8", 1)[0] + "_calib.npy")
        x = np.load(calib)[:1] if calib.exists() else np.random.default_rng(0).uniform(-1, 1, shape)
    x = np.asarray(x, np.float32).reshape(shape)
    if details["dtype"] != np.float32:
        s, z = details["quantization"]
        info = np.iinfo(details["dtype"])
        x = np.clip(np.round(x / s) + z, info.min, info.max).astype(details["dtype"])
    return x


CPU_TIMES: dict[int, list[float]] = {}   # id(wall list) -> thread CPU times of the same invokes


WARMUP = [50]          # invokes before timing (--warmup), at most WARMUP_SECONDS
WARMUP_SECONDS = 3.0


def time_invoke(invoke, reps: int, budget: float) -> list[float]:
    """Wall times of ``reps`` invokes (fewer if ``budget`` seconds run out; at least 3).
    The calling thread's CPU time of each invoke is kept too (``CPU_TIMES``): on a
    loaded machine it excludes the time the process waited for a core.

    Timing starts after a warm-up of ``WARMUP[0]`` invokes (at least one, at most
    ``WARMUP_SECONDS``; the same for every runtime): first-call allocations and caches,
    and quantcore's 8-bit binary tables, which small operators build only after some
    invokes (runtime/ops/_lut2d.py). The numbers are steady-state latencies."""
    start = time.perf_counter()
    for _ in range(max(1, WARMUP[0])):
        invoke()
        if time.perf_counter() - start > WARMUP_SECONDS:
            break
    times, cpu = [], []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget):
        t, c = time.perf_counter(), time.thread_time()
        invoke()
        cpu.append(time.thread_time() - c)
        times.append(time.perf_counter() - t)
    CPU_TIMES[id(times)] = cpu
    return times


def bench_quantcore(path: Path, name: str, reps: int, budget: float, plain: bool) -> dict:
    from quantcore.runtime import Interpreter
    from quantcore.runtime.ops import _gemm, _lut2d

    res = {}
    for label, ref in (("fast", False), ("plain", True)) if plain else (("fast", False),):
        # plain: no fast conv/FC plans and no 8-bit binary tables (ADD/SUB/MUL kernels)
        with _gemm.reference_kernels(ref), _lut2d.policy("never" if ref else "auto"):
            it = Interpreter(model_path=str(path))
            it.allocate_tensors()
            d = it.get_input_details()[0]
            x = sample_input(name, d)
            it.set_tensor(d["index"], x)
            ops_before = list(it._states[0].ops)
            times = time_invoke(it.invoke, reps if label == "fast" else max(3, reps // 5), budget)
            res[label] = times
            if label == "fast":
                res["reprepared"] = any(a is not b for a, b in zip(ops_before, it._states[0].ops))
                res["output"] = it.get_tensor(it.get_output_details()[0]["index"])
                res["ops"] = len(it._states[0].ops)
    return res


def bench_litert(path: Path, name: str, reps: int, budget: float) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    res = {}
    for key, resolver in RESOLVERS:
        try:
            li = Interpreter(model_path=str(path), num_threads=1,
                             experimental_op_resolver_type=getattr(OpResolverType, resolver))
            li.allocate_tensors()
            d = li.get_input_details()[0]
            li.set_tensor(d["index"], sample_input(name, d))
            res[key] = time_invoke(li.invoke, reps, budget)
            if key == "ref":
                res["ref_output"] = li.get_tensor(li.get_output_details()[0]["index"])
        except Exception as e:   # noqa: BLE001 - reported, not fatal
            res[key] = f"failed: {type(e).__name__}: {e}"
    return res


def memory(path: Path, name: str) -> dict:
    """tracemalloc: bytes kept by allocate_tensors, peak during one invoke (after the warm-up
    invokes of ``time_invoke``)."""
    from quantcore.runtime import Interpreter

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    prepared = tracemalloc.get_traced_memory()[0] - base
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], sample_input(name, d))
    start = time.perf_counter()
    for _ in range(max(1, WARMUP[0])):      # steady state, as the latency (see time_invoke)
        it.invoke()
        if time.perf_counter() - start > WARMUP_SECONDS:
            break
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    it.invoke()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    sg = it.model.subgraphs[0]
    sizes = sorted((int(np.prod(it._states[0].shapes[i], dtype=np.int64)) * np.dtype(v.dtype).itemsize
                    for i, v in enumerate(it._states[0].values)
                    if v is not None and it._states[0].constants[i] is None), reverse=True)
    two = sum(sizes[:2])
    return {"model_bytes": path.stat().st_size, "prepared_bytes": prepared, "invoke_peak_bytes": peak,
            "largest_two_activations": two, "tensors": len(sg.tensors)}


def calibration(reps: int) -> dict | None:
    fpath = HERE / "models" / "mobilenet_v2_224_float32.tflite"
    info_path = HERE / "models" / "mobilenet_v2_224_int8.json"
    if not fpath.exists():
        return None
    import quantcore

    calib = _data.calibration("mobilenet_v2_224")
    times, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        quantcore.quantize(str(fpath), representative_dataset=lambda: ([calib[i:i + 1]] for i in range(len(calib))))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out = {"quantcore_seconds": min(times), "quantcore_cpu_seconds": min(cpu), "samples": len(calib)}
    if info_path.exists():
        info = json.loads(info_path.read_text())
        out["converter_int8_seconds"] = info.get("converter_int8_seconds")
        out["converter_float32_seconds"] = info.get("converter_float32_seconds")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--reps", type=int, default=30, help="invokes per measurement (median)")
    ap.add_argument("--budget", type=float, default=10.0, help="max seconds per measurement")
    ap.add_argument("--no-plain", action="store_true", help="skip quantcore's plain reference kernels")
    ap.add_argument("--no-calibration", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--warmup", type=int, default=WARMUP[0],
                    help=f"untimed invokes before each measurement (at most {WARMUP_SECONDS:.0f} s)")
    a = ap.parse_args()
    WARMUP[0] = a.warmup

    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); Python {platform.python_version()}; "
          f"NumPy {np.__version__}")
    print(f"BLAS: {blas_info()}")
    print(f"env: {env}")
    if env["OPENBLAS_CORETYPE"] or env["OPENBLAS_L2_SIZE"]:
        print("WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set: OpenBLAS runs a pinned kernel "
              "(run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`)")
    if env["OPENBLAS_NUM_THREADS"] != "1":
        print("WARNING: OPENBLAS_NUM_THREADS is not 1: quantcore's BLAS may use several threads")
    try:
        import ai_edge_litert
        import importlib.metadata as md
        print(f"LiteRT: ai-edge-litert {md.version('ai-edge-litert')}, num_threads=1")
    except ImportError:
        ai_edge_litert = None
        print("LiteRT: not installed (quantcore only)")

    results = {"cpu": cpu_model(), "blas": blas_info(), "env": env, "models": {}}
    head = (f"{'model':24s} {'ops':>4s} {'quantcore':>10s} {'qc plain':>10s} {'LiteRT ref':>10s} "
            f"{'LiteRT opt':>10s} {'XNNPACK':>10s} | {'/ref':>6s} {'/opt':>6s} {'/xnn':>6s} {'plain/fast':>10s}")
    rows, cpu_rows = [], []
    for name in [m for m in a.models.split(",") if m]:
        path = MODELS.get(name, Path(name))
        if not path.exists():
            print(f"[{name}] missing: {path} (benchmarks/make_models.py builds it)")
            continue
        q = bench_quantcore(path, name, a.reps, a.budget, not a.no_plain)
        lr = bench_litert(path, name, a.reps, a.budget) if ai_edge_litert else {}
        mem = memory(path, name)
        med = {k: statistics.median(v) for k, v in {**q, **lr}.items() if isinstance(v, list)}
        cpu = {k: statistics.median(CPU_TIMES[id(v)]) for k, v in {**q, **lr}.items() if isinstance(v, list)}
        ratios = {k: med["fast"] / med[k] for k in ("ref", "opt", "xnn") if k in med}
        cpu_ratios = {k: cpu["fast"] / cpu[k] for k in ("ref", "opt", "xnn") if k in cpu}
        same = None
        if "ref_output" in lr:
            same = bool(np.array_equal(q["output"], lr["ref_output"]))
        results["models"][name] = {
            "latency_ms": {k: 1e3 * v for k, v in med.items()},
            "cpu_ms": {k: 1e3 * v for k, v in cpu.items()}, "cpu_ratio_quantcore_over": cpu_ratios,
            "ratio_quantcore_over": ratios, "plain_over_fast": med.get("plain", float("nan")) / med["fast"],
            "reprepared_per_invoke": q["reprepared"], "output_equals_litert_ref": same, "memory": mem,
            "ops": q["ops"]}
        for table, vals, rat in ((rows, med, ratios), (cpu_rows, cpu, cpu_ratios)):
            cells = " ".join(f"{1e3 * vals[k]:10.3f}" if k in vals else f"{'n/a':>10s}"
                             for k in ("fast", "plain", "ref", "opt", "xnn"))
            table.append(f"{name:24s} {q['ops']:4d} {cells} | "
                         + " ".join(f"{rat[k]:6.1f}" if k in rat else "   n/a" for k in ("ref", "opt", "xnn"))
                         + (f" {vals['plain'] / vals['fast']:10.1f}" if "plain" in vals else f"{'n/a':>11s}"))
        print(f"[{name}] done (re-prepared per invoke: {q['reprepared']}; output == LiteRT ref: {same})",
              flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    print("\nMedian wall-clock latency per invoke, ms (single thread); ratios = quantcore fast / LiteRT")
    print(head)
    print("\n".join(rows))
    print("\nMedian CPU time of the invoking thread per invoke, ms (excludes time spent waiting "
          "for a core on a loaded machine)")
    print(head)
    print("\n".join(cpu_rows))

    print("\nMemory (quantcore, tracemalloc)")
    print(f"{'model':24s} {'model MB':>9s} {'2 largest act MB':>17s} {'prepared MB':>12s} "
          f"{'invoke peak MB':>15s} {'peak / (model + 2 act)':>23s}")
    for name, r in results["models"].items():
        m = r["memory"]
        denom = m["model_bytes"] + m["largest_two_activations"]
        print(f"{name:24s} {m['model_bytes'] / 1e6:9.2f} {m['largest_two_activations'] / 1e6:17.2f} "
              f"{m['prepared_bytes'] / 1e6:12.2f} {m['invoke_peak_bytes'] / 1e6:15.2f} "
              f"{m['invoke_peak_bytes'] / denom:23.2f}")

    if not a.no_calibration:
        cal = calibration(1)
        results["calibration"] = cal
        if cal is None:
            print("\nCalibration: benchmarks/models/mobilenet_v2_224_float32.tflite missing")
        else:
            print(f"\nCalibration of MobileNetV2-224 from {cal['samples']} samples: quantcore.quantize "
                  f"{cal['quantcore_seconds']:.2f} s (CPU {cal['quantcore_cpu_seconds']:.2f} s); TF converter "
                  f"(make_models.py, full int8 conversion incl. calibration) "
                  f"{cal.get('converter_int8_seconds')} s, float-only conversion "
                  f"{cal.get('converter_float32_seconds')} s")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
