#!/usr/bin/env python3
"""Per-operator time of quantcore's fast path (a script, not a test).

Runs each model ``--reps`` times and times every operator's ``kernel.eval`` with the
thread's CPU clock; prints, per operator type, the sum over the model's operators of
each operator's minimum over the invokes (the noise-resistant estimate used in
benchmarks/RESULTS.md), and the median whole invoke::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/profile_ops.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import MODELS, sample_input  # noqa: E402


def profile(path: Path, name: str, reps: int, numerics: str = "reference",
            warmup: int = 50) -> tuple[dict, float]:
    """``({op name: (summed per-op minimum seconds, op count)}, median invoke seconds)``."""
    from quantcore.runtime import Interpreter

    it = Interpreter(model_path=str(path), numerics=numerics)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], sample_input(name, d))
    for _ in range(max(1, warmup)):      # as run.py: steady state (8-bit tables built)
        it.invoke()
    state = it._states[0]
    per_op: dict[int, list[float]] = defaultdict(list)
    wrapped = {}
    def timed(kernel, index):
        def timed_eval(params, *args):
            c = time.thread_time_ns()
            r = kernel.eval(params, *args)
            per_op[index].append((time.thread_time_ns() - c) * 1e-9)
            return r
        return SimpleNamespace(eval=timed_eval)

    for p in state.ops:           # the interpreter calls p.kernel.eval(p.params, *inputs)
        wrapped[p.index] = (p, p.kernel)
        p.kernel = timed(p.kernel, p.index)
    invokes = []
    for _ in range(reps):
        c = time.thread_time()
        it.invoke()
        invokes.append(time.thread_time() - c)
    for p, kernel in wrapped.values():
        p.kernel = kernel
    by_name: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for p in state.ops:
        if per_op.get(p.index):
            by_name[p.name][0] += min(per_op[p.index])
            by_name[p.name][1] += 1
    return dict(by_name), statistics.median(invokes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--numerics", default="reference")
    ap.add_argument("--warmup", type=int, default=50, help="untimed invokes first")
    a = ap.parse_args()
    for name in [m for m in a.models.split(",") if m]:
        path = MODELS.get(name, Path(name))
        if not path.exists():
            print(f"[{name}] missing: {path}")
            continue
        ops, inv = profile(path, name, a.reps, a.numerics, a.warmup)
        total = sum(v[0] for v in ops.values())
        print(f"[{name}] median invoke {1e3 * inv:.3f} ms CPU; sum of per-op minima {1e3 * total:.3f} ms")
        for op, (sec, n) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
            print(f"  {op:24s} {1e3 * sec:9.3f} ms  ({n} ops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
