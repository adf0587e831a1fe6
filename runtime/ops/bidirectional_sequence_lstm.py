"""BIDIRECTIONAL_SEQUENCE_LSTM: a forward and a backward LSTM over one sequence; float32
and hybrid (int8 weights, float activations), with optional auxiliary input.

Mirrors LiteRT's ``tflite/kernels/bidirectional_sequence_lstm.cc``: 48 inputs (0 input,
1-17 forward weights/biases/projection, 18-34 the same for backward, 35-38 forward and
backward output/cell states (variables), 39 aux input, 40-43 forward and 44-47 backward
aux-input weights); one output when ``merge_outputs`` (forward then backward features
concatenated on the last axis), else two. The backward pass runs the sequence in
reverse and writes each step's output at that step's position. With an aux input but
no aux weights ("non-stacking" mode) the backward LSTM reads the aux input instead of
the input. No layer norm (LiteRT passes none); the integer path does not exist in
LiteRT for this op. Refused: ``merge_outputs`` with batch-major input and n_batch > 1
(LiteRT then indexes the output state out of bounds). Each direction is the LSTM of ``_lstm.py`` (float: within float
rounding; hybrid: the SSE integer products exactly).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import _lstm
from ._common import FLOAT32, REINTERPRET, OpContext
from ._control_flow import check_sequence_steps
from .unidirectional_sequence_lstm import prepare_lstm

NUMERICS = ("reference",)

_DIR_NAMES = ("i2i", "i2f", "i2c", "i2o", "r2i", "r2f", "r2c", "r2o", "c2i", "c2f", "c2o",
              "bi", "bf", "bc", "bo", "proj_w", "proj_b")


def _slots(direction: str) -> dict:
    base = 1 if direction == "fw" else 18
    m = {n: base + k for k, n in enumerate(_DIR_NAMES)}
    m["h"], m["c"] = (35, 36) if direction == "fw" else (37, 38)
    aux = 40 if direction == "fw" else 44
    for k, g in enumerate("ifco"):
        m["a2" + g] = aux + k
    return m


@dataclass(frozen=True)
class Params:
    fw: _lstm.LstmParams
    bw: _lstm.LstmParams
    merge_outputs: bool
    time_major: bool
    use_aux: bool              # aux weights present: aux input feeds both directions
    non_stacking: bool         # aux input without aux weights: backward reads it
    n_fw_output: int
    n_bw_output: int


def prepare(ctx: OpContext) -> Params:
    ctx.check(len(ctx.inputs) == 48, f"expects 48 inputs, has {len(ctx.inputs)}")
    merge = bool(ctx.options.get("merge_outputs", False))
    ctx.check(len(ctx.outputs) == (1 if merge else 2),
              f"expects {1 if merge else 2} outputs with merge_outputs={merge}")
    time_major = bool(ctx.options.get("time_major", True))
    aux = ctx.inputs[39]
    use_aux = ctx.inputs[41] is not None
    non_stacking = not use_aux and aux is not None
    x = ctx.input(0)
    ctx.check(x.type == FLOAT32, f"input must be FLOAT32 (float or hybrid), is {x.type_name}" + REINTERPRET)
    if non_stacking:   # CheckAuxInputTensorDimensions: the backward LSTM reads it instead of x
        ctx.check(len(aux.shape) == 3 and tuple(aux.shape) == tuple(x.shape),
                  f"aux input without aux weights must have the input's shape "
                  f"{list(x.shape)}, has {list(aux.shape)}")
        ctx.check(aux.type == x.type, f"aux input without aux weights must have the input's "
                  f"type {x.type_name}, has {aux.type_name}" + REINTERPRET)
    params = {}
    for d in ("fw", "bw"):
        slots = _slots(d)

        def get(name, slots=slots, d=d):
            if name == "input":
                return aux if (d == "bw" and non_stacking) else x
            if name.startswith("ln_"):
                return None
            return ctx.inputs[slots[name]]
        for g in "ifco":   # LiteRT's CheckLstmTensorDimensionsAndTypes: no diagonal form here
            r = get("r2" + g)
            ctx.check(r is None or len(r.shape) == 2, f"{d}: recurrent_to_{g} weights must be 2-D, "
                      f"have shape {list(r.shape) if r is not None else None}")
        p, kind = prepare_lstm(ctx, get, time_major=time_major, prefix=f"{d}: ")
        ctx.check(kind in ("float", "hybrid"), f"{d}: only float and hybrid are supported")
        n_aux = 0
        if use_aux:
            ctx.check(aux is not None and len(aux.shape) == 3 and tuple(aux.shape[:2]) ==
                      tuple(x.shape[:2]), "aux input must be 3-D with the input's first two dims")
            n_aux = aux.shape[2]
            for g in "ifco":
                w = get("a2" + g)
                if g == "i" and p.use_cifg:
                    continue
                ctx.check(w is not None and tuple(w.shape) == (p.n_cell, n_aux),
                          f"{d}: aux_input_to_{g} weights must be [{p.n_cell}, {n_aux}]")
                ctx.check(w.type == get("i2o").type, f"{d}: aux weights type differs from the weights'" + REINTERPRET)
        ws = dict(p.weight_scale)
        if kind == "hybrid" and use_aux:
            ws.update(_lstm.hybrid_scales(ctx, get, ["a2i", "a2f", "a2c", "a2o"]))
        params[d] = dataclasses.replace(p, n_aux_input=n_aux, weight_scale=ws)
    check_sequence_steps(ctx, x.shape, time_major=time_major, directions=2)
    fw, bw = params["fw"], params["bw"]
    n_batch = x.shape[1] if time_major else x.shape[0]
    if merge and not time_major and n_batch > 1:
        # lstm_eval.cc's batch-major loop offsets the output state by
        # b * output_batch_leading_dim (n_fw + n_bw when merged) instead of b * n_output:
        # rows past the first are read and written outside the state tensor.
        raise ctx.error("merge_outputs with batch-major input and more than one batch: LiteRT "
                        "would address the output state with the merged output's stride (out of "
                        "bounds)")
    return Params(fw, bw, merge, time_major, use_aux, non_stacking, fw.n_output, bw.n_output)


def _weights(p: _lstm.LstmParams, slots: dict, inputs) -> dict:
    W = {}
    for n, i in slots.items():
        v = inputs[i]
        if v is None or n in ("h", "c"):
            continue
        if p.kind == "float" or n[0] == "b" or n == "proj_b":
            W[n] = np.asarray(v, np.float32)
        else:
            W[n] = np.asarray(v).astype(np.int64)
    return W


def eval(params: Params, *inputs):
    x = inputs[0]
    aux = inputs[39]
    xt = x if params.time_major else np.swapaxes(x, 0, 1)
    at = None if aux is None else (aux if params.time_major else np.swapaxes(aux, 0, 1))
    results = []
    for d, p, forward in (("fw", params.fw, True), ("bw", params.bw, False)):
        slots = _slots(d)
        W = _weights(p, slots, inputs)
        h_var, c_var = inputs[slots["h"]], inputs[slots["c"]]
        seq = at if (d == "bw" and params.non_stacking) else xt
        row_sums = _lstm.hybrid_row_sums(p, W) if p.kind == "hybrid" else None
        outs, h, c = _lstm.run_sequence(p, W, seq, h_var, c_var, forward=forward,
                                        aux=at if params.use_aux else None, row_sums=row_sums)
        np.copyto(h_var, h.reshape(h_var.shape).astype(h_var.dtype))
        np.copyto(c_var, c.reshape(c_var.shape).astype(c_var.dtype))
        results.append(outs)
    if params.merge_outputs:
        out = np.concatenate(results, axis=-1)
        out = out if params.time_major else np.swapaxes(out, 0, 1)
        return [np.ascontiguousarray(out.astype(np.float32))]
    return [np.ascontiguousarray((o if params.time_major else np.swapaxes(o, 0, 1)).astype(np.float32))
            for o in results]
