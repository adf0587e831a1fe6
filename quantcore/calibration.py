"""Calibrators: statistics of float tensors -> the float range [min, max] to quantize.

Each calibrator separates recording (``observe``), computing the range
(``compute_range``) and ``reset``, and ``merge``s with another instance of its kind
so statistics gathered in several processes combine exactly (the merged state
equals the state of one calibrator that saw all the data; for histogram-based
calibrators the bins are aligned first).

Calibrators: :class:`MinMax` (the converter's rule), :class:`MovingAverageMinMax`
(QAT's), and three that clip outliers from a histogram -- :class:`Percentile`,
:class:`MSE`, :class:`Entropy` -- sharing the dyadic histogram of
:class:`HistogramCalibrator`, whose merge is exact (integer counts on aligned bins),
so their ranges do not depend on how the samples were split across processes.

Degenerate inputs: an empty array is ignored; NaN values are skipped, as the
TFLite calibrator does (``calibration_logger.cc``); +-inf values are skipped too
(they would make every scale infinite). A calibrator that saw no finite value
returns ``(0.0, 0.0)``, which :func:`quantcore.numerics.choose_qparams` turns into
its documented degenerate range. Checking user data for NaN (and naming the
input) is the quantizer's job, before calibration starts.
"""
from __future__ import annotations

import copy
import math
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


def _extremes(v: np.ndarray) -> tuple[float, float]:
    """(min, max) of a non-empty array with -0.0 read as 0.0, so that min/max
    merging does not depend on the order in which 0.0 and -0.0 were seen."""
    return float(v.min()) + 0.0, float(v.max()) + 0.0


class MinMax(Calibrator):
    """Running global min and max over every observed value: the TFLite converter's rule.

    ``min = min over all samples of min(x)``, ``max = max(...)`` in float32
    (``tflite/tools/optimize/calibration/calibration_logger.cc MinMax::Update``).
    Merging takes the min of mins and the max of maxes, which is exact (-0.0 is
    recorded as 0.0, so even the sign of a zero does not depend on the order).
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
        lo, hi = _extremes(v)
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


# ---------------------------------------------------------------------------
# Histogram calibrators
# ---------------------------------------------------------------------------
_EXP_MIN = -126  # the smallest histogram half-range is 2**-126 (float32's smallest normal)


class HistogramCalibrator(Calibrator):
    """Base of the histogram calibrators: a dyadic histogram whose merge is exact.

    State: ``counts`` (int64, ``bins`` entries) over ``[-R, R)`` with ``R = 2**exp``,
    the exact finite ``min`` and ``max``, and ``zeros``, the number of values exactly
    0 (ReLU outputs; 0 is always exactly representable, :class:`MSE` uses it). With
    the bin width ``w = 2R / bins``, value ``x`` lands in bin
    ``i = floor(x / w) + bins/2`` (bin ``i`` covers
    ``[(i - bins/2) w, (i + 1 - bins/2) w)``; 0 is the edge between bins
    ``bins/2 - 1`` and ``bins/2``).

    Growth by doubling: ``exp`` is the smallest integer >= -126 with
    ``max|x| < 2**exp`` over everything observed, so it depends only on the data,
    not on the order it came in. When new data needs a larger ``R``, the histogram is
    re-binned by ``k`` doublings at once: old bin ``i`` moves to
    ``((i - bins/2) >> k) + bins/2``, since ``floor(floor(x / w) / 2**k) =
    floor(x / (2**k w))``. ``bins`` is a power of two, so ``w`` is a power of two
    and ``x / w`` is exact in float64: a value binned at a small ``R`` and re-binned
    lands where it would have landed directly.

    Exact merge: re-bin the instance with the smaller ``R`` to the larger one and
    add the integer counts; take the min of mins and the max of maxes. The merged
    state equals the state of one instance that saw all the data, in any sharding
    and any merge order, and so does every range computed from it (bitwise).

    Resolution: the data span covers between ``bins/4`` (one-signed data) and
    ``bins`` bins -- coarser than a histogram stretched over exactly ``[min, max]``
    (PyTorch's ``HistogramObserver``), the price of exact merging.

    Degenerate cases: ranges are computed from the histogram by the subclass
    (``_range``) and then clipped to the exact ``[min, max]``, so they lie within
    the :class:`MinMax` range. No finite value observed (nothing, empty arrays,
    all NaN/inf): ``(0.0, 0.0)``. Constant tensor ``c``: ``(c, c)``.
    """

    def __init__(self, bins: int = 2048) -> None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 8 or bins & (bins - 1):
            raise CalibrationError(f"bins must be a power of two >= 8, is {bins!r}")
        self.bins = int(bins)
        self.counts = np.zeros(self.bins, np.int64)
        self.exp: int | None = None
        self.min: float | None = None
        self.max: float | None = None
        self.zeros = 0

    def _config(self) -> dict:
        return {"bins": self.bins}

    # -- the histogram ---------------------------------------------------------
    @property
    def width(self) -> float:
        """Bin width ``w = 2**(exp + 1) / bins`` (a power of two)."""
        if self.exp is None:
            raise CalibrationError("the histogram is empty")
        return math.ldexp(1.0, self.exp + 1 - (self.bins.bit_length() - 1))

    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges ``(i - bins/2) * w`` (exact)."""
        return (np.arange(self.bins + 1, dtype=np.float64) - self.bins // 2) * self.width

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges), as ``np.histogram`` returns them."""
        return self.counts.copy(), self.edges()

    def _rebinned(self, exp: int) -> np.ndarray:
        """The counts re-binned to half-range ``2**exp`` (>= the current one)."""
        k = min(exp - self.exp, 62)
        if k == 0:
            return self.counts.copy()
        half = self.bins // 2
        dst = ((np.arange(self.bins, dtype=np.int64) - half) >> k) + half
        out = np.zeros(self.bins, np.int64)
        np.add.at(out, dst, self.counts)
        return out

    def observe(self, x: np.ndarray) -> None:
        v = _finite(x)
        if v.size == 0:
            return
        lo, hi = _extremes(v)
        a = max(-lo, hi)
        exp = max(_EXP_MIN, math.frexp(a)[1]) if a > 0 else _EXP_MIN   # a < 2**exp
        if self.exp is None:
            self.exp = exp
        elif exp > self.exp:
            self.counts, self.exp = self._rebinned(exp), exp
        shift = (self.bins.bit_length() - 1) - self.exp - 1              # x * 2**shift = x / w
        idx = np.floor(np.ldexp(v.astype(np.float64), shift)).astype(np.int64) + self.bins // 2
        self.counts += np.bincount(idx, minlength=self.bins)
        self.zeros += int(np.count_nonzero(v == 0))
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def _merge(self, other: "HistogramCalibrator") -> None:
        if other.exp is None:
            return
        if self.exp is None:
            self.counts, self.exp = other.counts.copy(), other.exp
            self.min, self.max, self.zeros = other.min, other.max, other.zeros
            return
        exp = max(self.exp, other.exp)
        self.counts = self._rebinned(exp) + other._rebinned(exp)
        self.exp = exp
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zeros += other.zeros

    # -- the range ---------------------------------------------------------------
    def compute_range(self) -> tuple[float, float]:
        if self.min is None:
            return 0.0, 0.0
        if self.min == self.max:
            return self.min, self.max
        lo, hi = self._range()
        lo = min(max(float(lo), self.min), self.max)
        hi = max(min(float(hi), self.max), lo)
        return lo, hi

    def _range(self) -> tuple[float, float]:
        raise NotImplementedError

    def _span(self) -> tuple[int, int]:
        """First and last non-empty bin."""
        nz = np.flatnonzero(self.counts)
        return int(nz[0]), int(nz[-1])


class Percentile(HistogramCalibrator):
    """Clip the tails: the range holding ``percentile`` % of the observed values.

    With ``N`` finite values observed, ``c_j`` the cumulative count up to bin ``j``
    and ``p = percentile / 100``:

    * asymmetric (default), each tail separately: ``max`` is the right edge of the
      first bin with ``c_j >= p N``; ``min`` is the left edge of the last bin ``j``
      holding ``N - c_{j-1} >= p N`` values at or above it. So at most
      ``(1 - p) N`` values lie above ``max`` and at most ``(1 - p) N`` below ``min``.
    * ``symmetric=True``, percentile of ``|x|``: ``T`` is the right edge of the
      first bin of the folded ``|x|`` histogram whose cumulative count reaches
      ``p N``; the range is ``[-T, T]``.

    Edges are rounded outward to whole bins (never interpolated), and the result is
    clipped to the exact ``[min, max]`` observed, so ``Percentile(100)`` gives
    exactly the :class:`MinMax` range. ``percentile`` is in ``(50, 100]``, where the
    two cuts cannot cross (``c_{lo-1} <= (1 - p) N < p N <= c_hi``).
    Degenerate cases and the exact merge: see :class:`HistogramCalibrator`.
    """

    name = "percentile"

    def __init__(self, percentile: float = 99.99, bins: int = 2048, symmetric: bool = False) -> None:
        if not 50.0 < float(percentile) <= 100.0:
            raise CalibrationError(f"percentile must be in (50, 100], is {percentile}")
        super().__init__(bins)
        self.percentile = float(percentile)
        self.symmetric = bool(symmetric)

    def _config(self) -> dict:
        return {"percentile": self.percentile, "bins": self.bins, "symmetric": self.symmetric}

    def _range(self) -> tuple[float, float]:
        half, w = self.bins // 2, self.width
        c = np.cumsum(self.counts)
        n = int(c[-1])
        need = self.percentile / 100.0 * n
        if self.symmetric:
            mag = self.counts[half:] + self.counts[half - 1::-1]   # |x| bin j: [j w, (j+1) w]
            t = (int(np.argmax(np.cumsum(mag) >= need)) + 1) * w
            return -t, t
        hi_bin = int(np.argmax(c >= need))
        at_or_above = n - np.concatenate(([0], c[:-1]))
        lo_bin = int(np.flatnonzero(at_or_above >= need)[-1])
        return (lo_bin - half) * w, (hi_bin + 1 - half) * w


def _sq_error_integral(x: np.ndarray, lo_q: np.ndarray, hi_q: np.ndarray, s: np.ndarray,
                       levels: int) -> np.ndarray:
    """``F(x) = integral from lo_q to x of e(t)^2 dt`` for the quantizer with grid
    ``lo_q + k s`` (``k = 0..levels``) that clamps to ``[lo_q, hi_q]``; ``e(t) = t - Q(t)``.

    Inside the grid, with ``u = (x - lo_q) / s``: ``F = s^3 (floor(u) / 12 + h(frac u))``,
    ``h(f) = f^3 / 3`` for ``f <= 1/2`` and ``1/12 - (1 - f)^3 / 3`` above (the
    rounding error is a sawtooth); outside, the clamp error ``(x - edge)^3 / 3`` adds on.
    """
    u = np.clip((x - lo_q) / s, 0.0, levels)
    whole = np.floor(u)
    f = u - whole
    h = np.where(f <= 0.5, f ** 3 / 3.0, 1.0 / 12.0 - (1.0 - f) ** 3 / 3.0)
    inside = s ** 3 * (whole / 12.0 + h)
    below = (x - lo_q) ** 3 / 3.0
    above = s ** 3 * (levels / 12.0) + (x - hi_q) ** 3 / 3.0
    return np.where(x < lo_q, below, np.where(x > hi_q, above, inside))


class MSE(HistogramCalibrator):
    """The range minimizing the expected squared quantization error over the histogram.

    For a candidate range ``[lo, hi]`` the int8 parameters are exactly those the
    quantizer will use, ``s, z = choose_qparams(lo, hi, int8)`` (asymmetric, 0
    exactly representable, eq. 3-4), giving the grid ``(q - z) s``, ``q`` in
    ``[-128, 127]``, between ``L = (-128 - z) s`` and ``H = (127 - z) s``. With the
    values of each bin taken as uniform on the bin (clipped to the observed
    ``[min, max]``), except exact zeros, which are quantized without error, the
    expected error is::

        E(lo, hi) = sum_bins count_b * mean over x in bin b of (x - clamp(L + s round((x - L)/s), L, H))^2

    computed in closed form (:func:`_sq_error_integral`: rounding sawtooth inside
    ``[L, H]``, clamp error outside). Candidates are bin edges (clipped to
    ``[min, max]``) searched in three passes of at most ``candidates`` points:
    (1) shrinking both ends by the same number of bins, ``[e_{f+k}, e_{l+1-k}]``
    for ``f``, ``l`` the first and last non-empty bins; (2) the low end alone with
    the high end from (1); (3) the high end alone. ``k = 0`` is the :class:`MinMax`
    range, so the result is never worse than it by this measure. Ties go to the
    first candidate. Errors are computed in units of ``R`` (an exact power-of-two
    scaling) so float32-sized values do not overflow the cubes.

    What it clips: cutting ``k`` values at distance ``D`` costs about ``k D^2``; the
    full range costs about ``N s^2 / 12`` with ``s = 2D / 255``, so a few huge
    outliers are clipped only when rarer than about 1 in 200 000 values. On a
    Laplace(b) sample the optimum is near ``+-9.9 b`` (Banner et al. 2019, ACIQ).

    Degenerate cases and the exact merge: see :class:`HistogramCalibrator`; the
    search is a deterministic function of the merged histogram.
    """

    name = "mse"
    _QMIN, _QMAX = -128, 127

    def __init__(self, bins: int = 2048, candidates: int = 128) -> None:
        if int(candidates) < 2:
            raise CalibrationError(f"candidates must be >= 2, is {candidates}")
        super().__init__(bins)
        self.candidates = int(candidates)

    def _config(self) -> dict:
        return {"bins": self.bins, "candidates": self.candidates}

    def expected_error(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """``E(lo, hi)`` (above) for arrays of candidate ranges, in units of ``R**2``."""
        from quantcore.numerics import choose_qparams
        lo = np.atleast_1d(np.asarray(lo, np.float64))
        hi = np.atleast_1d(np.asarray(hi, np.float64))
        qp = choose_qparams(lo, hi, np.int8)
        r = math.ldexp(1.0, self.exp)
        s = (qp.scale.astype(np.float64) / r)[:, None]
        z = qp.zero_point.astype(np.float64)[:, None]
        lo_q, hi_q = (self._QMIN - z) * s, (self._QMAX - z) * s
        levels = self._QMAX - self._QMIN
        nz = np.flatnonzero(self.counts)
        e = self.edges()
        a = np.maximum(e[nz], self.min) / r
        b = np.minimum(e[nz + 1], self.max) / r
        cnt = self.counts[nz].astype(np.float64)
        cnt[nz == self.bins // 2] -= self.zeros   # exact zeros: no error
        with np.errstate(over="ignore", invalid="ignore"):
            length = b - a
            integral = (_sq_error_integral(b, lo_q, hi_q, s, levels)
                        - _sq_error_integral(a, lo_q, hi_q, s, levels))
            point = a - np.clip(lo_q + s * np.floor((a - lo_q) / s + 0.5), lo_q, hi_q)
            mean = np.where(length > 0, integral / np.where(length > 0, length, 1.0), point ** 2)
            err = (mean * cnt).sum(axis=1)
        return np.where(np.isfinite(err), err, np.inf)

    def _range(self) -> tuple[float, float]:
        f, l = self._span()
        e = self.edges()

        def best(a_idx: np.ndarray, b_idx: np.ndarray) -> tuple[int, int]:
            lo = np.maximum(e[a_idx], self.min)
            hi = np.minimum(e[b_idx], self.max)
            j = int(np.argmin(self.expected_error(lo, hi)))
            return int(a_idx[j]), int(b_idx[j])

        def grid(start: int, stop: int, keep: int) -> np.ndarray:
            g = np.round(np.linspace(start, stop, self.candidates)).astype(np.int64)
            return np.unique(np.concatenate([g, [keep]]))

        ks = np.unique(np.round(np.linspace(0, (l - f) // 2, self.candidates)).astype(np.int64))
        a, b = best(f + ks, l + 1 - ks)
        lows = grid(f, b - 1, a)
        a, b = best(lows, np.full(lows.shape, b))
        highs = grid(a + 1, l + 1, b)
        a, b = best(np.full(highs.shape, a), highs)
        return max(e[a], self.min), min(e[b], self.max)


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """MXNet's ``_smooth_distribution``: zeros become ``eps``, taken evenly from the
    non-zero entries. None if that is impossible (all zero, or an entry would drop <= 0)."""
    zeros = p == 0
    n_zeros = int(zeros.sum())
    n_nonzeros = p.size - n_zeros
    if n_nonzeros == 0:
        return None
    out = p + np.where(zeros, eps, -eps * n_zeros / n_nonzeros)
    return None if np.any(out <= 0) else out


class Entropy(HistogramCalibrator):
    """KL-divergence calibration: the clipping threshold whose quantized distribution
    loses the least information (TensorRT's entropy calibration, Migacz 2017, "8-bit
    Inference with TensorRT"), following MXNet's ``_get_optimal_threshold``
    (``contrib/quantization.py``), which TVM and ONNX Runtime copied.

    Candidate windows of the histogram are symmetric around 0: ``i`` bins on each
    side (``[-i w, i w)``) for signed data; for data of one sign, only that side
    (``[0, i w)`` or ``[-i w, 0)``), as TensorRT does on ``|x|`` -- the asymmetric
    quantizer then spends all its levels on that side. ``i`` runs from the smallest
    window of ``num_quantized_bins`` bins to the window holding all the data. For
    each window with ``n`` bins:

    1. ``P`` = the window's counts, with the counts left of it added to its first
       bin and right of it to its last (clipping moves outliers to the edge);
    2. ``Q``: the window's counts *without* the outliers merged into
       ``num_quantized_bins`` groups of ``n // num_quantized_bins`` bins (the last
       group takes the remainder), each group's sum spread evenly over the bins
       where ``P`` is non-zero, and 0 where ``P`` is 0 (both quirks as in TensorRT
       and MXNet);
    3. ``P`` and ``Q`` are smoothed (zeros become 1e-4, taken from non-zeros;
       a ``Q`` that cannot be smoothed scores +inf), normalized, and scored by
       ``KL(P || Q) = sum P log(P / Q)``.

    The window with the smallest divergence (first on ties) gives the threshold
    ``T = i w`` and the range ``[max(min, -T), min(max, T)]``. If the data spans
    fewer bins than the smallest window, the range is ``[min, max]``.

    Degenerate cases and the exact merge: see :class:`HistogramCalibrator`; the
    search is a deterministic function of the merged histogram.
    """

    name = "entropy"

    def __init__(self, bins: int = 2048, num_quantized_bins: int = 255) -> None:
        super().__init__(bins)
        if not 2 <= int(num_quantized_bins) <= self.bins // 2:
            raise CalibrationError(f"num_quantized_bins must be in [2, bins / 2 = {self.bins // 2}], "
                                   f"is {num_quantized_bins}")
        self.num_quantized_bins = int(num_quantized_bins)

    def _config(self) -> dict:
        return {"bins": self.bins, "num_quantized_bins": self.num_quantized_bins}

    def divergence(self, start: int, stop: int) -> float:
        """``KL(P || Q)`` (above) for the window of bins ``[start, stop)``."""
        nq = self.num_quantized_bins
        hist = self.counts.astype(np.float64)
        sliced = hist[start:stop]
        n = sliced.size
        p = sliced.copy()
        p[0] += hist[:start].sum()
        p[-1] += hist[stop:].sum()
        nonzero = p != 0
        m = n // nq
        full = nq * m
        merged = sliced[:full].reshape(nq, m).sum(axis=1)
        merged[-1] += sliced[full:].sum()
        norm = nonzero[:full].reshape(nq, m).sum(axis=1).astype(np.float64)
        norm[-1] += nonzero[full:].sum()
        per_bin = np.divide(merged, norm, out=np.zeros(nq), where=norm > 0)
        q = np.concatenate([np.repeat(per_bin, m), np.full(n - full, per_bin[-1])])
        q[~nonzero] = 0.0
        p, q = _smooth(p), _smooth(q)
        if p is None or q is None:
            return math.inf
        p /= p.sum()
        q /= q.sum()
        return float(np.sum(p * np.log(p / q)))

    def _range(self) -> tuple[float, float]:
        half, w = self.bins // 2, self.width
        f, l = self._span()
        neg, pos = f < half, l >= half
        i_max = max(half - f if neg else 0, l + 1 - half if pos else 0)
        i_min = -(-self.num_quantized_bins // (int(neg) + int(pos)))
        if i_max <= i_min:
            return self.min, self.max
        best_i, best_kl = i_max, math.inf
        for i in range(i_min, i_max + 1):
            kl = self.divergence(half - i if neg else half, half + i if pos else half)
            if kl < best_kl:
                best_i, best_kl = i, kl
        t = best_i * w
        return (-t if neg else self.min), (t if pos else self.max)


CALIBRATORS: dict[str, type[Calibrator]] = {
    "minmax": MinMax, "moving_average": MovingAverageMinMax,
    "percentile": Percentile, "mse": MSE, "entropy": Entropy,
}


def make_calibrator(name: str | Calibrator | type, **kwargs) -> Calibrator:
    """A fresh calibrator from a name (``"minmax"``), a class, or a prototype instance."""
    if isinstance(name, Calibrator):
        return name.copy().__class__(**name._config())
    if isinstance(name, type) and issubclass(name, Calibrator):
        return name(**kwargs)
    if name not in CALIBRATORS:
        raise CalibrationError(f"unknown calibrator {name!r}; available: {', '.join(sorted(CALIBRATORS))}")
    return CALIBRATORS[name](**kwargs)
