"""Hybrid (dynamic-range) CONV_2D against LiteRT BUILTIN_REF: float32 input, int8
filter, float32 bias. Distinct per-channel scales take the asymmetric per-channel
kernel, one scale (or equal per-channel scales) the symmetric per-tensor kernel,
grouped convolutions the per-channel kernel; a legacy uint8 filter is read as int8.

The outputs are compared bit for bit (rtol 0): quantcore repeats LiteRT's float32
operations in LiteRT's order, and the harness tolerance (1e-6 of the output range)
is checked as well. The input quantizers of ``runtime.ops._hybrid`` are also
exercised on constructed rounding ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError
from quantcore.runtime.ops import _hybrid
from quantcore.runtime.ops._common import compute_padding
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def hybrid_conv_model(rng, n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, padding, groups, act, scales_kind,
                      *, filter_dtype=np.int8, weights=None, scales=None, input_scale_mult=None):
    b = ModelBuilder()
    cf = cin // groups
    oh, _, _ = compute_padding(0 if padding == "SAME" else 1, h, kh, sh, dh)
    ow, _, _ = compute_padding(0 if padding == "SAME" else 1, w, kw, sw, dw)
    x = b.add_input("x", [n, h, w, cin], np.float32)
    if scales is None:
        base = random_scale(rng, 1e-3, 0.05)
        if scales_kind == "per_channel":
            scales = (base * rng.uniform(0.5, 2, cout)).astype(np.float32)
            if cout == 1:
                scales = np.float32(base)
        elif scales_kind == "equal":
            scales = np.full(cout, base, np.float32)
        else:
            scales = np.float32(base)
    if weights is None:
        if filter_dtype == np.uint8:
            weights = rng.integers(0, 256, (cout, kh, kw, cf)).astype(np.uint8)
        else:
            weights = rng.integers(-127, 128, (cout, kh, kw, cf)).astype(np.int8)
    wt = b.add_constant("w", weights, scale=scales, zero_point=128 if filter_dtype == np.uint8 else 0,
                        quantized_dimension=0)
    bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
    y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding=padding, stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, fused_activation_function=act,
                   version=2 if groups == 1 else 6)
    b.mark_outputs(y)
    mult = np.float32(rng.uniform(0.1, 10)) if input_scale_mult is None else input_scale_mult
    xin = (random_input(rng, [n, h, w, cin], np.float32) * mult).astype(np.float32)
    return b.to_bytes(), [xin]


conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), cin=st.sampled_from([1, 2, 3, 4, 8]),
    cout=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def _valid(c):
    return all(compute_padding(0 if c["padding"] == "SAME" else 1, size, k, s, d)[0] > 0
               for size, k, s, d in ((c["h"], c["kh"], c["sh"], c["dh"]), (c["w"], c["kw"], c["sw"], c["dw"])))


def _run(oracle, c, scales_kind, groups=1, rtol=0.0, **kw):
    assume(_valid(c))
    rng = np.random.default_rng(c["seed"])
    model, inputs = hybrid_conv_model(rng, c["n"], c["h"], c["w"], c["cin"] * groups, c["cout"] * groups, c["kh"],
                                      c["kw"], c["sh"], c["sw"], c["dh"], c["dw"], c["padding"], groups, c["act"],
                                      scales_kind, **kw)
    assert_matches_litert(oracle, model, inputs, "reference", rtol=rtol)


@examples(80)
@given(conv_cases)
def test_hybrid_conv_per_channel_vs_litert_ref(oracle, c):
    """EvalHybridPerChannel: asymmetric input quantization per batch."""
    _run(oracle, c, "per_channel")


@examples(60)
@given(conv_cases)
def test_hybrid_conv_per_tensor_vs_litert_ref(oracle, c):
    """EvalHybrid: symmetric input quantization, factor * filter scale."""
    _run(oracle, c, "per_tensor")


@examples(30)
@given(conv_cases)
def test_hybrid_conv_equal_per_channel_scales_vs_litert_ref(oracle, c):
    """Per-channel scales that are all equal take the per-tensor (symmetric) kernel."""
    _run(oracle, c, "equal")


@examples(30)
@given(conv_cases, st.integers(2, 3), st.sampled_from(["per_channel", "equal"]))
def test_hybrid_grouped_conv_vs_litert_ref(oracle, c, groups, scales_kind):
    """Grouped hybrid convolutions always take the per-channel (asymmetric) kernel."""
    c = dict(c, cin=int(min(c["cin"], 3)))
    _run(oracle, c, scales_kind, groups=groups)


@examples(20)
@given(conv_cases, st.sampled_from(["per_channel", "per_tensor"]))
def test_hybrid_conv_uint8_filter_vs_litert_ref(oracle, c, scales_kind):
    """A uint8 filter is read as int8 with scale[0] (legacy hybrid weights)."""
    _run(oracle, c, scales_kind, filter_dtype=np.uint8)


@examples(20)
@given(conv_cases, st.sampled_from(["per_channel", "per_tensor"]))
def test_hybrid_conv_harness_tolerance_vs_litert_ref(oracle, c, scales_kind):
    _run(oracle, c, scales_kind, rtol=1e-6)


@examples(20)
@given(st.integers(0, 2**31), st.integers(0, 7), st.sampled_from(["per_channel", "per_tensor"]))
def test_hybrid_conv_quantization_ties_vs_litert_ref(oracle, seed, tail, scales_kind):
    """Inputs whose on-the-fly quantization hits exact .5 and the x + 0.5 float rounding.

    Asymmetric: min -128, max 127 give factor 1 and offset 0. Symmetric: max |v| = 127
    gives factor 1. So v * inv = v, and 0.49999997 rounds to 1 in the 8-wide blocks
    (0.49999997f + 0.5f == 1.0f) but to 0 in the size % 8 tail.
    """
    rng = np.random.default_rng(seed)
    size = 8 * int(rng.integers(1, 4)) + tail
    vals = rng.choice(np.array([0.5, -0.5, 1.5, -2.5, 0.49999997, -0.49999997, 3.0, 126.5, -126.5],
                               np.float32), size)
    vals[0] = 127.0
    vals[-1] = -128.0 if scales_kind == "per_channel" else -127.0
    rng.shuffle(vals)
    model, _ = hybrid_conv_model(rng, 1, 1, size, 1, 3, 1, 3, 1, 1, 1, 1, "SAME", 1, "NONE", scales_kind)
    assert_matches_litert(oracle, model, [vals.reshape(1, 1, size, 1)], "reference", rtol=0.0)


# -- the input quantizers themselves ----------------------------------------------
def test_asymmetric_quantize_floats_neon_rounding():
    """Blocks of 8 use trunc(f32(x + 0.5)); the tail uses roundf; zero point added after."""
    v = np.array([127, -128, 0.49999997, -0.49999997, 2.5, -2.5, 1.25, 0,   # block
                  0.49999997, -0.49999997, 2.5, -2.5], np.float32)            # tail
    q, sf, off = _hybrid.asymmetric_quantize_floats(v[None])
    assert sf[0] == np.float32(1.0) and off[0] == 0
    assert q[0].tolist() == [127, -128, 1, -1, 3, -3, 1, 0, 0, 0, 3, -3]


def test_symmetric_quantize_floats_range_and_zero():
    q, sf = _hybrid.symmetric_quantize_floats(np.array([[0.0] * 9, [1.0, -2.0, 0.5, 0, 0, 0, 0, 0, 2.0]],
                                                       np.float32))
    assert sf.tolist() == [1.0, float(np.float32(np.float32(2.0) / np.float32(127)))]
    assert q[0].tolist() == [0] * 9
    assert q[1].tolist()[:3] == [64, -127, 32] and q[1, 8] == 127


# -- malformed models ----------------------------------------------------------------
def test_hybrid_grouped_conv_per_tensor_raises(oracle):
    """LiteRT refuses a grouped hybrid conv with one scale (size != dims[0])."""
    rng = np.random.default_rng(0)
    model, inputs = hybrid_conv_model(rng, 1, 4, 4, 4, 4, 3, 3, 1, 1, 1, 1, "SAME", 2, "NONE", "per_tensor")
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="scales"):
        run_ours(model, inputs)


def test_hybrid_conv_per_channel_wrong_dimension_raises(oracle):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.float32)
    w = b.add_constant("w", rng.integers(-127, 128, (2, 3, 3, 2)).astype(np.int8), scale=[0.01, 0.02],
                       zero_point=0, quantized_dimension=3)
    bias = b.add_constant("b", np.zeros(2, np.float32))
    y = b.add_tensor("y", [1, 4, 4, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros((1, 4, 4, 2), np.float32)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="dimension 0"):
        run_ours(model, inputs)


def test_hybrid_conv_missing_filter_quantization_raises(oracle):
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.float32)
    w = b.add_constant("w", np.ones((2, 3, 3, 2), np.int8))
    bias = b.add_constant("b", np.zeros(2, np.float32))
    y = b.add_tensor("y", [1, 4, 4, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="no quantization"):
        run_ours(b.to_bytes(), [np.zeros((1, 4, 4, 2), np.float32)])


def test_hybrid_conv_int32_bias_raises(oracle):
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.float32)
    w = b.add_constant("w", np.ones((2, 3, 3, 2), np.int8), scale=0.1, zero_point=0)
    bias = b.add_constant("b", np.zeros(2, np.int32))
    y = b.add_tensor("y", [1, 4, 4, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros((1, 4, 4, 2), np.float32)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="bias"):
        run_ours(model, inputs)


@examples(30)
@given(conv_cases, st.sampled_from(["per_channel", "per_tensor"]))
def test_hybrid_conv_filter_minus_128_vs_litert_ref(oracle, c, scales_kind):
    """int8 filter values of -128 (outside the narrow range quantizers produce): the
    per-tensor kernel's SSE dot product mis-multiplies them for negative inputs when the
    output channels are not a multiple of 4; quantcore reproduces that."""
    assume(_valid(c))
    rng = np.random.default_rng(c["seed"])
    wts = rng.integers(-127, 128, (c["cout"], c["kh"], c["kw"], c["cin"])).astype(np.int8)
    wts[rng.random(wts.shape) < 0.3] = -128
    model, inputs = hybrid_conv_model(rng, c["n"], c["h"], c["w"], c["cin"], c["cout"], c["kh"], c["kw"], c["sh"],
                                      c["sw"], c["dh"], c["dw"], c["padding"], 1, c["act"], scales_kind, weights=wts)
    assert_matches_litert(oracle, model, inputs, "reference", rtol=0.0)
