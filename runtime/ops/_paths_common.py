"""Pieces shared by the non-reference numerics paths ("optimized" = LiteRT
``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, "xnnpack" = LiteRT ``BUILTIN`` with the
default XNNPACK delegate): NEON lane arithmetic as the x86 wheel executes it, which
elements of a tensor a vector loop computes, LiteRT's five-fold broadcast loop, and
XNNPACK's float rounding helpers.

Sources:

* ``tflite/kernels/internal/optimized/neon_check.h`` (google-ai-edge/LiteRT): the x86
  wheel is built with SSE4.1, so ``USE_NEON`` is defined and ``NEON_2_SSE.h``
  (intel/ARM_NEON_2_x86_SSE) emulates every NEON intrinsic. ``__AVX2__`` is not
  defined (measured: the int16 SUB, whose only vector loop is AVX2, rounds like the
  reference kernel on every element).
* ``NEON_2_SSE.h``: ``vqrdmulhq_s32`` = the high half of ``2ab + 2^31`` (ties toward
  +inf, ``INT32_MIN * INT32_MIN`` saturates), i.e. gemmlowp's scalar
  ``SaturatingRoundingDoublingHighMul``; ``vshlq_s32`` by a negative count is an
  arithmetic (flooring) right shift and any count of 32 or more gives 0
  (``SERIAL_SHIFT``); ``vrshlq_s32`` rounds a right shift with ties toward +inf
  (``SERIAL_ROUNDING_SHIFT``).
* gemmlowp ``fixedpoint/fixedpoint_neon.h`` ``RoundingDivideByPOT(int32x4_t)``: adds
  -1 to negative lanes, then ``vrshlq``: ties away from zero, like the scalar one.
* ``tflite/kernels/internal/optimized/optimized_ops.h`` ``BinaryBroadcastFiveFold`` and
  ``tflite/kernels/internal/reference/process_broadcast_shapes.h``
  ``ProcessBroadcastShapes``.
* google/XNNPACK ``src/xnnpack/requantization.h`` ``xnn_qs8_quantize`` /
  ``xnn_qu8_quantize`` (clamp bounds of quantized tensors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantcore.fixedpoint import (rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
                                  wrap_int32)

from ._common import INT8, INT16, UINT8

PATHS = ("reference", "optimized", "xnnpack")
ALL_PATHS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class PathParams:
    """Prepared operator on a non-reference numerics path.

    ``base`` is what the reference kernel's prepare returned (so every LiteRT check
    ran and the reference arithmetic stays available for the scalar tails of vector
    loops); ``path`` is "optimized" or "xnnpack"; ``how`` names the arithmetic that runs
    ("litert-optimized", "xnnpack", ...); ``extra`` holds that arithmetic's parameters.
    """
    path: str
    how: str
    base: Any
    extra: Any = None


# ---------------------------------------------------------------------------
# NEON lane arithmetic (NEON_2_SSE on x86)
# ---------------------------------------------------------------------------
def vqrdmulh(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """``vqrdmulhq_s32``: identical to gemmlowp's scalar SaturatingRoundingDoublingHighMul."""
    return saturating_rounding_doubling_high_mul(a, b)


def vshl(x: np.ndarray, count: int) -> np.ndarray:
    """``vshlq_s32(x, count)`` on int32 lanes: left shift (wrapping) for count >= 0,
    arithmetic right shift (floor) for count < 0; |count| >= 32 gives 0."""
    x = np.asarray(x, np.int64)
    if count >= 32 or count <= -32:
        return np.zeros_like(x)
    if count >= 0:
        return wrap_int32(x << count)
    return x >> (-count)


def rdbpot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT`` (scalar and NEON agree): ties away from zero."""
    return rounding_divide_by_pot(x, exponent)


def wrap16(x: np.ndarray) -> np.ndarray:
    """``vmovn_s32`` / int16 lane arithmetic: keep the low 16 bits (two's complement)."""
    x = np.asarray(x, np.int64)
    return ((x + 2**15) & 0xFFFF) - 2**15


def sat(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Saturating narrowing (``vqmovn``/``vqmovun``)."""
    return np.clip(np.asarray(x, np.int64), lo, hi)


def narrow_to_8bit(x16: np.ndarray, out_type: int) -> np.ndarray:
    """``vqmovn_s16`` (int8) or ``vqmovun_s16`` (uint8) of int16 lanes."""
    return sat(x16, 0, 255) if out_type == UINT8 else sat(x16, -128, 127)


def vector_mask(n: int, block: int) -> np.ndarray:
    """Positions 0..n-1 of a loop ``for (; i <= n - block; i += block)`` followed by a
    scalar tail: True where the vector body computes the element."""
    return np.arange(n) < block * (n // block)


# ---------------------------------------------------------------------------
# Broadcasting as LiteRT's optimized binary kernels loop over it
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BroadcastLayout:
    """How an optimized binary kernel visits the output.

    ``kind``: "flat" (no broadcast: one elementwise call over the whole buffer),
    "fivefold" (``BinaryBroadcastFiveFold``), "generic" (the slow reference loop).
    For "fivefold", ``y`` is ``params.broadcast_shape[0..4]``; the inner function is
    the elementwise kernel on runs of ``y[4]`` elements when ``y[4] > 1``, otherwise
    the scalar-broadcast kernel on runs of ``y[3]`` elements. ``swapped``: input 2 is
    the kernel's first input (``kSecondInputBroadcastsFast``).
    """
    kind: str
    y: tuple[int, int, int, int, int] = (1, 1, 1, 1, 1)
    swapped: bool = False

    @property
    def scalar_kernel(self) -> bool:
        return self.kind == "fivefold" and self.y[4] == 1

    def positions(self, out_size: int) -> tuple[np.ndarray, int]:
        """(position of each output element inside its inner-loop run, run length)."""
        idx = np.arange(out_size, dtype=np.int64)
        if self.kind == "flat":
            return idx, out_size
        run = self.y[3] if self.scalar_kernel else self.y[4]
        run = max(int(run), 1)
        return idx % run, run

    def vector_lanes(self, out_shape: tuple[int, ...], block: int, scalar_block: int | None = None
                     ) -> np.ndarray:
        """Boolean array of ``out_shape``: True where a vector loop of ``block`` (or
        ``scalar_block`` in the scalar-broadcast kernel) computes the element."""
        n = int(np.prod(out_shape, dtype=np.int64))
        if self.kind == "generic":
            return np.zeros(out_shape, bool)
        pos, run = self.positions(n)
        b = scalar_block if (self.scalar_kernel and scalar_block is not None) else block
        return (pos < b * (run // b)).reshape(out_shape)


def broadcast_layout(shape0: tuple[int, ...], shape1: tuple[int, ...]) -> BroadcastLayout:
    """``ProcessBroadcastShapes``: the category and the five-fold ``broadcast_shape``."""
    r = max(len(shape0), len(shape1))
    a0 = (1,) * (r - len(shape0)) + tuple(int(d) for d in shape0)
    a1 = (1,) * (r - len(shape1)) + tuple(int(d) for d in shape1)
    if a0 == a1:
        return BroadcastLayout("flat")
    category = None
    for i in range(r - 1, -1, -1):
        if a0[i] == a1[i]:
            continue
        if a0[i] == 1:
            category = "first"
        elif a1[i] == 1:
            category = "second"
        else:
            return BroadcastLayout("generic")
        break
    swap = category == "second"
    sa, sb = (a1, a0) if swap else (a0, a1)
    y = [1, 1, 1, 1, 1]
    i = r - 1
    while i >= 0 and sa[i] == sb[i]:
        y[4] *= sb[i]
        i -= 1
    while i >= 0 and sa[i] == 1:
        y[3] *= sb[i]
        i -= 1
    while i >= 0 and sa[i] == sb[i]:
        y[2] *= sa[i]
        i -= 1
    while i >= 0 and sb[i] == 1:
        y[1] *= sa[i]
        i -= 1
    while i >= 0 and sa[i] == sb[i]:
        y[0] *= sb[i]
        i -= 1
    if i >= 0:
        return BroadcastLayout("generic", tuple(y), swap)
    return BroadcastLayout("fivefold", tuple(y), swap)


# ---------------------------------------------------------------------------
# XNNPACK helpers
# ---------------------------------------------------------------------------
def f32(x) -> np.ndarray:
    """Round to float32 (the value C++ holds in a ``float``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x, np.float32)


def xnn_quantize(val: float, scale: float, zero_point: int, out_type: int) -> int:
    """``xnn_qs8_quantize``/``xnn_qu8_quantize``:
    ``lrintf(clamp(f32(f32(val / scale) + zp), qmin, qmax))`` (ties to even). XNNPACK
    quantizes the float bounds of a fused activation (its clamp node) this way; LiteRT
    adds ``zp`` to ``round_half_away(val / scale)``."""
    lo, hi = (0.0, 255.0) if out_type == UINT8 else (-128.0, 127.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = np.float32(np.float32(val) / np.float32(scale))
        v = np.float32(v + np.float32(zero_point))
    v = min(max(float(v), lo), hi)
    return int(np.rint(np.float32(v)))


def xnn_activation_bounds(act: int, scale: float, zero_point: int, out_type: int) -> tuple[int, int]:
    """Clamp of a fused activation on an XNNPACK node: the delegate turns the activation
    into float bounds (``ConvertActivationToOutputRange``: RELU [0, inf), RELU6 [0, 6],
    RELU_N1_TO_1 [-1, 1]) and XNNPACK quantizes them with :func:`xnn_quantize`."""
    qmin, qmax = (0, 255) if out_type == UINT8 else (-128, 127)
    bounds = {0: (None, None), 1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[act]
    lo = qmin if bounds[0] is None else xnn_quantize(bounds[0], scale, zero_point, out_type)
    hi = qmax if bounds[1] is None else xnn_quantize(bounds[1], scale, zero_point, out_type)
    return lo, hi


def is_8bit(t: int) -> bool:
    return t in (INT8, UINT8)


def is_int16(t: int) -> bool:
    return t == INT16
