"""Consistency checks on a decoded model (../shared/ROBUSTNESS.md).

The FlatBuffer decoder has already checked every offset; these checks cover what
makes a structurally valid buffer still unusable: indices out of range, constant
buffers whose size does not match their shape, quantization parameters of the
wrong length, operators out of topological order, subgraph references that form a
cycle, zero strides and block sizes, declared tensor sizes beyond a memory budget,
and what LiteRT's ``InterpreterBuilder::ParseQuantization`` and ``tflite::Verify``
refuse (schema version, string and sparse constant buffers, variables with data).
Each failure raises ``ModelFormatError`` with the path into the model.
"""
from __future__ import annotations

import math

import numpy as np

from quantcore.errors import ModelFormatError

from . import _schema_desc as desc
from .builder import options_table_for
from .model import BuiltinOperator, Model, Tensor, TensorType, packed_nbytes, type_name

DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes all tensors of a model may declare together
SCHEMA_VERSION = 3                  # TFLITE_SCHEMA_VERSION, the only one LiteRT loads
_INT32_MAX = 2**31 - 1

# Option fields that are divisors or counts and must be positive when present.
_POSITIVE_OPTION_FIELDS = ("stride_w", "stride_h", "stride_d", "dilation_w_factor",
                           "dilation_h_factor", "dilation_d_factor", "filter_width",
                           "filter_height", "block_size")

# Operators with integer arithmetic that needs scale and zero point on every
# int8/uint8/int16 input and output (CVE-2021-37682).
QUANTIZED_ARITHMETIC_OPS = frozenset(int(BuiltinOperator[n]) for n in (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB", "MUL",
    "DIV", "AVERAGE_POOL_2D", "SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH",
    "MEAN", "SUM", "QUANTIZE", "DEQUANTIZE", "SQUARED_DIFFERENCE", "LEAKY_RELU", "PRELU", "ELU",
    "BATCH_MATMUL", "RSQRT", "SQRT", "EXP", "L2_NORMALIZATION", "RESIZE_BILINEAR"))
# int16 is left to the kernels: LiteRT runs unquantized int16 ADD and MUL as plain
# integer arithmetic, while its 16x8 kernels check their own parameters.
_QUANT_TYPES = frozenset(int(TensorType[n]) for n in ("INT8", "UINT8"))

# 127 only marks "see builtin_code" in deprecated_builtin_code; it is no operator.
_BUILTIN_CODES = frozenset(int(v) for v in BuiltinOperator
                           if v.name != "PLACEHOLDER_FOR_GREATER_OP_CODES")

_ENUM_VALUES = {name: frozenset(members.values()) for name, (_t, members) in desc.ENUMS.items()}

# Options fields that name subgraphs (WHILE, IF, CALL_ONCE, CALL, STABLEHLO_*), taken
# from the schema so that new control-flow options are covered.
_SUBGRAPH_FIELDS = tuple(sorted({row[0] for rows in desc.TABLES.values() for row in rows
                                 if row[0] == "subgraph" or row[0].endswith("_subgraph_index")
                                 or row[0].endswith("_subgraph_indices")}))


def validate_model(model: Model, *, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                   micro: bool = False) -> None:
    """Raise ModelFormatError on the first inconsistency found; return None if none.

    ``micro``: accept a ``quantized_dimension`` outside the tensor's rank on a
    per-tensor quantization, as TFLite Micro does (LiteRT refuses it)."""
    nbuf = len(model.buffers)
    nsub = len(model.subgraphs)
    if model.version != SCHEMA_VERSION:
        raise ModelFormatError(f"schema version {model.version}, LiteRT loads only version "
                               f"{SCHEMA_VERSION}", "version")
    if nsub == 0:
        raise ModelFormatError("model has no subgraphs", "subgraphs")
    for i, code in enumerate(model.operator_codes):
        if code.version < 1:
            raise ModelFormatError(f"operator version {code.version} < 1", f"operator_codes[{i}].version")
        if code.code not in _BUILTIN_CODES:
            # LiteRT: "Op builtin_code out of range".
            raise ModelFormatError(f"builtin code {code.code} is not a known operator",
                                   f"operator_codes[{i}].builtin_code")
        if code.code == BuiltinOperator.CUSTOM and not code.custom_code:
            raise ModelFormatError("CUSTOM operator without a custom_code",
                                   f"operator_codes[{i}].custom_code")
    if nbuf and model.buffers[0].data is not None and len(model.buffers[0].data):
        raise ModelFormatError(f"buffer 0 must be the empty sentinel, it has "
                               f"{len(model.buffers[0].data)} bytes", "buffers[0].data")
    for i, m in enumerate(model.metadata or []):
        _index(m.buffer, nbuf, f"metadata[{i}].buffer", "buffers")
    for i, b in enumerate(model.metadata_buffer or []):
        _index(b, nbuf, f"metadata_buffer[{i}]", "buffers")
    calls: dict[int, set[int]] = {i: set() for i in range(nsub)}
    declared = [0]  # bytes declared by all tensors so far
    for s, sg in enumerate(model.subgraphs):
        _validate_subgraph(model, s, memory_budget, calls[s], declared, micro)
    _check_acyclic(calls)
    for i, sig in enumerate(model.signature_defs or []):
        p = f"signature_defs[{i}]"
        if sig.signature_key is None:
            raise ModelFormatError("signature def has no signature_key", f"{p}.signature_key")
        _index(sig.subgraph_index, nsub, f"{p}.subgraph_index", "subgraphs")
        nt = len(model.subgraphs[sig.subgraph_index].tensors)
        for kind in ("inputs", "outputs"):
            for j, tm in enumerate(getattr(sig, kind)):
                _index(tm.tensor_index, nt, f"{p}.{kind}[{j}].tensor_index",
                       f"tensors in subgraph {sig.subgraph_index}")


def _index(i: int, n: int, path: str, what: str) -> None:
    if not 0 <= i < n:
        raise ModelFormatError(f"index {i} out of range [0, {n}) of {what}", path)


def _validate_subgraph(model: Model, s: int, budget: int, calls: set[int],
                       declared: list[int], micro: bool = False) -> None:
    sg = model.subgraphs[s]
    sp = f"subgraphs[{s}]"
    nt = len(sg.tensors)
    nbuf = len(model.buffers)
    constant = [False] * nt
    for t, tensor in enumerate(sg.tensors):
        tp = f"{sp}.tensors[{t}]"
        _index(tensor.buffer, nbuf, f"{tp}.buffer", "buffers")
        try:
            type_name(tensor.type)
        except ModelFormatError as e:
            raise ModelFormatError(e.reason, f"{tp}.type") from None
        for d, dim in enumerate(tensor.shape):
            if dim < 0:
                raise ModelFormatError(f"dimension {d} is {dim}", f"{tp}.shape")
        n = math.prod(tensor.shape)
        if n > _INT32_MAX:
            # LiteRT counts elements in int32 (CheckedNumElements).
            raise ModelFormatError(f"shape {tensor.shape} has {n} elements, more than "
                                   f"{_INT32_MAX}", f"{tp}.shape")
        nbytes = packed_nbytes(tensor.type, n)
        if nbytes is not None:
            if nbytes > budget:
                raise ModelFormatError(f"declares {nbytes} bytes (shape {tensor.shape}), over the "
                                       f"memory budget of {budget} bytes", tp)
            declared[0] += nbytes
            if declared[0] > budget:
                raise ModelFormatError(f"the tensors up to this one declare {declared[0]} bytes, "
                                       f"over the memory budget of {budget} bytes", tp)
        data = model.buffers[tensor.buffer].data
        if tensor.buffer != 0 and data is not None:
            # Like LiteRT: a data vector, even an empty one, makes the tensor a
            # constant (buffer 0 is the empty sentinel, never data).
            constant[t] = True
            if tensor.is_variable:
                raise ModelFormatError(f"variable tensor has constant data (buffer {tensor.buffer})",
                                       f"{tp}.is_variable")
            if tensor.type == TensorType.STRING:
                _validate_strings(data, tensor, tp)
            elif tensor.sparsity is not None:
                _validate_sparse(data, tensor, tp)
            elif nbytes is not None and len(data) != nbytes:
                raise ModelFormatError(
                    f"buffer {tensor.buffer} has {len(data)} bytes, shape {tensor.shape} of "
                    f"{tensor.type_name} needs {nbytes}", tp)
        _validate_quant(tensor, tp, micro)
    for kind in ("inputs", "outputs"):
        for j, t in enumerate(getattr(sg, kind)):
            _index(t, nt, f"{sp}.{kind}[{j}]", f"the {nt} tensors")
    graph_inputs = set(sg.inputs)
    available = set(sg.inputs)
    available.update(t for t in range(nt) if constant[t] or sg.tensors[t].is_variable
                     or sg.tensors[t].type in (TensorType.RESOURCE, TensorType.VARIANT))
    produced: set[int] = set()
    ncodes = len(model.operator_codes)
    for o, op in enumerate(sg.operators):
        op_path = f"{sp}.operators[{o}]"
        _index(op.opcode_index, ncodes, f"{op_path}.opcode_index", "operator_codes")
        code = model.operator_codes[op.opcode_index].code
        for j, t in enumerate(op.inputs):
            if t == -1:
                continue  # optional input
            _index(t, nt, f"{op_path}.inputs[{j}]", f"the {nt} tensors")
            if t not in available:
                raise ModelFormatError(
                    f"tensor {t} ({sg.tensors[t].name!r}) is read before any operator produces it, "
                    "and is neither an input, a constant nor a variable", f"{op_path}.inputs[{j}]")
        for j, t in enumerate(op.intermediates or []):
            _index(t, nt, f"{op_path}.intermediates[{j}]", f"the {nt} tensors")
        for j, t in enumerate(op.outputs):
            # -1 (optional) is never valid for an output (CVE-2020-15211).
            _index(t, nt, f"{op_path}.outputs[{j}]", f"the {nt} tensors")
            if t in produced:
                raise ModelFormatError(f"tensor {t} is produced twice", f"{op_path}.outputs[{j}]")
            if constant[t]:
                raise ModelFormatError(f"tensor {t} is constant and cannot be an operator output",
                                       f"{op_path}.outputs[{j}]")
            if t in graph_inputs:
                raise ModelFormatError(f"tensor {t} is a subgraph input and cannot be an operator "
                                       "output", f"{op_path}.outputs[{j}]")
            if sg.tensors[t].is_variable:
                raise ModelFormatError(f"tensor {t} is a variable and cannot be an operator output",
                                       f"{op_path}.outputs[{j}]")
            produced.add(t)
            available.add(t)
        _validate_options_type(model, op, op_path)
        opts = op.options
        for name in _POSITIVE_OPTION_FIELDS:
            if name in opts and opts[name] <= 0:
                raise ModelFormatError(f"{name} is {opts[name]}, must be > 0",
                                       f"{op_path}.builtin_options.{name}")
        for name in _SUBGRAPH_FIELDS:
            value = opts.get(name)
            if value is None:
                continue
            indices = [value] if isinstance(value, (int, np.integer)) else list(value)
            for k, callee in enumerate(indices):
                fpath = f"{op_path}.builtin_options.{name}"
                _index(int(callee), len(model.subgraphs), fpath if len(indices) == 1 and
                       isinstance(value, (int, np.integer)) else f"{fpath}[{k}]", "subgraphs")
                calls.add(int(callee))
        if code in QUANTIZED_ARITHMETIC_OPS:
            for kind in ("inputs", "outputs"):
                for j, t in enumerate(getattr(op, kind)):
                    if t < 0:
                        continue
                    tensor = sg.tensors[t]
                    if tensor.type in _QUANT_TYPES and tensor.qparams() is None:
                        raise ModelFormatError(
                            f"{tensor.type_name} tensor {t} ({tensor.name!r}) of "
                            f"{model.operator_codes[op.opcode_index].name} has no quantization "
                            "parameters (scale, zero_point)", f"{op_path}.{kind}[{j}]")
    for j, t in enumerate(sg.outputs):
        if t not in available:
            raise ModelFormatError(f"output tensor {t} is never produced", f"{sp}.outputs[{j}]")


def _validate_options_type(model: Model, op, op_path: str) -> None:
    """The options union holds a known member, and the one the operator reads
    (LiteRT ignores a mismatched table and uses defaults; a kernel reading it
    anyway would compute something else)."""
    for union, utype, value, field in (
            ("BuiltinOptions", op.builtin_options_type, op.builtin_options, "builtin_options"),
            ("BuiltinOptions2", op.builtin_options_2_type, op.builtin_options_2, "builtin_options_2")):
        members = desc.UNIONS[union]
        if not utype:
            continue
        if utype >= len(members) or members[utype] in desc.DEPRECATED_TABLES or \
                (isinstance(value, dict) and "__unknown_union_member__" in value):
            raise ModelFormatError(f"unknown {union} member {utype}", f"{op_path}.{field}_type")
        for name, _slot, kind, elem, _default, deprecated, _align in desc.TABLES[members[utype]]:
            v = value.get(name) if isinstance(value, dict) else None
            if kind == "enum" and not deprecated and v is not None and v not in _ENUM_VALUES[elem]:
                # LiteRT refuses some ("Unhandled fully-connected weights format").
                raise ModelFormatError(f"{name} is {v}, not a {elem}", f"{op_path}.{field}.{name}")
        if union == "BuiltinOptions":
            expected = options_table_for(model.operator_codes[op.opcode_index].name)
            if expected is not None and members[utype] != expected:
                raise ModelFormatError(
                    f"{model.operator_codes[op.opcode_index].name} takes {expected}, not "
                    f"{members[utype]}", f"{op_path}.{field}_type")


def _validate_quant(tensor, tp: str, micro: bool = False) -> None:
    q = tensor.quantization
    if q is None:
        return
    qp = f"{tp}.quantization"
    ns = 0 if q.scale is None else len(q.scale)
    nz = 0 if q.zero_point is None else len(q.zero_point)
    if ns == 0:
        return  # no affine quantization (LiteRT ignores zero points without scales)
    # The checks of LiteRT's InterpreterBuilder::ParseQuantization.
    if q.zero_point is None:
        raise ModelFormatError(f"{ns} scales but no zero_point", f"{qp}.zero_point")
    if ns != nz:
        raise ModelFormatError(f"{ns} scales but {nz} zero points", qp)
    rank = len(tensor.shape)
    qd = q.quantized_dimension
    if qd < 0 or (rank and qd >= rank) or (ns > 1 and not rank):
        if micro and ns == 1:
            return  # TFLite Micro never checks quantized_dimension (micro_allocator.cc)
        hint = (" (LiteRT refuses it; TFLite Micro runs it: numerics='micro')"
                if ns == 1 else "")
        raise ModelFormatError(f"quantized_dimension {qd} out of range for rank {rank}{hint}",
                               f"{qp}.quantized_dimension")
    if ns > 1:
        dim = tensor.shape[qd]
        if ns != dim:
            raise ModelFormatError(f"{ns} per-channel scales, but dimension {q.quantized_dimension} "
                                   f"has {dim} channels", f"{qp}.scale")


def _validate_strings(data, tensor: Tensor, tp: str) -> None:
    """TFLite string buffer: int32 count N, N+1 int32 offsets (the first one is the
    header size, non-decreasing, the last one the buffer size), then the bytes
    (verifier.cc VerifyStringTensorBuffer, plus a count equal to the shape's)."""
    size = len(data)
    raw = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if size < 4:
        raise ModelFormatError(f"string buffer of {size} bytes has no header", tp)
    count = int(np.frombuffer(raw, "<u4", 1)[0])
    header = 4 * (count + 2)
    if header > size:
        raise ModelFormatError(f"string buffer declares {count} strings but has only {size} bytes",
                               tp)
    offsets = np.frombuffer(raw, "<u4", count + 1, 4).astype(np.int64)
    if offsets[0] != header or offsets[-1] != size or np.any(np.diff(offsets) < 0):
        raise ModelFormatError("string offsets must increase from the header size "
                               f"{header} to the buffer size {size}", tp)
    n = math.prod(tensor.shape)
    if count != n:
        raise ModelFormatError(f"string buffer holds {count} strings, shape {tensor.shape} "
                               f"needs {n}", tp)


def _index_values(union: dict | None) -> np.ndarray | None:
    """The values of a SparseIndexVector union member, or None."""
    if not isinstance(union, dict) or union.get("values") is None:
        return None
    return np.asarray(union["values"], dtype=np.int64)


def _validate_sparse(data, tensor: Tensor, tp: str) -> None:
    """Constant sparse tensor: the checks of verifier.cc VerifyAndCountSparseElements,
    then ``len(data) == stored elements x itemsize``."""
    sp = tensor.sparsity or {}
    path = f"{tp}.sparsity"
    order = sp.get("traversal_order")
    dims = sp.get("dim_metadata")
    if order is None or dims is None:
        raise ModelFormatError("traversal_order and dim_metadata are required", path)
    order = [int(x) for x in order]
    rank, total = len(tensor.shape), len(order)
    if total < rank or len(dims) != total:
        raise ModelFormatError(f"{total} traversal dims and {len(dims)} dim_metadata for rank "
                               f"{rank}", path)
    block_rank = total - rank
    block_map = [int(x) for x in sp.get("block_map")] if sp.get("block_map") is not None else []
    if len(block_map) != block_rank:
        raise ModelFormatError(f"block_map has {len(block_map)} entries, {block_rank} needed",
                               f"{path}.block_map")
    if sorted(order[:rank]) != list(range(rank)) or sorted(order[rank:]) != list(range(rank, total)):
        raise ModelFormatError(f"traversal_order {order} is not a permutation", f"{path}.traversal_order")
    expanded = [int(d) for d in tensor.shape] + [0] * block_rank
    for i in range(block_rank):
        size = int(dims[rank + i].get("dense_size", 0))
        if size <= 0 or not 0 <= block_map[i] < rank:
            raise ModelFormatError(f"block {i}: size {size}, block_map {block_map[i]}", path)
        expanded[order[rank + i]] = size
        expanded[block_map[i]] //= size
    count = 1
    for i, md in enumerate(dims):
        dpath = f"{path}.dim_metadata[{i}]"
        dim = expanded[order[i]]
        fmt = int(md.get("format", 0))
        if fmt == 0:  # DENSE
            if int(md.get("dense_size", 0)) != dim:
                raise ModelFormatError(f"dense_size {md.get('dense_size')} != dimension size {dim}",
                                       dpath)
            count *= dim
        elif fmt == 1:  # SPARSE_CSR
            seg = _index_values(md.get("array_segments"))
            idx = _index_values(md.get("array_indices"))
            if seg is None or idx is None:
                raise ModelFormatError("sparse dimension without array_segments/array_indices", dpath)
            if len(seg) != count + 1 or np.any(seg < 0) or np.any(np.diff(seg) < 0):
                raise ModelFormatError(f"array_segments must be {count + 1} non-decreasing values",
                                       dpath)
            if len(idx) != seg[-1] or np.any(idx < 0) or np.any(idx >= dim):
                raise ModelFormatError(f"array_indices must be {int(seg[-1])} values in [0, {dim})",
                                       dpath)
            count = len(idx)
        else:
            raise ModelFormatError(f"unknown dimension format {fmt}", f"{dpath}.format")
    nbytes = packed_nbytes(tensor.type, count)
    if nbytes is not None and len(data) != nbytes:
        raise ModelFormatError(f"sparse buffer {tensor.buffer} has {len(data)} bytes, "
                               f"{count} stored {tensor.type_name} values need {nbytes}", tp)


def _check_acyclic(calls: dict[int, set[int]]) -> None:
    """Subgraphs referenced by WHILE/IF/CALL_ONCE must not call back into themselves."""
    state: dict[int, int] = {}
    for start in calls:
        if state.get(start):
            continue
        stack = [(start, iter(sorted(calls[start])))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                raise ModelFormatError(f"subgraph {node} calls subgraph {nxt}, which is already "
                                       "on the call stack (cyclic control flow)", f"subgraphs[{node}]")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(calls[nxt]))))
