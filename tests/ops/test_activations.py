"""LOGISTIC, TANH, ELU, HARD_SWISH, RELU/RELU6/RELU_N1_TO_1/RELU_0_TO_1, LEAKY_RELU and
PRELU against LiteRT BUILTIN_REF (ELU: BUILTIN_WITHOUT_DEFAULT_DELEGATES, the only
resolver that has it).

8-bit table and requantization kernels are checked on every one of the 256 input
codes for random scales and zero points; int16 and float kernels on random tensors.
Rescaling ops also get constructed rounding ties (power-of-two scale ratios, where
``v * ratio`` lands on .5)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.fixedpoint import round_half_away
from quantcore.runtime.ops import _lut
from quantcore.schema.builder import ModelBuilder

QRANGE = {np.int8: (-128, 127), np.uint8: (0, 255), np.int16: (-32768, 32767)}
DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "float": np.float32}
TIE_RATIOS = [0.5, 0.25, 0.75, 1.5, 2.0, 0.125]


def unary_model(op, dtype, shape, s_in=None, zp_in=0, s_out=None, zp_out=0, *, version=1,
                **options) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", list(shape), dtype, scale=s_in, zero_point=None if s_in is None else zp_in)
    y = b.add_tensor("y", list(shape), dtype, scale=s_out, zero_point=None if s_out is None else zp_out)
    b.add_operator(op, [x], [y], version=version, **options)
    b.mark_outputs(y)
    return b.to_bytes()


def all_codes(dtype, rng) -> np.ndarray:
    """Every code of an 8-bit type, shuffled, in a random 1-3-D shape of 256 elements."""
    lo, hi = QRANGE[dtype]
    codes = rng.permutation(np.arange(lo, hi + 1)).astype(dtype)
    shape = [(256,), (2, 128), (4, 8, 8), (16, 16)][int(rng.integers(0, 4))]
    return codes.reshape(shape)


def zero_point(rng, dtype) -> int:
    if dtype == np.int16:
        return 0
    lo, hi = QRANGE[dtype]
    return int(rng.integers(lo, hi + 1))


def random_shape(rng, max_rank=4, max_dim=7):
    return [int(d) for d in rng.integers(1, max_dim + 1, size=int(rng.integers(1, max_rank + 1)))]


seeds = st.integers(0, 2**31 - 1)
eight_bit = st.sampled_from(["int8", "uint8"])


# ---------------------------------------------------------------------------
# LOGISTIC / TANH
# ---------------------------------------------------------------------------
@examples(60)
@given(seeds, eight_bit)
def test_logistic_8bit_all_codes_vs_litert_ref(oracle, seed, kind):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    x = all_codes(dt, rng)
    model = unary_model("LOGISTIC", dt, x.shape, random_scale(rng, 1e-3, 0.5), zero_point(rng, dt),
                        1 / 256, zero_point(rng, dt))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(60)
@given(seeds, eight_bit)
def test_tanh_8bit_all_codes_vs_litert_ref(oracle, seed, kind):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    x = all_codes(dt, rng)
    s_out = 1 / 128 if rng.integers(0, 2) else random_scale(rng, 1e-3, 0.05)
    model = unary_model("TANH", dt, x.shape, random_scale(rng, 1e-3, 0.5), zero_point(rng, dt),
                        s_out, zero_point(rng, dt))
    assert_matches_litert(oracle, model, [x], "reference")


# Found by searching random scales for tables where glibc's tanhf/expm1f (not
# correctly rounded) and the correctly rounded float32 value give different entries:
# LiteRT follows glibc. (op, s_in, zp_in, s_out, zp_out, the code that differs)
LIBM_SENSITIVE = [
    ("TANH", 0.015966027975082397, 24, 0.006265002768486738, 32, -35),
    ("TANH", 0.009083308279514313, 124, 0.0019951052963733673, 91, 84),
    ("TANH", 0.0026165072340518236, -55, 0.0011489168973639607, 92, -102),
    ("ELU", 0.01916441321372986, 79, 0.046101104468107224, 52, -21),
]


@pytest.mark.skipif(_lut._LIBM is None, reason="needs the platform libm through ctypes")
@pytest.mark.parametrize("case", LIBM_SENSITIVE, ids=lambda c: f"{c[0]}-{c[5]}")
def test_lut_follows_glibc_not_correct_rounding_vs_litert(oracle, case):
    op, s_in, zp_in, s_out, zp_out, code = case
    model = unary_model(op, np.int8, (256,), s_in, zp_in, s_out, zp_out)
    x = np.arange(-128, 128).astype(np.int8)
    numerics = "optimized" if op == "ELU" else "reference"
    _, theirs = assert_matches_litert(oracle, model, [x], numerics)
    # the correctly rounded transform would give a different entry for this code
    v = np.float32(s_in) * np.float32(code - zp_in)
    exact = np.float32(np.tanh(np.float64(v)) if op == "TANH" else np.expm1(np.float64(v)))
    alt = int(round_half_away(np.float32(exact * (np.float32(1) / np.float32(s_out))))) + zp_out
    assert alt != int(theirs.outputs[0][code + 128])


@examples(40)
@given(seeds, st.sampled_from(["LOGISTIC", "TANH"]), st.sampled_from(["pot", "pot11", "general"]))
def test_logistic_tanh_int16_vs_litert_ref(oracle, seed, op, scale_kind):
    rng = np.random.default_rng(seed)
    if scale_kind == "pot":
        s_in = 2.0**-12
    elif scale_kind == "pot11":
        s_in = 2.0**-11
    else:
        s_in = random_scale(rng, 1e-5, 3e-3)
    shape = random_shape(rng)
    model = unary_model(op, np.int16, shape, s_in, 0, 1 / 32768, 0)
    x = random_input(rng, shape, np.int16)
    if rng.integers(0, 2):  # small magnitudes, where the curve bends
        x = (x // int(rng.integers(1, 64))).astype(np.int16)
    assert_matches_litert(oracle, model, [x], "reference")


def test_logistic_tanh_int16_every_code_vs_litert_ref(oracle):
    x = np.arange(-32768, 32768).astype(np.int16).reshape(256, 256)
    for op in ("LOGISTIC", "TANH"):
        for s_in in (2.0**-12, 2.0**-11, 0.0003, 3.1e-5):
            assert_matches_litert(oracle, unary_model(op, np.int16, x.shape, s_in, 0, 1 / 32768, 0),
                                  [x], "reference")


@examples(30)
@given(seeds, st.sampled_from(["LOGISTIC", "TANH"]))
def test_logistic_tanh_float_vs_litert_ref(oracle, seed, op):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(rng.uniform(0.1, 30))).astype(np.float32)
    assert_matches_litert(oracle, unary_model(op, np.float32, shape), [x], "reference")


# ---------------------------------------------------------------------------
# ELU (LiteRT's reference resolver has no ELU; its single kernel is in the builtin one)
# ---------------------------------------------------------------------------
@examples(50)
@given(seeds)
def test_elu_int8_all_codes_vs_litert_optimized(oracle, seed):
    rng = np.random.default_rng(seed)
    x = all_codes(np.int8, rng)
    model = unary_model("ELU", np.int8, x.shape, random_scale(rng, 1e-3, 0.5), zero_point(rng, np.int8),
                        random_scale(rng, 1e-3, 0.2), zero_point(rng, np.int8))
    assert_matches_litert(oracle, model, [x], "optimized")


@examples(15)
@given(seeds)
def test_elu_float_vs_litert_optimized(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(8)).astype(np.float32)
    assert_matches_litert(oracle, unary_model("ELU", np.float32, shape), [x], "optimized")


def test_elu_missing_from_litert_ref_but_runs_here(oracle):
    model = unary_model("ELU", np.int8, (4,), 0.1, 0, 0.1, 0)
    x = np.array([-100, -1, 0, 100], np.int8)
    assert "ELU" in oracle.run(model, [x], "reference").error
    mine = run_ours(model, [x], "reference").get_tensor(1)
    theirs = oracle.run(model, [x], "optimized").outputs[0]
    np.testing.assert_array_equal(mine, theirs)


# ---------------------------------------------------------------------------
# HARD_SWISH
# ---------------------------------------------------------------------------
@examples(60)
@given(seeds, eight_bit, st.booleans())
def test_hard_swish_8bit_all_codes_vs_litert_ref(oracle, seed, kind, pot_ratio):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    s_in = random_scale(rng, 1e-3, 1.0)
    if pot_ratio:  # power-of-two scale ratios: exact multipliers, rounding ties in every shift
        s_in = 2.0 ** int(rng.integers(-10, 0))
        s_out = s_in * 2.0 ** int(rng.integers(-7, 3))
    else:
        s_out = s_in * float(np.exp(rng.uniform(np.log(0.01), np.log(2.0))))
    assume(s_in / (128 * s_out) < 1)
    x = all_codes(dt, rng)
    model = unary_model("HARD_SWISH", dt, x.shape, s_in, zero_point(rng, dt), s_out, zero_point(rng, dt))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(15)
@given(seeds)
def test_hard_swish_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(6)).astype(np.float32)
    assert_matches_litert(oracle, unary_model("HARD_SWISH", np.float32, shape), [x], "reference")


# ---------------------------------------------------------------------------
# RELU family
# ---------------------------------------------------------------------------
RELU_OPS = ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"]


def _ratio_scales(rng, tie: bool):
    s_in = random_scale(rng, 1e-3, 0.5)
    ratio = float(rng.choice(TIE_RATIOS)) if tie else float(np.exp(rng.uniform(np.log(0.05), np.log(5))))
    return s_in, float(np.float32(s_in / ratio))


@examples(80)
@given(seeds, st.sampled_from(RELU_OPS), eight_bit, st.booleans())
def test_relu_family_8bit_all_codes_vs_litert_ref(oracle, seed, op, kind, tie):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    s_in, s_out = _ratio_scales(rng, tie)
    x = all_codes(dt, rng)
    model = unary_model(op, dt, x.shape, s_in, zero_point(rng, dt), s_out, zero_point(rng, dt))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(20)
@given(seeds, st.sampled_from(RELU_OPS), st.sampled_from(["int8", "uint8", "float"]))
def test_relu_family_vs_litert_optimized(oracle, seed, op, kind):
    """The RELU kernels are one registration in both LiteRT resolvers."""
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    if kind == "float":
        x = (random_input(rng, (3, 50), np.float32) * np.float32(8)).astype(np.float32)
        model = unary_model(op, dt, x.shape)
    else:
        s_in, s_out = _ratio_scales(rng, bool(rng.integers(0, 2)))
        x = all_codes(dt, rng)
        model = unary_model(op, dt, x.shape, s_in, zero_point(rng, dt), s_out, zero_point(rng, dt))
    assert_matches_litert(oracle, model, [x], "optimized")


@examples(30)
@given(seeds, st.sampled_from(["RELU", "RELU6"]), st.booleans())
def test_relu_relu6_int16_vs_litert_ref(oracle, seed, op, tie):
    rng = np.random.default_rng(seed)
    s_in, s_out = _ratio_scales(rng, tie)
    s_in, s_out = s_in / 256, s_out / 256
    shape = random_shape(rng)
    model = unary_model(op, np.int16, shape, s_in, 0, s_out, 0)
    assert_matches_litert(oracle, model, [random_input(rng, shape, np.int16)], "reference")


@examples(20)
@given(seeds, st.sampled_from(RELU_OPS))
def test_relu_family_float_vs_litert_ref(oracle, seed, op):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    x = (random_input(rng, shape, np.float32) * np.float32(8)).astype(np.float32)
    x.reshape(-1)[: min(4, x.size)] = np.array([-1, 0, 1, 6], np.float32)[: min(4, x.size)]
    assert_matches_litert(oracle, unary_model(op, np.float32, shape), [x], "reference")


# ---------------------------------------------------------------------------
# LEAKY_RELU
# ---------------------------------------------------------------------------
def _alpha(rng, tie: bool) -> float:
    if tie:
        return float(rng.choice([0.5, 0.25, -0.5, 0.125, 1.5, -0.25]))
    return float(np.float32(rng.uniform(-2, 2) if rng.integers(0, 4) == 0 else rng.uniform(0, 0.5)))


@examples(60)
@given(seeds, eight_bit, st.booleans())
def test_leaky_relu_8bit_all_codes_vs_litert_ref(oracle, seed, kind, tie):
    rng = np.random.default_rng(seed)
    dt = DTYPES[kind]
    s_in, s_out = _ratio_scales(rng, tie)
    x = all_codes(dt, rng)
    model = unary_model("LEAKY_RELU", dt, x.shape, s_in, zero_point(rng, dt), s_out, zero_point(rng, dt),
                        alpha=_alpha(rng, tie))
    assert_matches_litert(oracle, model, [x], "reference")


@examples(30)
@given(seeds, st.booleans())
def test_leaky_relu_int16_vs_litert_ref(oracle, seed, tie):
    rng = np.random.default_rng(seed)
    s_in, s_out = _ratio_scales(rng, tie)
    shape = random_shape(rng)
    model = unary_model("LEAKY_RELU", np.int16, shape, s_in / 256, 0, s_out / 256, 0,
                        alpha=_alpha(rng, tie))
    assert_matches_litert(oracle, model, [random_input(rng, shape, np.int16)], "reference")


@examples(15)
@given(seeds)
def test_leaky_relu_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng)
    model = unary_model("LEAKY_RELU", np.float32, shape, alpha=_alpha(rng, False))
    assert_matches_litert(oracle, model, [random_input(rng, shape, np.float32)], "reference")


# ---------------------------------------------------------------------------
# PRELU
# ---------------------------------------------------------------------------
def prelu_model(rng, kind, shape, alpha_shape, tie=False):
    b = ModelBuilder()
    dt = DTYPES[kind]
    if kind == "float":
        x = b.add_input("x", shape, dt)
        a = b.add_constant("alpha", rng.uniform(-1, 1, alpha_shape).astype(np.float32))
        y = b.add_tensor("y", shape, dt)
    else:
        adt = np.uint8 if dt == np.uint8 else np.int8
        s_in, s_out = _ratio_scales(rng, tie)
        if dt == np.int16:
            s_in, s_out = s_in / 256, s_out / 256
        s_a = 2.0 ** int(rng.integers(-9, -5)) if tie else random_scale(rng, 1e-3, 0.02)
        x = b.add_input("x", shape, dt, scale=s_in, zero_point=zero_point(rng, dt))
        a = b.add_constant("alpha", random_input(rng, alpha_shape, adt), scale=s_a,
                           zero_point=zero_point(rng, adt))
        y = b.add_tensor("y", shape, dt, scale=s_out, zero_point=zero_point(rng, dt))
    b.add_operator("PRELU", [x, a], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def _alpha_shape(rng, shape):
    """A shape broadcastable to ``shape`` (a suffix, some dimensions set to 1)."""
    k = int(rng.integers(0, len(shape) + 1))
    suffix = list(shape[len(shape) - k:])
    return [d if rng.integers(0, 3) else 1 for d in suffix] or [1]


@examples(60)
@given(seeds, st.sampled_from(["int8", "uint8", "int16"]), st.booleans())
def test_prelu_quantized_vs_litert_ref(oracle, seed, kind, tie):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng, max_rank=5, max_dim=6)
    model = prelu_model(rng, kind, shape, _alpha_shape(rng, shape), tie)
    assert_matches_litert(oracle, model, [random_input(rng, shape, DTYPES[kind])], "reference")


@examples(20)
@given(seeds)
def test_prelu_float_vs_litert_ref(oracle, seed):
    rng = np.random.default_rng(seed)
    shape = random_shape(rng, max_rank=5, max_dim=6)
    model = prelu_model(rng, "float", shape, _alpha_shape(rng, shape))
    assert_matches_litert(oracle, model, [random_input(rng, shape, np.float32)], "reference")


# ---------------------------------------------------------------------------
# bad models
# ---------------------------------------------------------------------------
def test_logistic_8bit_wrong_output_scale_raises(oracle):
    model = unary_model("LOGISTIC", np.int8, (4,), 0.1, 0, 1 / 255, -128)
    assert not oracle.run(model, [np.zeros(4, np.int8)], "reference").ok
    with pytest.raises(ModelFormatError, match="1/256"):
        run_ours(model, [np.zeros(4, np.int8)])


def test_tanh_int16_nonzero_zero_point_raises(oracle):
    model = unary_model("TANH", np.int16, (4,), 1 / 4096, 3, 1 / 32768, 0)
    assert not oracle.run(model, [np.zeros(4, np.int16)], "reference").ok
    with pytest.raises(ModelFormatError, match="zero point"):
        run_ours(model, [np.zeros(4, np.int16)])


def test_missing_quantization_raises():
    for op in ("LOGISTIC", "TANH", "HARD_SWISH", "RELU", "LEAKY_RELU"):
        model = unary_model(op, np.int8, (4,))
        with pytest.raises(ModelFormatError, match="no quantization"):
            run_ours(model, [np.zeros(4, np.int8)])


@pytest.mark.parametrize("op", ["HARD_SWISH", "RELU_N1_TO_1", "RELU_0_TO_1"])
def test_int16_unsupported_raises(oracle, op):
    model = unary_model(op, np.int16, (4,), 1 / 4096, 0, 1 / 4096, 0)
    assert not oracle.run(model, [np.zeros(4, np.int16)], "reference").ok
    with pytest.raises(UnsupportedOpError, match="INT16"):
        run_ours(model, [np.zeros(4, np.int16)])


def test_hard_swish_output_multiplier_above_one_raises(oracle):
    model = unary_model("HARD_SWISH", np.int8, (4,), 1.0, 0, 1 / 1024, 0)
    assert not oracle.run(model, [np.zeros(4, np.int8)], "reference").ok
    with pytest.raises(ModelFormatError, match="output multiplier"):
        run_ours(model, [np.zeros(4, np.int8)])


def test_prelu_bad_alpha_shape_raises(oracle):
    rng = np.random.default_rng(0)
    model = prelu_model(rng, "int8", [2, 3, 4], [5])
    assert not oracle.run(model, [np.zeros((2, 3, 4), np.int8)], "reference").ok
    with pytest.raises(ModelFormatError, match="broadcast"):
        run_ours(model, [np.zeros((2, 3, 4), np.int8)])
    model = prelu_model(rng, "int8", [3, 1], [3, 4])   # broadcast grows the input
    with pytest.raises(ModelFormatError, match="not the input shape"):
        run_ours(model, [np.zeros((3, 1), np.int8)])


def test_mismatched_output_type_raises():
    b = ModelBuilder()
    x = b.add_input("x", [4], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [4], np.uint8, scale=0.1, zero_point=0)
    b.add_operator("RELU", [x], [y])
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="output type"):
        run_ours(b.to_bytes(), [np.zeros(4, np.int8)])
