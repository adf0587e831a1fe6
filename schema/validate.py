"""Consistency checks on a decoded model (../shared/ROBUSTNESS.md).

The FlatBuffer decoder has already checked every offset; these checks cover what
makes a structurally valid buffer still unusable: indices out of range, constant
buffers whose size does not match their shape, quantization parameters of the
wrong length, operators out of topological order, subgraph references that form a
cycle, zero strides and block sizes, declared tensor sizes beyond a memory budget.
Each failure raises ``ModelFormatError`` with the path into the model.
"""
from __future__ import annotations

import math

import numpy as np

from quantcore.errors import ModelFormatError

from .model import BuiltinOperator, Model, TensorType, packed_nbytes, type_name

DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes any single tensor may declare

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
_QUANT_TYPES = frozenset(int(TensorType[n]) for n in ("INT8", "UINT8", "INT16"))

# Options fields that name subgraphs.
_SUBGRAPH_FIELDS = ("cond_subgraph_index", "body_subgraph_index", "then_subgraph_index",
                    "else_subgraph_index", "init_subgraph_index", "decomposition_subgraph_index",
                    "subgraph", "body", "cond", "branches")


def validate_model(model: Model, *, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
    """Raise ModelFormatError on the first inconsistency found; return None if none."""
    nbuf = len(model.buffers)
    ncodes = len(model.operator_codes)
    nsub = len(model.subgraphs)
    if nsub == 0:
        raise ModelFormatError("model has no subgraphs", "subgraphs")
    for i, code in enumerate(model.operator_codes):
        if code.version < 1:
            raise ModelFormatError(f"operator version {code.version} < 1", f"operator_codes[{i}].version")
    for i, m in enumerate(model.metadata or []):
        _index(m.buffer, nbuf, f"metadata[{i}].buffer", "buffers")
    for i, b in enumerate(model.metadata_buffer or []):
        _index(b, nbuf, f"metadata_buffer[{i}]", "buffers")
    calls: dict[int, set[int]] = {i: set() for i in range(nsub)}
    for s, sg in enumerate(model.subgraphs):
        _validate_subgraph(model, s, memory_budget, calls[s])
    _check_acyclic(calls)
    for i, sig in enumerate(model.signature_defs or []):
        p = f"signature_defs[{i}]"
        _index(sig.subgraph_index, nsub, f"{p}.subgraph_index", "subgraphs")
        nt = len(model.subgraphs[sig.subgraph_index].tensors)
        for kind in ("inputs", "outputs"):
            for j, tm in enumerate(getattr(sig, kind)):
                _index(tm.tensor_index, nt, f"{p}.{kind}[{j}].tensor_index",
                       f"tensors in subgraph {sig.subgraph_index}")
    del ncodes


def _index(i: int, n: int, path: str, what: str) -> None:
    if not 0 <= i < n:
        raise ModelFormatError(f"index {i} out of range [0, {n}) of {what}", path)


def _validate_subgraph(model: Model, s: int, budget: int, calls: set[int]) -> None:
    sg = model.subgraphs[s]
    sp = f"subgraphs[{s}]"
    nt = len(sg.tensors)
    nbuf = len(model.buffers)
    constant = [False] * nt
    for t, tensor in enumerate(sg.tensors):
        tp = f"{sp}.tensors[{t}]"
        _index(tensor.buffer, nbuf, f"{tp}.buffer", "buffers")
        type_name(tensor.type)  # raises on unknown types
        for d, dim in enumerate(tensor.shape):
            if dim < 0:
                raise ModelFormatError(f"dimension {d} is {dim}", f"{tp}.shape")
        n = math.prod(tensor.shape)
        nbytes = packed_nbytes(tensor.type, n)
        if nbytes is not None and nbytes > budget:
            raise ModelFormatError(f"declares {nbytes} bytes (shape {tensor.shape}), over the "
                                   f"memory budget of {budget} bytes", tp)
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data) > 0:
            constant[t] = True
            if nbytes is not None and tensor.sparsity is None and len(data) != nbytes:
                raise ModelFormatError(
                    f"buffer {tensor.buffer} has {len(data)} bytes, shape {tensor.shape} of "
                    f"{tensor.type_name} needs {nbytes}", tp)
        _validate_quant(tensor, tp)
    for kind in ("inputs", "outputs"):
        for j, t in enumerate(getattr(sg, kind)):
            _index(t, nt, f"{sp}.{kind}[{j}]", f"the {nt} tensors")
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
            if t == -1:
                continue
            _index(t, nt, f"{op_path}.outputs[{j}]", f"the {nt} tensors")
            if t in produced:
                raise ModelFormatError(f"tensor {t} is produced twice", f"{op_path}.outputs[{j}]")
            if constant[t]:
                raise ModelFormatError(f"tensor {t} is constant and cannot be an operator output",
                                       f"{op_path}.outputs[{j}]")
            produced.add(t)
            available.add(t)
        opts = op.options
        for name in _POSITIVE_OPTION_FIELDS:
            if name in opts and opts[name] <= 0:
                raise ModelFormatError(f"{name} is {opts[name]}, must be > 0",
                                       f"{op_path}.builtin_options.{name}")
        for name in _SUBGRAPH_FIELDS:
            if name in opts and isinstance(opts[name], (int, np.integer)):
                _index(int(opts[name]), len(model.subgraphs), f"{op_path}.builtin_options.{name}",
                       "subgraphs")
                calls.add(int(opts[name]))
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


def _validate_quant(tensor, tp: str) -> None:
    q = tensor.quantization
    if q is None:
        return
    qp = f"{tp}.quantization"
    ns = 0 if q.scale is None else len(q.scale)
    nz = 0 if q.zero_point is None else len(q.zero_point)
    if ns and nz and ns != nz:
        raise ModelFormatError(f"{ns} scales but {nz} zero points", qp)
    if ns > 1:
        rank = len(tensor.shape)
        if not 0 <= q.quantized_dimension < rank:
            raise ModelFormatError(f"quantized_dimension {q.quantized_dimension} out of range for "
                                   f"rank {rank}", f"{qp}.quantized_dimension")
        dim = tensor.shape[q.quantized_dimension]
        if ns != dim:
            raise ModelFormatError(f"{ns} per-channel scales, but dimension {q.quantized_dimension} "
                                   f"has {dim} channels", f"{qp}.scale")


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
                raise ModelFormatError(f"subgraph {nxt} calls itself through subgraph {node} "
                                       "(cyclic control flow)", f"subgraphs[{node}]")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(calls[nxt]))))
