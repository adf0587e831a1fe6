#!/usr/bin/env python3
"""How fast could an exact pure-NumPy runtime run MobileNetV2-224 int8? (a script, not a test)

Times only the NumPy work such a runtime cannot avoid, with every operand already in
place (no im2col, no padding, no requantization arithmetic, no Python per-operator
logic), and compares it with LiteRT XNNPACK measured in the same run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/floor.py

Per operator of the model (shapes read from the model through quantcore's interpreter):

* CONV_2D / FULLY_CONNECTED: one float32 sgemm ``A (M x K) @ B (K x N)`` (M output
  pixels, K = kh * kw * c_in, N = c_out), ``A`` already the im2col matrix;
* DEPTHWISE_CONV_2D: the tap sums, the faster of ``acc = x_0 * w_0`` then
  ``acc += x_t * w_t`` for the other kh * kw - 1 taps (``np.multiply`` into a scratch
  buffer plus ``np.add`` in place: two passes per tap) over prepared float32 tap
  arrays, and a batched matvec ``(C, pixels, taps) @ (C, taps, 1)`` over a prepared
  per-channel im2col;
* every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED output: one minimal
  requantization pass, a float32 multiply in place plus the cast to int8;
* every ADD output: one 65536-entry table gather (what runtime/ops/_lut2d.py does,
  without the index computation).

float32 holds the products exactly but not every K-long sum (K * 255 * 127 >= 2^24 for
K >= 519), so an exact runtime needs at least this much; the ratio to XNNPACK is a
lower bound on what quantcore can reach with NumPy on this machine. Each component is
the minimum over ``--reps`` repetitions (thread CPU time); XNNPACK the median and the
minimum of ``--reps`` invokes with ``num_threads=1``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import blas_info, cpu_model, sample_input  # noqa: E402

MODEL = HERE / "models" / "mobilenet_v2_224_int8.tflite"


def model_ops(path: Path) -> list[tuple[str, dict]]:
    """(op name, shapes) for every CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD."""
    from quantcore.runtime import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    st = it._states[0]
    ops = []
    for p in st.ops:
        if p.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"):
            continue
        shapes = [tuple(st.shapes[i]) if i >= 0 else None for i in p.inputs]
        ops.append((p.name, {"inputs": shapes, "output": tuple(st.shapes[p.outputs[0]])}))
    return ops


def _best(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        c = time.thread_time_ns()
        fn()
        best = min(best, (time.thread_time_ns() - c) * 1e-9)
    return best


def floor_components(ops, reps: int, rng) -> dict[str, float]:
    """Seconds per component (sum over the model's operators of each one's minimum)."""
    out = {"gemm": 0.0, "depthwise taps": 0.0, "requant pass": 0.0, "add gather": 0.0}
    macs = 0
    for name, sh in ops:
        o = sh["output"]
        n_out = int(np.prod(o))
        if name in ("CONV_2D", "FULLY_CONNECTED"):
            w = sh["inputs"][1]
            n_cols = w[0]
            k = int(np.prod(w[1:]))
            m = n_out // n_cols
            a = rng.integers(-128, 128, (m, k)).astype(np.float32)
            b = np.asfortranarray(rng.integers(-127, 128, (k, n_cols)).astype(np.float32))
            c = np.empty((m, n_cols), np.float32)
            out["gemm"] += _best(lambda: np.matmul(a, b, out=c), reps)
            macs += m * k * n_cols
        elif name == "DEPTHWISE_CONV_2D":
            w = sh["inputs"][1]                  # (1, kh, kw, C)
            taps = w[1] * w[2]
            views = [rng.integers(-128, 128, o[1:]).astype(np.float32) for _ in range(taps)]
            wt = [rng.integers(-127, 128, (o[-1],)).astype(np.float32) for _ in range(taps)]
            acc = np.empty(o[1:], np.float32)
            tmp = np.empty(o[1:], np.float32)

            def dw(views=views, wt=wt, acc=acc, tmp=tmp):
                np.multiply(views[0], wt[0], out=acc)
                for v, t in zip(views[1:], wt[1:]):
                    np.multiply(v, t, out=tmp)
                    np.add(acc, tmp, out=acc)

            # or per channel on a prepared (C, pixels, taps) im2col: a batched matvec
            cols = rng.integers(-128, 128, (o[-1], n_out // o[-1], taps)).astype(np.float32)
            wcol = rng.integers(-127, 128, (o[-1], taps, 1)).astype(np.float32)
            res = np.empty((o[-1], n_out // o[-1], 1), np.float32)
            out["depthwise taps"] += min(_best(dw, reps), _best(lambda: np.matmul(cols, wcol, out=res), reps))
            macs += n_out * taps
        if name == "ADD":
            table = rng.integers(-128, 128, 65536).astype(np.int8)
            idx = rng.integers(0, 65536, n_out).astype(np.uint16)
            out["add gather"] += _best(lambda: np.take(table, idx), reps)
        else:
            acc = rng.uniform(-1000, 1000, n_out).astype(np.float32)
            scale = np.float32(0.01)

            def requant(acc=acc, scale=scale):
                np.multiply(acc, scale, out=acc)
                return acc.astype(np.int8)

            out["requant pass"] += _best(requant, reps)
    out["_macs"] = macs
    return out


def xnnpack_ms(path: Path, reps: int) -> tuple[float, float]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    li = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN)
    li.allocate_tensors()
    d = li.get_input_details()[0]
    li.set_tensor(d["index"], sample_input("mobilenet_v2_224_int8", d))
    li.invoke()
    times = []
    for _ in range(reps):
        c = time.thread_time_ns()
        li.invoke()
        times.append((time.thread_time_ns() - c) * 1e-6)
    return statistics.median(times), min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    if not a.model.exists():
        print(f"missing {a.model} (benchmarks/make_models.py builds it)")
        return 1
    import os

    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); NumPy {np.__version__}; BLAS: {blas_info()}")
    ops = model_ops(a.model)
    xnn_med, xnn_min = xnnpack_ms(a.model, a.reps)
    comp = floor_components(ops, a.reps, np.random.default_rng(0))
    macs = comp.pop("_macs")
    total = 1e3 * sum(comp.values())
    xnn_med2, xnn_min2 = xnnpack_ms(a.model, a.reps)      # again, after the NumPy work
    xnn_med, xnn_min = min(xnn_med, xnn_med2), min(xnn_min, xnn_min2)
    print(f"{a.model.name}: {len(ops)} CONV/DEPTHWISE/FC/ADD operators, {macs / 1e6:.0f} M MACs")
    for k, v in comp.items():
        print(f"  {k:16s} {1e3 * v:8.3f} ms")
    print(f"  {'floor total':16s} {total:8.3f} ms")
    print(f"LiteRT XNNPACK (1 thread): median {xnn_med:.3f} ms, min {xnn_min:.3f} ms")
    print(f"floor / XNNPACK: {total / xnn_med:.1f}x (median), {total / xnn_min:.1f}x (min); "
          f"NumPy MAC rate {macs / (comp['gemm'] + comp['depthwise taps']) / 1e9:.1f} GMAC/s")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
