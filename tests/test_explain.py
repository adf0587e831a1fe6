"""quantcore.explain: for every supported op type, the recomputed final value equals the
runtime's output at that element; hand-checked step values; JSON and text forms; errors."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from quantcore.errors import InputError
from quantcore.explain import SUPPORTED, ExplainMismatchError, explain
from quantcore.runtime import Interpreter
from quantcore.schema.builder import ModelBuilder

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
DT = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}


def _rand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-3, 3, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype)


def _zp(rng, kind):
    if kind == "int16":
        return 0
    return int(rng.integers(-40, 40)) + (128 if kind == "uint8" else 0)


def _out_scale(s_in, s_w, k, kind, w_std=73.0):
    """An output scale that puts the accumulator's spread at ~40 (8-bit) or ~5000 (int16)
    output steps, so outputs do not saturate."""
    x_std = 18900.0 if kind == "int16" else 73.0
    target = 5000.0 if kind == "int16" else 40.0
    return float(np.float32(s_in * float(np.median(s_w)) * np.sqrt(k) * x_std * w_std / target))


def _run(model: bytes, inputs) -> Interpreter:
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it


# ---------------------------------------------------------------------------
# single-op model builders: (model bytes, inputs)
# ---------------------------------------------------------------------------
def conv_model(rng, kind="int8", *, n=1, h=6, w=5, cin=3, cout=4, kh=3, kw=3, stride=(1, 1),
               dilation=(1, 1), padding="SAME", groups=1, act="NONE", per_channel=True,
               x_zp=None, weights=None, bias=None, int32_bias_16x8=False):
    b = ModelBuilder()
    cf = cin // groups
    s_in = float(np.float32(rng.uniform(0.005, 0.05)))
    zp_in = _zp(rng, kind) if x_zp is None else x_zp
    x = b.add_input("x", [n, h, w, cin], DT[kind], scale=s_in, zero_point=zp_in)
    nsc = cout if per_channel else 1
    s_w = rng.uniform(0.002, 0.03, nsc).astype(np.float32)
    if kind == "uint8":
        wq = rng.integers(0, 256, (cout, kh, kw, cf)).astype(np.uint8) if weights is None else weights
        wt = b.add_constant("w", wq, scale=s_w, zero_point=int(rng.integers(100, 156)))
    else:
        wq = rng.integers(-127, 128, (cout, kh, kw, cf)).astype(np.int8) if weights is None else weights
        wt = b.add_constant("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
    bias_dtype = np.int64 if kind == "int16" and not int32_bias_16x8 else np.int32
    bq = rng.integers(-5000, 5000, cout).astype(bias_dtype) if bias is None else np.asarray(bias, bias_dtype)
    bsc = (np.float32(s_in) * s_w).astype(np.float32)
    bt = b.add_constant("b", bq, scale=np.broadcast_to(bsc, (cout,)) if per_channel else bsc, zero_point=0)
    sh, sw = stride
    dh, dw = dilation
    pad = 0 if padding == "SAME" else 1
    from quantcore.runtime.ops._common import compute_padding
    oh = compute_padding(pad, h, kh, sh, dh)[0]
    ow = compute_padding(pad, w, kw, sw, dw)[0]
    k = kh * kw * cf
    s_out = _out_scale(s_in, s_w, k, kind)
    y = b.add_tensor("y", [n, oh, ow, cout], DT[kind], scale=s_out, zero_point=_zp(rng, kind))
    b.add_operator("CONV_2D", [x, wt, bt], [y], padding=padding, stride_w=sw, stride_h=sh,
                   dilation_w_factor=dw, dilation_h_factor=dh, fused_activation_function=act,
                   version=1 if groups == 1 else 6,
                   **({"quantized_bias_type": "INT32"} if int32_bias_16x8 else {}))
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, [n, h, w, cin], DT[kind])]


def dw_model(rng, kind="int8", *, h=6, w=6, cin=3, dm=2, kh=3, kw=3, stride=(1, 1), padding="SAME",
             act="NONE", has_bias=True):
    b = ModelBuilder()
    cout = cin * dm
    s_in = float(np.float32(rng.uniform(0.005, 0.05)))
    x = b.add_input("x", [1, h, w, cin], DT[kind], scale=s_in, zero_point=_zp(rng, kind))
    s_w = rng.uniform(0.002, 0.03, cout if kind != "uint8" else 1).astype(np.float32)
    if kind == "uint8":
        wt = b.add_constant("w", rng.integers(0, 256, (1, kh, kw, cout)).astype(np.uint8), scale=s_w,
                            zero_point=int(rng.integers(100, 156)))
    else:
        wt = b.add_constant("w", rng.integers(-127, 128, (1, kh, kw, cout)).astype(np.int8), scale=s_w,
                            zero_point=0, quantized_dimension=3)
    ins = [x, wt]
    if has_bias:
        bsc = (np.float32(s_in) * s_w).astype(np.float32)
        bdt = np.int64 if kind == "int16" else np.int32
        ins.append(b.add_constant("b", rng.integers(-5000, 5000, cout).astype(bdt),
                                  scale=np.broadcast_to(bsc, (len(s_w),)), zero_point=0))
    from quantcore.runtime.ops._common import compute_padding
    pad = 0 if padding == "SAME" else 1
    oh = compute_padding(pad, h, kh, stride[0])[0]
    ow = compute_padding(pad, w, kw, stride[1])[0]
    s_out = _out_scale(s_in, s_w, kh * kw, kind)
    y = b.add_tensor("y", [1, oh, ow, cout], DT[kind], scale=s_out, zero_point=_zp(rng, kind))
    b.add_operator("DEPTHWISE_CONV_2D", ins, [y], padding=padding, stride_w=stride[1],
                   stride_h=stride[0], depth_multiplier=dm, fused_activation_function=act, version=2)
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, [1, h, w, cin], DT[kind])]


def fc_model(rng, kind="int8", *, in_shape=(3, 10), units=5, per_channel=False, keep_num_dims=False,
             act="NONE"):
    """kind: int8, uint8, uint8_int16, int16 (int8 weights), int16x16 (int16 weights)."""
    b = ModelBuilder()
    k = in_shape[-1]
    xk = {"int8": "int8", "uint8": "uint8", "uint8_int16": "uint8", "int16": "int16",
          "int16x16": "int16"}[kind]
    s_in = float(np.float32(rng.uniform(0.005, 0.05)))
    x = b.add_input("x", list(in_shape), DT[xk], scale=s_in, zero_point=_zp(rng, xk))
    s_w = rng.uniform(0.002, 0.03, units if per_channel else 1).astype(np.float32)
    if xk == "uint8":
        wt = b.add_constant("w", rng.integers(0, 256, (units, k)).astype(np.uint8), scale=s_w,
                            zero_point=int(rng.integers(100, 156)))
    elif kind == "int16x16":
        wt = b.add_constant("w", rng.integers(-2000, 2000, (units, k)).astype(np.int16), scale=s_w,
                            zero_point=0)
    else:
        wt = b.add_constant("w", rng.integers(-127, 128, (units, k)).astype(np.int8), scale=s_w,
                            zero_point=0, quantized_dimension=0)
    bsc = (np.float32(s_in) * s_w).astype(np.float32)
    bdt = np.int64 if kind == "int16" else np.int32
    bt = b.add_constant("b", rng.integers(-5000, 5000, units).astype(bdt),
                        scale=np.broadcast_to(bsc, (len(s_w),)), zero_point=0)
    out_kind = "int16" if kind in ("uint8_int16", "int16", "int16x16") else xk
    s_out = _out_scale(s_in, s_w, k, xk, 1155.0 if kind == "int16x16" else 73.0)
    if kind == "uint8_int16":
        s_out = float(np.float32(s_out * 40 / 5000))
    out_shape = list(in_shape[:-1]) + [units] if keep_num_dims else \
        [int(np.prod(in_shape[:-1])), units]
    y = b.add_tensor("y", out_shape, DT[out_kind], scale=s_out, zero_point=_zp(rng, out_kind))
    b.add_operator("FULLY_CONNECTED", [x, wt, bt], [y], keep_num_dims=keep_num_dims,
                   fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, list(in_shape), DT[xk])]


def binary_model(rng, op, kind="int8", *, shape1=(2, 3, 4), shape2=(1, 3, 1), out_kind=None,
                 scales=None, act="NONE"):
    b = ModelBuilder()
    out_kind = out_kind or kind
    s1, s2, so = scales or [float(np.float32(rng.uniform(0.005, 0.1))) for _ in range(3)]
    if op == "MUL" and scales is None:
        so = float(np.float32(s1 * s2 * 30))
    x1 = b.add_input("x1", list(shape1), DT[kind], scale=s1, zero_point=_zp(rng, kind))
    x2 = b.add_input("x2", list(shape2), DT[kind], scale=s2, zero_point=_zp(rng, kind))
    out_shape = list(np.broadcast_shapes(shape1, shape2))
    y = b.add_tensor("y", out_shape, DT[out_kind], scale=so, zero_point=_zp(rng, out_kind))
    b.add_operator(op, [x1, x2], [y], fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, shape1, DT[kind]), _rand(rng, shape2, DT[kind])]


def pool_model(rng, op, kind="int8", *, shape=(1, 7, 6, 3), f=(3, 2), stride=(2, 2), padding="SAME",
               act="NONE"):
    b = ModelBuilder()
    s = float(np.float32(rng.uniform(0.01, 0.1)))
    zp = _zp(rng, kind)
    x = b.add_input("x", list(shape), DT[kind], scale=s, zero_point=zp)
    from quantcore.runtime.ops._common import compute_padding
    pad = 0 if padding == "SAME" else 1
    oh = compute_padding(pad, shape[1], f[0], stride[0])[0]
    ow = compute_padding(pad, shape[2], f[1], stride[1])[0]
    y = b.add_tensor("y", [shape[0], oh, ow, shape[3]], DT[kind], scale=s, zero_point=zp)
    b.add_operator(op, [x], [y], padding=padding, stride_h=stride[0], stride_w=stride[1],
                   filter_height=f[0], filter_width=f[1], fused_activation_function=act)
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, list(shape), DT[kind])]


def reduce_model(rng, op, kind="int8", *, shape=(2, 4, 5, 3), axes=(1, 2), keep_dims=True):
    b = ModelBuilder()
    x = b.add_input("x", list(shape), DT[kind], scale=float(np.float32(rng.uniform(0.01, 0.1))),
                    zero_point=_zp(rng, kind))
    ax = b.add_constant("axis", np.array(axes, np.int32))
    rank = len(shape)
    red = {a % rank for a in axes}
    out_shape = [1 if i in red else d for i, d in enumerate(shape)] if keep_dims else \
        [d for i, d in enumerate(shape) if i not in red]
    y = b.add_tensor("y", out_shape, DT[kind], scale=float(np.float32(rng.uniform(0.01, 0.1))),
                     zero_point=_zp(rng, kind))
    b.add_operator(op, [x, ax], [y], keep_dims=keep_dims)
    b.mark_outputs(y)
    return b.to_bytes(), [_rand(rng, list(shape), DT[kind])]


def unary_model(op, kind, shape, s_in, zp_in, s_out, zp_out, out_kind=None, in_dtype=None, **opts):
    b = ModelBuilder()
    if in_dtype is None:
        x = b.add_input("x", list(shape), DT[kind], scale=s_in, zero_point=zp_in)
    else:
        x = b.add_input("x", list(shape), in_dtype)
    y = b.add_tensor("y", list(shape), DT[out_kind or kind], scale=s_out, zero_point=zp_out,
                     quantized_dimension=opts.pop("quantized_dimension", 0))
    b.add_operator(op, [x], [y], **opts)
    b.mark_outputs(y)
    return b.to_bytes()


# ---------------------------------------------------------------------------
# every supported op type: final value == runtime output at many random elements
# ---------------------------------------------------------------------------
def _cases():
    r = np.random.default_rng
    cases = {
        "conv_int8_per_channel": lambda: conv_model(r(1), act="RELU6", stride=(2, 1), dilation=(1, 2)),
        "conv_int8_per_tensor": lambda: conv_model(r(2), per_channel=False, padding="VALID", act="RELU"),
        "conv_int8_grouped": lambda: conv_model(r(3), cin=4, cout=6, groups=2, act="RELU_N1_TO_1"),
        "conv_uint8": lambda: conv_model(r(4), "uint8", per_channel=False),
        "conv_16x8": lambda: conv_model(r(5), "int16"),
        "conv_16x8_int32_bias": lambda: conv_model(r(52), "int16", int32_bias_16x8=True, act="RELU"),
        "depthwise_int8": lambda: dw_model(r(6), act="RELU"),
        "depthwise_int8_no_bias": lambda: dw_model(r(7), stride=(2, 2), has_bias=False),
        "depthwise_uint8": lambda: dw_model(r(8), "uint8", dm=1),
        "depthwise_16x8": lambda: dw_model(r(9), "int16"),
        "fc_int8": lambda: fc_model(r(10)),
        "fc_int8_per_channel_keep_dims": lambda: fc_model(r(11), in_shape=(2, 3, 8), per_channel=True,
                                                          keep_num_dims=True, act="RELU"),
        "fc_uint8": lambda: fc_model(r(12), "uint8"),
        "fc_uint8_int16": lambda: fc_model(r(13), "uint8_int16"),
        "fc_16x8": lambda: fc_model(r(14), "int16", per_channel=True),
        "fc_int16x16": lambda: fc_model(r(15), "int16x16"),
        "add_int8_broadcast": lambda: binary_model(r(16), "ADD", act="RELU"),
        "add_uint8": lambda: binary_model(r(17), "ADD", "uint8", shape2=(2, 3, 4)),
        "add_int16": lambda: binary_model(r(18), "ADD", "int16", shape2=(2, 3, 4)),
        "add_int16_pot": lambda: binary_model(r(19), "ADD", "int16", shape2=(2, 3, 4),
                                              scales=[2.0**-10, 2.0**-12, 2.0**-10]),
        "sub_int8": lambda: binary_model(r(20), "SUB", shape2=(4,)),
        "sub_int8_output_multiplier_above_1": lambda: binary_model(
            r(21), "SUB", shape2=(2, 3, 4), scales=[0.5, 0.25, 2.0**-22]),
        "mul_int8": lambda: binary_model(r(22), "MUL", act="RELU6"),
        "mul_uint8": lambda: binary_model(r(23), "MUL", "uint8", shape2=(2, 3, 4)),
        "mul_int16_to_int8": lambda: binary_model(r(24), "MUL", "int16", shape2=(2, 3, 4), out_kind="int8"),
        "avg_pool_int8": lambda: pool_model(r(25), "AVERAGE_POOL_2D"),
        "avg_pool_uint8_relu": lambda: pool_model(r(26), "AVERAGE_POOL_2D", "uint8", act="RELU"),
        "avg_pool_int16": lambda: pool_model(r(27), "AVERAGE_POOL_2D", "int16", f=(2, 2), padding="VALID"),
        "max_pool_int8": lambda: pool_model(r(28), "MAX_POOL_2D", f=(3, 3)),
        "max_pool_uint8": lambda: pool_model(r(29), "MAX_POOL_2D", "uint8"),
        "mean_int8_keep_dims": lambda: reduce_model(r(30), "MEAN"),
        "mean_int8_last_axis": lambda: reduce_model(r(31), "MEAN", axes=(-1,), keep_dims=False),
        "mean_uint8": lambda: reduce_model(r(32), "MEAN", "uint8", axes=(0, 3)),
        "mean_int16": lambda: reduce_model(r(33), "MEAN", "int16"),
        "sum_int8_as_uint8": lambda: reduce_model(r(34), "SUM", axes=(2,), keep_dims=False),
        "logistic_int8": lambda: (unary_model("LOGISTIC", "int8", (3, 40), 0.05, 7, 1 / 256, -128),
                                  [_rand(r(35), (3, 40), np.int8)]),
        "logistic_uint8": lambda: (unary_model("LOGISTIC", "uint8", (50,), 0.03, 120, 1 / 256, 0),
                                   [_rand(r(36), (50,), np.uint8)]),
        "logistic_int16": lambda: (unary_model("LOGISTIC", "int16", (60,), 0.0007, 0, 1 / 32768, 0),
                                   [_rand(r(37), (60,), np.int16)]),
        "tanh_int8": lambda: (unary_model("TANH", "int8", (2, 30), 0.03, -5, 1 / 128, 0),
                              [_rand(r(38), (2, 30), np.int8)]),
        "tanh_int16": lambda: (unary_model("TANH", "int16", (60,), 2.0**-12, 0, 2.0**-15, 0),
                               [_rand(r(39), (60,), np.int16)]),
        "softmax_int8": lambda: (unary_model("SOFTMAX", "int8", (3, 17), 0.08, 3, 1 / 256, -128, beta=1.0),
                                 [_rand(r(40), (3, 17), np.int8)]),
        "softmax_uint8_beta": lambda: (unary_model("SOFTMAX", "uint8", (2, 9), 0.1, 128, 1 / 256, 0,
                                                   beta=0.5), [_rand(r(41), (2, 9), np.uint8)]),
        "softmax_int8_to_int16": lambda: (unary_model("SOFTMAX", "int8", (2, 12), 0.05, 0, 1 / 32768,
                                                      -32768, out_kind="int16", beta=1.0),
                                          [_rand(r(42), (2, 12), np.int8)]),
        "softmax_int16": lambda: (unary_model("SOFTMAX", "int16", (2, 12), 0.0005, 0, 1 / 32768, 0, beta=1.0),
                                  [_rand(r(43), (2, 12), np.int16)]),
        "hard_swish_int8": lambda: (unary_model("HARD_SWISH", "int8", (64,), 0.04, -10, 0.03, -60),
                                    [_rand(r(44), (64,), np.int8)]),
        "hard_swish_uint8": lambda: (unary_model("HARD_SWISH", "uint8", (64,), 0.05, 130, 0.04, 70),
                                     [_rand(r(45), (64,), np.uint8)]),
        "quantize_float_int8": lambda: (unary_model("QUANTIZE", "int8", (4, 16), None, None, 0.02, 5,
                                                    in_dtype=np.float32),
                                        [_rand(r(46), (4, 16), np.float32)]),
        "quantize_float_per_channel": lambda: (unary_model("QUANTIZE", "int8", (4, 6), None, None,
                                                           [0.01, 0.02, 0.05, 0.1], [0, 0, 0, 0],
                                                           in_dtype=np.float32, quantized_dimension=0),
                                               [_rand(r(47), (4, 6), np.float32)]),
        "requantize_int8_int8": lambda: (unary_model("QUANTIZE", "int8", (40,), 0.03, 4, 0.05, -9),
                                         [_rand(r(48), (40,), np.int8)]),
        "requantize_int8_int16": lambda: (unary_model("QUANTIZE", "int8", (40,), 0.03, 4, 0.0001, 0,
                                                      out_kind="int16"),
                                          [_rand(r(49), (40,), np.int8)]),
    }
    return cases


CASES = _cases()
OPS_COVERED = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED",
               "add": "ADD", "sub": "SUB", "mul": "MUL", "avg_pool": "AVERAGE_POOL_2D",
               "max_pool": "MAX_POOL_2D", "mean": "MEAN", "sum": "SUM", "logistic": "LOGISTIC",
               "tanh": "TANH", "softmax": "SOFTMAX", "hard_swish": "HARD_SWISH",
               "quantize": "QUANTIZE", "requantize": "QUANTIZE"}


def test_every_supported_op_type_has_a_case():
    covered = {op for prefix, op in OPS_COVERED.items() if any(c.startswith(prefix) for c in CASES)}
    assert covered == set(SUPPORTED)


def _elements(shape, rng, count):
    total = int(np.prod(shape))
    if total <= count:
        return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in range(total)]
    flat = rng.choice(total, count, replace=False)
    return [tuple(int(i) for i in np.unravel_index(int(f), shape)) for f in flat]


@pytest.mark.parametrize("case", sorted(CASES))
def test_final_value_equals_runtime_output(case):
    model, inputs = CASES[case]()
    it = _run(model, inputs)
    out_index = it.get_output_details()[0]["index"]
    out = it.get_tensor(out_index)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    elements = _elements(out.shape, rng, 25)
    # always include the corners (padding at the border for convolutions and pools)
    elements += [(0,) * out.ndim, tuple(d - 1 for d in out.shape)]
    kinds = set()
    for at in elements:
        e = explain(model, "y", at, inputs)
        assert e.final == int(out[at]), (case, at, e.format())
        assert e.steps and e.index == at
        j = e.to_json()
        assert j["steps"][-1] == {"final": int(out[at])}
        assert j["final"] == int(out[at])
        kinds.add(e.kind)
    assert len(kinds) == 1
    json.dumps(j)                       # JSON-ready values only
    text = e.format()
    assert f"final: {e.final}" in text
    assert "(eq. " in text


def test_default_inputs_are_seeded():
    model, _ = conv_model(np.random.default_rng(50))
    a = explain(model, "y", (0, 1, 1, 0), seed=3)
    b = explain(model, "y", (0, 1, 1, 0), seed=3)
    assert a.to_json() == b.to_json()
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 6, 5, 3), dtype=np.int64).astype(np.int8)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    assert a.final == int(it.get_tensor(it.get_output_details()[0]["index"])[0, 1, 1, 0])


def test_tensor_by_index_and_path_and_model_object(tmp_path):
    model, inputs = conv_model(np.random.default_rng(51))
    p = tmp_path / "m.tflite"
    p.write_bytes(model)
    from quantcore.schema import read_model
    a = explain(model, "y", (0, 2, 3, 1), inputs)
    b = explain(str(p), 3, (0, 2, 3, 1), inputs)
    c = explain(read_model(model), "y", [0, 2, 3, 1], inputs)
    assert a.to_json() == b.to_json() == c.to_json()


# ---------------------------------------------------------------------------
# step values against hand computation
# ---------------------------------------------------------------------------
def _step(e, label):
    found = [s for s in e.steps if s.label == label]
    assert found, f"no step {label!r} in {[s.label for s in e.steps]}"
    return found[0]


def test_1x1_conv_steps_by_hand():
    rng = np.random.default_rng(60)
    w = rng.integers(-127, 128, (2, 1, 1, 3)).astype(np.int8)
    model, inputs = conv_model(rng, kh=1, kw=1, cout=2, x_zp=-7, weights=w, bias=[1234, -77])
    x = inputs[0]
    at = (0, 4, 2, 1)
    e = explain(model, "y", at, inputs)
    xv = x[0, 4, 2, :].astype(np.int64)
    acc = int(np.sum((xv + 7) * w[1, 0, 0, :].astype(np.int64)))
    assert _step(e, "input_offset").value == 7 and _step(e, "input_offset").equation == 14
    assert _step(e, "input window").value == [[[int(v) for v in xv]]]
    assert _step(e, "filter values").value == [[[int(v) for v in w[1, 0, 0, :]]]]
    assert _step(e, "accumulator Σ(x + input_offset)·w").value == acc
    assert _step(e, "bias").value == -77
    assert _step(e, "acc + bias").value == acc - 77
    # the multiplier step encodes s_in * s_w / s_out
    from quantcore.schema import read_model
    sg = read_model(model).subgraphs[0]
    s_in = float(sg.tensors[0].quantization.scale[0])
    s_w = float(sg.tensors[1].quantization.scale[1])
    s_out = float(sg.tensors[3].quantization.scale[0])
    zp_out = int(sg.tensors[3].quantization.zero_point[0])
    m = _step(e, "output multiplier (per channel)").value
    assert m["real"] == pytest.approx(s_in * s_w / s_out, rel=1e-12)
    assert m["encoded"] == pytest.approx(m["real"], rel=1e-9)
    # the final value is the rounded, offset, clamped real product (up to the double rounding)
    approx = (acc - 77) * s_in * s_w / s_out + zp_out
    assert abs(e.final - min(max(round(approx), -128), 127)) <= 1
    assert e.real == pytest.approx(s_out * (e.final - zp_out))
    text = e.format()
    for eq in (14, 15, 16, 7, 8, 17):
        assert f"(eq. {eq})" in text


def test_conv_padding_taps_are_skipped():
    model, inputs = conv_model(np.random.default_rng(61), h=4, w=4, kh=3, kw=3)
    e = explain(model, "y", (0, 0, 0, 2), inputs)
    window = _step(e, "input window").value
    assert window[0] == [None, None, None] and window[1][0] is None and window[2][0] is None
    assert "eq. 2" in _step(e, "input window").detail
    assert "5 of 9 taps" in _step(e, "input window").detail


def test_fc_float64_product_by_hand():
    rng = np.random.default_rng(62)
    model, inputs = fc_model(rng, in_shape=(2, 6), units=3)
    at = (1, 2)
    e = explain(model, "y", at, inputs)
    from quantcore.schema import read_model
    m = read_model(model)
    sg = m.subgraphs[0]
    w = m.tensor_data(0, 1).astype(np.int64)
    bias = m.tensor_data(0, 2).astype(np.int64)
    zp_in = int(sg.tensors[0].quantization.zero_point[0])
    acc = int(np.sum((inputs[0][1].astype(np.int64) - zp_in) * w[2])) + int(bias[2])
    assert _step(e, "acc + bias").value == acc
    eff = float(sg.tensors[0].quantization.scale[0]) * float(sg.tensors[1].quantization.scale[0]) \
        / float(sg.tensors[3].quantization.scale[0])
    assert _step(e, "effective scale").value == eff
    assert _step(e, "float64 product acc·M").value == acc * eff
    r = _step(e, "round half away from zero").value
    assert r == int(np.sign(acc * eff) * np.floor(abs(acc * eff) + 0.5))


def test_avg_pool_rounding_by_hand():
    b = ModelBuilder()
    x = b.add_input("x", [1, 2, 2, 1], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 1, 1, 1], np.int8, scale=0.1, zero_point=0)
    b.add_operator("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_h=2, stride_w=2,
                   filter_height=2, filter_width=2)
    b.mark_outputs(y)
    model = b.to_bytes()
    xv = np.array([3, 4, -8, -9], np.int8).reshape(1, 2, 2, 1)   # sum -10, n 4: -2.5 -> -3
    e = explain(model, "y", (0, 0, 0, 0), [xv])
    assert _step(e, "acc = Σ q").value == -10
    assert _step(e, "n (in-image taps)").value == 4
    assert _step(e, "rounded average").value == -3 and e.final == -3
    xv = np.array([3, 4, 8, -5], np.int8).reshape(1, 2, 2, 1)    # sum 10: 2.5 -> 3
    assert explain(model, "y", (0, 0, 0, 0), [xv]).final == 3


def test_add_steps_by_hand():
    model, inputs = binary_model(np.random.default_rng(63), "ADD", shape2=(2, 3, 4),
                                 scales=[0.02, 0.05, 0.08])
    at = (1, 2, 3)
    e = explain(model, "y", at, inputs)
    from quantcore.schema import read_model
    sg = read_model(model).subgraphs[0]
    z1 = int(sg.tensors[0].quantization.zero_point[0])
    z2 = int(sg.tensors[1].quantization.zero_point[0])
    zo = int(sg.tensors[2].quantization.zero_point[0])
    q1, q2 = int(inputs[0][at]), int(inputs[1][at])
    assert _step(e, "input 1").value == q1 and _step(e, "input 2").value == q2
    assert _step(e, "(x1 + offset)·2^20").value == (q1 - z1) << 20
    # input 1 goes to the grid of 2*max(s) = 0.1 with 2^20 extra precision: * 0.2
    s1 = float(np.float32(0.02)) / float(np.float32(2) * np.float32(0.05))
    assert abs(_step(e, "scaled input 1").value - ((q1 - z1) << 20) * s1) <= 1
    real = 0.02 * (q1 - z1) + 0.05 * (q2 - z2)
    assert abs(e.final - min(max(round(real / 0.08) + zo, -128), 127)) <= 1
    assert all(s.equation in (None, 1, 6, 7, 8, 11, 21) for s in e.steps)


def test_mean_steps_by_hand():
    model, inputs = reduce_model(np.random.default_rng(64), "MEAN", shape=(1, 3, 4, 2))
    e = explain(model, "y", (0, 0, 0, 1), inputs)
    vals = inputs[0][0, :, :, 1].astype(np.int64)
    assert _step(e, "reduced elements").value == [int(v) for v in vals.reshape(-1)]
    assert _step(e, "Σ q").value == int(vals.sum())


def test_quantize_steps_by_hand():
    model = unary_model("QUANTIZE", "int8", (3,), None, None, 0.5, 1, in_dtype=np.float32)
    x = np.array([0.25, -0.75, 100.0], np.float32)      # 0.5 -> 1 (ties away); -1.5 -> -2
    assert [explain(model, "y", (i,), [x]).final for i in range(3)] == [2, -1, 127]
    e = explain(model, "y", (1,), [x])
    assert _step(e, "x / s").value == -1.5 and _step(e, "roundf").value == -2


def test_lut_entry_shows_how_it_was_computed():
    model = unary_model("LOGISTIC", "int8", (4,), 0.1, 0, 1 / 256, -128)
    x = np.array([0, 10, -128, 127], np.int8)
    e = explain(model, "y", (1,), [x])
    assert _step(e, "dequantized input").value == pytest.approx(1.0)
    assert _step(e, "transformed").value == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-6)
    assert e.final == round(256 / (1 + np.exp(-1.0))) - 128
    assert _step(e, "table index").value == 10 + 128


def test_softmax_summary_steps():
    model = unary_model("SOFTMAX", "int8", (1, 5), 0.1, 0, 1 / 256, -128, beta=1.0)
    x = np.array([[10, 20, 30, 0, -50]], np.int8)
    e = explain(model, "y", (0, 2), [x])
    assert _step(e, "row max").value == 30
    assert _step(e, "diff = x - max").value == 0
    ex = _step(e, "exp (Q0.31)").value
    assert ex == 2**31 - 1                              # exp(0) = One()
    assert "shifted_scale" in _step(e, "reciprocal (GetReciprocal)").value
    p = np.exp(0.1 * (x[0].astype(np.float64) - 30))
    assert abs(e.final - (round(256 * p[2] / p.sum()) - 128)) <= 1


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def _two_op_model():
    """QUANTIZE -> RESHAPE: one supported op, one unsupported."""
    b = ModelBuilder()
    x = b.add_input("xf", [2, 3], np.float32)
    q = b.add_tensor("q", [2, 3], np.int8, scale=0.1, zero_point=0)
    shape = b.add_constant("shape", np.array([6], np.int32))
    r = b.add_tensor("r", [6], np.int8, scale=0.1, zero_point=0)
    b.add_operator("QUANTIZE", [x], [q])
    b.add_operator("RESHAPE", [q, shape], [r], new_shape=[6])
    b.mark_outputs(r)
    return b.to_bytes()


def test_unknown_tensor_names_what_exists():
    model = _two_op_model()
    with pytest.raises(InputError, match=r"no tensor named 'nope'.*'q' \(QUANTIZE\).*'r' \(RESHAPE\)"):
        explain(model, "nope", (0, 0))
    with pytest.raises(InputError, match=r"tensor index 99 out of range.*4 tensors"):
        explain(model, 99, (0,))
    with pytest.raises(InputError, match=r"tensor index 99 out of range"):
        explain(model, "99", (0,))          # a number given as text (command line) is an index
    assert explain(model, "1", (0, 0), [np.zeros((2, 3), np.float32)]).final == 0


def test_tensor_not_produced_by_an_op():
    model = _two_op_model()
    with pytest.raises(InputError, match="'xf' is a model input.*Operator outputs"):
        explain(model, "xf", (0, 0))
    with pytest.raises(InputError, match="'shape' is a constant"):
        explain(model, "shape", (0,))


def test_unsupported_op_lists_supported_types():
    with pytest.raises(InputError, match=r"RESHAPE.*does not support.*CONV_2D.*FULLY_CONNECTED.*SOFTMAX"):
        explain(_two_op_model(), "r", (0,))


def test_float_kernel_is_refused():
    b = ModelBuilder()
    x = b.add_input("x", [1, 3, 3, 1], np.float32)
    w = b.add_constant("w", np.ones((1, 1, 1, 1), np.float32))
    bias = b.add_constant("b", np.zeros(1, np.float32))
    y = b.add_tensor("y", [1, 3, 3, 1], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    with pytest.raises(InputError, match=r"CONV_2D of kind 'float'.*integer kernel.*Supported"):
        explain(b.to_bytes(), "y", (0, 0, 0, 0))


def test_index_out_of_range_names_the_shape():
    model, inputs = conv_model(np.random.default_rng(70))
    with pytest.raises(InputError, match=r"out of range.*shape \[1, 6, 5, 4\]"):
        explain(model, "y", (0, 6, 0, 0), inputs)
    with pytest.raises(InputError, match=r"shape \[1, 6, 5, 4\].*4 indices"):
        explain(model, "y", (0, 1), inputs)
    with pytest.raises(InputError, match=r"out of range"):
        explain(model, "y", (0, -1, 0, 0), inputs)
    with pytest.raises(InputError, match="tuple of integers"):
        explain(model, "y", ("a", 0, 0, 0), inputs)


def test_wrong_inputs_are_refused():
    model, inputs = conv_model(np.random.default_rng(71))
    with pytest.raises(InputError, match="2 input arrays given, the model has 1"):
        explain(model, "y", (0, 0, 0, 0), inputs * 2)
    with pytest.raises(InputError, match="expected int8"):
        explain(model, "y", (0, 0, 0, 0), [inputs[0].astype(np.int16)])


def test_bad_model_argument():
    with pytest.raises(InputError, match="path, bytes"):
        explain(12, "y", (0,))


def test_mismatch_with_the_runtime_is_an_internal_error(monkeypatch):
    import quantcore.explain as ex
    model, inputs = conv_model(np.random.default_rng(72))
    real = ex._EXPLAINERS["CONV_2D"]

    def off_by_one(c):
        final, steps, notes = real(c)
        return final + 1, steps, notes
    monkeypatch.setitem(ex._EXPLAINERS, "CONV_2D", off_by_one)
    with pytest.raises(ExplainMismatchError, match="bug in quantcore"):
        explain(model, "y", (0, 1, 1, 1), inputs)
