"""The fast exact paths (runtime/ops/_gemm.py, _im2col.py, _fastconv.py) against the
plain float64 reference kernels and against LiteRT BUILTIN_REF.

Every model test asserts that the fast path was actually taken, that its outputs equal
the plain path's bit for bit (``_gemm.reference_kernels()`` prepares and runs the plain
code), and that they equal LiteRT's. The edge cases: a K large enough (with -128
inputs and weights) that one float32 GEMM would not be exact, so K is chunked or the
GEMM runs in float64; requantization windows checked exhaustively against the int64
fixed-point functions, including channels that take the int64 fallback.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier_array
from quantcore.runtime import Interpreter
from quantcore.runtime.ops import _gemm
from quantcore.runtime.ops._common import compute_padding
from quantcore.runtime.ops._gemm import ExactGemm, GemmlowpRequant
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _outputs(it: Interpreter) -> dict[int, np.ndarray]:
    sg = it.model.subgraphs[0]
    out = {}
    for t in range(len(sg.tensors)):
        try:
            out[t] = it.get_tensor(t)
        except Exception:
            pass
    return out


def check(oracle, model: bytes, inputs: list[np.ndarray], *, litert: bool = True,
          numerics: str = "reference", expect_fast: bool = True) -> Interpreter:
    """Fast == plain on every tensor; fast == LiteRT; the fast plan was used."""
    if litert:
        it, _ = assert_matches_litert(oracle, model, inputs, numerics)
    else:
        it = run_ours(model, inputs, numerics)
    ops = it._states[0].ops
    fast_ops = [p for p in ops if getattr(p.params, "fast", None) is not None]
    if expect_fast:
        assert fast_ops, "the fast path was not attached"
    with _gemm.reference_kernels():
        plain = run_ours(model, inputs, numerics)
        assert all(getattr(p.params, "fast", None) is None for p in plain._states[0].ops)
    a, b = _outputs(it), _outputs(plain)
    for t in b:
        np.testing.assert_array_equal(a[t], b[t], err_msg=f"tensor {t}: fast != plain")
    # prepared with the fast plan, run with the plain code (which then reads the plan's
    # float32 weights instead of its own float64 copy)
    saved = _gemm.ENABLED
    _gemm.ENABLED = False
    try:
        it.invoke()
    finally:
        _gemm.ENABLED = saved
    c = _outputs(it)
    for t in b:
        np.testing.assert_array_equal(c[t], b[t], err_msg=f"tensor {t}: plain on a fast plan != plain")
    return it


def _zp(rng, dtype) -> int:
    return int(rng.integers(-128, 128)) + (128 if dtype == np.uint8 else 0)


def _weights(rng, shape, dtype, extreme: bool) -> np.ndarray:
    if dtype == np.uint8:
        return (np.zeros(shape, np.uint8) if extreme else rng.integers(0, 256, shape)).astype(np.uint8)
    if extreme:
        return np.full(shape, -128, np.int8)
    return rng.integers(-127, 128, shape).astype(np.int8)


def conv_model(rng, dtype, n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, padding, groups, act,
               per_channel=True, extreme=False):
    b = ModelBuilder()
    cf = cin // groups
    oh, _, _ = compute_padding(0 if padding == "SAME" else 1, h, kh, sh, dh)
    ow, _, _ = compute_padding(0 if padding == "SAME" else 1, w, kw, sw, dw)
    s_in = random_scale(rng, 1e-3, 0.1)
    zp_in = (127 if dtype == np.int8 else 255) if extreme else _zp(rng, dtype)
    x = b.add_input("x", [n, h, w, cin], dtype, scale=s_in, zero_point=zp_in)
    nsc = cout if per_channel else 1
    s_w = np.array([random_scale(rng, 1e-3, 0.05) for _ in range(nsc)], np.float32)
    wq = _weights(rng, (cout, kh, kw, cf), dtype, extreme)
    if dtype == np.uint8:
        wt = b.add_constant("w", wq, scale=s_w, zero_point=255 if extreme else int(rng.integers(0, 256)))
    else:
        wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
    bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
    bq = rng.integers(-20000, 20000, cout).astype(np.int32)
    bias = b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (cout,)) if per_channel else bias_scale,
                          zero_point=0)
    k = kh * kw * cf
    spread = k * 255 * 128 if extreme else np.sqrt(k) * 128 * 128 / 40
    s_out = float(np.float32(s_in * float(np.median(s_w)) * spread / 128 * rng.uniform(0.5, 2)))
    zp_out = int(rng.integers(-50, 50)) + (128 if dtype == np.uint8 else 0)
    y = b.add_tensor("y", [n, oh, ow, cout], dtype, scale=s_out, zero_point=zp_out)
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding=padding, stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, fused_activation_function=act,
                   version=1 if groups == 1 else 6)
    b.mark_outputs(y)
    xin = (np.full([n, h, w, cin], np.iinfo(dtype).min, dtype) if extreme
           else random_input(rng, [n, h, w, cin], dtype))
    return b.to_bytes(), [xin]


def dw_model(rng, dtype, n, h, w, cin, dm, kh, kw, sh, sw, dh, dw, padding, act, per_channel=True,
             has_bias=True):
    b = ModelBuilder()
    cout = cin * dm
    oh, _, _ = compute_padding(0 if padding == "SAME" else 1, h, kh, sh, dh)
    ow, _, _ = compute_padding(0 if padding == "SAME" else 1, w, kw, sw, dw)
    s_in = random_scale(rng, 1e-3, 0.1)
    x = b.add_input("x", [n, h, w, cin], dtype, scale=s_in, zero_point=_zp(rng, dtype))
    nsc = cout if per_channel else 1
    s_w = np.array([random_scale(rng, 1e-3, 0.05) for _ in range(nsc)], np.float32)
    wq = _weights(rng, (1, kh, kw, cout), dtype, False)
    if dtype == np.uint8:
        wt = b.add_constant("w", wq, scale=s_w, zero_point=int(rng.integers(0, 256)))
    else:
        wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=3)
    inputs = [x, wt]
    if has_bias:
        bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
        bq = rng.integers(-20000, 20000, cout).astype(np.int32)
        inputs.append(b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (cout,)) if per_channel
                                     else bias_scale, zero_point=0))
    k = kh * kw
    s_out = float(np.float32(s_in * float(np.median(s_w)) * np.sqrt(k) * 128 * 128 / 40 / 128
                             * rng.uniform(0.5, 2)))
    zp_out = int(rng.integers(-50, 50)) + (128 if dtype == np.uint8 else 0)
    y = b.add_tensor("y", [n, oh, ow, cout], dtype, scale=s_out, zero_point=zp_out)
    b.add_operator("DEPTHWISE_CONV_2D", inputs, [y], padding=padding, stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, depth_multiplier=dm,
                   fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes(), [random_input(rng, [n, h, w, cin], dtype)]


def fc_model(rng, dtype, batches, k, units, act, per_channel=True, extreme=False, has_bias=True):
    b = ModelBuilder()
    s_in = random_scale(rng, 1e-3, 0.1)
    zp_in = (127 if dtype == np.int8 else 255) if extreme else _zp(rng, dtype)
    x = b.add_input("x", [batches, k], dtype, scale=s_in, zero_point=zp_in)
    nsc = units if per_channel else 1
    s_w = np.array([random_scale(rng, 1e-3, 0.05) for _ in range(nsc)], np.float32)
    wq = _weights(rng, (units, k), dtype, extreme)
    w_zp = (255 if extreme else int(rng.integers(0, 256))) if dtype == np.uint8 else 0
    wt = b.add_constant("w", wq, scale=s_w, zero_point=w_zp, quantized_dimension=0)
    bias_t = -1
    if has_bias:
        bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
        bq = rng.integers(-20000, 20000, units).astype(np.int32)
        bias_t = b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (units,)) if per_channel
                                else bias_scale, zero_point=0)
    spread = k * 255 * 128 if extreme else np.sqrt(k) * 128 * 128 / 3
    s_out = float(np.float32(s_in * float(np.median(s_w)) * spread / 128 * rng.uniform(0.5, 2)))
    zp_out = int(rng.integers(-50, 50)) + (128 if dtype == np.uint8 else 0)
    y = b.add_tensor("y", [batches, units], dtype, scale=s_out, zero_point=zp_out)
    b.add_operator("FULLY_CONNECTED", [x, wt, bias_t], [y], fused_activation_function=act)
    b.mark_outputs(y)
    xin = (np.full([batches, k], np.iinfo(dtype).min, dtype) if extreme
           else random_input(rng, [batches, k], dtype))
    return b.to_bytes(), [xin]


def _valid(h, w, kh, kw, sh, sw, dh, dw, padding) -> bool:
    p = 0 if padding == "SAME" else 1
    return compute_padding(p, h, kh, sh, dh)[0] > 0 and compute_padding(p, w, kw, sw, dw)[0] > 0


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------
def _requant_reference(a, m, s, zp, lo, hi):
    return np.clip(multiply_by_quantized_multiplier(np.asarray(a, np.int64), m, s) + zp, lo, hi)


def _window_points(m0: int, s0: int) -> np.ndarray:
    """Every accumulator whose output is within +-300 of zero when that range is small
    (e <= 8); otherwise +-3 around every output step and every RDBPOT tie."""
    e = -s0
    span = int(300 * 2.0 ** (31 + e) / m0) + 10
    if e <= 8:
        return np.arange(-span, span + 1, dtype=np.int64)
    v = np.arange(-300, 301)
    steps = np.floor(v * 2.0 ** (31 + e) / m0)
    q1 = np.concatenate([v * 2**e + 2 ** (e - 1), v * 2**e - 2 ** (e - 1)])   # SRDHM results at ties
    ties = np.floor(q1 * 2.0**31 / m0)
    centers = np.concatenate([steps, ties]).astype(np.int64)
    return (centers[:, None] + np.arange(-3, 4)[None, :]).reshape(-1)


@pytest.mark.parametrize("acc_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_dtype", [np.int8, np.uint8])
def test_requant_exhaustive_windows(acc_dtype, out_dtype):
    """Accumulators across the unsaturated window (every one, or every step and tie), for
    multipliers at the ends of [2^30, 2^31), shifts 0..-12, several zero points and
    activation ranges."""
    rng = np.random.default_rng(0)
    off = 128 if out_dtype == np.uint8 else 0
    for m0 in (2**30, 2**30 + 1, 1518500250, 1234567890, 2**31 - 1):
        for s0 in (0, -1, -3, -7, -12):
            for zp in (-128, -5, 0, 77):
                for lo, hi in ((-128, 127), (max(zp, -128), 127), (-20, 30), (3, 3)):
                    zp_o, lo_o, hi_o = zp + off, lo + off, hi + off
                    m, s = np.array([m0]), np.array([s0])
                    rq = GemmlowpRequant(m, s, zp_o, lo_o, hi_o, np.array([2**22]), acc_dtype, out_dtype)
                    assert rq.fast.all()
                    a = np.concatenate([_window_points(m0, s0), rng.integers(-2**22, 2**22, 200)])[:, None]
                    out = np.empty(a.shape, out_dtype)
                    rq(a.astype(acc_dtype), out)
                    np.testing.assert_array_equal(out, _requant_reference(a, m, s, zp_o, lo_o, hi_o),
                                                  err_msg=f"M={m0} shift={s0} zp={zp} [{lo}, {hi}]")


def test_requant_per_channel_with_fallback_channels():
    """Channels the float64 proof does not cover (shift > 0, e > 12, a possible int32
    wrap, M = 0) take the int64 fixed-point route; the others stay fast."""
    rng = np.random.default_rng(1)
    c = 12
    real = np.exp(rng.uniform(np.log(1e-4), np.log(0.5), c))
    real[1] = 3.0           # shift > 0
    real[2] = 2e-6          # e > 12
    real[3] = 1e-12         # flushed to M = 0
    m, s = quantize_multiplier_array(real)
    bound = np.full(c, 2**22)
    bound[4] = 2**31 + 5    # could wrap int32
    rq = GemmlowpRequant(m, s, -3, -128, 127, bound, np.float64, np.int8)
    assert list(np.nonzero(~rq.fast)[0]) == [1, 2, 3, 4]
    a = rng.integers(-2**22, 2**22, (500, c)).astype(np.int64)
    a[:, 4] = rng.integers(-2**33, 2**33, 500)
    out = np.empty(a.shape, np.int8)
    rq(a.astype(np.float64), out)
    ref = np.clip(multiply_by_quantized_multiplier(
        ((a + 2**31) & 0xFFFFFFFF) - 2**31, m, s) - 3, -128, 127)
    np.testing.assert_array_equal(out, ref)


@examples(40)
@given(st.integers(1, 2000), st.integers(1, 6), st.integers(1, 40), st.booleans(), st.integers(0, 2**31))
def test_requant_random_vs_fixedpoint(n, c, scale_exp, relu, seed):
    rng = np.random.default_rng(seed)
    real = np.exp(rng.uniform(np.log(1e-4), np.log(0.95), c))
    m, s = quantize_multiplier_array(real)
    zp = int(rng.integers(-128, 128))
    lo, hi = (zp, 127) if relu else (-128, 127)
    rq = GemmlowpRequant(m, s, zp, lo, hi, np.full(c, 2**24), np.float32, np.int8)
    a = np.round(rng.standard_normal((n, c)) * (1 / real) * scale_exp).clip(-2**24, 2**24).astype(np.int64)
    out = np.empty(a.shape, np.int8)
    tiles = rq.make_tiles(n)
    rq(a.astype(np.float32), out, tiles)
    np.testing.assert_array_equal(out, _requant_reference(a, m, s, zp, lo, hi))


@pytest.mark.parametrize("rows", [10, 2000])
@pytest.mark.parametrize("relu", [False, True])
def test_requant_widening_branches(rows, relu):
    """Blocks below and above ``_gemm.WIDEN_FIRST_ELEMENTS`` (float32 accumulators multiplied
    in a mixed float32 x float64 call, or widened to float64 first) give the int64
    fixed-point MultiplyByQuantizedMultiplier result (quantcore.fixedpoint, eq. 9),
    including accumulators at |a| = 2^24 and near every output step of the window."""
    rng = np.random.default_rng(rows + relu)
    c = 16
    real = np.exp(rng.uniform(np.log(1e-4), np.log(0.9), c))
    m, s = quantize_multiplier_array(real)
    zp = -7
    lo, hi = (zp, 127) if relu else (-128, 127)
    rq = GemmlowpRequant(m, s, zp, lo, hi, np.full(c, 2**24), np.float32, np.int8)
    assert (rows * c >= _gemm.WIDEN_FIRST_ELEMENTS) == (rows == 2000)
    steps = np.round(rng.uniform(-140, 140, (rows, c)) / real)
    a = (steps + rng.integers(-2, 3, (rows, c))).clip(-2**24, 2**24).astype(np.int64)
    a[0] = 2**24
    a[1] = -2**24
    out = np.empty(a.shape, np.int8)
    rq(a.astype(np.float32), out, rq.make_tiles(rows))
    np.testing.assert_array_equal(out, _requant_reference(a, m, s, zp, lo, hi))


@pytest.mark.parametrize("k,x_max,mode", [(100, 128, "f32"), (1500, 128, "f32chunks"),
                                          (9000, 128, "f64"), (600, 255, "f32chunks")])
def test_exact_gemm_k_bound(k, x_max, mode):
    """|x| = x_max, |w| = 128 everywhere: float32 alone is exact only while
    K * x_max * 128 <= 2^24; beyond, K is chunked (summed in float64) or float64 runs."""
    rng = np.random.default_rng(k)
    w = np.where(rng.random((7, k)) < 0.5, -128, 127).astype(np.int64)
    w[0] = -128
    const = rng.integers(-2**20, 2**20, 7)
    g = ExactGemm(w, const, x_max)
    assert g.mode == mode
    lo = -128 if x_max == 128 else 0
    x = np.where(rng.random((5, k)) < 0.5, lo, x_max - 1 if x_max == 128 else 255).astype(np.int64)
    x[0] = lo
    a = np.concatenate([x, np.ones((5, 1), np.int64)], axis=1).astype(g.in_dtype)
    got = g(a)
    want = x @ w.T + const
    np.testing.assert_array_equal(got.astype(np.int64), want)
    if mode != "f32":   # the single float32 GEMM really would be inexact here
        single = (x.astype(np.float32) @ w.T.astype(np.float32)).astype(np.int64) + const
        assert not np.array_equal(single, want) or k * x_max * 128 > 2**24


# ---------------------------------------------------------------------------
# CONV_2D
# ---------------------------------------------------------------------------
conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), cin=st.sampled_from([1, 3, 4, 8, 16]),
    cout=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def _conv(oracle, c, dtype=np.int8, groups=1, per_channel=True, extreme=False, numerics="reference"):
    assume(_valid(c["h"], c["w"], c["kh"], c["kw"], c["sh"], c["sw"], c["dh"], c["dw"], c["padding"]))
    rng = np.random.default_rng(c["seed"])
    model, inputs = conv_model(rng, dtype, c["n"], c["h"], c["w"], c["cin"], c["cout"] * groups, c["kh"],
                               c["kw"], c["sh"], c["sw"], c["dh"], c["dw"], c["padding"], groups, c["act"],
                               per_channel, extreme)
    return check(oracle, model, inputs, numerics=numerics, litert=numerics == "reference")


@examples(40)
@given(conv_cases)
def test_conv_int8_per_channel_fast_vs_plain_vs_litert_ref(oracle, c):
    _conv(oracle, c)


@examples(20)
@given(conv_cases)
def test_conv_int8_per_tensor_fast_vs_plain_vs_litert_ref(oracle, c):
    _conv(oracle, c, per_channel=False)


@examples(20)
@given(conv_cases)
def test_conv_uint8_fast_vs_plain_vs_litert_ref(oracle, c):
    _conv(oracle, c, dtype=np.uint8, per_channel=False)


@examples(12)
@given(conv_cases, st.integers(2, 3))
def test_conv_grouped_fast_vs_plain_vs_litert_ref(oracle, c, groups):
    _conv(oracle, dict(c, cin=2 * groups), groups=groups)


@examples(10)
@given(conv_cases, st.sampled_from(["optimized", "xnnpack"]))
def test_conv_fast_accumulators_on_other_paths(oracle, c, numerics):
    """The optimized/xnnpack requantizations receive the fast path's exact accumulators."""
    _conv(oracle, c, numerics=numerics)


def test_conv_large_image_many_blocks(oracle):
    """Several blocks of output rows (tiled constants), padding on every side, stride 2."""
    rng = np.random.default_rng(5)
    model, inputs = conv_model(rng, np.int8, 1, 70, 61, 16, 24, 3, 3, 2, 2, 1, 1, "SAME", 1, "RELU6")
    it = check(oracle, model, inputs)
    fast = it._states[0].ops[0].params.fast
    assert fast.oh > fast.block_rows


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("cin,k", [(2048, 1), (700, 3)])
def test_conv_k_bound_edge(oracle, dtype, cin, k):
    """Inputs at the type minimum, weights -128 (int8) / 0 with zero point 255 (uint8),
    input zero point at the maximum: |x - zp| * |w| sums far beyond 2^24, so one
    float32 GEMM would not be exact; the plan chunks K or uses float64."""
    rng = np.random.default_rng(cin)
    model, inputs = conv_model(rng, dtype, 1, 3, 3, cin, 4, k, k, 1, 1, 1, 1, "SAME", 1, "NONE",
                               per_channel=dtype == np.int8, extreme=True)
    it = check(oracle, model, inputs)
    gemm = it._states[0].ops[0].params.fast.gemms[0]
    assert gemm.mode in ("f32chunks", "f64")


# ---------------------------------------------------------------------------
# DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------
dw_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), cin=st.sampled_from([1, 3, 8, 16]),
    dm=st.sampled_from([1, 1, 2, 3]), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def _dw(oracle, c, dtype=np.int8, per_channel=True, has_bias=True, numerics="reference"):
    assume(_valid(c["h"], c["w"], c["kh"], c["kw"], c["sh"], c["sw"], c["dh"], c["dw"], c["padding"]))
    rng = np.random.default_rng(c["seed"])
    model, inputs = dw_model(rng, dtype, c["n"], c["h"], c["w"], c["cin"], c["dm"], c["kh"], c["kw"],
                             c["sh"], c["sw"], c["dh"], c["dw"], c["padding"], c["act"], per_channel,
                             has_bias)
    return check(oracle, model, inputs, numerics=numerics, litert=numerics == "reference")


@examples(40)
@given(dw_cases, st.booleans())
def test_depthwise_int8_per_channel_fast_vs_plain_vs_litert_ref(oracle, c, has_bias):
    _dw(oracle, c, has_bias=has_bias)


@examples(20)
@given(dw_cases)
def test_depthwise_int8_per_tensor_fast_vs_plain_vs_litert_ref(oracle, c):
    _dw(oracle, c, per_channel=False)


@examples(20)
@given(dw_cases)
def test_depthwise_uint8_fast_vs_plain_vs_litert_ref(oracle, c):
    _dw(oracle, c, dtype=np.uint8, per_channel=False)


@examples(10)
@given(dw_cases, st.sampled_from(["optimized", "xnnpack"]))
def test_depthwise_fast_accumulators_on_other_paths(oracle, c, numerics):
    _dw(oracle, c, numerics=numerics)


@pytest.mark.parametrize("extra,fast", [(0, True), (1, False)])
def test_depthwise_float32_bound_edge(oracle, extra, fast):
    """Depthwise float32 tap sums are exact while x_max * sum|w| + |bias - zp * sum w| <=
    2^24 (runtime/ops/_fastconv.py). Weights -128 on all 9 taps, input zero point -128,
    and channel 1's bias chosen so that its bound is exactly 2^24 (fast plan) or
    2^24 + 1 (no fast plan: the plain float64 code); both equal LiteRT's reference
    DepthwiseConvPerChannel (BUILTIN_REF) bit for bit."""
    rng = np.random.default_rng(24 + extra)
    b = ModelBuilder()
    cin = 4
    s_in = 0.02
    x = b.add_input("x", [1, 6, 7, cin], np.int8, scale=s_in, zero_point=-128)
    s_w = np.full(cin, 0.01, np.float32)
    wq = np.full((1, 3, 3, cin), -128, np.int8)
    wq[0, 1, 1, 0] = 77
    wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=3)
    sum_w = wq.astype(np.int64).sum(axis=(0, 1, 2))
    # bound_c = 128 * sum|w_c| + |b_c - zp * sum w_c| with zp = -128, sum w_1 = -1152
    bq = rng.integers(-20000, 20000, cin).astype(np.int64)
    bq[1] = 2**24 - 128 * 1152 + (-128) * int(sum_w[1]) + extra
    assert 128 * 1152 + abs(int(bq[1]) - (-128) * int(sum_w[1])) == 2**24 + extra
    bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
    bias = b.add_constant("b", bq.astype(np.int32), scale=bias_scale, zero_point=0)
    s_out = float(np.float32(s_in * 0.01 * 2**24 / 120))     # channel 1 lands near +100
    y = b.add_tensor("y", [1, 6, 7, cin], np.int8, scale=s_out, zero_point=-3)
    b.add_operator("DEPTHWISE_CONV_2D", [x, wt, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   depth_multiplier=1, fused_activation_function="NONE")
    b.mark_outputs(y)
    xin = rng.integers(-128, 128, (1, 6, 7, cin)).astype(np.int8)
    it = check(oracle, b.to_bytes(), [xin], expect_fast=fast)
    assert (it._states[0].ops[0].params.fast is not None) == fast


def test_depthwise_large_image_many_blocks(oracle):
    rng = np.random.default_rng(6)
    model, inputs = dw_model(rng, np.int8, 1, 120, 57, 48, 1, 3, 3, 2, 2, 1, 1, "SAME", "RELU6")
    it = check(oracle, model, inputs)
    fast = it._states[0].ops[0].params.fast
    assert fast.oh > fast.block_rows


# ---------------------------------------------------------------------------
# FULLY_CONNECTED
# ---------------------------------------------------------------------------
@examples(30)
@given(st.integers(1, 4), st.integers(1, 300), st.integers(1, 40), st.sampled_from(ACTS),
       st.sampled_from([(np.int8, True), (np.int8, False), (np.uint8, False)]), st.booleans(),
       st.integers(0, 2**31))
def test_fc_fast_vs_plain_vs_litert_ref(oracle, batches, k, units, act, dt_pc, has_bias, seed):
    dtype, per_channel = dt_pc
    rng = np.random.default_rng(seed)
    model, inputs = fc_model(rng, dtype, batches, k, units, act, per_channel, has_bias=has_bias)
    check(oracle, model, inputs)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("k", [1500, 9000])
def test_fc_k_bound_edge(oracle, dtype, k):
    rng = np.random.default_rng(k)
    model, inputs = fc_model(rng, dtype, 2, k, 5, "NONE", per_channel=dtype == np.int8, extreme=True)
    it = check(oracle, model, inputs)
    assert it._states[0].ops[0].params.fast.gemm.mode in ("f32chunks", "f64")


# ---------------------------------------------------------------------------
# whole models
# ---------------------------------------------------------------------------
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "models").glob("*_int8*.tflite")) + sorted(
    (ROOT / "tests" / "fixtures" / "models").glob("*_uint8_io.tflite"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_models_fast_equals_plain(path):
    rng = np.random.default_rng(0)
    it = Interpreter(model_path=path)
    inputs = []
    for d in it.get_input_details():
        shape = [int(s) for s in d["shape"]]
        inputs.append(rng.uniform(-1, 1, shape).astype(np.float32) if d["dtype"] == np.float32
                      else random_input(rng, shape, d["dtype"]))
    check(None, path.read_bytes(), inputs, litert=False)


MNV2 = ROOT / "benchmarks" / "models" / "mobilenet_v2_224_int8.tflite"


@pytest.mark.skipif(not MNV2.exists(), reason="benchmarks/models/mobilenet_v2_224_int8.tflite not built")
def test_mobilenet_v2_224_fast_equals_plain_and_litert(oracle):
    """Every tensor of MobileNetV2-224 (alpha 1.0, converter int8): fast == plain == LiteRT."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    check(oracle, MNV2.read_bytes(), [x])


# ---------------------------------------------------------------------------
# 8-bit binary ops as tables (runtime/ops/_lut2d.py, wired into ADD, SUB and MUL)
# ---------------------------------------------------------------------------
def _table_ops(it: Interpreter):
    from quantcore.runtime.ops._paths_common import PathParams

    for p in it._states[0].ops:
        base = p.params.base if isinstance(p.params, PathParams) else p.params
        if p.name in ("ADD", "SUB", "MUL") and getattr(base, "lut", None) is not None:
            yield p, base


@pytest.mark.parametrize("numerics", ["reference", "optimized", "xnnpack", "micro"])
def test_lut2d_tables_equal_direct_kernels_on_fixture_models(numerics):
    """Every int8/uint8 ADD/SUB/MUL of the fixture models (and MobileNetV2-224): the
    output through the tables (policy "always") equals the kernel code without tables
    (``eval_direct``) on the model's own activations, on each numerics path."""
    from quantcore.errors import NumericsPathError
    from quantcore.runtime.ops import _lut2d

    paths = sorted((ROOT / "tests" / "fixtures" / "models").glob("*int8*.tflite")) + sorted(
        (ROOT / "tests" / "fixtures" / "models").glob("*uint8*.tflite")) + ([MNV2] if MNV2.exists() else [])
    checked = 0
    for path in paths:
        try:
            it = Interpreter(model_path=path, numerics=numerics)
            it.allocate_tensors()
        except NumericsPathError:
            continue
        rng = np.random.default_rng(1)
        for d in it.get_input_details():
            shape = [int(s) for s in d["shape"]]
            it.set_tensor(d["index"], rng.uniform(-1, 1, shape).astype(np.float32)
                          if d["dtype"] == np.float32 else random_input(rng, shape, d["dtype"]))
        with _lut2d.policy("never"):
            it.invoke()
        st = it._states[0]
        for p, base in _table_ops(it):
            a, b = (st.values[i] for i in p.inputs)
            want = p.kernel.eval_direct(p.params, a, b)[0]
            with _lut2d.policy("always"):
                got = p.kernel.eval(p.params, a, b)[0]
            assert base.lut._built is not None
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{path.name} op {p.index} {numerics}")
            checked += 1
    assert checked >= 10


_TABLE_SHAPES = [lambda n: ([n], [n]), lambda n: ([2, 3, n], [n]), lambda n: ([3, 1], [3, n]),
                 lambda n: ([1], [2, n]), lambda n: ([2, 1, n], [2, 3, 1]), lambda n: ([4, 1, 3], [1, n, 3])]


def _binary_table_case(rng, op, dtype, shapes, n, out_kind):
    s1, s2 = _TABLE_SHAPES[shapes](n)
    if rng.random() < 0.5:
        s1, s2 = s2, s1
    lo, hi = (-128, 127) if dtype == np.int8 else (0, 255)
    sa, sb = (float(np.float32(np.exp(rng.uniform(np.log(1e-3), 0)))) for _ in range(2))
    if op == "MUL":
        so = sa * sb * float(np.exp(rng.uniform(np.log(1e-3), np.log(1e3 if out_kind else 1.0))))
    elif op == "SUB" and out_kind:   # output multiplier 2 max(s) / (2^20 s_out) above one
        so = max(sa, sb) * 2.0**-21 * float(np.exp(rng.uniform(np.log(1e-3), np.log(0.9))))
    else:
        so = max(sa, sb) * float(np.exp(rng.uniform(np.log(1e-2), np.log(4.0))))
    b = ModelBuilder()
    x1 = b.add_input("a", s1, dtype, scale=sa, zero_point=int(rng.integers(lo, hi + 1)))
    x2 = b.add_input("b", s2, dtype, scale=sb, zero_point=int(rng.integers(lo, hi + 1)))
    out_shape = list(np.broadcast_shapes(tuple(s1), tuple(s2)))
    y = b.add_tensor("y", out_shape, dtype, scale=float(np.float32(so)), zero_point=int(rng.integers(lo, hi + 1)))
    act = ACTS[int(rng.integers(0, 4))]
    if op == "SUB" and out_kind:
        act = "NONE"     # the bounds of the other activations overflow int32 at this scale
    b.add_operator(op, [x1, x2], [y], fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes(), [random_input(rng, s1, dtype), random_input(rng, s2, dtype)]


@examples(40)
@given(st.sampled_from(["ADD", "SUB", "MUL"]), st.sampled_from([np.int8, np.uint8]),
       st.integers(0, len(_TABLE_SHAPES) - 1), st.integers(1, 40), st.booleans(), st.integers(0, 2**31))
def test_lut2d_binary_ops_through_tables_vs_litert_all_paths(oracle, op, dtype, shapes, n, out_kind, seed):
    """int8/uint8 ADD/SUB/MUL with the tables forced (policy "always"), against LiteRT
    BUILTIN_REF, BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized: NEON bodies and scalar
    tails, i.e. two tables and a lane mask) and BUILTIN (XNNPACK); broadcast patterns of
    the five-fold and generic loops, SUB with an output multiplier above one."""
    from quantcore.errors import NumericsPathError
    from quantcore.runtime.ops import _lut2d

    rng = np.random.default_rng(seed)
    model, inputs = _binary_table_case(rng, op, dtype, shapes, n, out_kind)
    with _lut2d.policy("always"):
        for numerics in ("reference", "optimized", "xnnpack"):
            try:
                it, _ = assert_matches_litert(oracle, model, inputs, numerics)
            except NumericsPathError:     # a model LiteRT's kernel refuses (checked elsewhere)
                continue
            assert all(base.lut._built is not None for _, base in _table_ops(it))


def _binary_model(op, n, dtype, qa, qb, qo):
    b = ModelBuilder()
    x1 = b.add_input("a", [n], dtype, scale=qa[0], zero_point=qa[1])
    x2 = b.add_input("b", [n], dtype, scale=qb[0], zero_point=qb[1])
    y = b.add_tensor("y", [n], dtype, scale=qo[0], zero_point=qo[1])
    b.add_operator(op, [x1, x2], [y])
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("tail", [0, 5])
def test_lut2d_add_neon_tie_in_lanes_and_tail_vs_litert_all_paths(oracle, tail):
    """All 65536 int8 pairs (flat): with these scales the pair (90, -31) gives 80 in
    LiteRT's optimized NEON body and 81 in the reference formula. With ``tail`` extra
    elements (the pair again among them) the scalar tail must take the reference table:
    two tables and a lane mask, against LiteRT on every path (tables forced)."""
    from quantcore.runtime.ops import _lut2d

    v = np.arange(-128, 128)
    x1 = np.concatenate([np.repeat(v, 256), np.full(tail, 90)]).astype(np.int8)
    x2 = np.concatenate([np.tile(v, 256), np.full(tail, -31)]).astype(np.int8)
    model = _binary_model("ADD", x1.size, np.int8, (0.01138146873563528, -105),
                          (0.008823296055197716, -95), (0.015339269302785397, -101))
    with _lut2d.policy("always"):
        outs = {}
        for numerics in ("reference", "optimized", "xnnpack"):
            it, _ = assert_matches_litert(oracle, model, [x1, x2], numerics)
            outs[numerics] = it.get_tensor(it.get_output_details()[0]["index"])
    pair = (90 + 128) * 256 + (-31 + 128)        # position of (90, -31) in the grid
    assert outs["reference"][pair] == 81 and outs["optimized"][pair] == 80
    if tail:
        assert np.all(outs["optimized"][-tail:] == 81)


def test_lut2d_sub_output_multiplier_above_one_lanes_and_tail_vs_litert_ref(oracle):
    """SUB with an output multiplier of 600 on the flat path: the wheel's vector lanes
    (first 4 * (n // 4) elements) and scalar tail compute the undefined negative shift
    differently; tables forced, against LiteRT BUILTIN_REF."""
    from quantcore.runtime.ops import _lut2d

    rng = np.random.default_rng(3)
    n = 4 * 60 + 3
    x1 = rng.integers(-128, 128, n).astype(np.int8)
    x2 = rng.integers(-128, 128, n).astype(np.int8)
    x1[-3:], x2[-3:] = x1[:3], x2[:3]          # the same pairs in lanes and in the tail
    model = _binary_model("SUB", n, np.int8, (0.02, 3), (0.03, -4), (0.03 * 2.0**-21 / 150, 1))
    with _lut2d.policy("always"):
        it, _ = assert_matches_litert(oracle, model, [x1, x2], "reference")
    out = it.get_tensor(it.get_output_details()[0]["index"])
    assert it._states[0].ops[0].params.lut._built.positions is not None
    assert not np.array_equal(out[:3], out[-3:])   # lanes and tail differ on equal pairs


def test_lut2d_policy_auto_builds_after_enough_work():
    """policy "auto": a 75264-element ADD builds its tables on the first call; a
    16-element one runs the kernel until its calls add up to 65536 elements of credit."""
    from quantcore.runtime.ops import _lut2d

    def model(n):
        b = ModelBuilder()
        x1 = b.add_input("a", [n], np.int8, scale=0.02, zero_point=3)
        x2 = b.add_input("b", [n], np.int8, scale=0.03, zero_point=-7)
        y = b.add_tensor("y", [n], np.int8, scale=0.05, zero_point=1)
        b.add_operator("ADD", [x1, x2], [y])
        b.mark_outputs(y)
        return b.to_bytes()

    rng = np.random.default_rng(0)
    with _lut2d.policy("auto"):
        for n, calls_before_tables in ((75264, 0), (16, (65536 + 1515) // 1516 - 1)):
            it = run_ours(model(n), [random_input(rng, [n], np.int8), random_input(rng, [n], np.int8)])
            p = it._states[0].ops[0].params
            want = it.get_tensor(it.get_output_details()[0]["index"]).copy()
            for _ in range(calls_before_tables - 1):
                it.invoke()
            assert (p.lut._built is None) == (calls_before_tables > 0)
            it.invoke()
            assert p.lut._built is not None
            np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), want)


def _fc_power_of_two_model(rng, dtype, k, units, act):
    """s_in * s_w / s_out = 2^-4 exactly: accumulators = 8 (mod 16) are rounding ties."""
    b = ModelBuilder()
    x = b.add_input("x", [3, k], dtype, scale=2.0**-6, zero_point=_zp(rng, dtype))
    wq = _weights(rng, (units, k), dtype, False)
    wt = b.add_constant("w", wq, scale=np.full(1, 2.0**-7, np.float32),
                        zero_point=int(rng.integers(0, 256)) if dtype == np.uint8 else 0)
    bq = rng.integers(-20000, 20000, units).astype(np.int32)
    bias = b.add_constant("b", bq, scale=np.float32(2.0**-13), zero_point=0)
    zp_out = int(rng.integers(-20, 20)) + (128 if dtype == np.uint8 else 0)
    y = b.add_tensor("y", [3, units], dtype, scale=2.0**-9 * np.sqrt(k) * 8, zero_point=zp_out)
    b.add_operator("FULLY_CONNECTED", [x, wt, bias], [y], fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_fc_double_requantization_ties(oracle, dtype, k):
    """The fast output stage copysign(floor(|v| + 0.5), v) on exact .5 ties of both signs."""
    rng = np.random.default_rng(k)
    model = _fc_power_of_two_model(rng, dtype, k, 9, "NONE")
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    p = it._states[0].ops[0].params
    assert p.fast.double
    # the scale really is a power of two here, so ties occur
    assert float(np.log2(p.effective_scale[0])).is_integer()
    for seed in range(4):
        check(oracle, model, [random_input(np.random.default_rng(seed), [3, k], dtype)])


def test_fc_double_requant_excludes_just_below_half():
    from quantcore.runtime.ops._fastconv import _double_requant_ok

    assert _double_requant_ok(np.array([1000.0]), np.array([1e-3]))
    assert not _double_requant_ok(np.array([1000.0]), np.array([np.nextafter(0.5, 0.0)]))
    assert not _double_requant_ok(np.array([2.0**42]), np.array([1e-3]))   # |v| could reach 2^31
