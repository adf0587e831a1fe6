"""FULLY_CONNECTED against LiteRT BUILTIN_REF: float32, hybrid (int8/uint8 weights,
symmetric/asymmetric input quantization, per-tensor/per-channel), int8 (per-tensor
with weight zero points, per-channel), uint8 -> uint8, uint8 -> int16, the shuffled
uint8 format, 16x8 (int32/int64/no bias), int16 weights; inputs of any rank,
keep_num_dims, optional bias, constant and non-constant weights, fused activations,
constructed rounding ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, QuantcoreError, UnsupportedOpError
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
HYBRID_ACTS = ACTS + ["TANH", "SIGN_BIT"]
DT = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def _shapes(c):
    """(input shape, accum_depth, batches) from the drawn case."""
    dims = list(c["dims"])
    if c["keep"] or c["flatten"] == 0:
        return dims, dims[-1], int(np.prod(dims[:-1], dtype=np.int64))
    total = int(np.prod(dims, dtype=np.int64))
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    k = divisors[c["flatten"] % len(divisors)]
    return dims, k, total // k


def _out_shape(dims, k, batches, units, keep):
    return dims[:-1] + [units] if keep else [batches, units]


def fc_model(rng, kind, c, *, per_channel=False, bias="yes", const_w=True, weights_zp=False,
             asym=False, wtype=np.int8, bias_type=np.int32, qbt=None):
    dims, k, batches = _shapes(c)
    units = c["units"]
    b = ModelBuilder()
    inputs = []
    act = c["act"]
    opts = dict(fused_activation_function=act, keep_num_dims=c["keep"])
    out_dims = _out_shape(dims, k, batches, units, c["keep"])
    if kind in ("float", "hybrid"):
        x = b.add_input("x", dims, np.float32)
        inputs.append((rng.normal(0, 1, dims) * rng.uniform(0.1, 10)).astype(np.float32))
        if kind == "float":
            wv = rng.normal(0, 0.5, (units, k)).astype(np.float32)
            wq = dict()
        else:
            info = np.iinfo(wtype)
            wv = rng.integers(max(info.min, -127), info.max + 1, (units, k)).astype(wtype)
            sw = np.array([random_scale(rng, 1e-3, 0.1) for _ in range(units if per_channel else 1)],
                          np.float32)
            wq = dict(scale=sw, zero_point=0, quantized_dimension=0)
            opts["asymmetric_quantize_inputs"] = asym
        w = b.add_constant("w", wv, **wq) if const_w else b.add_input("w", [units, k], wv.dtype, **wq)
        if not const_w:
            inputs.append(wv)
        bias_t = -1 if bias == "absent" else b.add_constant("b", rng.normal(0, 1, units).astype(np.float32))
        y = b.add_tensor("y", out_dims, np.float32)
    else:
        dtype = DT[kind]
        s_in = random_scale(rng, 1e-3, 0.1)
        zp_in = {"int8": int(rng.integers(-128, 128)), "uint8": int(rng.integers(0, 256)), "int16": 0}[kind]
        x = b.add_input("x", dims, dtype, scale=s_in, zero_point=zp_in)
        inputs.append(random_input(rng, dims, dtype))
        nsc = units if per_channel else 1
        sw = np.array([random_scale(rng, 1e-3, 0.05) for _ in range(nsc)], np.float32)
        info = np.iinfo(wtype)
        lo = info.min + 1 if info.min < 0 else 0
        wv = rng.integers(lo, info.max + 1, (units, k)).astype(wtype)
        w_zp = 0
        if weights_zp:
            w_zp = int(rng.integers(info.min, info.max + 1)) if wtype != np.int16 else int(rng.integers(-100, 100))
        w = (b.add_constant if const_w else b.add_input)(
            "w", *((wv,) if const_w else ([units, k], wtype)), scale=sw, zero_point=w_zp,
            quantized_dimension=0)
        if not const_w:
            inputs.append(wv)
        bias_scale = (np.float32(s_in) * sw).astype(np.float32)
        if bias == "absent":
            bias_t = -1
        else:
            bound = 2**20 if bias_type == np.int64 else 20000
            bq = rng.integers(-bound, bound, units).astype(bias_type)
            bias_t = b.add_constant("b", bq, scale=np.broadcast_to(bias_scale, (units,)) if per_channel
                                    else bias_scale, zero_point=0)
        out_t = c.get("out_type", kind)
        wmag = 32768 if wtype == np.int16 else 128
        xmag = 32768 if kind == "int16" else 128
        omag = 32768 if out_t == "int16" else 128
        # output range ~ the typical |acc| (random signs: sqrt(k) * |x| * |w| / ~3)
        s_out = float(np.float32(s_in * float(np.median(sw)) * np.sqrt(k) * xmag * wmag / 3 / omag
                                 * rng.uniform(0.3, 3)))
        zp_out = {"int8": int(rng.integers(-60, 60)), "uint8": int(rng.integers(68, 188)), "int16": 0}[out_t]
        y = b.add_tensor("y", out_dims, DT[out_t], scale=s_out, zero_point=zp_out)
        if qbt is not None:
            opts["quantized_bias_type"] = qbt
    b.add_operator("FULLY_CONNECTED", [x, w, bias_t], [y], **opts)
    b.mark_outputs(y)
    return b.to_bytes(), inputs


fc_cases = st.fixed_dictionaries(dict(
    dims=st.lists(st.integers(1, 6), min_size=1, max_size=4), last=st.integers(1, 40),
    units=st.integers(1, 9), keep=st.booleans(), flatten=st.integers(0, 5),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


def _case(c):
    c = dict(c)
    c["dims"] = list(c["dims"][:-1]) + [c["last"]]
    return c


def _run(oracle, kind, c, **kw):
    c = _case(c)
    rng = np.random.default_rng(c["seed"])
    model, inputs = fc_model(rng, kind, c, **kw)
    assert_matches_litert(oracle, model, inputs, "reference")


# ---------------------------------------------------------------- float
@examples(40)
@given(fc_cases, st.sampled_from(["yes", "absent"]), st.booleans())
def test_fc_float_vs_litert_ref(oracle, c, bias, const_w):
    _run(oracle, "float", c, bias=bias, const_w=const_w)


# ---------------------------------------------------------------- hybrid
@examples(60)
@given(fc_cases, st.booleans(), st.booleans(), st.sampled_from(HYBRID_ACTS),
       st.sampled_from(["yes", "absent"]), st.sampled_from([np.int8, np.int8, np.uint8]))
def test_fc_hybrid_vs_litert_ref(oracle, c, per_channel, asym, act, bias, wtype):
    assume(not (per_channel and wtype == np.uint8))
    _run(oracle, "hybrid", dict(c, act=act), per_channel=per_channel, asym=asym, bias=bias, wtype=wtype)


@examples(10)
@given(fc_cases, st.booleans())
def test_fc_hybrid_nonconstant_weights_vs_litert_ref(oracle, c, asym):
    _run(oracle, "hybrid", c, per_channel=True, asym=asym, const_w=False)


@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("k,pos", [(8, 1), (9, 8), (16, 9), (17, 16), (23, 15), (23, 20)])
def test_fc_hybrid_quantize_rounding_trap_vs_litert_ref(oracle, k, pos, asym):
    """0.49999997f * inv: the 8-wide vector path rounds it to 1 (the +0.5 add rounds in
    float32), the scalar tail to 0. Scale 1 makes the output equal the quantized value."""
    x = np.zeros((2, k), np.float32)
    x[:, 0] = 127.0
    x[:, pos] = np.nextafter(np.float32(0.5), np.float32(0))
    x[1, pos] = -x[1, pos]
    if asym:
        x[:, 2 if pos != 2 else 3] = -128.0
    w = np.zeros((2, k), np.int8)
    w[0, pos] = 1
    w[1, :] = 1
    b = ModelBuilder()
    xi = b.add_input("x", [2, k], np.float32)
    wi = b.add_constant("w", w, scale=1.0, zero_point=0)
    y = b.add_tensor("y", [2, 2], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, -1], [y], asymmetric_quantize_inputs=asym)
    b.mark_outputs(y)
    it, theirs = assert_matches_litert(oracle, b.to_bytes(), [x], "reference")
    expect = 1.0 if pos < k - k % 8 else 0.0
    assert it.get_tensor(y)[0, 0] == expect


def test_fc_hybrid_zero_input_vs_litert_ref(oracle):
    """IsZeroVector short cut: output = bias, then the activation."""
    b = ModelBuilder()
    xi = b.add_input("x", [3, 5], np.float32)
    wi = b.add_constant("w", np.arange(20, dtype=np.int8).reshape(4, 5), scale=0.1, zero_point=0)
    bi = b.add_constant("b", np.array([-1.5, 0.5, 2.0, 7.0], np.float32))
    y = b.add_tensor("y", [3, 4], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, bi], [y], fused_activation_function="RELU6")
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [np.zeros((3, 5), np.float32)], "reference")


# ---------------------------------------------------------------- int8
@examples(60)
@given(fc_cases, st.sampled_from(["yes", "absent"]))
def test_fc_int8_per_channel_vs_litert_ref(oracle, c, bias):
    _run(oracle, "int8", c, per_channel=True, bias=bias)


@examples(40)
@given(fc_cases, st.booleans(), st.booleans())
def test_fc_int8_per_tensor_vs_litert_ref(oracle, c, weights_zp, const_w):
    _run(oracle, "int8", c, per_channel=False, weights_zp=weights_zp, const_w=const_w)


# ---------------------------------------------------------------- uint8
@examples(30)
@given(fc_cases, st.sampled_from(["yes", "absent"]))
def test_fc_uint8_vs_litert_ref(oracle, c, bias):
    _run(oracle, "uint8", c, wtype=np.uint8, weights_zp=True, bias=bias)


@examples(20)
@given(fc_cases)
def test_fc_uint8_int16_output_vs_litert_ref(oracle, c):
    _run(oracle, "uint8", dict(c, out_type="int16"), wtype=np.uint8, weights_zp=True)


# ---------------------------------------------------------------- 16x8 and int16 weights
@examples(30)
@given(fc_cases, st.booleans(), st.sampled_from(["int64", "int32", "absent"]))
def test_fc_16x8_vs_litert_ref(oracle, c, per_channel, bias_kind):
    bias_type = np.int64 if bias_kind == "int64" else np.int32
    qbt = "INT32" if bias_kind == "int32" else ("INT64" if c["seed"] % 2 and bias_kind == "int64" else None)
    _run(oracle, "int16", c, per_channel=per_channel, bias="absent" if bias_kind == "absent" else "yes",
         bias_type=bias_type, qbt=qbt)


@examples(20)
@given(fc_cases, st.booleans(), st.booleans())
def test_fc_int16_weights_vs_litert_ref(oracle, c, per_channel, int64_bias):
    c = dict(c, last=min(c["last"], 12))
    _run(oracle, "int16", c, per_channel=per_channel, wtype=np.int16, weights_zp=not per_channel,
         bias_type=np.int64 if int64_bias else np.int32, qbt="INT64" if int64_bias else None)


# ---------------------------------------------------------------- shuffled
def _shuffle_weights(w_u8):
    """TOCO's shuffled layout: blocks of 4 rows x 16 columns, sign bit flipped."""
    n, k = w_u8.shape
    return (w_u8 ^ 0x80).reshape(n // 4, 4, k // 16, 16).transpose(0, 2, 1, 3).reshape(-1)


@examples(15)
@given(st.sampled_from([1, 4]), st.integers(1, 3), st.integers(1, 3), st.sampled_from(ACTS),
       st.integers(0, 2**31))
def test_fc_shuffled_uint8_vs_litert_ref(oracle, batches, k16, n4, act, seed):
    rng = np.random.default_rng(seed)
    k, n = 16 * k16, 4 * n4
    b = ModelBuilder()
    s_in, s_w = random_scale(rng, 1e-3, 0.1), random_scale(rng, 1e-3, 0.05)
    x = b.add_input("x", [batches, k], np.uint8, scale=s_in, zero_point=128)
    wv = rng.integers(0, 256, (n, k)).astype(np.uint8)
    w = b.add_constant("w", _shuffle_weights(wv).reshape(n, k), scale=s_w, zero_point=128)
    bias = b.add_constant("b", rng.integers(-5000, 5000, n).astype(np.int32),
                          scale=np.float32(s_in) * np.float32(s_w), zero_point=0)
    s_out = float(np.float32(s_in * s_w * np.sqrt(k) * 128 * 128 / 40 / 4096 * rng.uniform(0.5, 2)))
    y = b.add_tensor("y", [batches, n], np.int16, scale=s_out, zero_point=0)
    ws = b.add_tensor("ws", [batches * k], np.uint8, scale=1.0, zero_point=0)  # validator wants qparams
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y, ws], weights_format="SHUFFLED4x16INT8",
                   fused_activation_function=act)
    b.mark_outputs(y, ws)
    assert_matches_litert(oracle, b.to_bytes(), [random_input(rng, [batches, k], np.uint8)], "reference")


# ---------------------------------------------------------------- constructed ties
TIE_SCALES = [(2.0**-4, 2.0**-5, 2.0**-6),         # eff 1/8
              (2.0**-4, 3 * 2.0**-7, 2.0**-6),     # eff 3/16: gemmlowp double rounding differs
              (0.75 * 2.0**-3, 2.0**-5, 2.0**-7),  # eff 3/4
              (2.0**-3, 5 * 2.0**-8, 2.0**-6),     # eff 5/32
              (2.0**-2, 2.0**-3, 2.0**-4)]         # eff 1/2: x.5 everywhere an odd acc


@pytest.mark.parametrize("kind", ["int8", "uint8", "int16"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_fc_rounding_ties_vs_litert_ref(oracle, kind, per_channel, seed):
    """Power-of-two-ish scales make double(acc) * eff hit exact .5 cases: LiteRT rounds
    them half away from zero in double, not with the fixed-point multiplier."""
    if kind == "uint8" and per_channel:
        pytest.skip("uint8 has no per-channel FULLY_CONNECTED")
    rng = np.random.default_rng(seed)
    units, k, batches = 5, 6, 16
    dtype = DT[kind]
    s_in = TIE_SCALES[seed][0]
    sw = np.array([TIE_SCALES[(seed + i) % len(TIE_SCALES)][1] for i in range(units if per_channel else 1)],
                  np.float32)
    s_out = TIE_SCALES[seed][2]
    zp_in = {"int8": 5, "uint8": 130, "int16": 0}[kind]
    zp_out = {"int8": -3, "uint8": 120, "int16": 0}[kind]
    info = np.iinfo(dtype)
    xv = np.clip(rng.integers(-6, 7, (batches, k)) + zp_in, info.min, info.max).astype(dtype)
    if kind == "uint8":
        wv = rng.integers(120, 137, (units, k)).astype(np.uint8)
        w_zp = 128
    else:
        wv = rng.integers(-6, 7, (units, k)).astype(np.int8)
        w_zp = 0
    bv = rng.integers(-9, 10, units).astype(np.int64 if kind == "int16" else np.int32)
    b = ModelBuilder()
    x = b.add_input("x", [batches, k], dtype, scale=s_in, zero_point=zp_in)
    w = b.add_constant("w", wv, scale=sw, zero_point=w_zp, quantized_dimension=0)
    bias = b.add_constant("b", bv, scale=(np.float32(s_in) * sw).astype(np.float32), zero_point=0)
    y = b.add_tensor("y", [batches, units], dtype, scale=s_out, zero_point=zp_out)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")
    # the case really contains ties
    acc = (xv.astype(np.int64) - zp_in) @ (wv.astype(np.int64) - w_zp).T + bv
    v = acc * (s_in * np.broadcast_to(sw.astype(np.float64), (units,)) / s_out)
    assert np.any(np.abs(v - np.trunc(v)) == 0.5)


# ---------------------------------------------------------------- odd shapes
def test_fc_input_not_multiple_of_depth_vs_litert_ref(oracle):
    """input.size % accum_depth != 0: LiteRT uses floor(size / depth) rows and ignores the rest."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [2, 7], np.int8, scale=0.05, zero_point=1)
    w = b.add_constant("w", rng.integers(-127, 128, (3, 4)).astype(np.int8), scale=0.02, zero_point=0)
    y = b.add_tensor("y", [3, 3], np.int8, scale=0.1, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, -1], [y])
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [random_input(rng, [2, 7], np.int8)], "reference")


def test_fc_int32_accumulator_wraps_vs_litert_ref(oracle):
    """16x8 with an int32 bias accumulates in int32: a long row of extreme values wraps."""
    k = 1024
    b = ModelBuilder()
    x = b.add_input("x", [2, k], np.int16, scale=1e-4, zero_point=0)
    w = b.add_constant("w", np.full((2, k), 127, np.int8), scale=1e-3, zero_point=0)
    bias = b.add_constant("b", np.array([0, 5], np.int32), scale=1e-7, zero_point=0)
    y = b.add_tensor("y", [2, 2], np.int16, scale=1e-2, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y], quantized_bias_type="INT32")
    b.mark_outputs(y)
    xv = np.full((2, k), 32767, np.int16)
    xv[1] = -32768
    assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")


# ---------------------------------------------------------------- bad models
def _int8_fc(**kw):
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.int8, **kw.get("xq", dict(scale=0.1, zero_point=0)))
    w = b.add_constant("w", np.ones(kw.get("wshape", (3, 4)), np.int8), **kw.get("wq", dict(scale=0.1, zero_point=0)))
    y = b.add_tensor("y", [2, 3], kw.get("ytype", np.int8), scale=0.1, zero_point=0)
    ins = [x, w] + ([b.add_constant("b", np.zeros(kw.get("nbias", 3), np.int32))] if "nbias" in kw else [])
    b.add_operator("FULLY_CONNECTED", ins, [y], **kw.get("opts", {}))
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("model,err,litert_refuses", [
    (dict(xq=dict()), ModelFormatError, True),                       # input without quantization
    (dict(wshape=(3, 2, 2)), ModelFormatError, True),                # filter rank 3
    (dict(nbias=4), ModelFormatError, True),                         # bias length != units
    (dict(opts=dict(fused_activation_function="TANH")), ModelFormatError, True),
    (dict(wq=dict(scale=[0.1, 0.2, 0.3], zero_point=0, quantized_dimension=1)), ModelFormatError, True),
    # int8 in, int16 out: LiteRT takes its uint8 -> int16 kernel, which dereferences the
    # absent bias (SIGSEGV); with a bias it would read the int8 input as uint8
    (dict(ytype=np.int16), ModelFormatError, True),
])
def test_fc_bad_models_raise(oracle, model, err, litert_refuses):
    data = _int8_fc(**model)
    with pytest.raises(err):
        run_ours(data, [np.zeros((2, 4), np.int8)])
    assert oracle.run(data, [np.zeros((2, 4), np.int8)], "reference").ok != litert_refuses


def test_fc_16x8_int32_bias_without_bias_type_raises():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int16, scale=0.1, zero_point=0)
    w = b.add_constant("w", np.ones((2, 4), np.int8), scale=0.1, zero_point=0)
    bias = b.add_constant("b", np.zeros(2, np.int32), scale=0.01, zero_point=0)
    y = b.add_tensor("y", [1, 2], np.int16, scale=0.1, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="quantized_bias_type"):
        run_ours(b.to_bytes(), [np.zeros((1, 4), np.int16)])


def test_fc_int4_weights_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.int8, scale=0.1, zero_point=0)
    w = b.add_constant("w", np.zeros(4, np.int8), tensor_type=17, scale=0.1, zero_point=0)  # INT4
    b.subgraph.tensors[w].shape = [2, 4]
    y = b.add_tensor("y", [1, 2], np.int8, scale=0.1, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w], [y])
    b.mark_outputs(y)
    with pytest.raises(QuantcoreError):
        run_ours(b.to_bytes(), [np.zeros((1, 4), np.int8)])
