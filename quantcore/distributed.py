"""Calibration and regression runs beyond one process: local processes or a Ray cluster.

``workers`` (``quantize``, ``calibrate``, ``baseline.check`` and the command line's
``--workers``) says where the work runs; :func:`parse_workers` reads it:

* ``None`` or ``1``: in this process;
* ``N > 1``: ``N`` local processes (``multiprocessing``, spawn context);
* ``"ray"``: the Ray cluster named by ``RAY_ADDRESS``, else the cluster a
  ``ray start --head`` on this machine runs (Ray's own lookup), or else a new local
  cluster (``ray.init(num_cpus=...)``) that listens on the loopback interface only;
* ``"ray://HOST:PORT"`` (Ray Client, needs ``ray[client]``) or ``"HOST:PORT"``-style
  addresses after ``ray:`` (``"ray:auto"``): that cluster;
* a :class:`RayOptions`, for the knobs (shard size, retries, tasks in flight).

Calibration on Ray (:func:`calibrate_ray`): the representative data is cut into
shards of consecutive samples; each shard is one Ray task that runs the float
runtime over it and returns its calibrators; the driver merges the returned
calibrators in shard order as they arrive. Every calibrator's ``merge`` is exact
(:mod:`quantcore.calibration`), so the merged statistics -- and the quantized
model's bytes -- equal the single-process result for every shard size and worker
count. Data sources:

* arrays, iterables and callables (the TFLite convention) are read by the driver,
  shard by shard (never more than ``max_in_flight`` shards held at once), and
  shipped to the tasks through Ray's object store;
* a path -- ``.npy``, ``.npz``, a directory of ``.npy`` files or images, or a glob
  pattern (``"calib/*.npy"``) -- is read by the tasks themselves: the driver sends
  index ranges or file names, so the data goes from storage to the node that uses
  it. The path must then be visible on every node (a shared or replicated file
  system); a task that cannot read it fails with a message saying so.

Faults: tasks are pure functions of their arguments, so a retried task recomputes
exactly the shard it was given and its single result replaces the lost one:
nothing is lost or counted twice. A task whose worker process dies is retried by
Ray (``max_retries``); a task raising ``OSError``, ``MemoryError`` or
``TimeoutError`` is retried too (``retry_exceptions``); a :class:`QuantcoreError`
(bad data, bad model) is deterministic and is raised at once, with its message.
Ctrl-C cancels the outstanding tasks and raises ``KeyboardInterrupt``; nothing is
written, since outputs are written only after a run completes (atomically).

Regression runs (:func:`check_baselines`): ``quantcore baseline check`` runs one
task per (model, numerics mode) and assembles the results into the same
:class:`~quantcore.baseline.CheckResult` (report, JSON, JUnit) as a local run.

A progress line (done / total, rate, ETA) is drawn on stderr when it is a terminal.

Testing hook: when the environment variable ``QUANTCORE_FAULT_ONCE`` names a file
that exists, the first task to claim the file (by deleting it) fails -- its process
exits if the file says ``exit``, or it raises ``OSError`` if it says ``raise``. The
variable must be in the environment of the worker processes (for a local cluster:
set before it starts).
"""
from __future__ import annotations

import glob as _glob
import io
import math
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from quantcore.errors import CalibrationError, InputError, QuantcoreError

RAY_INSTALL_HINT = "pip install 'quantcore[ray]'"
FAULT_ENV = "QUANTCORE_FAULT_ONCE"
RETRY_EXCEPTIONS = (OSError, MemoryError, TimeoutError)


class DistributedError(QuantcoreError):
    """A distributed run failed for a reason other than bad input: a task failed
    after all its retries, the cluster could not be reached, or nodes run
    different quantcore versions."""


# ---------------------------------------------------------------------------
# What `workers` means
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray.

    ``address``: None for ``RAY_ADDRESS`` or else a new local cluster; otherwise
    passed to ``ray.init(address=...)`` (``"ray://host:10001"``, ``"auto"``, ...).
    ``num_cpus``: CPUs of a new local cluster (None: all). ``shard_size``: samples per
    calibration task (None: about four tasks per CPU of the cluster, between 16
    and 1024 samples; 256 when the number of samples is unknown). ``max_retries``:
    retries of a task whose worker dies or raises a retryable error.
    ``max_in_flight``: tasks submitted ahead of the results (None: twice the
    cluster's CPUs). ``progress``: draw the progress line (None: on a terminal).
    """
    address: str | None = None
    num_cpus: int | None = None
    shard_size: int | None = None
    max_retries: int = 3
    max_in_flight: int | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "shard_size", "max_in_flight"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise InputError(f"RayOptions.{name} must be a positive integer or None, not {v!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, (int, np.integer)) \
                or self.max_retries < 0:
            raise InputError(f"RayOptions.max_retries must be an integer >= 0, not {self.max_retries!r}")


def parse_workers(value: Any) -> int | RayOptions | None:
    """Normalize a ``workers`` value: None (in process), an int >= 2 (local
    processes), or :class:`RayOptions`. Accepts ``"N"``, ``"ray"``, ``"ray://ADDR"``
    and ``"ray:ADDR"``; anything else raises :class:`InputError`."""
    if value is None or isinstance(value, RayOptions):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 1:
            raise InputError(f"workers must be a positive integer, 'ray' or 'ray://ADDRESS', not {value!r}")
        return None if value == 1 else int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_workers(int(text))
        if text == "ray":
            return RayOptions()
        if text.startswith("ray://"):
            if len(text) > len("ray://"):
                return RayOptions(address=text)
        elif text.startswith("ray:") and len(text) > len("ray:"):
            return RayOptions(address=text[len("ray:"):])
    raise InputError(f"workers must be a positive integer N, 'ray' or 'ray://ADDRESS', not {value!r}")


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------
class Progress:
    """One progress line on stderr for a whole run: done/total, a bar, rate, ETA.

    Drawn only when ``enabled`` (None: stderr is a terminal), at most ten times a
    second, and only once the run has taken half a second."""

    def __init__(self, total: int | None, unit: str, label: str, enabled: bool | None = None,
                 stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.unit, self.label, self.enabled = total, unit, label, enabled
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self.shown = False

    def advance(self, n: int) -> None:
        self.done += n
        self._draw(force=self.total is not None and self.done >= self.total)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and (now - self.start < 0.5 or now - self._last < 0.1):
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 20)
            eta = f", ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 and self.done < self.total else ""
            text = (f"{self.label}: {self.done}/{self.total} {self.unit} [{bar:<20}] {frac:4.0%}, "
                    f"{rate:.1f} {self.unit}/s{eta}")
        else:
            text = f"{self.label}: {self.done} {self.unit}, {rate:.1f} {self.unit}/s"
        self.stream.write("\r" + text + "   ")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


# ---------------------------------------------------------------------------
# Ray: import, connect
# ---------------------------------------------------------------------------
def import_ray() -> Any:
    """``import ray``, or an :class:`InputError` saying how to install it."""
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise InputError(f"--workers ray needs Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return ray


def _loopback_only() -> None:
    """Make a local cluster started from this process bind and talk on 127.0.0.1
    only, and send no usage statistics (set before Ray starts its processes, which
    inherit the environment)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        consts.ENABLE_RAY_CLUSTER = False     # ray imported before us: same effect


def connect(options: RayOptions) -> Any:
    """Connect to (or start) the cluster of ``options``; returns the ``ray`` module.

    A Ray session already initialized in this process is used as it is. Otherwise
    ``options.address``, else ``RAY_ADDRESS``, is connected to; with neither, a
    local cluster is started on the loopback interface with ``options.num_cpus``."""
    local = options.address is None and not os.environ.get("RAY_ADDRESS")
    if local and "ray" not in sys.modules:
        _loopback_only()
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if local:
        _loopback_only()
    import logging

    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if local and options.num_cpus is None and _running_local_cluster(ray):
        pass                       # Ray's own lookup connects to the `ray start` cluster
    elif local:
        # "local": a new cluster even when Ray's address file names a cluster that is
        # gone (a head killed without `ray stop` leaves the file behind)
        kwargs.update(address="local", num_cpus=options.num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = options.address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise DistributedError(f"cannot connect to Ray at {where}: {e}{_auth_hint(local)}") from None
    return ray


def _running_local_cluster(ray: Any) -> bool:
    """True when the cluster that ``ray start`` last recorded on this machine (Ray's
    address file, ``/tmp/ray/ray_current_cluster``) accepts connections."""
    try:
        address = ray._private.utils.read_ray_address(None)
    except Exception:              # a private API of Ray's: no lookup if it moved
        return False
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _auth_hint(local: bool) -> str:
    """Ray (>= 2.5x) turns token authentication on for clusters that ``ray start``
    creates, but sends the token to an explicitly named address (an argument or
    ``RAY_ADDRESS``) only when ``RAY_AUTH_MODE=token`` is set: say so when that is
    the likely reason a connection failed."""
    if local or os.environ.get("RAY_AUTH_MODE"):
        return ""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if not (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        return ""
    return (" (if the cluster uses token authentication, as `ray start` sets up by default, "
            "set RAY_AUTH_MODE=token: Ray sends its token to an explicit address only then)")


def _cluster_cpus(ray: Any) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - an estimate only
        return 1


def _maybe_fault() -> None:
    """The testing hook described in the module docstring."""
    flag = os.environ.get(FAULT_ENV)
    if not flag:
        return
    try:
        how = Path(flag).read_text().strip()
        os.unlink(flag)                      # exactly one task wins the unlink
    except OSError:
        return
    if how == "exit":
        os._exit(3)
    raise OSError(f"injected fault ({FAULT_ENV})")


def _task_options(options: RayOptions) -> dict:
    return {"max_retries": int(options.max_retries), "retry_exceptions": list(RETRY_EXCEPTIONS),
            "num_cpus": 1}


_REMOTE: dict[str, Any] = {}


def _remote(ray: Any, fn: Callable) -> Any:
    key = fn.__name__
    if key not in _REMOTE:
        _REMOTE[key] = ray.remote(fn)
    return _REMOTE[key]


def _unwrap(ray: Any, e: BaseException, what: str, options: RayOptions) -> BaseException:
    """The exception to raise for a failed task: the task's own QuantcoreError, or a
    DistributedError naming what failed."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, QuantcoreError):
        return cause
    if isinstance(e, getattr(ray.exceptions, "TaskCancelledError", ())):
        return KeyboardInterrupt()
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(e).__name__}: {e}"
    reason = " ".join(str(reason).split())
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return DistributedError(f"{what} failed after {options.max_retries} retries: {reason}")


def _drive(ray: Any, jobs: Iterator[tuple[Any, Callable[[], Any]]], on_result: Callable[[Any, Any], None],
           max_in_flight: int, what: str, options: RayOptions) -> None:
    """Submit ``jobs`` (key, submit function returning an ObjectRef) keeping at most
    ``max_in_flight`` outstanding; call ``on_result(key, value)`` as results come
    (in completion order). Any exception, Ctrl-C included, cancels what is left."""
    pending: dict[Any, Any] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < max_in_flight:
                try:
                    key, submit = next(jobs)
                except StopIteration:
                    exhausted = True
                    break
                pending[submit()] = key
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                key = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as e:
                    raise _unwrap(ray, e, f"{what} {key}", options) from None
                on_result(key, value)
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        raise


_FINGERPRINT: list[tuple[str, str, str]] = []


def numerics_fingerprint() -> tuple[str, str, str]:
    """(quantcore version, NumPy version, digest of float32 matrix products computed
    as calibration computes them). Equal fingerprints mean a node computes the float
    model's activations bit for bit as this process does: same code, and a BLAS
    whose kernels (chosen per CPU) round the same way."""
    if not _FINGERPRINT:
        import hashlib

        from quantcore import __version__
        from quantcore.quantizer.calibrate import single_thread_blas

        rng = np.random.default_rng(20240229)
        h = hashlib.sha256()
        with single_thread_blas():
            for m, k, n in ((1, 1280, 10), (1, 333, 65), (64, 27, 16), (49, 144, 24), (7, 1000, 129)):
                a = rng.standard_normal((m, k)).astype(np.float32)
                b = rng.standard_normal((k, n)).astype(np.float32)
                h.update(np.ascontiguousarray(a @ b).tobytes())
                h.update(np.ascontiguousarray(b.T @ a[0]).tobytes())
        _FINGERPRINT.append((__version__, np.__version__, h.hexdigest()[:16]))
    return _FINGERPRINT[0]


def _check_fingerprints(seen: set[tuple[str, str, str]], version_only: bool = False) -> None:
    """Raise DistributedError if a node's fingerprint differs from this process's
    (``version_only``: only the quantcore version matters, as for integer models,
    whose arithmetic is exact whatever the BLAS)."""
    mine = numerics_fingerprint()
    for theirs in sorted(seen - {mine}):
        if theirs[0] != mine[0]:
            raise DistributedError(f"a node runs quantcore {theirs[0]}, this process {mine[0]}: install the "
                                   f"same version on every node")
        if version_only:
            continue
        raise DistributedError(
            f"a node computes float32 matrix products differently from this process (NumPy {theirs[1]} "
            f"vs {mine[1]}, product digest {theirs[2]} vs {mine[2]}): a different NumPy/BLAS build or CPU "
            f"kernel, so its calibration statistics could differ in the last bit. Use the same "
            f"environment and CPU type on every node (and for this process)")


# ---------------------------------------------------------------------------
# Representative data: where it comes from, how it is cut
# ---------------------------------------------------------------------------
def is_path_dataset(dataset: Any) -> bool:
    return isinstance(dataset, (str, os.PathLike))


def _glob_files(pattern: str) -> list[str]:
    from quantcore.datasets import IMAGE_SUFFIXES

    files = sorted(f for f in _glob.glob(pattern) if os.path.isfile(f)
                   and (f.endswith(".npy") or f.lower().endswith(IMAGE_SUFFIXES)))
    if not files:
        raise CalibrationError(f"calibration data {pattern!r}: no .npy files or images match")
    return files


def _file_list(p: Path) -> list[str]:
    """The sample files of a directory, as :func:`quantcore.datasets.representative_dataset`
    reads them: every .npy file (sorted), or else every image."""
    from quantcore.datasets import IMAGE_SUFFIXES

    npys = sorted(f for f in p.iterdir() if f.suffix == ".npy")
    images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return [os.fspath(f) for f in (npys or images)]


class PathSource:
    """Representative data in files, read where it is used: ``.npy``/``.npz`` by
    index range, a directory or glob by file name. ``samples(start, stop)`` gives
    samples ``[start, stop)`` exactly as :func:`quantcore.datasets.representative_dataset`
    gives them (same arrays, same dtypes, same errors)."""

    def __init__(self, path: str | os.PathLike, model: Any) -> None:
        self.path = os.path.abspath(os.fspath(path))
        p = Path(self.path)
        self.files: list[str] | None = None
        if p.is_dir():
            self.files = _file_list(p)
            if not self.files:
                from quantcore.datasets import representative_dataset
                representative_dataset(p, model)   # raises its message
            self.total = len(self.files)
        elif not p.exists() and any(c in os.fspath(path) for c in "*?["):
            self.files = [os.path.abspath(f) for f in _glob_files(os.fspath(path))]
            self.total = len(self.files)
        else:
            self.total = len(self._arrays(model)[0])

    def _arrays(self, model: Any) -> list[np.ndarray]:
        """The per-input sample arrays of a .npy (memory-mapped) or .npz file, checked
        as ``representative_dataset`` checks them."""
        from quantcore.datasets import _input_specs, representative_dataset, sample_arrays

        p = Path(self.path)
        specs = _input_specs(model)
        if not p.exists():
            representative_dataset(p, model)        # raises "does not exist"
        try:
            data = np.load(p, mmap_mode="r", allow_pickle=False) if p.suffix == ".npy" \
                else np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            representative_dataset(p, model)        # raises "cannot read"
            raise
        return sample_arrays(data, specs, p.name)

    def samples(self, model: Any, start: int, stop: int) -> Iterator[list[np.ndarray]]:
        from quantcore.datasets import _input_specs

        specs = _input_specs(model)
        if self.files is not None:
            yield from _file_samples(self.files[start:stop], specs)
            return
        if not os.path.exists(self.path):
            raise CalibrationError(f"calibration data {self.path!r} is not visible on this node: put it on "
                                   f"storage every node mounts, or pass the data as arrays or a callable")
        arrays = self._arrays(model)
        for i in range(start, stop):
            yield [np.asarray(a[i]).astype(dtype) for a, (_, _, dtype) in zip(arrays, specs)]

    def all(self, model: Any) -> Callable[[], Iterator[list[np.ndarray]]]:
        return lambda: self.samples(model, 0, self.total)


def _file_samples(files: list[str], specs) -> Iterator[list[np.ndarray]]:
    """One sample per file, converted as ``quantcore.datasets`` converts a directory."""
    if len(specs) != 1:
        raise CalibrationError("a directory or glob of samples needs a single-input model")
    name, shape, dtype = specs[0]
    for f in files:
        fname = os.path.basename(f)
        if not os.path.exists(f):
            raise CalibrationError(f"calibration file {f!r} is not visible on this node: put the data on "
                                   f"storage every node mounts, or pass it as arrays or a callable")
        if f.endswith(".npy"):
            a = np.load(f, allow_pickle=False)
            if list(a.shape) == shape[1:]:
                a = a[None]
            if list(a.shape) != shape:
                raise CalibrationError(f"{fname}: shape {list(a.shape)}, input {name!r} needs {shape}")
            yield [a.astype(dtype)]
            continue
        if len(shape) != 4 or shape[3] not in (1, 3):
            raise CalibrationError(f"{fname}: images need an NHWC input with 1 or 3 channels, "
                                   f"input {name!r} is {shape}")
        try:
            from PIL import Image
        except ImportError:
            raise CalibrationError("reading images needs Pillow: pip install pillow") from None
        try:
            img = Image.open(f).convert("L" if shape[3] == 1 else "RGB").resize((shape[2], shape[1]))
        except OSError as e:
            raise CalibrationError(f"{fname}: cannot decode image: {e}") from None
        a = np.asarray(img, np.float32) / 255.0
        yield [a.reshape(shape).astype(dtype)]


def dataset_from_path(path: str | os.PathLike, model: Any) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A representative dataset (callable) reading ``path`` in this process: .npy,
    .npz, a directory, or a glob pattern."""
    return PathSource(path, model).all(model)


def _chunks(samples: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for s in samples:
        chunk.append(s)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _dataset_length(dataset: Any) -> int | None:
    if isinstance(dataset, np.ndarray):
        return int(dataset.shape[0]) if dataset.ndim else None
    if callable(dataset) or not hasattr(dataset, "__len__"):
        return None
    try:
        return len(dataset)
    except TypeError:
        return None


def default_shard_size(total: int | None, cpus: int) -> int:
    """About four shards per CPU, 16 to 1024 samples each; 256 if ``total`` is unknown."""
    if total is None:
        return 256
    return int(min(1024, max(16, math.ceil(total / (4 * cpus)))))


# ---------------------------------------------------------------------------
# Calibration on Ray
# ---------------------------------------------------------------------------
def _calibrate_task(model_bytes: bytes, payload: Any, calibrator: Any, tensors: list[int],
                    first_index: int) -> tuple[tuple, dict, int]:
    """One shard: (numerics fingerprint, calibrators, samples run). ``payload`` is a
    list of samples, or (PathSource, start, stop) read here."""
    from quantcore.quantizer.calibrate import _run
    from quantcore.schema import read_model

    _maybe_fault()
    model = read_model(model_bytes)
    if isinstance(payload, tuple):
        source, start, stop = payload
        samples: Iterable = source.samples(model, start, stop)
    else:
        samples = payload
    cals, count = _run(model, samples, calibrator, tensors, None, first_index)
    return numerics_fingerprint(), cals, count


def calibrate_ray(model: Any, dataset: Any, calibrator: Any, tensors: list[int],
                  options: RayOptions) -> dict[int, Any]:
    """:func:`quantcore.quantizer.calibrate` on Ray (see the module docstring): one task
    per shard, calibrators merged in shard order; equal to the single-process result."""
    from quantcore.calibration import make_calibrator
    from quantcore.quantizer.calibrate import iterate_dataset
    from quantcore.schema import write_model

    ray = connect(options)
    cpus = _cluster_cpus(ray)
    prototype = make_calibrator(calibrator)      # a fresh instance: pickles alike everywhere
    model_ref = ray.put(write_model(model))
    if is_path_dataset(dataset):
        source = PathSource(dataset, model)
        total: int | None = source.total
        size = options.shard_size or default_shard_size(total, cpus)
        payloads: Iterator[tuple[int, Any]] = (
            (a, (source, a, min(a + size, total))) for a in range(0, total, size))
    else:
        total = _dataset_length(dataset)
        size = options.shard_size or default_shard_size(total, cpus)

        def shipped() -> Iterator[tuple[int, Any]]:
            first = 0
            for chunk in _chunks(iterate_dataset(dataset), size):
                yield first, chunk
                first += len(chunk)
        payloads = shipped()
    remote = _remote(ray, _calibrate_task).options(**_task_options(options))

    def jobs() -> Iterator[tuple[int, Callable[[], Any]]]:
        for shard, (first, payload) in enumerate(payloads):
            yield shard, (lambda p=payload, f=first: remote.remote(model_ref, p, prototype, tensors, f))

    merged: dict[int, Any] | None = None
    ready: dict[int, dict] = {}
    state = {"next": 0, "samples": 0}
    versions: set[tuple] = set()
    n_shards = None if total is None else -(-total // size)
    label = f"calibrating on Ray ({cpus} CPUs" + (f", {n_shards} shards)" if n_shards else ")")
    progress = Progress(total, "samples", label, options.progress)

    def on_result(shard: int, value: tuple[tuple, dict, int]) -> None:
        nonlocal merged
        version, cals, count = value
        versions.add(version)
        ready[shard] = cals
        state["samples"] += count
        progress.advance(count)
        while state["next"] in ready:          # merge in shard order (MovingAverageMinMax replays)
            part = ready.pop(state["next"])
            if merged is None:
                merged = part
            else:
                for i in tensors:
                    merged[i].merge(part[i])
            state["next"] += 1

    try:
        _drive(ray, jobs(), on_result, options.max_in_flight or 2 * cpus, "calibration shard", options)
    finally:
        progress.close()
    _check_fingerprints(versions)
    if state["samples"] == 0 or merged is None:
        if tensors:
            raise CalibrationError("the representative dataset is empty")
        return {}
    return merged


# ---------------------------------------------------------------------------
# Baseline checks: one task per (model, numerics mode)
# ---------------------------------------------------------------------------
@dataclass
class _CheckJob:
    name: str
    model: str | None                 # the path given for the model, or None (recorded path)
    modes: list[str] | None           # numerics to check; None: every recorded one
    local: bool = False               # run on the driver (the baseline or model cannot be read)


def _plan_checks(directory: Any, todo: list[tuple[str, Any]], numerics: list[str] | None) -> list[_CheckJob]:
    """One job per (model, numerics mode) in the order a local check reports them."""
    import json

    from quantcore.baseline import FORMAT

    jobs = []
    for name, path in todo:
        try:
            man = json.loads((Path(directory) / f"{name}.json").read_text())
            modes = man["numerics"] if isinstance(man, dict) and man.get("format") == FORMAT else None
            wanted = None if not isinstance(modes, dict) else \
                list(modes) if numerics is None else [n for n in numerics if n in modes]
        except (OSError, ValueError, KeyError):
            wanted = None
        if wanted is None:                   # unreadable: the local check reports it
            jobs.append(_CheckJob(name, path, numerics, local=True))
        elif not wanted:
            jobs.append(_CheckJob(name, path, []))
        else:
            jobs.extend(_CheckJob(name, path, [m]) for m in wanted)
    return jobs


def _check_local(job: tuple) -> Any:
    """Worker entry point (local processes): check_model on the files themselves."""
    from quantcore.baseline import check_model

    directory, name, model, tolerance, modes = job
    return check_model(directory, name, model=model, tolerance=tolerance, numerics=modes)


def _check_task(name: str, manifest: bytes, arrays: bytes, model_bytes: bytes, tolerance: int,
                modes: list[str] | None, directory: str) -> tuple[tuple, Any]:
    """Ray entry point: the baseline's files are shipped, so the node needs no shared
    file system. Returns (numerics fingerprint, ModelCheck)."""
    from quantcore.baseline import check_model

    _maybe_fault()
    with tempfile.TemporaryDirectory(prefix="quantcore-check-") as tmp:
        (Path(tmp) / f"{name}.json").write_bytes(manifest)
        (Path(tmp) / f"{name}.npz").write_bytes(arrays)
        r = check_model(tmp, name, model=model_bytes, tolerance=tolerance, numerics=modes)
        fix = (lambda s: s if s is None else s.replace(tmp, directory))
        r.error = fix(r.error)
        for n in r.numerics:
            n.error, n.inputs_note = fix(n.error), fix(n.inputs_note)
    return numerics_fingerprint(), r


def _ship(directory: str, job: _CheckJob, cache: dict) -> tuple[bytes, bytes, bytes, str] | None:
    """(manifest, arrays, model bytes, model display path) for a Ray task, or None
    when something cannot be read (the driver then checks locally, with the local
    error messages)."""
    import json

    key = (job.name, job.model)
    if key in cache:
        return cache[key]
    d = Path(directory)
    out = None
    try:
        manifest = (d / f"{job.name}.json").read_bytes()
        arrays = (d / f"{job.name}.npz").read_bytes()
        with np.load(io.BytesIO(arrays), allow_pickle=False) as z:
            z.files                                          # a readable archive
        man = json.loads(manifest)
        model = job.model if job.model is not None else (d / man["model"] if man.get("model") else None)
        if model is not None:
            out = (manifest, arrays, Path(model).read_bytes(), os.fspath(model))
    except (OSError, ValueError, KeyError, TypeError):
        out = None
    cache[key] = out
    return out


def _assemble(parts: list[Any]) -> Any:
    """One ModelCheck from the per-mode checks of one model (in mode order)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    numerics = [n for p in parts for n in p.numerics]
    return replace(first, numerics=numerics, seconds=sum(p.seconds for p in parts))


def check_baselines(directory: Any, todo: list[tuple[str, Any]], *, tolerance: int,
                    numerics: list[str] | None, workers: int | RayOptions) -> list[Any]:
    """The ModelChecks of :func:`quantcore.baseline.check` for ``todo`` ((name, model
    path or None) pairs), computed by ``workers`` with one task per (model, numerics
    mode) and assembled in the order of a local run."""
    directory = os.fspath(directory)
    jobs = _plan_checks(directory, todo, numerics)
    results: dict[int, Any] = {}
    models = {j.name for j in jobs}
    progress_opt = workers.progress if isinstance(workers, RayOptions) else None
    progress = Progress(len(jobs), "checks", f"checking {len(models)} models", progress_opt)
    try:
        if isinstance(workers, RayOptions):
            _checks_on_ray(directory, jobs, tolerance, workers, results, progress)
        else:
            args = [(directory, j.name, j.model, tolerance, j.modes) for j in jobs]
            with multiprocessing.get_context("spawn").Pool(min(int(workers), max(len(jobs), 1))) as pool:
                for k, r in enumerate(pool.imap(_check_local, args)):
                    results[k] = r
                    progress.advance(1)
    finally:
        progress.close()
    out: list[Any] = []
    k = 0
    while k < len(jobs):
        group = [k]
        while group[-1] + 1 < len(jobs) and jobs[group[-1] + 1].name == jobs[k].name \
                and jobs[group[-1] + 1].model == jobs[k].model:
            group.append(group[-1] + 1)
        out.append(_assemble([results[i] for i in group]))
        k = group[-1] + 1
    return out


def _checks_on_ray(directory: str, jobs: list[_CheckJob], tolerance: int, options: RayOptions,
                   results: dict[int, Any], progress: Progress) -> None:
    ray = connect(options)
    remote = _remote(ray, _check_task).options(**_task_options(options))
    cache: dict = {}
    refs: dict[tuple, Any] = {}
    display: dict[int, str] = {}
    versions: set[tuple] = set()

    def submissions() -> Iterator[tuple[int, Callable[[], Any]]]:
        for k, j in enumerate(jobs):
            shipped = None if j.local else _ship(directory, j, cache)
            if shipped is None:
                results[k] = _check_local((directory, j.name, j.model, tolerance, j.modes))
                progress.advance(1)
                continue
            manifest, arrays, model_bytes, shown = shipped
            key = (j.name, j.model)
            if key not in refs:                  # one copy per model in the object store
                refs[key] = (ray.put(manifest), ray.put(arrays), ray.put(model_bytes))
            display[k] = shown
            m, a, b = refs[key]
            yield k, (lambda m=m, a=a, b=b, j=j: remote.remote(j.name, m, a, b, tolerance, j.modes, directory))

    def on_result(k: int, value: tuple[tuple, Any]) -> None:
        version, r = value
        versions.add(version)
        r.model = display[k]
        results[k] = r
        progress.advance(1)

    _drive(ray, submissions(), on_result, options.max_in_flight or 2 * _cluster_cpus(ray),
           "baseline check", options)
    _check_fingerprints(versions, version_only=True)


__all__ = ["DistributedError", "FAULT_ENV", "PathSource", "Progress", "RAY_INSTALL_HINT", "RayOptions",
           "calibrate_ray", "check_baselines", "connect", "dataset_from_path", "default_shard_size",
           "import_ray", "is_path_dataset", "parse_workers"]
