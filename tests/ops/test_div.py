"""DIV against LiteRT BUILTIN_REF: float32, int32, quantized int8, uint8 and int16;
random broadcasts, scales, zero points, fused activations, power-of-two divisors,
zero numerators (where LiteRT's rounding shift exceeds 31 bits), and the
division-by-zero errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, run_ours
from quantcore.errors import InputError
from test_binary import (ACTS, PATTERNS, binary_model, broadcast_shapes, log_scale, random_values,
                         shape_cases, special_float_inputs, unquantized_case, zero_point)

OP = "DIV"


def _avoid(x: np.ndarray, value: int, dtype) -> np.ndarray:
    """Replace elements equal to ``value`` (LiteRT refuses them as divisors)."""
    info = np.iinfo(dtype)
    repl = value + 1 if value < info.max else value - 1
    return np.where(x == value, repl, x).astype(dtype)


@examples(60)
@given(shape_cases)
def test_div_float32_vs_litert_ref(oracle, c):
    rng = np.random.default_rng(c["seed"])
    assert_matches_litert(oracle, *unquantized_case(rng, OP, np.float32, c["pattern"], c["act"]), "reference")


@examples(20)
@given(shape_cases)
def test_div_float32_special_values_vs_litert_ref(oracle, c):
    """x / 0 = +-inf clamped to +-FLT_MAX (no activation), 0 / 0 = NaN, 1 / 1e-45 overflows."""
    rng = np.random.default_rng(c["seed"])
    model, inputs = unquantized_case(rng, OP, np.float32, c["pattern"], c["act"])
    assert_matches_litert(oracle, model, special_float_inputs(rng, inputs[0].shape, inputs[1].shape),
                          "reference")


@examples(50)
@given(shape_cases, st.sampled_from(["full", "small"]))
def test_div_int32_vs_litert_ref(oracle, c, divisor):
    """C division truncates toward zero (negative quotients included)."""
    rng = np.random.default_rng(c["seed"])
    model, (x1, x2) = unquantized_case(rng, OP, np.int32, c["pattern"], c["act"])
    if divisor == "small":
        x2 = rng.integers(-20, 21, x2.shape).astype(np.int32)
    x2 = _avoid(x2, 0, np.int32)
    x1 = np.where(x1 == np.iinfo(np.int32).min, 0, x1).astype(np.int32)
    assert_matches_litert(oracle, model, [x1, x2], "reference")


def _quantized(rng, dtype, pattern, act, scales, *, pot_divisors=False, zero_numerators=False):
    s1, s2 = broadcast_shapes(rng, pattern)
    zps = (zero_point(rng, dtype), zero_point(rng, dtype), zero_point(rng, dtype))
    model = binary_model(OP, dtype, s1, s2, q1=(scales[0], zps[0]), q2=(scales[1], zps[1]),
                         qo=(scales[2], zps[2]), act=act)
    x1 = random_values(rng, s1, dtype)
    x2 = random_values(rng, s2, dtype)
    info = np.iinfo(dtype)
    if pot_divisors:
        v = rng.choice([1, 2, 4, 8, 16, 32, 64, 128], size=s2) * rng.choice([-1, 1], size=s2)
        x2 = np.clip(v + zps[1], info.min, info.max).astype(dtype)
    if zero_numerators:
        x1 = np.where(rng.random(s1) < 0.5, zps[0], x1).astype(dtype)
        near = np.clip(zps[0] + rng.integers(-3, 4, s1), info.min, info.max)
        x1 = np.where(rng.random(s1) < 0.3, near, x1).astype(dtype)
    return model, [x1, _avoid(x2, zps[1], dtype)]


@examples(100)
@given(shape_cases, st.sampled_from(["int8", "uint8", "int16"]))
def test_div_quantized_vs_litert_ref(oracle, c, dtype):
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-4, 1.0), log_scale(rng, 1e-3, 10.0))
    assert_matches_litert(oracle, *_quantized(rng, np.dtype(dtype).type, c["pattern"], c["act"], scales),
                          "reference")


@examples(60)
@given(shape_cases, st.sampled_from(["int8", "uint8", "int16"]), st.booleans())
def test_div_small_numerators_vs_litert_ref(oracle, c, dtype, pot):
    """Numerators at or near the zero point: CountLeadingSignBits gives a headroom of
    ~30 and the final RoundingDivideByPOT exponent exceeds 31, an undefined shift that
    the wheel executes modulo 32 with an all-ones mask (0 / x gives zp_out + 1)."""
    rng = np.random.default_rng(c["seed"])
    scales = (log_scale(rng, 1e-3, 1.0), log_scale(rng, 1e-3, 1.0), log_scale(rng, 1e-3, 1.0))
    model, inputs = _quantized(rng, np.dtype(dtype).type, c["pattern"], c["act"], scales,
                               pot_divisors=pot, zero_numerators=True)
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(40)
@given(st.sampled_from(["int8", "uint8"]), st.integers(-6, 6), st.sampled_from(PATTERNS[:-1]),
       st.sampled_from(ACTS), st.integers(0, 2**31))
def test_div_pot_scales_and_divisors_vs_litert_ref(oracle, dtype, e, pattern, act, seed):
    """Power-of-two scales and divisors: the exact quotient often ends in .5."""
    rng = np.random.default_rng(seed)
    scales = (2.0**-4, 2.0**-4, 2.0**e)
    model, inputs = _quantized(rng, np.dtype(dtype).type, pattern, act, scales, pot_divisors=True)
    assert_matches_litert(oracle, model, inputs, "reference")


# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,zp", [(np.int8, -3), (np.uint8, 128), (np.int16, 0), (np.int32, 0)])
def test_div_by_zero_point_input_error(oracle, dtype, zp):
    """LiteRT's CheckNonZero fails Eval when a divisor equals its zero point."""
    q = (0.1, zp) if dtype is not np.int32 else None
    model = binary_model(OP, dtype, [4], [4], q1=q, q2=q, qo=q)
    inputs = [np.full(4, 5, dtype), np.array([1, zp, 2, 3], dtype)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(InputError, match="division by zero"):
        run_ours(model, inputs)


def test_div_int32_min_by_minus_one_input_error():
    model = binary_model(OP, np.int32, [2], [2])
    with pytest.raises(InputError, match="INT32_MIN"):
        run_ours(model, [np.array([-(2**31), 4], np.int32), np.array([-1, 2], np.int32)])
