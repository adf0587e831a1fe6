"""UNIDIRECTIONAL_SEQUENCE_LSTM: float32, hybrid (int8 weights, float activations,
symmetric or asymmetric input quantization) and full integer 8x8_16 (int8
activations, int16 cell state, int8 weights, int32 biases, five intermediates carrying
the gate scales), with CIFG, peephole, projection and layer norm as LiteRT has them.

Mirrors LiteRT's ``tflite/kernels/unidirectional_sequence_lstm.cc`` (Prepare checks,
Eval dispatch) and ``lstm_eval.cc`` (``EvalFloat``, ``EvalHybrid``,
``EvalInteger8x8_16``); the arithmetic is in ``_lstm.py``.

Inputs (24; the deprecated 20-input form has no layer norm): 0 input [B, T, n_input]
(``[T, B, n_input]`` with ``time_major``), 1-4 input-to-{i,f,c,o} weights (1 absent
for CIFG), 5-8 recurrent-to-{i,f,c,o} weights (rank 1: diagonal, float only), 9-11
peephole weights, 12-15 gate biases, 16-17 projection weights and bias, 18 output state
and 19 cell state (variable tensors: read at the start of each invoke and written back
at the end, so the state persists across invokes as in LiteRT), 20-23 layer norm
coefficients. Output: the input shape with the last dimension ``n_output``.

The integer path requires the five intermediates (the i/f/c/o gate scales used with
layer norm; the hidden state's scale and zero point); without layer norm the gates are
in Q3.12. The cell state's scale must be a power of two (``CheckedLog2``: within 1e-3 in
log2); the activation option is ignored, as in LiteRT (always tanh). Float results agree with LiteRT within float rounding
(its float products go through the optimized GEMM); integer results are bit-exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _lstm
from ._common import FLOAT32, INT8, INT16, REINTERPRET, OpContext, TensorInfo
from ._control_flow import check_sequence_steps

# "micro": TFLite Micro's own integer LSTM (runtime/micro.py, from TFLM's lstm_eval.h and
# lstm_eval_common.cc), which rounds differently from LiteRT's; float and hybrid LSTMs
# run as in LiteRT (runtime/micro.py decides which forms TFLM supports).
NUMERICS = ("reference", "micro")


@dataclass(frozen=True)
class Params:
    lstm: _lstm.LstmParams
    slots: tuple            # names of the weight slots passed to the math, by input index
    out_dtype: np.dtype
    out_shape: tuple
    micro: object | None = None   # runtime.micro.MicroLstm for an integer LSTM in micro mode


def _getter(ctx: OpContext):
    def get(name):
        i = _lstm.IN[name]
        return ctx.inputs[i] if i < len(ctx.inputs) else None
    return get


def prepare_lstm(ctx: OpContext, get, *, time_major: bool, intermediates=None,
                 prefix: str = "") -> tuple[_lstm.LstmParams, str]:
    """Shared Prepare of one LSTM direction; returns (params, kind)."""
    x = get("input")
    use_layer_norm = get("ln_f") is not None
    i2o, r2o = get("i2o"), get("r2o")
    ctx.check(x is not None and i2o is not None and r2o is not None, f"{prefix}missing a "
              "required input (input, input_to_output or recurrent_to_output weights)")
    ctx.check(len(x.shape) == 3, f"input must have rank 3, has shape {list(x.shape)} (LiteRT "
              "reads dims[2] unchecked)")
    is_integer = x.type == INT8
    n_batch = x.shape[1] if time_major else x.shape[0]
    n_input = x.shape[2]
    ctx.check(len(i2o.shape) == 2 and i2o.shape[1] == n_input,
              f"{prefix}input_to_output weights {list(i2o.shape)} do not match n_input {n_input}")
    n_cell = i2o.shape[0]
    diag_o = len(r2o.shape) == 1
    if not diag_o:
        ctx.check(len(r2o.shape) == 2 and r2o.type == i2o.type,
                  f"{prefix}recurrent_to_output weights must be 2-D with the weights' type")
    ctx.check(r2o.shape[0] == n_cell, f"{prefix}recurrent_to_output weights have {r2o.shape[0]} "
              f"rows, expected {n_cell}")
    n_output = r2o.shape[0] if diag_o else r2o.shape[1]
    use_cifg, use_peephole, use_projection = _lstm.check_lstm_inputs(
        ctx, get, n_input=n_input, n_output=n_output, n_cell=n_cell,
        use_layer_norm=use_layer_norm, is_integer=is_integer, prefix=prefix)
    h, c = get("h"), get("c")
    ctx.check(h is not None and c is not None, f"{prefix}output state and cell state are required")
    ctx.require_variable(h, f"{prefix}output state")
    ctx.require_variable(c, f"{prefix}cell state")
    ctx.check(h.num_elements == n_batch * n_output,
              f"{prefix}output state has {h.num_elements} elements, expected {n_batch * n_output}")
    ctx.check(c.num_elements == n_batch * n_cell,
              f"{prefix}cell state has {c.num_elements} elements, expected {n_batch * n_cell}")
    diag = tuple((get("r2" + g) is not None and len(get("r2" + g).shape) == 1) or
                 (g == "i" and get("r2i") is None) for g in "ifco")
    opts = ctx.options
    act = int(opts.get("fused_activation_function", 0))
    ctx.check(act in (0, 1, 2, 3, 4, 5, 6), f"unknown activation {act}")
    wtype = i2o.type
    integer = None
    weight_scale = {}
    if x.type == FLOAT32:
        ctx.check(h.type == FLOAT32 and c.type == FLOAT32, f"{prefix}output state and cell state "
                  f"must be FLOAT32 with a float input, are {h.type_name} and {c.type_name}"
                  + REINTERPRET)
    if wtype == FLOAT32:
        ctx.check(x.type == FLOAT32, f"{prefix}float weights need a FLOAT32 input" + REINTERPRET)
        kind = "float"
    elif wtype == INT8 and x.type == FLOAT32:
        kind = "hybrid"
        if any(d for g, d in zip("ifco", diag) if not (g == "i" and use_cifg)):
            raise ctx.unsupported("hybrid LSTM with diagonal recurrent weights")
        names = ["i2i", "i2f", "i2c", "i2o", "r2i", "r2f", "r2c", "r2o", "c2i", "c2f", "c2o",
                 "proj_w"]
        weight_scale = _lstm.hybrid_scales(ctx, get, names)
        for n in names:
            t = get(n)
            if t is not None:
                ctx.check(t.type == INT8, f"{prefix}hybrid weights {n} must be INT8, are "
                          f"{t.type_name}" + REINTERPRET)
    elif wtype == INT8 and x.type == INT8:
        kind = "integer"
        ctx.check(not any(d for g, d in zip("ifco", diag) if not (g == "i" and use_cifg)),
                  f"{prefix}integer LSTM needs 2-D recurrent weights")
        # the activation option is not read: lstm_eval.cc's integer 8x8_16 step always
        # uses tanh for the cell gate and the output (TFLite Micro reads it: micro mode)
        ctx.check(intermediates is not None and len(intermediates) == 5,
                  f"{prefix}integer LSTM needs 5 intermediate tensors, has "
                  f"{0 if intermediates is None else len(intermediates)}")
        for n in ("input", "i2f", "i2c", "i2o", "r2f", "r2c", "r2o") + (
                () if use_cifg else ("i2i", "r2i")) + (("proj_w",) if use_projection else ()):
            ctx.require_quantized(get(n))
        ctx.check(h.type == INT8 and c.type == INT16, f"{prefix}integer LSTM needs an INT8 output "
                  f"state and an INT16 cell state, has {h.type_name} and {c.type_name}")
        ctx.check(ctx.output(0).type == INT8, f"{prefix}integer LSTM output must be INT8")
        consts = {}
        for n in ("i2i", "i2f", "i2c", "i2o", "r2i", "r2f", "r2c", "r2o", "proj_w", "proj_b",
                  "bi", "bf", "bc", "bo"):
            t = get(n)
            if t is not None:
                ctx.check(t.is_constant, f"{prefix}integer LSTM weights and biases must be "
                          f"constant ({n} is not)")
                consts[n] = t.data
        if use_peephole:
            ctx.check(n_output <= n_cell, f"{prefix}integer peephole LSTM with n_output "
                      f"({n_output}) > n_cell ({n_cell}): LiteRT's peephole step runs over "
                      "n_output elements of the n_cell-sized cell state and gate (out of bounds)")
            for n in ("c2i", "c2f", "c2o"):
                if get(n) is not None:
                    ctx.require_quantized(get(n))
        if use_layer_norm:
            for n in ("ln_i", "ln_f", "ln_c", "ln_o"):
                if get(n) is not None:
                    ctx.require_quantized(get(n))
        integer = _lstm.integer_params(
            ctx, get, consts, cell_state=c, output_state=h, output=ctx.output(0),
            use_cifg=use_cifg, use_peephole=use_peephole, use_layer_norm=use_layer_norm,
            use_projection=use_projection, intermediates=intermediates)
        ctx.check(0 <= 15 + integer.cell_scale <= 6, f"{prefix}cell state scale 2^"
                  f"{integer.cell_scale} gives {15 + integer.cell_scale} integer bits for tanh; "
                  "LiteRT's ApplyTanh handles 0..6; for others LiteRT would leave the buffer unset "
                  "(its assert is compiled out)")
    else:
        raise ctx.unsupported(f"{prefix}weights of type {i2o.type_name} with input {x.type_name}")
    p = _lstm.LstmParams(
        kind=kind, activation=act, cell_clip=float(opts.get("cell_clip", 0.0)),
        proj_clip=float(opts.get("proj_clip", 0.0)), time_major=time_major,
        asymmetric_quantize_inputs=bool(opts.get("asymmetric_quantize_inputs", False)),
        use_cifg=use_cifg, use_peephole=use_peephole, use_layer_norm=use_layer_norm,
        use_projection=use_projection, n_cell=n_cell, n_input=n_input, n_output=n_output,
        n_aux_input=0, diag=diag, weight_scale=weight_scale, integer=integer)
    return p, kind


def prepare(ctx: OpContext) -> Params:
    ctx.check(len(ctx.inputs) in (20, 24), f"expects 20 or 24 inputs, has {len(ctx.inputs)}")
    ctx.check(len(ctx.outputs) == 1, f"expects 1 output, has {len(ctx.outputs)}")
    get = _getter(ctx)
    inter = None
    if ctx.op.intermediates:
        sg = ctx.model.subgraphs[ctx.subgraph]
        inter = []
        for t in ctx.op.intermediates:
            tt = sg.tensors[t]
            qp = tt.qparams()
            inter.append(TensorInfo(index=t, name=tt.name, type=tt.type, dtype=np.dtype(np.int16),
                                    shape=tuple(tt.shape), scale=None if qp is None else qp[0],
                                    zero_point=None if qp is None else qp[1]))
    time_major = bool(ctx.options.get("time_major", False))
    p, kind = prepare_lstm(ctx, get, time_major=time_major, intermediates=inter)
    x = get("input")
    check_sequence_steps(ctx, x.shape, time_major=time_major)
    out_shape = tuple(x.shape[:-1]) + (p.n_output,)
    out = ctx.output(0)
    want = FLOAT32 if kind in ("float", "hybrid") else INT8
    ctx.check(out.type == want, f"output must be {'FLOAT32' if want == FLOAT32 else 'INT8'}")
    names = tuple(sorted(_lstm.IN, key=_lstm.IN.get))
    micro = None
    if ctx.numerics == "micro" and kind == "integer":
        micro = _micro_params(ctx, get, p)
    return Params(p, names, out.dtype, out_shape, micro)


def _micro_params(ctx: OpContext, get, p: _lstm.LstmParams):
    """TFLite Micro's integer LSTM parameters (its full form only: CIFG, peephole,
    projection and layer norm are refused for micro mode by runtime/micro.py)."""
    from ..micro import LSTM_GATES, micro_lstm_params

    # TFLM's cell gate does apply the option: tanh, sigmoid (not expressible in a .tflite),
    # anything else falls to an assert that release builds compile out (no activation)
    ctx.check(p.activation == 4, f"TFLite Micro's integer LSTM applies the activation option "
              f"to the cell gate; {p.activation} is not TANH and TFLite Micro would leave the "
              "gate without an activation (its assert is compiled out)")
    gates = [w + g for w in ("i2", "r2") for g in LSTM_GATES]
    missing = [n for n in gates if get(n) is None]
    if missing:
        raise ctx.unsupported(f"TFLite Micro's integer LSTM needs every gate's weights; "
                              f"{', '.join(missing)} are absent (CIFG)")
    x, h, c = get("input"), get("h"), get("c")
    return micro_lstm_params(input_scale=x.s, input_zp=x.zp, state_scale=h.s, state_zp=h.zp,
                             cell_scale=c.s, weight_scales={n: get(n).scale for n in gates},
                             n_cell=p.n_cell, cell_clip=p.cell_clip, activation=p.activation)


def weights_dict(p: _lstm.LstmParams, names, inputs) -> dict:
    W = {}
    for n, v in zip(names, inputs):
        if n in ("input", "h", "c") or v is None:
            continue
        if p.kind == "float" or n[0] == "b" or n in ("proj_b",) or (n.startswith("ln_") and p.kind != "integer"):
            W[n] = np.asarray(v, np.float32) if p.kind != "integer" else np.asarray(v, np.int64)
        else:
            W[n] = np.asarray(v, np.int64) if p.kind == "integer" else np.asarray(v)
    return W


def eval(params: Params, *inputs):
    p = params.lstm
    inputs = list(inputs) + [None] * (24 - len(inputs))
    x = inputs[0]
    h_var, c_var = inputs[18], inputs[19]
    W = weights_dict(p, params.slots, inputs)
    if p.kind == "hybrid":
        W = {k: (v.astype(np.int64) if v.dtype == np.int8 else v) for k, v in W.items()}
    xt = x if p.time_major else np.swapaxes(x, 0, 1)
    row_sums = _lstm.hybrid_row_sums(p, W) if p.kind == "hybrid" else None
    if params.micro is not None:
        from ..micro import micro_lstm_sequence

        outs, h, c = micro_lstm_sequence(params.micro, W, xt, h_var, c_var)
    else:
        outs, h, c = _lstm.run_sequence(p, W, xt, h_var, c_var, row_sums=row_sums)
    if not p.time_major:
        outs = np.swapaxes(outs, 0, 1)
    # variable tensors: written back in place (LiteRT updates them during Eval)
    np.copyto(h_var, h.reshape(h_var.shape).astype(h_var.dtype))
    np.copyto(c_var, c.reshape(c_var.shape).astype(c_var.dtype))
    return [np.ascontiguousarray(outs.astype(params.out_dtype)).reshape(params.out_shape)]
