"""TFLite Micro as an oracle, run in a child process.

The ``tflite-micro`` wheel (``pip install 'quantcore[micro]'``) wraps TFLM's
``MicroInterpreter`` with its reference kernels. It aborts the whole process on some
models (the same int8 SOFTMAX CHECK as LiteRT's reference path) and segfaults on an
out-of-range ``GetTensor`` index, so it never runs in quantcore's own process:
:class:`MicroOracle` keeps one worker process alive across calls, restarts it when
it dies and reports a death as ``aborted`` with the signal.

Two interpreter configurations exist and exclude each other
(``tflite_micro.python.tflite_micro.runtime.InterpreterConfig``):

* ``kPreserveAllTensors``: every tensor stays readable after ``invoke`` through
  ``GetTensor(index, subgraph)``. The arena is then planned by the
  ``LinearMemoryPlanner`` (no buffer sharing), so its sizes say nothing about a
  device. :meth:`MicroOracle.run` uses it.
* ``kAllocationRecording``: the ``RecordingMicroAllocator`` measures the arena.
  ``AllocateTensors`` runs in the constructor, so ``print_allocations`` (which
  writes to the C stderr) already reports the planned head and the persistent
  tail; :meth:`MicroOracle.allocations` captures and parses that report.

Run the worker by hand with ``python -m quantcore.micro_oracle`` (it reads
length-prefixed pickled requests on stdin).
"""
from __future__ import annotations

import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from quantcore.errors import QuantcoreError
from quantcore.oracle import _recv_exact, _send

DEFAULT_ARENA = 64 << 20


class MicroOracleUnavailable(QuantcoreError):
    """tflite-micro is not installed or the worker cannot start."""


@dataclass
class MicroResult:
    """What TFLM produced, one entry per invoke.

    ``outputs[k]`` lists the model outputs after invoke ``k``; ``tensors[k]`` maps
    ``(subgraph, tensor index)`` to every tensor TFLM kept readable. ``error`` holds
    TFLM's message when it refused the model (with what it printed on stderr);
    ``aborted`` is set when the process died."""
    outputs: list[list[np.ndarray]] = field(default_factory=list)
    tensors: list[dict[tuple[int, int], np.ndarray]] = field(default_factory=list)
    error: str | None = None
    aborted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class MicroAllocations:
    """The ``RecordingMicroAllocator`` report: bytes of the planned (non-persistent)
    head, the persistent tail and their sum, and the per-category lines
    (``name -> (used bytes, requested bytes, allocation count)``)."""
    head: int = 0
    tail: int = 0
    total: int = 0
    categories: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    report: str = ""
    error: str | None = None
    aborted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_CATEGORY = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) "
                       r"bytes for (\d+)")


def parse_allocation_report(text: str) -> MicroAllocations:
    """Parse what ``print_allocations`` printed."""
    a = MicroAllocations(report=text)
    for kind, n in _TOTAL.findall(text):
        setattr(a, kind, int(n))
    for name, used, requested, count in _CATEGORY.findall(text):
        a.categories[name] = (int(used), int(requested), int(count))
    if not _TOTAL.search(text):
        a.error = "TFLM printed no allocation report"
    return a


def available() -> bool:
    """Whether the ``tflite-micro`` package can be imported (without importing it here)."""
    import importlib.util
    try:
        return importlib.util.find_spec("tflite_micro") is not None
    except (ImportError, ValueError):  # pragma: no cover
        return False


class MicroOracle:
    """A persistent TFLM worker process. Use as a context manager or call close()."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self._stderr: tempfile.TemporaryFile | None = None

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quantcore.micro_oracle"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:  # pragma: no cover
                pass
            for s in (self.proc.stdin, self.proc.stdout):
                if s is not None:
                    s.close()
            self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "MicroOracle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:].strip()

    def _request(self, request: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, request)
            header = _recv_exact(self.proc.stdout.fileno(), 8, self.timeout)
            (n,) = struct.unpack("<Q", header)
            reply = pickle.loads(_recv_exact(self.proc.stdout.fileno(), n, self.timeout))
        except TimeoutError:
            self.close()
            return {"error": f"TFLM did not answer within {self.timeout} s", "aborted": True}
        except (EOFError, BrokenPipeError, OSError):
            code = self.proc.wait(timeout=10)
            stderr = self._stderr_tail()
            self.close()
            sig = -code if code is not None and code < 0 else None
            what = f"signal {signal.Signals(sig).name}" if sig else f"exit code {code}"
            return {"error": f"TFLM process died ({what}): {stderr}", "aborted": True}
        if "unavailable" in reply:
            raise MicroOracleUnavailable(reply["unavailable"])
        return reply

    def run(self, model: bytes, invokes, *, preserve_all_tensors: bool = True,
            arena_size: int = DEFAULT_ARENA) -> MicroResult:
        """Invoke ``model`` once per entry of ``invokes``, each a list of input arrays in
        input order, on one interpreter (state carries over, as on a device).

        With ``preserve_all_tensors`` every tensor of every subgraph is read back after
        each invoke."""
        reply = self._request({"op": "run", "model": bytes(model),
                               "invokes": [[np.asarray(x) for x in inv] for inv in invokes],
                               "preserve": preserve_all_tensors, "arena": int(arena_size)})
        return MicroResult(outputs=reply.get("outputs", []), tensors=reply.get("tensors", []),
                           error=reply.get("error"), aborted=reply.get("aborted", False))

    def allocations(self, model: bytes, *, arena_size: int = DEFAULT_ARENA) -> MicroAllocations:
        """The arena TFLM's recording allocator measures for ``model`` (after
        AllocateTensors, with the greedy memory planner)."""
        reply = self._request({"op": "allocations", "model": bytes(model),
                               "arena": int(arena_size)})
        if "report" in reply:
            return parse_allocation_report(reply["report"])
        return MicroAllocations(error=reply.get("error"), aborted=reply.get("aborted", False))


# ---------------------------------------------------------------------------
# The worker (child process)
# ---------------------------------------------------------------------------
def _capture_fd2(fn) -> tuple[object, str, Exception | None]:
    """Run ``fn`` with file descriptor 2 redirected to a temporary file (TFLM's
    MicroPrintf writes to the C stderr); return its result (None if it raised),
    the text, and the exception it raised."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        result, error = None, None
        try:
            result = fn()
        except Exception as e:
            error = e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return result, f.read().decode(errors="replace"), error


def _message(error: Exception, printed: str) -> str:
    lines = [ln.strip() for ln in printed.splitlines() if ln.strip()]
    text = f"{type(error).__name__}: {error}"
    return f"{text} ({'; '.join(lines[-6:])})" if lines else text


_OPAQUE_TYPES = (13, 15)   # TensorType RESOURCE, VARIANT (schema.fbs)


def _serve_run(runtime, req) -> dict:
    config = (runtime.InterpreterConfig.kPreserveAllTensors if req["preserve"]
              else runtime.InterpreterConfig.kAllocationRecording)

    def make():
        return runtime.Interpreter.from_bytes(req["model"], arena_size=req["arena"],
                                              intrepreter_config=config)
    it, printed, error = _capture_fd2(make)
    if error is not None:
        return {"error": _message(error, printed)}
    m = runtime.convert_bytearray_to_object(bytearray(req["model"]))
    # GetTensor on a RESOURCE or VARIANT tensor (a VAR_HANDLE output) dereferences
    # data TFLM never wrote for it and segfaults (measured, tflite-micro wheel): skip
    # those; the variable's value is read through READ_VARIABLE's output.
    readable = [[i for i, t in enumerate(sg.tensors or []) if t.type not in _OPAQUE_TYPES]
                for sg in (m.subgraphs or [])] if req["preserve"] else []
    n_outputs = len(m.subgraphs[0].outputs if m.subgraphs[0].outputs is not None else [])
    outputs, tensors = [], []
    for inputs in req["invokes"]:
        def step():
            for i, x in enumerate(inputs):
                it.set_input(x, i)
            it.invoke()
            # get_output past the last output reads out of bounds: ask for exactly
            # as many as the model has.
            return [np.array(it.get_output(k)) for k in range(n_outputs)]
        outs, printed, error = _capture_fd2(step)
        if error is not None:
            return {"error": _message(error, printed), "outputs": outputs, "tensors": tensors}
        outputs.append(outs)
        kept = {}
        for s, indices in enumerate(readable):
            for i in indices:
                try:
                    t = it.GetTensor(i, s)
                except Exception:
                    continue
                data = t.get("tensor_data") if isinstance(t, dict) else None
                if data is not None:
                    kept[(s, i)] = np.array(data)
        tensors.append(kept)
    return {"outputs": outputs, "tensors": tensors}


def _serve_allocations(runtime, req) -> dict:
    def make_and_print():
        it = runtime.Interpreter.from_bytes(
            req["model"], arena_size=req["arena"],
            intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
        it.print_allocations()
        return it
    _, printed, error = _capture_fd2(make_and_print)
    if error is not None:
        return {"error": _message(error, printed)}
    return {"report": printed}


def _serve() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed must not corrupt the reply stream
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover
        runtime = None
        import_error = f"tflite-micro is not installed ({e}); pip install 'quantcore[micro]'"
    inp = sys.stdin.buffer
    while True:
        header = inp.read(8)
        if len(header) < 8:
            return
        (n,) = struct.unpack("<Q", header)
        req = pickle.loads(inp.read(n))
        if runtime is None:
            reply = {"unavailable": import_error}
        elif req["op"] == "allocations":
            reply = _serve_allocations(runtime, req)
        else:
            reply = _serve_run(runtime, req)
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(struct.pack("<Q", len(data)))
        out.write(data)
        out.flush()


if __name__ == "__main__":
    _serve()
