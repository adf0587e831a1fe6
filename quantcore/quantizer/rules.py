"""Per-operator quantization rules, as the TFLite quantization spec and converter set them.

For each builtin operator quantcore can quantize:

* which inputs are weights (quantized symmetric int8, per channel along an axis)
  and which is the bias (int32, or int64 in 16x8, with scale s_in * s_w);
* whether the output has fixed parameters (SOFTMAX, LOGISTIC, TANH, LOG_SOFTMAX);
* whether the operator only moves data, so its output keeps its input's parameters
  (RESHAPE, pooling, TRANSPOSE, ...), or requires all inputs and the output to share
  parameters (CONCATENATION, MAXIMUM, MINIMUM, PACK), which the converter satisfies
  by requantizing inputs with inserted QUANTIZE operators.

Sources: ``tflite/g3doc/performance/quantization_spec.md`` and the MLIR quantizer's
op traits (``tflite/converter/ir/tfl_ops.td``: ``AffineOpCoefficient``,
``FixedOutputRangeInterface``, ``SameOperandsAndResultsScale``).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpRule:
    weights: dict[int, int] = field(default_factory=dict)   # input index -> channel axis
    bias: int | None = None                                  # input index of the bias
    bias_inputs: tuple[int, int] = (0, 1)                    # (activation input, weight input)
    fixed_output: dict[str, tuple[float, int]] | None = None  # dtype name -> (scale, zp)
    same_as_input: bool = False     # output takes input 0's parameters
    shared: bool = False            # all quantized inputs and the output share parameters
    quantized_inputs: tuple[int, ...] | None = None  # inputs carrying quantized data (None: all float ones)
    int16: bool = True              # LiteRT has an int16 (16x8) kernel


_SAME = OpRule(same_as_input=True, quantized_inputs=(0,))

RULES: dict[str, OpRule] = {
    "CONV_2D": OpRule(weights={1: 0}, bias=2),
    "DEPTHWISE_CONV_2D": OpRule(weights={1: 3}, bias=2),
    "FULLY_CONNECTED": OpRule(weights={1: 0}, bias=2),
    "TRANSPOSE_CONV": OpRule(weights={1: 0}, bias=3, bias_inputs=(2, 1), quantized_inputs=(1, 2)),
    "BATCH_MATMUL": OpRule(),
    "ADD": OpRule(), "SUB": OpRule(), "MUL": OpRule(), "DIV": OpRule(int16=False),
    "SQUARED_DIFFERENCE": OpRule(int16=False),
    "MEAN": OpRule(quantized_inputs=(0,)), "SUM": OpRule(quantized_inputs=(0,)),
    "REDUCE_PROD": OpRule(quantized_inputs=(0,)),
    "SOFTMAX": OpRule(fixed_output={"int8": (1 / 256, -128), "uint8": (1 / 256, 0), "int16": (1 / 32768, 0)}),
    "LOGISTIC": OpRule(fixed_output={"int8": (1 / 256, -128), "uint8": (1 / 256, 0), "int16": (1 / 32768, 0)}),
    "TANH": OpRule(fixed_output={"int8": (1 / 128, 0), "uint8": (1 / 128, 128), "int16": (1 / 32768, 0)}),
    "LOG_SOFTMAX": OpRule(fixed_output={"int8": (16 / 256, 127), "uint8": (16 / 256, 255)}, int16=False),
    "HARD_SWISH": OpRule(int16=False), "RELU": OpRule(), "RELU6": OpRule(), "RELU_N1_TO_1": OpRule(),
    "LEAKY_RELU": OpRule(), "PRELU": OpRule(int16=False), "ELU": OpRule(int16=False),
    "ABS": OpRule(), "RSQRT": OpRule(),
    "QUANTIZE": OpRule(), "DEQUANTIZE": OpRule(),
    # data movement: the output keeps the input's parameters
    "RESHAPE": _SAME, "SQUEEZE": _SAME, "EXPAND_DIMS": _SAME, "MAX_POOL_2D": _SAME,
    "AVERAGE_POOL_2D": _SAME, "TRANSPOSE": _SAME, "PAD": _SAME, "PADV2": OpRule(shared=True, quantized_inputs=(0, 2)),
    "MIRROR_PAD": _SAME, "SLICE": _SAME, "STRIDED_SLICE": _SAME, "GATHER": _SAME,
    "SPACE_TO_BATCH_ND": _SAME, "BATCH_TO_SPACE_ND": _SAME, "DEPTH_TO_SPACE": _SAME,
    "SPACE_TO_DEPTH": _SAME, "RESIZE_BILINEAR": _SAME, "RESIZE_NEAREST_NEIGHBOR": _SAME,
    "SPLIT": OpRule(same_as_input=True, quantized_inputs=(1,)), "SPLIT_V": _SAME, "UNPACK": _SAME,
    "REVERSE_V2": _SAME,
    "REDUCE_MAX": _SAME, "REDUCE_MIN": _SAME, "BROADCAST_TO": _SAME,
    "CONCATENATION": OpRule(shared=True), "PACK": OpRule(shared=True),
    "MAXIMUM": OpRule(shared=True), "MINIMUM": OpRule(shared=True),
}

# Operators that never carry quantized data (shape arithmetic); left as they are.
PASSTHROUGH = frozenset({"SHAPE", "FILL", "ZEROS_LIKE", "CAST", "ARG_MAX", "ARG_MIN"})

# Ops whose float weights the dynamic-range mode quantizes (hybrid kernels).
HYBRID = {"CONV_2D": {1: 0}, "DEPTHWISE_CONV_2D": {1: 3}, "FULLY_CONNECTED": {1: 0},
          "BATCH_MATMUL": {1: None}}
