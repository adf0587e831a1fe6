"""LiteRT as an oracle, run in a child process.

LiteRT's reference resolver aborts the whole process on some models (an int8
SOFTMAX with a tiny input scale fails a CHECK), so it never runs in quantcore's own
process. :class:`LiteRTOracle` keeps one worker process alive across calls (cheap
for thousands of test cases), restarts it when it dies, and reports a death as
``OracleResult.aborted`` with the signal, never as a crash of the caller.

Numerics paths (``ai_edge_litert.interpreter.OpResolverType``):

* ``"reference"``: ``BUILTIN_REF``, the reference kernels;
* ``"optimized"``: ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, optimized kernels;
* ``"xnnpack"``: ``BUILTIN``, the default path with the XNNPACK delegate.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np

from quantcore.errors import QuantcoreError

RESOLVERS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "xnnpack": "BUILTIN"}


class OracleUnavailable(QuantcoreError):
    """ai-edge-litert is not installed or the worker cannot start."""


@dataclass
class OracleResult:
    """What LiteRT produced. ``error`` holds LiteRT's message when it refused the model;
    ``aborted`` is set when the process died (``error`` then names the signal)."""
    outputs: list[np.ndarray] = field(default_factory=list)
    tensors: dict[int, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    aborted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _recv_exact(fd: int, n: int, timeout: float | None) -> bytes:
    chunks = []
    while n:
        if timeout is not None:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class LiteRTOracle:
    """A persistent LiteRT worker process. Use as a context manager or call close()."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quantcore._oracle_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:  # pragma: no cover
                pass
            for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if s is not None:
                    s.close()
            self.proc = None

    def __enter__(self) -> "LiteRTOracle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass

    def run(self, model: bytes, inputs, numerics: str = "reference", *,
            preserve_all_tensors: bool = True, num_threads: int = 1) -> OracleResult:
        """Run ``model`` on ``inputs`` (a list in input order, or a dict by input index).

        Returns outputs in output order and, with ``preserve_all_tensors``, every
        readable tensor of subgraph 0 by index.
        """
        if numerics not in RESOLVERS:
            raise ValueError(f"numerics must be one of {sorted(RESOLVERS)}, not {numerics!r}")
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        request = {"model": bytes(model), "inputs": inputs, "resolver": RESOLVERS[numerics],
                   "preserve": preserve_all_tensors, "threads": num_threads}
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, request)
            header = _recv_exact(self.proc.stdout.fileno(), 8, self.timeout)
            (n,) = struct.unpack("<Q", header)
            reply = pickle.loads(_recv_exact(self.proc.stdout.fileno(), n, self.timeout))
        except TimeoutError:
            self.close()
            return OracleResult(error=f"LiteRT did not answer within {self.timeout} s", aborted=True)
        except (EOFError, BrokenPipeError, OSError):
            code = self.proc.wait(timeout=10)
            stderr = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
            self.close()
            sig = -code if code is not None and code < 0 else None
            what = f"signal {signal.Signals(sig).name}" if sig else f"exit code {code}"
            return OracleResult(error=f"LiteRT process died ({what}): {stderr.strip()}", aborted=True)
        if "unavailable" in reply:
            raise OracleUnavailable(reply["unavailable"])
        return OracleResult(outputs=reply.get("outputs", []), tensors=reply.get("tensors", {}),
                            error=reply.get("error"))
