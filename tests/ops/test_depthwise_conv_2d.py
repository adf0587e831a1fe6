"""DEPTHWISE_CONV_2D against LiteRT BUILTIN_REF: float32, int8 (per-channel and
per-tensor), uint8, 16x8 and hybrid (float input, int8 filter); randomized shapes,
depth multipliers, strides, dilations, padding, scales, zero points, optional bias,
fused activations; constructed rounding ties; malformed models."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
DTYPES = {"float": np.float32, "hybrid": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def filter_scales(rng, count):
    """A log-uniform base scale times a factor in [0.5, 2] per channel (float32)."""
    base = random_scale(rng, 1e-3, 0.05)
    return (base * rng.uniform(0.5, 2, count)).astype(np.float32)


def output_scale_for(rng, kind, s_in, s_w, k):
    """An output scale that puts the outputs' spread at ~40 LSB (int8/uint8) or ~5000
    (int16) for full-range inputs and weights summed over ``k`` products."""
    x_std = 18900.0 if kind == "int16" else 74.0
    target = 5000.0 if kind == "int16" else 40.0
    acc_std = np.sqrt(k) * x_std * 73.0
    return float(np.float32(s_in * float(np.median(s_w)) * acc_std / target * rng.uniform(0.5, 2)))


def out_size(padding, size, k, s, d):
    eff = (k - 1) * d + 1
    if padding == "SAME":
        return (size + s - 1) // s
    num = size + s - eff
    return num // s if num >= 0 else -((-num) // s)


def dw_model(rng, kind, n, h, w, cin, dm, kh, kw, sh, sw, dh, dw, padding, act, *, per_channel=True,
             has_bias=True, scales=None, input_scale=None, output_scale=None, weights=None,
             dm_option=None, w_zp=None):
    """A one-op DEPTHWISE_CONV_2D model and a random input."""
    b = ModelBuilder()
    cout = cin * dm
    oh, ow = out_size(padding, h, kh, sh, dh), out_size(padding, w, kw, sw, dw)
    dtype = DTYPES[kind]
    bias = None
    if kind == "float":
        x = b.add_input("x", [n, h, w, cin], np.float32)
        wt = b.add_constant("w", rng.normal(0, 0.5, (1, kh, kw, cout)).astype(np.float32))
        if has_bias:
            bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    elif kind == "hybrid":
        x = b.add_input("x", [n, h, w, cin], np.float32)
        s_w = filter_scales(rng, cout if per_channel else 1) if scales is None else scales
        wq = rng.integers(-127, 128, (1, kh, kw, cout)).astype(np.int8) if weights is None else weights
        wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=3)
        if has_bias:
            bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    else:
        s_in = random_scale(rng, 1e-3, 0.1) if input_scale is None else input_scale
        zp_in = 0 if kind == "int16" else int(rng.integers(-128, 128) + (128 if kind == "uint8" else 0))
        x = b.add_input("x", [n, h, w, cin], dtype, scale=s_in, zero_point=zp_in)
        s_w = filter_scales(rng, cout if per_channel else 1) if scales is None else scales
        if kind == "uint8":
            zp_w = int(rng.integers(0, 256)) if w_zp is None else w_zp
            wq = rng.integers(0, 256, (1, kh, kw, cout)).astype(np.uint8) if weights is None else weights
            wt = b.add_constant("w", wq, scale=s_w, zero_point=zp_w)
        else:
            wq = rng.integers(-127, 128, (1, kh, kw, cout)).astype(np.int8) if weights is None else weights
            wt = b.add_constant("w", wq, scale=s_w, zero_point=0 if w_zp is None else w_zp,
                                quantized_dimension=3)
        bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
        if has_bias:
            bdt = np.int64 if kind == "int16" else np.int32
            bq = rng.integers(-20000, 20000, cout).astype(bdt)
            bias = b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (cout,)) if per_channel
                                  else bias_scale, zero_point=0)
        k = kh * kw
        if output_scale is None:
            s_out = output_scale_for(rng, kind, s_in, s_w, k)
        else:
            s_out = output_scale
        zp_out = 0 if kind == "int16" else int(rng.integers(-50, 50) + (128 if kind == "uint8" else 0))
        y = b.add_tensor("y", [n, oh, ow, cout], dtype, scale=s_out, zero_point=zp_out)
    ins = [x, wt] + ([bias] if bias is not None else [])
    b.add_operator("DEPTHWISE_CONV_2D", ins, [y], padding=padding, stride_w=sw, stride_h=sh,
                   depth_multiplier=dm if dm_option is None else dm_option, dilation_w_factor=dw,
                   dilation_h_factor=dh, fused_activation_function=act, version=2)
    b.mark_outputs(y)
    if kind in ("float", "hybrid"):
        xin = (random_input(rng, [n, h, w, cin], np.float32) * np.float32(rng.uniform(0.1, 10))).astype(np.float32)
    else:
        xin = random_input(rng, [n, h, w, cin], dtype)
    return b.to_bytes(), [xin]


dw_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), cin=st.sampled_from([1, 2, 3, 4, 8]),
    dm=st.sampled_from([1, 1, 2, 3]), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS),
    has_bias=st.sampled_from([True, True, False]), seed=st.integers(0, 2**31)))


def _geometry_ok(c):
    return all(out_size(c["padding"], size, k, s, d) > 0
               for size, k, s, d in ((c["h"], c["kh"], c["sh"], c["dh"]), (c["w"], c["kw"], c["sw"], c["dw"])))


def _run(oracle, kind, c, per_channel=True, rtol=0.0):
    assume(_geometry_ok(c))
    rng = np.random.default_rng(c["seed"])
    model, inputs = dw_model(rng, kind, c["n"], c["h"], c["w"], c["cin"], c["dm"], c["kh"], c["kw"], c["sh"],
                             c["sw"], c["dh"], c["dw"], c["padding"], c["act"], per_channel=per_channel,
                             has_bias=c["has_bias"])
    assert_matches_litert(oracle, model, inputs, "reference", rtol=rtol)


@examples(80)
@given(dw_cases)
def test_depthwise_int8_per_channel_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c)


@examples(40)
@given(dw_cases)
def test_depthwise_int8_per_tensor_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c, per_channel=False)


@examples(40)
@given(dw_cases)
def test_depthwise_uint8_vs_litert_ref(oracle, c):
    _run(oracle, "uint8", c, per_channel=False)


@examples(50)
@given(dw_cases)
def test_depthwise_16x8_vs_litert_ref(oracle, c):
    _run(oracle, "int16", c)


@examples(50)
@given(dw_cases)
def test_depthwise_float_vs_litert_ref(oracle, c):
    # Same float32 operations in the same order as the reference loops: bit-exact.
    _run(oracle, "float", c)


@examples(60)
@given(dw_cases)
def test_depthwise_hybrid_vs_litert_ref(oracle, c):
    # Hybrid: NEON-style input quantization, int32 sums, float32 scaling: bit-exact.
    _run(oracle, "hybrid", c)


@examples(15)
@given(dw_cases)
def test_depthwise_harness_tolerance_float_and_hybrid_vs_litert_ref(oracle, c):
    """The harness's default float tolerance (1e-6 of the output range) also holds."""
    _run(oracle, "float", c, rtol=1e-6)
    _run(oracle, "hybrid", c, rtol=1e-6)


@examples(30)
@given(st.sampled_from(["int8", "uint8", "int16"]), st.integers(1, 3), st.integers(0, 2**31))
def test_depthwise_rounding_ties_vs_litert_ref(oracle, kind, shift, seed):
    """Power-of-two scales: real multiplier 2^-shift, so many accumulators land on .5."""
    rng = np.random.default_rng(seed)
    s_in, s_w = 2.0**-4, 2.0**-6
    s_out = s_in * s_w * 2.0**shift
    if kind == "int16":
        s_out /= 2.0**4
    scales = np.full(6, s_w, np.float32) if kind != "uint8" else np.float32(s_w)
    model, inputs = dw_model(rng, kind, 2, 6, 6, 3, 2, 3, 3, 1, 1, 1, 1, "SAME", "NONE",
                             per_channel=kind != "uint8", scales=scales, input_scale=s_in,
                             output_scale=s_out)
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(20)
@given(st.integers(0, 2**31), st.integers(1, 40))
def test_depthwise_hybrid_quantization_rounding_vs_litert_ref(oracle, seed, tail):
    """Inputs whose quantization hits exact .5 and the NEON x + 0.5 float rounding.

    min -128 and max 127 give scaling factor 1 and offset 0, so v * inv = v: ties
    (k + 0.5) round away from zero, and 0.49999997 rounds to 1 in the 8-wide blocks
    (float32 0.49999997 + 0.5 == 1.0) but to 0 in the tail (roundf).
    """
    rng = np.random.default_rng(seed)
    size = 8 * int(rng.integers(1, 4)) + tail % 8
    vals = rng.choice(np.array([0.5, -0.5, 1.5, -2.5, 0.49999997, -0.49999997, 3.0, 126.5, -127.5],
                               np.float32), size)
    vals[0], vals[-1] = -128.0, 127.0
    rng.shuffle(vals)
    model, _ = dw_model(rng, "hybrid", 1, 1, size, 1, 2, 1, 3, 1, 1, 1, 1, "SAME", "NONE")
    assert_matches_litert(oracle, model, [vals.reshape(1, 1, size, 1)], "reference", rtol=0.0)


@examples(20)
@given(dw_cases, st.sampled_from(["hybrid", "int8", "int16"]))
def test_depthwise_filter_minus_128_vs_litert_ref(oracle, c, kind):
    """int8 filter values of -128 (outside the narrow range): the scalar reference kernels are exact."""
    assume(_geometry_ok(c))
    rng = np.random.default_rng(c["seed"])
    wts = rng.integers(-127, 128, (1, c["kh"], c["kw"], c["cin"] * c["dm"])).astype(np.int8)
    wts[rng.random(wts.shape) < 0.3] = -128
    model, inputs = dw_model(rng, kind, c["n"], c["h"], c["w"], c["cin"], c["dm"], c["kh"], c["kw"], c["sh"],
                             c["sw"], c["dh"], c["dw"], c["padding"], c["act"], has_bias=c["has_bias"], weights=wts)
    assert_matches_litert(oracle, model, inputs, "reference", rtol=0.0)


def test_depthwise_int8_ignores_filter_zero_point_vs_litert_ref(oracle):
    """LiteRT's int8 kernel uses weights_offset 0 whatever the filter's zero point."""
    rng = np.random.default_rng(7)
    model, inputs = dw_model(rng, "int8", 1, 5, 5, 2, 2, 3, 3, 1, 1, 1, 1, "SAME", "RELU", per_channel=False,
                             w_zp=3)
    assert_matches_litert(oracle, model, inputs, "reference")


def test_depthwise_ignores_depth_multiplier_option_vs_litert_ref(oracle):
    """float/int8/uint8 derive the multiplier from the shapes; a wrong option is ignored."""
    for kind in ("float", "int8", "uint8"):
        rng = np.random.default_rng(3)
        model, inputs = dw_model(rng, kind, 1, 5, 5, 2, 2, 3, 3, 1, 1, 1, 1, "SAME", "NONE",
                                 per_channel=kind == "int8", dm_option=0)
        assert_matches_litert(oracle, model, inputs, "reference", rtol=0.0)


def test_depthwise_empty_output_vs_litert_ref(oracle):
    """VALID with the filter one larger than the input: C++ division gives 0 rows."""
    rng = np.random.default_rng(1)
    model, inputs = dw_model(rng, "int8", 1, 2, 5, 2, 1, 3, 3, 2, 1, 1, 1, "VALID", "NONE")
    _, theirs = assert_matches_litert(oracle, model, inputs, "reference")
    assert theirs.outputs[0].shape == (1, 0, 3, 2)


# -- malformed models ----------------------------------------------------------------
def _prepare_ours(model, inputs):
    return run_ours(model, inputs, "reference")


@pytest.mark.parametrize("kind", ["int16", "hybrid"])
def test_depthwise_wrong_depth_multiplier_option_raises(oracle, kind):
    rng = np.random.default_rng(0)
    model, inputs = dw_model(rng, kind, 1, 4, 4, 2, 2, 3, 3, 1, 1, 1, 1, "SAME", "NONE", dm_option=1)
    with pytest.raises(ModelFormatError, match="depth_multiplier"):
        _prepare_ours(model, inputs)


def test_depthwise_hybrid_per_tensor_scale_raises(oracle):
    """One scale with quantized_dimension 3: LiteRT refuses it (size != dims[3])."""
    rng = np.random.default_rng(0)
    model, inputs = dw_model(rng, "hybrid", 1, 4, 4, 2, 2, 3, 3, 1, 1, 1, 1, "SAME", "NONE", per_channel=False)
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="scales"):
        _prepare_ours(model, inputs)


def test_depthwise_missing_quantization_raises(oracle):
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.int8)
    w = b.add_constant("w", np.ones((1, 3, 3, 2), np.int8), scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 4, 4, 2], np.int8, scale=0.1, zero_point=0)
    b.add_operator("DEPTHWISE_CONV_2D", [x, w], [y], padding="SAME", stride_w=1, stride_h=1, depth_multiplier=1)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="no quantization"):
        _prepare_ours(b.to_bytes(), [np.zeros((1, 4, 4, 2), np.int8)])


@pytest.mark.parametrize("bad", ["rank", "filter_dim0", "channels", "stride", "bias_len", "bias_absent"])
def test_depthwise_malformed_raises(oracle, bad):
    b = ModelBuilder()
    xs = [1, 4, 4] if bad == "rank" else [1, 4, 4, 2]
    ws = {"filter_dim0": (2, 3, 3, 2), "channels": (1, 3, 3, 3)}.get(bad, (1, 3, 3, 2))
    x = b.add_input("x", xs, np.float32)
    w = b.add_constant("w", np.ones(ws, np.float32))
    ins = [x, w]
    if bad == "bias_len":
        ins.append(b.add_constant("b", np.ones(3, np.float32)))
    if bad == "bias_absent":
        ins.append(-1)
    y = b.add_tensor("y", [1, 4, 4, ws[3]], np.float32)
    b.add_operator("DEPTHWISE_CONV_2D", ins, [y], padding="SAME", stride_w=0 if bad == "stride" else 1,
                   stride_h=1, depth_multiplier=1)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros(xs, np.float32)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError):
        _prepare_ours(model, inputs)


def test_depthwise_int16_with_int32_bias_is_refused(oracle):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.int16, scale=0.01, zero_point=0)
    w = b.add_constant("w", rng.integers(-127, 128, (1, 3, 3, 2)).astype(np.int8), scale=[0.01, 0.02],
                       zero_point=0, quantized_dimension=3)
    bias = b.add_constant("b", np.zeros(2, np.int32), scale=[1e-4, 2e-4], zero_point=0)
    y = b.add_tensor("y", [1, 4, 4, 2], np.int16, scale=0.001, zero_point=0)
    b.add_operator("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   depth_multiplier=1)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros((1, 4, 4, 2), np.int16)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(UnsupportedOpError):
        _prepare_ours(model, inputs)


def test_depthwise_activation_bound_overflow_raises(oracle):
    """RELU6 on a tiny output scale: 6 / scale does not fit int32 and LiteRT refuses it."""
    rng = np.random.default_rng(0)
    model, inputs = dw_model(rng, "int16", 1, 4, 4, 2, 1, 3, 3, 1, 1, 1, 1, "SAME", "RELU6", output_scale=1e-10)
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="overflows int32"):
        _prepare_ours(model, inputs)
