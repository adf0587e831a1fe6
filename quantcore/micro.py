"""Will a model fit a microcontroller? TFLite Micro's operators, resolver and arena,
computed from the model alone.

``quantcore micro MODEL`` (:func:`analyze`) reports:

* the operators and versions the model uses, and which of them TFLite Micro lacks
  or supports only for other tensor types, with the reason
  (:func:`quantcore.runtime.micro.micro_support`);
* the ``tflite::MicroMutableOpResolver<N>`` registration, one ``Add...()`` per
  operator, ready to paste;
* the tensor arena. The non-persistent **head** follows TFLM's
  ``micro_allocation_info.cc`` and ``GreedyMemoryPlanner`` exactly:

  - a buffer per tensor of every subgraph whose data pointer is still null after
    Prepare (no constant data, not a variable unless offline-planned, not a
    VAR_HANDLE output), of ``prod(shape) * type size`` bytes (a scalar is one
    element), rounded up to 16 bytes, skipped when 0 bytes; then one per kernel
    scratch request (:func:`scratch_requests`), in Prepare order;
  - lifetimes from a scope counter walking subgraph 0 in execution order: inputs at
    the start, every operator one step (IF/WHILE/CALL_ONCE walk their subgraphs
    inside the step), outputs at the end; a scratch buffer lives through its
    operator's step;
  - offsets: offline-planned buffers (metadata ``OfflineMemoryAllocation``:
    ``[version, subgraph, n, offset...]``, -1 = online) keep theirs; online
    buffers are sorted by size, largest first (equal sizes in descending index
    order), and each goes into the first gap among the buffers placed so far whose
    lifetimes overlap its own; head = the highest end.

  The persistent **tail** (TfLiteEvalTensors, node structs, per-operator OpData and
  per-channel arrays, model input/output TfLiteTensors, variables, scratch handles,
  allocator objects) is an estimate for the 64-bit ``tflite-micro`` wheel
  (:func:`estimate_tail`); pointers are half as wide on a 32-bit MCU, so a device
  needs somewhat less;
* a per-operator timeline of live buffers and the operator at which the plan peaks;
* the flash bytes: the flatbuffer itself, which TFLM reads in place.

Sources: tensorflow/tflite-micro ``micro_allocator.cc``, ``micro_allocation_info.cc``,
``memory_planner/greedy_memory_planner.cc``, ``memory_helpers.cc`` and the kernels'
``RequestScratchBufferInArena`` calls. ``tests/test_micro_arena.py`` checks the head
against what TFLM's ``RecordingMicroAllocator`` reports for every fixture model.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from quantcore.errors import InputError
from quantcore.runtime.micro import MICRO_OPS, micro_support
from quantcore.schema import read_model
from quantcore.schema.model import Model

ALIGNMENT = 16  # MicroArenaBufferAlignment()

# TfLiteTypeSizeOf (memory_helpers.cc); INT4 tensors are counted one byte per element.
TYPE_SIZES = {"FLOAT16": 2, "BFLOAT16": 2, "FLOAT32": 4, "FLOAT64": 8, "INT16": 2, "INT32": 4,
              "UINT32": 4, "UINT8": 1, "UINT16": 2, "INT8": 1, "INT64": 8, "UINT64": 8,
              "BOOL": 1, "RESOURCE": 4, "COMPLEX64": 8, "COMPLEX128": 16, "INT4": 1}

_SUBGRAPH_OPTIONS = {"IF": ("then_subgraph_index", "else_subgraph_index"),
                     "WHILE": ("cond_subgraph_index", "body_subgraph_index"),
                     "CALL_ONCE": ("init_subgraph_index",)}


def align_up(n: int, alignment: int = ALIGNMENT) -> int:
    return (int(n) + alignment - 1) // alignment * alignment


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
@dataclass
class PlannedBuffer:
    """One buffer of the head: a tensor or a kernel scratch request."""
    kind: str            # "tensor" or "scratch"
    subgraph: int
    index: int           # tensor index, or the requesting operator's index
    name: str
    bytes: int           # before alignment
    size: int            # aligned to 16
    first: int
    last: int
    offset: int = -1
    offline: int | None = None

    def to_json(self) -> dict:
        return {"kind": self.kind, "subgraph": self.subgraph, "index": self.index,
                "name": self.name, "bytes": self.bytes, "size": self.size, "first": self.first,
                "last": self.last, "offset": self.offset, "offline": self.offline is not None}


@dataclass
class MicroReport:
    ops: list[dict]
    unsupported: list[dict]
    resolver: str
    head: int
    tail: int
    buffers: list[PlannedBuffer]
    timeline: list[dict]
    peak_op: int         # operator index (in its subgraph) where the plan peaks, -1 if none
    flash_bytes: int
    tail_parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    arena_limit: int | None = None
    peak_row: int = -1   # its row in ``timeline``

    @property
    def total(self) -> int:
        return self.head + self.tail

    @property
    def fits(self) -> bool | None:
        return None if self.arena_limit is None else self.total <= self.arena_limit

    def to_json(self) -> dict:
        out = {"ops": self.ops, "unsupported": self.unsupported, "resolver": self.resolver,
               "arena": {"head": self.head, "tail": self.tail, "total": self.total,
                         "tail_parts": self.tail_parts},
               "flash_bytes": self.flash_bytes, "peak_op": self.peak_op,
               "timeline": self.timeline, "buffers": [b.to_json() for b in self.buffers],
               "notes": self.notes}
        if self.arena_limit is not None:
            out["arena_limit"] = self.arena_limit
            out["fits"] = self.fits
        return out


# ---------------------------------------------------------------------------
# Operators and resolver
# ---------------------------------------------------------------------------
def _op_rows(model: Model) -> list[dict]:
    rows = []
    for s, sg in enumerate(model.subgraphs):
        for o, op in enumerate(sg.operators):
            code = model.operator_codes[op.opcode_index]
            types = [sg.tensors[i].type_name if i >= 0 else None for i in op.inputs]
            out_types = [sg.tensors[i].type_name for i in op.outputs if i >= 0]
            reason = micro_support(model, s, o)
            rows.append({"subgraph": s, "index": o, "op": code.name, "version": code.version,
                         "custom_code": code.custom_code if code.name == "CUSTOM" else None,
                         "input_types": types, "output_types": out_types,
                         "resolver": MICRO_OPS.get(code.name), "supported": reason is None,
                         "reason": reason})
    return rows


def resolver_code(model: Model) -> str:
    """C++ registering every operator of ``model`` with a ``MicroMutableOpResolver``
    (the pattern of TFLM's examples), in order of first use."""
    calls, seen, missing = [], set(), []
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operator_codes[op.opcode_index]
            key = (code.name, code.custom_code if code.name == "CUSTOM" else None)
            if key in seen:
                continue
            seen.add(key)
            if code.name == "CUSTOM":
                calls.append(f'op_resolver.AddCustom("{code.custom_code}", '
                             f"Register_{code.custom_code or 'CUSTOM'}())")
            elif code.name in MICRO_OPS:
                calls.append(f"op_resolver.{MICRO_OPS[code.name]}()")
            else:
                missing.append(code.name)
    lines = ["#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"", "",
             f"using OpResolver = tflite::MicroMutableOpResolver<{len(calls)}>;", "",
             "TfLiteStatus RegisterOps(OpResolver& op_resolver) {"]
    lines += [f"  TF_LITE_ENSURE_STATUS({c});" for c in calls]
    lines += [f"  // {m}: TFLite Micro has no kernel for this operator" for m in missing]
    lines += ["  return kTfLiteOk;", "}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Scratch buffers requested by TFLM's reference kernels in Prepare
# ---------------------------------------------------------------------------
def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def scratch_requests(model: Model, s: int, o: int) -> list[int]:
    """Bytes of each ``RequestScratchBufferInArena`` call of operator ``o`` of subgraph
    ``s`` (reference kernels of tflite-micro; CMSIS-NN, Xtensa and other optimized
    kernels request other buffers)."""
    sg = model.subgraphs[s]
    op = sg.operators[o]
    name = model.operator_codes[op.opcode_index].name

    def t(k):
        i = op.inputs[k] if k < len(op.inputs) else -1
        return sg.tensors[i] if i >= 0 else None

    out = sg.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    x = t(0)
    if x is None:
        return []
    xt = x.type_name
    if name in ("MEAN", "SUM"):
        axis = t(1)
        req = [4 * _elements(out.shape)] if xt in ("INT8", "INT16") and out is not None else []
        return req + [4 * len(x.shape), 4 * (_elements(axis.shape) if axis is not None else 0)]
    if name in ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_ALL"):
        axis = t(1)
        return [4 * len(x.shape), 4 * (_elements(axis.shape) if axis is not None else 0)]
    if name == "TRANSPOSE_CONV":
        xin, bias = t(2), t(3)
        req = []
        if xin is not None and xin.type_name == "INT16" and bias is not None \
                and bias.type_name == "INT16":
            req.append(8 * _elements(bias.shape))
        if xin is not None and xin.type_name == "INT8":
            req.append(4 * _elements(out.shape))
        elif xin is not None and xin.type_name == "INT16":
            req.append(8 * _elements(out.shape))
        return req
    if name == "ADD_N" and out is not None and out.type_name in ("FLOAT32", "INT8"):
        return [8 * len(op.inputs)]  # one pointer per input (64-bit)
    if name == "MIRROR_PAD":
        return [4 * len(x.shape), 4 * len(x.shape)]
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        w = t(1)
        return [_elements(w.shape)] if w is not None and w.type_name == "INT4" else []
    if name == "SVDF":
        w = t(1)  # weights_feature [num_filters, input_size]
        batch = int(x.shape[0]) if x.shape else 1
        filters = int(w.shape[0]) if w is not None and w.shape else 0
        units = int(out.shape[-1]) if out is not None and out.shape else 0
        if xt == "INT8":
            return [batch * filters * 4, batch * units * 4]
        return [batch * filters * 4]
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        opts = op.options or {}
        batch = int(x.shape[1] if opts.get("time_major") else x.shape[0])
        state = t(18)  # output_state
        dim = int(state.shape[1]) if state is not None and len(state.shape) > 1 else 0
        cell = t(19)
        width = TYPE_SIZES.get(cell.type_name, 2) if cell is not None else 2
        return [batch * dim * width] * 4
    return []


# ---------------------------------------------------------------------------
# Head: lifetimes and the greedy planner
# ---------------------------------------------------------------------------
def offline_offsets(model: Model) -> list[int] | None:
    """Offsets from the ``OfflineMemoryAllocation`` metadata (one per tensor of all
    subgraphs, -1 = plan online), or None."""
    for m in model.metadata or []:
        if m.name == "OfflineMemoryAllocation":
            data = model.buffers[m.buffer].data if m.buffer < len(model.buffers) else None
            if data is None or len(data) < 12:
                raise InputError("OfflineMemoryAllocation metadata is too short")
            values = np.frombuffer(bytes(data), "<i4")
            n = int(values[2])
            total = sum(len(sg.tensors) for sg in model.subgraphs)
            if n != total or len(values) < 3 + n:
                raise InputError(f"OfflineMemoryAllocation has {n} offsets, the model has "
                                 f"{total} tensors (TFLM refuses it)")
            return [int(v) for v in values[3:3 + n]]
    return None


def _tensor_bytes(t) -> int:
    return _elements(t.shape) * TYPE_SIZES.get(t.type_name, 0)


def _has_data(model: Model, t) -> bool:
    if not t.buffer or t.buffer >= len(model.buffers):
        return False
    data = model.buffers[t.buffer].data
    return data is not None and len(data) > 0


def plan_buffers(model: Model) -> tuple[list[PlannedBuffer], list[tuple[int, int]]]:
    """The buffers TFLM plans, with lifetimes and offsets, and the scope time of every
    operator as ``(subgraph, op)`` in execution order (index = time - 1)."""
    offline = offline_offsets(model)
    sub_offsets, total = [], 0
    for sg in model.subgraphs:
        sub_offsets.append(total)
        total += len(sg.tensors)
    handle_outputs = set()
    for s, sg in enumerate(model.subgraphs):
        for op in sg.operators:
            if model.operator_codes[op.opcode_index].name == "VAR_HANDLE":
                handle_outputs.update((s, i) for i in op.outputs)
    first = [-1] * total
    last = [-1] * total
    scratch = []  # (s, o, bytes) in Prepare order
    for s, sg in enumerate(model.subgraphs):
        for o in range(len(sg.operators)):
            for nbytes in scratch_requests(model, s, o):
                scratch.append([s, o, nbytes, -1, -1])
    by_op: dict[tuple[int, int], list[int]] = {}
    for k, (s, o, _, _, _) in enumerate(scratch):
        by_op.setdefault((s, o), []).append(k)
    order: list[tuple[int, int]] = []
    counter = [0]

    def touch_first(g):
        if first[g] == -1:
            first[g] = counter[0]

    def walk(s: int, depth: int = 0) -> None:
        if depth > len(model.subgraphs):
            raise InputError("subgraph calls form a cycle")
        sg = model.subgraphs[s]
        base = sub_offsets[s]
        for i in sg.inputs:
            touch_first(base + i)
            last[base + i] = counter[0]
        for o, op in enumerate(sg.operators):
            counter[0] += 1
            order.append((s, o))
            for i in op.outputs:
                if i >= 0:
                    touch_first(base + i)
            start = counter[0]
            name = model.operator_codes[op.opcode_index].name
            for key in _SUBGRAPH_OPTIONS.get(name, ()):
                sub = (op.options or {}).get(key)
                if sub is not None and 0 <= int(sub) < len(model.subgraphs):
                    counter[0] += 1
                    walk(int(sub), depth + 1)
            for i in op.inputs:
                if i >= 0:
                    last[base + i] = counter[0]
            for i in op.outputs:
                if i >= 0:
                    last[base + i] = counter[0]
            for k in by_op.get((s, o), []):
                if scratch[k][3] == -1:
                    scratch[k][3] = start
                scratch[k][4] = counter[0]
        for i in sg.outputs:
            touch_first(base + i)
            last[base + i] = counter[0]

    walk(0)
    buffers: list[PlannedBuffer] = []
    for s, sg in enumerate(model.subgraphs):
        for i, t in enumerate(sg.tensors):
            g = sub_offsets[s] + i
            nbytes = _tensor_bytes(t)
            off = offline[g] if offline is not None else -1
            null_data = not _has_data(model, t) and (s, i) not in handle_outputs
            needs = null_data and not t.is_variable and nbytes != 0
            if t.is_variable and off != -1:
                needs = True
            if needs:
                buffers.append(PlannedBuffer("tensor", s, i, t.name, nbytes, align_up(nbytes),
                                             first[g], last[g],
                                             offline=off if off != -1 else None))
    for s, o, nbytes, f, la in scratch:
        name = model.operator_codes[model.subgraphs[s].operators[o].opcode_index].name
        buffers.append(PlannedBuffer("scratch", s, o, f"scratch of {name} #{o}", nbytes,
                                     align_up(nbytes), f, la))
    greedy_plan(buffers)
    return buffers, order


def greedy_plan(buffers: list[PlannedBuffer]) -> int:
    """``GreedyMemoryPlanner::CalculateOffsetsIfNeeded``: set every buffer's offset and
    return the plan size (``GetMaximumMemorySize``)."""
    n = len(buffers)
    if n == 0:
        return 0
    fixed = [k for k in range(n) if buffers[k].offline is not None]
    online = [k for k in range(n) if buffers[k].offline is None]
    # online buffers are stored in reverse index order, then bubble-sorted by size
    # (descending, stable)
    order = fixed + sorted(reversed(online), key=lambda k: -buffers[k].size)
    placed: list[int] = []   # buffer ids sorted by offset (ties: insertion order)

    def overlaps(k: int, f: int, la: int) -> bool:
        b = buffers[k]
        return not (b.first > la or f > b.last)

    for pos, k in enumerate(order):
        b = buffers[k]
        if b.offline is not None:
            offset = b.offline
        elif pos == 0:
            offset = 0
        else:
            offset = 0
            prior = -1   # position in `placed`
            while True:
                nxt = next((j for j in range(prior + 1, len(placed))
                            if overlaps(placed[j], b.first, b.last)), None)
                if prior >= 0:
                    p = buffers[placed[prior]]
                    offset = max(offset, p.offset + p.size)
                if nxt is None:
                    break
                if buffers[placed[nxt]].offset - offset >= b.size:
                    break
                prior = nxt
        b.offset = offset
        if pos == 0:
            placed.append(k)
        elif buffers[placed[0]].offset > offset:
            placed.insert(0, k)
        else:
            j = 1
            while j < len(placed) and buffers[placed[j]].offset <= offset:
                j += 1
            placed.insert(j, k)
    return max(b.offset + b.size for b in buffers)


# ---------------------------------------------------------------------------
# Tail estimate
# ---------------------------------------------------------------------------
# Measured on the x86-64 tflite-micro wheel (RecordingMicroAllocator), by adding a
# second copy of an operator to a one-operator model:
EVAL_TENSOR = 24          # TfLiteEvalTensor per tensor of every subgraph
NODE = 64                 # NodeAndRegistration per operator
IO_TENSOR = 64            # persistent TfLiteTensor per model input and output
IO_QUANT = 32             # its TfLiteAffineQuantization + zero-point array
SCRATCH_HANDLE = 8        # ScratchBufferHandle per scratch request
ALLOCATOR_BASE = 536      # allocator objects, subgraph allocations, planner

# Persistent bytes per operator: OpData, builtin options and LUTs; the GEMM family adds
# per-channel multiplier and shift arrays (4 bytes each per output channel), which
# CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV allocate for every type.
_OP_PERSISTENT: dict[str, int] = {
    "CONV_2D": 104, "DEPTHWISE_CONV_2D": 104, "TRANSPOSE_CONV": 104, "FULLY_CONNECTED": 120,
    "ADD": 72, "SUB": 72, "MUL": 56, "AVERAGE_POOL_2D": 72, "MAX_POOL_2D": 72,
    "L2_POOL_2D": 72, "SOFTMAX": 88, "LOGISTIC": 8, "TANH": 8, "HARD_SWISH": 40,
    "RESHAPE": 40, "MEAN": 64, "SUM": 64, "REDUCE_MAX": 64, "REDUCE_MIN": 64, "PAD": 56,
    "PADV2": 56, "CONCATENATION": 88, "SPACE_TO_BATCH_ND": 24, "BATCH_TO_SPACE_ND": 24,
    "PRELU": 40, "RESIZE_BILINEAR": 8, "RESIZE_NEAREST_NEIGHBOR": 8, "QUANTIZE": 24,
    "DEQUANTIZE": 24,
    # OpDataLSTM (kernels/lstm_shared.h: eight FullyConnectedParams, three
    # ArithmeticParams, sizes, cell-state info, scratch indices) and the options;
    # measured on the fused LSTMs of tests/fixtures/recurrent (float and int8).
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 740,
}
_DEFAULT_OP = 48


def _op_persistent(model: Model, s: int, o: int) -> int:
    sg = model.subgraphs[s]
    op = sg.operators[o]
    name = model.operator_codes[op.opcode_index].name
    x = sg.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
    xt = x.type_name if x is not None else "FLOAT32"
    n = _OP_PERSISTENT.get(name, _DEFAULT_OP)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV") and op.outputs:
        out = sg.tensors[op.outputs[0]]
        n += 8 * (int(out.shape[-1]) if out.shape else 1)
    if name == "FULLY_CONNECTED" and xt != "FLOAT32" and len(op.inputs) > 1:
        w = sg.tensors[op.inputs[1]]
        if w.quantization is not None and w.quantization.per_channel:
            n += 8 * len(w.quantization.scale)
    if name == "SOFTMAX" and xt == "INT16":
        n += 2 * align_up(2 * 513)    # exp and 1/(1+x) tables
    return n


RESOURCE_VARIABLES = 16   # sizeof(MicroResourceVariables): pointer + two ints
RESOURCE_VARIABLE = 40    # sizeof(MicroResourceVariable): 3 pointers, size_t, int8 (padded)


def resource_variable_bytes(model: Model) -> int:
    """Persistent bytes of the resource variables (VAR_HANDLE / ASSIGN_VARIABLE).

    The interpreter creates ``MicroResourceVariables`` with one slot per distinct
    VAR_HANDLE ``shared_name`` (tflite-micro ``python/tflite_micro/runtime.py``
    ``count_resource_variables``; ``micro_resource_variable.cc`` ``Create``: two
    persistent allocations), and ASSIGN_VARIABLE's Prepare allocates each variable's
    buffer once, of the assigned value's size (``MicroResourceVariables::Allocate``).
    0 for a model without VAR_HANDLE.
    """
    names: dict[str, int] = {}
    for sg in model.subgraphs:
        handles = {}
        for op in sg.operators:
            if model.operator_codes[op.opcode_index].name == "VAR_HANDLE":
                name = str((op.options or {}).get("shared_name") or "")
                names.setdefault(name, 0)
                handles.update({t: name for t in op.outputs if t >= 0})
        for op in sg.operators:
            if model.operator_codes[op.opcode_index].name != "ASSIGN_VARIABLE" or \
                    len(op.inputs) < 2 or op.inputs[0] not in handles or op.inputs[1] < 0:
                continue
            name = handles[op.inputs[0]]
            if names[name] == 0:
                names[name] = align_up(_tensor_bytes(sg.tensors[op.inputs[1]]))
    if not names:
        return 0
    return (align_up(RESOURCE_VARIABLES) + align_up(RESOURCE_VARIABLE * len(names))
            + sum(names.values()))


def estimate_tail(model: Model, n_scratch: int) -> dict[str, int]:
    """The persistent tail by part (bytes, 64-bit wheel)."""
    tensors = sum(len(sg.tensors) for sg in model.subgraphs)
    ops = sum(len(sg.operators) for sg in model.subgraphs)
    sg0 = model.subgraphs[0]
    io = list(sg0.inputs) + list(sg0.outputs)
    quant_io = sum(1 for i in io if sg0.tensors[i].qparams() is not None)
    offline = offline_offsets(model)
    variables = 0
    g = 0
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.is_variable and (offline is None or offline[g] == -1):
                variables += align_up(_tensor_bytes(t))
            g += 1
    opdata = sum(_op_persistent(model, s, o) for s, sg in enumerate(model.subgraphs)
                 for o in range(len(sg.operators)))
    return {"eval_tensors": EVAL_TENSOR * tensors, "nodes": NODE * ops,
            "io_tensors": IO_TENSOR * len(io) + IO_QUANT * quant_io,
            "op_data": opdata, "variables": variables,
            "resource_variables": resource_variable_bytes(model),
            "scratch_handles": SCRATCH_HANDLE * n_scratch,
            "allocator": ALLOCATOR_BASE}


# ---------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------
def _timeline(model: Model, buffers: list[PlannedBuffer], order: list[tuple[int, int]],
              head: int) -> tuple[list[dict], int]:
    rows = []
    for time, (s, o) in enumerate(order, start=1):
        live = [b for b in buffers if b.first <= time <= b.last and b.first >= 0]
        name = model.operator_codes[model.subgraphs[s].operators[o].opcode_index].name
        extent = max((b.offset + b.size for b in live), default=0)
        rows.append({"time": time, "subgraph": s, "index": o, "op": name,
                     "live": [b.name for b in live], "live_bytes": sum(b.size for b in live),
                     "extent": extent, "buffers": [buffers.index(b) for b in live]})
    peak = -1
    if rows:
        best = max(rows, key=lambda r: (r["extent"], r["live_bytes"]))
        peak = rows.index(best)
    return rows, peak


def analyze(model: Model | bytes | str | os.PathLike, *,
            arena_limit: int | None = None) -> MicroReport:
    """Operators, resolver, arena and flash of a model on TFLite Micro."""
    if isinstance(model, Model):
        from quantcore.schema import write_model
        m, raw = model, write_model(model)
    else:
        from quantcore.schema.reader import load_bytes
        raw = load_bytes(model)
        m = read_model(raw, micro=True)
    ops = _op_rows(m)
    unsupported = [r for r in ops if not r["supported"]]
    buffers, order = plan_buffers(m)
    head = max((b.offset + b.size for b in buffers), default=0)
    n_scratch = sum(1 for b in buffers if b.kind == "scratch")
    parts = estimate_tail(m, n_scratch)
    timeline, peak_row = _timeline(m, buffers, order, head)
    notes = []
    names = {r["op"] for r in ops}
    if "DETECTION_POSTPROCESS" in names or any(r["op"] == "CUSTOM" for r in ops):
        notes.append("custom operators' scratch buffers and persistent data are not counted")
    if offline_offsets(m) is not None:
        notes.append("offline-planned offsets from the OfflineMemoryAllocation metadata are used")
    return MicroReport(ops=ops, unsupported=unsupported, resolver=resolver_code(m), head=head,
                       tail=sum(parts.values()), buffers=buffers, timeline=timeline,
                       peak_op=timeline[peak_row]["index"] if peak_row >= 0 else -1,
                       flash_bytes=len(raw), tail_parts=parts, notes=notes,
                       arena_limit=arena_limit, peak_row=peak_row)


def parse_size(text: str) -> int:
    """``256K``, ``1.5M``, ``300000``, ``64KiB`` -> bytes (K = 1024)."""
    t = str(text).strip().upper().replace("IB", "").rstrip("B")
    mult = 1
    if t and t[-1] in "KMG":
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[t[-1]]
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise InputError(f"not a size: {text!r} (use e.g. 256K, 1M or a number of bytes)") from None
    if value < 0:
        raise InputError(f"size must be >= 0, not {text!r}")
    return int(value * mult)


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def _short(b: PlannedBuffer) -> str:
    where = f"{b.subgraph}:" if b.subgraph else ""
    what = f"t{where}{b.index}" if b.kind == "tensor" else f"scratch[{where}{b.index}]"
    return f"{what} {b.size:,}"


def format_text(r: MicroReport, *, timeline_rows: int = 200) -> str:
    lines = ["Operators (TFLite Micro):"]
    for row in r.ops:
        where = f"[{row['subgraph']}:{row['index']}]" if row["subgraph"] else f"[{row['index']}]"
        types = ",".join(t or "-" for t in row["input_types"])
        status = "ok" if row["supported"] else f"UNSUPPORTED: {row['reason']}"
        lines.append(f"  {where:>6} {row['op']} v{row['version']} ({types}) {status}")
    if r.unsupported:
        lines.append(f"{len(r.unsupported)} operator(s) TFLite Micro cannot run.")
    lines += ["", "Resolver:", *("  " + ln for ln in r.resolver.rstrip().splitlines()), ""]
    lines.append("Tensor arena (64-bit tflite-micro; a 32-bit MCU needs a little less tail):")
    lines.append(f"  head (planned, non-persistent): {_kib(r.head)}")
    lines.append(f"  tail (persistent, estimated):   {_kib(r.tail)}")
    lines.append(f"  total:                          {_kib(r.total)}")
    lines.append(f"  flash (model flatbuffer):       {_kib(r.flash_bytes)}")
    if r.peak_row >= 0:
        p = r.timeline[r.peak_row]
        lines.append(f"  peak at operator {p['index']} {p['op']}: {p['extent']:,} B in use, "
                     f"{len(p['live'])} live buffers")
    lines += ["", "Timeline (time, operator, live bytes, plan extent, live buffers as "
                  "t<tensor> or scratch[<op>] with aligned bytes):"]
    for k, row in enumerate(r.timeline[:timeline_rows]):
        live = [_short(r.buffers[j]) for j in row["buffers"]]
        mark = "  <- peak" if k == r.peak_row else ""
        lines.append(f"  t={row['time']:<3} {row['op']:<22} {row['live_bytes']:>9,} "
                     f"{row['extent']:>9,}  {', '.join(live[:8])}"
                     f"{' ...' if len(live) > 8 else ''}{mark}")
    if len(r.timeline) > timeline_rows:
        lines.append(f"  ... {len(r.timeline) - timeline_rows} more")
    for n in r.notes:
        lines.append(f"note: {n}")
    if r.arena_limit is not None:
        lines.append("")
        if r.fits:
            lines.append(f"fits: {r.total:,} B <= arena limit {r.arena_limit:,} B")
        else:
            lines.append(f"DOES NOT FIT: the model needs {r.total:,} B of arena "
                         f"({r.head:,} head + {r.tail:,} tail), the limit is {r.arena_limit:,} B "
                         f"({r.total - r.arena_limit:,} B over)")
    return "\n".join(lines) + "\n"


def to_json_text(r: MicroReport) -> str:
    return json.dumps(r.to_json(), indent=1) + "\n"


def plot(r: MicroReport, path: str | os.PathLike) -> None:
    """Draw the memory plan: one rectangle per buffer, operators (time) across, arena
    offset up; the peak operator marked."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'quantcore[plot]'") from None
    fig, ax = plt.subplots(figsize=(10, 5))
    tmax = max([b.last for b in r.buffers] + [len(r.timeline), 1])
    cmap = plt.get_cmap("tab20")
    for k, b in enumerate(r.buffers):
        if b.first < 0 or b.size == 0:
            continue
        ax.add_patch(Rectangle((b.first - 0.45, b.offset), b.last - b.first + 0.9, b.size,
                               facecolor=cmap(k % 20), edgecolor="black", linewidth=0.4,
                               alpha=0.85 if b.kind == "tensor" else 0.5,
                               hatch=None if b.kind == "tensor" else "//"))
    ax.axhline(r.head, color="red", linestyle="--", linewidth=1)
    ax.text(0, r.head, f" head {r.head:,} B", color="red", va="bottom")
    if r.peak_row >= 0:
        ax.axvline(r.timeline[r.peak_row]["time"], color="gray", linestyle=":")
    ax.set_xlim(-0.5, tmax + 0.5)
    ax.set_ylim(0, max(r.head, 1) * 1.08)
    ax.set_xlabel("operator (execution time)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"TFLite Micro arena plan: head {r.head:,} B + tail ~{r.tail:,} B")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
