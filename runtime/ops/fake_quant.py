"""FAKE_QUANT (float32): quantize-dequantize onto a nudged grid, as during QAT.

LiteRT ``tflite/kernels/fake_quant.cc`` (one kernel, registered for every resolver)
calls ``reference_ops::FakeQuant`` (``tflite/kernels/internal/reference/reference_ops.h``),
which uses ``NudgeQuantizationRange`` and ``FakeQuantizeArray`` from
``tflite/kernels/internal/quantization_util.cc``: TensorFlow's *older* functor, not
the TF 2.21 one that :func:`quantcore.qat.fake_quant` reproduces (docs/quantization.md
eq. 23 and 28)::

    quant_min = 0, quant_max = 2^num_bits - 1           (narrow_range is refused)
    scale = f32((max - min) / f32(quant_max))
    zp = clamp(round_away(f32(0 - min / scale)))        (uint16)
    nudged_min = f32(-zp * scale), nudged_max = f32((quant_max - zp) * scale)
    c = std::min(nudged_max, std::max(nudged_min, x))   (a NaN input gives nudged_min)
    out = f32(f32(round_away(f32(f32(c - nudged_min) * f32(1 / scale))) * scale) + nudged_min)

Prepare refuses ``narrow_range`` (LiteRT: "narrow_range FakeQuant is not currently
supported at runtime"), the output takes the input's shape and type. LiteRT's
``DCHECK``s on ``min <= 0 <= max`` and ``min < max`` are compiled out, so other ranges
run through the same arithmetic (NaN for ``min == max``). Every LiteRT path runs this
kernel (XNNPACK does not take FAKE_QUANT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.qat import litert_fake_quant

from ._common import FLOAT32, OpContext

NUMERICS = ("reference", "optimized", "xnnpack")


@dataclass(frozen=True)
class FakeQuantParams:
    min: float
    max: float
    num_bits: int


def prepare(ctx: OpContext) -> FakeQuantParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    o = ctx.options
    ctx.check(not o.get("narrow_range", False),
              "narrow_range FakeQuant is not supported at runtime (fake_quant.cc Prepare)",
              ".builtin_options.narrow_range")
    ctx.check_type(x, (FLOAT32,), "input")
    ctx.check(out.type == FLOAT32, f"output type {out.type_name} differs from the input type "
              "FLOAT32", ".outputs[0]")
    num_bits = int(o.get("num_bits", 0))
    # quant_max = (1 << num_bits) - 1 must be a valid int: LiteRT does not check it.
    ctx.check(1 <= num_bits <= 30, f"num_bits {num_bits} outside [1, 30] (1 << num_bits "
              "overflows or gives an empty grid)", ".builtin_options.num_bits")
    return FakeQuantParams(min=float(np.float32(o.get("min", 0.0))),
                           max=float(np.float32(o.get("max", 0.0))), num_bits=num_bits)


def eval(p: FakeQuantParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [litert_fake_quant(x, p.min, p.max, p.num_bits).reshape(np.shape(x))]
