"""Reading .tflite files into :class:`~quantcore.schema.model.Model`."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from quantcore.errors import InputError, ModelFormatError

from . import _flatbuf
from .model import (Buffer, Metadata, Model, Operator, OperatorCode, QuantizationParameters,
                    SignatureDef, Subgraph, Tensor, TensorMap)
from .validate import DEFAULT_MEMORY_BUDGET, validate_model


def load_bytes(data: bytes | bytearray | memoryview | str | os.PathLike) -> bytes:
    """Model bytes from bytes or a path. A missing/unreadable file raises InputError."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        try:
            with open(data, "rb") as fh:
                return fh.read()
        except OSError as e:
            raise InputError(f"cannot read model file {os.fspath(data)!r}: {e.strerror}") from None
    raise InputError(f"model must be bytes or a path, not {type(data).__name__}")


def read_model(data: bytes | str | os.PathLike, *, validate: bool = True,
               memory_budget: int = DEFAULT_MEMORY_BUDGET, micro: bool = False) -> Model:
    """Parse and validate a .tflite model.

    Every offset, vector length and alignment is checked while decoding
    (``_flatbuf.Decoder``); with ``validate`` the model is then checked for
    consistency (:func:`~quantcore.schema.validate.validate_model`): indices in range,
    buffer sizes equal to shape x itemsize, quantization parameter lengths,
    topological order, subgraph references without cycles, and declared tensor sizes
    within ``memory_budget`` bytes. Any failure raises ``ModelFormatError`` naming the
    path into the model. ``micro`` applies TFLite Micro's looser quantization checks.
    """
    raw = load_bytes(data)
    root = _flatbuf.decode(raw)
    model = _to_model(root, raw)
    if validate:
        validate_model(model, memory_budget=memory_budget, micro=micro)
    return model


def _ints(v: Any) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def _opt_ints(v: Any) -> list[int] | None:
    return None if v is None else [int(x) for x in v]


def _arr(v: Any, dtype: Any) -> np.ndarray | None:
    return None if v is None else np.asarray(v, dtype=dtype)


def _quant(d: dict | None) -> QuantizationParameters | None:
    if d is None:
        return None
    return QuantizationParameters(
        scale=_arr(d["scale"], np.float32), zero_point=_arr(d["zero_point"], np.int64),
        min=_arr(d["min"], np.float32), max=_arr(d["max"], np.float32),
        quantized_dimension=int(d["quantized_dimension"]),
        details_type=int(d["details_type"]), details=d["details"])


def _tensor(d: dict) -> Tensor:
    return Tensor(
        shape=_ints(d["shape"]), type=int(d["type"]), buffer=int(d["buffer"]),
        name=d["name"] or "", quantization=_quant(d["quantization"]),
        is_variable=bool(d["is_variable"]), sparsity=d["sparsity"],
        shape_signature=_opt_ints(d["shape_signature"]), has_rank=bool(d["has_rank"]),
        variant_tensors=d["variant_tensors"], external_buffer=int(d["external_buffer"]))


def _operator(d: dict, raw: bytes, path: str) -> Operator:
    custom_options = d["custom_options"]
    large_offset, large_size = int(d["large_custom_options_offset"]), int(d["large_custom_options_size"])
    if large_offset > 1:
        # Custom options stored after the FlatBuffer (files over 2 GiB): load them,
        # as for buffers, so that the writer can put them back inline.
        if large_offset + large_size > len(raw):
            raise ModelFormatError(f"custom options at offset {large_offset} + size {large_size} "
                                   f"are past the end of the {len(raw)}-byte file",
                                   f"{path}.large_custom_options_offset")
        if custom_options is None:
            custom_options = memoryview(raw)[large_offset:large_offset + large_size]
        large_offset = large_size = 0
    return Operator(
        opcode_index=int(d["opcode_index"]), inputs=_ints(d["inputs"]), outputs=_ints(d["outputs"]),
        builtin_options_type=int(d["builtin_options_type"]), builtin_options=d["builtin_options"],
        custom_options=custom_options, custom_options_format=int(d["custom_options_format"]),
        mutating_variable_inputs=None if d["mutating_variable_inputs"] is None
        else [bool(x) for x in bytes(d["mutating_variable_inputs"])],
        intermediates=_opt_ints(d["intermediates"]),
        large_custom_options_offset=large_offset,
        large_custom_options_size=large_size,
        builtin_options_2_type=int(d["builtin_options_2_type"]),
        builtin_options_2=d["builtin_options_2"],
        debug_metadata_index=int(d["debug_metadata_index"]))


def _buffer(d: dict, raw: bytes, i: int) -> Buffer:
    offset, size = int(d["offset"]), int(d["size"])
    if offset > 1 and d["data"] is None:
        # Buffers stored after the FlatBuffer (files over 2 GiB, schema 3c).
        if offset + size > len(raw):
            raise ModelFormatError(f"data at offset {offset} + size {size} is past the end of "
                                   f"the {len(raw)}-byte file", f"buffers[{i}]")
        return Buffer(data=memoryview(raw)[offset:offset + size])
    # offset/size mean nothing once the data is inline (LiteRT reads ``data`` first);
    # the writer never writes them, so they read back as 0.
    return Buffer(data=d["data"])


def _to_model(root: dict, raw: bytes) -> Model:
    # LiteRT's InterpreterBuilder refuses a model without these vectors.
    if root["buffers"] is None:
        raise ModelFormatError("the model has no buffers vector", "buffers")
    for s, sg in enumerate(root["subgraphs"] or []):
        if sg["tensors"] is None:
            raise ModelFormatError("the subgraph has no tensors vector", f"subgraphs[{s}].tensors")
    subgraphs = [Subgraph(tensors=[_tensor(t) for t in sg["tensors"] or []],
                          inputs=_ints(sg["inputs"]), outputs=_ints(sg["outputs"]),
                          operators=[_operator(o, raw, f"subgraphs[{s}].operators[{k}]")
                                     for k, o in enumerate(sg["operators"] or [])],
                          name=sg["name"], debug_metadata_index=int(sg["debug_metadata_index"]))
                 for s, sg in enumerate(root["subgraphs"] or [])]
    return Model(
        version=int(root["version"]),
        operator_codes=[OperatorCode(deprecated_builtin_code=int(c["deprecated_builtin_code"]),
                                     custom_code=c["custom_code"], version=int(c["version"]),
                                     builtin_code=int(c["builtin_code"]))
                        for c in root["operator_codes"] or []],
        subgraphs=subgraphs,
        description=root["description"],
        buffers=[_buffer(b, raw, i) for i, b in enumerate(root["buffers"] or [])],
        metadata_buffer=_opt_ints(root["metadata_buffer"]),
        metadata=None if root["metadata"] is None else
        [Metadata(name=m["name"], buffer=int(m["buffer"])) for m in root["metadata"]],
        signature_defs=None if root["signature_defs"] is None else
        [SignatureDef(inputs=[TensorMap(m["name"], int(m["tensor_index"])) for m in s["inputs"] or []],
                      outputs=[TensorMap(m["name"], int(m["tensor_index"])) for m in s["outputs"] or []],
                      signature_key=s["signature_key"], subgraph_index=int(s["subgraph_index"]))
         for s in root["signature_defs"]],
        external_buffer_groups=root["external_buffer_groups"],
        external_buffers=root["external_buffers"],
    )
