"""What the elementwise binary kernels share (ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM): LiteRT's broadcasting rules and errors, activation clamps for the
unquantized types, and the fixed-point pieces these kernels need beyond
``quantcore.fixedpoint``.

Sources (google-ai-edge/LiteRT, ``tflite/kernels``):

* ``kernel_util.cc`` ``CalculateShapeForBroadcast``: dimensions are aligned from the
  right; each pair must be equal or contain a 1; a 0 with a 1 gives 0. ``HaveSameShapes``
  compares the dimension lists exactly.
* ``internal/reference/process_broadcast_shapes.h`` ``ProcessBroadcastShapes``: two
  shapes that are equal once both are padded on the left with 1s to the same rank
  are computed elementwise over the flat buffers ("flat path"), not broadcast.
* ``internal/reference/broadcast_loop.h`` ``BroadcastBinaryOpSimple``: every broadcast
  kernel runs through it; it aborts (``TFLITE_CHECK_LE(dims_count, 8)``) beyond
  8 dimensions, measured for all seven operators. The flat path has no rank limit.
* ``kernel_util.h`` ``CalculateActivationRange<T>``: the fused-activation clamp of
  unquantized outputs is ``[lowest, max]`` of the type for NONE (so a float result of
  +-inf becomes +-FLT_MAX), ``[0, max]`` for RELU, ``[0, 6]`` RELU6, ``[-1, 1]``
  RELU_N1_TO_1; any other activation is ignored by LiteRT (quantcore refuses it).
* ``kernel_util.cc`` ``Quantize`` (inside ``CalculateActivationRangeQuantized``) fails
  the model when ``round(bound / scale)`` is outside the int32 range.

Elementwise results do not depend on the order in which LiteRT's loops visit the
elements, so the kernels evaluate with NumPy broadcasting; only the few places where
LiteRT's result depends on the element's position in the flat buffer (vectorized
blocks of undefined shifts, see :func:`rounding_divide_by_pot_x86`) look at positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import round_half_away, wrap_int32

from ._common import INT8, INT16, INT32, INT64, UINT8, OpContext, TensorInfo

MAX_BROADCAST_RANK = 8

FLT_MAX = float(np.finfo(np.float32).max)

#: Numeric range of each unquantized integer type (``std::numeric_limits<T>``).
INT_LIMITS = {INT8: (-(2**7), 2**7 - 1), UINT8: (0, 2**8 - 1), INT16: (-(2**15), 2**15 - 1),
              INT32: (-(2**31), 2**31 - 1), INT64: (-(2**63), 2**63 - 1)}

ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                    5: "SIGN_BIT", 6: "SIGMOID"}


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------
def extended(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """``RuntimeShape::ExtendedShape``: pad with leading 1s to ``rank`` dimensions."""
    return (1,) * (rank - len(shape)) + tuple(shape)


def extended_equal(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """True when ``ProcessBroadcastShapes`` takes the flat (non-broadcast) path."""
    r = max(len(a), len(b))
    return extended(a, r) == extended(b, r)


def broadcast_shape(ctx: OpContext, a: TensorInfo, b: TensorInfo) -> tuple[int, ...]:
    """``CalculateShapeForBroadcast`` (or input 1's shape when both shapes are identical)."""
    if tuple(a.shape) == tuple(b.shape):
        return tuple(a.shape)
    r = max(len(a.shape), len(b.shape))
    ea, eb = extended(a.shape, r), extended(b.shape, r)
    out = []
    for i, (d1, d2) in enumerate(zip(ea, eb)):
        if not (d1 == d2 or d1 == 1 or d2 == 1):
            raise ctx.error(f"input shapes {list(a.shape)} and {list(b.shape)} are not broadcastable "
                            f"(dimension {i} of the aligned shapes: {d1} vs {d2})")
        out.append(0 if d1 == 0 or d2 == 0 else max(d1, d2))
    return tuple(out)


@dataclass(frozen=True)
class BinaryShapes:
    """Shapes of a binary operator as LiteRT's Prepare and Eval see them."""
    output_shape: tuple[int, ...]
    same_shapes: bool        # HaveSameShapes(input1, input2)
    flat: bool               # ProcessBroadcastShapes() == false: elementwise over flat buffers


def binary_shapes(ctx: OpContext, a: TensorInfo, b: TensorInfo, *, flat_test: str) -> BinaryShapes:
    """Output shape and broadcast decision, with LiteRT's shape errors.

    ``flat_test`` names how the kernel decides between the flat loop and the
    broadcast loop for this type: ``"same"`` (``HaveSameShapes``: the dimension lists
    are identical), ``"extended"`` (``ProcessBroadcastShapes``: equal after padding
    with leading 1s) or ``"never"`` (the kernel always runs the broadcast loop). A
    broadcast of more than 8 dimensions makes LiteRT abort (``BroadcastBinaryOpSimple``),
    so it is refused here.
    """
    out = broadcast_shape(ctx, a, b)
    same = tuple(a.shape) == tuple(b.shape)
    if flat_test == "never":
        flat = False
    else:
        flat = same if flat_test == "same" else extended_equal(a.shape, b.shape)
    rank = max(len(a.shape), len(b.shape))
    if not flat and rank > MAX_BROADCAST_RANK:
        raise ctx.error(f"broadcasting {list(a.shape)} with {list(b.shape)} needs {rank} dimensions; "
                        f"LiteRT's broadcast loop supports at most {MAX_BROADCAST_RANK} (it aborts)")
    return BinaryShapes(output_shape=out, same_shapes=same, flat=flat)


def check_binary_io(ctx: OpContext) -> tuple[TensorInfo, TensorInfo, TensorInfo]:
    """Two inputs and one output of one type (``TF_LITE_ENSURE_TYPES_EQ``)."""
    ctx.check_io_count(2, 1)
    a = ctx.input(0)
    b = ctx.input(1)
    out = ctx.output(0)
    ctx.check(a.type == b.type, f"input types differ: {a.type_name} and {b.type_name}", ".inputs")
    return a, b, out


def check_output_type(ctx: OpContext, a: TensorInfo, out: TensorInfo) -> None:
    """LiteRT overwrites the output type with the input type; a model that declares
    another output type is inconsistent, so refuse it rather than guess."""
    ctx.check(out.type == a.type, f"output type {out.type_name} differs from the input type "
              f"{a.type_name}", ".outputs[0]")


# ---------------------------------------------------------------------------
# Fused activations
# ---------------------------------------------------------------------------
def fused_activation(ctx: OpContext) -> int:
    return int(ctx.options.get("fused_activation_function", 0))


def check_activation(ctx: OpContext, act: int) -> None:
    if act not in (0, 1, 2, 3):
        raise ctx.unsupported(f"fused activation {ACTIVATION_NAMES.get(act, act)} (LiteRT ignores it "
                              "in this kernel; quantcore refuses rather than silently drop it)")


def float_activation_range(ctx: OpContext) -> tuple[np.float32, np.float32]:
    """``CalculateActivationRange<float>``: NONE clamps to [-FLT_MAX, FLT_MAX]."""
    act = fused_activation(ctx)
    check_activation(ctx, act)
    lo, hi = {0: (-FLT_MAX, FLT_MAX), 1: (0.0, FLT_MAX), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[act]
    return np.float32(lo), np.float32(hi)


def int_activation_range(ctx: OpContext, type_: int) -> tuple[int, int]:
    """``CalculateActivationRange<T>`` for unquantized integer outputs."""
    act = fused_activation(ctx)
    check_activation(ctx, act)
    lo, hi = INT_LIMITS[type_]
    return {0: (lo, hi), 1: (0, hi), 2: (-1, 1), 3: (0, 6)}[act]


def quantized_activation_range(ctx: OpContext, out: TensorInfo, act: int | None = None) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` including its overflow check: a bound
    whose ``round(bound / scale)`` leaves the int32 range fails the model."""
    act = fused_activation(ctx) if act is None else act
    check_activation(ctx, act)
    bounds = {0: (), 1: (0.0,), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[act]
    for f in bounds:
        with np.errstate(over="ignore", invalid="ignore"):
            tmp = float(round_half_away(np.float32(np.float32(f) / np.float32(out.s))))
        ok = -(2.0**31) <= tmp <= 2.0**31   # float(INT32_MAX) rounds up to 2^31
        ctx.check(ok, f"fused activation bound {f} / output scale {out.s} does not fit int32 "
                  "(LiteRT: no_integer_overflow_from_quantization)", ".outputs[0]")
    return ctx.activation_range(out, act)


def clamp_float(x: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
    """``ActivationFunctionWithMinMax``: min(max(x, lo), hi); NaN stays NaN."""
    return np.minimum(np.maximum(x, lo), hi).astype(np.float32)


# ---------------------------------------------------------------------------
# Integer helpers
# ---------------------------------------------------------------------------
def wrap(x: np.ndarray, type_: int) -> np.ndarray:
    """Two's-complement wrap of exact int64 results to a C integer type (as int64)."""
    lo, hi = INT_LIMITS[type_]
    if type_ == INT64:
        return x
    span = hi - lo + 1
    return ((x - lo) & (span - 1)) + lo


def to_dtype(x: np.ndarray, type_: int) -> np.ndarray:
    return x.astype({INT8: np.int8, UINT8: np.uint8, INT16: np.int16, INT32: np.int32,
                     INT64: np.int64}[type_])


def wrapping_int64(op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a op b`` on int64 with two's-complement wrap (C++ ``WrappingAdd``/``WrappingMul``);
    NumPy's int64 arithmetic wraps the same way without raising."""
    with np.errstate(over="ignore"):
        return op(a.astype(np.int64), b.astype(np.int64))


def flat_positions(shape: tuple[int, ...]) -> np.ndarray:
    """Index of every output element in the flat (row-major) buffer."""
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


def rounding_divide_by_pot_x86(x: np.ndarray, exponent: np.ndarray | int, *,
                               vector_lane: np.ndarray | bool = False) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT<int32_t>`` as the x86 wheel executes it for ANY
    exponent, including the out-of-contract ones (< 0 or > 31) that LiteRT reaches.

    ::

        mask      = int32((1ll << exponent) - 1)      # shl r64: count & 63
        threshold = (mask >> 1) + (x < 0)
        result    = (x >> exponent) + ((x & mask) > threshold)

    For 0 <= exponent <= 31 this is the ordinary rounding shift (ties away from zero).
    Otherwise the C++ shift ``x >> exponent`` is undefined; measured on the wheel: in
    scalar code the count is taken mod 32 (``sar``); in the auto-vectorized loops
    (4 int32 lanes, ``psrad`` with a 64-bit count) any count of 32 or more fills with
    the sign bit. ``vector_lane`` marks the elements computed in vector lanes.
    """
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    count = e & 63
    mask = np.where(count >= 32, -1, wrap_int32((np.int64(1) << np.minimum(count, 31)) - 1))
    threshold = (mask >> 1) + (x < 0)
    scalar_shift = x >> (e & 31)
    vector_shift = np.where((e < 0) | (e > 31), x >> 31, x >> np.clip(e, 0, 31))
    shifted = np.where(vector_lane, vector_shift, scalar_shift)
    return wrap_int32(shifted + ((x & mask) > threshold))


def rounding_divide_by_pot_int16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT<int16_t>`` (int16 x, 0 <= exponent <= 31).

    The mask ``(1ll << exponent) - 1`` is truncated to int16, so for exponents of 16
    or more it is -1 and the result is 1 for x >= 0 and -1 for x < 0 (the rounding
    increment is added to a shift that already gave 0 or -1). Returns int64 values.
    """
    x = np.asarray(x, np.int64)
    mask = ((1 << exponent) - 1) & 0xFFFF
    mask = mask - 0x10000 if mask >= 0x8000 else mask
    threshold = (mask >> 1) + (x < 0)
    r = (x >> exponent) + ((x & mask) > threshold)
    return ((r + 2**15) & 0xFFFF) - 2**15


def checked_log2(x: float) -> tuple[bool, int]:
    """``CheckedLog2`` (quantization_util.cc) in float32: ``l = logf(x) * (1.0f / logf(2.0f))``;
    returns ``(|l - round(l)| < 1e-3, int(round(l)))`` with round half away from zero.
    A scale within about 0.07% of a power of two counts as one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        l2 = np.float32(np.log(np.float32(x)) * (np.float32(1.0) / np.log(np.float32(2.0))))
    if not np.isfinite(l2):
        return False, 0
    t = np.trunc(l2)
    r = np.float32(t + np.sign(l2)) if abs(l2 - t) >= 0.5 else np.float32(t)
    frac = np.float32(l2 - r)
    return bool(abs(frac) < np.float32(1e-3)), int(r)
