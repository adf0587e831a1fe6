"""Reading, validating and writing .tflite models (installed as ``quantcore.schema``).

``read_model`` turns bytes or a path into a :class:`Model` of plain dataclasses,
validating every offset and index first; ``write_model`` turns a ``Model`` back
into bytes with quantcore's own FlatBuffer writer, driven by LiteRT's schema.fbs.
"""
from .model import (ActivationFunctionType, Buffer, BuiltinOperator, Metadata, Model, Operator,
                    OperatorCode, Padding, QuantizationParameters, SignatureDef, Subgraph, Tensor,
                    TensorMap, TensorType, numpy_dtype, tensor_type_of)
from .reader import read_model
from .validate import DEFAULT_MEMORY_BUDGET, validate_model
from .writer import atomic_write, save_model, write_model

__all__ = [
    "ActivationFunctionType", "Buffer", "BuiltinOperator", "DEFAULT_MEMORY_BUDGET", "Metadata",
    "Model", "Operator", "OperatorCode", "Padding", "QuantizationParameters", "SignatureDef",
    "Subgraph", "Tensor", "TensorMap", "TensorType", "atomic_write", "numpy_dtype", "read_model",
    "save_model", "tensor_type_of", "validate_model", "write_model",
]
