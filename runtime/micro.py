"""TFLite Micro (``numerics="micro"``): which kernels TFLM has, which of them compute
exactly what LiteRT's reference kernels compute, and the requantization of those
that differ.

Sources: tensorflow/tflite-micro (``tensorflow/lite/micro/kernels/*.cc``,
``micro_mutable_op_resolver.h``, and TFLM's copies of
``tensorflow/lite/kernels/internal/common.cc`` and ``kernel_util.cc``); measured
against the ``tflite-micro`` wheel (``quantcore.micro_oracle``). TFLM's reference
kernels are built with double rounding (TFLITE_SINGLE_ROUNDING off), like LiteRT's.

How an operator gets its micro path (``micro_paths``, called by the interpreter):

* TFLM must have a kernel for it (:data:`MICRO_OPS`) and accept its tensor types
  (:func:`micro_support`, the type checks of each kernel's Prepare/Eval), otherwise
  the interpreter raises ``UnsupportedOpError`` with TFLM's reason;
* a kernel module that lists ``"micro"`` in its ``NUMERICS`` implements TFLM's
  arithmetic itself (``ctx.numerics == "micro"`` branches: FULLY_CONNECTED, MUL, SVDF,
  TRANSPOSE_CONV);
* an operator in :data:`MICRO_SAME_AS_REFERENCE` runs the reference path's code with
  ``ctx.numerics == "micro"``: differential tests against TFLM (tests/test_micro.py)
  found the outputs identical.

Operators whose TFLM arithmetic differs from LiteRT's reference path:

* FULLY_CONNECTED int8: TFLM requantizes with the fixed-point
  ``MultiplyByQuantizedMultiplier`` (gemmlowp, double rounding), the multiplier being
  ``QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out))`` per channel or
  ``QuantizeMultiplier(double(f32(s_in * s_w)) / double(s_out))`` per tensor
  (``fully_connected_common.cc``, ``kernel_util.cc GetQuantizedConvolutionMultipler``);
  LiteRT's reference kernel rounds ``double(acc) * effective_scale``.
* FULLY_CONNECTED 16x8: an int32 bias selects the int32 accumulator and the 32-bit
  ``MultiplyByQuantizedMultiplier``; an int64 bias (or none, unless
  ``quantized_bias_type`` is INT32) the int64 accumulator and the int64 overload, whose
  multiplier is reduced to 16 bits and rounded once with ties up
  (``common.cc``). TFLM chooses by the bias type and never reads the bias as the other
  width.
* MUL int8/int16: the multiplier is built in double,
  ``double(s1) * double(s2) / double(s_out)`` (``mul_common.cc``); LiteRT computes
  ``f32(f32(s1 * s2) / s_out)``.
* SVDF int8: TFLM's ``EvalIntegerSvdfReference<T>`` with T the time weights' type,
  int8 or int16, the state zero point applied (runtime/ops/svdf.py); LiteRT has no int8
  state (it reads it as int16 and crashes or returns garbage).
* TRANSPOSE_CONV: the output size is the output tensor's declared one and the input
  size is not checked against it (LiteRT's Eval rejects a mismatch); 16x8 always
  accumulates in int64 and takes an int16 bias (runtime/ops/transpose_conv.py).
* UNIDIRECTIONAL_SEQUENCE_LSTM int8 (int16 cell): TFLM's own LSTM (``lstm_eval.h``),
  built from FULLY_CONNECTED, saturating ADD, the int16 LOGISTIC/TANH and MUL kernels,
  where LiteRT runs ``LstmStepInteger8x8_16``: :func:`micro_lstm_sequence` (1 LSB
  apart on a few percent of the outputs of a trained LSTM). TFLM runs only the plain
  24-input LSTM (no CIFG, peephole, projection or layer norm; :func:`micro_support`).
  The float LSTM computes what LiteRT's does (measured within 1e-5 of the range).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import UnsupportedOpError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  quantize_multiplier_array, wrap_int32)

# ---------------------------------------------------------------------------
# TFLM's operators: builtin name -> MicroMutableOpResolver method
# (tensorflow/lite/micro/micro_mutable_op_resolver.h). TFLM ignores operator versions.
# ---------------------------------------------------------------------------
MICRO_OPS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# Operators whose TFLM kernel gives LiteRT's reference results (differential tests in
# tests/test_micro.py, and research/tflm-notes.md Part A).
MICRO_SAME_AS_REFERENCE: frozenset[str] = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "SUB",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "LOGISTIC", "TANH", "HARD_SWISH",
    "QUANTIZE", "DEQUANTIZE", "LEAKY_RELU", "PRELU", "RESIZE_BILINEAR",
    "CONCATENATION", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
})

# ---------------------------------------------------------------------------
# Tensor types TFLM's kernels accept: the type of input 0 (None: any type).
# From each kernel's Prepare checks and Eval switch.
# ---------------------------------------------------------------------------
_F, _I8, _I16, _I32, _I64, _U8, _B = "FLOAT32", "INT8", "INT16", "INT32", "INT64", "UINT8", "BOOL"
_ACT = frozenset({_F, _I8, _I16})
MICRO_INPUT_TYPES: dict[str, frozenset[str] | None] = {
    "ADD": frozenset({_F, _I8, _I16, _I32}), "SUB": frozenset({_F, _I8, _I16, _I32}),
    "MUL": frozenset({_F, _I8, _I16, _I32}), "DIV": frozenset({_F, _I8, _I32}),
    "ADD_N": frozenset({_F, _I8}), "SQUARED_DIFFERENCE": frozenset({_F, _I8, _I16, _I32}),
    "MAXIMUM": frozenset({_F, _I8, _I16, _I32, _I64}),
    "MINIMUM": frozenset({_F, _I8, _I16, _I32, _I64}),
    "AVERAGE_POOL_2D": _ACT, "MAX_POOL_2D": _ACT, "L2_POOL_2D": frozenset({_F}),
    "CONV_2D": _ACT, "DEPTHWISE_CONV_2D": _ACT, "TRANSPOSE_CONV": _ACT,
    "FULLY_CONNECTED": _ACT, "BATCH_MATMUL": _ACT, "SVDF": frozenset({_F, _I8}),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _ACT,
    "SOFTMAX": _ACT, "LOGISTIC": _ACT, "TANH": _ACT, "HARD_SWISH": frozenset({_F, _I8}),
    "RELU": _ACT, "RELU6": _ACT, "LEAKY_RELU": _ACT, "PRELU": _ACT,
    "ELU": frozenset({_F, _I8}), "LOG_SOFTMAX": frozenset({_F, _I8}),
    "L2_NORMALIZATION": frozenset({_F, _I8}),
    "QUANTIZE": frozenset({_F, _I32, _I16, _I8, _U8}),
    "DEQUANTIZE": frozenset({_I8, _I16, _U8}),
    "MEAN": frozenset({_F, _I8, _I16}), "SUM": frozenset({_F, _I8, _I16}),
    "REDUCE_MAX": frozenset({_F, _I8}), "REDUCE_MIN": frozenset({_F, _I8}),
    "REDUCE_ALL": frozenset({_B}),
    "CONCATENATION": frozenset({_F, _I8, _I16, _I32, _I64, _B}),
    "PACK": frozenset({_F, _I8, _I16, _I32, _I64}), "UNPACK": frozenset({_F, _I8, _I16, _I32}),
    "SPLIT": frozenset({_F, _I8, _I16, _I32}), "SPLIT_V": frozenset({_F, _I8, _I16, _I32}),
    "PAD": frozenset({_F, _I8, _I16, _I32}), "PADV2": frozenset({_F, _I8, _I16, _I32}),
    "MIRROR_PAD": frozenset({_F, _I8, _I32, _I64}),
    "TRANSPOSE": frozenset({_F, _I8, _I16}),
    "STRIDED_SLICE": frozenset({_F, _I8, _I16, _I32, _B}),
    "SLICE": frozenset({_F, _I8, _I16, _I32, _I64, _B}),
    "SPACE_TO_BATCH_ND": frozenset({_F, _I8}), "BATCH_TO_SPACE_ND": frozenset({_F, _I8}),
    "SPACE_TO_DEPTH": frozenset({_F, _I8}), "DEPTH_TO_SPACE": frozenset({_F, _I8}),
    "RESIZE_BILINEAR": frozenset({_F, _I8}),
    "RESIZE_NEAREST_NEIGHBOR": frozenset({_F, _I8, _I16}),
    "GATHER": frozenset({_F, _I8, _I32}), "GATHER_ND": frozenset({_F, _I8, _I32}),
    "EXPAND_DIMS": frozenset({_F, _I8, _I16, _I32}),
    "ZEROS_LIKE": frozenset({_F, _I32, _I64}), "FILL": None, "SHAPE": None, "RESHAPE": None,
    "ABS": _ACT, "RSQRT": _ACT, "SQRT": frozenset({_F}), "SQUARE": frozenset({_F}),
    "SIN": frozenset({_F}), "COS": frozenset({_F}), "LOG": frozenset({_F}),
    "EXP": frozenset({_F}), "NEG": frozenset({_F, _I8}), "FLOOR": frozenset({_F}),
    "CEIL": frozenset({_F}), "ROUND": frozenset({_F}), "LOGICAL_NOT": frozenset({_B}),
    "ARG_MAX": frozenset({_F, _I8, _I32}), "ARG_MIN": frozenset({_F, _I8, _I32}),
    "CUMSUM": frozenset({_F, _I8, _I32}), "EMBEDDING_LOOKUP": None,
    "CAST": frozenset({_F, _I8, _I16, _I32, _B, "UINT32"}),
}


def _type_name(model, s: int, i: int) -> str | None:
    if i < 0:
        return None
    return model.subgraphs[s].tensors[i].type_name


def micro_support(model, s: int, o: int) -> str | None:
    """Why TFLite Micro cannot run operator ``o`` of subgraph ``s`` (None: it can).

    Checks that TFLM has a kernel, the input types its kernel accepts, and the
    weight/type combinations of the GEMM family (no hybrid float x int8 kernels, no
    int16 x int16, no uint8)."""
    sg = model.subgraphs[s]
    op = sg.operators[o]
    code = model.operator_codes[op.opcode_index]
    name = code.name
    if name == "CUSTOM":
        return f"custom operator {code.custom_code!r}: register it with AddCustom()"
    if name not in MICRO_OPS:
        return "TFLite Micro has no kernel for this operator"
    types = [_type_name(model, s, i) for i in op.inputs]
    # the data input: TRANSPOSE_CONV takes (output_shape, weights, input, bias)
    t0 = (types[2] if len(types) > 2 else None) if name == "TRANSPOSE_CONV" else \
        (types[0] if types else None)
    allowed = MICRO_INPUT_TYPES.get(name)
    if allowed is not None and t0 is not None and t0 not in allowed:
        return f"input type {t0} (TFLite Micro's kernel takes {', '.join(sorted(allowed))})"
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"):
        x, w = (types[2], types[1]) if name == "TRANSPOSE_CONV" else (t0, types[1])
        ok = {(_F, _F), (_I8, _I8), (_I8, "INT4"), (_I16, _I8)}
        if name == "TRANSPOSE_CONV":
            ok.discard((_I8, "INT4"))
        if (x, w) not in ok:
            if x == _F and w in (_I8, _U8):
                return f"hybrid {x} x {w} weights (TFLite Micro has no hybrid kernels)"
            return f"{x} input with {w} weights (TFLite Micro supports float32 x float32, " \
                   "int8 x int8, int16 x int8)"
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        reason = _lstm_support(types)
        if reason is not None:
            return reason
    if name == "TRANSPOSE_CONV" and t0 == _I16 and len(types) > 3 and types[3] == _I32:
        return ("16x8 with an INT32 bias: TFLite Micro's kernel reads the bias as int64 "
                "(past the end of the buffer); it takes INT64 or INT16 biases")
    if name == "SVDF":
        reason = _svdf_support(model, s, op)
        if reason is not None:
            return reason
    if name == "DEQUANTIZE" and t0 == "FLOAT16":
        return "float16 DEQUANTIZE (TFLite Micro dequantizes int8, int16 and uint8 only)"
    if name == "QUANTIZE" and op.outputs:
        out = _type_name(model, s, op.outputs[0])
        ok = {(_F, _I8), (_F, _I16), (_I16, _I8), (_I8, _I8), (_I8, _U8), (_U8, _I8),
              (_I8, _I16), (_I8, _I32), (_I16, _I16), (_I16, _I32), (_I32, _I8), (_I32, _I16)}
        if (t0, out) not in ok:
            return f"QUANTIZE {t0} -> {out} (not among TFLite Micro's type pairs)"
    return None


def _lstm_support(types: list[str | None]) -> str | None:
    """``LstmTensors::ValidateTensorStatus`` and ``UnidirectionalSequenceLstmPrepare``
    (lstm_eval.cc, unidirectional_sequence_lstm.cc): 24 inputs; the input-gate weights
    (no CIFG), all eight weights of one type and the four biases of one type; no
    peephole (inputs 9-11), projection (16-17) or layer norm (20-23); the hidden state
    of the input's type; an int16 or float32 cell state."""
    if len(types) != 24:
        return f"{len(types)} inputs (TFLite Micro's LSTM takes the 24-input form)"
    if any(types[i] is None for i in range(1, 9)):
        return "CIFG (no input gate): TFLite Micro's LSTM needs all eight gate weights"
    for lo, hi, what in ((9, 12, "peephole"), (16, 18, "projection"), (20, 24, "layer norm")):
        if any(types[i] is not None for i in range(lo, hi)):
            return f"{what} LSTM (TFLite Micro's LSTM has no {what})"
    if len({types[i] for i in range(1, 9)}) != 1 or len({types[i] for i in range(12, 16)}) != 1:
        return "LSTM weights (or biases) of mixed types"
    if types[18] != types[0]:
        return f"hidden state {types[18]} differs from the input type {types[0]}"
    if types[0] == _F and types[1] != _F:
        return f"hybrid {types[0]} x {types[1]} LSTM (TFLite Micro has no hybrid kernels)"
    if types[19] not in (_F, _I16):
        return f"cell state {types[19]} (TFLite Micro's LSTM needs int16 or float32)"
    return None


def _svdf_support(model, s: int, op) -> str | None:
    """``PrepareSvdf`` and ``EvalSvdf`` (tflite-micro kernels/svdf.cc, svdf_common.cc):
    five inputs with a variable state; float32 throughout (no hybrid kernel), or int8
    input and feature weights with int8 or int16 time weights, an int32 bias and an int8
    output. TFLM reads the state with the time weights' type, reads the bias (scale in
    the integer Prepare, data in the float Eval) even when it is absent (a null
    dereference: measured SIGSEGV), and requires
    ``|s_bias - f32(s_state * s_wt)| < 1e-5``."""
    sg = model.subgraphs[s]
    ins = list(op.inputs)
    if len(ins) != 5:
        return f"{len(ins)} inputs (TFLite Micro's SVDF takes 5)"
    t = [None if i < 0 else sg.tensors[i] for i in ins]
    x, wf, wt, bias, state = t
    if x is None or wf is None or wt is None or state is None:
        return "a required input is absent"
    if not state.is_variable:
        return "the state (input 4) is not a variable tensor (TFLite Micro requires is_variable)"
    if bias is None:
        return ("no bias: TFLite Micro's SVDF reads the bias unconditionally (the integer "
                "Prepare its scale, the float Eval its data) and dereferences a null tensor")
    names = [None if v is None else v.type_name for v in t]
    if names[0] == _F:
        if any(n not in (None, _F) for n in names[1:]):
            return (f"float input with {names[1]} feature weights, {names[2]} time weights and "
                    f"{names[4]} state (TFLite Micro has no hybrid SVDF: all float32)")
        return None
    if names[1] != _I8:
        return f"feature weights {names[1]} (TFLite Micro needs INT8 with an int8 input)"
    if names[2] not in (_I8, _I16):
        return f"time weights {names[2]} (TFLite Micro takes INT8 or INT16)"
    if names[4] != names[2]:
        return (f"{names[4]} state with {names[2]} time weights (TFLite Micro reads the state "
                f"as {names[2]})")
    out = sg.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    if out is None or out.type_name != _I8:
        return "the output must be INT8"
    if names[3] != _I32:
        return f"bias {names[3]} (TFLite Micro needs INT32)"
    qs, qb, qw = state.qparams(), bias.qparams(), wt.qparams()
    if qs is None or qw is None:
        return "the state and time weights must be quantized"
    s_bias = float(qb[0][0]) if qb is not None else 0.0
    want = float(np.float32(np.float32(qs[0][0]) * np.float32(qw[0][0])))
    if not abs(s_bias - want) < 1e-5:
        return (f"bias scale {s_bias!r} differs from state scale x time weights scale "
                f"{want!r} by 1e-5 or more (TFLite Micro's PrepareSvdf check)")
    return None


def micro_paths(model, s: int, o: int, paths: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The numerics paths of an operator's kernel when the interpreter runs ``"micro"``.

    Raises UnsupportedOpError if TFLite Micro cannot run the operator; adds
    ``"micro"`` for operators whose TFLM results equal the reference path's."""
    reason = micro_support(model, s, o)
    code = model.operator_codes[model.subgraphs[s].operators[o].opcode_index]
    if reason is not None:
        raise UnsupportedOpError(code.name, code.version, path=where,
                                 detail=f"TFLite Micro cannot run it: {reason}")
    if "micro" not in paths and code.name in MICRO_SAME_AS_REFERENCE and "reference" in paths:
        return tuple(paths) + ("micro",)
    return tuple(paths)


# ---------------------------------------------------------------------------
# FULLY_CONNECTED and MUL on the micro path
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MicroRequant:
    """TFLM's requantization of FULLY_CONNECTED accumulators (channels last).

    ``mode``: "mbqm32" (int32 accumulator, gemmlowp MultiplyByQuantizedMultiplier,
    double rounding) or "mbqm64" (int64 accumulator, the int64 overload: 16-bit
    multiplier, one rounding with ties up). Then ``+ output_offset`` and the clamp."""
    mode: str
    output_offset: int
    act_min: int
    act_max: int
    multiplier: np.ndarray
    shift: np.ndarray

    def apply(self, acc: np.ndarray) -> np.ndarray:
        acc = np.asarray(acc, np.int64)
        if self.mode == "mbqm32":
            scaled = multiply_by_quantized_multiplier(wrap_int32(acc), self.multiplier, self.shift)
        else:
            scaled = multiply_by_quantized_multiplier_int64(acc, self.multiplier, self.shift)
        return np.clip(wrap_int32(scaled + self.output_offset), self.act_min, self.act_max)


def fc_requant(x, w, out, lo: int, hi: int, num_units: int, *, int64_acc: bool) -> MicroRequant:
    """``CalculateOpDataFullyConnected`` (fully_connected_common.cc): per channel when
    the filter has more than one scale, ``QuantizeMultiplier(double(s_in) *
    double(s_w[c]) / double(s_out))``; per tensor ``QuantizeMultiplier(double(f32(s_in *
    s_w)) / double(s_out))``."""
    f32 = np.float32
    if len(w.scale) > 1:
        m, s = quantize_multiplier_array(float(x.s) * np.asarray(w.scale, np.float64) / float(out.s))
        m, s = np.asarray(m, np.int64), np.asarray(s, np.int64)
    else:
        m0, s0 = quantize_multiplier(float(f32(f32(x.s) * f32(w.scale[0]))) / float(out.s))
        m, s = np.full(num_units, m0, np.int64), np.full(num_units, s0, np.int64)
    return MicroRequant(mode="mbqm64" if int64_acc else "mbqm32", output_offset=int(out.zp),
                        act_min=int(lo), act_max=int(hi), multiplier=m, shift=s)


def mul_real_multiplier(a, b, out) -> float:
    """``CalculateOpDataMul`` (mul_common.cc): ``double(s1) * double(s2) / double(s_out)``."""
    return float(a.s) * float(b.s) / float(out.s)


def softmax_int16_tables() -> tuple[np.ndarray, np.ndarray]:
    """TFLM's int16 SOFTMAX tables (``softmax_common.cc InitializeLutForInt16``): the same
    ``LUTPopulate<int16_t>`` as LiteRT's, but in float32 (``10.0f / range``, ``std::exp``
    of a float, ``1.0f / (1.0f + x)``) where LiteRT computes in double."""
    global _SOFTMAX16
    if _SOFTMAX16 is None:
        from .ops._lut import libm_f32, lut_populate_int16
        f32 = np.float32
        exp_lut = lut_populate_int16(f32(10.0) / f32(65535), 32767, f32(2.0) / f32(65535), 0,
                                     lambda v: libm_f32("expf", v), f32)
        recip_lut = lut_populate_int16(f32(1.0) / f32(65535), -32768, f32(2.0) / f32(65535), 0,
                                       lambda v: (f32(1) / (f32(1) + np.asarray(v, f32))).astype(f32),
                                       f32)
        exp_lut.flags.writeable = False
        recip_lut.flags.writeable = False
        _SOFTMAX16 = (exp_lut, recip_lut)
    return _SOFTMAX16


_SOFTMAX16: tuple[np.ndarray, np.ndarray] | None = None


# ---------------------------------------------------------------------------
# UNIDIRECTIONAL_SEQUENCE_LSTM, integer (int8 activations, int16 cell state)
# ---------------------------------------------------------------------------
# TFLM has its own LSTM (kernels/lstm_eval.h, lstm_eval.cc, lstm_eval_common.cc), unlike
# LiteRT's LstmStepInteger8x8_16: every gate is two FULLY_CONNECTED (int8 -> int16 with
# scale 2^-12, requantized with MultiplyByQuantizedMultiplier), a saturating int16 add,
# then the int16 LOGISTIC / TANH kernels; the cell update and the hidden state are int16
# MULs with their own multipliers. The float LSTM computes what LiteRT's does.
LSTM_GATES = ("i", "f", "c", "o")
_GATE_SCALE = 2.0 ** -12      # nonlinear_input_scale: Q3.12
_ACT_SCALE = 2.0 ** -15       # nonlinear_output_scale: Q0.15


@dataclass(frozen=True)
class MicroLstm:
    """TFLM's integer LSTM parameters (``PrepareGateParametersInteger``).

    ``fc[name]`` is the (multiplier, shift) pair per output unit of the gate FC
    ``name`` ("i2f": input to forget gate, "r2f": hidden state to forget gate, ...);
    ``forget_cell``, ``input_cell`` and ``hidden`` are the MUL multipliers of
    forget x cell -> cell, input x cell gate -> cell and tanh(cell) x output -> hidden.
    ``cell_activation`` is the cell gate's TfLiteFusedActivation (4 tanh, 6 sigmoid)."""
    input_offset: int
    state_offset: int
    fc: dict
    forget_cell: tuple[int, int]
    input_cell: tuple[int, int]
    hidden: tuple[int, int]
    hidden_zp: int
    hidden_min: int
    hidden_max: int
    cell_scale_power: int
    quantized_cell_clip: int
    cell_activation: int


def _fc_multipliers(in_scale: float, w_scale, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``CalculateOpDataFullyConnected`` towards the Q3.12 gate buffer: per channel
    ``double(s_in) * double(s_w[c]) / 2^-12``, per tensor ``double(f32(s_in * s_w)) /
    2^-12`` (``GetQuantizedConvolutionMultipler``)."""
    f32 = np.float32
    w_scale = np.asarray(w_scale, np.float32).reshape(-1)
    if w_scale.size > 1:
        m, s = quantize_multiplier_array(float(f32(in_scale)) * w_scale.astype(np.float64)
                                         / _GATE_SCALE)
        return np.asarray(m, np.int64), np.asarray(s, np.int64)
    m0, s0 = quantize_multiplier(float(f32(f32(in_scale) * w_scale[0])) / _GATE_SCALE)
    return np.full(n, m0, np.int64), np.full(n, s0, np.int64)


def micro_lstm_params(*, input_scale: float, input_zp: int, state_scale: float, state_zp: int,
                      cell_scale: float, weight_scales: dict, n_cell: int, cell_clip: float,
                      activation: int, state_dtype=np.int8) -> MicroLstm:
    """TFLM's parameters for an integer LSTM (``PrepareGateParametersInteger``,
    ``CreateInterGateMulParams``, ``CreateLstmCellStateInfo`` in lstm_eval_common.cc).

    ``weight_scales`` maps "i2i".."i2o" and "r2i".."r2o" to the weights' scales. The
    cell state scale must be a power of two (``CheckedLog2``); the cell clip is
    ``int16(clamp(double(clip) / double(scale), -32768, 32767))`` (truncated), 0 for
    none. Raises UnsupportedOpError for a cell scale that is not a power of two."""
    from .ops._lut import checked_log2

    pot, power = checked_log2(float(cell_scale))
    if not pot:
        raise UnsupportedOpError("UNIDIRECTIONAL_SEQUENCE_LSTM", detail=(
            f"cell state scale {cell_scale!r} is not a power of two (TFLite Micro's CheckedLog2)"))
    fc = {}
    for g in LSTM_GATES:
        fc["i2" + g] = _fc_multipliers(input_scale, weight_scales["i2" + g], n_cell)
        fc["r2" + g] = _fc_multipliers(state_scale, weight_scales["r2" + g], n_cell)

    def mul(s1: float, s2: float, s_out: float) -> tuple[int, int]:
        return quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2))
                                   / float(np.float32(s_out)))
    clip = 0
    if cell_clip > 0:
        clip = int(min(max(float(np.float32(cell_clip)) / float(np.float32(cell_scale)),
                           -32768.0), 32767.0))
    info = np.iinfo(state_dtype)
    return MicroLstm(input_offset=-int(input_zp), state_offset=-int(state_zp), fc=fc,
                     forget_cell=mul(_ACT_SCALE, cell_scale, cell_scale),
                     input_cell=mul(_ACT_SCALE, _ACT_SCALE, cell_scale),
                     hidden=mul(_ACT_SCALE, _ACT_SCALE, state_scale), hidden_zp=int(state_zp),
                     hidden_min=int(info.min), hidden_max=int(info.max),
                     cell_scale_power=int(power), quantized_cell_clip=clip,
                     cell_activation=int(activation))


def _lstm_fc(x: np.ndarray, offset: int, w: np.ndarray, bias: np.ndarray | None,
             mult: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``reference_integer_ops::FullyConnected`` int8 -> int16 (output offset 0, no
    activation): ``clamp(MBQM(sum((x + offset) * w) + bias), -32768, 32767)``."""
    acc = (np.asarray(x, np.int64) + offset) @ np.asarray(w, np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return np.clip(multiply_by_quantized_multiplier(wrap_int32(acc), mult[0], mult[1]),
                   -32768, 32767)


def _mul16(a: np.ndarray, b: np.ndarray, mult: tuple[int, int], offset: int, lo: int,
           hi: int) -> np.ndarray:
    """``reference_integer_ops::MulElementwise`` (zero input offsets)."""
    prod = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    return np.clip(multiply_by_quantized_multiplier(prod, mult[0], mult[1]) + offset, lo, hi)


def _sigmoid16(x: np.ndarray) -> np.ndarray:
    """``lstm_internal::Sigmoid``: the int16 LOGISTIC with input multiplier 0 and shift 0
    (Q3.12 in, Q0.15 out)."""
    from .ops.logistic import LogisticParams
    from .ops.logistic import eval as logistic_eval
    p = LogisticParams(kind="int16", out_dtype=np.int16, input_multiplier=0, input_left_shift=0)
    return logistic_eval(p, np.asarray(x, np.int16))[0].astype(np.int64)


def _tanh16(x: np.ndarray, cell_state_scale_power: int) -> np.ndarray:
    """``lstm_internal::Tanh``: left shift ``15 + power - 3``; a negative shift becomes
    multiplier 3 with a right shift (``reference_integer_ops::Tanh``)."""
    from .ops.tanh import TanhParams
    from .ops.tanh import eval as tanh_eval
    shift, mult = 15 + cell_state_scale_power - 3, 0
    if shift < 0:
        shift, mult = -shift, 3
    p = TanhParams(kind="int16", out_dtype=np.int16, input_multiplier=mult, input_left_shift=shift)
    return tanh_eval(p, np.asarray(x, np.int16))[0].astype(np.int64)


def micro_lstm_step(mp: MicroLstm, W: dict, x: np.ndarray, h: np.ndarray,
                    c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ``lstm_internal::LstmStep`` for all batch rows (rows are independent):
    ``x`` [B, n_input] int8, ``h`` [B, n_cell] int8, ``c`` [B, n_cell] int16 (as int64);
    ``W`` holds the weights "i2i".."r2o" and the gate biases "bi".."bo" (int32).
    Returns the new (h, c).

    gate_g = act(sat16(FC(x; i2g, b_g) + FC(h; r2g)))  (sigmoid; the cell gate's own
    activation); c = sat16(MUL(f, c) + MUL(i, g)), clipped when a cell clip is set;
    h = MUL(tanh(c), o) + zp_h, clamped to the hidden state's type."""
    def gate(g: str, sigmoid: bool) -> np.ndarray:
        acc = _lstm_fc(x, mp.input_offset, W["i2" + g], W.get("b" + g), mp.fc["i2" + g])
        acc = np.clip(acc + _lstm_fc(h, mp.state_offset, W["r2" + g], None, mp.fc["r2" + g]),
                      -32768, 32767)
        if sigmoid:
            return _sigmoid16(acc)
        return _tanh16(acc, -12)   # the Q3.12 gate buffer: no shift

    fg = gate("f", True)
    ig = gate("i", True)
    cg = gate("c", mp.cell_activation != 4)   # kTfLiteActTanh = 4, else sigmoid
    c = _mul16(fg, c, mp.forget_cell, 0, -32768, 32767)
    c = np.clip(c + _mul16(ig, cg, mp.input_cell, 0, -32768, 32767), -32768, 32767)
    if mp.quantized_cell_clip > 0:
        c = np.clip(c, -mp.quantized_cell_clip, mp.quantized_cell_clip)
    og = gate("o", True)
    h = _mul16(_tanh16(c, mp.cell_scale_power), og, mp.hidden, mp.hidden_zp, mp.hidden_min,
               mp.hidden_max)
    return h, c


def micro_lstm_sequence(mp: MicroLstm, W: dict, x: np.ndarray, h0: np.ndarray,
                        c0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``EvalLstm`` over ``x`` [T, B, n_input] (time major); returns (outputs [T, B,
    n_cell], h, c) as int64 arrays. TFLM runs a batch-major input one batch row at a
    time; the rows never mix, so running them together is the same."""
    T, B = x.shape[0], x.shape[1]
    h = np.asarray(h0, np.int64).reshape(B, -1)
    c = np.asarray(c0, np.int64).reshape(B, -1)
    outs = np.zeros((T, B, h.shape[1]), np.int64)
    for t in range(T):
        h, c = micro_lstm_step(mp, W, np.asarray(x[t], np.int64), h, c)
        outs[t] = h
    return outs, h, c
