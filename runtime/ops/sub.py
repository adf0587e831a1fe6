"""SUB: float32, int32, int64, and quantized int8, uint8 and int16 (general scales and
the power-of-two "pot_scale_int16" path), with broadcasting up to 8 dimensions and
fused activations.

Mirrors ``tflite/kernels/sub.cc`` (``PrepareGeneralSubOp``, ``PrepareInt16SubOpPOT``,
Eval) and ``tflite/kernels/internal/reference/sub.h`` (``SubElementwise``,
``BroadcastQuantSubSlow``, ``BroadcastSub16POTSlow``, ``SubWithActivation``) and
``reference_ops.h`` ``Sub16`` in google-ai-edge/LiteRT. The arithmetic is ADD's
(see add.py) with ``scaled_1 - scaled_2``; the differences:

* float32/int32/int64 use the broadcast loop whenever the two shapes are not
  identical (``HaveSameShapes``), the flat loop otherwise; int32/int64 wrap.
* There is no unquantized int16 SUB: int16 always needs quantization and zero points 0.
* The output multiplier ``2 max(s1, s2) / (2^left_shift s_out)`` may exceed 1 (a very
  small output scale): sub.cc encodes it with ``QuantizeMultiplierGreaterThanOne`` but
  the kernel still applies ``MultiplyByQuantizedMultiplierSmallerThanOneExp``, i.e. a
  rounding right shift by a negative amount (undefined behaviour). The result is
  reproduced as the x86 wheel computes it (see ``add.eval_quantized``). Exactly 1
  aborts LiteRT and is refused.
* The power-of-two int16 SUB broadcasts (``BroadcastSub16POTSlow``).
"""
from __future__ import annotations

import numpy as np

from . import _paths_binary
from ._common import OpContext
from .add import AddParams, prepare_add_sub
from .add import eval as _eval_add_sub

NUMERICS = ("reference", "optimized", "xnnpack")


def prepare(ctx: OpContext) -> AddParams:
    # Other numerics paths: see _paths_binary (LiteRT runs the reference SUB for 8 bits).
    return _paths_binary.for_add_sub(ctx, prepare_add_sub(ctx, subtract=True))


def eval(p: AddParams, x1: np.ndarray, x2: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return _eval_add_sub(p, x1, x2)
