"""QUANTIZE, DEQUANTIZE, MEAN/SUM, pooling and resizing against LiteRT's "optimized"
and "xnnpack" paths.

* QUANTIZE float -> int: optimized 8-wide blocks of ``x * f32(1/s)`` rounded to even,
  scalar tail ``round(double(x) / double(s))``; XNNPACK ``rint(f32(x * f32(1/s)))``.
  Inputs on exact half steps, element counts 1..70 (blocks and tails).
* QUANTIZE int8/uint8 -> int8/uint8: optimized 16-wide blocks round the final shift
  ties-up (``MultiplyByQuantizedMultiplier4Rows``); XNNPACK int8->int8 and
  uint8->uint8 ``((x - zp) * lrintf(256 * ratio) + 128) >> 8``.
* DEQUANTIZE: optimized 8-wide blocks with two float32 roundings.
* MEAN (4-D, keep_dims, axes {1, 2}, 8-bit): optimized blocks of 16 channels ties-up,
  leftover channels gemmlowp; SUM (8/16-bit): the optimized float formula; XNNPACK
  MEAN/SUM of 8-bit tensors: float32 scale with a folded zero point, ties to even.
* MAX_POOL_2D on XNNPACK: clamp bounds quantized by XNNPACK; AVERAGE_POOL_2D identical.
* RESIZE_BILINEAR: XNNPACK's Q11 weights; uint8 optimized float kernel with other
  products; RESIZE_NEAREST_NEIGHBOR uint8 optimized fixed-point indices.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _paths_cases import check_paths, differs, ints, log_scale, ours, unary_model, zero_point
from harness import examples
from quantcore.schema.builder import ModelBuilder

quantize_cases = st.fixed_dictionaries(dict(
    dtype=st.sampled_from([np.int8, np.uint8, np.int16]), n=st.integers(1, 70),
    pot=st.booleans(), seed=st.integers(0, 2**31)))


@examples(70)
@given(quantize_cases)
def test_quantize_float_half_steps_vs_litert_optimized_xnnpack(oracle, c):
    """Every input an exact half step (k + 0.5) * s: the paths' rounding modes decide."""
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    s = float(2.0 ** rng.integers(-8, 0)) if c["pot"] else log_scale(rng, 1e-3, 1.0)
    zp = zero_point(rng, dtype)
    k = rng.integers(-140, 140, c["n"]) if dtype is not np.int16 else rng.integers(-40000, 40000, c["n"])
    x = ((k + 0.5) * np.float64(np.float32(s))).astype(np.float32)
    model = unary_model("QUANTIZE", np.float32, [c["n"]], None, (s, zp), out_dtype=dtype)
    check_paths(oracle, model, [x])


def test_quantize_float_block_and_tail_round_differently(oracle):
    """19 halves: the first 16 (two 8-wide blocks) round to even on the optimized path, the
    last 3 away from zero as on the reference path; XNNPACK rounds all to even."""
    s = 0.25
    x = ((np.arange(19) - 9 + 0.5) * s).astype(np.float32)
    model = unary_model("QUANTIZE", np.float32, [19], None, (s, 0), out_dtype=np.int8)
    ref, opt, xnn = (ours(model, [x], p)[0] for p in ("reference", "optimized", "xnnpack"))
    assert (opt[:16] != ref[:16]).any() and (opt[16:] == ref[16:]).all()
    assert (xnn != ref).any()
    check_paths(oracle, model, [x])


requant_cases = st.fixed_dictionaries(dict(
    pair=st.sampled_from([(np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8),
                          (np.uint8, np.uint8), (np.int8, np.int16), (np.int16, np.int8),
                          (np.int16, np.int16)]),
    ratio=st.sampled_from(["pot", "half", "free", "wide"]), n=st.integers(1, 70),
    seed=st.integers(0, 2**31)))


@examples(70)
@given(requant_cases)
def test_requantize_vs_litert_optimized_xnnpack(oracle, c):
    """Power-of-two ratios make exact ties: the optimized 16-wide blocks round them up,
    the scalar tail away from zero, XNNPACK up; ratios beyond [1/256, 128] are not
    delegated."""
    rng = np.random.default_rng(c["seed"])
    din, dout = c["pair"]
    si = log_scale(rng, 1e-3, 0.5) if din is not np.int16 else log_scale(rng, 1e-5, 1e-3)
    so = {"pot": si * float(2.0 ** rng.integers(-3, 5)), "half": si * 2.0 / 3.0,
          "free": si * log_scale(rng, 0.1, 10.0), "wide": si * float(rng.choice([1e-3, 300.0]))}[c["ratio"]]
    model = unary_model("QUANTIZE", din, [c["n"]], (si, zero_point(rng, din)), (so, zero_point(rng, dout)),
                        out_dtype=dout)
    check_paths(oracle, model, [ints(rng, [c["n"]], din)])


def test_requantize_int8_ties_differ_by_path(oracle):
    """Ratio 1/4 (M0 = 2^30, shift -1) on 32 values x = 4k + 2: x / 4 is a tie after an
    exact doubling high multiply; optimized blocks and XNNPACK round negative ties up, the
    reference away from zero."""
    x = (np.arange(-32, 0) * 4 + 2).astype(np.int8)
    model = unary_model("QUANTIZE", np.int8, [32], (0.1, 0), (0.4, 0))
    assert differs(model, [x]) and differs(model, [x], "reference", "xnnpack")
    check_paths(oracle, model, [x])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_dequantize_vs_litert_optimized_xnnpack(oracle, dtype):
    rng = np.random.default_rng(5)
    for n in (1, 7, 8, 9, 16, 33, 70):
        s = log_scale(rng, 1e-4, 1.0)
        model = unary_model("DEQUANTIZE", dtype, [n], (s, zero_point(rng, dtype)), None, out_dtype=np.float32)
        check_paths(oracle, model, [ints(rng, [n], dtype)])


def _reduce_model(op, dtype, shape, axes, keep, qi, qo):
    b = ModelBuilder()
    x = b.add_input("x", list(shape), dtype, scale=qi[0], zero_point=qi[1])
    a = b.add_constant("axis", np.array(axes, np.int32))
    red = {(v + len(shape)) % len(shape) for v in axes}
    out = [1 if i in red else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in red]
    y = b.add_tensor("y", out, dtype, scale=qo[0], zero_point=qo[1])
    b.add_operator(op, [x, a], [y], keep_dims=keep)
    b.mark_outputs(y)
    return b.to_bytes()


reduce_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["MEAN", "SUM"]), dtype=st.sampled_from([np.int8, np.uint8, np.int16]),
    c=st.integers(1, 40), hw=st.sampled_from([(1, 1), (2, 2), (4, 4), (2, 8), (3, 5), (7, 7), (8, 8)]),
    axes=st.sampled_from([[1, 2], [2, 1], [-3, -2], [3], [1], [0, 1, 2], [1, 2, 3]]),
    keep=st.booleans(), pot=st.booleans(), seed=st.integers(0, 2**31)))


@examples(80)
@given(reduce_cases)
def test_mean_sum_vs_litert_optimized_xnnpack(oracle, c):
    """Channel counts 1..40 (16-channel blocks and leftovers), power-of-two window sizes
    and scale ratios (exact ties), every axis combination."""
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    h, w = c["hw"]
    shape = [int(rng.integers(1, 3)), h, w, c["c"]]
    zp = (lambda: 0) if dtype is np.int16 else (lambda: zero_point(rng, dtype))
    si = log_scale(rng, 1e-3, 0.5) if dtype is not np.int16 else log_scale(rng, 1e-4, 1e-2)
    so = si * (float(2.0 ** rng.integers(-2, 3)) if c["pot"] else log_scale(rng, 0.3, 3.0))
    if c["op"] == "SUM":
        so *= h * w
    model = _reduce_model(c["op"], dtype, shape, c["axes"], c["keep"], (si, zp()), (so, zp()))
    check_paths(oracle, model, [ints(rng, shape, dtype)])


def test_mean_blocks_of_16_channels_round_ties_up(oracle):
    """MEAN over a 4x4 window of 37 channels with ratio 1: sums that are exact halves
    round up in the 32 block channels (optimized) and away from zero in the 5 leftovers;
    XNNPACK rounds them to even."""
    rng = np.random.default_rng(3)
    shape = [1, 4, 4, 37]
    x = ints(rng, shape, np.int8)
    x[0, 0, 0, :] = (x[0, 0, 0, :] // 2) * 2 + 8 - (x.sum(axis=(1, 2))[0] % 16)   # halves likely
    model = _reduce_model("MEAN", np.int8, shape, [1, 2], True, (0.1, 0), (0.1, 0))
    assert differs(model, [x]) and differs(model, [x], "reference", "xnnpack")
    check_paths(oracle, model, [x])


pool_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["MAX_POOL_2D", "AVERAGE_POOL_2D"]), dtype=st.sampled_from([np.int8, np.uint8, np.int16]),
    f=st.tuples(st.integers(1, 3), st.integers(1, 3)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]),
    scale=st.sampled_from([0.4, 0.48, 2.4, 0.25, 0.03]), c=st.integers(1, 40), seed=st.integers(0, 2**31)))


@examples(60)
@given(pool_cases)
def test_pooling_vs_litert_optimized_xnnpack(oracle, c):
    """Scales whose activation bounds are exact halves (0.4, 0.48, 2.4): XNNPACK's MAX_POOL
    clamp rounds them to even after adding the zero point."""
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    (fh, fw), (sh, sw) = c["f"], c["s"]
    if c["padding"] == "SAME":
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
    else:
        oh, ow = (h - fh) // sh + 1, (w - fw) // sw + 1
    if oh <= 0 or ow <= 0:
        return
    q = (c["scale"], zero_point(rng, dtype))
    b = ModelBuilder()
    x = b.add_input("x", [1, h, w, c["c"]], dtype, scale=q[0], zero_point=q[1])
    y = b.add_tensor("y", [1, oh, ow, c["c"]], dtype, scale=q[0], zero_point=q[1])
    b.add_operator(c["op"], [x], [y], padding=c["padding"], stride_w=sw, stride_h=sh, filter_width=fw,
                   filter_height=fh, fused_activation_function=c["act"])
    b.mark_outputs(y)
    check_paths(oracle, b.to_bytes(), [ints(rng, [1, h, w, c["c"]], dtype)])


resize_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]),
    dtype=st.sampled_from([np.int8, np.uint8, np.int16]), mode=st.integers(0, 2),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)), out=st.tuples(st.integers(1, 17), st.integers(1, 17)),
    c=st.integers(1, 20), seed=st.integers(0, 2**31)))


@examples(60)
@given(resize_cases)
def test_resize_vs_litert_optimized_xnnpack(oracle, c):
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    (h, w), (oh, ow) = c["hw"], c["out"]
    q = (0.1, zero_point(rng, dtype))
    b = ModelBuilder()
    x = b.add_input("x", [1, h, w, c["c"]], dtype, scale=q[0], zero_point=q[1])
    size = b.add_constant("size", np.array([oh, ow], np.int32))
    y = b.add_tensor("y", [1, oh, ow, c["c"]], dtype, scale=q[0], zero_point=q[1])
    b.add_operator(c["op"], [x, size], [y], align_corners=c["mode"] == 1, half_pixel_centers=c["mode"] == 2)
    b.mark_outputs(y)
    check_paths(oracle, b.to_bytes(), [ints(rng, [1, h, w, c["c"]], dtype)])


@pytest.mark.parametrize("h,w,oh,ow,mode,seed", [(6, 5, 15, 8, 0, 87989972), (4, 5, 29, 22, 1, 1167425779),
                                                  (4, 7, 9, 24, 2, 5880884)])
def test_resize_bilinear_xnnpack_and_uint8_optimized_differ(oracle, h, w, oh, ow, mode, seed):
    """uint8: LiteRT's optimized kernel multiplies the corner weights first (float32), so
    some x.5 boundaries fall the other way than in the reference; int8 on XNNPACK uses
    Q11 weights. Both differ from the reference here and both match LiteRT."""
    for dtype in (np.uint8, np.int8):
        b = ModelBuilder()
        x = b.add_input("x", [1, h, w, 4], dtype, scale=0.1, zero_point=0)
        size = b.add_constant("size", np.array([oh, ow], np.int32))
        y = b.add_tensor("y", [1, oh, ow, 4], dtype, scale=0.1, zero_point=0)
        b.add_operator("RESIZE_BILINEAR", [x, size], [y], align_corners=mode == 1, half_pixel_centers=mode == 2)
        b.mark_outputs(y)
        m = b.to_bytes()
        xin = ints(np.random.default_rng(seed), [1, h, w, 4], dtype)
        if dtype is np.uint8:
            assert differs(m, [xin])
        else:
            assert differs(m, [xin], "reference", "xnnpack")
        check_paths(oracle, m, [xin])


def test_resize_nearest_uint8_fixed_point_index_vs_litert_optimized(oracle):
    """uint8 without align_corners/half_pixel_centers: LiteRT's optimized kernel computes
    the source row as (y * ((in << 16) / out + 1)) >> 16, one row further than the float
    index for some rows of a large output."""
    b = ModelBuilder()
    x = b.add_input("x", [1, 3, 2, 3], np.uint8, scale=0.1, zero_point=0)
    size = b.add_constant("size", np.array([1000, 3], np.int32))
    y = b.add_tensor("y", [1, 1000, 3, 3], np.uint8, scale=0.1, zero_point=0)
    b.add_operator("RESIZE_NEAREST_NEIGHBOR", [x, size], [y])
    b.mark_outputs(y)
    m = b.to_bytes()
    xin = np.arange(18, dtype=np.uint8).reshape(1, 3, 2, 3)
    assert differs(m, [xin])
    check_paths(oracle, m, [xin])


@pytest.mark.parametrize("op", ["REDUCE_PROD", "REDUCE_MAX", "REDUCE_MIN"])
@pytest.mark.parametrize("axes", [[], [1], [0, 2]])
def test_reduce_prod_max_min_vs_litert_optimized_xnnpack(oracle, op, axes):
    """REDUCE_PROD multiplies in the same order on every path, but with no axis LiteRT's
    optimized kernel copies the input unscaled (the reference rescales it); REDUCE_MAX/MIN
    (delegated to XNNPACK for 8 bits) give the same values everywhere."""
    rng = np.random.default_rng(len(axes) + len(op))
    shape = [2, 3, 4]
    qo = (0.02, -1) if op == "REDUCE_PROD" else (0.05, 2)
    model = _reduce_model(op, np.int8, shape, axes, True, (0.05, 2), qo)
    x = rng.integers(-6, 7, shape).astype(np.int8)
    if op == "REDUCE_PROD" and not axes:
        assert differs(model, [x])
    check_paths(oracle, model, [x])
