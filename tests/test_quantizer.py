"""The quantizer: every mode produces a model LiteRT runs, bit-exact with quantcore.

Float models are built with ModelBuilder (and, in test_converter_parity.py, taken
from the TensorFlow converter fixtures). Every comparison is against LiteRT
BUILTIN_REF with all tensors preserved.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import assert_matches_litert
from quantcore import CalibrationError, InputError, quantize
from quantcore.quantizer import QuantizationReport
from quantcore.schema import read_model
from quantcore.schema.builder import ModelBuilder


def float_model(seed: int = 0, signature: bool = True) -> bytes:
    """conv -> relu6 -> depthwise -> add(skip) -> avgpool -> reshape -> FC -> softmax, plus a
    concat and tanh/logistic branch: the op mix of real converter outputs."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.add_input("input", [1, 8, 8, 3], np.float32)
    w1 = b.add_constant("conv/w", rng.normal(0, 0.4, (6, 3, 3, 3)).astype(np.float32))
    b1 = b.add_constant("conv/b", rng.normal(0, 0.1, 6).astype(np.float32))
    c1 = b.add_tensor("conv", [1, 8, 8, 6], np.float32)
    b.add_operator("CONV_2D", [x, w1, b1], [c1], padding="SAME", stride_w=1, stride_h=1,
                   fused_activation_function="RELU6")
    w2 = b.add_constant("dw/w", rng.normal(0, 0.4, (1, 3, 3, 6)).astype(np.float32))
    b2 = b.add_constant("dw/b", rng.normal(0, 0.1, 6).astype(np.float32))
    c2 = b.add_tensor("dw", [1, 8, 8, 6], np.float32)
    b.add_operator("DEPTHWISE_CONV_2D", [c1, w2, b2], [c2], padding="SAME", stride_w=1, stride_h=1,
                   depth_multiplier=1)
    s = b.add_tensor("skip", [1, 8, 8, 6], np.float32)
    b.add_operator("ADD", [c1, c2], [s])
    t = b.add_tensor("tanh", [1, 8, 8, 6], np.float32)
    b.add_operator("TANH", [s], [t])
    lg = b.add_tensor("logistic", [1, 8, 8, 6], np.float32)
    b.add_operator("LOGISTIC", [s], [lg])
    cc = b.add_tensor("concat", [1, 8, 8, 12], np.float32)
    b.add_operator("CONCATENATION", [t, lg], [cc], axis=3)
    p = b.add_tensor("pool", [1, 4, 4, 12], np.float32)
    b.add_operator("AVERAGE_POOL_2D", [cc], [p], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    shape = b.add_constant("shape", np.array([1, 192], np.int32))
    r = b.add_tensor("flat", [1, 192], np.float32)
    b.add_operator("RESHAPE", [p, shape], [r])
    w3 = b.add_constant("fc/w", rng.normal(0, 0.2, (5, 192)).astype(np.float32))
    b3 = b.add_constant("fc/b", rng.normal(0, 0.1, 5).astype(np.float32))
    f = b.add_tensor("fc", [1, 5], np.float32)
    b.add_operator("FULLY_CONNECTED", [r, w3, b3], [f])
    out = b.add_tensor("probs", [1, 5], np.float32)
    b.add_operator("SOFTMAX", [f], [out], beta=1.0)
    b.mark_outputs(out)
    if signature:
        b.add_signature()
    return b.to_bytes()


def dataset(n: int = 16, seed: int = 1):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, (n, 1, 8, 8, 3)).astype(np.float32)
    return lambda: ([x] for x in data)


def _input_for(model: bytes, seed: int = 2) -> list[np.ndarray]:
    m = read_model(model)
    t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
    rng = np.random.default_rng(seed)
    if t.type_name == "FLOAT32":
        return [rng.uniform(-1, 1, t.shape).astype(np.float32)]
    info = np.iinfo(t.dtype)
    return [rng.integers(info.min, int(info.max) + 1, t.shape).astype(t.dtype)]


MODES = [
    dict(mode="int8"),
    dict(mode="int8", inference_input_type=np.int8, inference_output_type=np.int8),
    dict(mode="int8", inference_input_type=np.uint8, inference_output_type=np.uint8),
    dict(mode="int8", per_channel=False),
    dict(mode="int16x8"),
    dict(mode="int16x8", inference_input_type=np.int16, inference_output_type=np.int16),
    dict(mode="uint8"),
    dict(mode="dynamic"),
    dict(mode="float16"),
    dict(mode="int8", denylist=["TANH"]),
]


@pytest.mark.parametrize("kwargs", MODES, ids=[str(sorted((k, getattr(v, "__name__", v)) for k, v in k.items()))
                                               for k in MODES])
def test_every_mode_runs_in_litert_and_matches_ref(oracle, kwargs):
    q = quantize(float_model(), representative_dataset=dataset(), **kwargs)
    assert_matches_litert(oracle, q, _input_for(q), "reference", rtol=1e-4)


def test_int8_tensor_types_and_parameters():
    q = read_model(quantize(float_model(), representative_dataset=dataset()))
    sg = q.subgraphs[0]
    by_name = {t.name: t for t in sg.tensors}
    assert by_name["input"].type_name == "FLOAT32" and by_name["probs"].type_name == "FLOAT32"
    assert by_name["conv/w"].type_name == "INT8" and len(by_name["conv/w"].quantization.scale) == 6
    assert by_name["dw/w"].quantization.quantized_dimension == 3
    assert by_name["conv/b"].type_name == "INT32"
    s_in = by_name["tfl.quantize"].quantization.scale[0]
    np.testing.assert_array_equal(by_name["conv/b"].quantization.scale,
                                  (np.float64(s_in) * by_name["conv/w"].quantization.scale.astype(np.float64))
                                  .astype(np.float32))
    assert float(by_name["tanh"].quantization.scale[0]) == 1 / 128
    assert float(by_name["logistic"].quantization.scale[0]) == 1 / 256
    assert int(by_name["logistic"].quantization.zero_point[0]) == -128
    # data movement keeps parameters
    np.testing.assert_array_equal(by_name["flat"].quantization.scale, by_name["pool"].quantization.scale)
    assert [q.op_name(o) for o in sg.operators][0] == "QUANTIZE"
    assert [q.op_name(o) for o in sg.operators][-1] == "DEQUANTIZE"


def test_concatenation_inputs_are_requantized_to_the_output_scale():
    q = read_model(quantize(float_model(), representative_dataset=dataset()))
    sg = q.subgraphs[0]
    concat = next(o for o in sg.operators if q.op_name(o) == "CONCATENATION")
    out = sg.tensors[concat.outputs[0]].quantization
    for i in concat.inputs:
        qp = sg.tensors[i].quantization
        assert float(qp.scale[0]) == float(out.scale[0]) and int(qp.zero_point[0]) == int(out.zero_point[0])


def test_denylist_keeps_op_in_float_and_reports_it():
    report = QuantizationReport([])
    q = read_model(quantize(float_model(), representative_dataset=dataset(), denylist=["TANH"],
                            report=report))
    sg = q.subgraphs[0]
    tanh = next(o for o in sg.operators if q.op_name(o) == "TANH")
    assert all(sg.tensors[i].type_name == "FLOAT32" for i in tanh.inputs + tanh.outputs)
    assert [r[1] for r in report.float_ops] == ["TANH"]


def test_nan_in_calibration_data_names_the_input():
    data = np.zeros((2, 1, 8, 8, 3), np.float32)
    data[1, 0, 2, 3, 1] = np.nan
    with pytest.raises(CalibrationError, match=r"sample 1: input 'input' contains NaN"):
        quantize(float_model(), representative_dataset=lambda: ([x] for x in data))


def test_wrong_shape_calibration_data_is_a_calibration_error():
    with pytest.raises(CalibrationError, match="shape"):
        quantize(float_model(), representative_dataset=lambda: iter([[np.zeros((1, 4, 4, 3), np.float32)]]))


def test_empty_dataset_and_missing_dataset():
    with pytest.raises(CalibrationError, match="empty"):
        quantize(float_model(), representative_dataset=lambda: iter([]))
    with pytest.raises(CalibrationError, match="representative_dataset"):
        quantize(float_model())


def test_default_ranges_dummy_quantization_runs(oracle):
    q = quantize(float_model(), default_ranges=(-6.0, 6.0))
    assert_matches_litert(oracle, q, _input_for(q))


def test_dict_samples_by_signature_name_and_models_without_signatures(oracle):
    rng = np.random.default_rng(0)
    data = [{"input": rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)} for _ in range(4)]
    q1 = quantize(float_model(), representative_dataset=lambda: iter(data))
    q2 = quantize(float_model(signature=False), representative_dataset=lambda: ([d["input"]] for d in data))
    assert read_model(q2).signature_defs is None
    assert_matches_litert(oracle, q2, _input_for(q2))
    m1, m2 = read_model(q1), read_model(q2)
    for t1, t2 in zip(m1.subgraphs[0].tensors, m2.subgraphs[0].tensors):
        if t1.quantization is not None and t1.quantization.scale is not None:
            np.testing.assert_array_equal(t1.quantization.scale, t2.quantization.scale)


def test_bad_arguments():
    with pytest.raises(InputError, match="mode"):
        quantize(float_model(), representative_dataset=dataset(), mode="int4")
    with pytest.raises(InputError, match="inference_input_type"):
        quantize(float_model(), representative_dataset=dataset(), inference_input_type=np.int16)
    q = quantize(float_model(), representative_dataset=dataset())
    with pytest.raises(InputError, match="already quantized"):
        quantize(q, representative_dataset=dataset())


def test_float16_weight_model_quantizes_from_its_float32_values(oracle):
    """A float16-weight model (fp16 constants -> DEQUANTIZE) quantizes like a float one."""
    from pathlib import Path
    fixtures = Path(__file__).parent / "fixtures" / "models"
    calib = np.load(fixtures / "small_cnn_calib.npy")
    q = quantize(fixtures / "small_cnn_float16.tflite",
                 representative_dataset=lambda: ([x[None]] for x in calib))
    m = read_model(q)
    assert "DEQUANTIZE" not in [m.op_name(o) for o in m.subgraphs[0].operators][:-1]
    assert not any(t.type_name == "FLOAT16" for t in m.subgraphs[0].tensors)
    assert_matches_litert(oracle, q, [calib[:1]])
