"""TRANSPOSE by a permutation (``tflite/kernels/transpose.cc``), up to 6 dimensions.

Quantized tensors move unchanged; LiteRT requires the input and output types equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import OpContext, copy_array as _copy

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class TransposeParams:
    path: str
    rank: int


def prepare(ctx: OpContext) -> TransposeParams:
    ctx.check_io_count(2, 1)
    x = ctx.input(0)
    perm = ctx.input(1)
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    ctx.check(len(x.shape) <= 6, f"TRANSPOSE supports up to 6 dimensions, input has {len(x.shape)}")
    ctx.check(len(perm.shape) == 1 and perm.shape[0] == len(x.shape),
              f"perm must have {len(x.shape)} elements, has shape {list(perm.shape)}", ".inputs[1]")
    if perm.data is not None:
        _check_perm(perm.data, len(x.shape), ctx.path)
    return TransposeParams(ctx.path, len(x.shape))


def _check_perm(perm: np.ndarray, rank: int, path: str) -> list[int]:
    p = [int(v) + rank if int(v) < 0 else int(v) for v in np.asarray(perm).reshape(-1)]
    if sorted(p) != list(range(rank)):
        raise InputError(f"{path}: perm {np.asarray(perm).tolist()} is not a permutation of rank {rank}")
    return p


def eval(p: TransposeParams, x: np.ndarray, perm: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [_copy(np.transpose(x, _check_perm(perm, p.rank, p.path)))]
