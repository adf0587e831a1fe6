"""Calibrators: documented formulas, degenerate cases, exact merging, and the quantizer
end to end (every calibrator's model runs in LiteRT bit-exact with quantcore).

Property tests use small histograms (64 bins) so that hypothesis can run many
examples; the default configurations are exercised on fixed data.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness import assert_matches_litert, examples
from quantcore import CalibrationError, InputError, quantize
from quantcore.calibration import (CALIBRATORS, MSE, Calibrator, Entropy, HistogramCalibrator, MinMax,
                                   MovingAverageMinMax, Percentile, make_calibrator)
from quantcore.numerics import choose_qparams
from quantcore.numerics import quantize as quantize_values
from quantcore.quantizer import calibrate
from quantcore.schema import read_model
from test_quantizer import dataset, float_model

# Small configurations for the property tests.
SMALL = {
    "minmax": MinMax,
    "moving_average": lambda: MovingAverageMinMax(0.9),
    "percentile": lambda: Percentile(99.0, bins=64),
    "percentile_symmetric": lambda: Percentile(90.0, bins=64, symmetric=True),
    "mse": lambda: MSE(bins=64, candidates=16),
    "entropy": lambda: Entropy(bins=64, num_quantized_bins=7),
}
ORDER_FREE = [k for k in SMALL if k != "moving_average"]   # MovingAverage replays in merge order
HIST = ["percentile", "percentile_symmetric", "mse", "entropy"]

any_float32 = st.floats(width=32)                                   # NaN, +-inf, subnormals, +-0.0
moderate = st.floats(-100, 100, width=32)
array_1d = hnp.arrays(np.float32, st.integers(0, 40), elements=st.one_of(any_float32, moderate))
batches = st.lists(array_1d, min_size=0, max_size=8)


def bits(r: tuple[float, float]) -> bytes:
    return np.asarray(r, np.float64).tobytes()


def state(c: Calibrator) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(c).items()}


def observed(make, arrays) -> Calibrator:
    c = make()
    for a in arrays:
        c.observe(a)
    return c


def finite_values(arrays) -> np.ndarray:
    v = np.concatenate([np.asarray(a, np.float32).reshape(-1) for a in arrays] or [np.zeros(0, np.float32)])
    return v[np.isfinite(v)]


# ---------------------------------------------------------------------------
# MinMax and merging
# ---------------------------------------------------------------------------
@examples(100)
@given(batches)
def test_minmax_is_numpy_min_max_of_finite_values(arrays):
    v = finite_values(arrays)
    r = observed(MinMax, arrays).compute_range()
    assert r == ((float(v.min()), float(v.max())) if v.size else (0.0, 0.0))


@pytest.mark.parametrize("kind", list(SMALL))
@examples(40)
@given(arrays=batches, data=st.data())
def test_merging_split_data_equals_one_pass(kind, arrays, data):
    make = SMALL[kind]
    one = observed(make, arrays)
    k = data.draw(st.integers(1, 5), label="shards")
    if kind in ORDER_FREE:   # any assignment of arrays to shards, any merge order
        owner = data.draw(st.lists(st.integers(0, k - 1), min_size=len(arrays), max_size=len(arrays)))
        order = data.draw(st.permutations(range(k)), label="merge order")
    else:                    # contiguous shards merged in order
        cuts = sorted(data.draw(st.lists(st.integers(0, len(arrays)), min_size=k - 1, max_size=k - 1)))
        owner = np.searchsorted(cuts, np.arange(len(arrays)), side="right").tolist()
        order = list(range(k))
    shards = [observed(make, [a for a, o in zip(arrays, owner) if o == j]) for j in range(k)]
    merged = shards[order[0]]
    for j in order[1:]:
        assert merged.merge(shards[j]) is merged
    assert bits(merged.compute_range()) == bits(one.compute_range())
    if kind in HIST:
        assert state(merged) == state(one)


@pytest.mark.parametrize("kind", ORDER_FREE)
@examples(25)
@given(arrays=batches, data=st.data())
def test_merge_tree_shape_does_not_matter(kind, arrays, data):
    make = SMALL[kind]
    parts = [observed(make, [a]) for a in arrays] or [make()]
    linear = parts[0].copy()
    for p in parts[1:]:
        linear.merge(p)
    while len(parts) > 1:   # pairwise, in a drawn order
        i = data.draw(st.integers(0, len(parts) - 2))
        parts[i:i + 2] = [parts[i].copy().merge(parts[i + 1])]
    assert bits(parts[0].compute_range()) == bits(linear.compute_range())


def test_histogram_rebinning_at_extremes_is_exact():
    """Subnormals, signed zeros, values just below a power of two, float32's max."""
    values = [np.float32(v) for v in (-2.0 ** -149, -0.0, 0.0, 2.0 ** -126, -1.0, 1 - 2.0 ** -24,
                                      0.75, -2.0 ** 127, 3.4e38, -3.4e38, 1e-30, -1e-30)]
    for make in (Percentile, lambda: Percentile(bins=8), MSE, Entropy):
        forward, backward = make(), make()
        for v in values:
            forward.observe(np.array([v]))
        for v in reversed(values):
            backward.observe(np.array([v]))
        assert state(forward) == state(backward)
        assert forward.counts.sum() == len(values)
        direct = make()
        direct.observe(np.array(values))
        assert state(direct) == state(forward)


def test_histogram_bins_values_by_floor_of_x_over_w():
    c = Percentile(bins=16)
    x = np.array([-3.5, -0.5, -0.0, 0.0, 0.49, 0.5, 3.99], np.float32)   # R = 4, w = 0.5
    c.observe(x)
    assert c.exp == 2 and c.width == 0.5
    counts, edges = c.histogram()
    assert edges[0] == -4.0 and edges[-1] == 4.0
    expected = np.zeros(16, np.int64)
    for v in x:
        expected[int(np.floor(v / 0.5)) + 8] += 1
    np.testing.assert_array_equal(counts, expected)
    assert c.zeros == 2 and (c.min, c.max) == (-3.5, float(np.float32(3.99)))
    c.observe(np.array([-4.0], np.float32))   # max|x| < R is strict: R doubles to 8
    assert c.exp == 3 and c.width == 1.0
    m = MinMax()
    m.observe(np.array([-0.0, 1.0], np.float32))
    assert math.copysign(1.0, m.compute_range()[0]) == 1.0   # -0.0 is recorded as 0.0


# ---------------------------------------------------------------------------
# reset, degenerate inputs, pickling, registry, config errors
# ---------------------------------------------------------------------------
DEFAULTS = {"minmax": MinMax, "moving_average": MovingAverageMinMax, "percentile": Percentile,
            "mse": MSE, "entropy": Entropy}


@pytest.mark.parametrize("kind", list(SMALL))
def test_reset_returns_to_the_initial_state(kind):
    fresh = SMALL[kind]()
    c = SMALL[kind]()
    for seed in range(3):
        c.observe(np.random.default_rng(seed).normal(size=50).astype(np.float32) * 10 ** seed)
    assert state(c) != state(fresh)
    c.reset()
    assert state(c) == state(fresh)
    assert c.compute_range() == (0.0, 0.0)


@pytest.mark.parametrize("kind", list(DEFAULTS))
def test_degenerate_inputs(kind):
    make = DEFAULTS[kind]
    assert make().compute_range() == (0.0, 0.0)                          # nothing observed
    empties = [np.zeros(0, np.float32), np.zeros((0, 3), np.float32)]
    assert observed(make, empties).compute_range() == (0.0, 0.0)
    assert observed(make, [np.full(7, np.nan, np.float32)]).compute_range() == (0.0, 0.0)
    assert observed(make, [np.array([np.inf, -np.inf, np.nan], np.float32)]).compute_range() == (0.0, 0.0)
    for c in (2.5, -3.0, 0.0):
        r = observed(make, [np.full(5, c, np.float32), np.full((2, 2), c, np.float32)]).compute_range()
        # MovingAverageMinMax widens every sample's range to contain 0 (its formula)
        assert r == ((min(c, 0.0), max(c, 0.0)) if kind == "moving_average" else (c, c))
    mixed = observed(make, [np.array([np.nan, 2.0, np.inf, 3.0, -np.inf], np.float32)]).compute_range()
    assert (0.0 if kind == "moving_average" else 2.0) <= mixed[0] <= mixed[1] <= 3.0
    if kind != "moving_average":
        assert mixed == (2.0, 3.0)


@pytest.mark.parametrize("kind", list(SMALL))
def test_calibrators_pickle_with_their_statistics(kind):
    c = SMALL[kind]()
    rng = np.random.default_rng(0)
    for _ in range(4):
        c.observe(rng.laplace(size=100).astype(np.float32))
    back = pickle.loads(pickle.dumps(c))
    assert type(back) is type(c) and state(back) == state(c)
    assert bits(back.compute_range()) == bits(c.compute_range())


def test_registry_and_make_calibrator():
    assert {"minmax", "moving_average", "percentile", "mse", "entropy"} <= set(CALIBRATORS)
    for name, cls in (("percentile", Percentile), ("mse", MSE), ("entropy", Entropy)):
        assert type(make_calibrator(name)) is cls
    p = make_calibrator("percentile", percentile=99.0, bins=256)
    p.observe(np.arange(10, dtype=np.float32))
    fresh = make_calibrator(p)                      # a prototype instance: same config, no data
    assert fresh._config() == p._config() and fresh.compute_range() == (0.0, 0.0)
    with pytest.raises(CalibrationError, match="available: .*entropy.*mse.*percentile"):
        make_calibrator("kl")


@pytest.mark.parametrize("bad", [lambda: Percentile(bins=1000), lambda: Percentile(bins=4),
                                 lambda: Percentile(percentile=50), lambda: Percentile(percentile=100.5),
                                 lambda: MSE(candidates=1), lambda: Entropy(bins=64, num_quantized_bins=40),
                                 lambda: MSE(bins=True)])
def test_bad_configurations_raise(bad):
    with pytest.raises(CalibrationError):
        bad()


@pytest.mark.parametrize("a, b", [
    (MinMax(), Percentile()), (Percentile(), MSE()), (MSE(), Entropy()), (Entropy(), MovingAverageMinMax()),
    (Percentile(99.0), Percentile(99.9)), (Percentile(bins=64), Percentile(bins=128)),
    (Percentile(symmetric=True), Percentile()), (MSE(candidates=16), MSE()),
    (Entropy(num_quantized_bins=127), Entropy()), (MovingAverageMinMax(0.9), MovingAverageMinMax(0.99)),
])
def test_merging_different_kinds_or_configs_raises(a, b):
    a.observe(np.ones(3, np.float32))
    b.observe(np.ones(3, np.float32))
    with pytest.raises(CalibrationError, match="cannot merge"):
        a.merge(b)
    with pytest.raises(CalibrationError, match="cannot merge"):
        b.merge(a)


# ---------------------------------------------------------------------------
# What the ranges are
# ---------------------------------------------------------------------------
@examples(60)
@given(batches)
def test_percentile_100_is_exactly_the_minmax_range(arrays):
    mm = observed(MinMax, arrays).compute_range()
    for make in (lambda: Percentile(100.0, bins=64), lambda: Percentile(100.0, bins=64, symmetric=True),
                 lambda: Percentile(100.0)):
        assert observed(make, arrays).compute_range() == mm   # tighter than "up to bin width"


@examples(60)
@given(batches, st.sampled_from([50.5, 60.0, 90.0, 99.0, 99.99]))
def test_percentile_brackets_the_order_statistic_within_one_bin(arrays, p):
    v = np.sort(finite_values(arrays).astype(np.float64))
    c = observed(lambda: Percentile(p, bins=64), arrays)
    lo, hi = c.compute_range()
    if v.size == 0:
        return
    k = math.ceil(p / 100 * v.size)             # at least k values lie at or below hi
    w = c.width if c.exp is not None else 0.0
    assert v[k - 1] <= hi <= v[k - 1] + w
    assert v[v.size - k] - w <= lo <= v[v.size - k]
    assert np.count_nonzero(v > hi) <= v.size - p / 100 * v.size + 1e-9
    assert np.count_nonzero(v < lo) <= v.size - p / 100 * v.size + 1e-9


@pytest.mark.parametrize("kind", HIST)
@examples(40)
@given(arrays=batches)
def test_histogram_ranges_lie_within_the_minmax_range(kind, arrays):
    lo, hi = observed(SMALL[kind], arrays).compute_range()
    mlo, mhi = observed(MinMax, arrays).compute_range()
    assert mlo <= lo <= hi <= mhi


def _laplace_with_outliers(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).laplace(0.0, 1.0, n).astype(np.float32)
    x[:2] = [1000.0, -1000.0]   # 1 in 500 000 on each side
    return x


@pytest.mark.parametrize("make, limit", [(MSE, 0.35), (Entropy, 0.3), (Percentile, 0.05),
                                         (lambda: Percentile(symmetric=True), 0.05)])
def test_heavy_tails_shrink_the_range(make, limit):
    x = _laplace_with_outliers()
    lo, hi = observed(make, np.split(x, 10)).compute_range()
    assert (lo, hi) != (-1000.0, 1000.0)
    assert -1000.0 <= lo < 0 < hi <= 1000.0
    assert hi - lo < limit * 2000.0, (lo, hi)


def test_mse_on_a_laplace_lands_near_the_aciq_optimum():
    """Banner et al. 2019: for 8 bits the MSE-optimal clip of Laplace(b) is ~9.89 b."""
    x = np.random.default_rng(1).laplace(0.0, 1.0, 1_000_000).astype(np.float32)
    lo, hi = observed(MSE, [x]).compute_range()
    assert 8.5 < -lo < 11.5 and 8.5 < hi < 11.5, (lo, hi)
    assert hi - lo < x.max() - x.min()


def test_mse_expected_error_matches_quantizing_the_data():
    rng = np.random.default_rng(2)
    for x in (rng.laplace(0, 1, 200_000).astype(np.float32),
              np.maximum(rng.normal(1, 1, 200_000), 0).astype(np.float32)):   # ReLU: exact zeros
        c = observed(MSE, [x])
        for lo, hi in ((float(x.min()), float(x.max())), (-4.0, 4.0), (0.0, 3.0), (-2.0, 1.0)):
            qp = choose_qparams(lo, hi, np.int8)
            q = quantize_values(x, qp.scale, qp.zero_point, np.int8).astype(np.float64)
            actual = np.sum((x - (q - qp.zero_point[0]) * qp.scale[0]) ** 2)
            predicted = c.expected_error(lo, hi)[0] * math.ldexp(1.0, c.exp) ** 2
            assert abs(predicted / actual - 1) < 0.01, (lo, hi, predicted, actual)
        best = c.expected_error(*c.compute_range())[0]
        assert best <= c.expected_error(float(x.min()), float(x.max()))[0]


def test_entropy_keeps_uniform_data_nearly_unclipped():
    x = np.random.default_rng(3).uniform(-1, 1, 100_000).astype(np.float32)
    lo, hi = observed(Entropy, [x]).compute_range()
    assert lo < -0.9 and hi > 0.9


# ---------------------------------------------------------------------------
# The quantizer end to end, and calibration in several processes
# ---------------------------------------------------------------------------
def _input(model: bytes, seed: int = 2) -> list[np.ndarray]:
    m = read_model(model)
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    return [np.random.default_rng(seed).uniform(-1, 1, t.shape).astype(np.float32)]


def _activation_scales(model: bytes) -> list[float]:
    sg = read_model(model).subgraphs[0]
    return [float(t.quantization.scale[0]) for t in sg.tensors
            if t.quantization is not None and not t.quantization.is_empty() and t.type_name == "INT8"]


@pytest.fixture(scope="module")
def minmax_model() -> bytes:
    return quantize(float_model(), representative_dataset=dataset(16), calibrator="minmax")


@pytest.mark.parametrize("calibrator", ["minmax", "moving_average", "percentile", "mse", "entropy",
                                        Percentile(99.0)], ids=str)
def test_quantize_with_each_calibrator_runs_in_litert(oracle, minmax_model, calibrator):
    q = quantize(float_model(), representative_dataset=dataset(16), calibrator=calibrator)
    assert_matches_litert(oracle, q, _input(q), "reference", rtol=1e-4)
    if calibrator in ("mse", "entropy", "moving_average") or isinstance(calibrator, Calibrator):
        assert _activation_scales(q) != _activation_scales(minmax_model)   # the calibrator was used


@pytest.mark.parametrize("name", ["minmax", "moving_average", "percentile", "mse", "entropy"])
def test_two_processes_give_the_single_process_result(name):
    m = read_model(float_model())
    one = calibrate(m, dataset(5), name)
    two = calibrate(m, dataset(5), name, workers=2)
    assert one.keys() == two.keys()
    for t in one:
        assert bits(two[t].compute_range()) == bits(one[t].compute_range()), t
        if isinstance(one[t], HistogramCalibrator):
            assert state(two[t]) == state(one[t])


def test_worker_errors_name_the_global_sample_index():
    data = [np.random.default_rng(i).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32) for i in range(4)]
    data[3][0, 1, 2, 0] = np.nan
    with pytest.raises(CalibrationError, match=r"sample 3: input 'input' contains NaN"):
        calibrate(read_model(float_model()), [[x] for x in data], "minmax", workers=2)


def test_worker_arguments():
    m = read_model(float_model())
    with pytest.raises(InputError, match="workers"):
        calibrate(m, dataset(2), workers=0)
    with pytest.raises(InputError, match="observer"):
        calibrate(m, dataset(2), workers=2, observer=lambda i, v: None)
    with pytest.raises(CalibrationError, match="empty"):
        calibrate(m, [], workers=2)
    one = calibrate(m, dataset(1), "percentile", workers=4)   # fewer samples than workers: in process
    assert bits(one[m.subgraphs[0].inputs[0]].compute_range()) == \
        bits(calibrate(m, dataset(1), "percentile")[m.subgraphs[0].inputs[0]].compute_range())


def test_array_samples_with_or_without_batch_dimension_give_the_same_model():
    """An array dataset indexes samples on axis 0; each sample may carry the model's
    batch dimension of 1 or not ([16, 1, 8, 4] and [16, 8, 4] for a [1, 8, 4] input).
    Any other shape is a CalibrationError naming both shapes as plain integers."""
    from pathlib import Path

    import quantcore
    from quantcore.errors import CalibrationError

    d = Path(__file__).parent / "fixtures" / "recurrent"
    calib = np.load(d / "lstm_tfkeras_calib.npy")          # [16, 1, 8, 4]
    model = d / "lstm_tfkeras_float32.tflite"
    assert quantcore.quantize(model, representative_dataset=calib) == \
        quantcore.quantize(model, representative_dataset=calib.reshape(16, 8, 4))
    with pytest.raises(CalibrationError, match=r"has shape \[1, 4, 8\], the model expects \[1, 8, 4\]"):
        quantcore.quantize(model, representative_dataset=calib.reshape(16, 4, 8))
