"""A schema-driven, validating FlatBuffer decoder and encoder.

The Python ``flatbuffers`` package has no verifier: its accessors read through any
offset without checking it. :class:`Decoder` reads a buffer using the table
descriptions in ``_schema_desc`` and checks, before every read, what the C++
FlatBuffers verifier checks (bounds, alignment of offsets and scalars, vtable
sizes, NUL-terminated strings, nesting depth, a budget on the number of objects), so
a crafted buffer raises :class:`~quantcore.errors.ModelFormatError` with the path of
the field at fault instead of yielding wrong data.

Decoded tables are plain dicts ``{field: value}`` holding only non-deprecated fields
(absent fields take the schema default; absent strings, vectors and tables are
``None``). Scalar vectors are NumPy arrays viewing the input buffer; ``[ubyte]``
vectors are ``memoryview`` slices of it. A union is two keys, ``<name>_type`` (the
member index) and ``<name>`` (the member table as a dict, or ``None``).

:func:`encode` does the reverse with ``flatbuffers.Builder``.
"""
from __future__ import annotations

import struct
from typing import Any

import flatbuffers
import numpy as np

from quantcore.errors import ModelFormatError

from . import _schema_desc as desc

SCALAR_FMT = {
    "bool": "<?", "int8": "<b", "uint8": "<B", "int16": "<h", "uint16": "<H",
    "int32": "<i", "uint32": "<I", "int64": "<q", "uint64": "<Q",
    "float32": "<f", "float64": "<d",
}
SCALAR_SIZE = {k: struct.calcsize(v) for k, v in SCALAR_FMT.items()}
SCALAR_NP = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
    "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
    "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}

MAX_DEPTH = 64            # flatbuffers::Verifier default max_depth
MAX_OBJECTS = 1_000_000   # flatbuffers::Verifier default max_tables
MAX_BUFFER_SIZE = 2**31 - 1


def scalar_type(kind: str, elem: str) -> str:
    """The scalar storage type of a scalar or enum field."""
    if kind in ("enum", "vector_enum"):
        return desc.ENUMS[elem][0]
    if kind == "union_type":
        return "uint8"
    return elem


class Decoder:
    """Validating reader of one FlatBuffer held in ``data`` (bytes, not copied)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        self.objects = 0
        # Every table and every offset in a vector occupies at least 4 bytes of its
        # own unless tables are shared; a shared DAG (a vector of offsets to one
        # table that itself holds a long vector) could otherwise make a few kB
        # decode into millions of objects. Bounding the count by the size keeps
        # decoding linear in the input.
        self.max_objects = min(MAX_OBJECTS, self.n // 2 + 1024)

    # -- primitive checked reads -------------------------------------------------
    def _check(self, pos: int, size: int, align: int, path: str, what: str) -> None:
        if pos < 0 or pos + size > self.n:
            raise ModelFormatError(
                f"{what} at byte {pos} (+{size}) is outside the {self.n}-byte buffer", path)
        if align > 1 and pos % align:
            raise ModelFormatError(f"{what} at byte {pos} is not {align}-byte aligned", path)

    def _scalar(self, pos: int, typ: str, path: str, what: str = "scalar") -> Any:
        size = SCALAR_SIZE[typ]
        self._check(pos, size, size, path, what)
        return struct.unpack_from(SCALAR_FMT[typ], self.data, pos)[0]

    def _deref(self, pos: int, path: str) -> int:
        off = self._scalar(pos, "uint32", path, "offset")
        if off == 0:
            raise ModelFormatError(f"zero offset at byte {pos}", path)
        target = pos + off
        if target >= self.n:
            raise ModelFormatError(f"offset at byte {pos} points to {target}, past the end "
                                   f"of the {self.n}-byte buffer", path)
        return target

    def _count(self, k: int, path: str) -> None:
        self.objects += k
        if self.objects > self.max_objects:
            raise ModelFormatError(f"more than {self.max_objects} tables and offsets in a "
                                   f"{self.n}-byte buffer: objects are shared or the buffer is "
                                   "adversarial (object budget)", path)

    # -- composite reads ---------------------------------------------------------
    def root(self, table: str = desc.ROOT_TYPE, identifier: str | None = desc.FILE_IDENTIFIER) -> dict:
        if self.n < 8:
            raise ModelFormatError(f"file is {self.n} bytes, too short to be a FlatBuffer")
        if self.n > MAX_BUFFER_SIZE:
            raise ModelFormatError(f"file is {self.n} bytes, over the 2 GiB FlatBuffer limit")
        if identifier is not None:
            got = bytes(self.data[4:8])
            if got != identifier.encode():
                raise ModelFormatError(
                    f"file identifier is {got!r}, expected {identifier!r}: not a .tflite model")
        return self.table(self._deref(0, "root"), table, "", 0)

    def table(self, pos: int, tname: str, path: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise ModelFormatError(f"tables nested deeper than {MAX_DEPTH}", path)
        self._count(1, path)
        self._check(pos, 4, 4, path, f"{tname} table")
        vt = pos - struct.unpack_from("<i", self.data, pos)[0]
        self._check(vt, 4, 2, path, f"{tname} vtable")
        vt_size, obj_size = struct.unpack_from("<HH", self.data, vt)
        if vt_size < 4 or vt_size % 2:
            raise ModelFormatError(f"{tname} vtable size {vt_size} is invalid", path)
        self._check(vt, vt_size, 2, path, f"{tname} vtable")
        self._check(pos, max(obj_size, 4), 1, path, f"{tname} table body")
        out: dict = {}
        union_types: dict = {}
        for name, slot, kind, elem, default, deprecated, align in desc.TABLES[tname]:
            entry = 4 + 2 * slot
            voff = struct.unpack_from("<H", self.data, vt + entry)[0] if entry + 2 <= vt_size else 0
            fpath = f"{path}.{name}" if path else name
            if voff and voff >= obj_size:
                raise ModelFormatError(f"field offset {voff} is outside the {obj_size}-byte table", fpath)
            fpos = pos + voff
            if kind in ("scalar", "enum", "union_type"):
                typ = scalar_type(kind, elem)
                if voff:
                    if voff + SCALAR_SIZE[typ] > obj_size:
                        raise ModelFormatError("scalar field runs past the end of its table", fpath)
                    value = self._scalar(fpos, typ, fpath)
                else:
                    value = default
                if kind == "union_type":
                    union_types[name[: -len("_type")]] = value
                if not deprecated:
                    out[name] = value
                continue
            if not voff:
                if not deprecated:
                    out[name] = None
                continue
            if voff + 4 > obj_size:
                raise ModelFormatError("offset field runs past the end of its table", fpath)
            target = self._deref(fpos, fpath)
            if kind == "union":
                value = self._union(target, elem, union_types.get(name, 0), fpath, depth)
            else:
                value = self._value(target, kind, elem, align, fpath, depth)
            if not deprecated:
                out[name] = value
        # A union type without its table means "none" to LiteRT (the accessor
        # returns null) and to the encoder, which writes no type without a table.
        for uname, utype in union_types.items():
            if utype and out.get(uname) is None and f"{uname}_type" in out:
                out[f"{uname}_type"] = 0
        return out

    def _union(self, target: int, union: str, type_index: int, path: str, depth: int) -> Any:
        members = desc.UNIONS[union]
        if type_index == 0:
            return None
        if type_index >= len(members) or members[type_index] in desc.DEPRECATED_TABLES:
            # Unknown member (a newer schema): keep nothing; the writer refuses it.
            return {"__unknown_union_member__": type_index}
        return self.table(target, members[type_index], path, depth + 1)

    def _vector_header(self, target: int, elem_size: int, path: str) -> tuple[int, int]:
        length = self._scalar(target, "uint32", path, "vector length")
        start = target + 4
        if start + length * elem_size > self.n:
            raise ModelFormatError(f"vector of {length} x {elem_size} bytes at byte {start} "
                                   f"runs past the end of the {self.n}-byte buffer", path)
        return start, length

    def _value(self, target: int, kind: str, elem: str, align: int, path: str, depth: int) -> Any:
        if kind == "table":
            return self.table(target, elem, path, depth + 1)
        if kind == "string":
            return self._string(target, path)
        if kind in ("vector_scalar", "vector_enum"):
            typ = scalar_type(kind, elem)
            start, length = self._vector_header(target, SCALAR_SIZE[typ], path)
            if typ == "uint8":
                return memoryview(self.data)[start:start + length]
            return np.frombuffer(self.data, dtype=np.dtype(SCALAR_NP[typ]).newbyteorder("<"),
                                 count=length, offset=start)
        start, length = self._vector_header(target, 4, path)
        self._count(length, path)
        items = []
        for i in range(length):
            epath = f"{path}[{i}]"
            etarget = self._deref(start + 4 * i, epath)
            if kind == "vector_string":
                items.append(self._string(etarget, epath))
            else:
                items.append(self.table(etarget, elem, epath, depth + 1))
        return items

    def _string(self, target: int, path: str) -> str:
        start, length = self._vector_header(target, 1, path)
        if start + length >= self.n or self.data[start + length] != 0:
            raise ModelFormatError("string is not NUL-terminated", path)
        raw = bytes(self.data[start:start + length])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # LiteRT's Python API fails on such names too (UnicodeDecodeError).
            raise ModelFormatError(f"string is not valid UTF-8 (byte {e.start})", path) from None


def decode(data: bytes) -> dict:
    """Decode and validate a whole ``Model`` FlatBuffer into nested dicts."""
    return Decoder(data).root()


# ---------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------
_PREPEND_SLOT = {
    "bool": "PrependBoolSlot", "int8": "PrependInt8Slot", "uint8": "PrependUint8Slot",
    "int16": "PrependInt16Slot", "uint16": "PrependUint16Slot", "int32": "PrependInt32Slot",
    "uint32": "PrependUint32Slot", "int64": "PrependInt64Slot", "uint64": "PrependUint64Slot",
    "float32": "PrependFloat32Slot", "float64": "PrependFloat64Slot",
}


class Encoder:
    """Builds FlatBuffers from nested dicts shaped like :class:`Decoder` output."""

    def __init__(self, size_hint: int = 1024) -> None:
        self.b = flatbuffers.Builder(size_hint)

    def finish(self, root: dict, table: str = desc.ROOT_TYPE) -> bytes:
        off = self.table(root, table, "")
        self.b.Finish(off, file_identifier=desc.FILE_IDENTIFIER.encode())
        return bytes(self.b.Output())

    def _bytes_vector(self, data: Any, align: int) -> int:
        raw = bytes(data)
        self.b.StartVector(1, len(raw), max(align, 1))
        self.b.head -= len(raw)
        self.b.Bytes[self.b.head:self.b.head + len(raw)] = raw
        self.b.vectorNumElems = len(raw)
        return self.b.EndVector()

    def table(self, value: dict, tname: str, path: str) -> int:
        rows = desc.TABLES[tname]
        offsets: dict[str, int] = {}
        union_types = {}
        for name, slot, kind, elem, default, deprecated, align in rows:
            if kind == "union_type":
                union_types[name[: -len("_type")]] = int(value.get(name) or 0)
        for name, slot, kind, elem, default, deprecated, align in rows:
            if deprecated or kind in ("scalar", "enum", "union_type"):
                continue
            v = value.get(name)
            if v is None:
                continue
            fpath = f"{path}.{name}" if path else name
            if kind == "union":
                t = union_types.get(name, 0)
                members = desc.UNIONS[elem]
                if t == 0:
                    continue
                if t >= len(members) or (isinstance(v, dict) and "__unknown_union_member__" in v):
                    raise ModelFormatError(f"cannot write unknown {elem} member {t}", fpath)
                offsets[name] = self.table(v, members[t], fpath)
            elif kind == "table":
                offsets[name] = self.table(v, elem, fpath)
            elif kind == "string":
                offsets[name] = self.b.CreateString(v)
            elif kind in ("vector_scalar", "vector_enum"):
                typ = scalar_type(kind, elem)
                if typ == "uint8" or (typ == "bool" and not isinstance(v, np.ndarray)):
                    if typ == "bool":
                        v = np.asarray(v, dtype=np.bool_).view(np.uint8)
                    offsets[name] = self._bytes_vector(v if not isinstance(v, np.ndarray) else v.tobytes(), align)
                else:
                    arr = np.ascontiguousarray(np.asarray(v, dtype=SCALAR_NP[typ]).reshape(-1))
                    if typ == "bool":
                        arr = arr.view(np.uint8)
                    offsets[name] = self.b.CreateNumpyVector(arr)
            elif kind == "vector_string":
                items = [self.b.CreateString(s) for s in v]
                offsets[name] = self._offset_vector(items)
            elif kind == "vector_table":
                items = [self.table(item, elem, f"{fpath}[{i}]") for i, item in enumerate(v)]
                offsets[name] = self._offset_vector(items)
            else:  # pragma: no cover - generator only emits the kinds above
                raise ModelFormatError(f"unknown field kind {kind}", fpath)
        num_slots = max((r[1] for r in rows), default=-1) + 1
        self.b.StartObject(num_slots)
        # Largest scalars first keeps padding small (flatc does the same).
        for name, slot, kind, elem, default, deprecated, align in sorted(
                rows, key=lambda r: -SCALAR_SIZE.get(scalar_type(r[2], r[3]), 4)):
            if deprecated:
                continue
            if kind in ("scalar", "enum", "union_type"):
                typ = scalar_type(kind, elem)
                v = value.get(name, default)
                if v is None:
                    v = default
                if kind == "union_type":
                    v = union_types.get(name[: -len("_type")], 0)
                    if v and name[: -len("_type")] not in offsets:
                        v = 0
                getattr(self.b, _PREPEND_SLOT[typ])(slot, _cast(typ, v), _cast(typ, default))
            elif name in offsets:
                self.b.PrependUOffsetTRelativeSlot(slot, offsets[name], 0)
        return self.b.EndObject()

    def _offset_vector(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for off in reversed(items):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()


def _cast(typ: str, v: Any) -> Any:
    if typ == "bool":
        return bool(v)
    if typ.startswith("float"):
        return float(v)
    return int(v)


def encode(root: dict, size_hint: int = 1024) -> bytes:
    """Encode nested dicts (as :func:`decode` returns them) into a ``Model`` FlatBuffer."""
    return Encoder(size_hint).finish(root)
