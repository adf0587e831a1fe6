"""FULLY_CONNECTED: float32; int8 (per-tensor and per-channel weights); uint8 (legacy,
uint8 or int16 output, and the SHUFFLED4x16INT8 weights format); 16x8 (int16
activations, int8 weights, int32 or int64 bias); int16 weights with int16
activations; hybrid / dynamic range (float32 activations, int8 or uint8 weights).

Mirrors LiteRT's ``tflite/kernels/fully_connected.cc`` (``Prepare``/``PrepareImpl``
checks, ``Eval<kReference>`` dispatch) and the reference kernels
``tflite/kernels/internal/reference/fully_connected.h`` (float, uint8, shuffled) and
``reference/integer_ops/fully_connected.h`` (int8, int16 input); the hybrid path
follows ``EvalHybridDense`` with the ``tensor_utils`` functions described in
``_matmul_hybrid.py``.

The input of any rank is flattened to ``[batches, accum_depth]`` with ``accum_depth =
weights.shape[-1]`` and ``batches = input.size // accum_depth``; the output is
``[batches, num_units]``, or the input shape with its last dimension replaced when
``keep_num_dims`` is set.

Requantization on LiteRT's reference path (``BUILTIN_REF``) by type:

* int8 (per-tensor and per-channel), uint8 -> uint8, uint8 -> int16, 16x8 with int8
  weights: in double, ``out = clamp(int32(round_half_away(double(acc) *
  (double(s_in) * double(s_w[oc]) / double(s_out)))) + zp_out)``; the fixed-point
  multiplier is not used (reference/integer_ops/fully_connected.h, "performs requant
  in float to avoid loss of precision").
* int16 weights with int16 input, and the shuffled uint8 format: the fixed-point
  ``MultiplyByQuantizedMultiplier`` (64-bit version for int16 weights, double-rounding
  32-bit version for the shuffled format).

Accumulators have the C++ width: int32 for int8/uint8 and for 16x8 with an int32 bias
(wrapping as x86 does), int64 for 16x8 with an int64 bias and for int16 weights.
Integer sums use an exact float64 GEMM (``_matmul_hybrid.exact_int_matmul``). Float
FULLY_CONNECTED adds ``x * w`` in float32 in input order, as the reference loop does,
so its results are bit-exact too.

Weights with per-tensor quantization keep their zero point (``weights_offset``);
per-channel weights are taken as symmetric and their zero points are ignored, as
LiteRT does.

Hybrid (``EvalHybridDense``; the same code on every LiteRT path): each input row is
quantized to int8 by the NEON quantizers (through NEON_2_SSE on x86), the int32 dot
products come from the SSE kernel (a weight of -128 in the first ``K & ~15`` columns
times a negative input is counted with the wrong sign), the row sums for asymmetric
inputs from ``SseReductionSumVector`` (int16 lanes that wrap), then
``out = f32(bias + f32(f32(acc) * f32(scale)))`` and the activation, TANH being
Eigen's float32 approximation. All of it is bit-exact against LiteRT (see
``_matmul_hybrid.py``). The row sums of a non-constant filter are recomputed on every
call; LiteRT computes them on the first Eval only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import NumericsPathError
from quantcore.fixedpoint import (multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                  quantize_multiplier_array, wrap_int32)

from . import _fastconv, _gemm, _paths
from ._common import (FLOAT32, INT8, INT16, INT32, INT64, UINT8, OpContext, TensorInfo,
                      clamp_float)
from ._matmul_hybrid import (batch_quantize_floats, eigen_tanh_f32, exact_int_matmul,
                             requantize_double, sequential_dot_f32, sse_matrix_batch_vector_dot,
                             sse_reduction_sum_int8)

# "optimized": ruy / the NEON CustomGemv (ties-up requantization, per-tensor multiplier
# from f32(s_in * s_w)); "xnnpack": XNNPACK's fp32 requantization where the delegate takes
# the operator. See runtime/ops/_paths.py and _path_requant below. "micro": TFLite Micro's
# fixed-point requantization (runtime/micro.py).
NUMERICS = ("reference", "optimized", "xnnpack", "micro")

F32 = np.float32

# ActivationFunctionType values
_NONE, _RELU, _RELU_N1_TO_1, _RELU6, _TANH, _SIGN_BIT = 0, 1, 2, 3, 4, 5
_CLIPPING = (_NONE, _RELU, _RELU_N1_TO_1, _RELU6)
_SHUFFLED = 1  # FullyConnectedOptionsWeightsFormat.SHUFFLED4x16INT8


@dataclass(frozen=True)
class FullyConnectedParams:
    # "float", "hybrid", "int8", "uint8", "uint8_int16", "int16", "int16x16", "shuffled"
    kind: str
    num_units: int
    accum_depth: int
    keep_num_dims: bool
    filter: np.ndarray | None      # prepared constant filter (None: converted in eval)
    bias: np.ndarray | None        # prepared constant bias (None: absent or converted in eval)
    has_bias: bool
    weights_offset: int = 0
    input_offset: int = 0
    output_offset: int = 0
    effective_scale: np.ndarray | None = None   # float64 [num_units], double requantization
    output_multiplier: np.ndarray | None = None
    output_shift: np.ndarray | None = None
    output_activation_min: float = 0
    output_activation_max: float = 0
    int64_acc: bool = False
    out_dtype: type = np.float32
    activation: int = _NONE
    # hybrid
    asymmetric_quantize_inputs: bool = False
    filter_scale: float = 1.0                    # per-tensor weights: f32 scale
    per_channel_scale: np.ndarray | None = None  # per-channel weights: f32 [num_units]
    row_sums: np.ndarray | None = None           # int64 [num_units] for constant weights
    path: str = ""
    requant: _paths.Requant | None = None        # non-reference paths (None: reference)
    fast: _fastconv.FastFullyConnected | None = None   # exact float32-BLAS accumulators


def _tensor_sparse(ctx: OpContext, t: TensorInfo) -> bool:
    try:
        return ctx.model.subgraphs[ctx.subgraph].tensors[t.index].sparsity is not None
    except (AttributeError, IndexError):
        return False


def _densified_sparse_filter(ctx: OpContext, x: TensorInfo, w: TensorInfo) -> TensorInfo:
    """A sparse constant float filter, densified (runtime/ops/densify.py).

    LiteRT's reference kernel (``reference/sparse_ops/fully_connected.h``
    ``FullyConnectedSparseWeight``) densifies the weights and runs the dense float
    kernel, so the result is the dense one. The optimized kernels (random or 1x4
    block sparse) sum in another order; int8 (1x16 blocks, the NEON kernel on every
    path) and hybrid sparse weights are not implemented.
    """
    import dataclasses

    from .densify import densified_constant
    if w.type != FLOAT32 or x.type != FLOAT32:
        raise ctx.unsupported(f"sparse {w.type_name} filter tensor {w.index} with "
                              f"{x.type_name} input (only float32 sparse weights are "
                              "implemented; densify it first)")
    ctx.check(w.is_constant, f"sparse filter tensor {w.index} must be a constant", ".inputs[1]")
    if _paths.path_of(ctx) != "reference":
        raise NumericsPathError(f"{ctx.path}: a sparse FULLY_CONNECTED filter runs LiteRT's "
                                "optimized sparse kernels off the reference path, which quantcore "
                                "does not implement; use numerics='reference'")
    return dataclasses.replace(w, data=densified_constant(ctx, w))


def _bias_scale_check(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None,
                      out: TensorInfo) -> None:
    """``GetQuantizedConvolutionMultipler`` (kernel_util.cc), run for every per-tensor FC:
    |double(s_in) * double(s_w) - s_bias| / s_out <= 0.02, where s_bias is the bias'
    legacy (per-tensor) scale, 0 when the bias has none or is quantized per channel."""
    if b is None:
        return
    bias_scale = float(b.scale[0]) if b.quantized and len(b.scale) == 1 else 0.0
    ips = float(x.s) * float(w.s)
    ctx.check(abs(ips - bias_scale) / float(out.s) <= 0.02,
              f"bias scale {bias_scale} differs from input scale x filter scale {ips} by more "
              "than 2% of the output scale (kernel_util.cc GetQuantizedConvolutionMultipler)",
              ctx.where(b) if b is not None else "")


def prepare(ctx: OpContext) -> FullyConnectedParams:
    """Validation and multipliers (:func:`_prepare`), plus the fast exact GEMM's plan."""
    return _fastconv.attach_fully_connected(_prepare(ctx), ctx)


def _prepare(ctx: OpContext) -> FullyConnectedParams:
    o = ctx.options
    weights_format = o.get("weights_format", 0)
    ctx.check(2 <= len(ctx.inputs) <= 3, f"expects 2 or 3 inputs, has {len(ctx.inputs)}", ".inputs")
    n_out = 2 if weights_format == _SHUFFLED else 1
    ctx.check(len(ctx.outputs) == n_out,
              f"expects {n_out} output(s) for weights_format {weights_format}, has "
              f"{len(ctx.outputs)}", ".outputs")
    if weights_format not in (0, _SHUFFLED):
        raise ctx.unsupported(f"weights_format {weights_format}")
    x = ctx.input(0)
    w = ctx.input(1)
    b = ctx.input(2, optional=True)
    out = ctx.output(0)
    act = o.get("fused_activation_function", _NONE)
    keep = bool(o.get("keep_num_dims", False))
    asym = bool(o.get("asymmetric_quantize_inputs", False))

    if b is not None and _tensor_sparse(ctx, b):
        raise ctx.unsupported(f"sparse bias tensor {b.index}")
    if _tensor_sparse(ctx, w):
        w = _densified_sparse_filter(ctx, x, w)
    if w.type not in (FLOAT32, INT8, UINT8, INT16):
        raise ctx.unsupported(f"filter type {w.type_name} (INT4/INT2 packed weights are not "
                              "implemented)")
    is_hybrid = x.type == FLOAT32 and w.type in (INT8, UINT8)
    if not is_hybrid:
        ctx.check(act in _CLIPPING, f"fused activation {act} is only supported by the hybrid "
                  "kernel (fully_connected.cc Prepare)", ".builtin_options")
    ctx.check(len(w.shape) == 2, f"filter must be 2-D, is {list(w.shape)}", ".inputs[1]")
    num_units, accum_depth = (int(d) for d in w.shape)
    if keep:
        ctx.check(len(x.shape) >= 1 and x.shape[-1] == accum_depth,
                  f"keep_num_dims needs the input's last dimension ({list(x.shape)}) to equal "
                  f"the filter's ({accum_depth})", ".inputs[0]")
    if b is not None:
        ctx.check(b.num_elements == num_units,
                  f"bias has {b.num_elements} elements, filter has {num_units} rows", ".inputs[2]")

    common = dict(num_units=num_units, accum_depth=accum_depth, keep_num_dims=keep,
                  has_bias=b is not None, path=ctx.path)
    if accum_depth == 0:
        # fully_connected.cc: the output is zero-filled, whatever the type.
        ctx.check(out.type in (FLOAT32, INT8, UINT8, INT16), f"output type {out.type_name}")
        return FullyConnectedParams(kind="empty", filter=None, bias=None,
                                    out_dtype=out.dtype.type, **common)

    # ---------------- float ----------------
    if x.type == FLOAT32 and w.type == FLOAT32:
        ctx.check(out.type == FLOAT32, f"output type {out.type_name} differs from input type FLOAT32")
        if b is not None:
            ctx.check_type(b, (FLOAT32,), "bias")
        lo, hi = ctx.float_activation_range(act)
        return FullyConnectedParams(
            kind="float", filter=None if w.data is None else w.data.astype(F32),
            bias=None if b is None or b.data is None else b.data.astype(F32).reshape(-1),
            output_activation_min=lo, output_activation_max=hi, **common)

    # ---------------- hybrid ----------------
    if is_hybrid:
        ctx.check(out.type == FLOAT32, f"hybrid output must be FLOAT32, is {out.type_name}")
        if b is not None:
            ctx.check_type(b, (FLOAT32,), "bias")
        if act not in (_NONE, _RELU, _RELU_N1_TO_1, _RELU6, _TANH, _SIGN_BIT):
            raise ctx.unsupported(f"fused activation {act}")
        ctx.check(w.quantized, f"hybrid filter tensor {w.index} has no quantization parameters",
                  ".inputs[1]")
        ctx.check(bool(np.all(np.isfinite(w.scale))), "filter scales must be finite", ".inputs[1]")
        per_channel = None
        if w.per_channel:
            ctx.check(w.quantized_dimension == 0 and len(w.scale) == num_units,
                      f"per-channel filter needs quantized_dimension 0 and {num_units} scales, has "
                      f"dimension {w.quantized_dimension} and {len(w.scale)}", ".inputs[1]")
            per_channel = w.scale.astype(F32)
        if (_paths.path_of(ctx) == "xnnpack" and w.type == INT8 and w.is_constant
                and act in _CLIPPING and (b is None or b.is_constant)):
            # VisitFullyConnectedNode takes it as a dynamically quantized (qd8) FC.
            raise NumericsPathError(f"{ctx.path}: hybrid FULLY_CONNECTED (float input, int8 "
                                    "weights) runs in XNNPACK's dynamically quantized kernels on "
                                    "LiteRT's xnnpack path, which quantcore does not implement; "
                                    "use numerics='optimized'")
        wq = None if w.data is None else w.data.view(np.int8) if w.type == UINT8 else w.data
        return FullyConnectedParams(
            kind="hybrid", filter=None if wq is None else wq.astype(np.float64),
            bias=None if b is None or b.data is None else b.data.astype(F32).reshape(-1),
            activation=act, asymmetric_quantize_inputs=asym, filter_scale=float(F32(w.scale[0])),
            per_channel_scale=per_channel,
            row_sums=None if wq is None else sse_reduction_sum_int8(wq), **common)

    # ---------------- quantized ----------------
    ctx.check_type(x, (INT8, UINT8, INT16), "input")
    ctx.check_type(out, (INT8, UINT8, INT16), "output")
    ctx.require_quantized(x)
    ctx.require_quantized(out)
    ctx.require_quantized(w, per_channel_dim=0)
    if b is not None:
        ctx.check_type(b, (INT32, INT64), "bias")
    lo, hi = ctx.activation_range(out, act)
    s_in, s_out = float(x.s), float(out.s)
    per_channel = w.per_channel
    if per_channel:
        ctx.check(x.type in (INT8, INT16), "per-channel weights need int8 or int16 input "
                  "(fully_connected.cc)", ".inputs[1]")
    filter_scales = np.broadcast_to(w.scale.astype(np.float64), (num_units,))
    # double(s_in) * double(s_w[c]) / double(s_out), left to right
    effective = s_in * filter_scales / s_out
    if not per_channel:
        _bias_scale_check(ctx, x, w, b, out)
    w_off = 0 if per_channel else -w.zp
    qcommon = dict(input_offset=-x.zp, output_offset=out.zp, output_activation_min=lo,
                   output_activation_max=hi, weights_offset=w_off, **common)

    def prepared_filter(shift: int = 0) -> np.ndarray | None:
        return None if w.data is None else w.data.astype(np.float64) + shift

    def prepared_bias() -> np.ndarray | None:
        return None if b is None or b.data is None else b.data.astype(np.int64).reshape(-1)

    if weights_format == _SHUFFLED:
        return _prepare_shuffled(ctx, x, w, b, out, qcommon)

    if x.type == UINT8:
        ctx.check_type(w, (UINT8,), "filter")
        ctx.check(out.type in (UINT8, INT16),
                  f"uint8 FULLY_CONNECTED needs a uint8 or int16 output type, has {out.type_name} (LiteRT "
                  "would pick its kernel by the output type and read the uint8 input as int8)")
        if b is not None:
            ctx.check_type(b, (INT32,), "bias")
        if out.type == INT16 and _paths.path_of(ctx) not in ("optimized", "xnnpack"):
            # reference_ops::FullyConnected (uint8 -> int16) reads bias_data[out_c] unconditionally
            # (the optimized kernel, ruy, takes a null bias).
            ctx.check(b is not None, "uint8 -> int16 FULLY_CONNECTED needs a bias (LiteRT "
                      "would dereference a null bias)", ".inputs")
        return FullyConnectedParams(
            kind="uint8" if out.type == UINT8 else "uint8_int16", filter=prepared_filter(w_off),
            bias=prepared_bias(), effective_scale=effective,
            requant=_path_requant(ctx, x, w, b, out, lo, hi, num_units, gemm=True),
            out_dtype=np.uint8 if out.type == UINT8 else np.int16, **qcommon)

    if x.type == INT8:
        ctx.check_type(w, (INT8,), "filter")
        ctx.check(out.type == INT8, f"int8 FULLY_CONNECTED needs an int8 output, has {out.type_name}")
        if b is not None:
            ctx.check_type(b, (INT32,), "bias")
        return FullyConnectedParams(kind="int8", filter=prepared_filter(w_off), bias=prepared_bias(),
                                    effective_scale=effective, out_dtype=np.int8,
                                    requant=_path_requant(ctx, x, w, b, out, lo, hi, num_units,
                                                          gemm=True), **qcommon)

    # int16 input
    ctx.check(out.type == INT16, f"int16 FULLY_CONNECTED needs an int16 output, has {out.type_name}")
    ctx.check_type(w, (INT8, INT16), "filter")
    if _paths.path_of(ctx) == "micro" and w.type == INT8:
        # TFLM (micro fully_connected.cc) checks neither the zero points nor
        # quantized_bias_type; the bias type picks the accumulator (runtime/micro.py).
        qbt = o.get("quantized_bias_type", FLOAT32)
        wide = not (b.type == INT32 if b is not None else qbt == INT32)
        return FullyConnectedParams(kind="int16", filter=prepared_filter(w_off), bias=prepared_bias(),
                                    effective_scale=effective, int64_acc=wide, out_dtype=np.int16,
                                    requant=_path_requant(ctx, x, w, b, out, lo, hi, num_units,
                                                          gemm=True, int64_acc=wide), **qcommon)
    ctx.check(x.zp == 0 and out.zp == 0, "int16 FULLY_CONNECTED needs input and output zero "
              "points 0 (fully_connected.cc)")
    qbt = o.get("quantized_bias_type", FLOAT32) if ctx.op.builtin_options_type else None
    if qbt is None:
        # No options table: LiteRT's params are zero-initialized (kTfLiteNoType), which the
        # int16 check rejects.
        raise ctx.error("int16 FULLY_CONNECTED without FullyConnectedOptions has an invalid "
                        "quantized_bias_type (LiteRT rejects it)", ".builtin_options")
    if qbt != FLOAT32:
        ctx.check(qbt in (INT32, INT64), f"quantized_bias_type must be INT32 or INT64, is {qbt}",
                  ".builtin_options")
        ctx.check(b is None or b.type == qbt, "bias type differs from quantized_bias_type",
                  ".inputs[2]")
    if w.type == INT8:
        # Optimized resolver: ruy (optimized_integer_ops::FullyConnected(PerChannel)<int16>)
        # unless a zero point is set or the bias is int64 / quantized_bias_type INT64.
        ruy16 = (_paths.path_of(ctx) in ("optimized", "xnnpack") and (per_channel or w.zp == 0)
                 and (b is None or b.type == INT32) and qbt != INT64)
        if ruy16:
            return FullyConnectedParams(
                kind="int16", filter=prepared_filter(w_off), bias=prepared_bias(),
                effective_scale=effective, int64_acc=False, out_dtype=np.int16,
                requant=_path_requant(ctx, x, w, b, out, lo, hi, num_units, gemm=True), **qcommon)
        # FullyConnected(PerChannel)Int16: the int32-bias kernel only when quantized_bias_type
        # says INT32; otherwise LiteRT reads the bias as int64.
        ctx.check(b is None or b.type == INT64 or qbt == INT32,
                  "16x8 FULLY_CONNECTED with an int32 bias needs quantized_bias_type INT32 (LiteRT "
                  "would read the int32 bias as int64, out of bounds)", ".inputs[2]")
        return FullyConnectedParams(kind="int16", filter=prepared_filter(w_off), bias=prepared_bias(),
                                    effective_scale=effective, int64_acc=qbt != INT32,
                                    out_dtype=np.int16, **qcommon)
    # int16 weights: FullyConnected(PerChannel)Int16FilterInt16, 64-bit accumulator and MBQM.
    ctx.check(b is None or b.type == INT32 or qbt == INT64,
              "int16 x int16 FULLY_CONNECTED with an int64 bias needs quantized_bias_type INT64 "
              "(LiteRT would read the int64 bias as int32)", ".inputs[2]")
    if per_channel:
        m, s = quantize_multiplier_array(effective)
    else:
        # GetQuantizedConvolutionMultipler: double(float(s_in * s_w)) / double(s_out)
        m0, s0 = quantize_multiplier(float(F32(F32(x.s) * F32(w.s))) / s_out)
        m, s = np.full(num_units, m0, np.int64), np.full(num_units, s0, np.int64)
    ctx.check(bool(np.all(s <= 14)), "requantization multiplier >= 2^14: LiteRT's 64-bit "
              "MultiplyByQuantizedMultiplier shifts by a negative amount (undefined)")
    return FullyConnectedParams(kind="int16x16", filter=prepared_filter(w_off), bias=prepared_bias(),
                                output_multiplier=m, output_shift=s, int64_acc=True,
                                out_dtype=np.int16, **qcommon)


def _path_requant(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None,
                  out: TensorInfo, lo: int, hi: int, num_units: int, *,
                  gemm: bool, int64_acc: bool = False) -> _paths.Requant | None:
    """The requantization of ``ctx.numerics`` (None: the reference kernel's).

    optimized (``EvalQuantized<kGenericOptimized>``): int8, uint8 -> uint8/int16 and
    16x8 with zero points 0 and an int32 bias go through ``cpu_backend_gemm`` (ruy or
    the NEON ``CustomGemv`` for one batch): ties-up MBQM with the per-channel multipliers
    of ``double(s_in) * double(s_w[c]) / double(s_out)`` or the per-tensor multiplier of
    ``GetQuantizedConvolutionMultipler``, ``double(f32(s_in * s_w)) / double(s_out)``
    (the reference kernel instead requantizes in double). uint8 -> int16 ignores the
    output zero point (``dst_params.zero_point = 0``).
    xnnpack (``VisitFullyConnectedNode``): int8/uint8 with static weights (int8 weights
    with zero point 0), an optional static int32 bias, a clipping activation.
    """
    path = _paths.path_of(ctx)
    if path == "micro":  # TFLite Micro: fixed-point MBQM (runtime/micro.py fc_requant)
        from quantcore.runtime.micro import fc_requant
        return fc_requant(x, w, out, lo, hi, num_units, int64_acc=int64_acc)
    if path == "xnnpack" and out.type != INT16 and (b is None or b.num_elements == num_units) \
            and (w.type != INT8 or int(w.zero_point[0]) == 0) \
            and _paths.xnnpack_takes(ctx, x, w, b, out, channel_dim=0, bias_required=False):
        return _paths.xnnpack_requant(ctx, x, w, out, num_units)
    if path not in ("optimized", "xnnpack") or not gemm:
        return None
    if w.per_channel:
        m, s = quantize_multiplier_array(float(x.s) * w.scale.astype(np.float64) / float(out.s))
    else:
        m0, s0 = quantize_multiplier(float(F32(F32(x.s) * F32(w.s))) / float(out.s))
        m, s = np.full(num_units, m0, np.int64), np.full(num_units, s0, np.int64)
    offset = 0 if (x.type == UINT8 and out.type == INT16) else out.zp
    return _paths.Requant(mode="ties_up", output_offset=offset, act_min=lo, act_max=hi,
                          multiplier=m, shift=s)


def _prepare_shuffled(ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None,
                      out: TensorInfo, qcommon: dict) -> FullyConnectedParams:
    """SHUFFLED4x16INT8 weights: ``reference_ops::ShuffledFullyConnected``.

    uint8 input and weights whose zero points are taken to be 128, whatever the tensors
    say: the kernel flips the input's sign bit and reads int8; the stored weights were
    flipped offline (``w ^ 0x80``). int16 output without offset, double-rounding MBQM
    with the float-product multiplier. The second output is the shuffled input
    workspace. Weights are stored in blocks: for each 4 output rows and each 16 inputs,
    4 x 16 bytes, row-major.
    """
    ctx.check_type(x, (UINT8,), "input")
    ctx.check_type(w, (UINT8,), "filter")
    ctx.check(out.type == INT16, f"shuffled FULLY_CONNECTED needs an int16 output, has {out.type_name}")
    ws = ctx.output(1)
    ctx.check(ws.type == UINT8, "shuffled input workspace (output 1) must be UINT8", ".outputs[1]")
    ctx.check(b is not None, "shuffled FULLY_CONNECTED needs a bias (LiteRT reads it "
              "unconditionally)", ".inputs")
    ctx.check_type(b, (INT32,), "bias")
    ctx.check(not w.per_channel, "shuffled weights must be quantized per tensor", ".inputs[1]")
    n, k = qcommon["num_units"], qcommon["accum_depth"]
    ctx.check(k % 16 == 0 and n % 4 == 0, f"shuffled weights need accum_depth % 16 == 0 and "
              f"num_units % 4 == 0, have {k} and {n}")
    batches = x.num_elements // k
    ctx.check(batches in (1, 4), f"LiteRT's shuffled kernel handles 1 or 4 batches, not {batches}")
    ctx.check(ws.num_elements == batches * k,
              f"shuffled input workspace has {ws.num_elements} elements, needs {batches * k}",
              ".outputs[1]")
    m, s = quantize_multiplier(float(F32(F32(x.s) * F32(w.s))) / float(out.s))
    filt = None if w.data is None else _unshuffle(w.data, n, k)
    qcommon = dict(qcommon, input_offset=-128, weights_offset=-128, output_offset=0)
    return FullyConnectedParams(kind="shuffled", filter=filt,
                                bias=None if b.data is None else b.data.astype(np.int64).reshape(-1),
                                output_multiplier=np.array([m], np.int64),
                                output_shift=np.array([s], np.int64), out_dtype=np.int16,
                                **qcommon)


def _unshuffle(data: np.ndarray, n: int, k: int) -> np.ndarray:
    """Shuffled weights -> float64 [n, k] matrix. The stored bytes are ``w ^ 0x80`` and the
    kernel reads them as int8, which equals ``w - 128``."""
    blocks = np.ascontiguousarray(data).view(np.int8).reshape(n // 4, k // 16, 4, 16)
    return blocks.transpose(0, 2, 1, 3).reshape(n, k).astype(np.float64)


def _shuffle_input(x2: np.ndarray) -> np.ndarray:
    """The workspace LiteRT fills: ``x ^ 0x80``, 4 batches interleaved in blocks of 16."""
    flipped = (x2 ^ 0x80).astype(np.uint8)
    b, k = flipped.shape
    if b == 1:
        return flipped.reshape(-1)
    return flipped.reshape(b, k // 16, 16).transpose(1, 0, 2).reshape(-1)


def _output_shape(p: FullyConnectedParams, x: np.ndarray, batches: int) -> tuple[int, ...]:
    if p.keep_num_dims:
        return tuple(x.shape[:-1]) + (p.num_units,)
    return (batches, p.num_units)


def _apply_float_activation(v: np.ndarray, act: int) -> np.ndarray:
    """``tensor_utils::ApplyActivationToVector``."""
    if act == _RELU:
        return np.maximum(F32(0), v).astype(F32)
    if act == _RELU_N1_TO_1:
        return np.maximum(F32(-1), np.minimum(v, F32(1))).astype(F32)
    if act == _RELU6:
        return np.maximum(F32(0), np.minimum(v, F32(6))).astype(F32)
    if act == _TANH:
        return eigen_tanh_f32(v)
    if act == _SIGN_BIT:
        return np.signbit(v).astype(F32)
    return v


def _eval_hybrid(p: FullyConnectedParams, x2: np.ndarray, wq: np.ndarray, bias: np.ndarray | None,
                 total_input: np.ndarray) -> np.ndarray:
    """``EvalHybridDense``: quantize each input row, int32 dot products (SSE kernel),
    ``sum -= input_offset * row_sum`` (asymmetric inputs), then
    ``out = f32(bias + f32(f32(sum) * f32(row_scale)))`` and the activation."""
    batches = x2.shape[0]
    out = np.zeros((batches, p.num_units), F32) if bias is None else np.broadcast_to(
        bias, (batches, p.num_units)).astype(F32)
    if not np.any(total_input != 0):  # tensor_utils::IsZeroVector over the whole input
        return _apply_float_activation(out, p.activation)
    q, scaling, offsets = batch_quantize_floats(x2, p.asymmetric_quantize_inputs)
    if p.per_channel_scale is None:
        scaling = (scaling * F32(p.filter_scale)).astype(F32)
        row_scale = scaling[:, None]
    else:
        row_scale = (p.per_channel_scale[None, :] * scaling[:, None]).astype(F32)
    acc = sse_matrix_batch_vector_dot(q, wq)
    if p.asymmetric_quantize_inputs:
        row_sums = p.row_sums if p.row_sums is not None else sse_reduction_sum_int8(wq)
        acc = wrap_int32(acc - wrap_int32(offsets[:, None] * row_sums[None, :]))
    with np.errstate(over="ignore", invalid="ignore"):  # inf sums, as in C
        out = (out + (acc.astype(F32) * row_scale).astype(F32)).astype(F32)
    return _apply_float_activation(out, p.activation)


def eval(p: FullyConnectedParams, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
         *_: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    k = p.accum_depth
    batches = x.size // k if k else int(np.prod(x.shape[:-1], dtype=np.int64))
    shape = _output_shape(p, x, batches)
    if p.kind == "empty" or batches * p.num_units == 0:
        return [np.zeros(shape, p.out_dtype)]
    x2 = x.reshape(-1)[: batches * k].reshape(batches, k)

    if p.kind == "float":
        wf = p.filter if p.filter is not None else w.astype(F32)
        acc = sequential_dot_f32(x2[:, None, :], wf[None, :, :])
        if p.has_bias:
            with np.errstate(invalid="ignore"):   # inf + -inf bias: NaN, as in C
                acc = (acc + (p.bias if p.bias is not None else b.reshape(-1).astype(F32))).astype(F32)
        return [clamp_float(acc, p.output_activation_min, p.output_activation_max).reshape(shape)]

    if p.kind == "hybrid":
        wq = p.filter if p.filter is not None else (w.view(np.int8) if w.dtype == np.uint8 else w)
        bias = p.bias if p.bias is not None else (None if b is None else b.reshape(-1).astype(F32))
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite inputs: NaN/inf, as in C
            return [_eval_hybrid(p, x2.astype(F32), np.asarray(wq, np.float64), bias, x).reshape(shape)]

    if p.kind == "shuffled":
        wf = p.filter if p.filter is not None else _unshuffle(w, p.num_units, k)
        xc = x2.astype(np.float64) - 128.0
        acc = wrap_int32(exact_int_matmul(xc, wf.T) + (p.bias if p.bias is not None else b.reshape(-1).astype(np.int64)))
        scaled = multiply_by_quantized_multiplier(acc, p.output_multiplier[0], p.output_shift[0])
        out = np.clip(scaled, p.output_activation_min, p.output_activation_max).astype(np.int16)
        return [out.reshape(shape), _shuffle_input(x2)]

    if p.fast is not None and _gemm.ENABLED:
        if p.requant is None and p.fast.double:   # reference int8/uint8 output stage
            return [p.fast.requantize(x2).reshape(shape)]
        acc = p.fast(x2)   # exact float32 GEMM, input offset and bias folded in
    else:
        wf = p.filter if p.filter is not None else w.astype(np.float64) + p.weights_offset
        acc = exact_int_matmul(x2.astype(np.float64) + p.input_offset, wf.T)
        if p.has_bias:
            acc = acc + (p.bias if p.bias is not None else b.reshape(-1).astype(np.int64))
    if not p.int64_acc:
        acc = wrap_int32(acc)
    if p.requant is not None:   # optimized / xnnpack (runtime/ops/_paths.py)
        return [p.requant.apply(acc).astype(p.out_dtype).reshape(shape)]

    if p.kind == "int16x16":
        scaled = multiply_by_quantized_multiplier_int64(acc, p.output_multiplier, p.output_shift)
        out = np.clip(scaled + p.output_offset, p.output_activation_min, p.output_activation_max)
    else:
        out = requantize_double(acc, p.effective_scale, p.output_offset, p.output_activation_min,
                                p.output_activation_max, clamp_before_offset=p.kind == "uint8_int16")
    return [out.astype(p.out_dtype).reshape(shape)]
