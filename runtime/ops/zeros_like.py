"""ZEROS_LIKE (``tflite/kernels/zeros_like.cc``): zeros of the input's shape and type."""
from __future__ import annotations

import numpy as np

from ._common import OpContext

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


def prepare(ctx: OpContext) -> None:
    ctx.check_io_count(1, 1)
    return None


def eval(p: None, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [np.zeros_like(x)]
