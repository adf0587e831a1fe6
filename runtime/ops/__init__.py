"""Kernels, one TFLite builtin per module, and the explicit registry.

``KERNELS`` maps a builtin operator name to the module that implements it (each
module has ``prepare(ctx) -> Params`` and ``eval(params, *inputs) -> list``).
Several operators can share a module when TFLite shares the kernel (the module
then reads ``ctx.op_name``). Modules are imported on first use.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from quantcore.errors import UnsupportedOpError

KERNELS: dict[str, str] = {
    # convolution and matrix products
    "CONV_2D": "conv_2d",
    "DEPTHWISE_CONV_2D": "depthwise_conv_2d",
    "TRANSPOSE_CONV": "transpose_conv",
    "FULLY_CONNECTED": "fully_connected",
    "BATCH_MATMUL": "batch_matmul",
    # elementwise binary
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "DIV": "div",
    "SQUARED_DIFFERENCE": "squared_difference",
    "MAXIMUM": "maximum_minimum",
    "MINIMUM": "maximum_minimum",
    # pooling and reductions
    "AVERAGE_POOL_2D": "pooling",
    "MAX_POOL_2D": "pooling",
    "MEAN": "reduce",
    "SUM": "reduce",
    "REDUCE_MAX": "reduce",
    "REDUCE_MIN": "reduce",
    "REDUCE_PROD": "reduce",
    # activations
    "SOFTMAX": "softmax",
    "LOG_SOFTMAX": "log_softmax",
    "LOGISTIC": "logistic",
    "TANH": "tanh",
    "HARD_SWISH": "hard_swish",
    "RELU": "relu",
    "RELU6": "relu",
    "RELU_N1_TO_1": "relu",
    "RELU_0_TO_1": "relu",
    "LEAKY_RELU": "leaky_relu",
    "PRELU": "prelu",
    "ELU": "elu",
    # elementwise unary
    "EXP": "unary",
    "SQRT": "unary",
    "RSQRT": "unary",
    "ABS": "unary",
    "NEG": "unary",
    # quantization
    "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize",
    "FAKE_QUANT": "fake_quant",
    "DENSIFY": "densify",
    # data movement and shapes
    "CONCATENATION": "concatenation",
    "PAD": "pad",
    "PADV2": "pad",
    "MIRROR_PAD": "mirror_pad",
    "RESHAPE": "reshape",
    "SQUEEZE": "reshape",
    "EXPAND_DIMS": "reshape",
    "TRANSPOSE": "transpose",
    "STRIDED_SLICE": "strided_slice",
    "SLICE": "slice",
    "SPLIT": "split",
    "SPLIT_V": "split",
    "PACK": "pack",
    "UNPACK": "unpack",
    "SHAPE": "shape",
    "GATHER": "gather",
    "SPACE_TO_BATCH_ND": "space_to_batch_nd",
    "BATCH_TO_SPACE_ND": "batch_to_space_nd",
    "DEPTH_TO_SPACE": "depth_to_space",
    "SPACE_TO_DEPTH": "space_to_depth",
    "RESIZE_BILINEAR": "resize_bilinear",
    "RESIZE_NEAREST_NEIGHBOR": "resize_nearest_neighbor",
    "ARG_MAX": "arg_min_max",
    "ARG_MIN": "arg_min_max",
    "CAST": "cast",
    "FILL": "fill",
    "ZEROS_LIKE": "zeros_like",
    "BROADCAST_TO": "broadcast_to",
    # control flow and state (several subgraphs; see Interpreter.invoke_subgraph)
    "WHILE": "while_",
    "IF": "if_",
    "CALL_ONCE": "call_once",
    "VAR_HANDLE": "resource_variables",
    "READ_VARIABLE": "resource_variables",
    "ASSIGN_VARIABLE": "resource_variables",
    # recurrent
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "unidirectional_sequence_lstm",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "bidirectional_sequence_lstm",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "unidirectional_sequence_rnn",
    "RNN": "rnn",
    "SVDF": "svdf",
    "REVERSE_V2": "reverse_v2",   # Bidirectional Keras LSTMs (reversed backward sequence)
    # comparisons and logic (WHILE loop conditions)
    "LESS": "comparisons",
    "LESS_EQUAL": "comparisons",
    "GREATER": "comparisons",
    "GREATER_EQUAL": "comparisons",
    "EQUAL": "comparisons",
    "NOT_EQUAL": "comparisons",
    "LOGICAL_AND": "logical",
    "LOGICAL_OR": "logical",
    "LOGICAL_NOT": "logical",
}

_loaded: dict[str, ModuleType] = {}


def _module(name: str) -> ModuleType | None:
    mod = KERNELS.get(name)
    if mod is None:
        return None
    if mod not in _loaded:
        try:
            _loaded[mod] = importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{mod}":
                raise
            return None
    return _loaded[mod]


def supported_ops() -> list[str]:
    """Names of the builtin operators whose kernel module is present."""
    return sorted(name for name in KERNELS if _module(name) is not None)


def get_kernel(name: str, version: int | None = None, path: str = "") -> ModuleType:
    """The kernel module for a builtin operator, or UnsupportedOpError listing what exists."""
    mod = _module(name)
    if mod is None:
        raise UnsupportedOpError(name, version, supported=supported_ops(), path=path)
    return mod
