"""FAKE_QUANT against LiteRT: random shapes and ranges (straddling 0, one-sided,
min == max, inverted, subnormal and huge), 1..20 bits, inputs on and half-way
between grid points, NaN, infinities and signed zeros. Compared bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

F32 = np.float32
KINDS = ["straddle", "straddle", "straddle", "zero_min", "zero_max", "positive", "negative",
         "equal", "zero", "inverted", "tiny", "huge"]


def _range(rng, kind):
    a = float(np.exp(rng.uniform(-8, 6)))
    return {
        "straddle": (-a * rng.uniform(0.01, 1), a * rng.uniform(0.01, 1)),
        "zero_min": (0.0, a), "zero_max": (-a, 0.0),
        "positive": (a * rng.uniform(0.01, 1), a), "negative": (-a, -a * rng.uniform(0.01, 1)),
        "equal": (a, a), "zero": (0.0, 0.0),
        "inverted": (a, -a * rng.uniform(0, 1)),
        "tiny": (-1e-41 * rng.uniform(0, 1), 1e-40), "huge": (-3e37, 3e37 * rng.uniform(0.1, 1)),
    }[kind]


def _inputs(rng, shape, mn, mx, bits):
    """Random values, grid points and exact half-way points of LiteRT's grid, specials."""
    n = int(np.prod(shape))
    span = max(abs(mn), abs(mx), 1e-30)
    x = (rng.standard_normal(n) * span * 1.3).astype(F32)
    with np.errstate(all="ignore"):
        qmax = (1 << bits) - 1
        s = F32(F32(F32(mx) - F32(mn)) / F32(qmax))
        zpf = F32(-F32(F32(mn) / s))
        zp = 0 if not zpf >= 0 else qmax if zpf > qmax else float(np.floor(zpf + 0.5))
        nmin = F32(F32(-zp) * s)
        k = rng.integers(0, qmax + 1, n)
        grid = (nmin + (k * s)).astype(F32)
        half = (nmin + ((k + 0.5) * s)).astype(F32)
    pick = rng.integers(0, 4, n)
    x = np.where(pick == 1, grid, np.where(pick == 2, half, x)).astype(F32)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, mn, mx], F32)
    m = min(n, int(rng.integers(0, len(specials) + 1)))
    x[rng.permutation(n)[:m]] = specials[:m]
    return x.reshape(shape)


def fq_model(shape, mn, mx, bits, narrow=False, dtype=np.float32) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", shape, dtype)
    y = b.add_tensor("y", shape, dtype)
    b.add_operator("FAKE_QUANT", [x], [y], min=float(mn), max=float(mx), num_bits=bits,
                   narrow_range=narrow)
    b.mark_outputs(y)
    return b.to_bytes()


def assert_bits_equal(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    nan_o, nan_t = np.isnan(ours), np.isnan(theirs)
    np.testing.assert_array_equal(nan_o, nan_t)
    a, b = ours[~nan_o].view(np.int32), theirs[~nan_t].view(np.int32)
    if not np.array_equal(a, b):
        i = int(np.argmax(a != b))
        raise AssertionError(f"{int(np.sum(a != b))} of {a.size} differ; first: quantcore "
                             f"{ours[~nan_o][i]!r}, LiteRT {theirs[~nan_t][i]!r}")


cases = st.fixed_dictionaries(dict(
    rank=st.integers(0, 4), kind=st.sampled_from(KINDS),
    bits=st.sampled_from([1, 2, 3, 4, 5, 7, 8, 8, 8, 8, 10, 12, 15, 16, 20]),
    seed=st.integers(0, 2**31)))


def _run(oracle, c, numerics):
    rng = np.random.default_rng(c["seed"])
    shape = [int(d) for d in rng.integers(1, 6, c["rank"])]
    mn, mx = (float(F32(v)) for v in _range(rng, c["kind"]))
    model = fq_model(shape, mn, mx, c["bits"])
    x = _inputs(rng, shape, mn, mx, c["bits"])
    it, theirs = assert_matches_litert(oracle, model, [x], numerics, rtol=0.0)
    assert_bits_equal(it.get_tensor(it.get_output_details()[0]["index"]), theirs.outputs[0])


@given(c=cases)
@examples(150)
def test_fake_quant_float32_vs_litert_ref(oracle, c):
    _run(oracle, c, "reference")


@given(c=cases)
@examples(25)
def test_fake_quant_float32_vs_litert_optimized_and_xnnpack(oracle, c):
    _run(oracle, c, "optimized")
    _run(oracle, c, "xnnpack")


def test_fake_quant_half_way_points_round_away_vs_litert_ref(oracle):
    """Range [-1, 1] on 8 bits: scale 2/255, zero point 127.5 -> 128; every exact
    half-way point between two codes, both signs."""
    mn, mx = -1.0, 1.0
    s = F32(F32(2.0) / F32(255))
    k = np.arange(-130, 130)
    x = (F32(-128) * s + ((k + 0.5) * s)).astype(F32)
    model = fq_model([x.size], mn, mx, 8)
    it, theirs = assert_matches_litert(oracle, model, [x], "reference", rtol=0.0)
    assert_bits_equal(it.get_tensor(it.get_output_details()[0]["index"]), theirs.outputs[0])


def test_fake_quant_narrow_range_refused(oracle):
    model = fq_model([4], -1.0, 1.0, 8, narrow=True)
    assert not oracle.run(model, [np.zeros(4, F32)], "reference").ok
    with pytest.raises(ModelFormatError, match="narrow_range"):
        run_ours(model, [np.zeros(4, F32)])


def test_fake_quant_int8_input_unsupported():
    model = fq_model([4], -1.0, 1.0, 8, dtype=np.int8)
    with pytest.raises(UnsupportedOpError):
        run_ours(model, [np.zeros(4, np.int8)])


def test_fake_quant_bad_num_bits():
    model = fq_model([4], -1.0, 1.0, 31)
    with pytest.raises(ModelFormatError, match="num_bits"):
        run_ours(model, [np.zeros(4, F32)])
