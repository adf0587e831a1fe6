"""TRANSPOSE_CONV against LiteRT BUILTIN_REF: float32, int8 (per-channel and
per-tensor), uint8, 16x8 (int64 bias, and int32 bias with quantized_bias_type INT32)
and hybrid (float input, int8 weights); randomized shapes, strides, SAME/VALID,
output sizes, scales, zero points, optional bias, fused activations, constant and
runtime output_shape; constructed rounding ties; malformed models."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import InputError, ModelFormatError
from quantcore.schema import read_model, write_model
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


def in_size(padding, out, k, s):
    """The input size TRANSPOSE_CONV expects for an output size (ComputeOutSize)."""
    return (out + s - 1) // s if padding == "SAME" else (out + s - k) // s


def tc_model(rng, kind, n, h, w, cin, cout, kh, kw, sh, sw, oh, ow, padding, act, *, per_channel=True,
             has_bias=True, bias_mode="none", scales=None, input_scale=None, output_scale=None,
             dynamic_shape=False, w_zp=None, weights=None):
    """A one-op TRANSPOSE_CONV model (output [n, oh, ow, cout]) and its inputs."""
    b = ModelBuilder()
    dtype = DTYPES[kind]
    shape_value = np.array([n, oh, ow, cout], np.int32)
    if dynamic_shape:
        shp = b.add_input("output_shape", [4], np.int32)
    else:
        shp = b.add_constant("output_shape", shape_value)
    bias = None
    extra = {}
    if kind in ("float", "hybrid"):
        if kind == "float":
            wt = b.add_constant("w", rng.normal(0, 0.5, (cout, kh, kw, cin)).astype(np.float32))
        else:
            s_w = filter_scales(rng, cout if per_channel else 1) if scales is None else scales
            wq = rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8) if weights is None else weights
            wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
        x = b.add_input("x", [n, h, w, cin], np.float32)
        if has_bias:
            bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    else:
        s_in = random_scale(rng, 1e-3, 0.1) if input_scale is None else input_scale
        zp_in = 0 if kind == "int16" else int(rng.integers(-128, 128) + (128 if kind == "uint8" else 0))
        s_w = filter_scales(rng, cout if per_channel else 1) if scales is None else scales
        if kind == "uint8":
            zp_w = int(rng.integers(0, 256)) if w_zp is None else w_zp
            wt = b.add_constant("w", rng.integers(0, 256, (cout, kh, kw, cin)).astype(np.uint8), scale=s_w,
                                zero_point=zp_w)
        else:
            wq = rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8) if weights is None else weights
            wt = b.add_constant("w", wq, scale=s_w, zero_point=0 if w_zp is None else w_zp,
                                quantized_dimension=0)
        x = b.add_input("x", [n, h, w, cin], dtype, scale=s_in, zero_point=zp_in)
        bias_scale = (np.float32(s_in) * s_w).astype(np.float32)
        if has_bias:
            bdt = np.int32
            if kind == "int16":
                bdt = np.int32 if bias_mode == "int32" else np.int64
            bias = b.add_constant("b", rng.integers(-20000, 20000, cout).astype(bdt),
                                  scale=np.broadcast_to(bias_scale, (cout,)) if per_channel else bias_scale,
                                  zero_point=0)
        if kind == "int16" and bias_mode in ("int32", "int64"):
            extra["quantized_bias_type"] = bias_mode.upper()
        # each output sums about cin * (kh/sh) * (kw/sw) products
        k = max(1.0, cin * kh * kw / (sh * sw))
        if output_scale is None:
            s_out = output_scale_for(rng, kind, s_in, s_w, k)
        else:
            s_out = output_scale
        zp_out = 0 if kind == "int16" else int(rng.integers(-50, 50) + (128 if kind == "uint8" else 0))
        y = b.add_tensor("y", [n, oh, ow, cout], dtype, scale=s_out, zero_point=zp_out)
    ins = [shp, wt, x] + ([bias] if bias is not None else [])
    b.add_operator("TRANSPOSE_CONV", ins, [y], padding=padding, stride_w=sw, stride_h=sh,
                   fused_activation_function=act, version=4 if act == "NONE" else 5, **extra)
    b.mark_outputs(y)
    if kind in ("float", "hybrid"):
        xin = (random_input(rng, [n, h, w, cin], np.float32) * np.float32(rng.uniform(0.1, 10))).astype(np.float32)
    else:
        xin = random_input(rng, [n, h, w, cin], dtype)
    inputs = ([shape_value] if dynamic_shape else []) + [xin]
    return b.to_bytes(), inputs


tc_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), oh=st.integers(1, 12), ow=st.integers(1, 12), cin=st.sampled_from([1, 2, 3, 5]),
    cout=st.integers(1, 5), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS),
    has_bias=st.sampled_from([True, True, False]), seed=st.integers(0, 2**31)))


def _run(oracle, kind, c, per_channel=True, rtol=0.0, **kw):
    h = in_size(c["padding"], c["oh"], c["kh"], c["sh"])
    w = in_size(c["padding"], c["ow"], c["kw"], c["sw"])
    assume(h > 0 and w > 0)
    rng = np.random.default_rng(c["seed"])
    model, inputs = tc_model(rng, kind, c["n"], h, w, c["cin"], c["cout"], c["kh"], c["kw"], c["sh"], c["sw"],
                             c["oh"], c["ow"], c["padding"], c["act"], per_channel=per_channel,
                             has_bias=c["has_bias"], **kw)
    assert_matches_litert(oracle, model, inputs, "reference", rtol=rtol)


@examples(80)
@given(tc_cases)
def test_transpose_conv_int8_per_channel_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c)


@examples(40)
@given(tc_cases)
def test_transpose_conv_int8_per_tensor_vs_litert_ref(oracle, c):
    _run(oracle, "int8", c, per_channel=False)


@examples(40)
@given(tc_cases)
def test_transpose_conv_uint8_vs_litert_ref(oracle, c):
    _run(oracle, "uint8", c, per_channel=False)


@examples(50)
@given(tc_cases, st.sampled_from(["none", "int64", "int32"]))
def test_transpose_conv_16x8_vs_litert_ref(oracle, c, bias_mode):
    # "none": int64 bias with the default quantized_bias_type; "int32": int32 bias, int32 scratch
    _run(oracle, "int16", c, bias_mode=bias_mode)


@examples(50)
@given(tc_cases)
def test_transpose_conv_float_vs_litert_ref(oracle, c):
    # float32 terms added in the reference's scatter order: bit-exact
    _run(oracle, "float", c)


@examples(50)
@given(tc_cases)
def test_transpose_conv_hybrid_vs_litert_ref(oracle, c):
    _run(oracle, "hybrid", c)


@examples(15)
@given(tc_cases)
def test_transpose_conv_hybrid_per_tensor_vs_litert_ref(oracle, c):
    """One weights scale: LiteRT's Prepare repeats it for every output channel."""
    _run(oracle, "hybrid", c, per_channel=False)


@examples(15)
@given(tc_cases)
def test_transpose_conv_harness_tolerance_float_and_hybrid_vs_litert_ref(oracle, c):
    _run(oracle, "float", c, rtol=1e-6)
    _run(oracle, "hybrid", c, rtol=1e-6)


@examples(20)
@given(tc_cases, st.sampled_from(["float", "int8", "hybrid"]))
def test_transpose_conv_runtime_output_shape_vs_litert_ref(oracle, c, kind):
    """output_shape as a graph input: the output is resized in eval."""
    _run(oracle, kind, c, dynamic_shape=True)


@examples(30)
@given(st.sampled_from(["int8", "uint8", "int16"]), st.integers(1, 3), st.integers(0, 2**31))
def test_transpose_conv_rounding_ties_vs_litert_ref(oracle, kind, shift, seed):
    """Power-of-two scales: real multiplier 2^-shift, so many accumulators land on .5."""
    rng = np.random.default_rng(seed)
    s_in, s_w = 2.0**-4, 2.0**-6
    s_out = s_in * s_w * 2.0**shift
    if kind == "int16":
        s_out /= 2.0**4
    scales = np.full(3, s_w, np.float32) if kind != "uint8" else np.float32(s_w)
    model, inputs = tc_model(rng, kind, 2, 3, 4, 2, 3, 3, 3, 2, 2, 6, 8, "SAME", "NONE",
                             per_channel=kind != "uint8", scales=scales, input_scale=s_in, output_scale=s_out,
                             bias_mode="int64")
    assert_matches_litert(oracle, model, inputs, "reference")


@examples(20)
@given(tc_cases, st.sampled_from(["hybrid", "int8", "int16"]))
def test_transpose_conv_weights_minus_128_vs_litert_ref(oracle, c, kind):
    """int8 weights of -128 (outside the narrow range): the scalar reference kernels are exact."""
    rng = np.random.default_rng(c["seed"] ^ 0x5EED)
    wts = rng.integers(-127, 128, (c["cout"], c["kh"], c["kw"], c["cin"])).astype(np.int8)
    wts[rng.random(wts.shape) < 0.3] = -128
    _run(oracle, kind, c, weights=wts)


def test_transpose_conv_int8_ignores_weights_zero_point_vs_litert_ref(oracle):
    rng = np.random.default_rng(5)
    model, inputs = tc_model(rng, "int8", 1, 3, 3, 2, 2, 3, 3, 2, 2, 6, 6, "SAME", "NONE", per_channel=False,
                             w_zp=-4)
    assert_matches_litert(oracle, model, inputs, "reference")


def test_transpose_conv_optional_bias_marked_absent_vs_litert_ref(oracle):
    """A 4th input of -1 is an absent bias."""
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    shp = b.add_constant("output_shape", np.array([1, 7, 7, 2], np.int32))
    w = b.add_constant("w", rng.normal(size=(2, 3, 3, 3)).astype(np.float32))
    x = b.add_input("x", [1, 4, 4, 3], np.float32)
    y = b.add_tensor("y", [1, 7, 7, 2], np.float32)
    b.add_operator("TRANSPOSE_CONV", [shp, w, x, -1], [y], padding="SAME", stride_w=2, stride_h=2)
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [rng.normal(size=(1, 4, 4, 3)).astype(np.float32)],
                          "reference", rtol=0.0)


# -- malformed models ----------------------------------------------------------------
def test_transpose_conv_runtime_output_shape_mismatch_raises(oracle):
    rng = np.random.default_rng(0)
    model, inputs = tc_model(rng, "float", 1, 4, 4, 2, 3, 3, 3, 2, 2, 8, 8, "SAME", "NONE", dynamic_shape=True)
    inputs[0] = np.array([1, 9, 8, 3], np.int32)   # height 9 needs a 5-row input
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(InputError, match="height"):
        run_ours(model, inputs)


@pytest.mark.parametrize("bad", ["shape_mismatch", "shape_rank", "channels", "stride", "bias_len",
                                 "shape_type"])
def test_transpose_conv_malformed_raises(oracle, bad):
    b = ModelBuilder()
    shape = {"shape_mismatch": [1, 9, 8, 2], "shape_rank": [1, 8, 8]}.get(bad, [1, 8, 8, 2])
    sdt = np.int64 if bad == "shape_type" else np.int32
    shp = b.add_constant("output_shape", np.array(shape, sdt))
    w = b.add_constant("w", np.ones((2, 3, 3, 4 if bad == "channels" else 3), np.float32))
    x = b.add_input("x", [1, 4, 4, 3], np.float32)
    ins = [shp, w, x]
    if bad == "bias_len":
        ins.append(b.add_constant("b", np.ones(3, np.float32)))
    y = b.add_tensor("y", [1, 8, 8, 2], np.float32)
    b.add_operator("TRANSPOSE_CONV", ins, [y], padding="SAME", stride_w=0 if bad == "stride" else 2, stride_h=2)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros((1, 4, 4, 3), np.float32)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError):
        run_ours(model, inputs)


def test_transpose_conv_16x8_int32_bias_without_bias_type_raises(oracle):
    """Default quantized_bias_type reads the bias as int64: refused instead."""
    rng = np.random.default_rng(0)
    model, inputs = tc_model(rng, "int16", 1, 3, 3, 2, 2, 3, 3, 2, 2, 6, 6, "SAME", "NONE", bias_mode="int32")
    m = read_model(model)   # the same model with quantized_bias_type back at its default
    m.subgraphs[0].operators[0].builtin_options["quantized_bias_type"] = 0
    with pytest.raises(ModelFormatError, match="quantized_bias_type"):
        run_ours(write_model(m), inputs)


def test_transpose_conv_missing_quantization_raises(oracle):
    b = ModelBuilder()
    shp = b.add_constant("output_shape", np.array([1, 8, 8, 2], np.int32))
    w = b.add_constant("w", np.ones((2, 3, 3, 3), np.int8))
    x = b.add_input("x", [1, 4, 4, 3], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 8, 8, 2], np.int8, scale=0.1, zero_point=0)
    b.add_operator("TRANSPOSE_CONV", [shp, w, x], [y], padding="SAME", stride_w=2, stride_h=2)
    b.mark_outputs(y)
    model = b.to_bytes()
    inputs = [np.zeros((1, 4, 4, 3), np.int8)]
    assert not oracle.run(model, inputs, "reference").ok
    with pytest.raises(ModelFormatError, match="no quantization"):
        run_ours(model, inputs)


def test_transpose_conv_bias_of_shape_o111_vs_litert_ref(oracle):
    """LiteRT checks only the bias's element count (== output channels), so a bias of
    shape [O, 1, 1, 1] runs as [O] (found by the fuzzer: quantcore broadcast it)."""
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    shape = b.add_constant("output_shape", np.array([1, 4, 4, 3], np.int32))
    w = b.add_constant("w", rng.normal(size=(3, 2, 2, 2)).astype(np.float32))
    x = b.add_input("x", [1, 2, 2, 2], np.float32)
    bias = b.add_constant("bias", rng.normal(size=(3, 1, 1, 1)).astype(np.float32))
    y = b.add_tensor("y", [1, 4, 4, 3], np.float32)
    b.add_operator("TRANSPOSE_CONV", [shape, w, x, bias], [y], padding="VALID", stride_w=2, stride_h=2)
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [rng.normal(size=(1, 2, 2, 2)).astype(np.float32)])
