"""QAT: TensorFlow's FakeQuant in NumPy, and quantizing float models that carry their
ranges (QUANTIZE/DEQUANTIZE pairs, FAKE_QUANT operators, min/max) without data.

References made by TensorFlow 2.21 (scripts/make_fixtures_qat.py, tests/fixtures/qat/):
``fake_quant.npz`` (outputs of ``fake_quant_with_min_max_vars`` and ``..._per_channel``),
``qat_float.tflite`` (a fake-quantized graph converted without optimizations) and
``qat_int8.tflite`` (the same graph converted to int8 by the converter).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import quantcore
from harness import assert_matches_litert
from quantcore import CalibrationError, InputError
from quantcore.qat import fake_quant, fake_quant_qparams, model_ranges
from quantcore.schema import read_model
from quantcore.schema.builder import ModelBuilder

FIX = Path(__file__).parent / "fixtures" / "qat"
F32 = np.float32


def _bits(a: np.ndarray) -> np.ndarray:
    """float32 bit patterns, every NaN the same."""
    a = np.asarray(a, F32)
    return np.where(np.isnan(a), F32(np.nan), a).view(np.int32)


@pytest.fixture(scope="module")
def fq_ref():
    return np.load(FIX / "fake_quant.npz")


# ---------------------------------------------------------------------------
# fake_quant against TensorFlow
# ---------------------------------------------------------------------------
def test_fake_quant_per_tensor_equals_tensorflow_bit_for_bit(fq_ref):
    d = fq_ref
    n = len(d["pt_x"])
    assert n >= 400
    for i in range(n):
        ours = fake_quant(d["pt_x"][i], d["pt_min"][i], d["pt_max"][i], int(d["pt_bits"][i]),
                          bool(d["pt_narrow"][i]))
        np.testing.assert_array_equal(
            _bits(ours), _bits(d["pt_y"][i]),
            err_msg=f"case {i}: min {d['pt_min'][i]!r} max {d['pt_max'][i]!r} "
                    f"bits {d['pt_bits'][i]} narrow {d['pt_narrow'][i]}")


def test_fake_quant_per_channel_equals_tensorflow_bit_for_bit(fq_ref):
    d = fq_ref
    i = 0
    while f"pc{i}_x" in d:
        ours = fake_quant(d[f"pc{i}_x"], d[f"pc{i}_min"], d[f"pc{i}_max"], int(d[f"pc{i}_bits"]),
                          bool(d[f"pc{i}_narrow"]), axis=-1)
        np.testing.assert_array_equal(_bits(ours), _bits(d[f"pc{i}_y"]), err_msg=f"per-channel case {i}")
        i += 1
    assert i >= 40


def test_fake_quant_fixture_covers_the_edge_cases(fq_ref):
    d = fq_ref
    mn, mx, bits = d["pt_min"], d["pt_max"], d["pt_bits"]
    assert np.any((mn == 0) & (mx == 0)) and np.any((mn == mx) & (mn != 0))
    assert np.any(mn > mx) and np.any(bits == 16) and np.any(d["pt_narrow"])
    assert np.any(np.abs(mx[mx != 0]) < np.finfo(F32).tiny)          # subnormal ranges
    assert np.any(np.isnan(d["pt_x"])) and np.any(np.isinf(d["pt_x"]))


def test_fake_quant_min_equals_max_zero_gives_zeros():
    x = np.array([np.nan, -np.inf, 1.0, -3.0], F32)
    np.testing.assert_array_equal(fake_quant(x, 0.0, 0.0), np.zeros(4, F32))
    y = fake_quant(np.ones((2, 2), F32), [0.0, -1.0], [0.0, 1.0], axis=1)
    np.testing.assert_array_equal(y[:, 0], [0, 0])
    assert np.all(np.isnan(fake_quant(np.ones(3, F32), 2.0, 2.0)))


def test_fake_quant_matches_the_grid():
    """Outputs are on the nudged grid: (q - quant_zero) * scale, q in [0, 255]; here
    f32(0 - (-1) / f32(2/255)) = 127.49999 rounds to the zero point 127."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 1000).astype(F32)
    y = fake_quant(x, -1.0, 1.0)
    s = F32(2.0 / 255)
    q = np.round(y / s)
    assert np.all(np.abs(y - q * s) < 1e-6) and q.min() == -127 and q.max() == 128
    assert quantcore.fake_quant is fake_quant


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_bits=1), "num_bits"), (dict(num_bits=17), "num_bits"),
    (dict(min=np.zeros(3), max=np.ones(3)), "axis"),
    (dict(min=np.zeros(3), max=np.ones(3), axis=0), "values each"),
    (dict(axis=5), "axis"),
])
def test_fake_quant_bad_arguments(kwargs, match):
    args = dict(x=np.zeros((2, 4), F32), min=-1.0, max=1.0)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        fake_quant(**args)


# ---------------------------------------------------------------------------
# converter parameters of a FakeQuant range
# ---------------------------------------------------------------------------
RANGES = {"in": (-1.0, 1.0), "c1": (0.0, 3.1), "c2": (-2.3, 1.9), "c3": (0.0, 2.6),
          "cat": (-2.3, 2.6), "pool": (-1.4, 2.2), "fc": (-4.2, 5.3)}   # make_fixtures_qat.py


def test_fake_quant_qparams_equal_the_converters_pairs():
    """The uint8 QUANTIZE parameters TensorFlow wrote for each FakeQuant range."""
    m = read_model(FIX / "qat_float.tflite")
    carried = model_ranges(m, strip=False).activations
    got = {(float(p.scale[0]), int(p.zero_point[0])) for p in carried.values()}
    for lo, hi in RANGES.values():
        s, z = fake_quant_qparams(np.float32(lo), np.float32(hi))
        assert (float(s[0]), int(z[0])) in got, (lo, hi)


def test_fake_quant_qparams_edge_cases():
    s, z = fake_quant_qparams(0.0, 0.0)                  # widened to [-5e-7, 5e-7]
    assert float(s[0]) == float(F32(1e-6 / 255)) and int(z[0]) == 127  # 5e-7 / s = 127.4999...
    s, z = fake_quant_qparams(-1.0, 1.0, narrow_range=True)
    assert float(s[0]) == float(F32(2 / 254)) and int(z[0]) == 128
    s, z = fake_quant_qparams([0.5, -3.0], [2.0, -1.0])   # ranges without 0: zero point clamped
    assert z.tolist() == [0, 255]
    # signed storage picks the zero point from max (smaller error term) and rounds
    # -0.5 away from zero; TFLite legalizes to unsigned (128) and shifts to 0 instead
    s, z = fake_quant_qparams(-1.0, 1.0, signed=True)
    assert int(z[0]) == -1
    assert int(fake_quant_qparams(-1.0, 1.0)[1][0]) - 128 == 0


# ---------------------------------------------------------------------------
# quantize() on a fake-quantized float model, without data
# ---------------------------------------------------------------------------
def _params_by_name(m):
    out = {}
    for t in m.subgraphs[0].tensors:
        q = t.qparams()
        if q is not None:
            out[t.name] = (t.type_name, q[0], q[1])
    return out


@pytest.fixture(scope="module")
def qat_quantized() -> bytes:
    return quantcore.quantize(FIX / "qat_float.tflite")


def test_qat_model_quantizes_without_data_like_the_converter(qat_quantized):
    ours, tf = read_model(qat_quantized), read_model(FIX / "qat_int8.tflite")
    assert [ours.op_name(op) for op in ours.subgraphs[0].operators] == \
           [tf.op_name(op) for op in tf.subgraphs[0].operators]
    po, pt = _params_by_name(ours), _params_by_name(tf)
    # the converter names a few new tensors differently (input, requantize, output copy):
    # match those by position instead
    o_sg, t_sg = ours.subgraphs[0], tf.subgraphs[0]
    pairs = []
    for oo, to in zip(o_sg.operators, t_sg.operators):
        pairs += list(zip(oo.inputs + oo.outputs, to.inputs + to.outputs))
    checked = biases = 0
    for a, b in pairs:
        if a < 0:
            continue
        ta, tb = o_sg.tensors[a], t_sg.tensors[b]
        qa, qb = ta.qparams(), tb.qparams()
        assert ta.type_name == tb.type_name, (ta.name, tb.name)
        assert (qa is None) == (qb is None), ta.name
        if qa is None:
            continue
        np.testing.assert_array_equal(qa[1], qb[1], err_msg=f"zero point of {ta.name}")
        if ta.type_name == "INT32":
            # bias scales: the converter multiplies the *double* scales of the FakeQuant
            # ranges; the float file only holds their float32 roundings
            np.testing.assert_array_max_ulp(qa[0], qb[0], maxulp=1)
            biases += 1
        else:
            np.testing.assert_array_equal(qa[0], qb[0], err_msg=f"scale of {ta.name}")
            checked += 1
        da, db = ours.tensor_data(0, a), tf.tensor_data(0, b)
        if db is not None:
            np.testing.assert_array_equal(da, db, err_msg=f"values of {ta.name}")
    assert checked >= 14 and biases == 4
    assert set(po) - set(pt) <= {"tfl.quantize", "AvgPool2D_requantized", "PartitionedCall:01"}


def test_qat_quantized_model_runs_bit_exact_with_litert(oracle, qat_quantized):
    xs = np.load(FIX / "qat_calib.npy")
    for x in xs[:4]:
        assert_matches_litert(oracle, qat_quantized, [x], "reference")
        assert_matches_litert(oracle, (FIX / "qat_int8.tflite").read_bytes(), [x], "reference")


def test_qat_ranges_found_and_removed():
    m = read_model(FIX / "qat_float.tflite")
    found = model_ranges(m)
    assert len(found.activations) == 7 and len(found.weights) == 4
    assert all(m.op_name(op) not in ("QUANTIZE", "DEQUANTIZE") for op in m.subgraphs[0].operators)
    # AvgPool2D keeps the concatenation's parameters (forward); the Reshape after it
    # has its own, so the quantizer requantizes in between, as the converter does
    assert 30 not in found.activations and 31 in found.activations


def test_ranges_propagate_back_through_data_movement(oracle):
    """conv (no range) -> RESHAPE -> FAKE_QUANT: the conv output takes the reshape's
    range, as the converter's output of such a graph has it."""
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 2], np.float32)
    xq = b.add_tensor("x_fq", [1, 4, 4, 2], np.float32)
    b.add_operator("FAKE_QUANT", [x], [xq], min=-1.0, max=1.0, num_bits=8)
    w = b.add_constant("w", rng.normal(0, 0.4, (3, 3, 3, 2)).astype(F32))
    c = b.add_tensor("conv", [1, 2, 2, 3], np.float32)
    bias = b.add_constant("b", rng.normal(0, 0.1, 3).astype(F32))
    b.add_operator("CONV_2D", [xq, w, bias], [c], padding="SAME", stride_w=2, stride_h=2)
    shape = b.add_constant("shape", np.array([1, 12], np.int32))
    r = b.add_tensor("flat", [1, 12], np.float32)
    b.add_operator("RESHAPE", [c, shape], [r])
    rq = b.add_tensor("flat_fq", [1, 12], np.float32)
    b.add_operator("FAKE_QUANT", [r], [rq], min=-2.0, max=1.5, num_bits=8)
    b.mark_outputs(rq)
    q = quantcore.quantize(b.to_bytes())
    params = _params_by_name(read_model(q))
    s, z = fake_quant_qparams(-2.0, 1.5)
    assert float(params["conv"][1][0]) == float(s[0]) and int(params["conv"][2][0]) == int(z[0]) - 128
    assert_matches_litert(oracle, q, [rng.uniform(-1, 1, (1, 4, 4, 2)).astype(F32)], "reference")


# ---------------------------------------------------------------------------
# FAKE_QUANT operators and min/max in quantization parameters
# ---------------------------------------------------------------------------
def fake_quant_op_model(seed: int = 0, with_minmax: bool = False, leave_one: bool = False) -> bytes:
    """input -> FAKE_QUANT -> conv(relu) -> FAKE_QUANT -> avgpool -> reshape -> FC ->
    FAKE_QUANT; optionally one range as min/max in quantization parameters instead."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.add_input("x", [1, 6, 6, 2], np.float32)
    xq = b.add_tensor("x_fq", [1, 6, 6, 2], np.float32)
    b.add_operator("FAKE_QUANT", [x], [xq], min=-1.0, max=1.0, num_bits=8)
    w = b.add_constant("w", rng.normal(0, 0.4, (4, 3, 3, 2)).astype(F32))
    bias = b.add_constant("b", rng.normal(0, 0.1, 4).astype(F32))
    c = b.add_tensor("conv", [1, 6, 6, 4], np.float32)
    b.add_operator("CONV_2D", [xq, w, bias], [c], padding="SAME", stride_w=1, stride_h=1,
                   fused_activation_function="RELU")
    if with_minmax:
        b.model.subgraphs[0].tensors[c].quantization = \
            __import__("quantcore.schema.builder", fromlist=["quantization"]).quantization(min=0.0, max=2.9)
        cq = c
    elif leave_one:
        cq = c
    else:
        cq = b.add_tensor("conv_fq", [1, 6, 6, 4], np.float32)
        b.add_operator("FAKE_QUANT", [c], [cq], min=0.0, max=2.9, num_bits=8)
    p = b.add_tensor("pool", [1, 3, 3, 4], np.float32)
    b.add_operator("AVERAGE_POOL_2D", [cq], [p], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    shape = b.add_constant("shape", np.array([1, 36], np.int32))
    r = b.add_tensor("flat", [1, 36], np.float32)
    b.add_operator("RESHAPE", [p, shape], [r])
    w2 = b.add_constant("w2", rng.normal(0, 0.2, (5, 36)).astype(F32))
    b2 = b.add_constant("b2", rng.normal(0, 0.1, 5).astype(F32))
    y = b.add_tensor("fc", [1, 5], np.float32)
    b.add_operator("FULLY_CONNECTED", [r, w2, b2], [y])
    yq = b.add_tensor("out", [1, 5], np.float32)
    b.add_operator("FAKE_QUANT", [y], [yq], min=-3.5, max=2.75, num_bits=8)
    b.mark_outputs(yq)
    return b.to_bytes()


def test_float_model_with_fake_quant_ops_runs_in_both(oracle):
    rng = np.random.default_rng(1)
    model = fake_quant_op_model()
    for _ in range(3):
        x = rng.uniform(-1.2, 1.2, (1, 6, 6, 2)).astype(F32)
        assert_matches_litert(oracle, model, [x], "reference")


@pytest.mark.parametrize("with_minmax", [False, True])
def test_fake_quant_op_model_quantizes_without_data(oracle, with_minmax):
    q = quantcore.quantize(fake_quant_op_model(with_minmax=with_minmax))
    m = read_model(q)
    params = _params_by_name(m)
    s, z = fake_quant_qparams(-1.0, 1.0)
    assert any(v[0] == "INT8" and float(v[1][0]) == float(s[0]) and int(v[2][0]) == int(z[0]) - 128
               for v in params.values())
    s, z = fake_quant_qparams(0.0, 2.9)
    assert params["conv"][1][0] == s[0] and params["conv"][2][0] == z[0] - 128
    assert params["pool"][1][0] == s[0]                       # pooling keeps its input's
    s, z = fake_quant_qparams(-3.5, 2.75)
    out_q = [v for k, v in params.items() if k.startswith("out") or k.startswith("fc")]
    assert any(float(v[1][0]) == float(s[0]) and int(v[2][0]) == int(z[0]) - 128 for v in out_q)
    assert all(m.op_name(op) != "FAKE_QUANT" for op in m.subgraphs[0].operators)
    rng = np.random.default_rng(2)
    for _ in range(3):
        assert_matches_litert(oracle, q, [rng.uniform(-1, 1, (1, 6, 6, 2)).astype(F32)], "reference")


def test_only_tensors_without_ranges_are_calibrated(oracle):
    model = fake_quant_op_model(leave_one=True)
    with pytest.raises(CalibrationError, match="conv"):
        quantcore.quantize(model)
    rng = np.random.default_rng(3)
    data = [[rng.uniform(-1, 1, (1, 6, 6, 2)).astype(F32)] for _ in range(8)]
    q = read_model(quantcore.quantize(model, representative_dataset=data))
    params = _params_by_name(q)
    s, z = fake_quant_qparams(-3.5, 2.75)   # carried: not from the data
    assert any(float(v[1][0]) == float(s[0]) and int(v[2][0]) == int(z[0]) - 128 for v in params.values())
    assert params["conv"][2][0] == -128      # calibrated (ReLU output, min 0)


def test_fake_quant_with_other_bit_widths_is_refused():
    b = ModelBuilder()
    x = b.add_input("x", [1, 4], np.float32)
    y = b.add_tensor("y", [1, 4], np.float32)
    b.add_operator("FAKE_QUANT", [x], [y], min=-1.0, max=1.0, num_bits=4)
    b.mark_outputs(y)
    with pytest.raises(InputError, match="num_bits"):
        quantcore.quantize(b.to_bytes())


@pytest.mark.parametrize("mode", ["uint8", "int16x8"])
def test_qat_model_in_other_modes_runs_bit_exact(oracle, mode):
    """uint8 keeps the carried activation parameters (per-channel weights, which the
    legacy uint8 kernels lack, are requantized per tensor); 16x8 takes the carried
    ranges symmetrically."""
    q = quantcore.quantize(FIX / "qat_float.tflite", mode=mode)
    x = np.load(FIX / "qat_calib.npy")[0]
    assert_matches_litert(oracle, q, [x], "reference")
