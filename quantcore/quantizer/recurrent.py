"""Quantizing recurrent models: WHILE loop bodies, resource variables and the fused LSTM.

Three parts (docs/quantization.md, "Recurrent models"):

* **Calibration across iterations.** :class:`RecurrentStats` is installed as the
  interpreter's ``op_observer`` during calibration: it is called after every
  operator of every subgraph, so the tensors of a WHILE body are observed at every
  iteration (the body runs once per iteration), and each fused
  ``UNIDIRECTIONAL_SEQUENCE_LSTM`` is replayed step by step in float to log its cell
  state and hidden values at every time step, as the TF calibrator's logging LSTM
  does (``tensorflow/lite/tools/optimize/calibration/builtin_logging_ops/lstm.cc``).
* **Loops** (:func:`plan_loops`, :func:`quantize_while`, :func:`quantize_subgraphs`).
  Each float loop-carried value of a WHILE in the main subgraph becomes int8 with
  one set of parameters (eq. 29) shared by the WHILE's input and output k, the
  cond's and body's input k and the body's output k (LiteRT copies the bytes from
  one to the next); the body and cond subgraphs are then quantized on their own, so
  the loop body's FULLY_CONNECTED, LOGISTIC, TANH, MUL, ADD, ... run in int8 with no
  QUANTIZE / DEQUANTIZE per iteration (a body output that an operator with fixed
  output parameters produces is requantized). A value stays float at the boundary
  (the body then quantizes it on entry and dequantizes it on exit) when it is a
  model output of another integer type (uint8), when the cond reads it, when the WHILE is denylisted or nested in
  another subgraph, or without statistics; the report says which and why.
  Resource variables (READ_VARIABLE / ASSIGN_VARIABLE) keep float state, with
  QUANTIZE / DEQUANTIZE around their readers and writers.
* **The fused LSTM** (:func:`quantize_lstm`): the converter's integer LSTM (LiteRT
  ``lstm.cc`` 8x8_16 path): int8 input and output, int8 weights symmetric per
  tensor, int32 biases with scale ``s_in * s_w`` of the input-to-gate weight, an
  int16 cell state with a power-of-two scale (eq. 31), the output state sharing the
  output's parameters, and five intermediates: the four gate intermediates float and
  empty (used only with layer normalization, as in the converter's output) and the
  hidden intermediate, which without projection the kernel writes into the output
  state and the output, with their parameters: the union of the output's range and
  the hidden values ``o * tanh(c)`` logged at every step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantcore.calibration import Calibrator, make_calibrator
from quantcore.errors import InputError
from quantcore.schema.model import Model, TensorType

FLOAT32 = int(TensorType.FLOAT32)
LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"

# Why operators that carry float data stay float (the quantizer's report).
FLOAT_REASONS = {
    "WHILE": "a WHILE outside the main subgraph: its loop-carried values stay float at the "
             "boundary; its body subgraph is quantized inside (QUANTIZE on entry, DEQUANTIZE "
             "on exit)",
    "IF": "branch inputs and outputs stay float; the branch subgraphs are quantized inside",
    "CALL_ONCE": "runs the variable initializer subgraph",
    "READ_VARIABLE": "resource variable state stays float (QUANTIZE after the read)",
    "ASSIGN_VARIABLE": "resource variable state stays float (DEQUANTIZE before the write)",
    "VAR_HANDLE": "resource handle",
}

# LSTM input slots (LiteRT lstm_shared.h).
_I2G = {"i": 1, "f": 2, "c": 3, "o": 4}
_R2G = {"i": 5, "f": 6, "c": 7, "o": 8}
_BIAS = {"i": 12, "f": 13, "c": 14, "o": 15}
_PEEPHOLE, _PROJECTION, _LAYER_NORM = (9, 10, 11), (16, 17), (20, 21, 22, 23)
_H_STATE, _C_STATE = 18, 19


def _present(op, j: int) -> bool:
    return j < len(op.inputs) and op.inputs[j] >= 0


def lstm_unsupported(m: Model, s: int, op) -> str | None:
    """Why quantcore cannot give this LSTM the integer kernel (None when it can):
    the variants Keras emits (no peephole, projection, layer norm or CIFG) are handled."""
    if any(_present(op, j) for j in _PEEPHOLE + _PROJECTION + _LAYER_NORM):
        return "integer LSTM with peephole, projection or layer norm not implemented in quantcore"
    if not _present(op, 1):
        return "integer CIFG LSTM not implemented in quantcore"
    sg = m.subgraphs[s]
    for j in (_H_STATE, _C_STATE):
        t = op.inputs[j] if _present(op, j) else -1
        if t < 0 or not sg.tensors[t].is_variable or m.tensor_data(s, t) is not None:
            return f"LSTM state input {j} is not a variable tensor"
    act = op.options.get("fused_activation_function", 0)
    if act != 4:   # TANH: the only activation of LiteRT's integer LSTM
        return "the integer LSTM needs a TANH activation"
    for j in list(_I2G.values()) + list(_R2G.values()) + list(_BIAS.values()):
        t = op.inputs[j]
        if t < 0 or m.tensor_data(s, t) is None or sg.tensors[t].type != FLOAT32:
            return f"LSTM input {j} is not a float constant"
    return None


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------
class _LstmLog:
    """Per LSTM: its state between invokes and the logged ranges."""

    def __init__(self, calibrator: Any) -> None:
        self.h: np.ndarray | None = None
        self.c: np.ndarray | None = None
        self.cell_absmax = 0.0
        self.hidden = make_calibrator(calibrator)


class RecurrentStats:
    """The calibration ``op_observer`` (see :mod:`quantcore.runtime.interpreter`).

    * every non-constant float32 tensor of subgraphs >= 1, at every execution of the
      operator producing it (and subgraph inputs, each time an operator reads them):
      a WHILE body's tensors are observed at every iteration;
    * every float ``UNIDIRECTIONAL_SEQUENCE_LSTM`` of subgraph 0, replayed time step by
      time step (``_lstm.float_step``, the kernel's own arithmetic) from the state it
      had before the invoke, logging max |c| over all steps (eq. 31) and the range of
      the hidden value ``o * tanh(c)`` (intermediate 4).
    """

    def __init__(self, model: Model, calibrator: str | Calibrator = "minmax") -> None:
        self.model = model
        self.calibrator = calibrator
        self.cals: dict[tuple[int, int], Calibrator] = {}
        self.lstm: dict[int, _LstmLog] = {}
        self.float_tensors: list[set[int]] = []
        self.sg_inputs: list[set[int]] = []
        for s, sg in enumerate(model.subgraphs):
            self.float_tensors.append({i for i, t in enumerate(sg.tensors) if s > 0 and
                                       t.type == FLOAT32 and model.tensor_data(s, i) is None})
            self.sg_inputs.append(set(sg.inputs))
        for o, op in enumerate(model.subgraphs[0].operators):
            if model.op_name(op) == LSTM and lstm_unsupported(model, 0, op) is None:
                self.lstm[o] = _LstmLog(calibrator)

    def _observe(self, s: int, t: int, v: np.ndarray) -> None:
        key = (s, t)
        if key not in self.cals:
            self.cals[key] = make_calibrator(self.calibrator)
        self.cals[key].observe(v)

    def __call__(self, s: int, p: Any, args: list, results: list) -> None:
        if s > 0:
            ft, ins = self.float_tensors[s], self.sg_inputs[s]
            for t, v in zip(p.inputs, args):
                if t in ins and t in ft and v is not None:
                    self._observe(s, t, v)
            for t, v in zip(p.outputs, results):
                if t in ft:
                    self._observe(s, t, v)
        elif p.index in self.lstm and p.name == LSTM:
            self._replay_lstm(self.lstm[p.index], p, args)

    @staticmethod
    def _replay_lstm(log: _LstmLog, p: Any, args: list) -> None:
        from quantcore.runtime.ops import _lstm
        from quantcore.runtime.ops.unidirectional_sequence_lstm import weights_dict
        lp = p.params.lstm
        if lp.kind != "float":
            return
        args = list(args) + [None] * (24 - len(args))
        W = weights_dict(lp, p.params.slots, args)
        x = np.asarray(args[0], np.float32)
        xt = x if lp.time_major else np.swapaxes(x, 0, 1)   # [T, B, n_input]
        n_batch = xt.shape[1]
        if log.h is None:   # the variable tensors start at zero (ResetVariableTensor)
            log.h = np.zeros((n_batch, lp.n_output), np.float32)
            log.c = np.zeros((n_batch, lp.n_cell), np.float32)
        h, c = log.h, log.c
        for step in range(xt.shape[0]):
            rows = [_lstm.float_step(lp, W, xt[step, b:b + 1], None, h[b:b + 1], c[b:b + 1])
                    for b in range(n_batch)]
            h = np.concatenate([r[0] for r in rows], axis=0)
            c = np.concatenate([r[1] for r in rows], axis=0)
            log.cell_absmax = max(log.cell_absmax, float(np.max(np.abs(c))) if c.size else 0.0)
            log.hidden.observe(h)
        log.h, log.c = h, c

    def ranges(self, s: int) -> dict[int, tuple[float, float]]:
        """Calibrated (min, max) of subgraph ``s``'s tensors."""
        return {t: cal.compute_range() for (ss, t), cal in self.cals.items() if ss == s}


def needs_recurrent_calibration(m: Model) -> bool:
    return len(m.subgraphs) > 1 or any(m.op_name(op) == LSTM for op in m.subgraphs[0].operators)


# ---------------------------------------------------------------------------
# WHILE loops: quantized loop-carried values
# ---------------------------------------------------------------------------
@dataclass
class LoopPlan:
    """One WHILE of the main subgraph whose float loop-carried values become integer.

    ``params[k]``: (scale, zero point) of loop variable k, shared by the WHILE's input
    and output k, the cond's and the body's input k and the body's output k (LiteRT
    copies the bytes between them, so one set of parameters must describe all five:
    eq. 29). ``floats[k]``: why float variable k stays float.
    """
    op: int
    cond: int
    body: int
    params: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    floats: dict[int, str] = field(default_factory=dict)


def _callees(m: Model) -> dict[int, int]:
    """How many operators call each subgraph (WHILE, IF, CALL_ONCE options)."""
    count: dict[int, int] = {}
    keys = ("cond_subgraph_index", "body_subgraph_index", "then_subgraph_index",
            "else_subgraph_index", "init_subgraph_index")
    for sg in m.subgraphs:
        for op in sg.operators:
            for key in keys:
                v = (op.options or {}).get(key)
                if v is not None:
                    count[int(v)] = count.get(int(v), 0) + 1
    return count


def plan_loops(q: Any) -> dict[int, LoopPlan]:
    """Parameters for the float loop variables of each WHILE of the main subgraph.

    Variable k's range is the union of the ranges calibrated for the WHILE's input and
    output k and the body's input and output k (observed at every iteration); it stays
    float when it is a model output of another type than float32 or the activation
    type, when the cond reads it (the cond would have to be
    quantized too), when the cond or body is called from elsewhere, or without
    statistics. ``q`` is the main subgraph's integer quantizer (core.py).
    """
    m, sg = q.m, q.sg
    stats: RecurrentStats | None = q.stats
    callers = _callees(m)
    plans: dict[int, LoopPlan] = {}
    for o, op in enumerate(sg.operators):
        if m.op_name(op) != "WHILE" or q._denied(o, op, "WHILE") == "denylist":
            continue
        cond, body = int(op.options["cond_subgraph_index"]), int(op.options["body_subgraph_index"])
        plan = LoopPlan(o, cond, body)
        csg, bsg = m.subgraphs[cond], m.subgraphs[body]
        read_by_cond = {t for cop in csg.operators for t in cop.inputs}
        body_ranges = stats.ranges(body) if stats is not None else {}
        for k, t in enumerate(op.inputs):
            if t < 0 or sg.tensors[t].type != FLOAT32:
                continue
            out = op.outputs[k]
            why = None
            if callers.get(cond, 0) > 1 or callers.get(body, 0) > 1:
                why = "its cond or body subgraph is called from elsewhere"
            elif out in sg.outputs and q.out_type not in (np.dtype(np.float32), np.dtype(q._np_act)):
                why = f"it is a model output of type {q.out_type}"
            elif csg.inputs[k] in read_by_cond:
                why = "the loop condition reads it"
            spans = []
            if q.m.tensor_data(q.s, t) is not None or t in q.ranges:
                spans.append(q._range(t))
            if out in q.ranges:
                spans.append(q.ranges[out])
            for bt in (bsg.inputs[k], bsg.outputs[k]):
                if bt in body_ranges:
                    spans.append(body_ranges[bt])
            if why is None and not spans:
                why = "no statistics"
            if why is not None:
                plan.floats[k] = why
                continue
            lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
            plan.params[k] = q._act_params(lo, hi)
        plans[o] = plan
    return plans


def _same(q: Any, t: int, params: tuple[np.ndarray, np.ndarray]) -> bool:
    s, z, _ = q.params[t]
    return float(s[0]) == float(params[0][0]) and int(z[0]) == int(params[1][0])


def quantize_while(q: Any, plan: LoopPlan, op: Any, home: dict, float_version, emit,
                   outputs: set) -> tuple[str | None, list[tuple[int, int]]]:
    """Rewrite one planned WHILE: its planned inputs quantized (constants directly,
    float values by a QUANTIZE, integer ones requantized where their parameters differ),
    its planned outputs integer (a float model output then comes from a DEQUANTIZE);
    other float variables stay float. Returns the reason when some stay float (for the
    report, else None) and the (integer, float) output pairs to dequantize after it."""
    qtype = q.act
    ins = list(op.inputs)
    for k, t in enumerate(ins):
        if t < 0:
            continue
        if k in plan.params:
            params = plan.params[k]
            if q.m.tensor_data(q.s, t) is not None:
                ins[k] = q._quantize_other_const(t, params)
            elif home.get(t) == "q" and _same(q, t, params):
                continue
            else:
                new = q._new_act(t, "_loop")
                q._set(new, *params, qtype)
                emit("QUANTIZE", t, new)   # from float, or a requantization
                ins[k] = new
        elif q._is_act(t) or home.get(t) == "q":
            ins[k] = float_version(t)
    op.inputs = ins
    dequantize: list[tuple[int, int]] = []
    for k, t in enumerate(op.outputs):
        if k in plan.params and t in outputs and q.out_type == np.dtype(np.float32):
            tq = q._new_act(t, None, role="output")
            q._set(tq, *plan.params[k], qtype)
            op.outputs[k] = tq
            home[t] = "f"
            dequantize.append((tq, t))
        elif k in plan.params:
            q._set(t, *plan.params[k], qtype)
            home[t] = "q"
        elif q._is_act(t):
            home[t] = "f"
            if t in outputs and q.out_type != np.dtype(np.float32):
                raise InputError(f"output {q.sg.tensors[t].name!r} is loop-carried value {k} of a "
                                 f"WHILE, kept in float ({plan.floats.get(k)}); use "
                                 "inference_output_type=float32")
    reason = None
    if plan.floats:
        reason = "; ".join(f"loop-carried value {k} stays float at the WHILE boundary ({why})"
                           for k, why in sorted(plan.floats.items()))
    return reason, dequantize


def fix_loop_output(q: Any, k: int, params: tuple[np.ndarray, np.ndarray], home: dict, emit) -> None:
    """Body output k must carry the loop variable's parameters: quantize it (a float
    value) or requantize it (other parameters) into a new tensor that becomes output k."""
    sg = q.sg
    t = sg.outputs[k]
    if home.get(t) == "q" and _same(q, t, params):
        return
    new = q._new_act(t, "_loop")
    q._set(new, *params, q.act)
    emit("QUANTIZE", t, new)
    sg.outputs[k] = new


# ---------------------------------------------------------------------------
# loop bodies and other subgraphs
# ---------------------------------------------------------------------------
def quantize_subgraphs(make_quantizer, m: Model, stats: RecurrentStats | None,
                       default_ranges: Any, plans: dict[int, LoopPlan] | None = None
                       ) -> list[tuple[int, str, str]]:
    """Quantize every subgraph but the main one with float inputs and outputs, except
    the loop variables a :class:`LoopPlan` makes integer.

    ``make_quantizer(s)`` builds the integer quantizer of subgraph ``s`` (float I/O).
    Returns the operators kept float, named with their subgraph.
    """
    kept: list[tuple[int, str, str]] = []
    in_params: dict[int, dict] = {}
    out_params: dict[int, dict] = {}
    for plan in (plans or {}).values():
        for k, params in plan.params.items():
            for s in (plan.cond, plan.body):
                in_params.setdefault(s, {})[m.subgraphs[s].inputs[k]] = params
            out_params.setdefault(plan.body, {})[k] = params
    for s in range(1, len(m.subgraphs)):
        sg = m.subgraphs[s]
        has_float = any(t.type == FLOAT32 and m.tensor_data(s, i) is None
                        for i, t in enumerate(sg.tensors))
        if not has_float:
            continue
        q = make_quantizer(s)
        ranges = stats.ranges(s) if stats is not None else {}
        if default_ranges is not None:
            lo, hi = (float(v) for v in default_ranges)
            for t in range(len(sg.tensors)):
                if sg.tensors[t].type == FLOAT32 and m.tensor_data(s, t) is None:
                    ranges.setdefault(t, (lo, hi))
        q.ranges = ranges
        q.in_params = in_params.get(s, {})
        q.out_params = out_params.get(s, {})
        q.run()
        kept.extend((o, f"{name} in subgraph {s}", reason) for o, name, reason in q.float_ops)
    return kept


# ---------------------------------------------------------------------------
# the fused LSTM
# ---------------------------------------------------------------------------
def cell_state_scale(absmax: float) -> float:
    """The int16 cell state's scale, eq. 31 (``GetPowerOfTwoScale``,
    ``tensorflow/lite/tools/optimize/quantization_utils.cc``): the smallest power of two
    ``2^p >= max|c|`` with ``p`` in [0, 10], over 32768."""
    pot = 0
    for _ in range(10):
        if 2.0 ** pot < absmax:
            pot += 1
    return 2.0 ** pot / 32768.0


def quantize_lstm(q: Any, o: int, op: Any, home: dict, quantized_version, outputs: set,
                  q_of: dict, emit) -> None:
    """Give one float ``UNIDIRECTIONAL_SEQUENCE_LSTM`` of subgraph 0 the integer kernel
    (LiteRT ``lstm.cc`` ``PopulateQuantizedLstmParams8x8_16``); see the module docstring.
    ``q`` is the integer quantizer (core.py)."""
    from .core import _new_tensor, quantize_weights_symmetric
    sg, m, qtype = q.sg, q.m, q.act
    log: _LstmLog | None = q.lstm_logs.get(o) if q.lstm_logs else None
    ins = list(op.inputs)
    ins[0] = quantized_version(ins[0])
    s_in = float(q.params[ins[0]][0][0])
    s_w = {}
    for g in "ifco":
        for slots in (_I2G, _R2G):
            t = ins[slots[g]]
            data = m.tensor_data(q.s, t).astype(np.float32)
            values, scale = quantize_weights_symmetric(data, None)
            ins[slots[g]] = q._const(t, ("w", None), values, scale, np.zeros(1, np.int64),
                                     int(TensorType.INT8))
        s_w[g] = q.params[ins[_I2G[g]]][0]
        ins[_BIAS[g]] = q._quantize_bias(ins[_BIAS[g]], s_in, s_w[g])
    out = op.outputs[0]
    # The kernel copies the output state into the output: they share parameters
    # (the output's range, or what a shared-scale consumer forces on it).
    h_var, c_var = ins[_H_STATE], ins[_C_STATE]
    if out in q.forced:
        scale, zp = q.forced[out]
    else:
        lo, hi = q._range(out)
        if h_var in q.ranges:
            lo, hi = min(lo, q.ranges[h_var][0]), max(hi, q.ranges[h_var][1])
        if log is not None and log.cell_absmax > 0:   # the LSTM ran during calibration
            h_lo, h_hi = log.hidden.compute_range()
            lo, hi = min(lo, h_lo), max(hi, h_hi)
        scale, zp = q._act_params(lo, hi)
    q._set(h_var, scale, zp, qtype)
    if log is not None:
        cell = cell_state_scale(log.cell_absmax)
    else:   # no statistics (default_ranges): the cell clip, else |c| <= 8
        cell = cell_state_scale(float(op.options.get("cell_clip", 0.0)) or 8.0)
    q._set(c_var, np.array([cell], np.float32), np.zeros(1, np.int64), int(TensorType.INT16))
    inter = []
    for name in ("input_to_input_intermediate", "input_to_forget_intermediate",
                 "input_to_cell_intermediate", "input_to_output_intermediate"):
        inter.append(_new_tensor(m, q.s, sg.tensors[out], name=name, shape=[0], buffer=0,
                                 quantization=None, type=FLOAT32, is_variable=False,
                                 shape_signature=None))
    hidden = _new_tensor(m, q.s, sg.tensors[out], name="effective_hidden_scale_intermediate",
                         shape=[0], buffer=0, quantization=None, type=FLOAT32, is_variable=False,
                         shape_signature=None)
    # Without projection the kernel writes the hidden value, quantized with intermediate
    # 4's parameters, straight into the output state and the output
    # (CalculateLstmOutputInteger8x8_16): all three must share parameters. (The
    # converter calibrates intermediate 4 on its own; where that range differs from the
    # output's, as in a Bidirectional LSTM whose output a CONCATENATION rescales, its
    # model dequantizes the output with the wrong scale.)
    q._set(hidden, scale, zp, qtype)
    inter.append(hidden)
    op.inputs = ins
    op.intermediates = inter
    if out in outputs and q.out_type != np.dtype(np.int8):
        tq = q._new_act(out, None, role="output")
        q._set(tq, scale, zp, qtype)
        op.outputs[0] = tq
        q_of[out] = tq
        home[out] = "f"
        sg.tensors[out].quantization = None
        q.lstm_pending.append((out, tq))
    else:
        q._set(out, scale, zp, qtype)
        home[out] = "q"


def loop_notes(m: Model, plans: dict[int, LoopPlan]) -> list[str]:
    """Human-readable notes on each WHILE of the main subgraph: which loop-carried
    values are integer (with their parameters) and which body is quantized inside."""
    notes = []
    for o, op in enumerate(m.subgraphs[0].operators):
        if m.op_name(op) != "WHILE":
            continue
        body = op.options.get("body_subgraph_index")
        plan = plans.get(o)
        if plan is None:
            notes.append(f"operator {o} WHILE: loop-carried values float at the boundary, body "
                         f"subgraph {body} quantized inside")
            continue
        ints = ", ".join(f"{k} (scale {float(p[0][0]):.6g}, zero point {int(p[1][0])})"
                         for k, p in sorted(plan.params.items()))
        notes.append(f"operator {o} WHILE: integer loop-carried values {ints or 'none'}; body "
                     f"subgraph {body} quantized inside")
    return notes
