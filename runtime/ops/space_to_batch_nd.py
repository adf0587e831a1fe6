"""SPACE_TO_BATCH_ND (``tflite/kernels/space_to_batch_nd.cc``, ``reference_ops::SpaceToBatchND``).

The spatial dimensions (1 or 2 of them, NHWC or NWC) are padded with the output
zero point (0 for floats), then each ``block`` of positions moves to the batch
dimension: output batch ``(by * bw + bx) * N + n``. Quantized input and output
must share scale and zero point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT16, INT32, INT8, UINT8, OpContext, check_output_size, int_param

# Numerics paths: optimized_ops uses reference_ops::SpaceToBatchND and XNNPACK has no
# visitor for it: data movement, identical everywhere.
NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class SpaceToBatchParams:
    path: str
    pad_value: int


def prepare(ctx: OpContext) -> SpaceToBatchParams:
    ctx.check_io_count(3, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(len(x.shape) in (3, 4), f"input must be 3-D or 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(out.type == x.type, "output type differs from input type")
    block = int_param(ctx, 1, "block_shape", (INT32,))  # read as int32 (space_to_batch_nd.cc)
    pads = int_param(ctx, 2, "paddings", (INT32,))
    nsp = len(x.shape) - 2
    ctx.check(list(block.shape) == [nsp], f"block_shape must have shape [{nsp}], has "
              f"{list(block.shape)}", ".inputs[1]")
    ctx.check(list(pads.shape) == [nsp, 2], f"paddings must have shape [{nsp}, 2], has "
              f"{list(pads.shape)}", ".inputs[2]")
    pad = 0
    if x.type in (INT8, UINT8, INT16) and x.quantized and out.quantized:
        ctx.check(x.s == out.s and x.zp == out.zp, "input and output must share scale and zero point")
        pad = out.zp
    if ctx.numerics == "micro":
        # TFLM (micro space_to_batch_nd.cc) never sets SpaceToBatchParams.output_offset: its
        # persistent OpData is fresh, zeroed arena memory, so it pads with 0 (not the zero point).
        pad = 0
    return SpaceToBatchParams(ctx.path, pad)


def eval(p: SpaceToBatchParams, x: np.ndarray, block: np.ndarray, paddings: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    block = [int(b) for b in np.asarray(block).reshape(-1)]
    nsp = x.ndim - 2
    pads = np.asarray(paddings, np.int64).reshape(-1, 2)
    if len(block) != nsp or pads.shape[0] != nsp or any(b <= 0 for b in block) or np.any(pads < 0):
        raise InputError(f"{p.path}: invalid block shape {block} or paddings {pads.tolist()}")
    check_output_size(p.path, "SPACE_TO_BATCH_ND", [x.shape[0]] + [s + int(a) + int(b) for s, (a, b) in
                      zip(x.shape[1:-1], pads.tolist())] + [x.shape[-1]], x.dtype)
    xp = np.pad(x, [(0, 0)] + [tuple(r) for r in pads.tolist()] + [(0, 0)], constant_values=p.pad_value)
    n = x.shape[0]
    sp = xp.shape[1:-1]
    if any(s % b for s, b in zip(sp, block)):
        raise InputError(f"{p.path}: padded spatial shape {list(sp)} not divisible by block {block}")
    shape = [n]
    for s, b in zip(sp, block):
        shape += [s // b, b]
    y = xp.reshape(shape + [x.shape[-1]])
    # axes: n, (s0, b0), (s1, b1), c -> b0, b1, n, s0, s1, c
    block_axes = [2 + 2 * i for i in range(nsp)]
    space_axes = [1 + 2 * i for i in range(nsp)]
    y = y.transpose(block_axes + [0] + space_axes + [len(shape)])
    return [np.array(y.reshape([n * int(np.prod(block))] + [s // b for s, b in zip(sp, block)] + [x.shape[-1]]))]
