"""Exact 8-bit binary elementwise ops as one 65536-entry table (not wired in yet).

An int8/uint8 elementwise operator whose output depends only on the two input values
(ADD, SUB, MUL, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM with fixed quantization
parameters) is a function on 256 x 256 pairs. :func:`binary_table` evaluates the
kernel's own integer code once, in ``prepare``, on every pair; :func:`apply_table`
then replaces its ~40 int64 passes per invoke with an index computation on 16-bit
integers and one gather from a 64 KiB table (L2-resident). Exact by construction:
the table holds the kernel's own results.

Not valid where a result depends on the element's position (LiteRT's vector lanes
versus scalar tail, e.g. SUB with an output multiplier above one on the flat path).

Intended hook (``add.py`` and friends are other helpers' files)::

    # prepare, for int8/uint8 inputs and output, position-independent arithmetic:
    table = _lut2d.binary_table(lambda a, b: eval_quantized(params, a, b), np.int8, np.int8, np.int8)
    # eval:
    return [_lut2d.apply_table(table, x1, x2, np.int8).reshape(p.output_shape)]
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _offset(dtype) -> int:
    return 128 if np.dtype(dtype) == np.int8 else 0


def binary_table(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a_dtype, b_dtype,
                 out_dtype) -> np.ndarray:
    """``fn`` on every (a, b) pair of two 8-bit types: uint16-indexed table, entry
    ``((a + oa) << 8) | (b + ob)`` (``o = 128`` for int8, 0 for uint8)."""
    a_vals = (np.arange(256) - _offset(a_dtype)).astype(a_dtype)
    b_vals = (np.arange(256) - _offset(b_dtype)).astype(b_dtype)
    a_grid = np.repeat(a_vals, 256).reshape(256, 256)
    b_grid = np.tile(b_vals, 256).reshape(256, 256)
    out = np.asarray(fn(a_grid, b_grid)).reshape(256, 256)
    return np.ascontiguousarray(out.astype(out_dtype)).reshape(65536)


def _biased(x: np.ndarray) -> np.ndarray:
    """8-bit values as uint8 ``x + 128`` (int8) or ``x`` (uint8)."""
    if x.dtype == np.int8:
        return x.view(np.uint8) ^ np.uint8(0x80)
    return x


def apply_table(table: np.ndarray, a: np.ndarray, b: np.ndarray, out_dtype) -> np.ndarray:
    """``table[((a + oa) << 8) | (b + ob)]`` with NumPy broadcasting of ``a`` and ``b``."""
    ua = _biased(np.asarray(a)).astype(np.uint16)
    ua <<= 8
    idx = np.bitwise_or(ua, _biased(np.asarray(b)))
    return np.take(table, idx).astype(out_dtype, copy=False)
