#!/usr/bin/env python3
"""Generate the malformed-model regression corpus in ``tests/fixtures/malformed/``.

Every file starts from one small valid int8 model built with quantcore's
:class:`~quantcore.schema.builder.ModelBuilder` (``base_valid.tflite``: CONV_2D with
per-channel weights, MAX_POOL_2D, a signature and metadata) and breaks one rule of
``shared/ROBUSTNESS.md``, either by editing the :class:`Model` and writing it with
quantcore's writer (which does not validate) or by patching bytes of the written
file. ``expected.json`` maps each file to what ``read_model`` must raise:
``ModelFormatError`` whose message contains ``message`` and whose ``path`` equals
``path`` (when not null); ``why`` says which rule or advisory the file exercises.
The valid starting points are listed as ``{"valid": true}``.
``tests/test_malformed.py`` checks every entry, and that this script still produces
exactly the files on disk.

Usage::

    python scripts/make_malformed.py [--out tests/fixtures/malformed] [--check]

The output is deterministic: running it twice gives the same bytes.
"""
from __future__ import annotations

import argparse
import copy
import json
import struct
import sys
from pathlib import Path
from typing import Callable

import flatbuffers
import numpy as np

from quantcore.schema import Buffer, BuiltinOperator, Model, Tensor, TensorType, write_model
from quantcore.schema import _flatbuf
from quantcore.schema.writer import _to_dict
from quantcore.schema.builder import ModelBuilder, make_options

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "malformed"

NAME_MARKER = "conv_input_NAME_MARKER"


# ---------------------------------------------------------------------------
# The valid starting point
# ---------------------------------------------------------------------------
def base_model() -> Model:
    """x int8 [1,8,8,3] -> CONV_2D (per-channel int8 weights) -> MAX_POOL_2D -> out."""
    rng = np.random.default_rng(0)
    b = ModelBuilder("quantcore malformed-corpus base")
    x = b.add_input(NAME_MARKER, [1, 8, 8, 3], np.int8, scale=0.05, zero_point=-3)
    w_scales = np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    w = b.add_constant("w", rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
                       scale=w_scales, zero_point=0, quantized_dimension=0)
    bias = b.add_constant("b", rng.integers(-100, 100, 4).astype(np.int32),
                          scale=0.05 * w_scales, zero_point=0)
    y = b.add_tensor("conv_out", [1, 8, 8, 4], np.int8, scale=0.1, zero_point=5)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   fused_activation_function="RELU")
    z = b.add_tensor("pool_out", [1, 4, 4, 4], np.int8, scale=0.1, zero_point=5)
    b.add_operator("MAX_POOL_2D", [y], [z], padding="VALID", stride_w=2, stride_h=2,
                   filter_width=2, filter_height=2)
    b.mark_outputs(z)
    b.add_signature()
    b.add_metadata("min_runtime_version", b"1.14.0".ljust(16, b"\0"))
    return b.build()


def control_flow_model(cond: int, body: int, inner_body: int | None = None) -> Model:
    """Subgraph 0 runs WHILE(cond, body) on an int32 counter; subgraph 1 is the
    condition (counter < 10), subgraph 2 the body (counter + 1). ``inner_body`` adds a
    WHILE inside subgraph 2 whose body is that subgraph (to build call cycles)."""
    b = ModelBuilder("while")
    i = b.add_input("i", [1], np.int32)
    o = b.add_tensor("o", [1], np.int32)
    b.add_operator("WHILE", [i], [o], cond_subgraph_index=cond, body_subgraph_index=body)
    b.mark_outputs(o)
    b.new_subgraph("cond")
    ci = b.add_input("ci", [1], np.int32)
    limit = b.add_constant("limit", np.array([10], np.int32))
    co = b.add_tensor("co", [1], np.bool_)
    b.add_operator("LESS", [ci, limit], [co])
    b.mark_outputs(co)
    b.new_subgraph("body")
    bi = b.add_input("bi", [1], np.int32)
    one = b.add_constant("one", np.array([1], np.int32))
    bo = b.add_tensor("bo", [1], np.int32)
    b.add_operator("ADD", [bi, one], [bo])
    if inner_body is not None:
        bo2 = b.add_tensor("bo2", [1], np.int32)
        b.add_operator("WHILE", [bo], [bo2], cond_subgraph_index=1, body_subgraph_index=inner_body)
        bo = bo2
    b.mark_outputs(bo)
    return b.build()


# ---------------------------------------------------------------------------
# Locating structures in a written file
# ---------------------------------------------------------------------------
class _Locator(_flatbuf.Decoder):
    """A Decoder that records where each table and vector/string of a valid file is."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.tables: dict[str, int] = {}
        self.vectors: dict[str, int] = {}

    def table(self, pos, tname, path, depth):
        self.tables.setdefault(path, pos)
        return super().table(pos, tname, path, depth)

    def _vector_header(self, target, elem_size, path):
        self.vectors.setdefault(path, target)
        return super()._vector_header(target, elem_size, path)


def locate(data: bytes) -> _Locator:
    loc = _Locator(data)
    loc.root()
    return loc


def patch(data: bytes, pos: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, pos, value)
    return bytes(out)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
def _edit(fn: Callable[[Model], None]) -> bytes:
    m = copy.deepcopy(base_model())
    fn(m)
    return write_model(m)


def _edit_raw(fn: Callable[[Model], None]) -> bytes:
    """Like _edit, for models write_model refuses (the encoder writes what it gets)."""
    m = copy.deepcopy(base_model())
    fn(m)
    return _flatbuf.encode(_to_dict(m))


def field_position(data: bytes, table_pos: int, slot: int) -> int:
    """Byte position of field ``slot`` of the table at ``table_pos``."""
    vt = table_pos - struct.unpack_from("<i", data, table_pos)[0]
    return table_pos + struct.unpack_from("<H", data, vt + 4 + 2 * slot)[0]


def object_budget_file(n_subgraphs: int = 1000, n_tensors: int = 1000) -> bytes:
    """8 kB that would decode into a million tables: a vector of offsets to one
    SubGraph whose tensors vector holds offsets to one Tensor."""
    b = flatbuffers.Builder(1024)
    name = b.CreateString("t")
    b.StartObject(11)
    b.PrependUOffsetTRelativeSlot(3, name, 0)
    tensor = b.EndObject()
    b.StartVector(4, n_tensors, 4)
    for _ in range(n_tensors):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartVector(4, 0, 4)
    ops = b.EndVector()
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.PrependUOffsetTRelativeSlot(3, ops, 0)
    subgraph = b.EndObject()
    b.StartVector(4, n_subgraphs, 4)
    for _ in range(n_subgraphs):
        b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    b.StartVector(4, 0, 4)
    buffers = b.EndVector()
    b.StartObject(10)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"TFL3")
    return bytes(b.Output())


def cases() -> dict[str, tuple[bytes, dict]]:
    """file name -> (bytes, expectation). The expectation of a malformed file is
    ``{"message": substring, "path": path or None}``; of the valid base ``{"valid": true}``."""
    base = write_model(base_model())
    loc = locate(base)
    n = len(base)
    out: dict[str, tuple[bytes, dict]] = {"base_valid.tflite": (base, {"valid": True})}

    def add(name: str, data: bytes, message: str, path: str | None = None, why: str = "") -> None:
        out[f"{name}.tflite"] = (data, {"message": message, "path": path, "why": why})

    # -- container and FlatBuffer structure --------------------------------------------
    add("empty", b"", "file is 0 bytes", "", "empty file")
    add("four_bytes", base[:4], "file is 4 bytes", "", "shorter than root offset + identifier")
    add("root_past_end_8_bytes", b"\x18\x00\x00\x00TFL3", "past the end", "root",
        "tensorflow#115308: the 8-byte file whose root offset points past the end")
    for cut in (12, 64, n // 4, n // 2, 3 * n // 4, n - 1):
        add(f"truncated_at_{cut}", base[:cut], "-byte buffer", None,
            f"the valid base model cut to {cut} of {n} bytes")
    add("wrong_identifier", base[:4] + b"TFL2" + base[8:], "file identifier", "",
        "bytes 4..8 must be TFL3")
    add("root_offset_past_end", patch(base, 0, "<I", n + 100), "past the end", "root",
        "root uoffset beyond the file")
    add("root_offset_zero", patch(base, 0, "<I", 0), "zero offset", "root", "root uoffset 0")
    add("root_offset_misaligned", patch(base, 0, "<I", struct.unpack_from("<I", base)[0] + 2),
        "not 4-byte aligned", "", "the root table at an address not 4-byte aligned")
    root_pos = loc.tables[""]
    add("vtable_offset_out_of_range", patch(base, root_pos, "<i", root_pos - (n + 64)),
        "Model vtable", "", "the root table's soffset sends its vtable past the end")
    add("vtable_offset_negative_position", patch(base, root_pos, "<i", root_pos + 64),
        "Model vtable", "", "soffset sends the vtable before the start of the file")
    vt = root_pos - struct.unpack_from("<i", base, root_pos)[0]
    add("vtable_odd_size", patch(base, vt, "<H", 7), "vtable size 7 is invalid", "",
        "vtable sizes are even")
    add("vtable_field_outside_table", patch(base, vt + 4 + 2 * 2, "<H", 0x7ff0),
        "outside the", "subgraphs", "the vtable puts Model.subgraphs beyond the table body")
    tensors_vec = loc.vectors["subgraphs[0].tensors"]
    add("vector_length_overflow", patch(base, tensors_vec, "<I", 0x7FFFFFFF), "runs past the end",
        "subgraphs[0].tensors", "a vector claims 2^31-1 elements")
    add("vector_length_max_u32", patch(base, loc.vectors["buffers[1].data"], "<I", 0xFFFFFFFF),
        "runs past the end", "buffers[1].data", "a byte vector claims 2^32-1 bytes")
    name_pos = loc.vectors["subgraphs[0].tensors[0].name"]
    name_len = struct.unpack_from("<I", base, name_pos)[0]
    assert base[name_pos + 4:name_pos + 4 + name_len] == NAME_MARKER.encode()
    tensors_field = field_position(base, loc.tables["subgraphs[0]"], 0)
    add("vector_offset_misaligned",
        patch(base, tensors_field, "<I", struct.unpack_from("<I", base, tensors_field)[0] + 2),
        "not 4-byte aligned", "subgraphs[0].tensors", "a uoffset to a vector length at an odd address")
    add("string_without_nul", patch(base, name_pos + 4 + name_len, "<B", ord("A")),
        "not NUL-terminated", "subgraphs[0].tensors[0].name", "strings end with a NUL byte")
    add("string_not_utf8", patch(base, name_pos + 4, "<B", 0xFF), "not valid UTF-8",
        "subgraphs[0].tensors[0].name", "LiteRT's Python API fails on it with UnicodeDecodeError")
    op_type_field = field_position(base, loc.tables["subgraphs[0].operators[0]"], 3)
    add("options_unknown_union_member", patch(base, op_type_field, "<B", 250),
        "unknown BuiltinOptions member 250", "subgraphs[0].operators[0].builtin_options_type",
        "a union type this schema does not know")
    add("string_length_past_end", patch(base, name_pos, "<I", n), "runs past the end",
        "subgraphs[0].tensors[0].name", "a string longer than the file")
    add("object_budget", object_budget_file(), "object budget", None,
        "a DAG of shared offsets: 8 kB that would decode to a million tables")

    # -- indices -----------------------------------------------------------------------
    def sg0(m: Model):
        return m.subgraphs[0]

    add("tensor_buffer_index_out_of_range",
        _edit(lambda m: setattr(sg0(m).tensors[1], "buffer", 999)),
        "index 999 out of range", "subgraphs[0].tensors[1].buffer")
    add("operator_input_index_out_of_range",
        _edit(lambda m: sg0(m).operators[0].inputs.__setitem__(1, 999)),
        "index 999 out of range", "subgraphs[0].operators[0].inputs[1]")
    add("operator_input_negative", _edit(lambda m: sg0(m).operators[0].inputs.__setitem__(0, -7)),
        "index -7 out of range", "subgraphs[0].operators[0].inputs[0]")
    add("operator_output_minus_one",
        _edit(lambda m: sg0(m).operators[1].outputs.__setitem__(0, -1)),
        "index -1 out of range", "subgraphs[0].operators[1].outputs[0]",
        "CVE-2020-15211: -1 is never valid for an output")
    add("graph_input_minus_one", _edit(lambda m: sg0(m).inputs.__setitem__(0, -1)),
        "index -1 out of range", "subgraphs[0].inputs[0]", "CVE-2020-15211")
    add("graph_output_minus_one", _edit(lambda m: sg0(m).outputs.__setitem__(0, -1)),
        "index -1 out of range", "subgraphs[0].outputs[0]", "CVE-2020-15211")
    add("opcode_index_out_of_range", _edit(lambda m: setattr(sg0(m).operators[1], "opcode_index", 7)),
        "index 7 out of range", "subgraphs[0].operators[1].opcode_index")
    add("builtin_code_out_of_range",
        _edit(lambda m: setattr(m.operator_codes[1], "builtin_code", 5000)),
        "builtin code 5000 is not a known operator", "operator_codes[1].builtin_code",
        "LiteRT: Op builtin_code out of range")

    def placeholder(m: Model):
        m.operator_codes[1].builtin_code, m.operator_codes[1].deprecated_builtin_code = 0, 127

    add("builtin_code_placeholder", _edit(placeholder), "builtin code 127 is not a known operator",
        "operator_codes[1].builtin_code", "127 only says: read builtin_code")

    def custom_without_code(m: Model):
        m.operator_codes[1].builtin_code = m.operator_codes[1].deprecated_builtin_code = 32

    add("custom_without_code", _edit(custom_without_code), "CUSTOM operator without a custom_code",
        "operator_codes[1].custom_code")
    add("operator_version_zero", _edit(lambda m: setattr(m.operator_codes[0], "version", 0)),
        "operator version 0", "operator_codes[0].version")

    def wrong_options(m: Model):
        conv, pool = sg0(m).operators
        conv.builtin_options_type, conv.builtin_options = pool.builtin_options_type, pool.builtin_options

    add("options_type_mismatch", _edit(wrong_options), "CONV_2D takes Conv2DOptions, not Pool2DOptions",
        "subgraphs[0].operators[0].builtin_options_type",
        "LiteRT would ignore the table and use defaults")
    add("metadata_buffer_out_of_range", _edit(lambda m: setattr(m.metadata[0], "buffer", 50)),
        "index 50 out of range", "metadata[0].buffer")
    add("signature_tensor_out_of_range",
        _edit(lambda m: setattr(m.signature_defs[0].outputs[0], "tensor_index", 999)),
        "index 999 out of range", "signature_defs[0].outputs[0].tensor_index",
        "a signature naming a tensor that does not exist")
    add("signature_subgraph_out_of_range",
        _edit(lambda m: setattr(m.signature_defs[0], "subgraph_index", 3)),
        "index 3 out of range", "signature_defs[0].subgraph_index")
    add("signature_without_key", _edit(lambda m: setattr(m.signature_defs[0], "signature_key", None)),
        "signature_key", "signature_defs[0].signature_key", "LiteRT refuses it too")

    # -- shapes and data ---------------------------------------------------------------
    def shrink_weights(m: Model):
        m.buffers[sg0(m).tensors[1].buffer] = Buffer(data=bytes(100))

    def empty_weights(m: Model):
        m.buffers[sg0(m).tensors[1].buffer] = Buffer(data=b"")

    add("constant_with_empty_data_vector", _edit(empty_weights), "has 0 bytes",
        "subgraphs[0].tensors[1]", "a present but empty data vector is a 0-byte constant to LiteRT")
    add("buffer_zero_not_sentinel", _edit(lambda m: setattr(m.buffers[0], "data", b"data")),
        "buffer 0 must be the empty sentinel", "buffers[0].data")
    add("buffer_size_mismatch", _edit(shrink_weights), "has 100 bytes", "subgraphs[0].tensors[1]",
        "constant bytes != shape x itemsize")
    add("negative_dimension", _edit(lambda m: sg0(m).tensors[3].shape.__setitem__(1, -4)),
        "dimension 1 is -4", "subgraphs[0].tensors[3].shape")
    add("element_count_overflows_int32",
        _edit(lambda m: setattr(sg0(m).tensors[3], "shape", [1, 65536, 65536, 4])),
        "more than 2147483647", "subgraphs[0].tensors[3].shape",
        "CVE-2022-23558: prod(shape) past int32")

    def huge_float64(m: Model):
        t = sg0(m).tensors[3]
        t.shape, t.type, t.quantization = [1, 32768, 32768, 1], int(TensorType.FLOAT64), None

    add("huge_shape_memory_budget", _edit(huge_float64), "memory budget", "subgraphs[0].tensors[3]",
        "8 GiB declared by one tensor")

    def many_big(m: Model):
        for t in sg0(m).tensors[3:5]:
            # int32, 3 GiB each: each under the 4 GiB budget, not together
            t.shape, t.type = [1, 16384, 16384, 3], int(TensorType.INT32)

    add("total_memory_budget", _edit(many_big), "memory budget", "subgraphs[0].tensors[4]",
        "tensors that fit one by one but not together")

    def bad_strings(m: Model):
        b = ModelBuilder()
        b.model = m
        b.subgraph = sg0(m)
        t = b.add_constant("s", np.array([b"ab", b"cd"], dtype=object))
        raw = bytearray(m.buffers[sg0(m).tensors[t].buffer].data)
        struct.pack_into("<i", raw, 8, 100)  # second offset past the end
        m.buffers[sg0(m).tensors[t].buffer] = Buffer(data=bytes(raw))

    add("string_buffer_bad_offsets", _edit(bad_strings), "string offsets", "subgraphs[0].tensors[5]")

    def variable_with_data(m: Model):
        sg0(m).tensors[2].is_variable = True

    add("variable_with_data", _edit(variable_with_data), "variable tensor has constant data",
        "subgraphs[0].tensors[2].is_variable", "LiteRT refuses it too")

    def bad_sparsity(m: Model):
        sg0(m).tensors[1].sparsity = {"traversal_order": np.array([0, 1, 2, 7], np.int32),
                                      "block_map": None,
                                      "dim_metadata": [{"format": 0, "dense_size": d}
                                                       for d in (4, 3, 3, 3)]}

    add("sparsity_bad_traversal_order", _edit(bad_sparsity), "not a permutation",
        "subgraphs[0].tensors[1].sparsity.traversal_order")
    add("unknown_tensor_type", _edit(lambda m: setattr(sg0(m).tensors[3], "type", 99)),
        "unknown tensor type 99", "subgraphs[0].tensors[3].type")
    add("schema_version_2", _edit(lambda m: setattr(m, "version", 2)), "schema version 2", "version")
    add("no_buffers_vector", _edit_raw(lambda m: setattr(m, "buffers", None)),
        "no buffers vector", "buffers", "LiteRT: No buffers in the model")
    add("no_subgraphs", _edit(lambda m: setattr(m, "subgraphs", [])), "no subgraphs", "subgraphs")

    def large_custom_options(m: Model):
        op = sg0(m).operators[0]
        op.large_custom_options_offset, op.large_custom_options_size = 1 << 40, 16

    add("large_custom_options_out_of_range", _edit(large_custom_options), "past the end",
        "subgraphs[0].operators[0].large_custom_options_offset")

    # -- quantization ------------------------------------------------------------------
    def w_quant(m: Model):
        return sg0(m).tensors[1].quantization

    def per_channel_count(m: Model):
        q = w_quant(m)
        q.scale, q.zero_point = q.scale[:3], q.zero_point[:3]

    add("per_channel_scale_count_mismatch", _edit(per_channel_count),
        "3 per-channel scales, but dimension 0 has 4 channels",
        "subgraphs[0].tensors[1].quantization.scale")
    add("quantized_dimension_out_of_range", _edit(lambda m: setattr(w_quant(m), "quantized_dimension", 4)),
        "quantized_dimension 4 out of range", "subgraphs[0].tensors[1].quantization.quantized_dimension")
    add("quantized_dimension_negative",
        _edit(lambda m: setattr(sg0(m).tensors[0].quantization, "quantized_dimension", -1)),
        "quantized_dimension -1 out of range", "subgraphs[0].tensors[0].quantization.quantized_dimension",
        "LiteRT checks it for per-tensor parameters too")
    add("scale_zero_point_length_mismatch",
        _edit(lambda m: setattr(w_quant(m), "zero_point", w_quant(m).zero_point[:2])),
        "4 scales but 2 zero points", "subgraphs[0].tensors[1].quantization")
    add("scale_without_zero_point", _edit(lambda m: setattr(w_quant(m), "zero_point", None)),
        "no zero_point", "subgraphs[0].tensors[1].quantization.zero_point", "LiteRT refuses it too")
    add("int8_conv_without_quantization",
        _edit(lambda m: setattr(sg0(m).tensors[0], "quantization", None)),
        "has no quantization parameters", "subgraphs[0].operators[0].inputs[0]", "CVE-2021-37682")

    # -- operator options --------------------------------------------------------------
    add("conv_stride_zero",
        _edit(lambda m: sg0(m).operators[0].builtin_options.__setitem__("stride_w", 0)),
        "stride_w is 0", "subgraphs[0].operators[0].builtin_options.stride_w",
        "CVE-2021-29602 class: divisors > 0")
    add("conv_dilation_negative",
        _edit(lambda m: sg0(m).operators[0].builtin_options.__setitem__("dilation_h_factor", -1)),
        "dilation_h_factor is -1", "subgraphs[0].operators[0].builtin_options.dilation_h_factor")
    add("options_enum_out_of_range",
        _edit(lambda m: sg0(m).operators[0].builtin_options.__setitem__("fused_activation_function", 42)),
        "fused_activation_function is 42, not a ActivationFunctionType",
        "subgraphs[0].operators[0].builtin_options.fused_activation_function",
        "LiteRT refuses some unknown enum values at load (FullyConnected weights_format)")
    add("pool_filter_zero",
        _edit(lambda m: sg0(m).operators[1].builtin_options.__setitem__("filter_width", 0)),
        "filter_width is 0", "subgraphs[0].operators[1].builtin_options.filter_width")

    # -- graph -------------------------------------------------------------------------
    def swap_ops(m: Model):
        ops = sg0(m).operators
        ops[0], ops[1] = ops[1], ops[0]

    add("read_before_produced", _edit(swap_ops), "is read before any operator produces it",
        "subgraphs[0].operators[0].inputs[0]", "operators out of topological order")

    def produced_twice(m: Model):
        sg0(m).operators[1].outputs = [3]
        sg0(m).operators[1].inputs = [0]
        sg0(m).outputs = [3]

    add("tensor_produced_twice", _edit(produced_twice), "tensor 3 is produced twice",
        "subgraphs[0].operators[1].outputs[0]")
    add("output_is_graph_input", _edit(lambda m: setattr(sg0(m).operators[1], "outputs", [0])),
        "is a subgraph input", "subgraphs[0].operators[1].outputs[0]")
    add("output_is_constant", _edit(lambda m: setattr(sg0(m).operators[1], "outputs", [1])),
        "is constant", "subgraphs[0].operators[1].outputs[0]")
    def never_produced(m: Model):
        sg0(m).tensors.append(Tensor(shape=[1], type=int(TensorType.INT8), name="orphan"))
        sg0(m).outputs.append(5)

    add("graph_output_never_produced", _edit(never_produced), "output tensor 5 is never produced",
        "subgraphs[0].outputs[1]")

    # -- control flow ------------------------------------------------------------------
    valid_while = write_model(control_flow_model(1, 2))
    out["while_valid.tflite"] = (valid_while, {"valid": True})
    add("while_body_calls_itself", write_model(control_flow_model(1, 2, inner_body=2)),
        "cyclic control flow", None, "CVE-2021-29591: subgraph 2's WHILE runs subgraph 2")
    add("while_body_calls_main", write_model(control_flow_model(1, 2, inner_body=0)),
        "cyclic control flow", None, "CVE-2021-29591: subgraph 2 runs subgraph 0, which runs 2")
    add("while_cond_is_itself", write_model(control_flow_model(0, 2)), "cyclic control flow", None,
        "subgraph 0's WHILE uses subgraph 0 as its condition")
    add("while_body_out_of_range", write_model(control_flow_model(1, 9)), "index 9 out of range",
        "subgraphs[0].operators[0].builtin_options.body_subgraph_index")

    def if_out_of_range(m: Model):
        op = m.subgraphs[0].operators[0]
        code = m.operator_codes[op.opcode_index]
        code.builtin_code = code.deprecated_builtin_code = int(BuiltinOperator.IF)
        op.builtin_options_type, op.builtin_options = make_options(
            "IF", then_subgraph_index=1, else_subgraph_index=-2)

    m = control_flow_model(1, 2)
    if_out_of_range(m)
    add("if_else_out_of_range", write_model(m), "index -2 out of range",
        "subgraphs[0].operators[0].builtin_options.else_subgraph_index")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="only compare with the files on disk; exit 1 if they differ")
    args = ap.parse_args(argv)
    built = cases()
    expected = {name: exp for name, (_, exp) in sorted(built.items())}
    expected_json = json.dumps(expected, indent=1, sort_keys=True) + "\n"
    if args.check:
        stale = [name for name, (data, _) in built.items()
                 if not (args.out / name).is_file() or (args.out / name).read_bytes() != data]
        if (args.out / "expected.json").read_text() != expected_json:
            stale.append("expected.json")
        for name in stale:
            print(f"stale: {name}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.tflite"):
        if old.name not in built:
            old.unlink()
    for name, (data, _) in built.items():
        (args.out / name).write_bytes(data)
    (args.out / "expected.json").write_text(expected_json)
    print(f"wrote {len(built)} files and expected.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
