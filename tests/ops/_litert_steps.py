"""Run a model in LiteRT and in quantcore over several consecutive invokes (stateful
models: variable tensors, resource variables, CALL_ONCE) and compare every step.

The LiteRT side runs in a child process (LiteRT can abort), one process per call.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import numpy as np

from harness import compare_tensor as _compare_exact


def compare_tensor(name: str, ours, theirs, rtol: float) -> str | None:
    """Integers: equal. Floats: within ``rtol`` of the tensor's scale, taken as its value
    range, or its largest magnitude when the range is degenerate (one element)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.dtype.kind != "f" or ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        return _compare_exact(name, ours, theirs, rtol)
    b = theirs.astype(np.float64)
    fin = np.isfinite(b)
    scale = 0.0
    if fin.any():
        scale = max(float(b[fin].max() - b[fin].min()), float(np.abs(b[fin]).max()))
    return _compare_exact(name, ours, theirs, rtol * max(scale, 1e-6) / max(
        float(b[fin].max() - b[fin].min()) if fin.any() else 0.0, 1e-30))
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

_WORKER = r"""
import os, pickle, struct, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
inp = sys.stdin.buffer


def run(req):
    try:
        it = Interpreter(model_content=req["model"], num_threads=1,
                         experimental_op_resolver_type=getattr(OpResolverType, req["resolver"]),
                         experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        steps = []
        for k, inputs in enumerate(req["steps"]):
            if k in req["reset_at"]:
                it.reset_all_variables()
            for d, x in zip(it.get_input_details(), inputs):
                it.set_tensor(d["index"], x)
            it.invoke()
            outs = [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]
            tensors = {}
            for d in it.get_tensor_details():
                try:
                    v = np.array(it.get_tensor(d["index"]))
                except ValueError:
                    continue
                if v.dtype != object:   # RESOURCE tensors are opaque objects in LiteRT
                    tensors[d["index"]] = v
            steps.append((outs, tensors))
        return {"steps": steps}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


while True:
    header = inp.read(8)
    if len(header) < 8:
        break
    (n,) = struct.unpack("<Q", header)
    data = pickle.dumps(run(pickle.loads(inp.read(n))))
    out.write(struct.pack("<Q", len(data)))
    out.write(data)
    out.flush()
"""

RESOLVERS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "xnnpack": "BUILTIN"}
_proc: subprocess.Popen | None = None


def _read(stream, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def litert_steps(model: bytes, steps: list[list[np.ndarray]], numerics: str = "reference",
                 reset_at=()) -> dict:
    """Run the steps in a persistent LiteRT worker (restarted when it dies)."""
    global _proc
    if _proc is None or _proc.poll() is not None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        _proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    req = pickle.dumps({"model": bytes(model), "steps": steps, "resolver": RESOLVERS[numerics],
                        "reset_at": set(reset_at)})
    try:
        _proc.stdin.write(struct.pack("<Q", len(req)) + req)
        _proc.stdin.flush()
        (n,) = struct.unpack("<Q", _read(_proc.stdout, 8))
        return pickle.loads(_read(_proc.stdout, n))
    except (EOFError, BrokenPipeError, OSError):
        rc = _proc.wait(timeout=10)
        _proc = None
        return {"error": f"LiteRT process died (rc {rc})", "aborted": True}


def assert_steps_match(model: bytes, steps: list[list[np.ndarray]], numerics: str = "reference",
                       *, rtol: float = 1e-6, all_tensors: bool = True, reset_at=(),
                       **interpreter_kw) -> Interpreter:
    """Invoke both runtimes on each step's inputs in turn; every output (and every
    readable tensor of subgraph 0) must match at every step."""
    theirs = litert_steps(model, steps, numerics, reset_at)
    assert "error" not in theirs, theirs["error"]
    it = Interpreter(model_content=model, numerics=numerics, **interpreter_kw)
    it.allocate_tensors()
    sg = read_model(model).subgraphs[0]
    problems = []
    for k, (inputs, (outs, tensors)) in enumerate(zip(steps, theirs["steps"])):
        if k in reset_at:
            it.reset_all_variables()
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()
        for j, t in enumerate(sg.outputs):
            msg = compare_tensor(f"step {k} output {j} (tensor {t})", it.get_tensor(t), outs[j], rtol)
            if msg:
                problems.append(msg)
        if all_tensors:
            for t, value in tensors.items():
                if t in sg.outputs or t in sg.inputs or value.dtype == object:
                    continue   # LiteRT returns RESOURCE tensors as opaque objects
                try:
                    mine = it.get_tensor(t)
                except Exception:
                    continue
                msg = compare_tensor(f"step {k} tensor {t} {sg.tensors[t].name!r}", mine, value, rtol)
                if msg:
                    problems.append(msg)
    assert not problems, f"quantcore differs from LiteRT ({numerics}):\n" + "\n".join(problems[:20])
    return it
