"""Non-finite values against LiteRT, bit for bit (NaN positions included), per path.

* Hybrid (float32 input, int8 weights) FULLY_CONNECTED, BATCH_MATMUL, CONV_2D and
  DEPTHWISE_CONV_2D with NaN / +-inf inputs, on BUILTIN_REF ("reference") and
  BUILTIN_WITHOUT_DEFAULT_DELEGATES ("optimized"). The input quantizers
  (``runtime/ops/_matmul_hybrid.py``: ``std::minmax_element``, ``NeonMinMax`` and the
  float -> int conversions) decide what a NaN becomes; quantcore must agree exactly
  and raise no NumPy warning.
* Float CONV_2D and DEPTHWISE_CONV_2D with inf / NaN weights and padding: BUILTIN_REF
  skips taps outside the image (padding never meets the weight), the optimized CONV_2D
  (im2col with zero padding, groups == 1) gives ``0 * inf = NaN`` there, the optimized
  DEPTHWISE_CONV_2D skips the taps like the reference (its scalar output leftovers turn
  NaN into the activation maximum);
  XNNPACK (BUILTIN) reads zeros for the padding and leaves infinities unclamped.

These were the fuzzer's known wrong answers (tests/test_fuzz_runtime.py, issue #7).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import examples, run_ours
from quantcore.schema.builder import ModelBuilder

SPECIALS = (np.nan, np.inf, -np.inf)


def assert_bit_equal(oracle, model: bytes, inputs: list[np.ndarray], numerics: str) -> None:
    """quantcore's outputs equal LiteRT's (``numerics`` path) exactly, NaN where LiteRT
    has NaN; NumPy warnings are errors."""
    theirs = oracle.run(model, inputs, numerics, preserve_all_tensors=False)
    assert theirs.ok, f"LiteRT ({numerics}) failed: {theirs.error}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        it = run_ours(model, inputs, numerics)
    for j, d in enumerate(it.get_output_details()):
        ours = it.get_tensor(d["index"])
        ref = theirs.outputs[j]
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        same = np.array_equal(ours, ref, equal_nan=True)
        bad = np.flatnonzero(~((ours == ref) | (np.isnan(ours) & np.isnan(ref))).ravel())
        assert same, (f"output {j} differs from LiteRT ({numerics}) at flat {bad[:10]} of {ours.shape}: "
                      f"quantcore {ours.ravel()[bad[:5]]}, LiteRT {ref.ravel()[bad[:5]]}\n"
                      f"inputs {[x.ravel()[:40] for x in inputs]}")


def with_specials(rng: np.random.Generator, x: np.ndarray, count: int) -> np.ndarray:
    """``x`` with ``count`` values replaced by NaN / inf / -inf at random positions."""
    x = x.copy()
    flat = x.reshape(-1)
    for _ in range(count):
        flat[rng.integers(0, flat.size)] = rng.choice(SPECIALS)
    return x


def random_floats(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform values, sometimes all of one sign (the asymmetric zero point at a bound)."""
    x = rng.uniform(-2, 2, shape).astype(np.float32) * np.float32(rng.choice([1e-3, 1, 100]))
    sign = rng.integers(0, 3)
    return (np.abs(x) if sign == 1 else -np.abs(x) if sign == 2 else x).astype(np.float32)


# ---------------------------------------------------------------------------
# Hybrid FULLY_CONNECTED / BATCH_MATMUL
# ---------------------------------------------------------------------------
def hybrid_fc_model(rng, batches: int, k: int, units: int, asym: bool, per_channel: bool):
    b = ModelBuilder()
    x = b.add_input("x", [batches, k], np.float32)
    w = rng.integers(-127, 128, (units, k)).astype(np.int8)
    scales = (rng.uniform(0.5, 2, units if per_channel else 1) * 0.01).astype(np.float32)
    wt = b.add_constant("w", w, scale=scales, zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", rng.normal(0, 1, units).astype(np.float32))
    y = b.add_tensor("y", [batches, units], np.float32)
    b.add_operator("FULLY_CONNECTED", [x, wt, bias], [y], asymmetric_quantize_inputs=asym,
                   version=12 if per_channel else 9)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("numerics", ["reference", "optimized"])
@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("k", [1, 3, 4, 7, 8, 9, 16, 20, 23, 33])
def test_hybrid_fc_nonfinite_inputs_vs_litert(oracle, numerics, asym, k):
    """Hybrid FULLY_CONNECTED vs LiteRT BUILTIN_REF / BUILTIN_WITHOUT_DEFAULT_DELEGATES:
    NaN/inf at every position class (NeonMinMax lanes and tail, the 8-wide quantizer
    blocks and the scalar tail)."""
    rng = np.random.default_rng(k * 2 + asym)
    for trial in range(6):
        model = hybrid_fc_model(rng, 3, k, 5, asym, per_channel=trial % 2 == 1)
        x = with_specials(rng, random_floats(rng, (3, k)), int(rng.integers(1, 4)))
        assert_bit_equal(oracle, model, [x], numerics)


@pytest.mark.parametrize("numerics", ["reference", "optimized"])
@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("pos", [0, 1, 2, 3, 4, 15, 16, 17, 18, 19])
def test_hybrid_fc_nan_at_each_position_vs_litert(oracle, numerics, asym, pos):
    """One NaN at each position of a 20-value row (a lane of NeonMinMax's 4-wide vectors,
    the last vector, the quantizer's scalar tail), vs LiteRT (BUILTIN_REF / optimized)."""
    rng = np.random.default_rng(pos)
    model = hybrid_fc_model(rng, 1, 20, 20, asym, per_channel=False)
    x = np.linspace(-1, 1.5, 20).astype(np.float32)[None]
    x[0, pos] = np.nan
    assert_bit_equal(oracle, model, [x], numerics)


def hybrid_bmm_model(rng, lhs_shape, rhs_shape, asym: bool):
    b = ModelBuilder()
    x = b.add_input("x", list(lhs_shape), np.float32)
    w = rng.integers(-127, 128, rhs_shape).astype(np.int8)
    wt = b.add_constant("w", w, scale=np.float32(0.02), zero_point=0)
    out_shape = list(lhs_shape[:-1]) + [rhs_shape[-1]]
    y = b.add_tensor("y", out_shape, np.float32)
    b.add_operator("BATCH_MATMUL", [x, wt], [y], adj_x=False, adj_y=False, asymmetric_quantize_inputs=asym,
                   version=4)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("numerics", ["reference", "optimized"])
@pytest.mark.parametrize("asym", [False, True])
@pytest.mark.parametrize("depth", [3, 8, 12, 21])
def test_hybrid_batch_matmul_nonfinite_inputs_vs_litert(oracle, numerics, asym, depth):
    """Hybrid BATCH_MATMUL (float LHS, constant int8 RHS) with NaN/inf in the LHS rows."""
    rng = np.random.default_rng(depth * 2 + asym)
    for _ in range(4):
        model = hybrid_bmm_model(rng, (2, 3, depth), (depth, 4), asym)
        x = with_specials(rng, random_floats(rng, (2, 3, depth)), int(rng.integers(1, 4)))
        assert_bit_equal(oracle, model, [x], numerics)


# ---------------------------------------------------------------------------
# Hybrid CONV_2D / DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------
def hybrid_conv_model(rng, op: str, shape, cout: int, k: int, per_channel: bool, padding: str):
    n, h, w, cin = shape
    b = ModelBuilder()
    x = b.add_input("x", list(shape), np.float32)
    oh, ow = (h, w) if padding == "SAME" else (h - k + 1, w - k + 1)
    nsc = cout if per_channel else 1
    scales = (rng.uniform(0.5, 2, nsc) * 0.01).astype(np.float32)
    bias = b.add_constant("b", rng.normal(0, 1, cout).astype(np.float32))
    y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    if op == "CONV_2D":
        wq = rng.integers(-127, 128, (cout, k, k, cin)).astype(np.int8)
        wt = b.add_constant("w", wq, scale=scales, zero_point=0, quantized_dimension=0)
        b.add_operator("CONV_2D", [x, wt, bias], [y], padding=padding, stride_w=1, stride_h=1,
                       dilation_w_factor=1, dilation_h_factor=1, version=2)
    else:
        wq = rng.integers(-127, 128, (1, k, k, cout)).astype(np.int8)
        wt = b.add_constant("w", wq, scale=scales, zero_point=0, quantized_dimension=3)
        b.add_operator("DEPTHWISE_CONV_2D", [x, wt, bias], [y], padding=padding, stride_w=1, stride_h=1,
                       dilation_w_factor=1, dilation_h_factor=1, depth_multiplier=cout // cin, version=6)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("numerics", ["reference", "optimized"])
@pytest.mark.parametrize("op,per_channel", [("CONV_2D", False), ("CONV_2D", True),
                                            ("DEPTHWISE_CONV_2D", True)])
def test_hybrid_conv_nonfinite_inputs_vs_litert(oracle, numerics, op, per_channel):
    """Hybrid CONV_2D (per-tensor: symmetric input quantization; per-channel: asymmetric)
    and DEPTHWISE_CONV_2D (asymmetric) with NaN/inf inputs, vs LiteRT BUILTIN_REF /
    BUILTIN_WITHOUT_DEFAULT_DELEGATES."""
    rng = np.random.default_rng(7)
    for trial in range(8):
        shape = (int(rng.integers(1, 3)), int(rng.integers(2, 6)), int(rng.integers(2, 6)), 2)
        model = hybrid_conv_model(rng, op, shape, 4, int(rng.integers(1, 3)), per_channel,
                                  "SAME" if trial % 2 else "VALID")
        x = with_specials(rng, random_floats(rng, shape), int(rng.integers(1, 4)))
        assert_bit_equal(oracle, model, [x], numerics)


# ---------------------------------------------------------------------------
# Float CONV_2D / DEPTHWISE_CONV_2D with non-finite weights
# ---------------------------------------------------------------------------
def float_conv_model(op: str, weights: np.ndarray, shape, padding: str, groups: int = 1,
                     dilation: int = 1, act: str = "NONE"):
    n, h, w, cin = shape
    b = ModelBuilder()
    x = b.add_input("x", list(shape), np.float32)
    wt = b.add_constant("w", weights.astype(np.float32))
    k = weights.shape[1]
    eff = (k - 1) * dilation + 1
    oh, ow = (h, w) if padding == "SAME" else (h - eff + 1, w - eff + 1)
    cout = weights.shape[0] if op == "CONV_2D" else weights.shape[3]
    bias = b.add_constant("b", np.linspace(-1, 1, cout).astype(np.float32))
    y = b.add_tensor("y", [n, oh, ow, cout], np.float32)
    common = dict(padding=padding, stride_w=1, stride_h=1, dilation_w_factor=dilation,
                  dilation_h_factor=dilation, fused_activation_function=act)
    if op == "CONV_2D":
        b.add_operator("CONV_2D", [x, wt, bias], [y], version=1 if groups == 1 else 6, **common)
    else:
        b.add_operator("DEPTHWISE_CONV_2D", [x, wt, bias], [y], depth_multiplier=cout // cin, **common)
    b.mark_outputs(y)
    return b.to_bytes()


def _float_outputs_agree(oracle, model, inputs, numerics):
    """Same NaN and infinity positions and values, finite values within float32 GEMM
    rounding (the summation order differs from LiteRT's)."""
    theirs = oracle.run(model, inputs, numerics, preserve_all_tensors=False)
    assert theirs.ok, theirs.error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        it = run_ours(model, inputs, numerics)
    ours = it.get_tensor(it.get_output_details()[0]["index"])
    ref = theirs.outputs[0]
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"NaN positions differ ({numerics}):\n{ours}\n{ref}"
    fin = np.isfinite(ref)
    assert np.array_equal(ours[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=1e-5, atol=1e-5)


@examples(25)
@given(st.integers(0, 2**31), st.sampled_from(["reference", "optimized", "xnnpack"]),
       st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.sampled_from(["NONE", "RELU", "RELU6"]))
def test_float_conv_nonfinite_weights_vs_litert(oracle, seed, numerics, groups, dilation, act):
    """Float CONV_2D, inf/NaN weights, SAME padding: BUILTIN_REF skips out-of-image taps,
    BUILTIN_WITHOUT_DEFAULT_DELEGATES multiplies im2col's zero padding (groups == 1) or
    runs the reference kernel (grouped), BUILTIN (XNNPACK) reads zeros for the padding
    and does not clamp infinities to FLT_MAX."""
    rng = np.random.default_rng(seed)
    cin, cout, k = 2 * groups, 2 * groups, int(rng.integers(2, 4))
    w = rng.normal(0, 0.5, (cout, k, k, cin // groups)).astype(np.float32)
    w = with_specials(rng, w, int(rng.integers(1, 3)))
    shape = (1, int(rng.integers(2, 6)), int(rng.integers(2, 6)), cin)
    model = float_conv_model("CONV_2D", w, shape, "SAME", groups, dilation, act)
    _float_outputs_agree(oracle, model, [rng.uniform(-1, 1, shape).astype(np.float32)], numerics)


@pytest.mark.parametrize("numerics", ["reference", "optimized", "xnnpack"])
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_float_conv_overflow_to_inf_vs_litert(oracle, numerics, act):
    """Float CONV_2D whose sums overflow: BUILTIN_REF and the optimized kernel clamp +inf
    to FLT_MAX (activation NONE / RELU), XNNPACK (BUILTIN) keeps inf."""
    w = np.full((2, 1, 1, 2), 3e38, np.float32)
    w[1] = -3e38
    model = float_conv_model("CONV_2D", w, (1, 2, 2, 2), "VALID", act=act)
    _float_outputs_agree(oracle, model, [np.ones((1, 2, 2, 2), np.float32)], numerics)


@examples(25)
@given(st.integers(0, 2**31), st.sampled_from(["reference", "optimized", "xnnpack"]),
       st.sampled_from([1, 2]), st.sampled_from(["NONE", "RELU"]))
def test_float_depthwise_nonfinite_weights_vs_litert(oracle, seed, numerics, dilation, act):
    """Float DEPTHWISE_CONV_2D, inf/NaN weights, SAME padding vs BUILTIN_REF and
    BUILTIN_WITHOUT_DEFAULT_DELEGATES: both skip out-of-image taps; the optimized
    kernel's scalar output leftovers turn NaN into the activation maximum. BUILTIN
    (XNNPACK) multiplies zero padding and keeps infinities."""
    rng = np.random.default_rng(seed)
    cin, dm, k = 2, int(rng.integers(1, 3)), int(rng.integers(2, 4))
    w = rng.normal(0, 0.5, (1, k, k, cin * dm)).astype(np.float32)
    w = with_specials(rng, w, int(rng.integers(1, 3)))
    shape = (1, int(rng.integers(2, 6)), int(rng.integers(2, 6)), cin)
    model = float_conv_model("DEPTHWISE_CONV_2D", w, shape, "SAME", dilation=dilation, act=act)
    _float_outputs_agree(oracle, model, [rng.uniform(-1, 1, shape).astype(np.float32)], numerics)


# ---------------------------------------------------------------------------
# TRANSPOSE_CONV (hybrid inputs, float weights)
# ---------------------------------------------------------------------------
def float_transpose_conv_model(weights: np.ndarray, shape) -> bytes:
    """TRANSPOSE_CONV, stride 2, SAME, float32 weights [Cout, KH, KW, Cin], with a bias."""
    n, h, w, _ = shape
    cout = weights.shape[0]
    b = ModelBuilder()
    shp = b.add_constant("shape", np.array([n, 2 * h, 2 * w, cout], np.int32))
    wt = b.add_constant("w", weights.astype(np.float32))
    x = b.add_input("x", list(shape), np.float32)
    bias = b.add_constant("b", np.linspace(-1, 1, cout).astype(np.float32))
    y = b.add_tensor("y", [n, 2 * h, 2 * w, cout], np.float32)
    b.add_operator("TRANSPOSE_CONV", [shp, wt, x, bias], [y], padding="SAME", stride_w=2, stride_h=2,
                   version=4)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("numerics", ["reference", "optimized"])
@pytest.mark.parametrize("kind", ["hybrid", "float"])
def test_transpose_conv_nonfinite_vs_litert(oracle, numerics, kind):
    """TRANSPOSE_CONV scatters each input value into the output, so padding never meets a
    weight: hybrid with NaN/inf inputs (bit for bit) and float with inf/NaN weights, vs
    LiteRT BUILTIN_REF / BUILTIN_WITHOUT_DEFAULT_DELEGATES."""
    from test_transpose_conv import tc_model
    rng = np.random.default_rng(11)
    for trial in range(6):
        h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if kind == "float":
            weights = with_specials(rng, rng.normal(0, 0.5, (3, 3, 3, 2)).astype(np.float32), 2)
            model, inputs = float_transpose_conv_model(weights, (1, h, w, 2)), [
                rng.uniform(-1, 1, (1, h, w, 2)).astype(np.float32)]
        else:
            model, inputs = tc_model(rng, kind, 1, h, w, 2, 3, 3, 3, 2, 2, 2 * h, 2 * w, "SAME", "NONE")
        if kind == "hybrid":
            inputs[-1] = with_specials(rng, np.asarray(inputs[-1], np.float32), int(rng.integers(1, 3)))
            assert_bit_equal(oracle, model, inputs, numerics)
        else:
            inputs[-1] = np.asarray(inputs[-1], np.float32)
            _float_outputs_agree(oracle, model, inputs, numerics)
