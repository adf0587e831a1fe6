"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and BATCH_MATMUL on
LiteRT's two non-reference numerics paths: "optimized" (BUILTIN_WITHOUT_DEFAULT_DELEGATES:
ruy / NEON-through-NEON_2_SSE kernels, ties-up requantization with gemmlowp scalar tails)
and "xnnpack" (BUILTIN: XNNPACK's fp32 requantization where the delegate takes the
operator, the optimized kernels where it does not). See runtime/ops/_paths.py.

Every case is a one-operator model compared with ``assert_matches_litert(..., path)``.
Three kinds of quantization parameters:

* ``random``: log-uniform scales, zero points over the whole range, full-range inputs
  and weights (the realistic case; ties are rare);
* ``tie``: power-of-two scales, small weights and inputs near the zero point, so the
  real multiplier is ``2^-k`` (k in 2..6) and a large share of the outputs sit exactly
  on a rounding tie of the second rounding step (ties-up vs away from zero) and of
  XNNPACK's ``rint`` (ties to even);
* ``bound``: output scales 2, 4 or 12, where the fused RELU6/RELU_N1_TO_1 bound
  ``6 / s`` or ``1 / s`` is an exact .5 (XNNPACK rounds it to even, LiteRT away).

Channel counts run over 1..40 (NEON blocks of 8 channels with scalar leftovers).
``test_*_ties_are_reached`` checks that the tie cases really separate the paths.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import NumericsPathError
from quantcore.runtime.ops._common import compute_padding
from quantcore.schema.builder import ModelBuilder

PATHS = ["optimized", "xnnpack"]
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
DT = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int16_i64": np.int16,
      "int16_noqbt": np.int16}
MODES = ["random", "random", "tie", "tie", "bound"]


# ---------------------------------------------------------------------------
# Quantization parameters
# ---------------------------------------------------------------------------
class Q:
    """Scales, zero points and value generators of one quantized case."""

    def __init__(self, rng, kind: str, mode: str, n_scales: int, k: int, per_channel: bool):
        self.rng = rng
        self.kind = kind
        self.mode = mode
        dt = DT[kind]
        self.dtype = dt
        self.int16 = dt == np.int16
        self.uint8 = dt == np.uint8
        n = n_scales if per_channel else 1
        if mode == "tie":
            self.s_in = 2.0 ** -int(rng.integers(3, 8))
            e = int(rng.integers(1, 4))
            ks = rng.integers(2, 7, n)
            self.s_w = (2.0 ** -(e + ks)).astype(np.float32)
            self.s_out = self.s_in * 2.0 ** -e
            if self.int16:
                self.s_out /= 64
                self.s_w = (self.s_w / 64).astype(np.float32)
        else:
            self.s_in = random_scale(rng, 1e-3, 0.1)
            base = random_scale(rng, 1e-3, 0.05)
            self.s_w = (base * rng.uniform(0.5, 2, n)).astype(np.float32)
            xstd = 18900.0 if self.int16 else 74.0
            target = 5000.0 if self.int16 else 40.0
            acc_std = np.sqrt(max(k, 1)) * xstd * 73.0
            self.s_out = float(np.float32(self.s_in * float(np.median(self.s_w)) * acc_std / target
                                          * rng.uniform(0.5, 2)))
            if mode == "bound" and not self.int16:
                self.s_out = float(rng.choice([2.0, 4.0, 12.0]))
                self.s_in = float(np.float32(rng.uniform(0.05, 0.2)))
        self.s_in = float(np.float32(self.s_in))
        self.s_out = float(np.float32(self.s_out))
        if self.int16:
            self.zp_in = self.zp_out = 0
        else:
            off = 128 if self.uint8 else 0
            self.zp_in = int(rng.integers(-128, 128)) + off
            self.zp_out = (int(rng.integers(-20, 20)) if mode != "random" else int(rng.integers(-60, 60))) + off
        self.zp_w = int(rng.integers(0, 256)) if self.uint8 else 0

    def weights(self, shape) -> np.ndarray:
        rng = self.rng
        if self.uint8:
            if self.mode == "tie":
                return np.clip(self.zp_w + rng.integers(-4, 5, shape), 0, 255).astype(np.uint8)
            return rng.integers(0, 256, shape).astype(np.uint8)
        if self.mode == "tie":
            return rng.integers(-4, 5, shape).astype(np.int8)
        return rng.integers(-127, 128, shape).astype(np.int8)

    def inputs(self, shape) -> np.ndarray:
        rng = self.rng
        info = np.iinfo(self.dtype)
        if self.mode == "tie":
            span = 400 if self.int16 else 8
            v = self.zp_in + rng.integers(-span, span + 1, shape)
            return np.clip(v, info.min, info.max).astype(self.dtype)
        return random_input(rng, shape, self.dtype)

    def bias(self, count: int) -> np.ndarray:
        lim = 60 if self.mode == "tie" else 20000
        dt = np.int64 if self.kind == "int16_i64" else np.int32
        return self.rng.integers(-lim, lim + 1, count).astype(dt)

    def bias_scale(self, count: int, per_channel: bool):
        s = (np.float32(self.s_in) * self.s_w).astype(np.float32)
        return np.broadcast_to(s, (count,)).copy() if per_channel else s

    def extra(self) -> dict:
        if self.kind == "int16":
            return {"quantized_bias_type": "INT32"}
        if self.kind == "int16_i64":
            return {"quantized_bias_type": "INT64"}
        return {}


def _float_input(rng, shape):
    return (random_input(rng, shape, np.float32) * np.float32(rng.uniform(0.1, 10))).astype(np.float32)


# ---------------------------------------------------------------------------
# Model builders
# ---------------------------------------------------------------------------
def conv_model(rng, kind, mode, c, per_channel=True, groups=1):
    n, h, w, cin, cout = c["n"], c["h"], c["w"], c["cin"] * groups, c["cout"] * groups
    kh, kw, sh, sw, dh, dw = c["kh"], c["kw"], c["sh"], c["sw"], c["dh"], c["dw"]
    pad = 0 if c["padding"] == "SAME" else 1
    oh = compute_padding(pad, h, kh, sh, dh)[0]
    ow = compute_padding(pad, w, kw, sw, dw)[0]
    assume(oh > 0 and ow > 0)
    cf = cin // groups
    b = ModelBuilder()
    extra = {}
    if kind in ("float", "hybrid"):
        assume(n * oh * ow * cout >= 8)   # the harness tolerance is relative to the output spread
        x = b.add_input("x", [n, h, w, cin], np.float32)
        if kind == "float":
            wt = b.add_constant("w", rng.normal(0, 0.5, (cout, kh, kw, cf)).astype(np.float32))
        else:
            s_w = (random_scale(rng, 1e-3, 0.05) * rng.uniform(0.5, 2, cout if per_channel else 1)).astype(np.float32)
            wt = b.add_constant("w", rng.integers(-127, 128, (cout, kh, kw, cf)).astype(np.int8),
                                scale=s_w, zero_point=0, quantized_dimension=0)
        bias = b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
        xin = _float_input(rng, [n, h, w, cin])
    else:
        q = Q(rng, kind, mode, cout, cf * kh * kw, per_channel and kind != "uint8")
        pc = per_channel and kind != "uint8"
        x = b.add_input("x", [n, h, w, cin], q.dtype, scale=q.s_in, zero_point=q.zp_in)
        wt = b.add_constant("w", q.weights((cout, kh, kw, cf)), scale=q.s_w, zero_point=q.zp_w,
                            quantized_dimension=0)
        bias = b.add_constant("b", q.bias(cout), scale=q.bias_scale(cout, pc), zero_point=0)
        y = b.add_tensor("y", [n, oh, ow, cout], q.dtype, scale=q.s_out, zero_point=q.zp_out)
        extra = q.extra()
        xin = q.inputs([n, h, w, cin])
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding=c["padding"], stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, fused_activation_function=c["act"],
                   version=1 if groups == 1 else 6, **extra)
    b.mark_outputs(y)
    return b.to_bytes(), [xin]


def dw_model(rng, kind, mode, c, per_channel=True):
    n, h, w, cin, dm = c["n"], c["h"], c["w"], c["cin"], c["dm"]
    kh, kw, sh, sw, dh, dw = c["kh"], c["kw"], c["sh"], c["sw"], c["dh"], c["dw"]
    cout = cin * dm
    pad = 0 if c["padding"] == "SAME" else 1
    oh = compute_padding(pad, h, kh, sh, dh)[0]
    ow = compute_padding(pad, w, kw, sw, dw)[0]
    assume(oh > 0 and ow > 0)
    b = ModelBuilder()
    # Without a bias LiteRT's optimized float/int8/uint8/hybrid kernels crash (SIGSEGV; see
    # test_depthwise_without_bias_is_refused); only 16x8 may omit it here.
    has_bias = c.get("has_bias", True) or not kind.startswith("int16")
    if kind in ("float", "hybrid"):
        assume(n * oh * ow * cout >= 8)
        x = b.add_input("x", [n, h, w, cin], np.float32)
        if kind == "float":
            wt = b.add_constant("w", rng.normal(0, 0.5, (1, kh, kw, cout)).astype(np.float32))
        else:
            s_w = (random_scale(rng, 1e-3, 0.05) * rng.uniform(0.5, 2, cout)).astype(np.float32)
            wt = b.add_constant("w", rng.integers(-127, 128, (1, kh, kw, cout)).astype(np.int8),
                                scale=s_w, zero_point=0, quantized_dimension=3)
        ins = [x, wt]
        if has_bias:
            ins.append(b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32)))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
        xin = _float_input(rng, [n, h, w, cin])
    else:
        pc = per_channel and kind != "uint8"
        q = Q(rng, kind, mode, cout, kh * kw, pc)
        x = b.add_input("x", [n, h, w, cin], q.dtype, scale=q.s_in, zero_point=q.zp_in)
        # XNNPACK takes a uint8 filter only with quantized_dimension 0 (the converter's
        # choice for per-tensor tensors); with 3 the operator stays on LiteRT's kernels.
        qdim = int(rng.choice([0, 3])) if kind == "uint8" else 3
        wt = b.add_constant("w", q.weights((1, kh, kw, cout)), scale=q.s_w, zero_point=q.zp_w,
                            quantized_dimension=qdim)
        ins = [x, wt]
        if has_bias:
            bias_kind = "int16_i64" if kind.startswith("int16") else kind
            q.kind = bias_kind
            ins.append(b.add_constant("b", q.bias(cout), scale=q.bias_scale(cout, pc), zero_point=0))
        y = b.add_tensor("y", [n, oh, ow, cout], q.dtype, scale=q.s_out, zero_point=q.zp_out)
        xin = q.inputs([n, h, w, cin])
    b.add_operator("DEPTHWISE_CONV_2D", ins, [y], padding=c["padding"], stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, depth_multiplier=dm,
                   fused_activation_function=c["act"], version=2 if dh == dw == 1 else 3)
    b.mark_outputs(y)
    return b.to_bytes(), [xin]


def fc_model(rng, kind, mode, c, per_channel=False, weights_zp=False, out16=False):
    units, k, batch_shape = c["units"], c["k"], list(c["batch"])
    has_bias = c["has_bias"]
    keep = c["keep"] and len(batch_shape) >= 1
    in_shape = batch_shape + [k] if batch_shape else [1, k]
    batches = int(np.prod(in_shape[:-1]))
    out_shape = in_shape[:-1] + [units] if keep else [batches, units]
    b = ModelBuilder()
    extra = {}
    if kind in ("float", "hybrid"):
        assume(batches * units >= 8)
        x = b.add_input("x", in_shape, np.float32)
        if kind == "float":
            wt = b.add_constant("w", rng.normal(0, 0.5, (units, k)).astype(np.float32))
        else:
            s_w = (random_scale(rng, 1e-3, 0.05) * rng.uniform(0.5, 2, units if per_channel else 1)).astype(np.float32)
            wt = b.add_constant("w", rng.integers(-127, 128, (units, k)).astype(np.int8), scale=s_w,
                                zero_point=0, quantized_dimension=0)
        ins = [x, wt]
        if has_bias:
            ins.append(b.add_constant("b", rng.normal(0, 0.5, units).astype(np.float32)))
        y = b.add_tensor("y", out_shape, np.float32)
        xin = _float_input(rng, in_shape)
    else:
        pc = per_channel and kind != "uint8"
        q = Q(rng, kind, mode, units, k, pc)
        x = b.add_input("x", in_shape, q.dtype, scale=q.s_in, zero_point=q.zp_in)
        wv = q.weights((units, k))
        w_zp = q.zp_w
        if weights_zp and not pc and not q.uint8:
            w_zp = int(rng.integers(-20, 21))
            wv = np.clip(wv.astype(np.int64) + w_zp, -127, 127).astype(np.int8)
        wt = b.add_constant("w", wv, scale=q.s_w, zero_point=w_zp, quantized_dimension=0)
        ins = [x, wt]
        if has_bias:
            ins.append(b.add_constant("b", q.bias(units), scale=q.bias_scale(units, pc), zero_point=0))
        odt, s_out, zp_out = q.dtype, q.s_out, q.zp_out
        if out16:   # uint8 -> int16
            odt, s_out, zp_out = np.int16, float(np.float32(q.s_out / 128)), 0
        y = b.add_tensor("y", out_shape, odt, scale=s_out, zero_point=zp_out)
        extra = q.extra()
        xin = q.inputs(in_shape)
    b.add_operator("FULLY_CONNECTED", ins, [y], fused_activation_function=c["act"],
                   keep_num_dims=keep, version=1, **extra)
    b.mark_outputs(y)
    return b.to_bytes(), [xin]


def tconv_model(rng, kind, mode, c, per_channel=True):
    n, oh, ow, cin, cout = c["n"], c["oh"], c["ow"], c["cin"], c["cout"]
    kh, kw, sh, sw = c["kh"], c["kw"], c["sh"], c["sw"]
    pad = 0 if c["padding"] == "SAME" else 1

    def in_size(o, k, s):
        return (o + s - 1) // s if pad == 0 else (o + s - k) // s

    h, w = in_size(oh, kh, sh), in_size(ow, kw, sw)
    assume(h > 0 and w > 0)
    b = ModelBuilder()
    shp = b.add_constant("shape", np.array([n, oh, ow, cout], np.int32))
    extra = {}
    has_bias = c["has_bias"]
    if kind in ("float", "hybrid"):
        assume(n * oh * ow * cout >= 8)
        if kind == "float":
            wt = b.add_constant("w", rng.normal(0, 0.5, (cout, kh, kw, cin)).astype(np.float32))
        else:
            s_w = (random_scale(rng, 1e-3, 0.05) * rng.uniform(0.5, 2, cout)).astype(np.float32)
            wt = b.add_constant("w", rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8),
                                scale=s_w, zero_point=0, quantized_dimension=0)
        x = b.add_input("x", [n, h, w, cin], np.float32)
        ins = [shp, wt, x]
        if has_bias:
            ins.append(b.add_constant("b", rng.normal(0, 0.5, cout).astype(np.float32)))
        y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
        xin = _float_input(rng, [n, h, w, cin])
    else:
        pc = per_channel and kind != "uint8"
        q = Q(rng, kind, mode, cout, cin * max(1, kh * kw // (sh * sw)), pc)
        wt = b.add_constant("w", q.weights((cout, kh, kw, cin)), scale=q.s_w, zero_point=q.zp_w,
                            quantized_dimension=0)
        x = b.add_input("x", [n, h, w, cin], q.dtype, scale=q.s_in, zero_point=q.zp_in)
        ins = [shp, wt, x]
        if has_bias:
            ins.append(b.add_constant("b", q.bias(cout), scale=q.bias_scale(cout, pc), zero_point=0))
        y = b.add_tensor("y", [n, oh, ow, cout], q.dtype, scale=q.s_out, zero_point=q.zp_out)
        extra = q.extra()
        xin = q.inputs([n, h, w, cin])
    b.add_operator("TRANSPOSE_CONV", ins, [y], padding=c["padding"], stride_w=sw, stride_h=sh,
                   fused_activation_function=c["act"], version=4 if c["act"] == "NONE" else 5, **extra)
    b.mark_outputs(y)
    return b.to_bytes(), [xin]


def bmm_model(rng, kind, mode, c):
    a, k, cc = c["a"], c["k"], c["c"]
    batch = list(c["batch"])
    ls = batch + [a, k]
    rs = batch[c["rdrop"]:] + [k, cc]
    out_shape = batch + [a, cc]
    b = ModelBuilder()
    inputs = []
    if kind == "float":
        assume(int(np.prod(out_shape)) >= 8)
        lhs = b.add_input("lhs", ls, np.float32)
        inputs.append(_float_input(rng, ls))
        r = b.add_constant("rhs", rng.normal(0, 1, rs).astype(np.float32))
        y = b.add_tensor("y", out_shape, np.float32)
    else:
        q = Q(rng, kind, mode, 1, k, False)
        lhs = b.add_input("lhs", ls, q.dtype, scale=q.s_in, zero_point=q.zp_in)
        inputs.append(q.inputs(ls))
        rzp = int(rng.integers(-3, 4)) if (c["rzp"] and not q.int16) else 0
        rv = np.clip(q.weights(rs).astype(np.int64) + rzp, -128, 127).astype(q.dtype if q.int16 else np.int8)
        if q.int16:
            rv = (q.weights(rs).astype(np.int64) * (1 if mode == "tie" else 200)).astype(np.int16)
        rq = dict(scale=float(q.s_w[0]), zero_point=rzp)
        if c["const_rhs"]:
            r = b.add_constant("rhs", rv, **rq)
        else:
            r = b.add_input("rhs", rs, rv.dtype, **rq)
            inputs.append(rv)
        y = b.add_tensor("y", out_shape, q.dtype, scale=q.s_out, zero_point=q.zp_out)
    b.add_operator("BATCH_MATMUL", [lhs, r], [y])
    b.mark_outputs(y)
    return b.to_bytes(), inputs


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------
conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 8), w=st.integers(1, 8), cin=st.integers(1, 9),
    cout=st.integers(1, 40), kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 2),
    sw=st.integers(1, 2), dh=st.sampled_from([1, 1, 2]), dw=st.sampled_from([1, 1, 2]),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS),
    mode=st.sampled_from(MODES), seed=st.integers(0, 2**31)))

dw_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 8), w=st.integers(1, 9), cin=st.integers(1, 40),
    dm=st.sampled_from([1, 1, 1, 2, 3]), kh=st.integers(1, 3), kw=st.integers(1, 3),
    sh=st.integers(1, 2), sw=st.integers(1, 2), dh=st.sampled_from([1, 1, 2]),
    dw=st.sampled_from([1, 1, 2]), padding=st.sampled_from(["SAME", "VALID"]),
    act=st.sampled_from(ACTS), has_bias=st.sampled_from([True, True, False]),
    mode=st.sampled_from(MODES), seed=st.integers(0, 2**31)))

fc_cases = st.fixed_dictionaries(dict(
    units=st.integers(1, 40), k=st.integers(1, 70),
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    keep=st.booleans(), has_bias=st.sampled_from([True, True, False]), act=st.sampled_from(ACTS),
    mode=st.sampled_from(MODES), seed=st.integers(0, 2**31)))

tc_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), oh=st.integers(1, 10), ow=st.integers(1, 10), cin=st.integers(1, 6),
    cout=st.integers(1, 40), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
    sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS),
    has_bias=st.sampled_from([True, True, False]), mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**31)))

bmm_cases = st.fixed_dictionaries(dict(
    a=st.integers(1, 8), k=st.integers(1, 40), c=st.integers(1, 24),
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), rdrop=st.integers(0, 2),
    const_rhs=st.booleans(), rzp=st.sampled_from([False, False, True]),
    mode=st.sampled_from(MODES), seed=st.integers(0, 2**31)))


def _check(oracle, path, model, inputs, kind):
    rtol = 1e-5 if kind in ("float", "hybrid") else 1e-6
    assert_matches_litert(oracle, model, inputs, path, rtol=rtol)


# ---------------------------------------------------------------------------
# CONV_2D
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@examples(40)
@given(conv_cases)
def test_conv_int8_per_channel_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, "int8", c["mode"], c), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(20)
@given(conv_cases)
def test_conv_int8_per_tensor_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, "int8", c["mode"], c, per_channel=False), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(20)
@given(conv_cases)
def test_conv_uint8_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, "uint8", c["mode"], c), "uint8")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["int16", "int16_i64"])
@examples(12)
@given(conv_cases)
def test_conv_16x8_vs_litert_paths(oracle, path, kind, c):
    """int32 bias (quantized_bias_type INT32): ruy, ties up; int64 bias: the reference
    kernel on both paths (XNNPACK takes no int16 tensor)."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, kind, c["mode"], c), kind)


@pytest.mark.parametrize("path", PATHS)
@examples(10)
@given(conv_cases, st.integers(2, 3))
def test_grouped_conv_int8_vs_litert_paths(oracle, path, c, groups):
    """Grouped convolutions run the reference kernel on the optimized path; XNNPACK takes them."""
    c = dict(c, cin=min(c["cin"], 3), cout=min(c["cout"], 6))
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, "int8", c["mode"], c, groups=groups), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(8)
@given(conv_cases)
def test_conv_float_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *conv_model(rng, "float", "random", c), "float")


@examples(8)
@given(conv_cases, st.booleans())
def test_conv_hybrid_vs_litert_optimized(oracle, c, per_channel):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, "optimized", *conv_model(rng, "hybrid", "random", c, per_channel=per_channel), "hybrid")


# ---------------------------------------------------------------------------
# DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@examples(40)
@given(dw_cases)
def test_depthwise_int8_per_channel_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "int8", c["mode"], c), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(15)
@given(dw_cases)
def test_depthwise_int8_per_tensor_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "int8", c["mode"], c, per_channel=False), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(25)
@given(dw_cases)
def test_depthwise_uint8_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "uint8", c["mode"], c), "uint8")


@pytest.mark.parametrize("path", PATHS)
@examples(6)
@given(dw_cases, st.integers(40, 130), st.integers(17, 40))
def test_depthwise_uint8_wide_rows_vs_litert_paths(oracle, path, c, width, channels):
    """Rows longer than the 2048-value accumulator buffer: the NEON output stage restarts
    at every chunk of 2048 // C pixels, each chunk with its own scalar leftovers; all of
    them round as gemmlowp (vqrdmulh + gemmlowp's vector RoundingDivideByPOT)."""
    c = dict(c, h=2, w=width, cin=channels, dm=1, sw=1, dw=1, n=1)
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "uint8", c["mode"], c), "uint8")


@pytest.mark.parametrize("path", PATHS)
@examples(8)
@given(dw_cases)
def test_depthwise_16x8_vs_litert_paths(oracle, path, c):
    """16x8 depthwise runs the reference kernel on every LiteRT path."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "int16", c["mode"], c), "int16")


@pytest.mark.parametrize("path", PATHS)
@examples(6)
@given(dw_cases)
def test_depthwise_float_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "float", "random", c), "float")


@pytest.mark.parametrize("path", PATHS)
@examples(8)
@given(dw_cases)
def test_depthwise_hybrid_vs_litert_paths(oracle, path, c):
    """XNNPACK declines float input with int8 weights here (mixed types): optimized kernel."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *dw_model(rng, "hybrid", "random", c), "hybrid")


# ---------------------------------------------------------------------------
# FULLY_CONNECTED
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@examples(30)
@given(fc_cases)
def test_fc_int8_per_tensor_vs_litert_paths(oracle, path, c):
    """Per-tensor multiplier from f32(s_in * s_w); batch 1 takes the NEON CustomGemv."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "int8", c["mode"], c), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(30)
@given(fc_cases)
def test_fc_int8_per_channel_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "int8", c["mode"], c, per_channel=True), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(10)
@given(fc_cases)
def test_fc_int8_weights_zero_point_vs_litert_paths(oracle, path, c):
    """A non-zero weights zero point: ruy subtracts it; XNNPACK declines the operator."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "int8", c["mode"], c, weights_zp=True), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(20)
@given(fc_cases)
def test_fc_uint8_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "uint8", c["mode"], c), "uint8")


@pytest.mark.parametrize("path", PATHS)
@examples(10)
@given(fc_cases)
def test_fc_uint8_int16_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "uint8", c["mode"], dict(c, act="NONE"), out16=True), "uint8")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["int16", "int16_i64", "int16_noqbt"])
@pytest.mark.parametrize("per_channel", [False, True])
@examples(8)
@given(fc_cases)
def test_fc_16x8_vs_litert_paths(oracle, path, kind, per_channel, c):
    """int32 bias and zero points 0: ruy (ties up), also without quantized_bias_type
    ("int16_noqbt", which the reference kernel would read as int64); int64 bias: the
    reference kernel."""
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, kind, c["mode"], c, per_channel=per_channel), kind)


@pytest.mark.parametrize("path", PATHS)
@examples(6)
@given(fc_cases)
def test_fc_float_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *fc_model(rng, "float", "random", c), "float")


@examples(8)
@given(fc_cases, st.booleans())
def test_fc_hybrid_vs_litert_optimized(oracle, c, per_channel):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, "optimized", *fc_model(rng, "hybrid", "random", c, per_channel=per_channel), "hybrid")


# ---------------------------------------------------------------------------
# TRANSPOSE_CONV
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@examples(30)
@given(tc_cases)
def test_transpose_conv_int8_per_channel_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *tconv_model(rng, "int8", c["mode"], c), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(12)
@given(tc_cases)
def test_transpose_conv_int8_per_tensor_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *tconv_model(rng, "int8", c["mode"], c, per_channel=False), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(20)
@given(tc_cases)
def test_transpose_conv_uint8_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *tconv_model(rng, "uint8", c["mode"], c), "uint8")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["int16", "int16_i64"])
@examples(8)
@given(tc_cases)
def test_transpose_conv_16x8_vs_litert_paths(oracle, path, kind, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *tconv_model(rng, kind, c["mode"], c), kind)


@pytest.mark.parametrize("path", PATHS)
@examples(6)
@given(tc_cases)
def test_transpose_conv_float_vs_litert_paths(oracle, path, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *tconv_model(rng, "float", "random", c), "float")


@examples(6)
@given(tc_cases)
def test_transpose_conv_hybrid_vs_litert_optimized(oracle, c):
    rng = np.random.default_rng(c["seed"])
    _check(oracle, "optimized", *tconv_model(rng, "hybrid", "random", c), "hybrid")


# ---------------------------------------------------------------------------
# BATCH_MATMUL
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@examples(25)
@given(bmm_cases)
def test_batch_matmul_int8_vs_litert_paths(oracle, path, c):
    """One registration (the reference kernel) on the optimized path; XNNPACK takes int8
    with an RHS zero point of 0 (constant or not) and requantizes in fp32."""
    assume(c["rdrop"] <= len(c["batch"]))
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *bmm_model(rng, "int8", c["mode"], c), "int8")


@pytest.mark.parametrize("path", PATHS)
@examples(8)
@given(bmm_cases)
def test_batch_matmul_int16_vs_litert_paths(oracle, path, c):
    assume(c["rdrop"] <= len(c["batch"]))
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *bmm_model(rng, "int16", c["mode"], c), "int16")


@pytest.mark.parametrize("path", PATHS)
@examples(6)
@given(bmm_cases)
def test_batch_matmul_float_vs_litert_paths(oracle, path, c):
    assume(c["rdrop"] <= len(c["batch"]))
    rng = np.random.default_rng(c["seed"])
    _check(oracle, path, *bmm_model(rng, "float", "random", c), "float")


# ---------------------------------------------------------------------------
# The tie cases separate the paths; hybrid operators XNNPACK quantizes dynamically
# ---------------------------------------------------------------------------
def _path_differences(oracle, models) -> dict[str, int]:
    """Elements where LiteRT's optimized / xnnpack output differs from its reference one."""
    diff = {"optimized": 0, "xnnpack": 0}
    for model, inputs in models:
        ref = oracle.run(model, inputs, "reference")
        assert ref.ok, ref.error
        for path in diff:
            r = oracle.run(model, inputs, path)
            assert r.ok, r.error
            diff[path] += int(np.sum(r.outputs[0] != ref.outputs[0]))
    return diff


def test_conv_and_fc_ties_are_reached(oracle):
    rng = np.random.default_rng(7)
    models = []
    for i in range(6):
        c = dict(n=1, h=6, w=6, cin=8, cout=24, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, padding="SAME",
                 act="NONE", mode="tie", seed=i)
        models.append(conv_model(rng, "int8", "tie", c))
        f = dict(units=24, k=40, batch=[6], keep=False, has_bias=True, act="NONE")
        models.append(fc_model(rng, "int8", "tie", f, per_channel=True))
    diff = _path_differences(oracle, models)
    assert diff["optimized"] > 20 and diff["xnnpack"] > 20, diff


def test_depthwise_and_transpose_conv_ties_are_reached(oracle):
    rng = np.random.default_rng(8)
    models = []
    for i in range(6):
        c = dict(n=1, h=6, w=6, cin=21, dm=1, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, padding="SAME",
                 act="NONE", has_bias=True)
        models.append(dw_model(rng, "int8", "tie", c))
        t = dict(n=1, oh=8, ow=8, cin=4, cout=21, kh=3, kw=3, sh=2, sw=2, padding="SAME", act="NONE",
                 has_bias=True)
        models.append(tconv_model(rng, "int8", "tie", t))
    diff = _path_differences(oracle, models)
    assert diff["optimized"] > 20 and diff["xnnpack"] > 20, diff


@pytest.mark.parametrize("op", ["conv", "fc", "tconv", "bmm"])
def test_xnnpack_dynamically_quantized_ops_are_refused(op):
    """XNNPACK runs float x int8 CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV / BATCH_MATMUL
    as dynamically quantized (qd8) kernels, which quantcore does not reproduce: asking
    for the xnnpack path raises NumericsPathError instead of returning other numbers."""
    rng = np.random.default_rng(0)
    if op == "conv":
        model, inputs = conv_model(rng, "hybrid", "random", dict(
            n=1, h=4, w=4, cin=3, cout=4, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, padding="SAME", act="NONE"))
    elif op == "fc":
        model, inputs = fc_model(rng, "hybrid", "random", dict(units=4, k=8, batch=[2], keep=False,
                                                               has_bias=True, act="NONE"))
    elif op == "tconv":
        model, inputs = tconv_model(rng, "hybrid", "random", dict(
            n=1, oh=4, ow=4, cin=2, cout=3, kh=3, kw=3, sh=1, sw=1, padding="SAME", act="NONE",
            has_bias=True))
    else:
        b = ModelBuilder()
        lhs = b.add_input("lhs", [2, 3], np.float32)
        r = b.add_constant("rhs", rng.integers(-127, 128, (3, 4)).astype(np.int8), scale=0.01, zero_point=0)
        y = b.add_tensor("y", [2, 4], np.float32)
        b.add_operator("BATCH_MATMUL", [lhs, r], [y])
        b.mark_outputs(y)
        model, inputs = b.to_bytes(), [np.ones((2, 3), np.float32)]
    with pytest.raises(NumericsPathError):
        run_ours(model, inputs, "xnnpack")
    run_ours(model, inputs, "optimized")


@pytest.mark.parametrize("kind", ["int8", "uint8", "float"])
def test_depthwise_without_bias_is_refused(oracle, kind):
    """LiteRT's optimized depthwise kernels copy the bias unconditionally: without one the
    process dies (SIGSEGV), on both non-reference paths (XNNPACK declines a depthwise
    without bias). quantcore raises NumericsPathError there and runs it on "reference"."""
    rng = np.random.default_rng(3)
    c = dict(n=1, h=3, w=3, cin=4, dm=1, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, padding="SAME",
             act="NONE", has_bias=True)
    model, inputs = dw_model(rng, kind, "random", c)
    b = ModelBuilder()
    from quantcore.schema import read_model
    m = read_model(model)
    m.subgraphs[0].operators[0].inputs = m.subgraphs[0].operators[0].inputs[:2]
    from quantcore.schema.writer import write_model
    model = write_model(m)
    for path in PATHS:
        assert oracle.run(model, inputs, path).aborted
        with pytest.raises(NumericsPathError):
            run_ours(model, inputs, path)
    assert_matches_litert(oracle, model, inputs, "reference")


@pytest.mark.parametrize("act,s_out", [("RELU6", 4.0), ("RELU6", 12.0), ("RELU_N1_TO_1", 2.0)])
@pytest.mark.parametrize("zp_out", [-3, 0, 1, 2])
def test_xnnpack_activation_bound_ties(oracle, act, s_out, zp_out):
    """XNNPACK quantizes the fused bounds as rint(f32(bound / s) + zp): with 6 / 4 = 1.5 or
    1 / 2 = 0.5 the bound rounds to even, where LiteRT rounds zp + round_away(bound / s).
    Large accumulators push most outputs onto the bounds."""
    rng = np.random.default_rng(zp_out + 10)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 8], np.int8, scale=0.1, zero_point=0)
    s_w = np.full(6, 0.05, np.float32)
    wt = b.add_constant("w", rng.integers(-127, 128, (6, 1, 1, 8)).astype(np.int8), scale=s_w,
                        zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", np.zeros(6, np.int32), scale=(np.float32(0.1) * s_w).astype(np.float32),
                          zero_point=0)
    y = b.add_tensor("y", [1, 4, 4, 6], np.int8, scale=s_out, zero_point=zp_out)
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   dilation_w_factor=1, dilation_h_factor=1, fused_activation_function=act)
    b.mark_outputs(y)
    model, inputs = b.to_bytes(), [rng.integers(-128, 128, (1, 4, 4, 8)).astype(np.int8)]
    for path in ["reference"] + PATHS:
        assert_matches_litert(oracle, model, inputs, path)
    ref = oracle.run(model, inputs, "reference").outputs[0]
    xnn = oracle.run(model, inputs, "xnnpack").outputs[0]
    bound = 6.0 / s_out if act == "RELU6" else 1.0 / s_out
    upper_ref = zp_out + int(np.floor(bound + 0.5))
    upper_xnn = int(np.rint(bound + zp_out))
    assert ref.max() == upper_ref and xnn.max() == upper_xnn


def test_xnnpack_large_requantization_scale_is_refused(oracle):
    """A requantization scale >= 256 makes XNNPACK refuse to create the operator; LiteRT's
    whole allocation fails on the xnnpack path (CONV_2D), or the process dies
    (BATCH_MATMUL above 255). quantcore raises NumericsPathError; "optimized" runs."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.add_input("x", [1, 3, 3, 2], np.int8, scale=1.0, zero_point=0)
    wt = b.add_constant("w", rng.integers(-2, 3, (2, 1, 1, 2)).astype(np.int8),
                        scale=np.ones(2, np.float32), zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", np.zeros(2, np.int32), scale=np.ones(2, np.float32), zero_point=0)
    y = b.add_tensor("y", [1, 3, 3, 2], np.int8, scale=1 / 256, zero_point=0)
    b.add_operator("CONV_2D", [x, wt, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   dilation_w_factor=1, dilation_h_factor=1)
    b.mark_outputs(y)
    conv = b.to_bytes(), [rng.integers(-2, 3, (1, 3, 3, 2)).astype(np.int8)]
    b = ModelBuilder()
    lhs = b.add_input("l", [2, 3], np.int8, scale=1.0, zero_point=0)
    r = b.add_constant("r", rng.integers(-1, 2, (3, 4)).astype(np.int8), scale=1.0, zero_point=0)
    y = b.add_tensor("y", [2, 4], np.int8, scale=1 / 255.5, zero_point=0)
    b.add_operator("BATCH_MATMUL", [lhs, r], [y])
    b.mark_outputs(y)
    bmm = b.to_bytes(), [rng.integers(-1, 2, (2, 3)).astype(np.int8)]
    for model, inputs in (conv, bmm):
        assert not oracle.run(model, inputs, "xnnpack").ok
        with pytest.raises(NumericsPathError):
            run_ours(model, inputs, "xnnpack")
        assert_matches_litert(oracle, model, inputs, "optimized")


def test_fixed_point_primitives_of_the_paths():
    """srdhm_ties_up equals gemmlowp's SaturatingRoundingDoublingHighMul (the paths differ
    only in the rounding right shift); rdbpot_ties_up rounds exact halves toward +inf;
    mbqm_ties_up and gemmlowp's MBQM agree except on negative ties of the right shift."""
    from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                      saturating_rounding_doubling_high_mul)
    from quantcore.runtime.ops._paths import mbqm_ties_up, rdbpot_ties_up, srdhm_ties_up
    rng = np.random.default_rng(0)
    a = rng.integers(-2**31, 2**31, 200000)
    m = rng.integers(2**30, 2**31, 200000)
    a[:1000] = 2 * rng.integers(-2**20, 2**20, 1000) + 1
    m[:1000] = 2**30                                   # exact halves
    assert np.array_equal(srdhm_ties_up(a, m), saturating_rounding_doubling_high_mul(a, m))
    x = np.arange(-64, 65)
    for e in range(0, 5):
        assert np.array_equal(rdbpot_ties_up(x, e), np.floor(x / 2.0**e + 0.5).astype(np.int64))
    acc = rng.integers(-5000, 5000, 20000)
    for shift in (-1, -3, -6, 0, 2):
        ours = mbqm_ties_up(acc, 2**30, shift)
        ref = multiply_by_quantized_multiplier(acc, 2**30, shift)
        # M = 2^30: the first step is floor((x + 1) / 2) for x = acc << max(shift, 0); the
        # second divides by 2^right and ties when the remainder is exactly half of it
        right = max(-shift, 0)
        r = (acc * 2 ** max(shift, 0) + 1) >> 1
        tie = (r < 0) & (right > 0) & ((r & ((1 << right) - 1)) == (1 << right >> 1))
        assert tie.any() == (right > 0)
        assert np.array_equal(ours[~tie], ref[~tie])
        assert np.all(ours[tie] == ref[tie] + 1)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("batches", [1, 2])
def test_fc_optimized_multiplier_product(oracle, per_channel, batches):
    """The optimized FC multiplier: per tensor QuantizeMultiplier(double(f32(s_in * s_w)) /
    s_out) (GetQuantizedConvolutionMultipler), per channel double(s_in) * double(s_w[c]) /
    double(s_out). Scales are drawn until the two products give different multipliers
    and some accumulator (placed in the bias, the input is 0) rounds differently with
    them; batch 1 runs the NEON CustomGemv, batch 2 ruy."""
    from quantcore.fixedpoint import quantize_multiplier
    from quantcore.runtime.ops._paths import mbqm_ties_up
    rng = np.random.default_rng(11 + per_channel)
    acc = np.arange(-2**21, 2**21, dtype=np.int64)
    while True:
        s_in, s_w = np.float32(rng.uniform(1e-3, 0.1)), np.float32(rng.uniform(1e-3, 0.05))
        s_out = np.float32(float(s_in) * float(s_w) / rng.uniform(1e-4, 1e-3))
        md = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
        mf = quantize_multiplier(float(np.float32(s_in * s_w)) / float(s_out))
        if md == mf:
            continue
        yd = np.clip(mbqm_ties_up(acc, *md), -128, 127)
        yf = np.clip(mbqm_ties_up(acc, *mf), -128, 127)
        targets = acc[yd != yf][:16]
        if len(targets):
            break
    targets = np.concatenate([targets, [0, 1]])   # at least 2 units: per channel stays per channel
    units = len(targets)
    b = ModelBuilder()
    x = b.add_input("x", [batches, 1], np.int8, scale=float(s_in), zero_point=0)
    scales = np.full(units, s_w, np.float32) if per_channel else float(s_w)
    w = b.add_constant("w", np.ones((units, 1), np.int8), scale=scales, zero_point=0,
                       quantized_dimension=0)
    bias_scale = np.float32(s_in * s_w)
    bias = b.add_constant("b", targets.astype(np.int32),
                          scale=np.full(units, bias_scale, np.float32) if per_channel else float(bias_scale),
                          zero_point=0)
    y = b.add_tensor("y", [batches, units], np.int8, scale=float(s_out), zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    model, inputs = b.to_bytes(), [np.zeros((batches, 1), np.int8)]
    out = oracle.run(model, inputs, "optimized").outputs[0]
    expect = (yd if per_channel else yf)[targets + 2**21]
    assert np.array_equal(out[0], expect)
    assert_matches_litert(oracle, model, inputs, "optimized")
