"""Running a float model over representative data and recording tensor statistics."""
from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from quantcore.calibration import Calibrator, make_calibrator
from quantcore.errors import CalibrationError, InputError
from quantcore.runtime import Interpreter
from quantcore.schema import read_model, write_model
from quantcore.schema.model import Model, TensorType


def iterate_dataset(dataset: Any) -> Iterable:
    """Samples of a representative dataset: a callable returning an iterable (the
    TFLite converter convention), an iterable, or an array whose first axis indexes
    samples (single-input models)."""
    if dataset is None:
        return []
    if callable(dataset):
        dataset = dataset()
    if isinstance(dataset, np.ndarray):
        return ([x[None]] for x in dataset)
    return dataset


def _batchless(shape) -> tuple[int, ...]:
    """``shape`` without its leading dimensions of size 1."""
    dims = [int(v) for v in shape]
    while dims and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


def _sample_inputs(sample: Any, model: Model, index: int) -> list[np.ndarray]:
    sg = model.subgraphs[0]
    names = [sg.tensors[i].name for i in sg.inputs]
    if isinstance(sample, dict):
        by_sig = {}
        for sig in model.signature_defs or []:
            if sig.subgraph_index == 0:
                by_sig.update({m.name: m.tensor_index for m in sig.inputs})
        out = []
        for t, name in zip(sg.inputs, names):
            key = next((k for k, v in by_sig.items() if v == t and k in sample), None)
            if key is None:
                key = name if name in sample else None
            if key is None:
                raise CalibrationError(f"sample {index}: no value for input {name!r}; the sample has "
                                       f"keys {sorted(sample)}")
            out.append(np.asarray(sample[key]))
        return out
    if isinstance(sample, np.ndarray):
        sample = [sample]
    sample = list(sample)
    if len(sample) != len(sg.inputs):
        raise CalibrationError(f"sample {index} has {len(sample)} arrays, the model has "
                               f"{len(sg.inputs)} inputs ({', '.join(names)})")
    return [np.asarray(s) for s in sample]


class _Progress:
    """A one-line progress indicator on stderr for runs longer than a second."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total, self.label = total, label
        self.start = time.monotonic()
        self.shown = False

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        if elapsed < 1.0 or not sys.stderr.isatty():
            return
        rate = done / elapsed if elapsed else 0.0
        total = f"/{self.total}" if self.total else ""
        eta = f", ETA {(self.total - done) / rate:.0f} s" if self.total and rate else ""
        sys.stderr.write(f"\r{self.label}: {done}{total} samples, {rate:.1f}/s{eta}   ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def calibrate(model: Model, dataset: Any, calibrator: str | Calibrator = "minmax",
              tensors: Iterable[int] | None = None,
              observer: Callable[[int, np.ndarray], None] | None = None,
              workers: Any = None, op_observer: Callable | None = None) -> dict[int, Calibrator]:
    """Run subgraph 0 of a float model over ``dataset``; one calibrator per float tensor.

    Every non-constant float32 tensor of subgraph 0 is observed (or only ``tensors``).
    Input samples are checked first: a NaN raises ``CalibrationError`` naming the
    input and the sample; a shape or dtype that does not fit raises it too.

    ``workers > 1``: the samples are materialized into a list and split into
    ``min(workers, len(samples))`` contiguous shards, in order; each shard runs in a
    ``multiprocessing`` pool (spawn context) whose worker builds its own interpreter
    from the serialized model and returns its calibrators, which are merged in shard
    order. Every calibrator's merge is exact (MovingAverageMinMax replays samples in
    merge order), so the result equals the single-process one. Samples and the
    calibrator must be picklable; ``observer`` cannot be used (it would run in
    another process). As with any spawn-based pool, a script calling this must
    guard its entry point with ``if __name__ == "__main__":``.

    ``workers="ray"``, ``"ray://ADDRESS"`` or a :class:`quantcore.distributed.RayOptions`:
    the shards are Ray tasks (the cluster in ``RAY_ADDRESS``, or a local one), their
    calibrators merged in shard order, with the same exact result; see
    :mod:`quantcore.distributed`.

    ``op_observer``: installed as the interpreter's ``op_observer`` (called after every
    operator of every subgraph, so WHILE bodies are seen at each iteration; see
    :mod:`.recurrent`); in-process only. ``dataset`` may also be a path (.npy, .npz, a
    directory of samples, or a glob pattern), which Ray tasks read themselves.
    """
    from quantcore import distributed

    if isinstance(workers, (str, distributed.RayOptions)):
        workers = distributed.parse_workers(workers)
    elif workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                  or workers < 1):
        raise InputError(f"workers must be a positive integer, 'ray', 'ray://ADDRESS' or None, "
                         f"not {workers!r}")
    sg = model.subgraphs[0]
    if tensors is None:
        tensors = [i for i, t in enumerate(sg.tensors)
                   if t.type == TensorType.FLOAT32 and model.tensor_data(0, i) is None]
    tensors = list(tensors)
    if op_observer is not None and workers is not None and workers != 1:
        raise InputError("op_observer= runs in this process: it cannot be combined with workers")
    if isinstance(workers, distributed.RayOptions):
        if observer is not None:
            raise InputError("observer= cannot be combined with workers='ray': it would run in the "
                             "Ray tasks")
        return distributed.calibrate_ray(model, dataset, calibrator, tensors, workers)
    if distributed.is_path_dataset(dataset):
        dataset = distributed.dataset_from_path(dataset, model)
    if workers is not None and workers > 1:
        if observer is not None:
            raise InputError("observer= cannot be combined with workers > 1: it would run in the "
                             "worker processes")
        return _calibrate_parallel(model, dataset, calibrator, tensors, int(workers))
    try:
        total = len(dataset) if hasattr(dataset, "__len__") and not callable(dataset) else None
    except TypeError:
        total = None
    progress = _Progress(total, "calibrating")
    cals, count = _run(model, iterate_dataset(dataset), calibrator, tensors, observer, 0, progress,
                       op_observer)
    progress.close()
    if count == 0 and tensors:
        raise CalibrationError("the representative dataset is empty")
    return cals


def single_thread_blas():
    """A context in which BLAS (NumPy's matmul) uses one thread.

    A multi-threaded BLAS may split one dot product between threads (a batch-1
    FULLY_CONNECTED is a matrix-vector product), so the float model's activations
    can change in the last bit with the number of threads -- and so the calibrated
    ranges. Calibration runs the float model in this context in every process
    (in-process, local workers, Ray tasks), so its statistics do not depend on
    where it ran. (One thread is also faster here: the per-sample products are small.)
    Needs threadpoolctl (in the ``ray`` and ``test`` extras); without it BLAS keeps
    its thread count.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (extras ray/test): without it BLAS keeps its thread count
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run(model: Model, samples: Iterable, calibrator: str | Calibrator, tensors: list[int],
         observer: Callable[[int, np.ndarray], None] | None, first_index: int,
         progress: _Progress | None = None, op_observer: Callable | None = None
         ) -> tuple[dict[int, Calibrator], int]:
    """The calibration loop over ``samples`` (numbered from ``first_index`` in
    messages), with BLAS on one thread (:func:`single_thread_blas`); returns the
    calibrators and the number of samples run."""
    with single_thread_blas():
        return _run_loop(model, samples, calibrator, tensors, observer, first_index, progress,
                         op_observer)


def _run_loop(model: Model, samples: Iterable, calibrator: str | Calibrator, tensors: list[int],
              observer: Callable[[int, np.ndarray], None] | None, first_index: int,
              progress: _Progress | None, op_observer: Callable | None = None
              ) -> tuple[dict[int, Calibrator], int]:
    it = Interpreter(model=model)
    it.allocate_tensors()
    it.op_observer = op_observer
    cals = {i: make_calibrator(calibrator) for i in tensors}
    details = it.get_input_details()
    count = 0
    for n, sample in enumerate(samples, start=first_index):
        arrays = _sample_inputs(sample, model, n)
        for d, x in zip(details, arrays):
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                where = tuple(int(v) for v in np.argwhere(~np.isfinite(x))[0])
                what = "NaN" if np.isnan(x[where]) else "inf"
                raise CalibrationError(f"sample {n}: input {d['name']!r} contains {what} (first at "
                                       f"{where}); calibration needs finite values")
            if x.dtype != d["dtype"]:
                if x.dtype.kind == "f" and np.dtype(d["dtype"]).kind == "f":
                    x = x.astype(d["dtype"])
                else:
                    raise CalibrationError(f"sample {n}: input {d['name']!r} has dtype {x.dtype}, "
                                           f"the model expects {np.dtype(d['dtype'])}")
            if tuple(x.shape) != tuple(d["shape"]):
                if x.size == int(np.prod(d["shape"])) and _batchless(x.shape) == _batchless(d["shape"]):
                    # the same sample with or without leading batch dimensions of 1
                    # ([8, 4], [1, 8, 4] and [1, 1, 8, 4] for a [1, 8, 4] input)
                    x = x.reshape(d["shape"])
                else:
                    raise CalibrationError(f"sample {n}: input {d['name']!r} has shape {list(x.shape)}, "
                                           f"the model expects {[int(v) for v in d['shape']]}")
            it.set_tensor(d["index"], x.astype(d["dtype"]))
        it.invoke()
        for i in tensors:
            v = it.tensor(i)()
            if v is not None:
                cals[i].observe(v)
                if observer is not None:
                    observer(i, v)
        count += 1
        if progress is not None:
            progress.update(count)
    return cals, count


def _calibrate_shard(job: tuple) -> dict[int, Calibrator]:
    """Worker entry point: (model bytes, samples, calibrator, tensors, first index)."""
    model_bytes, samples, calibrator, tensors, first_index = job
    return _run(read_model(model_bytes), samples, calibrator, tensors, None, first_index)[0]


def _calibrate_parallel(model: Model, dataset: Any, calibrator: str | Calibrator, tensors: list[int],
                        workers: int) -> dict[int, Calibrator]:
    samples = list(iterate_dataset(dataset))
    if not samples:
        if tensors:
            raise CalibrationError("the representative dataset is empty")
        return {}
    k = min(workers, len(samples))
    if k == 1:
        return _run(model, samples, calibrator, tensors, None, 0)[0]
    prototype = make_calibrator(calibrator)   # a fresh instance: names and classes pickle alike
    bounds = [len(samples) * j // k for j in range(k + 1)]
    model_bytes = write_model(model)
    jobs = [(model_bytes, samples[bounds[j]:bounds[j + 1]], prototype, tensors, bounds[j]) for j in range(k)]
    progress = _Progress(len(samples), f"calibrating ({k} processes)")
    shards = []
    with multiprocessing.get_context("spawn").Pool(k) as pool:
        for j, cals in enumerate(pool.imap(_calibrate_shard, jobs)):   # results in shard order
            shards.append(cals)
            progress.update(bounds[j + 1])
    progress.close()
    merged = shards[0]
    for cals in shards[1:]:
        for i in tensors:
            merged[i].merge(cals[i])
    return merged
