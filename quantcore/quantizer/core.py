"""The quantizer: float .tflite in, quantized .tflite out.

``quantize(model, representative_dataset=..., mode=...)`` follows the TFLite
converter's post-training quantization (docs/quantization.md eq. 3-5, 14-19):

* calibrate: run the float model in quantcore's runtime over the data and keep a
  range per float tensor (:mod:`quantcore.calibration`);
* decide parameters operator by operator in execution order (:mod:`.rules`):
  activations asymmetric from their range, weights symmetric per channel, biases
  with scale ``s_in * s_w``, fixed outputs (SOFTMAX, LOGISTIC, TANH), data-movement
  outputs inheriting their input's parameters, shared-scale operators (CONCATENATION)
  with requantizing QUANTIZE operators inserted where inputs differ;
* rewrite the graph: quantized tensors change type in place; QUANTIZE and
  DEQUANTIZE operators are inserted wherever float and quantized parts meet (model
  inputs and outputs for float I/O, operators kept in float by the denylist or
  because quantcore has no quantized rule for them).
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantcore.calibration import Calibrator
from quantcore.errors import CalibrationError, InputError
from quantcore.fixedpoint import round_half_away
from quantcore.numerics import choose_qparams, qrange
from quantcore.schema import read_model, write_model
from quantcore.schema.model import (Buffer, BuiltinOperator, Model, Operator, OperatorCode,
                                    QuantizationParameters, Tensor, TensorType)

from . import recurrent
from .calibrate import calibrate
from .inplace import inplace_pairs
from .rules import HYBRID, PASSTHROUGH, RULES
from .versions import op_version

FLOAT32 = int(TensorType.FLOAT32)
MODES = ("int8", "int16x8", "dynamic", "float16", "uint8")
_ACT_TYPE = {"int8": int(TensorType.INT8), "int16x8": int(TensorType.INT16), "uint8": int(TensorType.UINT8)}
_NP = {int(TensorType.INT8): np.int8, int(TensorType.INT16): np.int16, int(TensorType.UINT8): np.uint8,
       int(TensorType.INT32): np.int32, int(TensorType.INT64): np.int64}


@dataclass
class QuantizationReport:
    """What the quantizer did: operators left in float and why (operators of other
    subgraphs than the main one are named ``"<OP> in subgraph <s>"``), and notes on
    recurrent structure (loop bodies quantized inside, state kept float)."""
    float_ops: list[tuple[int, str, str]]   # (original op index, op name, reason)
    notes: list[str] = field(default_factory=list)


def _load(model: Any) -> Model:
    if isinstance(model, Model):
        return read_model(write_model(model))  # an independent copy (data may be memoryviews)
    if isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
        return read_model(model)
    raise InputError(f"model must be a path, bytes or a Model, not {type(model).__name__}")


def quantize(model: Any, *, representative_dataset: Any = None, mode: str = "int8",
             per_channel: bool = True, inference_input_type: Any = np.float32,
             inference_output_type: Any = np.float32, calibrator: str | Calibrator = "minmax",
             denylist: Any = (), default_ranges: tuple[float, float] | None = None,
             report: QuantizationReport | None = None, workers: int | None = None,
             dynamic_min_elements: int = 1024) -> bytes:
    """Quantize a float .tflite model; returns the new model's bytes.

    ``model``: path, bytes or :class:`~quantcore.schema.Model`.
    ``representative_dataset``: a callable returning an iterable of samples (the
    TFLite converter convention: each sample a list of arrays, one per input, batch
    1), an iterable of samples, or a dict per sample keyed by signature input name.
    ``mode``: ``"int8"`` (full integer), ``"int16x8"`` (int16 activations, int8
    weights, int64 bias), ``"dynamic"`` (int8 weights, float activations),
    ``"float16"`` (float16 constants through DEQUANTIZE), ``"uint8"`` (legacy
    asymmetric uint8, per tensor).
    ``inference_input_type``/``inference_output_type``: float32 (QUANTIZE and
    DEQUANTIZE at the edges), int8, or uint8 (int16 in 16x8).
    ``denylist``: operator names (``"SOFTMAX"``), tensor names of operator outputs,
    or operator indices kept in float, with QUANTIZE/DEQUANTIZE around them.
    ``default_ranges``: ``(min, max)`` used for every activation without
    statistics ("dummy quantization"); with no dataset at all, for every activation.
    ``workers``: ``None``/1 in-process; N local processes; ``"ray"`` (the cluster in
    ``RAY_ADDRESS`` or a local one) or ``"ray://ADDRESS"`` (:mod:`quantcore.distributed`).
    The result is byte-identical whatever the number of workers or shards.
    ``dynamic_min_elements``: in ``dynamic`` mode, weights with fewer elements stay
    float (the converter's threshold is 1024; small recurrent models need less).

    Recurrent models (:mod:`.recurrent`, docs/quantization.md section 24): WHILE
    bodies and other subgraphs are calibrated at every iteration and quantized too;
    float loop-carried values become integer with one set of parameters per loop
    variable (eq. 29), or stay float at the boundary where they cannot (the report
    says why); resource variables keep float state; fused LSTMs get LiteRT's integer
    kernel (eq. 30-32). ``report.notes`` describes each loop. Models with several
    subgraphs or an LSTM calibrate in this process (``workers`` is ignored and
    ``report.notes`` says so).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(dynamic_min_elements, bool) or not isinstance(dynamic_min_elements, (int, np.integer)) \
            or dynamic_min_elements < 0:
        raise InputError(f"dynamic_min_elements must be an integer >= 0, not {dynamic_min_elements!r}")
    m = _fold_constant_dequantize(_load(model))
    carried = None
    if mode in _ACT_TYPE:
        # QAT: ranges the float model carries (FAKE_QUANT, QUANTIZE/DEQUANTIZE pairs,
        # min/max); their operators are removed here (quantcore/qat.py).
        from quantcore.qat import model_ranges
        carried = model_ranges(m)
    for i, sg in enumerate(m.subgraphs):
        for t in sg.tensors:
            if t.type == FLOAT32 or t.quantization is None or t.quantization.is_empty():
                continue
            if t.type in _ACT_TYPE.values() and i == 0:
                raise InputError(f"the model is already quantized (tensor {t.name!r} is {t.type_name})")
    if mode == "float16":
        return write_model(_finish(_float16(m)))
    if mode == "dynamic":
        return write_model(_finish(_dynamic(m, per_channel, dynamic_min_elements)))
    q = _IntegerQuantizer(m, mode, per_channel, np.dtype(inference_input_type),
                          np.dtype(inference_output_type), denylist)
    q.carried = carried
    q.ranges = q.collect_ranges(representative_dataset, calibrator, default_ranges, workers)
    plans = recurrent.plan_loops(q) if len(m.subgraphs) > 1 else {}
    q.loop_plans = plans
    notes = recurrent.loop_notes(m, plans)   # (operator indices of the float model)
    if workers not in (None, 1) and representative_dataset is not None \
            and recurrent.needs_recurrent_calibration(m):
        notes.append(f"calibrated in this process: workers={workers!r} is not supported yet for "
                     "models with several subgraphs or an LSTM (their statistics are observed per "
                     "loop iteration and time step)")
    q.run()
    float_ops = list(q.float_ops)
    if len(m.subgraphs) > 1:
        def body_quantizer(s: int) -> "_IntegerQuantizer":
            return _IntegerQuantizer(m, mode, per_channel, np.dtype(np.float32), np.dtype(np.float32),
                                     denylist, subgraph=s)
        float_ops += recurrent.quantize_subgraphs(body_quantizer, m, q.stats, default_ranges, plans)
    if report is not None:
        report.float_ops = float_ops
        report.notes = notes
    return write_model(_finish(q.m))


def _fold_constant_dequantize(m: Model) -> Model:
    """Turn float16 constants feeding DEQUANTIZE back into float32 constants.

    A float16-weight model (converter float16 mode, MediaPipe models) is a float
    model whose weights are stored in half precision; quantizing it starts from the
    float32 values, so each such DEQUANTIZE is removed and its output becomes the
    constant.
    """
    for s, sg in enumerate(m.subgraphs):
        keep = []
        for op in sg.operators:
            if m.op_name(op) == "DEQUANTIZE" and len(op.inputs) == 1 and op.inputs[0] >= 0:
                src = sg.tensors[op.inputs[0]]
                data = m.tensor_data(s, op.inputs[0])
                if src.type == int(TensorType.FLOAT16) and data is not None:
                    out = sg.tensors[op.outputs[0]]
                    out.buffer = _new_buffer(m, data.astype("<f4").tobytes())
                    continue
            keep.append(op)
        sg.operators = keep
    return m


def _finish(m: Model) -> Model:
    return _prune(_merge_opcodes(m))


def _prune(m: Model) -> Model:
    """Drop tensors no operator, model input/output or signature uses any more (the
    float originals of quantized constants) and buffers no tensor uses, renumbering
    the rest in order, as the converter's output has none."""
    used_buffers = {0}
    for s, sg in enumerate(m.subgraphs):
        used = set(sg.inputs) | set(sg.outputs)
        for op in sg.operators:
            used.update(t for t in op.inputs + op.outputs + (op.intermediates or []) if t >= 0)
        for sig in m.signature_defs or []:
            if sig.subgraph_index == s:
                used.update(tm.tensor_index for tm in sig.inputs + sig.outputs)
        keep = sorted(used)
        remap = {old: new for new, old in enumerate(keep)}
        sg.tensors = [sg.tensors[i] for i in keep]
        sg.inputs = [remap[i] for i in sg.inputs]
        sg.outputs = [remap[i] for i in sg.outputs]
        for op in sg.operators:
            op.inputs = [remap[t] if t >= 0 else t for t in op.inputs]
            op.outputs = [remap[t] if t >= 0 else t for t in op.outputs]
            if op.intermediates:
                op.intermediates = [remap[t] for t in op.intermediates]
        for sig in m.signature_defs or []:
            if sig.subgraph_index == s:
                for tm in sig.inputs + sig.outputs:
                    tm.tensor_index = remap[tm.tensor_index]
        used_buffers.update(t.buffer for t in sg.tensors)
    used_buffers.update(md.buffer for md in m.metadata or [])
    used_buffers.update(m.metadata_buffer or [])
    keep_b = sorted(b for b in used_buffers if b < len(m.buffers))
    bmap = {old: new for new, old in enumerate(keep_b)}
    m.buffers = [m.buffers[i] for i in keep_b]
    for sg in m.subgraphs:
        for t in sg.tensors:
            t.buffer = bmap[t.buffer]
    for md in m.metadata or []:
        md.buffer = bmap[md.buffer]
    if m.metadata_buffer:
        m.metadata_buffer = [bmap[b] for b in m.metadata_buffer]
    return m


def _merge_opcodes(m: Model) -> Model:
    """One OperatorCode per operator type, at the highest version any use needs.

    The converter's writer keeps a single entry per builtin (its version is the
    maximum over the operators using it), listed in order of first use; codes no
    operator uses any more are dropped.
    """
    codes: dict[tuple[int, str | None], int] = {}
    merged: list[OperatorCode] = []
    for sg in m.subgraphs:
        for op in sg.operators:
            c = m.operator_codes[op.opcode_index]
            key = (c.code, c.custom_code)
            if key not in codes:
                codes[key] = len(merged)
                merged.append(copy.copy(c))
            else:
                merged[codes[key]].version = max(merged[codes[key]].version, c.version)
            op.opcode_index = codes[key]
    m.operator_codes = merged
    return m


# ---------------------------------------------------------------------------
# float16 and dynamic range
# ---------------------------------------------------------------------------
def _new_tensor(m: Model, sg_index: int, like: Tensor, **changes: Any) -> int:
    t = copy.copy(like)
    for k, v in changes.items():
        setattr(t, k, v)
    sg = m.subgraphs[sg_index]
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _opcode(m: Model, name: str, version: int = 1) -> int:
    code = int(BuiltinOperator[name])
    for i, c in enumerate(m.operator_codes):
        if c.code == code and c.version == version and not c.custom_code:
            return i
    m.operator_codes.append(OperatorCode(deprecated_builtin_code=min(code, 127), version=version,
                                         builtin_code=code))
    return len(m.operator_codes) - 1


def _new_buffer(m: Model, data: bytes) -> int:
    m.buffers.append(Buffer(data=data))
    return len(m.buffers) - 1


def _float16(m: Model) -> Model:
    """Every float32 constant becomes float16, dequantized at the start of the graph.

    As the converter lays it out: the constant keeps its index and name but holds
    float16 data; a new float32 tensor ``<name>1`` produced by a DEQUANTIZE replaces
    it in every operator; the DEQUANTIZE operators come first, in descending order
    of constant index.
    """
    for s, sg in enumerate(m.subgraphs):
        used = {t for op in sg.operators for t in op.inputs if t >= 0}
        new_ops: list[Operator] = []
        rename: dict[int, int] = {}
        for t in sorted(used, reverse=True):
            tensor = sg.tensors[t]
            data = m.tensor_data(s, t)
            if tensor.type != FLOAT32 or data is None:
                continue
            out = _new_tensor(m, s, tensor, name=_unique_name(sg, tensor.name), buffer=0, quantization=None)
            tensor.type = int(TensorType.FLOAT16)
            tensor.buffer = _new_buffer(m, data.astype("<f2").tobytes())
            new_ops.append(Operator(opcode_index=_opcode(m, "DEQUANTIZE", 3), inputs=[t], outputs=[out]))
            rename[t] = out
        for op in sg.operators:
            op.inputs = [rename.get(t, t) for t in op.inputs]
        sg.operators = new_ops + sg.operators
    return m


def _unique_name(sg, name: str) -> str:
    """The converter's name for a new tensor derived from ``name``.

    Its writer makes names unique with a per-base counter: a tensor ``X`` that
    needs a twin becomes ``X1``, but when ``name`` is itself ``X<k>`` for an existing
    base ``X`` the next free ``X<j>`` is used (``...Conv2D1`` -> ``...Conv2D2``).
    """
    names = {t.name for t in sg.tensors}
    base = name.rstrip("0123456789")
    if base == name or base not in names:
        base = name
    k = 1
    while f"{base}{k}" in names:
        k += 1
    return f"{base}{k}"


def _insert_ops(sg, inserts: list[tuple[int, Operator]]) -> None:
    """Insert operators before the given original positions (stable)."""
    by_pos: dict[int, list[Operator]] = {}
    for pos, op in inserts:
        by_pos.setdefault(pos, []).append(op)
    out = []
    for o, op in enumerate(sg.operators):
        out.extend(by_pos.get(o, []))
        out.append(op)
    sg.operators = out


def quantize_weights_symmetric(w: np.ndarray, axis: int | None, dtype=np.int8, *,
                               legacy: bool = False, double: bool = False
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric narrow-range weights as the converter makes them (eq. 5).

    Per channel (``axis``): ``scale_c = f32(f32(max|w_c|) / 127)`` (tiny ranges widened
    to 5e-7), ``q = clamp(roundf(f32(w * f32(1 / double(scale_c)))), -127, 127)``
    (``SymmetricPerChannelQuantizeValues``). Per tensor: the same scale, values
    ``roundf(w * f32(127 / f32(max|w|)))`` (``PortableSymmetricQuantizeFloats``).
    With ``legacy`` (the 16x8 quantizer, ``tools/optimize/quantization_utils.cc``
    ``SymmetricQuantizeTensorPerChannel``): ``scale_c = f32(a_c / 127)`` and values
    ``roundf(w * f32(127 / a_c))``; an all-zero channel gets scale 0.
    With ``double`` (the MLIR dynamic-range quantizer, ``quantizeAttrUniform``): the
    usual scales, values ``round(double(w) / double(scale_c))``.
    Returns (values, scales).
    """
    w = np.asarray(w, np.float32)
    qmin, qmax = qrange(dtype, narrow_range=True)
    if legacy and axis is not None:
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        a = (np.max(np.abs(moved), axis=1) if moved.size else np.zeros(w.shape[axis])).astype(np.float32)
        scales = (a / np.float32(qmax)).astype(np.float32)
        with np.errstate(divide="ignore"):
            inv = np.where(a == 0, np.float32(0), np.float32(qmax) / a).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = round_half_away((w * inv.reshape(shape)).astype(np.float32))
        return np.clip(q, qmin, qmax).astype(dtype), scales
    if axis is None:
        a = float(np.max(np.abs(w))) if w.size else 0.0
        qp = choose_qparams(-a, a, dtype, symmetric=True)
        rng = np.float32(a if a > 0 else 5e-7)
        inv = np.float32(np.float32(qmax) / rng)
        q = round_half_away((w * inv).astype(np.float32))
        return np.clip(q, qmin, qmax).astype(dtype), qp.scale
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    a = np.max(np.abs(moved), axis=1) if moved.size else np.zeros(w.shape[axis])
    qp = choose_qparams(-a, a, dtype, symmetric=True)
    shape = [1] * w.ndim
    shape[axis] = -1
    if double:
        q = round_half_away(w.astype(np.float64) / qp.scale.astype(np.float64).reshape(shape))
        return np.clip(q, qmin, qmax).astype(dtype), qp.scale
    inv = (1.0 / qp.scale.astype(np.float64)).astype(np.float32)
    q = round_half_away((w * inv.reshape(shape)).astype(np.float32))
    return np.clip(q, qmin, qmax).astype(dtype), qp.scale


def _dynamic(m: Model, per_channel: bool, min_elements: int = 1024) -> Model:
    """Dynamic range: float weights of hybrid-capable ops become int8 (symmetric), in
    every subgraph (WHILE bodies too).

    Weights under ``min_elements`` elements stay float (the converter's threshold is
    1024). A fused LSTM's eight gate matrices become int8 together, per tensor (the
    hybrid LSTM kernel takes one scale per matrix), when the largest has at least
    ``min_elements`` elements: LiteRT picks the hybrid kernel from their type, so they
    cannot be mixed.
    """
    for s, sg in enumerate(m.subgraphs):
        for op in sg.operators:
            name = m.op_name(op)
            if name == recurrent.LSTM:
                _dynamic_lstm(m, s, op, min_elements)
                continue
            if name not in HYBRID:
                continue
            for j, axis in HYBRID[name].items():
                if j >= len(op.inputs) or op.inputs[j] < 0:
                    continue
                t = op.inputs[j]
                tensor = sg.tensors[t]
                data = m.tensor_data(s, t)
                if tensor.type != FLOAT32 or data is None or data.size < min_elements:
                    continue  # the converter leaves weights under 1024 elements in float
                ax = axis if per_channel and axis is not None else None
                # the MLIR dynamic-range quantizer divides in double
                op.inputs[j] = _int8_weight(m, s, t, data, ax)
                if name == "FULLY_CONNECTED" and op.builtin_options is not None:
                    # the converter asks the hybrid kernel to quantize inputs asymmetrically
                    op.builtin_options["asymmetric_quantize_inputs"] = True
            _reversion(m, s, op, name)
    return m


def _int8_weight(m: Model, s: int, t: int, data: np.ndarray, ax: int | None) -> int:
    """A new int8 symmetric copy of constant ``t`` (eq. 5, divided in double as the
    MLIR dynamic-range quantizer does)."""
    q, scales = quantize_weights_symmetric(data, ax, double=True)
    return _new_tensor(m, s, m.subgraphs[s].tensors[t], type=int(TensorType.INT8),
                       buffer=_new_buffer(m, q.tobytes()),
                       quantization=QuantizationParameters(
                           scale=scales, zero_point=np.zeros(len(scales), np.int64),
                           quantized_dimension=ax or 0))


def _reversion(m: Model, s: int, op: Operator, name: str) -> None:
    sg = m.subgraphs[s]
    code = m.operator_codes[op.opcode_index]
    types = [sg.tensors[i].type if i >= 0 else None for i in op.inputs]
    op.opcode_index = _opcode(m, name, op_version(name, types, [sg.tensors[i].type for i in op.outputs],
                                                  op.options, sg.tensors, op.inputs, code.version))


def _dynamic_lstm(m: Model, s: int, op: Operator, min_elements: int) -> None:
    """The hybrid LSTM (LiteRT ``lstm.cc`` hybrid path): gate matrices (inputs 1-8),
    peephole vectors (9-11) and projection weights (16), when present, int8 per tensor
    (eq. 5); the kernel reads all of them as int8 once input 4 is, so all or none."""
    sg = m.subgraphs[s]
    slots = [j for j in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16) if j < len(op.inputs) and op.inputs[j] >= 0]
    datas = {j: m.tensor_data(s, op.inputs[j]) for j in slots}
    if any(d is None or sg.tensors[op.inputs[j]].type != FLOAT32 for j, d in datas.items()):
        return
    if max(d.size for j, d in datas.items() if j <= 8) < min_elements:
        return
    for j in slots:
        op.inputs[j] = _int8_weight(m, s, op.inputs[j], datas[j], None)
    if op.builtin_options is not None:
        op.builtin_options["asymmetric_quantize_inputs"] = True
    _reversion(m, s, op, recurrent.LSTM)


# ---------------------------------------------------------------------------
# full integer (int8, int16x8, uint8)
# ---------------------------------------------------------------------------
class _IntegerQuantizer:
    def __init__(self, m: Model, mode: str, per_channel: bool, in_type: np.dtype,
                 out_type: np.dtype, denylist: Any, subgraph: int = 0) -> None:
        self.m = m
        self.mode = mode
        self.s = subgraph      # the subgraph this quantizer rewrites (loop bodies: recurrent.py)
        self.sg = m.subgraphs[subgraph]
        self.act = _ACT_TYPE[mode]
        self.per_channel = per_channel and mode != "uint8"
        self.in_type, self.out_type = in_type, out_type
        allowed = {np.dtype(np.float32), np.dtype(_NP[self.act])}
        if mode == "int8":
            allowed.add(np.dtype(np.uint8))
        for kind, t in (("input", in_type), ("output", out_type)):
            if t not in allowed:
                raise InputError(f"inference_{kind}_type {t} is not available in {mode} mode "
                                 f"(choose from {', '.join(sorted(str(a) for a in allowed))})")
        self.denylist = set(denylist if not isinstance(denylist, str) else denylist.split(","))
        self.ranges: dict[int, tuple[float, float]] = {}
        self.float_ops: list[tuple[int, str, str]] = []
        self.params: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self.const_cache: dict[tuple, int] = {}
        self._pending_out: list[tuple[int, int]] = []
        self.forced: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.converter_compatible = True
        self.stats: recurrent.RecurrentStats | None = None   # loop bodies, LSTM logs
        self.lstm_logs: dict = {}
        self.lstm_pending: list[tuple[int, int]] = []
        # quantized loop-carried values (recurrent.py): parameters of this subgraph's
        # inputs, of its outputs by position, and the WHILE operators to rewrite
        self.in_params: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.out_params: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.loop_plans: dict[int, Any] = {}
        self._np_act = _NP[self.act]
        self.carried: Any = None   # quantcore.qat.ModelRanges: parameters the model carries

    # -- calibration -----------------------------------------------------------------
    def collect_ranges(self, dataset: Any, calibrator: Any, default_ranges: Any,
                       workers: int | None = None) -> dict[int, tuple[float, float]]:
        ranges: dict[int, tuple[float, float]] = {}
        if dataset is not None:
            if recurrent.needs_recurrent_calibration(self.m):
                self.stats = recurrent.RecurrentStats(self.m, calibrator)
                self.lstm_logs = self.stats.lstm
                cals = calibrate(self.m, dataset, calibrator, op_observer=self.stats)
            else:
                cals = calibrate(self.m, dataset, calibrator, workers=workers)
            if self.converter_compatible:
                # The converter's calibrator logs in-place inputs after they were
                # overwritten by the output (see inplace.py).
                for _, t_in, t_out in inplace_pairs(self.m, self.s):
                    if t_in in cals and t_out in cals:
                        cals[t_in] = cals[t_in].copy().merge(cals[t_out])
            ranges = {t: c.compute_range() for t, c in cals.items()}
        elif default_ranges is None and not self.carried:
            raise CalibrationError("full integer quantization needs a representative_dataset "
                                   "(or default_ranges=(min, max) for dummy quantization)")
        if default_ranges is not None:
            try:
                lo, hi = (float(v) for v in default_ranges)
            except (TypeError, ValueError):
                raise InputError(f"default_ranges must be (min, max), not {default_ranges!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise InputError(f"default_ranges must be finite with min <= max, not ({lo}, {hi})")
            for t, tensor in enumerate(self.sg.tensors):
                if tensor.type == FLOAT32 and self.m.tensor_data(self.s, t) is None and t not in ranges:
                    ranges[t] = (lo, hi)
        return ranges

    # -- parameters --------------------------------------------------------------------
    def _act_params(self, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "int16x8":
            # legacy quantizer (tools/optimize): float32, symmetric, zero point 0
            a = np.float32(max(abs(min(lo, 0.0)), abs(max(hi, 0.0))))
            scale = np.float32(a / np.float32(32767)) if a > 0 else np.float32(1.0)
            return np.array([scale], np.float32), np.zeros(1, np.int64)
        qp = choose_qparams(lo, hi, _NP[self.act])
        return qp.scale, qp.zero_point

    def _tensor_params(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """An activation's parameters: those the model carries (QAT, eq. 27), else from
        its calibrated range."""
        p = self.carried.activations.get(t) if self.carried else None
        if p is None:
            return self._act_params(*self._range(t))
        if self.mode == "int8":
            return p.signed()
        if self.mode == "uint8":
            return p.unsigned()
        return self._act_params(*p.float_range())

    def _range(self, t: int) -> tuple[float, float]:
        if t in self.ranges:
            lo, hi = self.ranges[t]
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise CalibrationError(
                    f"tensor {t} ({self.sg.tensors[t].name!r}) has the range [{lo}, {hi}]: the float "
                    "model overflows (or gives NaN) on the representative data")
            return lo, hi
        data = self.m.tensor_data(self.s, t)
        if data is not None:
            return float(np.min(data)) if data.size else 0.0, float(np.max(data)) if data.size else 0.0
        raise CalibrationError(f"tensor {t} ({self.sg.tensors[t].name!r}) has no statistics: the "
                               "representative dataset never produced it; pass default_ranges")

    def _set(self, t: int, scale: np.ndarray, zp: np.ndarray, qtype: int, axis: int = 0) -> None:
        tensor = self.sg.tensors[t]
        tensor.type = qtype
        tensor.quantization = QuantizationParameters(scale=np.asarray(scale, np.float32),
                                                     zero_point=np.asarray(zp, np.int64),
                                                     quantized_dimension=axis)
        self.params[t] = (np.asarray(scale, np.float32), np.asarray(zp, np.int64), axis)

    def _new_act(self, like: int, suffix: str | None, role: str = "") -> int:
        """A new activation tensor shaped like ``like``.

        Names follow the converter so models can be diffed: the MLIR quantizer (int8)
        calls the quantized copy of a model input ``tfl.quantize`` and the integer
        copy of a model output ``<name>1``; the legacy quantizer (16x8) uses
        ``<name>_int16`` for both.
        """
        t = self.sg.tensors[like]
        if suffix is None:
            if self.mode == "int16x8":
                name = t.name + "_int16"
            elif role == "input":
                self._quantize_count = getattr(self, "_quantize_count", 0) + 1
                name = "tfl.quantize" + ("" if self._quantize_count == 1 else str(self._quantize_count - 1))
            else:
                name = t.name + "1"
        else:
            name = t.name + suffix
        return _new_tensor(self.m, self.s, t, name=name, buffer=0, quantization=None,
                           type=t.type, shape=list(t.shape), is_variable=False)

    # -- constants ---------------------------------------------------------------------
    def _const(self, t: int, key: tuple, values: np.ndarray, scale, zp, qtype: int, axis: int = 0) -> int:
        """A quantized copy of constant tensor t (shared by identical uses)."""
        full = (t,) + key
        if full in self.const_cache:
            return self.const_cache[full]
        src = self.sg.tensors[t]
        new = _new_tensor(self.m, self.s, src, type=qtype,
                          buffer=_new_buffer(self.m, np.ascontiguousarray(values).astype(
                              np.dtype(_NP[qtype]).newbyteorder("<")).tobytes()),
                          quantization=QuantizationParameters(
                              scale=np.asarray(scale, np.float32), zero_point=np.asarray(zp, np.int64),
                              quantized_dimension=axis))
        self.const_cache[full] = new
        self.params[new] = (np.asarray(scale, np.float32), np.asarray(zp, np.int64), axis)
        return new

    def _quantize_weight(self, t: int, axis: int) -> int:
        data = self.m.tensor_data(self.s, t).astype(np.float32)
        carried = self.carried.weights.get(t) if self.carried else None
        if carried is not None and not (self.mode == "uint8" and len(carried.scale) > 1):
            # (legacy uint8 kernels take per-tensor weights only: per-channel QAT
            # weights are quantized from their values instead)
            return self._quantize_carried_weight(t, data, carried)
        if self.mode == "uint8":
            qp = choose_qparams(float(data.min()), float(data.max()), np.uint8)
            from quantcore.numerics import quantize as affine_quantize
            q = affine_quantize(data, qp.scale, qp.zero_point, np.uint8)
            return self._const(t, ("w", None), q, qp.scale, qp.zero_point, int(TensorType.UINT8))
        ax = axis if self.per_channel and data.ndim > axis else None
        q, scales = quantize_weights_symmetric(data, ax, legacy=self.mode == "int16x8")
        return self._const(t, ("w", ax), q, scales, np.zeros(len(scales), np.int64),
                           int(TensorType.INT8), ax or 0)

    def _quantize_carried_weight(self, t: int, data: np.ndarray, carried: Any) -> int:
        """Weights with the scales and zero points the model carries (QAT):
        ``q = clamp(roundf(f32(w * f32(1 / double(s)))) + z)`` (as the converter's output
        for fake-quantized weights)."""
        uint8 = self.mode == "uint8"
        scale, zp = carried.unsigned() if uint8 else carried.signed()
        qtype = int(TensorType.UINT8) if uint8 else int(TensorType.INT8)
        lo, hi = (carried.qmin, 255) if uint8 else (carried.qmin - 128, 127)
        shape = [1] * data.ndim
        if len(scale) > 1:
            shape[carried.axis] = -1
        inv = (1.0 / scale.astype(np.float64)).astype(np.float32).reshape(shape)
        q = round_half_away((data * inv).astype(np.float32)) + zp.reshape(shape)
        q = np.clip(q, lo, hi).astype(_NP[qtype])
        return self._const(t, ("w", "carried"), q, scale, zp, qtype, carried.axis if len(scale) > 1 else 0)

    def _quantize_bias(self, t: int, s_in: float, s_w: np.ndarray) -> int:
        """int32 (int64 in 16x8) bias, scale f32(double(s_in) * double(s_w)), eq. 16."""
        data = self.m.tensor_data(self.s, t).astype(np.float32)
        scale = (np.float64(s_in) * s_w.astype(np.float64)).astype(np.float32)
        if len(scale) == 1 and data.size > 1:
            scale_b = np.broadcast_to(scale, data.shape)
        else:
            scale_b = scale.reshape(data.shape) if scale.size == data.size else np.broadcast_to(scale, data.shape)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv = (1.0 / scale_b.astype(np.float64)).astype(np.float32)
            v = round_half_away((data * inv).astype(np.float32)).astype(np.float64)
        qtype = int(TensorType.INT64) if self.mode == "int16x8" else int(TensorType.INT32)
        lim = 2**31 - 1 if qtype == int(TensorType.INT32) else 2**63 - 1
        q = np.clip(np.nan_to_num(v), -lim, lim).astype(_NP[qtype])
        return self._const(t, ("b", float(s_in), tuple(s_w.tolist())), q, scale,
                           np.zeros(len(scale), np.int64), qtype, 0)

    def _quantize_other_const(self, t: int, params=None) -> int:
        data = self.m.tensor_data(self.s, t).astype(np.float32)
        carried = self.carried.weights.get(t) if self.carried else None
        if params is None and carried is not None and len(carried.scale) == 1 and self.mode in ("int8", "uint8"):
            params = carried.signed() if self.mode == "int8" else carried.unsigned()   # QAT range
        if params is None:
            lo = float(data.min()) if data.size else 0.0
            hi = float(data.max()) if data.size else 0.0
            scale, zp = self._act_params(lo, hi)
        else:
            scale, zp = params
        from quantcore.numerics import quantize as affine_quantize
        q = affine_quantize(data, scale, zp, _NP[self.act])
        return self._const(t, ("c", float(scale[0]), int(zp[0])), q, scale, zp, self.act)

    # -- the rewrite ---------------------------------------------------------------------
    def _denied(self, o: int, op: Operator, name: str) -> str | None:
        if name in self.denylist or str(o) in self.denylist or o in self.denylist:
            return "denylist"
        for t in op.outputs:
            if t >= 0 and self.sg.tensors[t].name in self.denylist:
                return "denylist"
        if name in PASSTHROUGH:
            return None
        if name == recurrent.LSTM:
            why = recurrent.lstm_unsupported(self.m, self.s, op)
            if why is None and self.mode != "int8":
                why = f"quantcore quantizes the LSTM in int8 mode only, not {self.mode}"
            return why
        rule = RULES.get(name)
        if rule is None:
            return recurrent.FLOAT_REASONS.get(name, "no quantized kernel rule in quantcore")
        if self.mode == "int16x8" and not rule.int16:
            return "LiteRT has no 16x8 kernel"
        return None

    def _version_type(self, tensor_type: int) -> int:
        """The legacy 16x8 quantizer writes the operator versions of the int8 signature."""
        if self.mode == "int16x8" and tensor_type == int(TensorType.INT16):
            return int(TensorType.INT8)
        return tensor_type

    def _is_act(self, t: int) -> bool:
        return t >= 0 and self.sg.tensors[t].type == FLOAT32 and self.m.tensor_data(self.s, t) is None

    def run(self) -> None:
        sg, m = self.sg, self.m
        home: dict[int, str] = {}
        q_of: dict[int, int] = {}
        f_of: dict[int, int] = {}
        outputs = set(sg.outputs)
        new_ops: list[Operator] = []
        qtype = self.act

        def emit(name: str, src: int, dst: int) -> None:
            src_t, dst_t = sg.tensors[src].type, sg.tensors[dst].type
            if name == "QUANTIZE" and src_t != FLOAT32:
                # the legacy 16x8 quantizer versions its requantize ops by their real types
                version = op_version(name, [src_t], [dst_t], {}, sg.tensors, [src], 1)
            else:
                version = op_version(name, [self._version_type(src_t)], [self._version_type(dst_t)], {},
                                     sg.tensors, [src], 1)
            new_ops.append(Operator(opcode_index=_opcode(m, name, version), inputs=[src], outputs=[dst],
                                    builtin_options_type=0))

        def quantized_version(t: int) -> int:
            if home.get(t) == "q":
                return t
            if t not in q_of:
                tq = self._new_act(t, None, role="input")
                scale, zp = self._tensor_params(t)
                self._set(tq, scale, zp, qtype)
                emit("QUANTIZE", t, tq)
                q_of[t] = tq
            return q_of[t]

        def float_version(t: int) -> int:
            if home.get(t) != "q":
                return t
            if t not in f_of:
                tf = self._new_act(t, "_dequantized")
                sg.tensors[tf].type = FLOAT32
                sg.tensors[tf].quantization = None
                emit("DEQUANTIZE", t, tf)
                f_of[t] = tf
            return f_of[t]

        # The MLIR quantizer (int8) propagates shared scales backwards; the legacy
        # quantizer used for 16x8 requantizes instead.
        self.forced = self._shared_scale_constraints() if self.mode != "int16x8" else {}
        for k, params in self.out_params.items():   # loop body outputs: produced at the loop's scale
            if sg.outputs[k] not in sg.inputs:
                self.forced[sg.outputs[k]] = params
        outputs -= {sg.outputs[k] for k in self.out_params}
        # Graph inputs.
        for t in sg.inputs:
            if not self._is_act(t):
                continue
            if t in self.in_params:   # a quantized loop-carried value
                self._set(t, *self.in_params[t], qtype)
                home[t] = "q"
            elif self.in_type == np.float32:
                home[t] = "f"
            else:
                scale, zp = self._tensor_params(t)
                if self.in_type == np.uint8 and qtype == int(TensorType.INT8):
                    self._set(t, scale, zp + 128, int(TensorType.UINT8))
                    home[t] = "f"   # not the int8 version: a QUANTIZE follows
                    tq = self._new_act(t, None, role="input")
                    self._set(tq, scale, zp, qtype)
                    emit("QUANTIZE", t, tq)
                    q_of[t] = tq
                else:
                    self._set(t, scale, zp, qtype)
                    home[t] = "q"

        for o, op in enumerate(sg.operators):
            name = m.op_name(op)
            reason = self._denied(o, op, name)
            if name in PASSTHROUGH and not any(self._is_act(t) or (t >= 0 and home.get(t) == "q")
                                               for t in op.inputs):
                new_ops.append(op)
                continue
            if name not in RULES and name != recurrent.LSTM and not any(
                    self._is_act(t) or (t >= 0 and home.get(t) == "q") for t in op.inputs + op.outputs):
                new_ops.append(op)   # no float data (control flow on integers, resource handles)
                continue
            if name == "WHILE" and o in self.loop_plans:
                kept, dequantize = recurrent.quantize_while(self, self.loop_plans[o], op, home,
                                                            float_version, emit, outputs)
                if kept:
                    self.float_ops.append((o, name, kept))
                new_ops.append(op)
                for tq, t in dequantize:
                    emit("DEQUANTIZE", tq, t)
                continue
            if reason is None and name == recurrent.LSTM:
                recurrent.quantize_lstm(self, o, op, home, quantized_version, outputs, q_of, emit)
                new_ops.append(op)
                for t, tq in self.lstm_pending:
                    emit("DEQUANTIZE", tq, t)
                self.lstm_pending = []
                continue
            if reason is not None or name in PASSTHROUGH:
                if reason is not None:
                    self.float_ops.append((o, name, reason))
                op.inputs = [float_version(t) if t >= 0 else t for t in op.inputs]
                new_ops.append(op)
                for t in op.outputs:
                    if self._is_act(t):
                        home[t] = "f"
                        if t in outputs and self.out_type != np.float32:
                            raise InputError(
                                f"output {sg.tensors[t].name!r} is produced by {name}, kept in float "
                                f"({reason}); use inference_output_type=float32")
                continue
            self._quantize_op(o, op, name, home, quantized_version, emit, new_ops, outputs, q_of)
        for k, params in self.out_params.items():
            recurrent.fix_loop_output(self, k, params, home, emit)
        sg.operators = new_ops

    def _shared_scale_constraints(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Parameters forced on tensors by shared-scale operators (CONCATENATION, ...).

        As the converter's quantization driver does, the output parameters of a
        shared-scale operator (from its own range) propagate backwards to its inputs,
        through data-movement operators (pooling, reshape, ...), up to the operator
        that computes them, which then produces them directly, so no requantization
        is needed. Where the chain ends at a model input, a constant or an operator
        with fixed output parameters, the input is requantized instead (a QUANTIZE is
        inserted at run time). Shared operators are visited last to first so nested
        concatenations agree.
        """
        sg, m = self.sg, self.m
        producer = {t: o for o, op in enumerate(sg.operators) for t in op.outputs if t >= 0}
        forced: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for o in range(len(sg.operators) - 1, -1, -1):
            op = sg.operators[o]
            name = m.op_name(op)
            rule = RULES.get(name)
            if rule is None or not rule.shared or self._denied(o, op, name) or not op.outputs:
                continue
            out = op.outputs[0]
            if not self._is_act(out):
                continue
            params = forced.get(out) or self._tensor_params(out)
            forced[out] = params
            for j, t in enumerate(op.inputs):
                if rule.quantized_inputs is not None and j not in rule.quantized_inputs:
                    continue
                while t >= 0 and self._is_act(t) and t not in forced and t in producer:
                    pop = sg.operators[producer[t]]
                    pname = m.op_name(pop)
                    prule = RULES.get(pname)
                    if pname == recurrent.LSTM and not self._denied(producer[t], pop, pname):
                        forced[t] = params   # the integer LSTM produces any output parameters
                        break
                    if prule is None or self._denied(producer[t], pop, pname) or prule.fixed_output:
                        break
                    forced[t] = params
                    if not prule.same_as_input:
                        break
                    src = pop.inputs[prule.quantized_inputs[0] if prule.quantized_inputs else 0]
                    t = src
        return forced

    def _quantize_op(self, o, op, name, home, quantized_version, emit, new_ops, outputs, q_of) -> None:
        sg, rule, qtype = self.sg, RULES[name], self.act
        ins = list(op.inputs)
        act_in = rule.bias_inputs[0]
        # activations first (weights and bias depend on the input scale)
        for j, t in enumerate(ins):
            if t < 0 or j in rule.weights or j == rule.bias:
                continue
            if self._is_act(t) or home.get(t) == "q" or t in q_of:
                ins[j] = quantized_version(t)
        for j, axis in rule.weights.items():
            if j < len(ins) and ins[j] >= 0 and self.m.tensor_data(self.s, ins[j]) is not None \
                    and sg.tensors[ins[j]].type == FLOAT32:
                ins[j] = self._quantize_weight(ins[j], axis)
        if rule.bias is not None and rule.bias < len(ins) and ins[rule.bias] >= 0 \
                and sg.tensors[ins[rule.bias]].type == FLOAT32:
            s_in = self.params[ins[act_in]][0][0]
            s_w = self.params[ins[rule.bias_inputs[1]]][0]
            ins[rule.bias] = self._quantize_bias(ins[rule.bias], float(s_in), s_w)
        # remaining float constants (ADD operands, PADV2 values, ...)
        out_params = None
        if rule.shared:
            t0 = op.outputs[0]
            out_params = self.forced.get(t0) or self._tensor_params(t0)
        for j, t in enumerate(ins):
            if t >= 0 and sg.tensors[t].type == FLOAT32 and self.m.tensor_data(self.s, t) is not None:
                if rule.quantized_inputs is not None and j not in rule.quantized_inputs:
                    continue
                ins[j] = self._quantize_other_const(t, out_params)
        # shared-scale operators: requantize inputs whose parameters differ
        if rule.shared:
            for j, t in enumerate(ins):
                if t < 0 or t not in self.params or (rule.quantized_inputs is not None and
                                                     j not in rule.quantized_inputs):
                    continue
                s, z, _ = self.params[t]
                if float(s[0]) != float(out_params[0][0]) or int(z[0]) != int(out_params[1][0]):
                    tr = self._new_act(t, "_requantized")
                    self._set(tr, out_params[0], out_params[1], qtype)
                    emit("QUANTIZE", t, tr)
                    ins[j] = tr
        op.inputs = ins
        # outputs
        for k, t in enumerate(op.outputs):
            if not self._is_act(t):
                continue
            if rule.fixed_output is not None:
                key = {int(TensorType.INT8): "int8", int(TensorType.UINT8): "uint8",
                       int(TensorType.INT16): "int16"}[qtype]
                scale, zp = rule.fixed_output[key]
                scale_a, zp_a = np.array([scale], np.float32), np.array([zp], np.int64)
            elif rule.same_as_input:
                j_src = rule.quantized_inputs[0] if rule.quantized_inputs else 0
                src = ins[j_src]
                scale_a, zp_a = self.params[src][0], self.params[src][1]
                if self.carried and t in self.carried.activations and len(op.outputs) == 1:
                    # a QAT range on a data-movement output: requantize the input to it,
                    # as the converter does
                    ws, wz = self._tensor_params(t)
                    if float(ws[0]) != float(scale_a[0]) or int(wz[0]) != int(zp_a[0]):
                        tr = self._new_act(src, "_requantized")
                        self._set(tr, ws, wz, qtype)
                        emit("QUANTIZE", src, tr)
                        ins[j_src] = tr
                        op.inputs = ins
                        scale_a, zp_a = ws, wz
            elif rule.shared:
                scale_a, zp_a = out_params
            elif t in self.forced:
                scale_a, zp_a = self.forced[t]
            else:
                scale_a, zp_a = self._tensor_params(t)
            if t in outputs and self.out_type != np.dtype(_NP[qtype]):
                # Graph output in float (or uint8): the op writes a new integer tensor.
                tq = self._new_act(t, None, role="output")
                self._set(tq, scale_a, zp_a, qtype)
                op.outputs[k] = tq
                q_of[t] = tq
                home[t] = "f"
                self._pending_out.append((t, tq))
            else:
                self._set(t, scale_a, zp_a, qtype)
                home[t] = "q"
        code = self.m.operator_codes[op.opcode_index]
        in_types = [self._version_type(sg.tensors[i].type) if i >= 0 else None for i in op.inputs]
        out_types = [self._version_type(sg.tensors[i].type) for i in op.outputs]
        op.opcode_index = _opcode(self.m, name, op_version(name, in_types, out_types, op.options,
                                                           sg.tensors, op.inputs, code.version))
        new_ops.append(op)
        for t, tq in self._pending_out:
            if self.out_type == np.float32:
                sg.tensors[t].quantization = None
                emit("DEQUANTIZE", tq, t)
            else:  # uint8 output of an int8 model
                s, z, _ = self.params[tq]
                self._set(t, s, z + 128, int(TensorType.UINT8))
                emit("QUANTIZE", tq, t)
        self._pending_out = []
