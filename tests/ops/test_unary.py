"""EXP, SQRT, RSQRT, ABS and NEG against LiteRT BUILTIN_REF: every input code of the
8-bit kernels for random scales and zero points, random int16/int32/int64/float
tensors with the extreme values included, and the input-domain errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import InputError, ModelFormatError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

QRANGE = {np.int8: (-128, 127), np.int16: (-32768, 32767), np.int32: (-(2**31), 2**31 - 1),
          np.int64: (-(2**63), 2**63 - 1)}


def unary_model(op, dtype, shape, s_in=None, zp_in=0, s_out=None, zp_out=0) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", list(shape), dtype, scale=s_in, zero_point=None if s_in is None else zp_in)
    y = b.add_tensor("y", list(shape), dtype, scale=s_out, zero_point=None if s_out is None else zp_out)
    b.add_operator(op, [x], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def random_shape(rng, max_rank=4, max_dim=7):
    return [int(d) for d in rng.integers(1, max_dim + 1, size=int(rng.integers(1, max_rank + 1)))]


def with_extremes(x: np.ndarray) -> np.ndarray:
    """Put the type's minimum, maximum, 0, -1 and 1 at the front of an integer tensor."""
    lo, hi = QRANGE[x.dtype.type]
    special = np.array([lo, hi, 0, -1, 1, lo + 1], x.dtype)
    flat = x.reshape(-1).copy()
    n = min(len(flat), len(special))
    flat[:n] = special[:n]
    return flat.reshape(x.shape)


seeds = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------------------
# EXP
# ---------------------------------------------------------------------------
@examples(60)
@given(seeds)
def test_exp_int8_all_codes_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    # input scales up to 1 make expf overflow for the top codes (LiteRT saturates to 127)
    s_in = random_scale(rng, 1e-3, 1.0)
    s_out = random_scale(rng, 1e-3, 10.0)
    x = rng.permutation(np.arange(-128, 128)).astype(np.int8).reshape(16, 16)
    model = unary_model("EXP", np.int8, x.shape, s_in, int(rng.integers(-128, 128)), s_out,
                        int(rng.integers(-128, 128)))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(30)
@given(seeds)
def test_exp_int16_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    s_in = random_scale(rng, 1e-5, 1e-3)
    s_out = random_scale(rng, 1e-5, 1e-2)
    shape = random_shape(rng)
    model = unary_model("EXP", np.int16, shape, s_in, 0, s_out, 0)
    assert_matches_litert(oracle, model, [with_extremes(random_input(rng, shape, np.int16))], "reference")


def test_exp_int16_every_code_vs_litert_ref(oracle):
    x = np.arange(-32768, 32768).astype(np.int16).reshape(256, 256)
    # the last: expf overflows for most samples; inf - inf in the table's bias gives NaN
    # entries, which LiteRT's int16 cast turns into 0
    for s_in, s_out in ((1e-4, 2e-4), (3.05e-5, 1e-3), (2.0**-12, 2.0**-10), (0.01, 0.05)):
        assert_matches_litert(oracle, unary_model("EXP", np.int16, x.shape, s_in, 0, s_out, 0), [x])


@examples(20)
@given(seeds)
def test_exp_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(rng.uniform(1, 80))).astype(np.float32)
    assert_matches_litert(oracle, unary_model("EXP", np.float32, shape), [x], "reference")


# ---------------------------------------------------------------------------
# SQRT / RSQRT
# ---------------------------------------------------------------------------
@examples(60)
@given(seeds, st.sampled_from(["SQRT", "RSQRT"]))
def test_sqrt_rsqrt_int8_all_valid_codes_vs_litert_ref(oracle, seed, op):
    rng = np.random.default_rng(seed)
    zp_in = int(rng.integers(-128, 128))
    x = np.arange(zp_in, 128).astype(np.int8)
    x = rng.permutation(x).reshape(1, -1)
    if op == "SQRT":
        s_in, s_out = random_scale(rng, 1e-3, 1.0), random_scale(rng, 1e-3, 0.5)
    else:
        s_in, s_out = random_scale(rng, 1e-3, 1.0), random_scale(rng, 1e-3, 1.0)
    model = unary_model(op, np.int8, x.shape, s_in, zp_in, s_out, int(rng.integers(-128, 128)))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(40)
@given(seeds, st.sampled_from(["SQRT", "RSQRT"]))
def test_sqrt_rsqrt_int16_vs_litert_ref(oracle, seed, op):
    rng = np.random.default_rng(seed)
    s_in = random_scale(rng, 1e-5, 1e-2)
    s_out = random_scale(rng, 1e-4, 1e-2) if op == "SQRT" else random_scale(rng, 1e-3, 0.5)
    shape = random_shape(rng)
    x = np.abs(with_extremes(random_input(rng, shape, np.int16)).astype(np.int64))
    x = np.minimum(x, 32767).astype(np.int16)
    model = unary_model(op, np.int16, shape, s_in, 0, s_out, 0)
    assert_matches_litert(oracle, model, [x], "reference")


def test_sqrt_quotient_beyond_int32_vs_litert_ref(oracle):
    # sqrt(x)/s_out above 2^31: x86's conversion gives INT32_MIN, then + zp (wrapping)
    x = np.array([[-128, -127, -100, 0, 127]], np.int8)
    for zp_out in (0, -100, 100):
        assert_matches_litert(oracle, unary_model("SQRT", np.int8, x.shape, 10.0, -128, 1e-9, zp_out), [x])


@examples(20)
@given(seeds, st.sampled_from(["SQRT", "RSQRT"]))
def test_sqrt_rsqrt_float_vs_litert_ref(oracle, seed, op):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = np.abs(random_input(rng, shape, np.float32) * np.float32(100)).astype(np.float32)
    assert_matches_litert(oracle, unary_model(op, np.float32, shape), [x], "reference")


@pytest.mark.parametrize("op,dtype", [("SQRT", np.int8), ("SQRT", np.int16), ("RSQRT", np.int8),
                                      ("RSQRT", np.int16)])
def test_sqrt_rsqrt_negative_input_raises(oracle, op, dtype):
    zp = 0 if dtype == np.int16 else 10
    model = unary_model(op, dtype, (3,), 0.1, zp, 0.1, 0)
    x = np.array([zp + 5, zp - 1, zp], dtype)
    assert not oracle.run(model, [x], "reference").ok
    with pytest.raises(InputError, match="element \\(1,\\)"):
        run_ours(model, [x])


# ---------------------------------------------------------------------------
# ABS / NEG
# ---------------------------------------------------------------------------
@examples(60)
@given(seeds, st.sampled_from(["rescale", "same", "tie"]))
def test_abs_int8_all_codes_vs_litert_ref(oracle, seed, scales):
    rng = np.random.default_rng(seed)
    s_in = random_scale(rng, 1e-3, 0.5)
    s_out = {"rescale": random_scale(rng, 1e-3, 0.5), "same": s_in,
             "tie": float(np.float32(s_in / float(rng.choice([0.5, 0.25, 1.5, 0.75]))))}[scales]
    x = rng.permutation(np.arange(-128, 128)).astype(np.int8).reshape(2, 128)
    model = unary_model("ABS", np.int8, x.shape, s_in, int(rng.integers(-128, 128)), s_out,
                        int(rng.integers(-128, 128)))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(40)
@given(seeds, st.sampled_from(["int16q", "int16", "int32", "float"]))
def test_abs_wide_types_vs_litert_ref(oracle, seed, kind):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    if kind == "int16q":
        s_in = random_scale(rng, 1e-4, 1e-2)
        s_out = s_in if rng.integers(0, 3) == 0 else random_scale(rng, 1e-4, 1e-2)
        model = unary_model("ABS", np.int16, shape, s_in, 0, s_out, 0)
        x = with_extremes(random_input(rng, shape, np.int16))
    elif kind == "float":
        model = unary_model("ABS", np.float32, shape)
        x = random_input(rng, shape, np.float32)
    else:
        dt = np.int16 if kind == "int16" else np.int32
        model = unary_model("ABS", dt, shape)
        x = with_extremes(random_input(rng, shape, dt))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(50)
@given(seeds, st.sampled_from(["float", "int8", "int16", "int32", "int64"]))
def test_neg_vs_litert_ref(oracle, seed, kind):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    dt = {"float": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
          "int64": np.int64}[kind]
    x = random_input(rng, shape, dt)
    if kind != "float":
        x = with_extremes(x)
    assert_matches_litert(oracle, unary_model("NEG", dt, shape), [x], "reference")


def test_neg_int8_ignores_quantization_vs_litert_ref(oracle):
    x = np.arange(-128, 128).astype(np.int8)
    assert_matches_litert(oracle, unary_model("NEG", np.int8, x.shape, 0.1, 5, 0.2, -3), [x])


# ---------------------------------------------------------------------------
# bad models
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["EXP", "SQRT", "RSQRT", "ABS"])
def test_int8_without_quantization_raises(op):
    with pytest.raises(ModelFormatError, match="no quantization"):
        run_ours(unary_model(op, np.int8, (4,)), [np.zeros(4, np.int8)])


@pytest.mark.parametrize("op", ["EXP", "SQRT", "RSQRT", "ABS"])
def test_int16_nonzero_zero_point_raises(oracle, op):
    model = unary_model(op, np.int16, (4,), 0.01, 2, 0.01, 0)
    assert not oracle.run(model, [np.full(4, 3, np.int16)], "reference").ok
    with pytest.raises(ModelFormatError, match="zero points 0"):
        run_ours(model, [np.full(4, 3, np.int16)])


@pytest.mark.parametrize("op,dtype", [("EXP", np.uint8), ("SQRT", np.int32), ("ABS", np.uint8),
                                      ("NEG", np.uint8), ("RSQRT", np.int32)])
def test_unsupported_types_raise(oracle, op, dtype):
    kw = {"s_in": 0.1, "s_out": 0.1} if dtype == np.uint8 else {}
    model = unary_model(op, dtype, (4,), **kw)
    assert not oracle.run(model, [np.zeros(4, dtype)], "reference").ok
    with pytest.raises(UnsupportedOpError):
        run_ours(model, [np.zeros(4, dtype)])
