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
from quantcore.errors import ModelFormatError, QuantcoreError
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
            lo = info.min if rng.integers(0, 4) == 0 else max(info.min, -127)  # -128 sometimes
            wv = rng.integers(lo, info.max + 1, (units, k)).astype(wtype)
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
            w_zp = int(rng.integers(-100, 100) if wtype == np.int16 else rng.integers(info.min, info.max + 1))
        wq = dict(scale=sw, zero_point=w_zp, quantized_dimension=0)
        w = b.add_constant("w", wv, **wq) if const_w else b.add_input("w", [units, k], wtype, **wq)
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
    # float and hybrid outputs are bit-exact too (TANH included: Eigen's approximation)
    assert_matches_litert(oracle, model, inputs, "reference", rtol=0.0)


# ---------------------------------------------------------------- float
@examples(80)
@given(fc_cases, st.sampled_from(["yes", "absent"]), st.booleans())
def test_fc_float_vs_litert_ref(oracle, c, bias, const_w):
    _run(oracle, "float", c, bias=bias, const_w=const_w)


# ---------------------------------------------------------------- hybrid
@examples(120)
@given(fc_cases, st.booleans(), st.booleans(), st.sampled_from(HYBRID_ACTS),
       st.sampled_from(["yes", "absent"]), st.sampled_from([np.int8, np.int8, np.uint8]))
def test_fc_hybrid_vs_litert_ref(oracle, c, per_channel, asym, act, bias, wtype):
    assume(not (per_channel and wtype == np.uint8))
    _run(oracle, "hybrid", dict(c, act=act), per_channel=per_channel, asym=asym, bias=bias, wtype=wtype)


@examples(20)
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
    it, theirs = assert_matches_litert(oracle, b.to_bytes(), [x], "reference", rtol=0.0)
    expect = 1.0 if pos < k - k % 8 else 0.0
    assert it.get_tensor(y)[0, 0] == expect


def _asym_straddlers(rmin, rmax):
    """Values x in [rmin, rmax] whose quantized value depends on whether the asymmetric
    scale is computed from f32(rmax - rmin) (LiteRT's NEON quantizer) or in double."""
    f32 = np.float32
    inv = [f32(1.0 / np.float64(f32(w / 255.0)))
           for w in (np.float64(f32(rmax - rmin)), np.float64(rmax) - np.float64(rmin))]
    cand = (np.arange(-128, 128) + 0.5) / np.float64(inv[0])
    cand = cand.astype(f32)
    lo = hi = cand
    out = []
    for _ in range(40):
        for c in (lo, hi):
            ok = (c >= rmin) & (c <= rmax)
            a = np.trunc((c * inv[0]).astype(f32) + np.where(c < 0, f32(-0.5), f32(0.5)).astype(f32))
            b = np.trunc((c * inv[1]).astype(f32) + np.where(c < 0, f32(-0.5), f32(0.5)).astype(f32))
            out.extend(c[ok & (a != b)].tolist())
        lo, hi = np.nextafter(lo, f32(-np.inf)), np.nextafter(hi, f32(np.inf))
    return sorted(set(out))


def test_fc_hybrid_asymmetric_scale_in_float32_vs_litert_ref(oracle):
    """NeonAsymmetricQuantizeFloats computes rmax - rmin in float32 before the double
    division by 255; the values here quantize differently if it is done in double."""
    rng = np.random.default_rng(7)
    rows = []
    while len(rows) < 3:
        rmax = np.float32(rng.uniform(0.5, 3) * 2.0 ** rng.integers(0, 10))
        rmin = np.float32(-rng.uniform(0, 1) * 2.0 ** rng.integers(-10, 10))
        if np.float32(np.float64(np.float32(rmax - rmin)) / 255) == np.float32(
                (np.float64(rmax) - np.float64(rmin)) / 255):
            continue
        xs = _asym_straddlers(rmin, rmax)
        if len(xs) >= 30:
            rows.append([rmin, rmax] + xs[:30])
    x = np.array(rows, np.float32)
    k = x.shape[1]
    b = ModelBuilder()
    xi = b.add_input("x", [3, k], np.float32)
    wi = b.add_constant("w", np.eye(k, dtype=np.int8), scale=1.0, zero_point=0)
    y = b.add_tensor("y", [3, k], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, -1], [y], asymmetric_quantize_inputs=True)
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [x], "reference", rtol=0.0)


def test_fc_hybrid_tanh_is_eigens_vs_litert_ref(oracle):
    """The fused TANH of the hybrid kernel is Eigen's float32 rational approximation;
    bias values put the pre-activation on a dense grid (zero weights)."""
    rng = np.random.default_rng(1)
    vals = np.concatenate([np.linspace(-9, 9, 1801), rng.normal(0, 2, 1000),
                           rng.uniform(-1e-3, 1e-3, 200), [7.90738964, 7.9073897, -7.9073897, 0.0]])
    vals = vals.astype(np.float32)
    n = len(vals)
    b = ModelBuilder()
    x = b.add_input("x", [1, 1], np.float32)
    w = b.add_constant("w", np.zeros((n, 1), np.int8), scale=1.0, zero_point=0)
    bias = b.add_constant("b", vals)
    y = b.add_tensor("y", [1, n], np.float32)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y], fused_activation_function="TANH")
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [np.ones((1, 1), np.float32)], "reference", rtol=0.0)


@pytest.mark.parametrize("k", [15, 16, 31, 33, 48, 70])
@pytest.mark.parametrize("asym", [False, True])
def test_fc_hybrid_weight_minus_128_vs_litert_ref(oracle, k, asym):
    """The SSE int8 dot product moves the input's sign onto the weight with
    _mm_sign_epi8; -(-128) stays -128 in the first K & ~15 columns."""
    rng = np.random.default_rng(k)
    w = rng.integers(-128, 128, (6, k)).astype(np.int8)
    w[:, ::3] = -128
    b = ModelBuilder()
    xi = b.add_input("x", [4, k], np.float32)
    wi = b.add_constant("w", w, scale=0.01, zero_point=0)
    y = b.add_tensor("y", [4, 6], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, -1], [y], asymmetric_quantize_inputs=asym)
    b.mark_outputs(y)
    x = rng.normal(0, 1, (4, k)).astype(np.float32)
    assert_matches_litert(oracle, b.to_bytes(), [x], "reference", rtol=0.0)


@pytest.mark.parametrize("k", [2256, 2264, 2270])
@pytest.mark.parametrize("fill", [127, -128])
def test_fc_hybrid_row_sum_int16_lanes_vs_litert_ref(oracle, k, fill):
    """SseReductionSumVector adds 16-column blocks pairwise into int16 lanes, which wrap
    for long rows of large weights (the row sums matter with asymmetric inputs)."""
    rng = np.random.default_rng(0)
    w = np.full((3, k), fill, np.int8)
    w[1, ::5] = 0
    w[2] = rng.integers(-128, 128, k)
    b = ModelBuilder()
    xi = b.add_input("x", [2, k], np.float32)
    wi = b.add_constant("w", w, scale=1e-3, zero_point=0)
    y = b.add_tensor("y", [2, 3], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, -1], [y], asymmetric_quantize_inputs=True)
    b.mark_outputs(y)
    x = rng.uniform(-0.2, 1, (2, k)).astype(np.float32)
    assert_matches_litert(oracle, b.to_bytes(), [x], "reference", rtol=0.0)


def test_fc_hybrid_zero_input_vs_litert_ref(oracle):
    """IsZeroVector short cut: output = bias, then the activation."""
    b = ModelBuilder()
    xi = b.add_input("x", [3, 5], np.float32)
    wi = b.add_constant("w", np.arange(20, dtype=np.int8).reshape(4, 5), scale=0.1, zero_point=0)
    bi = b.add_constant("b", np.array([-1.5, 0.5, 2.0, 7.0], np.float32))
    y = b.add_tensor("y", [3, 4], np.float32)
    b.add_operator("FULLY_CONNECTED", [xi, wi, bi], [y], fused_activation_function="RELU6")
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [np.zeros((3, 5), np.float32)], "reference", rtol=0.0)


# ---------------------------------------------------------------- int8
@examples(100)
@given(fc_cases, st.sampled_from(["yes", "absent"]))
def test_fc_int8_per_channel_vs_litert_ref(oracle, c, bias):
    _run(oracle, "int8", c, per_channel=True, bias=bias)


@examples(80)
@given(fc_cases, st.booleans(), st.booleans())
def test_fc_int8_per_tensor_vs_litert_ref(oracle, c, weights_zp, const_w):
    _run(oracle, "int8", c, per_channel=False, weights_zp=weights_zp, const_w=const_w)


# ---------------------------------------------------------------- uint8
@examples(50)
@given(fc_cases, st.sampled_from(["yes", "absent"]))
def test_fc_uint8_vs_litert_ref(oracle, c, bias):
    _run(oracle, "uint8", c, wtype=np.uint8, weights_zp=True, bias=bias)


@examples(40)
@given(fc_cases)
def test_fc_uint8_int16_output_vs_litert_ref(oracle, c):
    _run(oracle, "uint8", dict(c, out_type="int16"), wtype=np.uint8, weights_zp=True)


# ---------------------------------------------------------------- 16x8 and int16 weights
@examples(60)
@given(fc_cases, st.booleans(), st.sampled_from(["int64", "int32", "absent"]))
def test_fc_16x8_vs_litert_ref(oracle, c, per_channel, bias_kind):
    bias_type = np.int64 if bias_kind == "int64" else np.int32
    qbt = "INT32" if bias_kind == "int32" else ("INT64" if c["seed"] % 2 and bias_kind == "int64" else None)
    _run(oracle, "int16", c, per_channel=per_channel, bias="absent" if bias_kind == "absent" else "yes",
         bias_type=bias_type, qbt=qbt)


@examples(40)
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


@examples(30)
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


@pytest.mark.parametrize("batches", [1, 4])
@pytest.mark.parametrize("scales", [(2.0**-4, 3 * 2.0**-7, 2.0**-6), (2.0**-2, 2.0**-3, 2.0**-4)])
def test_fc_shuffled_ties_vs_litert_ref(oracle, batches, scales):
    """Small accumulators with an exactly representable multiplier: the shuffled kernel
    uses the fixed-point multiplier (double rounding), not float64 requantization."""
    rng = np.random.default_rng(batches)
    k, n = 32, 8
    s_in, s_w, s_out = scales
    b = ModelBuilder()
    x = b.add_input("x", [batches, k], np.uint8, scale=s_in, zero_point=128)
    wv = (rng.integers(-3, 4, (n, k)) + 128).astype(np.uint8)
    w = b.add_constant("w", _shuffle_weights(wv).reshape(n, k), scale=s_w, zero_point=128)
    bias = b.add_constant("b", rng.integers(-9, 10, n).astype(np.int32),
                          scale=np.float32(s_in) * np.float32(s_w), zero_point=0)
    y = b.add_tensor("y", [batches, n], np.int16, scale=s_out, zero_point=0)
    ws = b.add_tensor("ws", [batches * k], np.uint8, scale=1.0, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y, ws], weights_format="SHUFFLED4x16INT8")
    b.mark_outputs(y, ws)
    xv = (rng.integers(-3, 4, (batches, k)) + 128).astype(np.uint8)
    assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")


# ---------------------------------------------------------------- constructed ties
TIE_SCALES = [(2.0**-4, 2.0**-5, 2.0**-6),         # eff 1/8
              (2.0**-4, 3 * 2.0**-7, 2.0**-6),     # eff 3/16: gemmlowp double rounding differs
              (0.75 * 2.0**-3, 2.0**-5, 2.0**-7),  # eff 3/4
              (2.0**-3, 5 * 2.0**-8, 2.0**-6),     # eff 5/32
              (2.0**-2, 2.0**-3, 2.0**-4)]         # eff 1/2: x.5 everywhere an odd acc


@pytest.mark.parametrize("kind,per_channel", [("int8", False), ("int8", True), ("uint8", False),
                                              ("uint8_int16", False), ("int16", False), ("int16", True)])
@pytest.mark.parametrize("seed", range(3))
def test_fc_rounding_ties_vs_litert_ref(oracle, kind, per_channel, seed):
    """Power-of-two-ish scales make double(acc) * eff hit exact .5 cases: LiteRT rounds
    them half away from zero in double, not with the fixed-point multiplier."""
    rng = np.random.default_rng(seed)
    units, k, batches = 5, 6, 16
    out_dtype = np.int16 if kind == "uint8_int16" else DT[kind]
    kind = "uint8" if kind == "uint8_int16" else kind
    dtype = DT[kind]
    s_in = TIE_SCALES[seed][0]
    sw = np.array([TIE_SCALES[(seed + i) % len(TIE_SCALES)][1] for i in range(units if per_channel else 1)],
                  np.float32)
    s_out = TIE_SCALES[seed][2]
    zp_in = {"int8": 5, "uint8": 130, "int16": 0}[kind]
    zp_out = {"int8": -3, "uint8": 120, "int16": 0}[kind] if out_dtype == dtype else 0
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
    y = b.add_tensor("y", [batches, units], out_dtype, scale=s_out, zero_point=zp_out)
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


@pytest.mark.parametrize("zp_out", [-7, 0, 9])
def test_fc_int8_requantization_overflow_vs_litert_ref(oracle, zp_out):
    """double(acc) * scale beyond the int32 range: x86's conversion gives INT32_MIN, and
    adding the output zero point wraps in int32 before the clamp."""
    b = ModelBuilder()
    x = b.add_input("x", [2, 3], np.int8, scale=1.0, zero_point=0)
    w = b.add_constant("w", np.array([[127, 127, 127], [-127, -127, -127]], np.int8), scale=1.0,
                       zero_point=0)
    y = b.add_tensor("y", [2, 2], np.int8, scale=1e-6, zero_point=zp_out)
    b.add_operator("FULLY_CONNECTED", [x, w, -1], [y])
    b.mark_outputs(y)
    xv = np.array([[127, 127, 127], [-128, 5, 0]], np.int8)
    assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")


# ---------------------------------------------------------------- bad models
def _int8_fc(**kw):
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.int8, **kw.get("xq", dict(scale=0.1, zero_point=0)))
    wq = kw.get("wq", dict(scale=0.1, zero_point=0))
    w = b.add_constant("w", np.ones(kw.get("wshape", (3, 4)), np.int8), **wq)
    y = b.add_tensor("y", [2, 3], kw.get("ytype", np.int8), scale=0.1, zero_point=0)
    ins = [x, w] + ([b.add_constant("b", np.zeros(kw.get("nbias", 3), np.int32))] if "nbias" in kw else [])
    b.add_operator("FULLY_CONNECTED", ins, [y], **kw.get("opts", {}))
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("model,err,litert_refuses", [
    (dict(xq=dict()), ModelFormatError, True),                       # input without quantization
    (dict(wshape=(3, 2, 2)), ModelFormatError, True),                # filter rank 3
    (dict(nbias=4), ModelFormatError, True),                         # bias length != units
    # per-tensor: an unquantized bias counts as scale 0, and |0.01 - 0| / 0.1 > 2%
    (dict(nbias=3), ModelFormatError, True),
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


@pytest.mark.parametrize("bias_scale,ok", [(None, True), (0.0105, True), (0.0219, True), (0.0221, False)])
def test_fc_bias_scale_check_vs_litert_ref(oracle, bias_scale, ok):
    """GetQuantizedConvolutionMultipler: |s_in * s_w - s_bias| / s_out <= 0.02 (an
    unquantized bias counts as scale 0)."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [2, 4], np.int8, scale=0.1, zero_point=0)
    w = b.add_constant("w", rng.integers(-127, 128, (3, 4)).astype(np.int8), scale=0.1, zero_point=0)
    q = {} if bias_scale is None else dict(scale=bias_scale, zero_point=0)
    bias = b.add_constant("b", np.array([100, -7, 3], np.int32), **q)
    y = b.add_tensor("y", [2, 3], np.int8, scale=0.6, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    xv = random_input(rng, [2, 4], np.int8)
    if ok:
        assert_matches_litert(oracle, b.to_bytes(), [xv], "reference")
    else:
        with pytest.raises(ModelFormatError, match="bias scale"):
            run_ours(b.to_bytes(), [xv])
        assert not oracle.run(b.to_bytes(), [xv], "reference").ok


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


def test_fc_float_infinite_bias_gives_nan_vs_litert_ref(oracle):
    """inf + -inf in the bias addition: NaN as in C, no NumPy warning (fuzzer finding)."""
    b = ModelBuilder()
    x = b.add_input("x", [1, 3], np.float32)
    w = b.add_constant("w", np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    bias = b.add_constant("bias", np.array([-np.inf, 1.0], np.float32))
    y = b.add_tensor("y", [1, 2], np.float32)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [np.array([[np.inf, 0, 0]], np.float32)])
