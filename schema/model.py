"""quantcore's in-memory form of a .tflite model.

Plain, editable dataclasses that mirror the tables of LiteRT's ``schema.fbs`` with
the same field names (``Model``, ``SubGraph`` as :class:`Subgraph`, ``Tensor``,
``Operator``, ``OperatorCode``, ``Buffer``, ``QuantizationParameters``,
``SignatureDef``, ``TensorMap``, ``Metadata``). Tables that only carry options
(``Conv2DOptions``, ``SparsityParameters``, ...) stay plain dicts keyed by the
schema's field names, so every field survives a read/write round trip even when
quantcore does not interpret it.

Constant data is exposed as NumPy arrays viewing the file's bytes where possible
(:meth:`Model.tensor_data`); replace ``Buffer.data`` to edit it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantcore.errors import ModelFormatError

from . import _schema_desc as desc


def _int_enum(name: str) -> type[enum.IntEnum]:
    return enum.IntEnum(name, desc.ENUMS[name][1])


TensorType = _int_enum("TensorType")
BuiltinOperator = _int_enum("BuiltinOperator")
ActivationFunctionType = _int_enum("ActivationFunctionType")
Padding = _int_enum("Padding")

# NumPy storage dtype of each TensorType. INT4/UINT4/INT2 are stored packed
# (two or four values per byte, low nibble first) and unpacked by tensor_data.
_NP_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "BOOL": np.bool_, "INT16": np.int16, "COMPLEX64": np.complex64,
    "INT8": np.int8, "FLOAT64": np.float64, "COMPLEX128": np.complex128, "UINT64": np.uint64,
    "UINT32": np.uint32, "UINT16": np.uint16, "BFLOAT16": np.uint16,
    "RESOURCE": np.int32, "VARIANT": np.int32,
    # One byte each; NumPy has no float8, so their raw bits are exposed as uint8.
    "FLOAT8_E4M3FN": np.uint8, "FLOAT8_E5M2": np.uint8,
}
_STORAGE_ONLY = ("BFLOAT16", "RESOURCE", "VARIANT", "FLOAT8_E4M3FN", "FLOAT8_E5M2")
_PACKED_BITS = {"INT4": 4, "UINT4": 4, "INT2": 2}


def numpy_dtype(tensor_type: int) -> np.dtype:
    """NumPy dtype of a TensorType value (INT4/UINT4/INT2 unpack to int8/uint8).

    STRING has no fixed-size dtype; it maps to ``object`` (arrays of ``bytes``).
    """
    name = type_name(tensor_type)
    if name in ("INT4", "INT2"):
        return np.dtype(np.int8)
    if name == "UINT4":
        return np.dtype(np.uint8)
    if name == "STRING":
        return np.dtype(object)
    if name not in _NP_DTYPES:
        raise ModelFormatError(f"tensor type {name} has no NumPy equivalent")
    return np.dtype(_NP_DTYPES[name])


def tensor_type_of(dtype: Any) -> int:
    """TensorType value of a NumPy dtype (``np.int8`` -> ``TensorType.INT8``)."""
    dt = np.dtype(dtype)
    for name, np_type in _NP_DTYPES.items():
        if name in _STORAGE_ONLY:
            continue
        if np.dtype(np_type) == dt:
            return int(TensorType[name])
    if dt == np.dtype(object) or dt.kind in ("S", "U"):
        return int(TensorType.STRING)
    raise ModelFormatError(f"dtype {dt} has no TFLite tensor type")


def type_name(tensor_type: int) -> str:
    try:
        return TensorType(tensor_type).name
    except ValueError:
        raise ModelFormatError(f"unknown tensor type {tensor_type}") from None


def packed_nbytes(tensor_type: int, num_elements: int) -> int | None:
    """Bytes a dense constant of this type and size occupies, or None for STRING."""
    name = type_name(tensor_type)
    if name == "STRING":
        return None
    if name in _PACKED_BITS:
        per_byte = 8 // _PACKED_BITS[name]
        return (num_elements + per_byte - 1) // per_byte
    return num_elements * numpy_dtype(tensor_type).itemsize


@dataclass
class QuantizationParameters:
    """Affine quantization: ``real = scale * (q - zero_point)`` (docs/quantization.md eq. 1).

    ``scale`` and ``zero_point`` have length 1 (per tensor) or the size of dimension
    ``quantized_dimension`` (per channel). ``min``/``max`` are the float ranges the
    converter recorded, when present. ``details_type``/``details`` carry the
    ``QuantizationDetails`` union (custom, blockwise) untouched.
    """
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    quantized_dimension: int = 0
    details_type: int = 0
    details: dict | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and len(self.scale) > 1

    def is_empty(self) -> bool:
        """True when no scale is present (the tensor is not affinely quantized)."""
        return self.scale is None or len(self.scale) == 0


@dataclass
class Tensor:
    shape: list[int] = field(default_factory=list)
    type: int = 0
    buffer: int = 0
    name: str = ""
    quantization: QuantizationParameters | None = None
    is_variable: bool = False
    sparsity: dict | None = None
    shape_signature: list[int] | None = None
    has_rank: bool = False
    variant_tensors: list | None = None
    external_buffer: int = 0

    @property
    def dtype(self) -> np.dtype:
        return numpy_dtype(self.type)

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def qparams(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale float32, zero_point int64) arrays, or None when not quantized."""
        q = self.quantization
        if q is None or q.is_empty():
            return None
        zp = q.zero_point if q.zero_point is not None else np.zeros(len(q.scale), np.int64)
        return np.asarray(q.scale, np.float32), np.asarray(zp, np.int64)


@dataclass
class OperatorCode:
    deprecated_builtin_code: int = 0
    custom_code: str | None = None
    version: int = 1
    builtin_code: int = 0

    @property
    def code(self) -> int:
        """The effective builtin code: max of the two fields (schema_utils.cc GetBuiltinCode)."""
        return max(int(self.builtin_code), int(self.deprecated_builtin_code))

    @property
    def name(self) -> str:
        try:
            name = BuiltinOperator(self.code).name
        except ValueError:
            return f"UNKNOWN_{self.code}"
        if name == "CUSTOM" and self.custom_code:
            return f"CUSTOM({self.custom_code})"
        return name


@dataclass
class Operator:
    opcode_index: int = 0
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    builtin_options_type: int = 0
    builtin_options: dict | None = None
    custom_options: bytes | memoryview | None = None
    custom_options_format: int = 0
    mutating_variable_inputs: list[bool] | None = None
    intermediates: list[int] | None = None
    large_custom_options_offset: int = 0
    large_custom_options_size: int = 0
    builtin_options_2_type: int = 0
    builtin_options_2: dict | None = None
    debug_metadata_index: int = -1

    @property
    def options_name(self) -> str | None:
        """Name of the builtin options table (``"Conv2DOptions"``), or None."""
        if not self.builtin_options_type:
            return None
        members = desc.UNIONS["BuiltinOptions"]
        t = self.builtin_options_type
        return members[t] if t < len(members) else None

    @property
    def options(self) -> dict:
        """Builtin options (either union) as a dict, defaults filled in; {} when none.

        Vectors come back as Python lists (``squeeze_dims``, ``new_shape``)."""
        out: dict = {}
        for utype, value, union in ((self.builtin_options_type, self.builtin_options, "BuiltinOptions"),
                                    (self.builtin_options_2_type, self.builtin_options_2, "BuiltinOptions2")):
            if not utype or value is None:
                continue
            members = desc.UNIONS[union]
            if utype < len(members):
                for row in desc.TABLES[members[utype]]:
                    if not row[5]:
                        out[row[0]] = row[4]
            out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                        for k, v in value.items() if v is not None})
        return out


@dataclass
class Subgraph:
    tensors: list[Tensor] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)
    name: str | None = None
    debug_metadata_index: int = -1


@dataclass
class Buffer:
    """Constant bytes. ``data`` is None or empty for tensors without constant data.

    ``offset``/``size`` are used by files over 2 GiB whose buffers follow the
    FlatBuffer; on read their bytes are loaded into ``data`` and both reset to 0.
    """
    data: bytes | memoryview | None = None
    offset: int = 0
    size: int = 0

    def __len__(self) -> int:
        return 0 if self.data is None else len(self.data)


@dataclass
class Metadata:
    name: str | None = None
    buffer: int = 0


@dataclass
class TensorMap:
    name: str | None = None
    tensor_index: int = 0


@dataclass
class SignatureDef:
    inputs: list[TensorMap] = field(default_factory=list)
    outputs: list[TensorMap] = field(default_factory=list)
    signature_key: str | None = None
    subgraph_index: int = 0


@dataclass
class Model:
    version: int = 3
    operator_codes: list[OperatorCode] = field(default_factory=list)
    subgraphs: list[Subgraph] = field(default_factory=list)
    description: str | None = None
    buffers: list[Buffer] = field(default_factory=list)
    metadata_buffer: list[int] | None = None
    metadata: list[Metadata] | None = None
    signature_defs: list[SignatureDef] | None = None
    external_buffer_groups: list | None = None
    external_buffers: list | None = None

    # -- convenience -------------------------------------------------------------
    def op_name(self, op: Operator) -> str:
        return self.operator_codes[op.opcode_index].name

    def op_code(self, op: Operator) -> int:
        return self.operator_codes[op.opcode_index].code

    def tensor_data(self, subgraph: int, tensor: int) -> np.ndarray | None:
        """The constant value of a tensor as a NumPy array (read-only view where
        possible), or None when the tensor has no data. INT4/INT2 are unpacked
        (low nibble first, sign-extended); STRING gives an object array of bytes; a
        sparse constant gives its stored values, 1-D."""
        t = self.subgraphs[subgraph].tensors[tensor]
        buf = self.buffers[t.buffer] if t.buffer < len(self.buffers) else None
        if buf is None or buf.data is None or len(buf.data) == 0:
            return None
        where = f"subgraphs[{subgraph}].tensors[{tensor}]"
        if t.sparsity is not None:
            # A sparse constant stores only its non-zero values (1-D); DENSIFY or the
            # kernel that reads it rebuilds the dense tensor from the sparsity metadata.
            item = packed_nbytes(t.type, 1) or 1
            return decode_tensor_bytes(buf.data, t.type, [len(buf.data) // item], where)
        return decode_tensor_bytes(buf.data, t.type, t.shape, where)

    def metadata_dict(self) -> dict[str, bytes]:
        """Metadata entries as {name: bytes}, e.g. ``min_runtime_version``."""
        out = {}
        for m in self.metadata or []:
            b = self.buffers[m.buffer].data if m.buffer < len(self.buffers) else None
            out[m.name or ""] = bytes(b) if b is not None else b""
        return out


def decode_tensor_bytes(data: Any, tensor_type: int, shape: list[int], path: str = "") -> np.ndarray:
    """Interpret raw little-endian constant bytes as an array of ``shape``."""
    name = type_name(tensor_type)
    n = 1
    for d in shape:
        n *= int(d)
    if name == "STRING":
        return _decode_strings(bytes(data), shape, path)
    if name in _PACKED_BITS:
        bits = _PACKED_BITS[name]
        raw = np.frombuffer(data, np.uint8)
        per = 8 // bits
        vals = np.stack([(raw >> (bits * i)) & ((1 << bits) - 1) for i in range(per)], axis=1).reshape(-1)[:n]
        if name.startswith("INT"):
            vals = vals.astype(np.int8)
            vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals).astype(np.int8)
        return vals.reshape(shape)
    dt = np.dtype(_NP_DTYPES[name]).newbyteorder("<")
    expected = n * dt.itemsize
    if len(data) != expected:
        raise ModelFormatError(f"buffer has {len(data)} bytes, shape {list(shape)} of {name} "
                               f"needs {expected}", path)
    return np.frombuffer(data, dt, count=n).reshape(shape)


def _decode_strings(raw: bytes, shape: list[int], path: str) -> np.ndarray:
    """TFLite string tensor layout: int32 count N, N+1 int32 offsets, then bytes."""
    if len(raw) < 4:
        raise ModelFormatError("string buffer shorter than its header", path)
    count = int(np.frombuffer(raw, "<i4", 1)[0])
    if count < 0 or 4 * (count + 2) > len(raw):
        raise ModelFormatError(f"string buffer declares {count} strings in {len(raw)} bytes", path)
    offs = np.frombuffer(raw, "<i4", count + 1, 4).astype(np.int64)
    if np.any(np.diff(offs) < 0) or offs[0] < 4 * (count + 2) or offs[-1] > len(raw):
        raise ModelFormatError("string offsets out of order or out of range", path)
    out = np.empty(count, dtype=object)
    for i in range(count):
        out[i] = raw[offs[i]:offs[i + 1]]
    n = 1
    for d in shape:
        n *= int(d)
    if n != count:
        raise ModelFormatError(f"string buffer holds {count} strings, shape {list(shape)} needs {n}", path)
    return out.reshape(shape)


def encode_strings(values: Any) -> bytes:
    """Inverse of the string layout above."""
    items = [v.encode() if isinstance(v, str) else bytes(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    header = 4 * (len(items) + 2)
    offs = [header]
    for it in items:
        offs.append(offs[-1] + len(it))
    return np.array([len(items)] + offs, "<i4").tobytes() + b"".join(items)
