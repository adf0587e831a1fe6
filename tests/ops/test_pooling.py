"""AVERAGE_POOL_2D and MAX_POOL_2D against LiteRT BUILTIN_REF: randomized shapes,
filter sizes, strides, SAME/VALID padding, fused activations, float32, int8, uint8 and
int16, constructed rounding ties, infinities and NaN, and bad models."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, random_scale, run_ours
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.runtime.ops._common import compute_padding
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
DTYPES = {"float": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def pool_model(op, kind, shape, fh, fw, sh, sw, padding, act, q_in=None, q_out=None):
    n, h, w, c = shape
    oh = compute_padding(0 if padding == "SAME" else 1, h, fh, sh)[0]
    ow = compute_padding(0 if padding == "SAME" else 1, w, fw, sw)[0]
    b = ModelBuilder()
    dtype = DTYPES[kind]
    kin = {} if q_in is None else dict(scale=q_in[0], zero_point=q_in[1])
    kout = kin if q_out is None else dict(scale=q_out[0], zero_point=q_out[1])
    x = b.add_input("x", shape, dtype, **kin)
    y = b.add_tensor("y", [n, oh, ow, c], dtype, **kout)
    b.add_operator(op, [x], [y], padding=padding, stride_w=sw, stride_h=sh, filter_width=fw,
                   filter_height=fh, fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes()


def random_qparams(rng, kind):
    if kind == "float":
        return None
    s = random_scale(rng, 1e-3, 0.5)
    if kind == "int16":
        return s, 0
    lo, hi = (-128, 127) if kind == "int8" else (0, 255)
    return s, int(rng.integers(lo, hi + 1))


pool_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.integers(1, 5),
    fh=st.integers(1, 5), fw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
    padding=st.sampled_from(["SAME", "VALID"]), act=st.sampled_from(ACTS),
    seed=st.integers(0, 2**31)))


def _valid(c):
    pad = 0 if c["padding"] == "SAME" else 1
    return (compute_padding(pad, c["h"], c["fh"], c["sh"])[0] > 0
            and compute_padding(pad, c["w"], c["fw"], c["sw"])[0] > 0)


def _run(oracle, op, kind, c, *, same_params=True, values=None):
    assume(_valid(c))
    rng = np.random.default_rng(c["seed"])
    q_in = random_qparams(rng, kind)
    q_out = None if same_params else random_qparams(rng, kind)
    shape = [c["n"], c["h"], c["w"], c["c"]]
    model = pool_model(op, kind, shape, c["fh"], c["fw"], c["sh"], c["sw"], c["padding"], c["act"],
                       q_in, q_out)
    if values is not None:
        x = rng.choice(np.asarray(values), size=shape).astype(DTYPES[kind])
    elif kind == "float":
        x = (random_input(rng, shape, np.float32) * np.float32(rng.uniform(0.5, 10))).astype(np.float32)
    else:
        x = random_input(rng, shape, DTYPES[kind])
    assert_matches_litert(oracle, model, [x], "reference")


@pytest.mark.parametrize("kind", ["float", "int8", "uint8", "int16"])
@examples(80)
@given(c=pool_cases)
def test_average_pool_vs_litert_ref(oracle, kind, c):
    _run(oracle, "AVERAGE_POOL_2D", kind, c)


@pytest.mark.parametrize("kind", ["float", "int8", "uint8", "int16"])
@examples(60)
@given(c=pool_cases)
def test_max_pool_vs_litert_ref(oracle, kind, c):
    _run(oracle, "MAX_POOL_2D", kind, c)


tiled_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 5),
    fh=st.integers(1, 4), fw=st.integers(1, 4), padding=st.sampled_from(["SAME", "VALID"]),
    act=st.sampled_from(ACTS), seed=st.integers(0, 2**31)))


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("kind", ["float", "int8", "uint8", "int16"])
@examples(25)
@given(c=tiled_cases)
def test_pool_stride_equal_to_filter_vs_litert_ref(oracle, op, kind, c):
    """stride == filter (the 2x2/2 pool): windows tile the image and quantcore reduces
    a reshaped view; VALID leaves rows/columns out, SAME may pad (then the general
    path runs)."""
    _run(oracle, op, kind, dict(c, sh=c["fh"], sw=c["fw"]))


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("kind", ["int8", "uint8", "int16"])
@examples(10)
@given(c=pool_cases)
def test_pool_different_in_out_params_vs_litert_ref(oracle, op, kind, c):
    """LiteRT does not rescale: raw values are pooled, the output's activation range applies."""
    _run(oracle, op, kind, c, same_params=False)


tie_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 2), h=st.integers(2, 9), w=st.integers(2, 9), c=st.integers(1, 4),
    fh=st.sampled_from([1, 2, 4]), fw=st.sampled_from([2, 4]), sh=st.integers(1, 2),
    sw=st.integers(1, 2), padding=st.sampled_from(["SAME", "VALID"]), act=st.just("NONE"),
    seed=st.integers(0, 2**31)))


@pytest.mark.parametrize("kind", ["int8", "uint8", "int16"])
@examples(50)
@given(c=tie_cases)
def test_average_pool_int_rounding_ties_vs_litert_ref(oracle, kind, c):
    """Power-of-two windows and small values: many sums are exactly k + 1/2 windows, of both signs."""
    values = {"int8": [-3, -1, 0, 1, 2, 3], "uint8": [0, 1, 2, 3, 5], "int16": [-3, -1, 0, 1, 2, 3]}[kind]
    _run(oracle, "AVERAGE_POOL_2D", kind, c, values=values)


@pytest.mark.parametrize("kind", ["int8", "int16"])
@examples(10)
@given(c=tie_cases)
def test_average_pool_int_extremes_vs_litert_ref(oracle, kind, c):
    info = np.iinfo(DTYPES[kind])
    _run(oracle, "AVERAGE_POOL_2D", kind, c, values=[info.min, info.min + 1, info.max - 1, info.max])


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@examples(15)
@given(c=pool_cases)
def test_pool_float_inf_nan_vs_litert_ref(oracle, op, c):
    """+-inf clamp to the float range even without activation; MAX_POOL skips NaN taps,
    AVERAGE_POOL propagates them."""
    vals = [np.inf, -np.inf, np.nan, 1.5, -2.0, 0.0, -0.0, 3e38]
    _run(oracle, op, "float", c, values=vals)


def test_max_pool_all_nan_window_gives_lowest_float(oracle):
    model = pool_model("MAX_POOL_2D", "float", [1, 2, 2, 1], 2, 2, 2, 2, "VALID", "NONE")
    x = np.full((1, 2, 2, 1), np.nan, np.float32)
    _, theirs = assert_matches_litert(oracle, model, [x], "reference")
    assert theirs.outputs[0].item() == np.finfo(np.float32).min


def test_average_pool_global_7x7_int8_vs_litert_ref(oracle):
    """The classifier-head shape: a global 7x7 average over many channels."""
    rng = np.random.default_rng(7)
    model = pool_model("AVERAGE_POOL_2D", "int8", [1, 7, 7, 64], 7, 7, 1, 1, "VALID", "NONE",
                       (0.02, -5))
    for _ in range(5):
        assert_matches_litert(oracle, model, [random_input(rng, [1, 7, 7, 64], np.int8)], "reference")


# -- bad models -------------------------------------------------------------------------
def _prepare(model):
    return run_ours(model, [np.zeros((1, 4, 4, 1), np.float32)])


def test_pool_rank_3_input_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [4, 4, 1], np.float32)
    y = b.add_tensor("y", [2, 2, 1], np.float32)
    b.add_operator("MAX_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="4-D"):
        run_ours(b.to_bytes(), [np.zeros((4, 4, 1), np.float32)])


def test_pool_int32_input_is_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 1], np.int32)
    y = b.add_tensor("y", [1, 2, 2, 1], np.int32)
    b.add_operator("MAX_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="INT32"):
        run_ours(b.to_bytes(), [np.zeros((1, 4, 4, 1), np.int32)])


def test_pool_type_mismatch_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 1], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 2, 2, 1], np.uint8, scale=0.1, zero_point=0)
    b.add_operator("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="differs"):
        run_ours(b.to_bytes(), [np.zeros((1, 4, 4, 1), np.int8)])


def test_max_pool_int8_relu_without_quantization_is_model_format_error():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 1], np.int8)
    y = b.add_tensor("y", [1, 2, 2, 1], np.int8)
    b.add_operator("MAX_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2, fused_activation_function="RELU")
    b.mark_outputs(y)
    with pytest.raises(ModelFormatError, match="quantization"):
        run_ours(b.to_bytes(), [np.zeros((1, 4, 4, 1), np.int8)])


def test_pool_fused_tanh_is_unsupported():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 1], np.float32)
    y = b.add_tensor("y", [1, 2, 2, 1], np.float32)
    b.add_operator("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2, fused_activation_function="TANH")
    b.mark_outputs(y)
    with pytest.raises(UnsupportedOpError, match="activation"):
        _prepare(b.to_bytes())
