"""SVDF (singular value decomposition filter): float32, hybrid (int8 feature weights,
float activations) and full integer (int8 input/output, int16 state and time weights,
int32 bias), with the state kept in a variable tensor across invokes.

Mirrors LiteRT's ``tflite/kernels/svdf.cc`` (Prepare checks, scales) and
``tflite/kernels/internal/reference/svdf.h`` (``EvalFloatSVDF``, ``EvalHybridSVDF``,
``EvalIntegerSVDF``). Inputs: input [B, input_size], weights_feature [num_filters,
input_size], weights_time [num_filters, memory_size], bias [num_units] (optional),
state [B, memory_size * num_filters] (variable). Output [B, num_units] with
``num_units = num_filters / rank``.

Each invoke shifts the whole flattened state one place to the left
(``std::copy(state + 1, state + end, state)``), writes the new feature activations
``x W_f^T`` into the last time slot of each filter, takes each filter's dot product
of its time weights with its memory, sums groups of ``rank`` filters, adds the bias and
applies the activation.

Integer: the feature products ``sum W_f (x - zp_in)`` are requantized with
``M1 = s_in * s_wf / s_state`` (float32 products, ``MultiplyByQuantizedMultiplier``)
and clamped to int16; the time products (int16 x int16 in int32) with
``M2 = s_state * s_wt / s_out``, plus the output zero point, clamped to int8.
LiteRT requires the RELU activation here but never applies it: reproduced (no clamp
at the zero point). Hybrid: the input is quantized per row as in every hybrid kernel,
the time weights are dequantized to float32 once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

from . import _lstm
from ._common import FLOAT32, INT8, INT16, INT32, OpContext
from ._matmul_hybrid import batch_quantize_floats, exact_int_matmul, sse_reduction_sum_int8

NUMERICS = ("reference",)
F32 = np.float32


@dataclass(frozen=True)
class Params:
    kind: str
    rank: int
    num_filters: int
    num_units: int
    memory_size: int
    activation: int
    asymmetric: bool = False
    wf_scale: float = 1.0
    wt_scale: float = 1.0
    scale_1: tuple = (0, 0)
    scale_2: tuple = (0, 0)
    input_zp: int = 0
    output_zp: int = 0


def prepare(ctx: OpContext) -> Params:
    ctx.check_io_count(5, 1)
    x, wf, wt = ctx.input(0), ctx.input(1), ctx.input(2)
    bias = ctx.input(3, optional=True)
    state = ctx.input(4)
    ctx.check(x.type in (FLOAT32, INT8), f"input must be FLOAT32 or INT8, is {x.type_name}")
    rank = int(ctx.options.get("rank", 0))
    ctx.check(rank != 0, "rank is 0")
    ctx.check(len(x.shape) == 2 and len(wf.shape) == 2 and len(wt.shape) == 2,
              "input, weights_feature and weights_time must be 2-D")
    batch = x.shape[0]
    num_filters = wf.shape[0]
    ctx.check(num_filters % rank == 0, f"num_filters {num_filters} is not a multiple of rank {rank}")
    ctx.check(rank > 0, f"rank {rank} must be positive")
    num_units = num_filters // rank
    memory = wt.shape[1]
    ctx.check(x.shape[1] == wf.shape[1], f"input size {x.shape[1]} != weights_feature columns "
              f"{wf.shape[1]}")
    ctx.check(wt.shape[0] == num_filters, f"weights_time rows {wt.shape[0]} != {num_filters}")
    if bias is not None:
        ctx.check(len(bias.shape) >= 1 and bias.shape[0] == num_units,
                  f"bias has {bias.shape}, expected [{num_units}]")
    ctx.check(len(state.shape) == 2 and tuple(state.shape) == (batch, memory * num_filters),
              f"state {list(state.shape)}, expected {[batch, memory * num_filters]}")
    act = int(ctx.options.get("fused_activation_function", 0))
    ctx.check(act in range(7), f"unknown activation {act}")
    common = dict(rank=rank, num_filters=num_filters, num_units=num_units, memory_size=memory,
                  activation=act)
    if wf.type == FLOAT32:
        ctx.check(x.type == FLOAT32 and wt.type == FLOAT32 and state.type == FLOAT32,
                  "float SVDF needs float input, time weights and state")
        return Params("float", **common)
    if wf.type != INT8:
        raise ctx.unsupported(f"weights_feature of type {wf.type_name}")
    if x.type == FLOAT32:
        ctx.check(wt.type == INT8, f"hybrid SVDF time weights must be INT8, are {wt.type_name}")
        ctx.check(state.type == FLOAT32, "hybrid SVDF state must be FLOAT32")
        for t in (wf, wt):
            ctx.require_quantized(t)
        return Params("hybrid", asymmetric=bool(ctx.options.get("asymmetric_quantize_inputs", False)),
                      wf_scale=float(wf.scale[0]), wt_scale=float(wt.scale[0]), **common)
    out = ctx.output(0)
    ctx.check(wt.type == INT16 and state.type == INT16 and out.type == INT8,
              "integer SVDF needs INT16 time weights and state and an INT8 output")
    if bias is not None:
        ctx.check(bias.type == INT32, f"integer SVDF bias must be INT32, is {bias.type_name}")
    for t in (x, wf, state, wt, out):
        ctx.require_quantized(t)
    ctx.check(act == 1, "integer SVDF requires the RELU activation (TF_LITE_ENSURE_EQ)")
    s1 = float(F32(F32(F32(x.s) * F32(wf.s)) / F32(state.s)))
    s2 = float(F32(F32(F32(state.s) * F32(wt.s)) / F32(out.s)))
    return Params("integer", scale_1=quantize_multiplier(s1), scale_2=quantize_multiplier(s2),
                  input_zp=x.zp, output_zp=out.zp, **common)


def _time_and_output(p: Params, state3, wt, bias, batch):
    """Dot products of each filter's memory with its time weights, rank sums, bias."""
    if p.kind == "integer":
        scratch = wrap_int32(np.einsum("bfm,fm->bf", state3.astype(np.int64), wt.astype(np.int64)))
        out = wrap_int32(scratch.reshape(batch, p.num_units, p.rank).sum(axis=2))
        if bias is not None:
            out = wrap_int32(out + bias.astype(np.int64)[None, :])
        return out
    prod = (state3 * wt[None, :, :]).astype(F32)
    scratch = np.zeros(prod.shape[:2], F32)
    for m in range(p.memory_size):               # BatchVectorBatchVectorDotProduct, in order
        scratch = (scratch + prod[:, :, m]).astype(F32)
    r = scratch.reshape(batch, p.num_units, p.rank)
    out = np.zeros((batch, p.num_units), F32)
    for k in range(p.rank):                      # ReductionSumVector
        out = (out + r[:, :, k]).astype(F32)
    if bias is not None:
        out = (out + bias.astype(F32)[None, :]).astype(F32)
    a = _lstm.apply_activation(out, p.activation)
    return out if a is None else a


def eval(p: Params, x, wf, wt, bias, state):
    batch = x.shape[0]
    flat = state.reshape(-1)
    shifted = np.empty_like(flat)
    shifted[:-1] = flat[1:]
    shifted[-1:] = flat[-1:]
    st = shifted.reshape(batch, p.num_filters, p.memory_size)
    if p.kind == "float":
        feat = _lstm._fc(np.zeros((batch, p.num_filters), F32), x.astype(F32), wf.astype(F32))
        st[:, :, -1] = feat
        out = _time_and_output(p, st, wt.astype(F32), bias, batch)
    elif p.kind == "hybrid":
        feat = np.zeros((batch, p.num_filters), F32)
        if np.any(x != 0):
            w = wf.astype(np.int64)
            q, s, z = batch_quantize_floats(x.astype(F32), p.asymmetric)
            sums = sse_reduction_sum_int8(w) if p.asymmetric else None
            feat = _lstm._mbvma_hybrid(feat, q, s, z, w, p.wf_scale, sums)
        st[:, :, -1] = feat
        wt_f = (wt.astype(F32) * F32(p.wt_scale)).astype(F32)
        out = _time_and_output(p, st, wt_f, bias, batch)
    else:
        acc = exact_int_matmul(x.astype(np.float64) - p.input_zp, wf.astype(np.float64).T)
        feat = multiply_by_quantized_multiplier(wrap_int32(acc), *p.scale_1)
        st[:, :, -1] = np.clip(feat, -32768, 32767)
        o = multiply_by_quantized_multiplier(_time_and_output(p, st, wt, bias, batch), *p.scale_2)
        out = np.clip(o + p.output_zp, -128, 127).astype(np.int8)
    np.copyto(state, st.reshape(state.shape).astype(state.dtype))
    return [np.ascontiguousarray(out)]
