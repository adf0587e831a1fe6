"""Checks against untrusted models that several kernels share (../shared/ROBUSTNESS.md).

* :func:`require_inputs`: every input the operator reads is present; ``-1`` only where
  the operator marks an input optional (CVE-2020-15211).
* :func:`int_param`: a tensor holding shapes, axes, paddings, block sizes or sizes has
  the integer type LiteRT reads it as (a float tensor would be read as garbage).
* :func:`check_output_size`: an output whose size the *data* decides (FILL dims,
  PAD paddings, RESIZE sizes, BROADCAST_TO shapes, ...) fits the memory budget
  before it is allocated, so a crafted constant gives an ``InputError`` instead of a
  ``MemoryError`` or an out-of-memory kill (CVE-2022-23558 class).
* :func:`finite`: a float derived from scales or options (a real multiplier, a
  scaled bound) is finite before it is encoded as a fixed-point multiplier.

Candidates for ``_common.py`` (``OpContext`` methods) once the kernel work settles.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from quantcore.errors import InputError
from quantcore.schema.validate import DEFAULT_MEMORY_BUDGET

from ._common import INT32, INT64, OpContext, TensorInfo

#: Bytes one output tensor may occupy; the reader applies the same budget to the
#: tensors a model declares. Tests lower it to keep fuzzing light.
MAX_OUTPUT_BYTES = DEFAULT_MEMORY_BUDGET
#: Dimensions a data-shaped output may have (NumPy 1.x arrays stop at 32).
MAX_RANK = 32


def require_inputs(ctx: OpContext, count: int | None = None) -> None:
    """Inputs ``0 .. count-1`` (all by default) are present, none of them ``-1``."""
    n = len(ctx.inputs) if count is None else count
    for j in range(n):
        ctx.input(j)


def int_param(ctx: OpContext, i: int, what: str,
              types: tuple[int, ...] = (INT32, INT64)) -> TensorInfo:
    """Input ``i`` (required) has one of the integer ``types``."""
    t = ctx.input(i)
    ctx.check_type(t, types, what)
    return t


def check_output_size(path: str, op: str, shape: Iterable[int], dtype) -> tuple[int, ...]:
    """``shape`` as Python ints, refused (InputError) when negative or over the budget."""
    dims = tuple(int(d) for d in shape)
    if len(dims) > MAX_RANK:
        raise InputError(f"{path}: {op} output would have {len(dims)} dimensions, more than "
                         f"{MAX_RANK}")
    if any(d < 0 for d in dims):
        raise InputError(f"{path}: {op} output shape {list(dims)} has a negative dimension")
    if any(d >= 2**31 for d in dims) or math.prod(d for d in dims if d) >= 2**62:
        # LiteRT's dimensions are int32; NumPy refuses even an empty array whose other
        # dimensions multiply past its index range.
        raise InputError(f"{path}: {op} output shape {list(dims)} has dimensions beyond int32")
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_OUTPUT_BYTES:
        raise InputError(f"{path}: {op} output shape {list(dims)} needs {nbytes} bytes, over the "
                         f"limit of {MAX_OUTPUT_BYTES} bytes")
    return dims


def finite(ctx: OpContext, value: float, what: str) -> float:
    """``value`` (computed without floating-point warnings) is finite, else ModelFormatError."""
    ctx.check(math.isfinite(float(value)), f"{what} is {float(value)}, not a finite number "
              "(scales or options out of range)")
    return float(value)
