"""CONCATENATION along one axis.

Mirrors ``tflite/kernels/concatenation.cc``: int8 and int16 inputs must share the
output's scale and zero point (TF_LITE_ENSURE_EQ), so the op copies bytes; uint8
inputs with other parameters are requantized as ``reference_ops::ConcatenationWithScaling``
does: ``round(q_in * r - zp_in * r) + zp_out`` with ``r = f32(s_in * f32(1 / s_out))``
in float32 and ``TfLiteRound``; only a fused activation of NONE is accepted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.fixedpoint import round_half_away

from ._common import BOOL, FLOAT32, INT16, INT32, INT64, INT8, UINT8, OpContext, finite

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class ConcatenationParams:
    axis: int
    rescale: tuple | None   # per input (scale_ratio float32, bias float32) for uint8, else None


def prepare(ctx: OpContext) -> ConcatenationParams:
    ctx.check(len(ctx.inputs) >= 1 and len(ctx.outputs) == 1, "needs >= 1 inputs and 1 output")
    t0 = ctx.input(0)
    out = ctx.output(0)
    rank = len(t0.shape)
    axis = int(ctx.options.get("axis", 0))
    if axis < 0:
        axis += rank
    ctx.check(0 <= axis < max(rank, 1), f"axis {ctx.options.get('axis')} out of range for rank {rank}")
    if rank == 0:  # concatenation.cc: scalars only when every input is a constant
        ctx.check(all(t is not None and t.is_constant for t in ctx.inputs),
                  "scalar inputs can only be concatenated when they are all constants")
    ctx.check(ctx.options.get("fused_activation_function", 0) == 0,
              "fused activations are not supported by CONCATENATION")
    ctx.check_type(t0, (FLOAT32, INT8, UINT8, INT16, INT32, INT64, BOOL), "input")
    for i, t in enumerate(ctx.inputs):
        ctx.check(t is not None, f"input {i} is absent", f".inputs[{i}]")
        ctx.check(t.type == t0.type, f"input {i} has type {t.type_name}, input 0 {t0.type_name}")
        ctx.check(len(t.shape) == rank, f"input {i} has rank {len(t.shape)}, input 0 {rank}")
        for d in range(rank):
            if d != axis:
                ctx.check(t.shape[d] == t0.shape[d], f"input {i} dimension {d} is {t.shape[d]}, "
                          f"input 0 has {t0.shape[d]}")
    ctx.check(out.type == t0.type, f"output type {out.type_name} differs from input type {t0.type_name}")
    rescale = None
    if t0.type in (INT8, INT16):
        ctx.require_quantized(out)
        for i, t in enumerate(ctx.inputs):
            ctx.require_quantized(t)
            if t0.type == INT16:
                # concatenation.cc checks only the zero points of int16 (it copies the
                # codes, whatever the scales)
                ctx.check(t.zp == 0 and out.zp == 0, "int16 inputs and output need zero point 0")
                continue
            ctx.check(t.s == out.s and t.zp == out.zp,
                      f"input {i} scale/zero point ({t.s}, {t.zp}) differ from the output's "
                      f"({out.s}, {out.zp}); {t.type_name} CONCATENATION requires them equal")
    elif t0.type == UINT8:
        ctx.require_quantized(out)
        items = []
        for t in ctx.inputs:
            ctx.require_quantized(t)
            if t.s == out.s and t.zp == out.zp:
                items.append(None)
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    ratio = np.float32(np.float32(t.scale[0]) * (np.float32(1.0) / np.float32(out.scale[0])))
                    bias = np.float32(np.float32(-t.zp) * ratio)
                # LiteRT rounds x * ratio + bias into an int32: undefined once not finite.
                finite(ctx, ratio, f"input {t.index} scale / output scale")
                finite(ctx, bias, f"input {t.index} zero point x scale ratio")
                items.append((ratio, bias, out.zp))
        rescale = tuple(items) if any(it is not None for it in items) else None
    return ConcatenationParams(axis, rescale)


def eval(p: ConcatenationParams, *xs: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    if xs[0].ndim == 0:  # constant scalars: their bytes one after the other, shape [n]
        return [np.stack(xs)]
    if p.rescale is None:
        return [np.concatenate(xs, axis=p.axis)]
    parts = []
    for x, r in zip(xs, p.rescale):
        if r is None:
            parts.append(x)
        else:
            ratio, bias, zp_out = r
            v = round_half_away((x.astype(np.float32) * ratio + bias).astype(np.float32)) + zp_out
            parts.append(np.clip(v, 0, 255).astype(np.uint8))
    return [np.concatenate(parts, axis=p.axis)]
