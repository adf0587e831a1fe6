"""MEAN, SUM, REDUCE_MAX, REDUCE_MIN and REDUCE_PROD against LiteRT BUILTIN_REF:
random ranks, axes (negative, duplicate, empty, all), keep_dims, every type each
kernel supports, log-uniform scales, zero points over the full range, power-of-two
reduction sizes for rounding ties, run-time axes, NaN/inf, and bad models."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, NumericsPathError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

DTYPES = {"float": np.float32, "int32": np.int32, "int64": np.int64, "bool": np.bool_,
          "int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def out_shape(shape, axes, keep_dims):
    rank = len(shape)
    if rank == 0:
        return []
    red = {a + rank if a < 0 else a for a in axes}
    if keep_dims:
        return [1 if i in red else d for i, d in enumerate(shape)]
    return [d for i, d in enumerate(shape) if i not in red]


def reduce_model(op, kind, shape, axes, keep_dims, q_in=None, q_out=None, const_axis=True):
    b = ModelBuilder()
    dtype = DTYPES[kind]
    kin = {} if q_in is None else dict(scale=q_in[0], zero_point=q_in[1])
    kout = {} if q_out is None else dict(scale=q_out[0], zero_point=q_out[1])
    x = b.add_input("x", shape, dtype, **kin)
    axis = np.array(axes, np.int32)
    ax = b.add_constant("axis", axis) if const_axis else b.add_input("axis", axis.shape, np.int32)
    y = b.add_tensor("y", out_shape(shape, axes, keep_dims), dtype, **kout)
    b.add_operator(op, [x, ax], [y], keep_dims=keep_dims)
    b.mark_outputs(y)
    return b.to_bytes()


@st.composite
def reductions(draw, max_rank=4, pow2=False):
    """(shape, axes): axes may be negative, repeated, empty or cover every dimension."""
    rank = draw(st.integers(1, max_rank))
    dim = st.sampled_from([1, 2, 4, 8]) if pow2 else st.integers(1, 6)
    shape = [draw(dim) for _ in range(rank)]
    picked = draw(st.lists(st.integers(0, rank - 1), min_size=0, max_size=rank + 1))
    if pow2 and not picked:
        picked = [rank - 1]
    axes = [a - rank if draw(st.booleans()) else a for a in picked]
    return shape, axes


cases = st.fixed_dictionaries(dict(red=reductions(), keep=st.booleans(), seed=st.integers(0, 2**31)))
tie_cases = st.fixed_dictionaries(dict(red=reductions(pow2=True), keep=st.booleans(),
                                       seed=st.integers(0, 2**31)))


def qparams(rng, kind, *, like=None, wide=False):
    """(scale, zero point) of a quantized kind; ``like`` copies the input's parameters."""
    if like is not None:
        return like
    s = random_scale(rng, 1e-3, 1.0) if wide else random_scale(rng, 1e-2, 0.2)
    if kind == "int16":
        return s, 0
    lo, hi = (-128, 127) if kind == "int8" else (0, 255)
    return s, int(rng.integers(lo, hi + 1))


def float_input(rng, shape, op):
    x = rng.uniform(-1, 1, size=shape) * (1.5 if op == "REDUCE_PROD" else rng.uniform(0.5, 20))
    return x.astype(np.float32)


def _run(oracle, op, kind, c, *, quantized=None, same_params=False, values=None, const_axis=True):
    shape, axes = c["red"]
    rng = np.random.default_rng(c["seed"])
    quantized = kind in ("int8", "uint8", "int16") if quantized is None else quantized
    q_in = q_out = None
    if quantized:
        q_in = qparams(rng, kind, wide=True)
        q_out = q_in if same_params else qparams(rng, kind, wide=True)
    model = reduce_model(op, kind, shape, axes, c["keep"], q_in, q_out, const_axis)
    if values is not None:
        x = rng.choice(np.asarray(values), size=shape).astype(DTYPES[kind])
    elif kind == "float":
        x = float_input(rng, shape, op)
    else:
        x = random_input(rng, shape, DTYPES[kind])
    inputs = [x] if const_axis else [x, np.array(axes, np.int32)]
    assert_matches_litert(oracle, model, inputs, "reference")


# -- MEAN ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int32", "int64"])
@examples(25)
@given(c=cases)
def test_mean_unquantized_vs_litert_ref(oracle, kind, c):
    _run(oracle, "MEAN", kind, c)


@pytest.mark.parametrize("kind", ["int8", "uint8", "int16"])
@examples(80)
@given(c=cases)
def test_mean_quantized_vs_litert_ref(oracle, kind, c):
    _run(oracle, "MEAN", kind, c)


@pytest.mark.parametrize("kind", ["int8", "uint8", "int16"])
@examples(60)
@given(c=tie_cases, same=st.booleans())
def test_mean_quantized_power_of_two_ties_vs_litert_ref(oracle, kind, c, same):
    """N = 2^k: sum - zp*N = (j + 1/2) * N hits exact ties of the rounding (same params:
    multiplier 2^30 * 2^-k exactly, so every tie reaches the final rounding)."""
    _run(oracle, "MEAN", kind, c, same_params=same)


def test_mean_int8_constructed_ties_vs_litert_ref(oracle):
    """Rows whose exact mean is k + 1/2 (positive and negative) with equal in/out params."""
    rng = np.random.default_rng(3)
    for n in (2, 4, 8, 16, 64):
        for zp in (-128, -7, 0, 5, 127):
            targets = np.arange(-100, 100) + 0.5
            x = np.zeros((len(targets), n), np.int64)
            for i, t in enumerate(targets):
                total = int(round((t * n))) + zp * n
                row = np.full(n, total // n)
                row[: total - row.sum()] += 1
                rng.shuffle(row)
                x[i] = row
            x = np.clip(x, -128, 127).astype(np.int8)
            model = reduce_model("MEAN", "int8", list(x.shape), [1], False, (0.05, zp), (0.05, zp))
            assert_matches_litert(oracle, model, [x], "reference")


@pytest.mark.parametrize("n,s_in", [(3, 0.0016302696894854307), (6, 0.0007162394467741251),
                                    (7, 0.0012)])
def test_mean_int16_every_sum_vs_litert_ref(oracle, n, s_in):
    """Every possible row sum of an int16 MEAN over N (not a power of two): catches the
    truncation in M0 = (M0 << k) / N (rounding it instead changes a few outputs here)."""
    sums = np.arange(-32768 * n, 32767 * n + 1, dtype=np.int64)
    base = sums // n
    x = np.repeat(base[:, None], n, axis=1)
    x += np.arange(n)[None, :] < (sums - base * n)[:, None]
    x = x.astype(np.int16)
    model = reduce_model("MEAN", "int16", list(x.shape), [1], False, (s_in, 0), (0.001, 0))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(30)
@given(c=cases)
def test_mean_int8_4d_spatial_keep_dims_vs_litert_ref(oracle, c):
    """The converter's global-average-pool form (axes {1, 2}, keep_dims): the reference path
    uses the general formula (only the optimized path has a special kernel)."""
    rng = np.random.default_rng(c["seed"])
    h, w, ch = (int(v) for v in rng.integers(1, 9, 3))
    c = dict(c, red=([1, h, w, ch], [1, 2] if c["keep"] else [2, 1]), keep=True)
    _run(oracle, "MEAN", "int8", c, same_params=bool(rng.integers(0, 2)))


# -- SUM ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int32", "int64", "bool"])
@examples(25)
@given(c=cases)
def test_sum_unquantized_vs_litert_ref(oracle, kind, c):
    _run(oracle, "SUM", kind, c)


@examples(50)
@given(c=cases)
def test_sum_uint8_vs_litert_ref(oracle, c):
    _run(oracle, "SUM", "uint8", c)


@examples(50)
@given(c=cases, small=st.booleans())
def test_sum_int8_vs_litert_ref(oracle, c, small):
    """BUILTIN_REF reads int8 SUM data as uint8 bytes and clamps to [0, 255] (reduce.cc
    EvalSum -> QuantizedMeanOrSum<uint8_t>); quantcore reproduces it."""
    _run(oracle, "SUM", "int8", c, values=list(range(-3, 4)) if small else None)


# -- REDUCE_MAX / REDUCE_MIN --------------------------------------------------------------
@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
@pytest.mark.parametrize("kind", ["float", "int32", "int64", "int8", "uint8", "int16", "bool"])
@examples(12)
@given(c=cases)
def test_reduce_max_min_vs_litert_ref(oracle, op, kind, c):
    _run(oracle, op, kind, c, same_params=True)


@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
@examples(20)
@given(c=cases)
def test_reduce_max_min_float_nan_inf_vs_litert_ref(oracle, op, c):
    """NaN candidates never win; reducing every axis starts from the first element (a
    leading NaN survives, -inf is kept), other reductions from the lowest/highest float."""
    _run(oracle, op, "float", c, values=[np.nan, np.inf, -np.inf, 1.0, -1.0])


@pytest.mark.parametrize("op", ["REDUCE_MAX", "REDUCE_MIN"])
@pytest.mark.parametrize("kind", ["int8", "uint8"])
@examples(8)
@given(c=cases)
def test_reduce_max_min_unquantized_int_vs_litert_ref(oracle, op, kind, c):
    _run(oracle, op, kind, c, quantized=False)


# -- REDUCE_PROD --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int32", "int64", "int8", "uint8", "int16", "bool"])
@examples(12)
@given(c=cases)
def test_reduce_prod_unquantized_vs_litert_ref(oracle, kind, c):
    _run(oracle, "REDUCE_PROD", kind, c, quantized=False)


@pytest.mark.parametrize("kind", ["int8", "int16"])
@examples(40)
@given(c=cases)
def test_reduce_prod_quantized_vs_litert_ref(oracle, kind, c):
    shape, axes = c["red"]
    rng = np.random.default_rng(c["seed"])
    n = int(np.prod([shape[a] for a in {a % len(shape) for a in axes}])) if axes else 1
    # Scales that keep the product in range: s_out ~ (typical |x - zp| * s_in)^N.
    s_in = random_scale(rng, 0.005, 0.1)
    q_typical = 40 if kind == "int8" else 6000
    log_s_out = n * np.log(q_typical * s_in) + np.log(rng.uniform(0.05, 2) / q_typical)
    assume(-69 < log_s_out < 69)   # s_out in (1e-30, 1e30)
    s_out = float(np.float32(np.exp(log_s_out)))
    zp_in = 0 if kind == "int16" else int(rng.integers(-30, 30))
    zp_out = 0 if kind == "int16" else int(rng.integers(-30, 30))
    model = reduce_model("REDUCE_PROD", kind, shape, axes, c["keep"], (s_in, zp_in), (s_out, zp_out))
    x = random_input(rng, shape, DTYPES[kind])
    try:
        assert_matches_litert(oracle, model, [x], "reference")
    except ModelFormatError as e:   # scaling too large for LiteRT's 64-bit MBQM
        assume("undefined behaviour" not in str(e))
        raise


# -- run-time axes, rank 0 ------------------------------------------------------------------
@pytest.mark.parametrize("op,kind", [("MEAN", "int8"), ("MEAN", "float"), ("SUM", "uint8"),
                                     ("REDUCE_MAX", "int16"), ("REDUCE_PROD", "int8"),
                                     ("SUM", "int32")])
@examples(10)
@given(c=cases)
def test_reduce_runtime_axis_vs_litert_ref(oracle, op, kind, c):
    """An axis tensor that is a graph input: LiteRT resolves it (and the output shape) in Eval."""
    quantized = kind in ("int8", "uint8", "int16")
    _run(oracle, op, kind, c, const_axis=False, quantized=quantized, same_params=op == "REDUCE_MAX")


@pytest.mark.parametrize("op,kind", [("MEAN", "int8"), ("MEAN", "float"), ("SUM", "float"),
                                     ("REDUCE_MAX", "float"), ("REDUCE_PROD", "int8"),
                                     ("SUM", "uint8")])
def test_reduce_rank0_input_vs_litert_ref(oracle, op, kind):
    """A scalar input ignores the axis tensor, even an out-of-range axis."""
    rng = np.random.default_rng(0)
    quantized = kind in ("int8", "uint8", "int16")
    q = (0.1, 3) if quantized else None
    q_out = (0.1, 3) if op == "REDUCE_MAX" else ((0.07, 5) if quantized else None)
    model = reduce_model(op, kind, [], [5, -7], False, q, q_out)
    for _ in range(5):
        x = np.asarray(random_input(rng, [], DTYPES[kind]))
        assert_matches_litert(oracle, model, [x], "reference")


@pytest.mark.parametrize("op,kind", [("MEAN", "float"), ("MEAN", "int8"), ("MEAN", "int32"),
                                     ("SUM", "uint8"), ("SUM", "float"), ("REDUCE_MAX", "float"),
                                     ("REDUCE_MIN", "int16"), ("REDUCE_PROD", "int32")])
@pytest.mark.parametrize("shape,axes", [([0, 3], [0]), ([0, 3], [1]), ([2, 0], [1]), ([0, 3], [0, 1])])
def test_reduce_zero_sized_input_vs_litert_ref(oracle, op, kind, shape, axes):
    """Empty reductions: MEAN writes quiet_NaN (0 for integers), quantized MEAN/SUM write 0,
    the generic reducers their init value (lowest float for MAX, 1 for PROD)."""
    q = (0.1, 3 if kind != "int16" else 0) if kind in ("int8", "uint8", "int16") else None
    model = reduce_model(op, kind, shape, axes, False, q, q)
    assert_matches_litert(oracle, model, [np.zeros(shape, DTYPES[kind])], "reference")


def test_mean_large_reduction_int8_vs_litert_ref(oracle):
    """N up to 2^16 (the multiplier shift k reaches 16) and a non-power-of-two N."""
    rng = np.random.default_rng(11)
    for shape, axes in (([1, 256, 256, 1], [1, 2]), ([3, 1000], [1]), ([2, 3, 4096], [0, 2])):
        model = reduce_model("MEAN", "int8", shape, axes, False, (0.03, -9), (0.011, 4))
        x = random_input(rng, shape, np.int8)
        assert_matches_litert(oracle, model, [x], "reference")


# -- bad models -----------------------------------------------------------------------------
def _ours(model, x):
    return run_ours(model, [x])


def test_sum_int16_reference_is_numerics_path_error():
    model = reduce_model("SUM", "int16", [2, 4], [1], False, (0.1, 0), (0.1, 0))
    with pytest.raises(NumericsPathError, match="uint8"):
        _ours(model, np.zeros((2, 4), np.int16))


def test_reduce_axis_out_of_range_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.float32)
    ax = b.add_constant("axis", np.array([2], np.int32))
    y = b.add_tensor("y", [2], np.float32)
    b.add_operator("MEAN", [x, ax], [y], keep_dims=False)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="out of range"):
        _ours(b.to_bytes(), np.zeros((2, 4), np.float32))


def test_reduce_int64_axis_is_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.float32)
    ax = b.add_constant("axis", np.array([1], np.int64))
    y = b.add_tensor("y", [2], np.float32)
    b.add_operator("SUM", [x, ax], [y], keep_dims=False)
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="INT32"):
        _ours(b.to_bytes(), np.zeros((2, 4), np.float32))


def test_reduce_max_int8_different_params_is_model_format_error():
    model = reduce_model("REDUCE_MAX", "int8", [2, 4], [1], False, (0.1, 0), (0.2, 0))
    with pytest.raises(ModelFormatError, match="equal input and output"):
        _ours(model, np.zeros((2, 4), np.int8))


def test_mean_bool_is_unsupported():
    model = reduce_model("MEAN", "bool", [2, 4], [1], False)
    with pytest.raises(UnsupportedOpError, match="BOOL"):
        _ours(model, np.zeros((2, 4), bool))


def test_reduce_prod_quantized_uint8_is_unsupported():
    model = reduce_model("REDUCE_PROD", "uint8", [2, 4], [1], False, (0.1, 0), (0.1, 0))
    with pytest.raises(UnsupportedOpError, match="quantized REDUCE_PROD"):
        _ours(model, np.zeros((2, 4), np.uint8))


def test_mean_int16_nonzero_zero_point_is_model_format_error():
    model = reduce_model("MEAN", "int16", [2, 4], [1], False, (0.1, 3), (0.1, 0))
    with pytest.raises(ModelFormatError, match="zero point"):
        _ours(model, np.zeros((2, 4), np.int16))


def test_reduce_output_type_mismatch_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.float32)
    ax = b.add_constant("axis", np.array([1], np.int32))
    y = b.add_tensor("y", [2], np.int32)
    b.add_operator("REDUCE_MAX", [x, ax], [y], keep_dims=False)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="differs"):
        _ours(b.to_bytes(), np.zeros((2, 4), np.float32))
