"""Calibrators: statistics of float tensors -> the float range [min, max] to quantize.

Each calibrator separates recording (``observe``), computing the range
(``compute_range``) and ``reset``, and ``merge``s with another instance of its kind
so statistics gathered in several processes combine exactly (the merged state
equals the state of one calibrator that saw all the data; for histogram-based
calibrators the bins are aligned first).

Degenerate inputs: an empty array is ignored; NaN values are skipped, as the
TFLite calibrator does (``calibration_logger.cc``); +-inf values are skipped too
(they would make every scale infinite). A calibrator that saw no finite value
returns ``(0.0, 0.0)``, which :func:`quantcore.numerics.choose_qparams` turns into
its documented degenerate range. Checking user data for NaN (and naming the
input) is the quantizer's job, before calibration starts.
"""
from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np

from quantcore.errors import CalibrationError


class Calibrator:
    """Base class. Subclasses implement ``observe``, ``compute_range``, ``_merge``."""

    name: ClassVar[str] = ""

    def observe(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def compute_range(self) -> tuple[float, float]:
        raise NotImplementedError

    def reset(self) -> None:
        self.__init__(**self._config())  # type: ignore[misc]

    def _config(self) -> dict:
        return {}

    def merge(self, other: "Calibrator") -> "Calibrator":
        """Fold ``other``'s statistics into this one (in place); returns self."""
        if type(other) is not type(self) or other._config() != self._config():
            raise CalibrationError(f"cannot merge {type(other).__name__}{other._config()} into "
                                   f"{type(self).__name__}{self._config()}")
        self._merge(other)
        return self

    def _merge(self, other: "Calibrator") -> None:
        raise NotImplementedError

    def copy(self) -> "Calibrator":
        return copy.deepcopy(self)


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.size and not np.all(np.isfinite(x)):
        x = x[np.isfinite(x)]
    return x


class MinMax(Calibrator):
    """Running global min and max over every observed value: the TFLite converter's rule.

    ``min = min over all samples of min(x)``, ``max = max(...)`` in float32
    (``tflite/tools/optimize/calibration/calibration_logger.cc MinMax::Update``).
    Merging takes the min of mins and the max of maxes, which is exact.
    """

    name = "minmax"

    def __init__(self) -> None:
        self.min: float | None = None
        self.max: float | None = None
        self.count = 0

    def observe(self, x: np.ndarray) -> None:
        v = _finite(x)
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.count += 1

    def compute_range(self) -> tuple[float, float]:
        if self.min is None:
            return 0.0, 0.0
        return self.min, self.max

    def _merge(self, other: "MinMax") -> None:
        if other.min is None:
            return
        self.min = other.min if self.min is None else min(self.min, other.min)
        self.max = other.max if self.max is None else max(self.max, other.max)
        self.count += other.count


class MovingAverageMinMax(Calibrator):
    """Exponential moving average of per-sample min and max, as quantization-aware
    training keeps activation ranges (tfmot ``MovingAvgQuantize``)::

        range_min_i = min(min(x_i), 0);  range_max_i = max(max(x_i), 0)
        m <- m - (1 - decay) * (m - range_i)          (first sample: m = range_0)

    ``decay`` defaults to 0.999 (tfmot). The EMA depends on the order of samples,
    so ``merge`` is exact only in the sense of replaying: each instance keeps its
    per-sample ranges and ``compute_range`` replays them in observation order
    (instances merged in the order given).
    """

    name = "moving_average"

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise CalibrationError(f"decay must be in (0, 1), is {decay}")
        self.decay = decay
        self.samples: list[tuple[float, float]] = []

    def _config(self) -> dict:
        return {"decay": self.decay}

    def observe(self, x: np.ndarray) -> None:
        v = _finite(x)
        if v.size == 0:
            return
        self.samples.append((min(float(v.min()), 0.0), max(float(v.max()), 0.0)))

    def compute_range(self) -> tuple[float, float]:
        if not self.samples:
            return 0.0, 0.0
        lo, hi = self.samples[0]
        for smin, smax in self.samples[1:]:
            lo -= (1 - self.decay) * (lo - smin)
            hi -= (1 - self.decay) * (hi - smax)
        return lo, hi

    def _merge(self, other: "MovingAverageMinMax") -> None:
        self.samples.extend(other.samples)


CALIBRATORS: dict[str, type[Calibrator]] = {"minmax": MinMax, "moving_average": MovingAverageMinMax}


def make_calibrator(name: str | Calibrator | type, **kwargs) -> Calibrator:
    """A fresh calibrator from a name (``"minmax"``), a class, or a prototype instance."""
    if isinstance(name, Calibrator):
        return name.copy().__class__(**name._config())
    if isinstance(name, type) and issubclass(name, Calibrator):
        return name(**kwargs)
    if name not in CALIBRATORS:
        raise CalibrationError(f"unknown calibrator {name!r}; available: {', '.join(sorted(CALIBRATORS))}")
    return CALIBRATORS[name](**kwargs)
