"""RNN (basic RNN cell): ``h = act(x W^T + h W_r^T + b)``; float32 and hybrid (int8
weights, float activations, symmetric or asymmetric input quantization).

Mirrors LiteRT's ``tflite/kernels/basic_rnn.cc`` (Prepare checks) and
``tflite/kernels/internal/kernel_utils.cc`` ``RnnBatchStep`` (float and hybrid).
Inputs: input [B, input_size], weights [units, input_size], recurrent weights [units,
units], bias [units], hidden state [B, units] (a variable tensor: updated in place,
persists across invokes). Output [B, units] (the new hidden state).

Float: bias, then the two products (LiteRT's float ``MatrixBatchVectorMultiplyAccumulate``;
agreement within float rounding), then the activation. Hybrid: each nonzero operand
is quantized per batch row (``BatchQuantizeFloats``), its scales multiplied by the
weight scale in float32, the SSE int32 dot products (minus ``zero_point * row_sum``
for asymmetric inputs) scaled and added in float32 — the same arithmetic as the LSTM's
hybrid gates (``_lstm._mbvma_hybrid``), bit-exact with LiteRT up to the final
activation (Eigen tanh/logistic). uint8 weights are not supported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _lstm
from ._common import FLOAT32, INT8, REINTERPRET, OpContext
from ._control_flow import check_sequence_steps
from ._matmul_hybrid import batch_quantize_floats, sse_reduction_sum_int8

NUMERICS = ("reference",)
F32 = np.float32


@dataclass(frozen=True)
class Params:
    kind: str                 # "float" or "hybrid"
    activation: int
    asymmetric: bool
    w_scale: float
    r_scale: float
    time_major: bool = False
    sequence: bool = False


def prepare_common(ctx: OpContext, *, sequence: bool) -> Params:
    ctx.check_io_count(5, 1)
    x, w, r, b, h = (ctx.input(i) for i in range(5))
    time_major = bool(ctx.options.get("time_major", False)) if sequence else False
    if sequence:
        ctx.check(len(x.shape) == 3, f"input must have rank 3, has {list(x.shape)}")
        # unidirectional_sequence_rnn.cc checks NumDimensions(bias) == 1; basic_rnn.cc not
        ctx.check(len(w.shape) == 2 and len(r.shape) == 2 and len(b.shape) == 1,
                  "weights must be 2-D and the bias 1-D")
        batch = x.shape[1] if time_major else x.shape[0]
        input_size = x.shape[2]
    else:
        # LiteRT checks only the bias's dims[0] (== units) and reads units values
        ctx.check(len(x.shape) >= 2 and len(w.shape) == 2 and len(r.shape) == 2 and len(b.shape) >= 1,
                  "input must have rank >= 2, weights rank 2, bias rank >= 1")
        # basic_rnn.cc: batch = dims[0], input size = dims[1], whatever the rank; Eval
        # reads the first batch * input_size values
        batch = x.shape[0]
        input_size = x.shape[1]
        ctx.check(x.num_elements >= batch * input_size, f"input {list(x.shape)} has fewer than "
                  f"batch * input_size = {batch * input_size} values: LiteRT would read past it")
    units = w.shape[0]
    ctx.check(input_size == w.shape[1], f"input size {input_size} != weights columns {w.shape[1]}")
    ctx.check(b.shape[0] == units, f"bias has {b.shape[0]} elements, expected {units}")
    ctx.check(tuple(r.shape) == (units, units), f"recurrent weights {list(r.shape)}, expected "
              f"{[units, units]}")
    ctx.check(x.type == FLOAT32, f"input must be FLOAT32, is {x.type_name}" + REINTERPRET)
    ctx.check(w.type == r.type, "weights and recurrent weights differ in type")
    ctx.check(len(h.shape) == 2 and tuple(h.shape) == (batch, units),
              f"hidden state {list(h.shape)}, expected {[batch, units]}")
    ctx.check(b.type == FLOAT32 and h.type == FLOAT32, "bias and hidden state must be FLOAT32" + REINTERPRET)
    ctx.require_variable(h, "hidden state")
    if sequence:   # one vectorized step over the batch per time step
        check_sequence_steps(ctx, x.shape, time_major=time_major, per_batch_row=False)
    act = int(ctx.options.get("fused_activation_function", 0))
    ctx.check(act in range(7), f"unknown activation {act}")
    if w.type == FLOAT32:
        return Params("float", act, False, 1.0, 1.0, time_major, sequence)
    if w.type != INT8:
        raise ctx.unsupported(f"weights of type {w.type_name} (float32 and int8 supported)")
    s = _lstm.hybrid_scales(ctx, lambda n: {"w": w, "r": r}[n], ["w", "r"])
    return Params("hybrid", act, bool(ctx.options.get("asymmetric_quantize_inputs", False)),
                  float(s["w"]), float(s["r"]), time_major, sequence)


def prepare(ctx: OpContext) -> Params:
    return prepare_common(ctx, sequence=False)


def rnn_step(p: Params, x, w, r, b, h, row_sums):
    """``RnnBatchStep`` for all batches: returns the new hidden state (float32)."""
    with np.errstate(invalid="ignore", over="ignore"):   # inf/NaN propagate as in C
        return _rnn_step(p, x, w, r, b, h, row_sums)


def _rnn_step(p: Params, x, w, r, b, h, row_sums):
    n_batch = x.shape[0]
    out = np.broadcast_to(b.astype(F32), (n_batch, len(b))).astype(F32)
    if p.kind == "float":
        out = _lstm._fc(out, x.astype(F32), w)
        out = _lstm._fc(out, h, r)
    else:
        if np.any(x != 0):
            q, s, z = batch_quantize_floats(x.astype(F32), p.asymmetric)
            out = _lstm._mbvma_hybrid(out, q, s, z, w, p.w_scale, row_sums[0])
        if np.any(h != 0):
            q, s, z = batch_quantize_floats(h, p.asymmetric)
            out = _lstm._mbvma_hybrid(out, q, s, z, r, p.r_scale, row_sums[1])
    a = _lstm.apply_activation(out, p.activation)
    return out if a is None else a


def bias_values(b, w) -> np.ndarray:
    """The bias as RnnBatchStep reads it: its first ``units`` values, whatever its shape."""
    return np.asarray(b).reshape(-1)[:w.shape[0]]


def _weights(p: Params, w, r):
    if p.kind == "float":
        return w.astype(F32), r.astype(F32), (None, None)
    w = w.astype(np.int64)
    r = r.astype(np.int64)
    sums = (sse_reduction_sum_int8(w), sse_reduction_sum_int8(r)) if p.asymmetric else (None, None)
    return w, r, sums


def eval(p: Params, x, w, r, b, h_var):
    w, r, sums = _weights(p, w, r)
    x2 = x.reshape(-1)[:x.shape[0] * w.shape[1]].reshape(x.shape[0], w.shape[1])
    h = rnn_step(p, x2, w, r, bias_values(b, w), h_var.astype(F32), sums)
    np.copyto(h_var, h)
    return [h.copy()]
