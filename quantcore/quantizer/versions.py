"""Operator versions for quantized operators, after the converter's
``tflite/converter/tools/versioning/op_version.cc`` (``GetBuiltinOperatorVersion``).

Only what changes when quantcore quantizes is modelled: the versions of CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, QUANTIZE, DEQUANTIZE, MUL and SPLIT follow
op_version.cc case by case; other operators take the version op_version.cc gives
their plain int8 or int16 signature (tables below), or keep version 1 where it has
none (RESHAPE, SQUEEZE, EXPAND_DIMS, ...). The result is never lower than the
float model's version, so options that needed a newer version keep it. LiteRT
dispatches kernels on tensor types, so a version only matters for the
compatibility checks of older runtimes.
"""
from __future__ import annotations

from typing import Any

from quantcore.schema.model import TensorType

I8, I16, U8, F32, F16 = (int(TensorType[n]) for n in ("INT8", "INT16", "UINT8", "FLOAT32", "FLOAT16"))


def _per_channel(tensors: list, index: int | None) -> bool:
    if index is None or index < 0:
        return False
    q = tensors[index].quantization
    return q is not None and q.scale is not None and len(q.scale) > 1


def op_version(name: str, in_types: list, out_types: list, options: dict[str, Any],
               tensors: list, inputs: list[int], current: int) -> int:
    """The version the converter writes for this operator signature (>= ``current``)."""
    i0 = in_types[0] if in_types else None
    i1 = in_types[1] if len(in_types) > 1 else None
    o0 = out_types[0] if out_types else None
    w_idx = inputs[1] if len(inputs) > 1 else None
    if name == "CONV_2D":
        if i0 == I16 and i1 == I8:
            v = 8 if options.get("quantized_bias_type") else 4
        elif i0 == I8 and i1 == I8:
            v = 3
        elif i0 == F32 and i1 == I8:
            v = 5 if _per_channel(tensors, w_idx) else 2
        else:
            v = 1
    elif name == "DEPTHWISE_CONV_2D":
        if i0 == I16:
            v = 5
        elif i0 == F32 and i1 == I8:
            v = 6 if _per_channel(tensors, w_idx) else 4
        elif i0 == I8:
            v = 3
        else:
            v = 2 if options.get("dilation_w_factor", 1) != 1 or options.get("dilation_h_factor", 1) != 1 else 1
    elif name == "FULLY_CONNECTED":
        if i0 == I16 and i1 == I8 and options.get("quantized_bias_type"):
            v = 11
        elif i0 == F32 and i1 == I8 and _per_channel(tensors, w_idx):
            v = 12
        elif len(in_types) == 2:
            v = 6
        elif options.get("keep_num_dims"):
            v = 5
        elif i0 == I8 and i1 == I8:
            v = 4
        elif i0 == F32 and i1 == I8:
            v = 9 if options.get("asymmetric_quantize_inputs") else 3
        elif i0 == I16:
            v = 7
        else:
            v = 1
    elif name == "QUANTIZE":
        v = 2 if o0 == I16 else 1
    elif name == "DEQUANTIZE":
        if i0 in (I16, F16):
            v = 3
        elif i0 == I8:
            v = 5 if _per_channel(tensors, inputs[0] if inputs else None) else 2
        else:
            v = 1
    elif name == "MUL":
        v = 4 if i0 == I16 else 2 if i0 == I8 else 1
    elif name == "SPLIT":
        v = {I8: 2, I16: 4}.get(i1, 1)
    elif (i0 == I16 or o0 == I16) and name in INT16_VERSION:
        v = INT16_VERSION[name]
    elif (i0 in (I8, U8) or o0 == I8) and name in INT8_VERSION:
        v = INT8_VERSION[name] if (i0 == I8 or o0 == I8 or name in ("RELU", "UNPACK")) else 1
    else:
        v = 1
    return max(v, int(current))


# op_version.cc: operators whose int8 signature raises the version (to 2, else noted).
INT8_VERSION = {n: 2 for n in (
    "ADD", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D", "BATCH_MATMUL", "BATCH_TO_SPACE_ND",
    "CONCATENATION", "DEPTH_TO_SPACE", "GATHER", "LOGISTIC", "LOG_SOFTMAX", "MAXIMUM", "MAX_POOL_2D",
    "MEAN", "MINIMUM", "MIRROR_PAD", "PACK", "PAD", "PADV2", "REDUCE_MAX", "REDUCE_MIN", "RELU",
    "RELU6", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
    "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT_V", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB",
    "SUM", "TANH", "TRANSPOSE", "UNPACK", "EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL",
    "SELECT", "TOPK_V2")}
INT8_VERSION.update({"FLOOR_DIV": 3, "REVERSE_V2": 3, "TILE": 3, "SVDF": 3})
# ... and whose int16 signature does (values where op_version.cc has a plain int16 rule).
INT16_VERSION = {
    "ADD": 3, "AVERAGE_POOL_2D": 3, "BATCH_MATMUL": 3, "CONCATENATION": 3, "LOGISTIC": 3,
    "MAX_POOL_2D": 3, "MEAN": 3, "PACK": 3, "PAD": 3, "PADV2": 3, "REDUCE_MAX": 3, "REDUCE_MIN": 3,
    "RELU": 3, "RELU6": 3, "SOFTMAX": 3, "TANH": 3, "LEAKY_RELU": 2, "UNPACK": 4, "SLICE": 4,
    "GATHER": 4, "BATCH_TO_SPACE_ND": 4, "SPACE_TO_BATCH_ND": 4, "RESIZE_BILINEAR": 4,
    "RESIZE_NEAREST_NEIGHBOR": 4, "MAXIMUM": 4, "MINIMUM": 4, "MIRROR_PAD": 3, "TRANSPOSE": 5,
}
