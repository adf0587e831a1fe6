"""BATCH_TO_SPACE_ND, the inverse of SPACE_TO_BATCH_ND, then crops
(``tflite/kernels/batch_to_space_nd.cc``, ``reference_ops::BatchToSpaceND``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT16, INT32, INT8, UINT8, OpContext, check_output_size, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class BatchToSpaceParams:
    path: str


def prepare(ctx: OpContext) -> BatchToSpaceParams:
    ctx.check_io_count(3, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(len(x.shape) in (3, 4), f"input must be 3-D or 4-D, is {list(x.shape)}", ".inputs[0]")
    ctx.check(out.type == x.type, "output type differs from input type")
    block = int_param(ctx, 1, "block_shape", (INT32,))  # read as int32 (batch_to_space_nd.cc)
    crops = int_param(ctx, 2, "crops", (INT32,))
    nsp = len(x.shape) - 2
    ctx.check(list(block.shape) == [nsp], f"block_shape must have shape [{nsp}], has "
              f"{list(block.shape)}", ".inputs[1]")
    ctx.check(list(crops.shape) == [nsp, 2], f"crops must have shape [{nsp}, 2], has "
              f"{list(crops.shape)}", ".inputs[2]")
    if x.type in (INT8, UINT8, INT16) and x.quantized and out.quantized:
        ctx.check(x.s == out.s and x.zp == out.zp, "input and output must share scale and zero point")
    return BatchToSpaceParams(ctx.path)


def eval(p: BatchToSpaceParams, x: np.ndarray, block: np.ndarray, crops: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    block = [int(b) for b in np.asarray(block).reshape(-1)]
    nsp = x.ndim - 2
    crops = np.asarray(crops, np.int64).reshape(-1, 2)
    prod = int(np.prod(block)) if block else 1
    if len(block) != nsp or crops.shape[0] != nsp or any(b <= 0 for b in block) or np.any(crops < 0) \
            or x.shape[0] % prod:
        raise InputError(f"{p.path}: invalid block shape {block} or crops {crops.tolist()} for {list(x.shape)}")
    n = x.shape[0] // prod
    sp = x.shape[1:-1]
    check_output_size(p.path, "BATCH_TO_SPACE_ND", [n] + [s * b for s, b in zip(sp, block)] + [x.shape[-1]],
                      x.dtype)
    check_output_size(p.path, "BATCH_TO_SPACE_ND", block + [n] + list(sp) + [x.shape[-1]], x.dtype)
    y = x.reshape(block + [n] + list(sp) + [x.shape[-1]])
    # b0, b1, n, s0, s1, c -> n, s0, b0, s1, b1, c
    order = [nsp]
    for i in range(nsp):
        order += [nsp + 1 + i, i]
    y = y.transpose(order + [2 * nsp + 1]).reshape([n] + [s * b for s, b in zip(sp, block)] + [x.shape[-1]])
    index = [slice(None)]
    for i in range(nsp):
        lo, hi = int(crops[i, 0]), int(crops[i, 1])
        if lo + hi > y.shape[1 + i]:
            raise InputError(f"{p.path}: crops {crops.tolist()} larger than the output")
        index.append(slice(lo, y.shape[1 + i] - hi))
    return [np.array(y[tuple(index)])]
