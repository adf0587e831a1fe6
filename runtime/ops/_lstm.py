"""LSTM arithmetic shared by UNIDIRECTIONAL_SEQUENCE_LSTM and BIDIRECTIONAL_SEQUENCE_LSTM:
input checks, the float, hybrid and integer (8x8_16) steps and the time loop.

Mirrors LiteRT's ``tflite/kernels/lstm_eval.cc`` (``LstmStepFloat``,
``LstmStepHybrid``, ``LstmStepInteger8x8_16`` and the gate/cell/output helpers),
``unidirectional_sequence_lstm.cc`` (``CheckInputTensorDimensions``,
``PopulateQuantizedLstmParams8x8_16``, ``PopulatePrecomputedZPTimesWeightsWithBias``)
and the ``tensor_utils`` functions the x86 wheel runs (``portable_tensor_utils.cc``
for the int16 helpers, ``sse_tensor_utils.cc`` for the hybrid int8 products).

Gate order everywhere: input (i), forget (f), cell (c, "g"), output (o).

Float (``LstmStepFloat``): each gate is ``act(bias + x W^T + aux Wa^T + h Wr^T
(+ c * peephole))`` (layer norm: ``act(LN(x W^T + ...) * coef + bias)``), sigmoid for
i/f/o and the cell activation (TANH usually) for g; ``c = f*c + i*g`` (CIFG:
``(1-f)`` for i), optional clip; ``h = o * act(c)``, optionally projected
(``h W_p^T + b_p``, clipped). The products go through LiteRT's optimized float GEMM,
so float results agree within rounding, not bit for bit. LiteRT quirk reproduced:
``ApplyActivationToVector`` with activation NONE writes nothing, so a NONE cell
activation leaves the gate buffer as the swap sequence of ``CalculateLstmGateFloat``
left it (the bias alone when the input is all zeros) and makes ``act(c)`` the cell
gate buffer.

Hybrid (``LstmStepHybrid``): int8 weights with a per-tensor scale; the input and the
output state are quantized per batch row (``BatchQuantizeFloats``, symmetric or
asymmetric), each product is the SSE int32 dot product scaled by
``f32(row_scale * weight_scale)`` and added in float32; peephole weights are
dequantized; projection quantizes ``o * act(c)`` again.

Integer 8x8_16 (``LstmStepInteger8x8_16``): int8 input/output state/weights, int16
cell state with a power-of-two scale, int16 gates in Q3.12 (or the layer-norm
intermediates' scales), int32 biases folded with the zero points; every helper is
``portable_tensor_utils.cc`` integer arithmetic and is reproduced exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32

from ._common import FLOAT32, INT8, INT16, INT32, UINT8, OpContext, TensorInfo
from ._matmul_hybrid import (batch_quantize_floats, eigen_tanh_f32, exact_int_matmul,
                             sse_matrix_batch_vector_dot, sse_reduction_sum_int8)
from . import _lstm_fixedpoint as fx

F32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)

# ActivationFunctionType
NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT, SIGMOID = 0, 1, 2, 3, 4, 5, 6

# Input slots of the 24-input LSTM (lstm_shared.h, lstm::full).
IN = dict(input=0, i2i=1, i2f=2, i2c=3, i2o=4, r2i=5, r2f=6, r2c=7, r2o=8, c2i=9, c2f=10, c2o=11,
          bi=12, bf=13, bc=14, bo=15, proj_w=16, proj_b=17, h=18, c=19, ln_i=20, ln_f=21, ln_c=22,
          ln_o=23)


# ---------------------------------------------------------------------------
# float helpers
# ---------------------------------------------------------------------------
def sigmoid_f32(x: np.ndarray) -> np.ndarray:
    """Eigen's ``logistic()`` on float32 (within an ulp or two)."""
    x = np.asarray(x, F32)
    with np.errstate(over="ignore"):
        return (F32(1) / (F32(1) + np.exp(-x, dtype=F32))).astype(F32)


def apply_activation(x: np.ndarray, act: int) -> np.ndarray | None:
    """``tensor_utils::ApplyActivationToVector``; None for NONE (LiteRT writes nothing)."""
    if act == NONE:
        return None
    if act == RELU:
        return np.maximum(x, F32(0)).astype(F32)
    if act == RELU_N1_TO_1:
        return np.clip(x, F32(-1), F32(1)).astype(F32)
    if act == RELU6:
        return np.clip(x, F32(0), F32(6)).astype(F32)
    if act == TANH:
        return eigen_tanh_f32(x)
    if act == SIGN_BIT:
        return np.signbit(x).astype(F32)
    return sigmoid_f32(x)


def mean_stddev_normalization(x: np.ndarray) -> np.ndarray:
    """``PortableMeanStddevNormalization`` per row, float32, epsilon 1e-8."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    mean = (np.sum(x, axis=-1, dtype=F32) / F32(n)).astype(F32)
    diff = (x - mean[:, None]).astype(F32)
    var = (np.sum(diff * diff, axis=-1, dtype=F32) / F32(n)).astype(F32)
    inv = (F32(1) / np.sqrt(var + F32(1e-8), dtype=F32)).astype(F32)
    return (diff * inv[:, None]).astype(F32)


def _fc(acc: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``MatrixBatchVectorMultiplyAccumulate`` (float): ``acc + x W^T`` into a new buffer.
    Non-finite weights or inputs give inf/NaN, as in C (no warning)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (acc + (x.astype(np.float64) @ w.astype(np.float64).T).astype(F32)).astype(F32)


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IntegerParams:
    """``lstm_eval::IntegerLstmParameter`` (8x8_16)."""
    scale_a: dict          # name -> multiplier (e.g. "i2f", "r2f", "c2f", "proj", "hidden", "ln_f")
    scale_b: dict          # name -> shift
    eff_bias: dict         # name -> int64 [rows] ("i2f", "r2f", ..., "proj")
    cell_scale: int
    hidden_zp: int
    output_state_zp: int
    quantized_cell_clip: int
    quantized_proj_clip: int
    variance_guard: dict   # gate -> int


@dataclass(frozen=True)
class LstmParams:
    kind: str                    # "float", "hybrid", "integer"
    activation: int
    cell_clip: float
    proj_clip: float
    time_major: bool
    asymmetric_quantize_inputs: bool
    use_cifg: bool
    use_peephole: bool
    use_layer_norm: bool
    use_projection: bool
    n_cell: int
    n_input: int
    n_output: int
    n_aux_input: int
    diag: tuple                  # recurrent_to_{i,f,c,o} is 1-D
    weight_scale: dict           # hybrid: slot name -> float32 scale
    integer: IntegerParams | None = None


def _scale(t: TensorInfo | None) -> float:
    return 1.0 if t is None or not t.quantized else float(t.scale[0])


def check_lstm_inputs(ctx: OpContext, get, *, n_input: int, n_output: int, n_cell: int,
                      use_layer_norm: bool, is_integer: bool, prefix: str = "") -> tuple[bool, bool, bool]:
    """``CheckInputTensorDimensions``. ``get(name)`` returns the TensorInfo of a slot
    (None when absent). Returns (use_cifg, use_peephole, use_projection)."""
    def dims(name, shape, role):
        t = get(name)
        ctx.check(t is not None, f"{prefix}{role} (input {name}) is missing")
        ctx.check(tuple(t.shape) == tuple(shape),
                  f"{prefix}{role} has shape {list(t.shape)}, expected {list(shape)}")
        return t

    # LiteRT reads these with GetInputSafe (required); only the input gate's weights
    # (CIFG), peepholes, projection and layer norm are optional.
    for name, role in (("i2f", "input_to_forget_weights"), ("i2c", "input_to_cell_weights"),
                       ("r2f", "recurrent_to_forget_weights"), ("r2c", "recurrent_to_cell_weights")):
        ctx.check(get(name) is not None, f"{prefix}{role} is missing (a required input)")
    i2f = get("i2f")
    for clip in ("cell_clip", "proj_clip"):
        v = float(ctx.options.get(clip, 0.0))
        ctx.check(v >= 0 and math.isfinite(v), f"{prefix}{clip} must be finite and >= 0, is {v}")
    i2i = get("i2i")
    if i2i is not None:
        dims("i2i", (n_cell, n_input), "input_to_input_weights")
    dims("i2f", (n_cell, n_input), "input_to_forget_weights")
    dims("i2c", (n_cell, n_input), "input_to_cell_weights")
    for g in ("i", "f", "c"):
        r = get("r2" + g)
        if r is None:
            continue
        if len(r.shape) == 1:
            ctx.check(r.shape[0] == n_cell, f"{prefix}recurrent_to_{g} (diagonal) has "
                      f"{r.shape[0]} elements, expected {n_cell}")
            # the diagonal product walks n_cell elements of each output state row
            ctx.check(n_output == n_cell, f"{prefix}recurrent_to_{g} is diagonal but n_output "
                      f"({n_output}) != n_cell ({n_cell}): LiteRT would read the output state "
                      "out of bounds")
        else:
            dims("r2" + g, (n_cell, n_output), f"recurrent_to_{g}_weights")
            ctx.check(r.type == i2f.type, f"{prefix}recurrent_to_{g} weights type differs from "
                      "input_to_forget weights")
    use_cifg = i2i is None
    ctx.check((get("i2i") is None) == (get("r2i") is None),
              f"{prefix}CIFG: input_to_input and recurrent_to_input weights must be both present "
              "or both absent")
    peep = [get(n) for n in ("c2i", "c2f", "c2o")]
    for n, t in zip(("c2i", "c2f", "c2o"), peep):
        if t is not None:
            dims(n, (n_cell,), f"cell_to_{n[-1]}_weights")
            want = INT16 if is_integer else i2f.type
            ctx.check(t.type == want, f"{prefix}peephole weights {n} must be "
                      f"{'INT16' if is_integer else i2f.type_name}")
    ok = (peep[1] is not None and peep[2] is not None and (use_cifg or peep[0] is not None)) or \
         all(p is None for p in peep)
    ctx.check(ok, f"{prefix}peephole weights must be all present or all absent")
    use_peephole = peep[2] is not None
    bias_type = INT32 if is_integer else FLOAT32
    if use_cifg:
        ctx.check(get("bi") is None, f"{prefix}CIFG LSTM must not have an input gate bias")
    for n in (("bf", "bc", "bo") if use_cifg else ("bi", "bf", "bc", "bo")):
        t = get(n)
        ctx.check(t is not None, f"{prefix}gate bias {n} is missing")
        dims(n, (n_cell,), f"gate bias {n}")
        ctx.check(t.type == bias_type, f"{prefix}gate bias {n} has type {t.type_name}, expected "
                  f"{'INT32' if is_integer else 'FLOAT32'}")
    pw, pb = get("proj_w"), get("proj_b")
    if pw is not None:
        dims("proj_w", (n_output, n_cell), "projection_weights")
    if pb is not None:
        dims("proj_b", (n_output,), "projection_bias")
        ctx.check(pb.type == bias_type, f"{prefix}projection bias has type {pb.type_name}")
    ctx.check(pw is not None or pb is None, f"{prefix}projection bias without projection weights")
    if pw is None:
        ctx.check(n_output == n_cell, f"{prefix}without projection n_output ({n_output}) must "
                  f"equal n_cell ({n_cell})")
    if use_layer_norm:
        for n in ("ln_i", "ln_f", "ln_c", "ln_o"):
            t = get(n)
            if n == "ln_i" and use_cifg:
                ctx.check(t is None, f"{prefix}CIFG LSTM must not have input layer norm weights")
                continue
            ctx.check(t is not None, f"{prefix}layer norm coefficients {n} missing")
            dims(n, (n_cell,), f"layer norm coefficients {n}")
            ctx.check(t.type == (INT16 if is_integer else FLOAT32),
                      f"{prefix}layer norm coefficients {n} have type {t.type_name}")
    return use_cifg, use_peephole, pw is not None


def hybrid_scales(ctx: OpContext, get, names) -> dict:
    out = {}
    for n in names:
        t = get(n)
        if t is None or t.type not in (INT8, UINT8):
            continue
        ctx.check(t.quantized, f"hybrid weights {n} (tensor {t.index}) have no quantization parameters")
        ctx.check(bool(np.isfinite(t.scale[0])), f"hybrid weights {n} (tensor {t.index}) have a scale that "
                  f"is not finite: {float(t.scale[0])}")
        out[n] = F32(t.scale[0])
    return out


# PopulateQuantizedLstmParams8x8_16's TF_LITE_ENSUREs return early, and Prepare ignores
# its status: LiteRT then runs with the remaining parameters unset.
UNSET = (": LiteRT's Prepare ignores the failed check in PopulateQuantizedLstmParams8x8_16 "
         "and would run with parameters left unset")


def checked_log2(x: float) -> int | None:
    """``CheckedLog2`` (quantization_util.cc), in float32: ``l = log(x) * (1 / log 2)``,
    ``n = round_half_away(l)``; ``n`` when ``|l - n| < 1e-3``, else None (not a power of
    two within that tolerance)."""
    if not (x > 0 and math.isfinite(x)):
        return None
    l2 = F32(F32(np.log(F32(x))) * F32(F32(1.0) / F32(np.log(F32(2.0)))))
    n = F32(np.sign(l2) * np.floor(np.abs(l2) + F32(0.5)))      # TfLiteRound: half away
    return int(n) if abs(float(F32(l2 - n))) < 1e-3 else None


def integer_params(ctx: OpContext, get, inputs: dict, *, cell_state: TensorInfo,
                   output_state: TensorInfo, output: TensorInfo, use_cifg: bool,
                   use_peephole: bool, use_layer_norm: bool, use_projection: bool,
                   intermediates: list[TensorInfo]) -> IntegerParams:
    """``PopulateQuantizedLstmParams8x8_16`` + ``PopulatePrecomputedZPTimesWeightsWithBias``."""
    cell_clip = F32(ctx.options.get("cell_clip", 0.0))
    proj_clip = F32(ctx.options.get("proj_clip", 0.0))
    for t in (cell_state, output, output_state):
        ctx.require_quantized(t)
    qcc = int(np.trunc(min(max(float(F32(cell_clip / F32(cell_state.s))), -32768.0), 32767.0))) \
        if cell_clip > 0 else 0
    qpc = int(np.trunc(min(max(float(F32(proj_clip / F32(output.s))), -128.0), 127.0))) \
        if proj_clip > 0 else 0
    inter_scale, inter_zp = [], []
    for k in range(4):
        if use_layer_norm:
            t = intermediates[k]
            ctx.check(t is not None and t.quantized, f"intermediate {k} has no quantization" + UNSET)
            ctx.require_quantized(t)
            inter_scale.append(F32(t.scale[0]))
            inter_zp.append(int(t.zero_point[0]))
        else:
            inter_scale.append(F32(2.0 ** -12))
            inter_zp.append(0)
    hid = intermediates[4]
    ctx.check(hid is not None and hid.quantized, "intermediate 4 (hidden) has no quantization" + UNSET)
    ctx.require_quantized(hid)
    inter_scale.append(F32(hid.scale[0]))
    inter_zp.append(int(hid.zero_point[0]))

    def s(name):
        t = get(name)
        return F32(1.0) if t is None else F32(t.scale[0])

    cell_scale = checked_log2(float(cell_state.s))
    ctx.check(cell_scale is not None, f"cell state scale {float(cell_state.s)} is not a power of two: "
              "LiteRT's CheckedLog2 fails and, as Prepare ignores the status of "
              "PopulateQuantizedLstmParams8x8_16, LiteRT would run with parameters left unset")
    in_s = F32(get("input").s)
    os_ = F32(output_state.s)
    eff = {}
    for g, k in (("i", 0), ("f", 1), ("c", 2), ("o", 3)):
        if g == "i" and use_cifg:
            eff["i2i"] = eff["r2i"] = F32(1.0)
            continue
        eff["i2" + g] = F32(F32(s("i2" + g) * in_s) / inter_scale[k])
        eff["r2" + g] = F32(F32(s("r2" + g) * os_) / inter_scale[k])
    eff["hidden"] = F32(2.0 ** -15 / float(inter_scale[4]) * 2.0 ** -15)
    eff["proj"] = F32(F32(s("proj_w") * inter_scale[4]) / os_) if use_projection else F32(1.0)
    for g, k in (("i", 0), ("f", 1), ("o", 3)):
        if use_peephole and not (g == "i" and use_cifg):
            eff["c2" + g] = F32(2.0 ** cell_scale * float(s("c2" + g)) / float(inter_scale[k]))
        else:
            eff["c2" + g] = F32(1.0)
    for n in ("ln_i", "ln_f", "ln_c", "ln_o"):
        eff[n] = s(n) if use_layer_norm and not (n == "ln_i" and use_cifg) else F32(1.0)
    scale_a, scale_b = {}, {}
    for n, v in eff.items():
        # finite scales can still overflow float32 here (1e30 / 1e-30)
        ctx.check(bool(np.isfinite(v)), f"effective scale of {n} is {float(v)}, not a finite "
                  "number (the tensors' scales are out of range)")
        scale_a[n], scale_b[n] = quantize_multiplier(float(v))
    guard = {}
    for g in ("i", "f", "c", "o"):
        with np.errstate(over="ignore"):
            v = np.float32(10000) * eff["ln_" + g]
        # LiteRT converts this float to int32: undefined behaviour past the int32 range
        ctx.check(bool(v < 2.0 ** 31), f"layer norm coefficients ln_{g} scale {float(eff['ln_' + g])}"
                  " gives a variance guard (10000 * scale) beyond int32")
        guard[g] = max(1, int(np.trunc(v)))

    # effective biases: bias + zp * rowsum(W) (int32 arithmetic)
    in_zp = -int(get("input").zp)
    os_zp = -int(output_state.zp)
    eff_bias = {}

    def pre(zp, wname, bname):
        w = inputs.get(wname)
        if w is None:
            return None
        rows = w.shape[0]
        b = inputs.get(bname) if bname else None
        out = np.zeros(rows, np.int64) if b is None else b.astype(np.int64)
        if zp != 0:
            out = wrap_int32(out + wrap_int32(zp * w.astype(np.int64).sum(axis=1)))
        return out

    for g in ("i", "f", "c", "o"):
        eff_bias["i2" + g] = pre(in_zp, "i2" + g, None if use_layer_norm else "b" + g)
        eff_bias["r2" + g] = pre(os_zp, "r2" + g, None)
    if use_projection:
        eff_bias["proj"] = pre(inter_zp[4], "proj_w", "proj_b")
    return IntegerParams(scale_a, scale_b, eff_bias, cell_scale, inter_zp[4], int(output_state.zp),
                         qcc, qpc, guard)


# ---------------------------------------------------------------------------
# float step
# ---------------------------------------------------------------------------
def _gate_float(x, w_in, aux, w_aux, h, w_rec, diag, c, w_peep, ln, bias, act, x_zero, aux_zero):
    """``CalculateLstmGateFloat`` with its two swapping buffers G (gate) and S."""
    n_batch = h.shape[0]
    bufs = {"G": np.zeros((n_batch, len(bias)), F32) if ln is not None
            else np.broadcast_to(bias, (n_batch, len(bias))).astype(F32), "S": None}
    acc, out = "G", "S"
    if not x_zero:
        bufs[out] = _fc(bufs[acc], x, w_in)
        acc, out = out, acc
    if aux is not None and not aux_zero:
        bufs[out] = _fc(bufs[acc], aux, w_aux)
        acc, out = out, acc
    if diag:
        bufs[acc] = (bufs[acc] + (w_rec[None, :] * h).astype(F32)).astype(F32)
        acc, out = out, acc
    else:
        bufs[out] = _fc(bufs[acc], h, w_rec)
    if w_peep is not None:
        bufs[out] = (bufs[out] + (w_peep[None, :] * c).astype(F32)).astype(F32)
    if ln is not None:
        v = mean_stddev_normalization(bufs[out])
        bufs[out] = ((v * ln[None, :]).astype(F32) + bias[None, :]).astype(F32)
    r = apply_activation(bufs[out], act)
    return bufs["G"] if r is None else r


def float_step(p: LstmParams, W: dict, x, aux, h, c):
    """One ``LstmStepFloat`` over all batches: returns (new h, new c)."""
    x_zero = not np.any(x != 0)
    aux_zero = aux is None or not np.any(aux != 0)
    d = p.diag

    def gate(g, k, act, with_cell):
        return _gate_float(x, W.get("i2" + g), aux, W.get("a2" + g), h, W["r2" + g], d[k],
                           c if with_cell else None,
                           W.get("c2" + g) if with_cell else None,
                           W.get("ln_" + g) if p.use_layer_norm else None, W["b" + g], act,
                           x_zero, aux_zero)

    ig = None if p.use_cifg else gate("i", 0, SIGMOID, True)
    fg = gate("f", 1, SIGMOID, True)
    cg = gate("c", 2, p.activation, False)
    c = (fg * c).astype(F32)
    if p.use_cifg:
        c = (c + (cg * (F32(1) - fg).astype(F32)).astype(F32)).astype(F32)
    else:
        c = (c + (cg * ig).astype(F32)).astype(F32)
    if p.cell_clip > 0:
        c = np.clip(c, -F32(p.cell_clip), F32(p.cell_clip)).astype(F32)
    og = gate("o", 3, SIGMOID, True)
    a = apply_activation(c, p.activation)
    scratch = ((cg if a is None else a) * og).astype(F32)
    if p.use_projection:
        b = W.get("proj_b")
        acc = np.zeros((h.shape[0], p.n_output), F32) if b is None else \
            np.broadcast_to(b, (h.shape[0], p.n_output)).astype(F32)
        h = _fc(acc, scratch, W["proj_w"])
        if p.proj_clip > 0:
            h = np.clip(h, -F32(p.proj_clip), F32(p.proj_clip)).astype(F32)
    else:
        h = scratch[:, :p.n_output].astype(F32)
    return h, c


# ---------------------------------------------------------------------------
# hybrid step
# ---------------------------------------------------------------------------
def _mbvma_hybrid(gate, q, sf, zp, w, w_scale, row_sums):
    """``MatrixBatchVectorMultiplyAccumulate`` (int8 weights, float result), SSE path."""
    scale = (sf * F32(w_scale)).astype(F32)
    acc = sse_matrix_batch_vector_dot(q, w)
    if row_sums is not None:
        acc = wrap_int32(acc - wrap_int32(zp[:, None] * row_sums[None, :]))
    return (gate + (acc.astype(F32) * scale[:, None]).astype(F32)).astype(F32)


def hybrid_step(p: LstmParams, W: dict, x, aux, h, c, row_sums: dict):
    asym = p.asymmetric_quantize_inputs
    x_zero = not np.any(x != 0)
    aux_zero = aux is None or not np.any(aux != 0)
    h_zero = not np.any(h != 0)
    qx = sx = zx = qa = sa = za = qh = sh = zh = None
    if not x_zero:
        qx, sx, zx = batch_quantize_floats(x, asym)
    if not aux_zero:
        qa, sa, za = batch_quantize_floats(aux, asym)
    if not h_zero:
        qh, sh, zh = batch_quantize_floats(h, asym)
    ws = p.weight_scale
    n_batch = h.shape[0]

    def gate(g, act, with_cell):
        bias = W["b" + g]
        ln = W.get("ln_" + g) if p.use_layer_norm else None
        out = np.zeros((n_batch, p.n_cell), F32) if ln is not None else \
            np.broadcast_to(bias, (n_batch, p.n_cell)).astype(F32)
        if not x_zero:
            out = _mbvma_hybrid(out, qx, sx, zx, W["i2" + g], ws["i2" + g], row_sums.get("i2" + g))
        if not aux_zero:
            out = _mbvma_hybrid(out, qa, sa, za, W["a2" + g], ws["a2" + g], row_sums.get("a2" + g))
        if not h_zero:
            out = _mbvma_hybrid(out, qh, sh, zh, W["r2" + g], ws["r2" + g], row_sums.get("r2" + g))
        if with_cell and p.use_peephole:
            rec = (W["c2" + g].astype(F32) * F32(ws["c2" + g])).astype(F32)
            out = (out + (rec[None, :] * c).astype(F32)).astype(F32)
        if ln is not None:
            v = mean_stddev_normalization(out)
            out = ((v * ln[None, :]).astype(F32) + bias[None, :]).astype(F32)
        r = apply_activation(out, act)
        return out if r is None else r

    ig = None if p.use_cifg else gate("i", SIGMOID, True)
    fg = gate("f", SIGMOID, True)
    cg = gate("c", p.activation, False)
    c = (fg * c).astype(F32)
    if p.use_cifg:
        c = (c + (cg * (F32(1) - fg).astype(F32)).astype(F32)).astype(F32)
    else:
        c = (c + (cg * ig).astype(F32)).astype(F32)
    if p.cell_clip > 0:
        c = np.clip(c, -F32(p.cell_clip), F32(p.cell_clip)).astype(F32)
    og = gate("o", SIGMOID, True)
    a = apply_activation(c, p.activation)
    scratch = ((cg if a is None else a) * og).astype(F32)
    if p.use_projection:
        b = W.get("proj_b")
        out = np.zeros((n_batch, p.n_output), F32) if b is None else \
            np.broadcast_to(b, (n_batch, p.n_output)).astype(F32)
        if np.any(scratch != 0):
            qs, ss, zs = batch_quantize_floats(scratch, asym)
            out = _mbvma_hybrid(out, qs, ss, zs, W["proj_w"], ws["proj_w"], row_sums.get("proj_w"))
        if p.proj_clip > 0:
            out = np.clip(out, -F32(p.proj_clip), F32(p.proj_clip)).astype(F32)
        h = out
    else:
        h = scratch[:, :p.n_output].astype(F32)
    return h, c


def hybrid_row_sums(p: LstmParams, W: dict) -> dict:
    """``ComputeRowSums`` (asymmetric inputs only): SSE ``ReductionSumVector`` per matrix."""
    if not p.asymmetric_quantize_inputs:
        return {}
    out = {}
    for k, w in W.items():
        if k[:2] in ("i2", "r2", "a2") or k == "proj_w":
            if w is not None and w.ndim == 2:
                out[k] = sse_reduction_sum_int8(w.astype(np.int64))
    return out


# ---------------------------------------------------------------------------
# integer 8x8_16 step
# ---------------------------------------------------------------------------
def _mbq(x, ip: IntegerParams, name):
    return multiply_by_quantized_multiplier(x, ip.scale_a[name], ip.scale_b[name])


def _mbvma_int(x, bias, w, ip, name, out_zp, acc_prev, lo, hi):
    """``PortableMatrixBatchVectorMultiplyAccumulateImpl``: clamp(prev + MBQM(bias + x W^T) + zp)."""
    acc = wrap_int32(bias[None, :] + exact_int_matmul(x.astype(np.float64), w.astype(np.float64).T))
    acc = _mbq(acc, ip, name) + out_zp + acc_prev
    return np.clip(acc, lo, hi)


def integer_step(p: LstmParams, W: dict, x, h, c):
    """One ``LstmStepInteger8x8_16`` (all batches): x int8, h int8, c int16 (int64 arrays)."""
    ip = p.integer
    n_batch = x.shape[0]

    def gate(g, sigmoid):
        out = np.zeros((n_batch, p.n_cell), np.int64)
        out = _mbvma_int(x, ip.eff_bias["i2" + g], W["i2" + g], ip, "i2" + g, 0, out, -32768, 32767)
        out = _mbvma_int(h, ip.eff_bias["r2" + g], W["r2" + g], ip, "r2" + g, 0, out, -32768, 32767)
        if p.use_peephole and g != "c":
            # PortableVectorBatchVectorCwiseProductAccumulate with v_size = n_output (as
            # LiteRT passes it): walks the flat cell state and gate buffers for
            # n_batch * n_output elements, the weights repeating every n_output.
            # Time major: one call for all batches (the walk crosses batch rows when
            # n_output < n_cell); batch major: one call per batch row.
            wv = W["c2" + g].astype(np.int64)[:p.n_output]
            if p.time_major:
                k = n_batch * p.n_output
                flat = out.reshape(-1)
                add = _mbq(np.tile(wv, n_batch) * c.reshape(-1)[:k], ip, "c2" + g)
                flat[:k] = np.clip(add + flat[:k], -32768, 32767)
                out = flat.reshape(out.shape)
            else:
                add = _mbq(wv[None, :] * c[:, :p.n_output], ip, "c2" + g)
                out[:, :p.n_output] = np.clip(add + out[:, :p.n_output], -32768, 32767)
        if p.use_layer_norm:
            out = fx.apply_layer_norm(out, W["ln_" + g], W["b" + g], ip.scale_a["ln_" + g],
                                      ip.scale_b["ln_" + g], ip.variance_guard[g])
        return fx.logistic16(out, 3) if sigmoid else fx.tanh16(out, 3)

    ig = None if p.use_cifg else gate("i", True)
    fg = gate("f", True)
    cg = gate("c", False)
    # UpdateLstmCellInteger
    c = fx.cwise_mul_shift(fg, c, 15)
    if p.use_cifg:
        scratch = fx.cwise_mul_shift(32767 - fg, cg, 30 + ip.cell_scale)
    else:
        scratch = fx.cwise_mul_shift(ig, cg, 30 + ip.cell_scale)
    c = np.clip(c + scratch, -32768, 32767)
    if ip.quantized_cell_clip > 0:
        c = np.clip(c, -ip.quantized_cell_clip, ip.quantized_cell_clip)
    og = gate("o", True)
    # CalculateLstmOutputInteger8x8_16
    t = fx.tanh16(c, 15 + ip.cell_scale)
    prod = og * t
    if p.use_projection:
        hid = np.clip(_mbq(prod, ip, "hidden") - ip.hidden_zp, -128, 127)
        out = np.zeros((n_batch, p.n_output), np.int64)
        h = _mbvma_int(hid, ip.eff_bias["proj"], W["proj_w"], ip, "proj", ip.output_state_zp, out,
                       -128, 127)
        if ip.quantized_proj_clip > 0:
            h = np.clip(h, -ip.quantized_proj_clip, ip.quantized_proj_clip)
    else:
        h = np.clip(_mbq(prod, ip, "hidden") + ip.hidden_zp, -128, 127)
    return h, c


# ---------------------------------------------------------------------------
# the time loop
# ---------------------------------------------------------------------------
def run_sequence(p: LstmParams, W: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray, *,
                 forward: bool = True, aux: np.ndarray | None = None,
                 row_sums: dict | None = None):
    """Run the LSTM over ``x`` [T, B, n_input] (time major); returns (outputs [T, B,
    n_output], h, c) with h and c as 2-D [B, n] arrays in the state dtype.

    A batch-major op (``time_major`` false) runs LiteRT's loop order: each batch row on
    its own (steps with n_batch = 1), which matters where a step looks at the whole
    batch (all-zero checks, the integer peephole's walk over n_output elements)."""
    T, B = x.shape[0], x.shape[1]
    if not p.time_major and B > 1:
        h0 = h0.reshape(B, -1)
        c0 = c0.reshape(B, -1)
        parts = [run_sequence(p, W, x[:, b:b + 1], h0[b:b + 1], c0[b:b + 1], forward=forward,
                              aux=None if aux is None else aux[:, b:b + 1], row_sums=row_sums)
                 for b in range(B)]
        return (np.concatenate([q[0] for q in parts], axis=1),
                np.concatenate([q[1] for q in parts], axis=0),
                np.concatenate([q[2] for q in parts], axis=0))
    if p.kind == "integer":
        h = h0.reshape(B, p.n_output).astype(np.int64)
        c = c0.reshape(B, p.n_cell).astype(np.int64)
        outs = np.zeros((T, B, p.n_output), np.int64)
    else:
        h = h0.reshape(B, p.n_output).astype(F32)
        c = c0.reshape(B, p.n_cell).astype(F32)
        outs = np.zeros((T, B, p.n_output), F32)
    order = range(T) if forward else range(T - 1, -1, -1)
    for t in order:
        xt = x[t]
        at = None if aux is None else aux[t]
        if p.kind == "float":
            with np.errstate(invalid="ignore", over="ignore"):   # inf/NaN propagate as in C
                h, c = float_step(p, W, xt.astype(F32), None if at is None else at.astype(F32), h, c)
        elif p.kind == "hybrid":
            with np.errstate(invalid="ignore", over="ignore"):   # inf/NaN propagate as in C
                h, c = hybrid_step(p, W, xt.astype(F32), None if at is None else at.astype(F32), h, c,
                                   row_sums or {})
        else:
            h, c = integer_step(p, W, xt.astype(np.int64), h, c)
        outs[t] = h
    return outs, h, c
