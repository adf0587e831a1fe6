"""CONV_2D against LiteRT BUILTIN_REF: randomized shapes, strides, dilations, padding,
groups, scales, zero points, per-channel/per-tensor weights, fused activations."""
from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale
from quantcore.schema.builder import ModelBuilder
from quantcore.runtime.ops._common import compute_padding

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def conv_model(rng, kind, n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, padding, groups, act,
               per_channel=True):
    b = ModelBuilder()
    cf = cin // groups
    oh, _, _ = compute_padding(0 if padding == "SAME" else 1, h, kh, sh, dh)
    ow, _, _ = compute_padding(0 if padding == "SAME" else 1, w, kw, sw, dw)
    bias_dtype = None
    if kind == "float":
        x = b.add_input("x", [n, h, w, cin], np.float32)
        wt = b.add_constant("w", rng.normal(0, 0.5, (cout, kh, kw, cf)).astype(np.float32))
        bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
        dtype = np.float32
    else:
        dtype = {"int8": np.int8, "int16": np.int16, "uint8": np.uint8}[kind]
        s_in = random_scale(rng, 1e-3, 0.1)
        zp_in = 0 if kind == "int16" else int(rng.integers(-128, 128) + (128 if kind == "uint8" else 0))
        x = b.add_input("x", [n, h, w, cin], dtype, scale=s_in, zero_point=zp_in)
        nsc = cout if per_channel else 1
        s_w = np.array([random_scale(rng, 1e-3, 0.05) for _ in range(nsc)], np.float32)
        if kind == "uint8":
            w_zp = int(rng.integers(0, 256))
            wq = rng.integers(0, 256, (cout, kh, kw, cf)).astype(np.uint8)
            wt = b.add_constant("w", wq, scale=s_w, zero_point=w_zp)
        else:
            wq = rng.integers(-127, 128, (cout, kh, kw, cf)).astype(np.int8)
            wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
        bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
        bias_dtype = np.int64 if kind == "int16" and rng.integers(0, 2) else np.int32
        bq = rng.integers(-20000, 20000, cout).astype(bias_dtype)
        bias = b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (cout,)) if per_channel else bias_scale,
                              zero_point=0)
        k = kh * kw * cf
        s_out = float(np.float32(s_in * float(np.median(s_w)) * np.sqrt(k) * 128 / 40 * rng.uniform(0.5, 2)))
        zp_out = 0 if kind == "int16" else int(rng.integers(-50, 50) + (128 if kind == "uint8" else 0))
        if kind == "int16":
            s_out *= 1 / 128
        y = b.add_tensor("y", [n, oh, ow, cout], dtype, scale=s_out, zero_point=zp_out)
    extra = {}
    if kind == "int16" and bias_dtype == np.int32:
        extra["quantized_bias_type"] = "INT32"
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding=padding, stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, fused_activation_function=act,
                   version=1 if groups == 1 else 6, **extra)
    b.mark_outputs(y)
    return b.to_bytes(), [random_input(rng, [n, h, w, cin], dtype)]


conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), cin=st.sampled_from([1, 2, 3, 4, 8]),
    cout=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def _valid(c):
    return all(compute_padding(0 if c["padding"] == "SAME" else 1, size, k, s, d)[0] > 0
               for size, k, s, d in ((c["h"], c["kh"], c["sh"], c["dh"]), (c["w"], c["kw"], c["sw"], c["dw"])))


def _run(oracle, kind, c, groups=1, per_channel=True):
    assume(_valid(c))
    rng = np.random.default_rng(c["seed"])
    model, inputs = conv_model(rng, kind, c["n"], c["h"], c["w"], c["cin"], c["cout"] * groups, c["kh"], c["kw"],
                               c["sh"], c["sw"], c["dh"], c["dw"], c["padding"], groups, c["act"], per_channel)
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(60)
@given(conv_cases)
def test_conv_int8_per_channel_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c)


@examples(30)
@given(conv_cases)
def test_conv_int8_per_tensor_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c, per_channel=False)


@examples(30)
@given(conv_cases)
def test_conv_uint8_vs_litert_ref(oracle, c):
    _run(oracle, "uint8", c, per_channel=False)


@examples(30)
@given(conv_cases)
def test_conv_16x8_vs_litert_ref(oracle, c):
    _run(oracle, "int16", c)


@examples(30)
@given(conv_cases)
def test_conv_float_vs_litert_ref(oracle, c):
    _run(oracle, "float", c)


@examples(20)
@given(conv_cases, st.integers(2, 3))
def test_grouped_conv_int8_vs_litert_ref(oracle, c, groups):
    c = dict(c, cin=c["cin"] * groups // c["cin"] * c["cin"]) if False else dict(c, cin=2 * groups)
    _run(oracle, "int8", c, groups=groups)
