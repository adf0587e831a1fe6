"""PAD and PADV2: pad with a constant.

Mirrors ``tflite/kernels/pad.cc``: paddings is an int32/int64 tensor [rank, 2]; the
pad value is 0 for floats, the output zero point for integer types (PAD), or the
single value of the third input (PADV2), which for quantized types must share the
output's scale and zero point. Up to 5 dimensions (``PadKernelMaxDimensionCount``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import FLOAT32, INT16, INT8, UINT8, OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class PadParams:
    path: str
    pad_value: object    # scalar or None (read from the PADV2 input at eval)
    rank: int


def prepare(ctx: OpContext) -> PadParams:
    ctx.check_io_count((2, 3) if ctx.op_name == "PADV2" else 2, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    paddings = int_param(ctx, 1, "paddings")  # pad.cc: int32 or int64
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from input {x.type_name}")
    ctx.check(len(x.shape) <= 5, f"PAD supports up to 5 dimensions, input has {len(x.shape)}")
    ctx.check(len(paddings.shape) == 2 and paddings.shape[1] == 2 and paddings.shape[0] == len(x.shape),
              f"paddings must have shape [{len(x.shape)}, 2], has {list(paddings.shape)}", ".inputs[1]")
    pad_value = None
    cv = ctx.input(2, optional=True) if len(ctx.inputs) > 2 else None
    if cv is not None:
        ctx.check(cv.type == x.type, "constant_values type differs from the input type", ".inputs[2]")
        ctx.check(cv.num_elements == 1, "constant_values must have one element", ".inputs[2]")
        if x.type in (INT8, UINT8, INT16):
            ctx.require_quantized(cv)
            ctx.require_quantized(out)
            ctx.check(cv.s == out.s and cv.zp == out.zp,
                      "constant_values must share the output's scale and zero point", ".inputs[2]")
        if cv.data is not None:
            pad_value = cv.data.reshape(-1)[0]
    elif x.type == FLOAT32 or not out.quantized:
        pad_value = np.zeros((), x.dtype)[()]
    else:
        ctx.require_quantized(out)  # pad.cc: the zero point must fit the output type
        pad_value = out.zp
    return PadParams(ctx.path, pad_value, len(x.shape))


def eval(p: PadParams, x: np.ndarray, paddings: np.ndarray, cv: np.ndarray | None = None) -> list[np.ndarray]:  # noqa: A001
    pads = np.asarray(paddings, np.int64).reshape(p.rank, 2)
    if np.any(pads < 0):
        raise InputError(f"{p.path}: negative paddings {pads.tolist()} are not supported")
    check_output_size(p.path, "PAD", [d + a + b for d, (a, b) in zip(x.shape, pads.tolist())], x.dtype)
    value = p.pad_value if p.pad_value is not None else np.asarray(cv).reshape(-1)[0]
    return [np.pad(x, [tuple(r) for r in pads.tolist()], mode="constant", constant_values=value)]
