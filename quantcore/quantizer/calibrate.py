"""Running a float model over representative data and recording tensor statistics."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from quantcore.calibration import Calibrator, make_calibrator
from quantcore.errors import CalibrationError
from quantcore.runtime import Interpreter
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
              observer: Callable[[int, np.ndarray], None] | None = None) -> dict[int, Calibrator]:
    """Run subgraph 0 of a float model over ``dataset``; one calibrator per float tensor.

    Every non-constant float32 tensor of subgraph 0 is observed (or only ``tensors``).
    Input samples are checked first: a NaN raises ``CalibrationError`` naming the
    input and the sample; a shape or dtype that does not fit raises it too.
    """
    it = Interpreter(model=model)
    it.allocate_tensors()
    sg = model.subgraphs[0]
    if tensors is None:
        tensors = [i for i, t in enumerate(sg.tensors)
                   if t.type == TensorType.FLOAT32 and model.tensor_data(0, i) is None]
    tensors = list(tensors)
    cals = {i: make_calibrator(calibrator) for i in tensors}
    details = it.get_input_details()
    try:
        total = len(dataset) if hasattr(dataset, "__len__") and not callable(dataset) else None
    except TypeError:
        total = None
    progress = _Progress(total, "calibrating")
    count = 0
    for n, sample in enumerate(iterate_dataset(dataset)):
        arrays = _sample_inputs(sample, model, n)
        for d, x in zip(details, arrays):
            if x.dtype.kind == "f" and np.isnan(x).any():
                where = tuple(int(v) for v in np.argwhere(np.isnan(x))[0])
                raise CalibrationError(f"sample {n}: input {d['name']!r} contains NaN (first at {where})")
            if x.dtype != d["dtype"]:
                if x.dtype.kind == "f" and np.dtype(d["dtype"]).kind == "f":
                    x = x.astype(d["dtype"])
                else:
                    raise CalibrationError(f"sample {n}: input {d['name']!r} has dtype {x.dtype}, "
                                           f"the model expects {np.dtype(d['dtype'])}")
            if tuple(x.shape) != tuple(d["shape"]):
                if x.size == int(np.prod(d["shape"])) and x.shape == tuple(d["shape"][1:]):
                    x = x.reshape(d["shape"])
                else:
                    raise CalibrationError(f"sample {n}: input {d['name']!r} has shape {list(x.shape)}, "
                                           f"the model expects {list(d['shape'])}")
            it.set_tensor(d["index"], x.astype(d["dtype"]))
        it.invoke()
        for i in tensors:
            v = it.tensor(i)()
            if v is not None:
                cals[i].observe(v)
                if observer is not None:
                    observer(i, v)
        count += 1
        progress.update(count)
    progress.close()
    if count == 0 and tensors:
        raise CalibrationError("the representative dataset is empty")
    return cals
