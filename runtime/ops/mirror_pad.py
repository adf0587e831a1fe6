"""MIRROR_PAD, REFLECT or SYMMETRIC (``tflite/kernels/mirror_pad.cc``).

REFLECT excludes the edge (paddings < dim), SYMMETRIC repeats it (paddings <= dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import OpContext, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class MirrorPadParams:
    path: str
    mode: str


def prepare(ctx: OpContext) -> MirrorPadParams:
    ctx.check_io_count(2, 1)
    pads = int_param(ctx, 1, "paddings")  # mirror_pad.cc: int32 or int64
    rank = len(ctx.input(0).shape)
    ctx.check(list(pads.shape) == [rank, 2], f"paddings must have shape [{rank}, 2], has "
              f"{list(pads.shape)}", ".inputs[1]")
    ctx.check(ctx.output(0).type == ctx.input(0).type, "output type differs from input type")
    mode = int(ctx.options.get("mode", 0))
    ctx.check(mode in (0, 1), f"unknown mirror pad mode {mode}")
    return MirrorPadParams(ctx.path, "reflect" if mode == 0 else "symmetric")


def eval(p: MirrorPadParams, x: np.ndarray, paddings: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    pads = np.asarray(paddings, np.int64).reshape(-1, 2)
    if pads.shape[0] != x.ndim or np.any(pads < 0):
        raise InputError(f"{p.path}: invalid paddings {pads.tolist()} for rank {x.ndim}")
    limit = np.array(x.shape)[:, None] - (1 if p.mode == "reflect" else 0)
    if np.any(pads > limit):
        raise InputError(f"{p.path}: {p.mode} paddings {pads.tolist()} too large for {list(x.shape)}")
    return [np.pad(x, [tuple(r) for r in pads.tolist()], mode=p.mode)]
