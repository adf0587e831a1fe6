"""Building models from scratch: single-op test models, quantizer outputs.

Example::

    b = ModelBuilder()
    x = b.add_input("x", [1, 8, 8, 3], np.int8, scale=0.05, zero_point=-3)
    w = b.add_constant("w", weights_int8, scale=w_scales, zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", bias_int32, scale=0.05 * w_scales, zero_point=0)
    y = b.add_tensor("y", [1, 8, 8, 4], np.int8, scale=0.1, zero_point=5)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    data = b.to_bytes()
"""
from __future__ import annotations

from typing import Any

import numpy as np

from quantcore.errors import InputError

from . import _schema_desc as desc
from .model import (Buffer, BuiltinOperator, Metadata, Model, Operator, OperatorCode,
                    QuantizationParameters, SignatureDef, Subgraph, Tensor, TensorMap,
                    encode_strings, tensor_type_of)
from .writer import write_model

_OPTION_OVERRIDES = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_PROD": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions", "L2_NORMALIZATION": "L2NormOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "BidirectionalSequenceLSTMOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "LSTM": "LSTMOptions", "RNN": "RNNOptions", "SVDF": "SVDFOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "BIDIRECTIONAL_SEQUENCE_RNN": "BidirectionalSequenceRNNOptions",
    "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalizationOptions",
}
_OPTIONS_BY_KEY = {m[: -len("Options")].lower(): m
                   for m in desc.UNIONS["BuiltinOptions"][1:] if m.endswith("Options")}


def options_table_for(op_name: str) -> str | None:
    """Name of the BuiltinOptions table an operator uses (``"CONV_2D"`` -> ``"Conv2DOptions"``)."""
    if op_name in _OPTION_OVERRIDES:
        return _OPTION_OVERRIDES[op_name]
    return _OPTIONS_BY_KEY.get(op_name.replace("_", "").lower())


def _enum_value(table: str, field: str, value: Any) -> Any:
    """Allow enum members by name (``padding="SAME"``)."""
    if not isinstance(value, str):
        return value
    for row in desc.TABLES[table]:
        if row[0] == field and row[2] == "enum":
            return desc.ENUMS[row[3]][1][value]
    return value


def make_options(op_name: str, **fields: Any) -> tuple[int, dict | None]:
    """(builtin_options_type, options dict) for an operator; unknown fields raise InputError."""
    table = options_table_for(op_name)
    if table is None:
        if fields:
            raise InputError(f"{op_name} takes no builtin options, got {sorted(fields)}")
        return 0, None
    names = {r[0] for r in desc.TABLES[table] if not r[5]}
    unknown = set(fields) - names
    if unknown:
        raise InputError(f"{table} has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
    return (desc.UNIONS["BuiltinOptions"].index(table),
            {k: _enum_value(table, k, v) for k, v in fields.items()})


def quantization(scale=None, zero_point=None, quantized_dimension: int = 0,
                 min=None, max=None) -> QuantizationParameters | None:  # noqa: A002
    """QuantizationParameters from scalars or arrays (None when all are None)."""
    if scale is None and min is None and max is None:
        return None
    s = None if scale is None else np.atleast_1d(np.asarray(scale, np.float32))
    if zero_point is None and s is not None:
        zero_point = np.zeros(len(s), np.int64)
    z = None if zero_point is None else np.atleast_1d(np.asarray(zero_point, np.int64))
    if s is not None and z is not None and len(z) == 1 and len(s) > 1:
        z = np.repeat(z, len(s))
    return QuantizationParameters(
        scale=s, zero_point=z, quantized_dimension=int(quantized_dimension),
        min=None if min is None else np.atleast_1d(np.asarray(min, np.float32)),
        max=None if max is None else np.atleast_1d(np.asarray(max, np.float32)))


class ModelBuilder:
    """Incrementally builds a one-subgraph :class:`Model` (more subgraphs via ``new_subgraph``)."""

    def __init__(self, description: str = "quantcore") -> None:
        self.model = Model(version=3, description=description, buffers=[Buffer()])
        self._codes: dict[tuple[int, str | None, int], int] = {}
        self.subgraph = Subgraph()
        self.model.subgraphs.append(self.subgraph)

    def new_subgraph(self, name: str | None = None) -> int:
        """Start a new subgraph (for control flow); returns its index."""
        self.subgraph = Subgraph(name=name)
        self.model.subgraphs.append(self.subgraph)
        return len(self.model.subgraphs) - 1

    # -- tensors -------------------------------------------------------------------
    def add_tensor(self, name: str, shape, dtype, *, scale=None, zero_point=None,
                   quantized_dimension: int = 0, buffer: int = 0, is_variable: bool = False,
                   shape_signature=None, tensor_type: int | None = None) -> int:
        t = Tensor(shape=[int(d) for d in shape],
                   type=tensor_type if tensor_type is not None else tensor_type_of(dtype),
                   buffer=buffer, name=name,
                   quantization=quantization(scale, zero_point, quantized_dimension),
                   is_variable=is_variable,
                   shape_signature=None if shape_signature is None else [int(d) for d in shape_signature])
        self.subgraph.tensors.append(t)
        return len(self.subgraph.tensors) - 1

    def add_input(self, name: str, shape, dtype, **kw) -> int:
        idx = self.add_tensor(name, shape, dtype, **kw)
        self.subgraph.inputs.append(idx)
        return idx

    def add_buffer(self, data: bytes) -> int:
        self.model.buffers.append(Buffer(data=bytes(data)))
        return len(self.model.buffers) - 1

    def add_constant(self, name: str, value, dtype=None, *, tensor_type: int | None = None,
                     **kw) -> int:
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == object or arr.dtype.kind in ("S", "U"):
            raw = encode_strings(arr)
        else:
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        buf = self.add_buffer(raw)
        return self.add_tensor(name, arr.shape, arr.dtype, buffer=buf, tensor_type=tensor_type, **kw)

    def mark_outputs(self, *indices: int) -> None:
        self.subgraph.outputs.extend(int(i) for i in indices)

    # -- operators -----------------------------------------------------------------
    def opcode(self, op: str | int, version: int = 1, custom_code: str | None = None) -> int:
        code = int(BuiltinOperator[op]) if isinstance(op, str) else int(op)
        key = (code, custom_code, version)
        if key not in self._codes:
            self.model.operator_codes.append(OperatorCode(
                deprecated_builtin_code=min(code, 127), custom_code=custom_code,
                version=version, builtin_code=code))
            self._codes[key] = len(self.model.operator_codes) - 1
        return self._codes[key]

    def add_operator(self, op: str, inputs, outputs, *, version: int = 1,
                     intermediates=None, **options: Any) -> int:
        utype, opts = make_options(op, **options)
        if utype and opts is None:
            opts = {}
        o = Operator(opcode_index=self.opcode(op, version), inputs=[int(i) for i in inputs],
                     outputs=[int(i) for i in outputs], builtin_options_type=utype,
                     builtin_options=opts,
                     intermediates=None if intermediates is None else [int(i) for i in intermediates])
        self.subgraph.operators.append(o)
        return len(self.subgraph.operators) - 1

    def add_signature(self, key: str = "serving_default", subgraph: int = 0) -> None:
        sg = self.model.subgraphs[subgraph]
        sig = SignatureDef(
            inputs=[TensorMap(sg.tensors[i].name, i) for i in sg.inputs],
            outputs=[TensorMap(sg.tensors[i].name, i) for i in sg.outputs],
            signature_key=key, subgraph_index=subgraph)
        self.model.signature_defs = (self.model.signature_defs or []) + [sig]

    def add_metadata(self, name: str, data: bytes) -> None:
        buf = self.add_buffer(data)
        self.model.metadata = (self.model.metadata or []) + [Metadata(name=name, buffer=buf)]

    def build(self) -> Model:
        return self.model

    def to_bytes(self) -> bytes:
        return write_model(self.model)
