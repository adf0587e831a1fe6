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

TFLite Micro (``numerics="micro"``, tflite-micro ``kernels/svdf.cc`` and
``svdf_common.cc`` ``EvalIntegerSvdfReference<T>``): T, the type of the state, is the
type of the time weights, int16 or int8 (keyword models such as TFLM's
``keyword_scrambled_8bit.tflite`` keep an int8 state). M1 and M2 are built in double
(LiteRT: float32), so even the int16-state SVDF differs from LiteRT by 1 LSB where a
product lands near a rounding tie. The new feature activation is
``wrap_T(zp_state + clamp_T(MBQM(sum W_f (x - zp_in), M1)))`` (a C conversion to T),
the time products use ``state - zp_state``, and no activation is applied (TFLM accepts
any). LiteRT reads time weights and state as int16 whatever their type: with int8 ones
it reads and writes past their buffers (measured on keyword_scrambled_8bit: SIGSEGV on
the reference and optimized resolvers, "double free or corruption" SIGABRT with
XNNPACK; on small models, garbage outputs), so the other paths refuse them and name
numerics='micro'. The float path is shared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

from . import _lstm
from ._common import FLOAT32, INT8, INT16, INT32, REINTERPRET, OpContext, finite
from ._matmul_hybrid import batch_quantize_floats, exact_int_matmul, sse_reduction_sum_int8

# LiteRT registers one SVDF kernel for every resolver, and XNNPACK does not take SVDF:
# "optimized" and "xnnpack" run the reference arithmetic (tests/ops/test_svdf.py).
NUMERICS = ("reference", "optimized", "xnnpack", "micro")
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
    state_zp: int = 0                  # micro: TFLM's activation_state_zero_point
    state_dtype: type = np.int16       # micro: int16 or int8 (the time weights' type)


def prepare(ctx: OpContext) -> Params:
    ctx.check_io_count(5, 1)
    x, wf, wt = ctx.input(0), ctx.input(1), ctx.input(2)
    bias = ctx.input(3, optional=True)
    state = ctx.input(4)
    ctx.check(x.type in (FLOAT32, INT8), f"input must be FLOAT32 or INT8, is {x.type_name}")
    rank = int(ctx.options.get("rank", 0))
    ctx.check(rank != 0, "rank is 0")
    # svdf.cc reads the input's dims[0] (batch) and dims[1] (input size) without checking
    # its rank, and the first batch * input_size values (TFLite Micro: 2-D only)
    ctx.check((len(x.shape) == 2 or (len(x.shape) > 2 and ctx.numerics != "micro"))
              and len(wf.shape) == 2 and len(wt.shape) == 2,
              f"input (rank {len(x.shape)}) must be at least 2-D, weights_feature and "
              "weights_time 2-D")
    batch = x.shape[0]
    num_filters = wf.shape[0]
    ctx.check(num_filters % rank == 0, f"num_filters {num_filters} is not a multiple of rank {rank}")
    ctx.check(rank > 0, f"rank {rank} must be positive")
    num_units = num_filters // rank
    memory = wt.shape[1]
    ctx.check(x.shape[1] == wf.shape[1], f"input size {x.shape[1]} != weights_feature columns "
              f"{wf.shape[1]}")
    ctx.check(x.num_elements >= batch * x.shape[1], f"input {list(x.shape)} has fewer than batch * "
              f"input size values: LiteRT would read past it")
    ctx.check(wt.shape[0] == num_filters, f"weights_time rows {wt.shape[0]} != {num_filters}")
    if bias is not None:
        ctx.check(len(bias.shape) >= 1 and bias.shape[0] == num_units,
                  f"bias has {bias.shape}, expected [{num_units}]")
    ctx.require_variable(state, "state")
    ctx.check(len(state.shape) == 2 and tuple(state.shape) == (batch, memory * num_filters),
              f"state {list(state.shape)}, expected {[batch, memory * num_filters]}")
    act = int(ctx.options.get("fused_activation_function", 0))
    ctx.check(act in range(7), f"unknown activation {act}")
    common = dict(rank=rank, num_filters=num_filters, num_units=num_units, memory_size=memory,
                  activation=act)
    if wf.type == FLOAT32:
        ctx.check(x.type == FLOAT32 and wt.type == FLOAT32 and state.type == FLOAT32,
                  "float SVDF needs float input, time weights and state" + REINTERPRET)
        return Params("float", **common)
    if wf.type != INT8:
        raise ctx.unsupported(f"weights_feature of type {wf.type_name}")
    if x.type == FLOAT32:
        ctx.check(wt.type == INT8, f"hybrid SVDF time weights must be INT8, are {wt.type_name}" + REINTERPRET)
        ctx.check(state.type == FLOAT32, "hybrid SVDF state must be FLOAT32" + REINTERPRET)
        for t in (wf, wt):
            ctx.require_quantized(t)
        return Params("hybrid", asymmetric=bool(ctx.options.get("asymmetric_quantize_inputs", False)),
                      wf_scale=float(wf.scale[0]), wt_scale=float(wt.scale[0]), **common)
    out = ctx.output(0)
    if ctx.numerics == "micro":
        return _prepare_micro(ctx, x, wf, wt, state, out, common)
    if wt.type == INT8 or state.type == INT8:
        raise ctx.unsupported(
            f"integer SVDF with {wt.type_name} time weights and {state.type_name} state (TFLite "
            "Micro's int8-state form): LiteRT's kernel reads both as int16, past the ends of their "
            "buffers, and crashes (SIGSEGV; heap corruption with XNNPACK) or returns garbage. "
            "TFLite Micro runs it: numerics='micro'")
    ctx.check(wt.type == INT16 and state.type == INT16 and out.type == INT8,
              "integer SVDF needs INT16 time weights and state and an INT8 output" + REINTERPRET)
    if bias is not None:
        ctx.check(bias.type == INT32, f"integer SVDF bias must be INT32, is {bias.type_name}" + REINTERPRET)
    for t in (x, wf, state, wt, out):
        ctx.require_quantized(t)
    ctx.check(act == 1, "integer SVDF requires the RELU activation (TF_LITE_ENSURE_EQ)")
    with np.errstate(over="ignore", under="ignore"):
        s1 = finite(ctx, F32(F32(F32(x.s) * F32(wf.s)) / F32(state.s)),
                    "input scale * feature weights scale / state scale (float32)")
        s2 = finite(ctx, F32(F32(F32(state.s) * F32(wt.s)) / F32(out.s)),
                    "state scale * time weights scale / output scale (float32)")
    return Params("integer", scale_1=quantize_multiplier(s1), scale_2=quantize_multiplier(s2),
                  input_zp=x.zp, output_zp=out.zp, **common)


def _prepare_micro(ctx: OpContext, x, wf, wt, state, out, common: dict) -> Params:
    """TFLM's ``PrepareSvdf`` for int8 input (the type combinations were checked by
    ``runtime.micro.micro_support``): ``M1 = double(s_in) * double(s_wf) /
    double(s_state)``, ``M2 = double(s_state) * double(s_wt) / double(s_out)``, the zero
    points of input, output and state. TFLM never looks at the activation.

    The multipliers are built in double, not float32 as in LiteRT (and in the mirror's
    svdf_common.cc of 2026-08): measured on the tflite-micro wheel 0.dev20261023 with
    knife-edge biases and feature sums, where the float32 formula missed 106 of 142
    outputs and the double one none (tests/test_micro.py
    test_svdf_multipliers_in_double_vs_tflm)."""
    for t in (x, wf, state, wt, out):
        ctx.require_quantized(t)
    s1 = finite(ctx, float(x.s) * float(wf.s) / float(state.s),
                "input scale * feature weights scale / state scale")
    s2 = finite(ctx, float(state.s) * float(wt.s) / float(out.s),
                "state scale * time weights scale / output scale")
    return Params("micro", scale_1=quantize_multiplier(s1), scale_2=quantize_multiplier(s2),
                  input_zp=x.zp, output_zp=out.zp, state_zp=state.zp,
                  state_dtype=np.int8 if wt.type == INT8 else np.int16, **common)


def _eval_micro(p: Params, x, wf, wt, bias, st) -> np.ndarray:
    """``EvalIntegerSvdfReference<T>`` (svdf_common.cc) on the shifted state ``st``
    [B, F, M] (int64 values of type T), updated in place:

    feature = clamp_T(MBQM(sum_i W_f[f, i] (x[b, i] - zp_in), M1));
    st[b, f, M-1] = T(zp_state + feature)        (C conversion: wraps);
    scratch[b, f] = sum_m W_t[f, m] (st[b, f, m] - zp_state)   (int32);
    out = clamp_int8(MBQM(bias + sum of each unit's rank filters, M2) + zp_out)."""
    info = np.iinfo(p.state_dtype)
    acc = exact_int_matmul(x.astype(np.float64) - p.input_zp, wf.astype(np.float64).T)
    feat = multiply_by_quantized_multiplier(wrap_int32(acc), *p.scale_1)
    feat = np.clip(feat, info.min, info.max)
    st[:, :, -1] = (feat + p.state_zp).astype(np.int64).astype(p.state_dtype)
    batch = x.shape[0]
    centered = st.astype(np.int64) - p.state_zp
    scratch = wrap_int32(np.einsum("bfm,fm->bf", centered, wt.astype(np.int64)))
    out = wrap_int32(scratch.reshape(batch, p.num_units, p.rank).sum(axis=2))
    if bias is not None:
        out = wrap_int32(out + np.asarray(bias, np.int64).reshape(-1)[None, :])
    o = multiply_by_quantized_multiplier(out, *p.scale_2)
    return np.clip(o + p.output_zp, -128, 127).astype(np.int8)


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
    with np.errstate(invalid="ignore", over="ignore"):   # float paths: inf/NaN propagate as in C
        return _eval(p, x, wf, wt, bias, state)


def _eval(p: Params, x, wf, wt, bias, state):
    if bias is not None:   # LiteRT checks only dims[0] == num_units and reads num_units values
        bias = np.asarray(bias).reshape(-1)[:p.num_units]
    batch = x.shape[0]
    if x.ndim > 2:
        x = x.reshape(-1)[:batch * wf.shape[1]].reshape(batch, wf.shape[1])
    flat = state.reshape(-1)
    shifted = np.empty_like(flat)
    shifted[:-1] = flat[1:]
    shifted[-1:] = flat[-1:]
    st = shifted.reshape(batch, p.num_filters, p.memory_size)
    if p.kind == "micro":
        st = st.astype(np.int64)
        out = _eval_micro(p, x, wf, wt, bias, st)
    elif p.kind == "float":
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
