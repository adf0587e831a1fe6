"""ADD, SUB, MUL (and the binary ops whose paths coincide: DIV, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM, PRELU) against LiteRT's "optimized" (BUILTIN_WITHOUT_DEFAULT_DELEGATES)
and "xnnpack" (BUILTIN) paths.

What differs from the reference path (runtime/ops/_paths_binary.py):

* optimized ADD: 16-wide (int8) / 8-wide (uint8) NEON bodies round the input rescale
  once instead of twice, the scalar-broadcast body floors it, and every 8-bit body
  narrows through int16 lanes (``vmovn_s32`` + zero point in int16: wraps on tiny
  output scales); int16 ADD has a 16-wide NEON body; tails use the reference formula.
  Element counts 1..70 and broadcast shapes cover blocks, tails and the five-fold loop.
* optimized MUL: the same narrowing through int16 lanes.
* xnnpack ADD/SUB: integer multipliers and a final shift rounding ties toward +inf;
  xnnpack MUL: float32 requantization rounding ties to even; fused activations
  clamped at ``xnn_qs8_quantize`` bounds (ties to even).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from _paths_cases import (NON_REF, binary_model, check_paths, differs, ints, log_scale,
                          unary_model, zero_point)
from harness import examples
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
# (shape1, shape2): flat, five-fold with an inner run (elementwise kernel), five-fold with
# a one-element inner run (scalar-broadcast kernel), both swapped, and a generic broadcast.
PATTERNS = [
    lambda n: ([n], [n]), lambda n: ([1, n], [n]), lambda n: ([2, 3, n], [n]),
    lambda n: ([n], [3, 2, n]), lambda n: ([3, 1], [3, n]), lambda n: ([1], [2, n]),
    lambda n: ([2, n], [1]), lambda n: ([2, 1, n], [2, 3, 1]), lambda n: ([4, 1, 3], [1, n, 3]),
    lambda n: ([2, n, 1, 3], [2, 1, 5, 3]),
]


def _case(rng, op, dtype, pattern, n, tiny_out):
    s1, s2 = PATTERNS[pattern](n)
    if rng.random() < 0.5:
        s1, s2 = s2, s1
    zp = (lambda: 0) if dtype is np.int16 else (lambda: zero_point(rng, dtype))
    lo_in, hi_in = (1e-5, 1e-3) if dtype is np.int16 else (1e-3, 1.0)
    sa, sb = log_scale(rng, lo_in, hi_in), log_scale(rng, lo_in, hi_in)
    if op == "MUL" and dtype is np.int16:
        so = sa * sb * 32768 * log_scale(rng, 0.05, 1.0)
    elif op == "MUL":
        so = sa * sb * (log_scale(rng, 1e-1, 1e3) if tiny_out else log_scale(rng, 1e-3, 1.0))
    else:
        so = max(sa, sb) * (log_scale(rng, 1e-3, 1e-1) if tiny_out else log_scale(rng, 0.5, 4.0))
    so = float(np.float32(so))
    opts = {"fused_activation_function": ACTS[int(rng.integers(0, 4))]}
    if dtype is np.int16 and op != "MUL":
        opts["pot_scale_int16"] = False
    model = binary_model(op, dtype, s1, s2, (sa, zp()), (sb, zp()), (so, zp()), **opts)
    return model, [ints(rng, s1, dtype), ints(rng, s2, dtype)]


cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["ADD", "SUB", "MUL"]), dtype=st.sampled_from([np.int8, np.uint8]),
    pattern=st.integers(0, len(PATTERNS) - 1), n=st.integers(1, 70), tiny_out=st.booleans(),
    seed=st.integers(0, 2**31)))


@examples(110)
@given(cases)
def test_add_sub_mul_8bit_vs_litert_optimized_xnnpack(oracle, c):
    rng = np.random.default_rng(c["seed"])
    model, inputs = _case(rng, c["op"], c["dtype"], c["pattern"], c["n"], c["tiny_out"])
    check_paths(oracle, model, inputs)


@examples(40)
@given(cases)
def test_add_sub_mul_int16_vs_litert_optimized_xnnpack(oracle, c):
    rng = np.random.default_rng(c["seed"])
    model, inputs = _case(rng, c["op"], np.int16, c["pattern"], c["n"], False)
    check_paths(oracle, model, inputs)


def test_add_int8_all_input_pairs_vs_litert_optimized_xnnpack(oracle):
    """All 65536 (x1, x2) int8 pairs, flat (every element in a 16-wide block): with these
    scales exactly one pair, (90, -31), rounds differently in the NEON body (80) than in
    the reference (81): the single-rounding input rescale decides a final tie."""
    v = np.arange(-128, 128)
    x1, x2 = np.repeat(v, 256).astype(np.int8), np.tile(v, 256).astype(np.int8)
    model = binary_model("ADD", np.int8, [x1.size], [x1.size], (0.01138146873563528, -105),
                         (0.008823296055197716, -95), (0.015339269302785397, -101))
    assert differs(model, [x1, x2])
    check_paths(oracle, model, [x1, x2])


def test_add_int16_neon_block_rounding_vs_litert_optimized(oracle):
    """Two int16 pairs where the 16-wide NEON body differs from the reference by 1 LSB,
    placed in the vector block (positions 0, 1) and in the scalar tail (16, 17)."""
    pairs = [(-29209, 10957), (23007, -8355)]
    x1 = np.zeros(18, np.int16)
    x2 = np.zeros(18, np.int16)
    for k, (a, b) in enumerate(pairs):
        x1[k], x2[k] = a, b
        x1[16 + k], x2[16 + k] = a, b
    model = binary_model("ADD", np.int16, [18], [18], (0.0003231707669328898, 0),
                         (0.0008227491634897888, 0), (4.1957649955293164e-05, 0), pot_scale_int16=False)
    from _paths_cases import ours
    out_ref, out_opt = ours(model, [x1, x2], "reference")[0], ours(model, [x1, x2], "optimized")[0]
    assert (out_ref[:2] != out_opt[:2]).all() and (out_ref[16:] == out_opt[16:]).all()
    check_paths(oracle, model, [x1, x2])


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_int16_lane_wrap_on_tiny_output_scale_vs_litert_optimized(oracle, op, dtype):
    """A tiny output scale sends the rescaled value beyond int16: the NEON bodies keep the
    low 16 bits (ADD: vmovn) or saturate to int16 (MUL: vqmovn) and then add the zero point
    in int16, so whole blocks come out at the other end of the range (up to 255 LSB)."""
    rng = np.random.default_rng(3)
    n = 64
    so = 1e-4 if op == "ADD" else 1e-6
    zp = 100 if dtype is np.int8 else 200
    model = binary_model(op, dtype, [n], [n], (0.3, 0 if dtype is np.int8 else 128),
                         (0.7, 0 if dtype is np.int8 else 128), (so, zp))
    inputs = [ints(rng, [n], dtype), ints(rng, [n], dtype)]
    assert differs(model, inputs)
    check_paths(oracle, model, inputs)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_xnnpack_ties_vs_litert_xnnpack(oracle, op):
    """Power-of-two scale ratios put many exact halves before the final rounding: XNNPACK's
    ADD/SUB shift rounds them up and its MUL rounds them to even, the reference away."""
    rng = np.random.default_rng(5)
    n = 256
    s = 0.01
    qo = (4 * s * s, -3) if op == "MUL" else (2 * s, -3)
    model = binary_model(op, np.int8, [n], [n], (s, 3), (s, -7), qo)
    inputs = [ints(rng, [n], np.int8), ints(rng, [n], np.int8)]
    assert differs(model, inputs, "reference", "xnnpack")
    check_paths(oracle, model, inputs)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("act,so,zp", [("RELU_N1_TO_1", 0.4, 0), ("RELU_N1_TO_1", 0.4, 2),
                                        ("RELU6", 0.48, 0), ("RELU6", 2.4, 2), ("RELU", 0.1, -128)])
def test_xnnpack_activation_bound_ties_vs_litert_xnnpack(oracle, op, act, so, zp):
    """Bounds whose bound/scale is an exact half: LiteRT rounds the clamp bound away from
    zero, XNNPACK's clamp node rounds f32(bound/scale + zp) to even."""
    rng = np.random.default_rng(11)
    model = binary_model(op, np.int8, [64], [64], (0.1, 0), (0.1, 0), (so, zp),
                         fused_activation_function=act)
    check_paths(oracle, model, [ints(rng, [64], np.int8), ints(rng, [64], np.int8)])


def test_xnnpack_scale_ratio_outside_range_falls_back_to_optimized(oracle):
    """f32(s_in / s_out) >= 256: the delegate refuses ADD and LiteRT's NEON kernel runs
    (including its int16-lane wrap), which quantcore's xnnpack path reproduces."""
    rng = np.random.default_rng(2)
    model = binary_model("ADD", np.int8, [48], [48], (0.5, 0), (0.25, 0), (1e-3, 50))
    inputs = [ints(rng, [48], np.int8), ints(rng, [48], np.int8)]
    from _paths_cases import ours
    np.testing.assert_array_equal(ours(model, inputs, "xnnpack")[0], ours(model, inputs, "optimized")[0])
    check_paths(oracle, model, inputs)


same_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"]),
    dtype=st.sampled_from([np.int8, np.uint8, np.int16]), pattern=st.integers(0, len(PATTERNS) - 1),
    n=st.integers(1, 40), seed=st.integers(0, 2**31)))


@examples(40)
@given(same_cases)
def test_binary_ops_identical_on_every_path_vs_litert(oracle, c):
    """DIV, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM: LiteRT's optimized resolver computes the
    reference arithmetic and XNNPACK takes only their float versions."""
    rng = np.random.default_rng(c["seed"])
    op, dtype = c["op"], c["dtype"]
    assume(not (op == "SQUARED_DIFFERENCE" and dtype is not np.int8))
    assume(not (op == "DIV" and dtype is np.int16))
    s1, s2 = PATTERNS[c["pattern"]](c["n"])
    zp = (lambda: 0) if dtype is np.int16 else (lambda: zero_point(rng, dtype))
    if op in ("MAXIMUM", "MINIMUM"):
        q = (0.05, zp())
        q1 = q2 = qo = q
    else:
        q1, q2 = (log_scale(rng, 1e-3, 1), zp()), (log_scale(rng, 1e-3, 1), zp())
        qo = (log_scale(rng, 1e-2, 2), zp())
    model = binary_model(op, dtype, s1, s2, q1, q2, qo)
    x1, x2 = ints(rng, s1, dtype), ints(rng, s2, dtype)
    if op == "DIV":
        x2 = np.where(x2.astype(np.int64) == q2[1], q2[1] + 1, x2).astype(dtype)
    check_paths(oracle, model, [x1, x2])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_prelu_identical_on_every_path_vs_litert(oracle, dtype):
    rng = np.random.default_rng(4)
    for n in (1, 7, 16, 33):
        b = ModelBuilder()
        x = b.add_input("x", [1, 2, 3, n], dtype, scale=0.05, zero_point=zero_point(rng, dtype))
        alpha = b.add_constant("alpha", ints(rng, [n], dtype), scale=0.01,
                               zero_point=zero_point(rng, dtype))
        y = b.add_tensor("y", [1, 2, 3, n], dtype, scale=0.07, zero_point=zero_point(rng, dtype))
        b.add_operator("PRELU", [x, alpha], [y])
        b.mark_outputs(y)
        check_paths(oracle, b.to_bytes(), [ints(rng, [1, 2, 3, n], dtype)])


@pytest.mark.parametrize("path", NON_REF)
def test_float_add_mul_vs_litert(oracle, path):
    """Float ADD/MUL: exact IEEE arithmetic on every path."""
    rng = np.random.default_rng(9)
    for op in ("ADD", "MUL", "SUB"):
        b = ModelBuilder()
        x1 = b.add_input("x1", [3, 20], np.float32)
        x2 = b.add_input("x2", [20], np.float32)
        y = b.add_tensor("y", [3, 20], np.float32)
        b.add_operator(op, [x1, x2], [y], fused_activation_function="RELU6")
        b.mark_outputs(y)
        check_paths(oracle, b.to_bytes(), [rng.uniform(-4, 4, (3, 20)).astype(np.float32),
                                           rng.uniform(-4, 4, 20).astype(np.float32)], (path,))


def test_unary_helper_builds_models():
    """The shared builder gives a model quantcore runs on every path (sanity of the helper)."""
    m = unary_model("RELU", np.int8, [4], (0.1, 0), (0.1, 0))
    from _paths_cases import ours
    assert ours(m, [np.arange(4, dtype=np.int8)], "xnnpack")[0].dtype == np.int8
