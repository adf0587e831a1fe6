"""Exact 8-bit binary elementwise ops as 65536-entry tables (ADD, SUB, MUL).

An int8/uint8 elementwise operator whose output depends only on the two input values
(ADD, SUB, MUL with fixed quantization parameters) is a function on 256 x 256 pairs.
:func:`binary_table` evaluates the kernel's own integer code once on every pair;
:func:`apply_table` then replaces its ~40 int64 passes per invoke with an index
computation on 16-bit integers and one gather from a 64 KiB table (L2-resident).
Exact by construction: the table holds the kernel's own results.

Table layout: entry ``(ua << 8) | ub`` where ``ua``/``ub`` are the raw bytes of the
inputs (the ``uint8`` view; for int8 ``-1`` is byte 255), so no offset pass is needed.

Where LiteRT's result depends on the element's position (vector lanes versus scalar
tail: the optimized ADD/MUL bodies, SUB with an output multiplier above one on the
flat path) a :class:`TablePlan` holds two tables and a mask of the positions that use
the second one; each table is still a pure function of the two input values.

When to build (:class:`LazyBinaryTable`). Measured on the benchmark machine (int8
ADD, reference arithmetic): the direct kernel costs ~60 us per call plus ~40 ns per
element (62 us at 16 elements, 131 us at 4096, 3.0 ms at 75264); the table lookup
7.5 us at 16 elements, 14 us at 4096, 64 us at 75264, so a built table is faster at
every size. Building one table costs about one direct call on 65536 elements
(~2.7 ms). Tables are therefore built lazily, never in ``prepare``: each direct call
adds ``n + 1500`` (its cost in "elements") to a credit, and the tables are built once
the credit reaches 65536 per table to build (ski rental: never more than twice the
better of the two choices). An operator with 65536 or more outputs switches on its
first call; a 16-element one after ~40 calls. Built tables are also kept in a
process-wide cache keyed by the arithmetic's parameters, so the same operator in
another Interpreter of the same model reuses them.

``QUANTCORE_LUT2D`` (environment, read at import) or :func:`policy` forces the
choice: ``always`` (tables on the first call, for tests), ``never`` (direct kernels),
``auto`` (the default).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator

import numpy as np

TABLE_SIZE = 65536
#: Cost of one direct call beyond its elements, in elements (60 us / 40 ns).
CALL_OVERHEAD_ELEMENTS = 1500
#: Tables kept process-wide (64 KiB each for 8-bit outputs).
CACHE_ENTRIES = 256

_POLICIES = ("auto", "always", "never")
_policy = os.environ.get("QUANTCORE_LUT2D", "auto")
if _policy not in _POLICIES:   # pragma: no cover - a typo in the environment
    _policy = "auto"

_cache: OrderedDict[Hashable, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


@contextlib.contextmanager
def policy(mode: str) -> Iterator[None]:
    """Temporarily force ``"always"``, ``"never"`` or ``"auto"`` (see the module docstring)."""
    global _policy
    if mode not in _POLICIES:
        raise ValueError(f"policy must be one of {_POLICIES}, not {mode!r}")
    old, _policy = _policy, mode
    try:
        yield
    finally:
        _policy = old


def _grid(a_dtype, b_dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) pair of two 8-bit types as two (256, 256) arrays in table order."""
    codes = np.arange(256, dtype=np.uint8)
    a_vals = codes.view(np.dtype(a_dtype))
    b_vals = codes.view(np.dtype(b_dtype))
    return (np.repeat(a_vals, 256).reshape(256, 256), np.tile(b_vals, 256).reshape(256, 256))


def binary_table(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a_dtype, b_dtype,
                 out_dtype) -> np.ndarray:
    """``fn`` on every (a, b) pair of two 8-bit types: a 65536-entry table indexed by
    ``(byte(a) << 8) | byte(b)`` (raw bytes, see the module docstring). ``fn`` gets two
    (256, 256) arrays of ``a_dtype``/``b_dtype`` and returns 65536 values."""
    a_grid, b_grid = _grid(a_dtype, b_dtype)
    out = np.asarray(fn(a_grid, b_grid)).reshape(TABLE_SIZE)
    return np.ascontiguousarray(out.astype(out_dtype))


def table_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(byte(a) << 8) | byte(b)`` as uint16, with NumPy broadcasting of ``a`` and ``b``."""
    ua = np.asarray(a).view(np.uint8).astype(np.uint16)
    ua <<= 8
    return np.bitwise_or(ua, np.asarray(b).view(np.uint8))


def apply_table(table: np.ndarray, a: np.ndarray, b: np.ndarray, out_dtype=None) -> np.ndarray:
    """``table[(byte(a) << 8) | byte(b)]`` with NumPy broadcasting of ``a`` and ``b``."""
    out = np.take(table, table_index(a, b))
    return out if out_dtype is None else out.astype(out_dtype, copy=False)


def params_key(p, drop: tuple[str, ...] = ("output_shape", "flat")) -> tuple:
    """A hashable key of a params dataclass's arithmetic: its compared fields, without
    the shape-only ones named in ``drop``."""
    return tuple((f.name, getattr(p, f.name)) for f in dataclasses.fields(p)
                 if f.compare and f.name not in drop)


def cached_table(key: Hashable, build: Callable[[], np.ndarray]) -> np.ndarray:
    """The process-wide table for ``key``, built with ``build()`` on a miss (LRU)."""
    with _cache_lock:
        t = _cache.get(key)
        if t is not None:
            _cache.move_to_end(key)
            return t
    t = build()
    t.flags.writeable = False
    with _cache_lock:
        _cache[key] = t
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return t


@dataclass(frozen=True)
class TableSpec:
    """One table: its cache key and the kernel code it is built from (``fn(a, b)`` on
    (256, 256) grids of the input types, returning values of the output type)."""
    key: Hashable
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TablePlan:
    """How an operator's output is looked up for one pair of input shapes: ``main``
    everywhere, except at the positions where ``mask`` (output-shaped, or None) is True,
    which use ``other``."""
    main: TableSpec
    other: TableSpec | None = None
    mask: np.ndarray | None = None


class _Built:
    """Tables of a plan for one pair of input shapes; the minority table is applied on
    the flat positions where it is used."""

    def __init__(self, shapes, plan: TablePlan, a_dtype, b_dtype, out_dtype) -> None:
        self.shapes = shapes
        main, other, mask = plan.main, plan.other, plan.mask
        if other is not None and mask is not None and mask.any():
            if mask.all():
                main, other, mask = other, None, None
            elif np.count_nonzero(mask) * 2 > mask.size:
                main, other, mask = other, main, ~mask
        else:
            other, mask = None, None
        build = lambda spec: cached_table((spec.key, np.dtype(a_dtype).str, np.dtype(b_dtype).str,  # noqa: E731
                                           np.dtype(out_dtype).str),
                                          lambda: binary_table(spec.fn, a_dtype, b_dtype, out_dtype))
        self.main = build(main)
        self.other = build(other) if other is not None else None
        self.positions = np.flatnonzero(mask) if mask is not None else None

    def apply(self, x1: np.ndarray, x2: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
        idx = table_index(x1, x2)
        out = np.take(self.main, idx).reshape(out_shape)
        if self.positions is not None:
            flat_idx = idx.reshape(-1)
            out.reshape(-1)[self.positions] = np.take(self.other, flat_idx[self.positions])
        return out


class LazyBinaryTable:
    """The table form of one prepared 8-bit binary operator, built on demand.

    ``apply`` returns the operator's output, or None when the direct kernel should run
    (tables not worth building yet, or inputs not of the prepared 8-bit types).
    Not part of the params' equality or hash; safe to share between threads (a race
    builds the same tables twice).
    """

    def __init__(self, a_dtype, b_dtype, out_dtype) -> None:
        self.a_dtype = np.dtype(a_dtype)
        self.b_dtype = np.dtype(b_dtype)
        self.out_dtype = np.dtype(out_dtype)
        self.credit = 0
        self._built: _Built | None = None

    def __repr__(self) -> str:
        return f"LazyBinaryTable(built={self._built is not None})"

    def apply(self, x1: np.ndarray, x2: np.ndarray, out_shape: tuple[int, ...],
              plan: Callable[[tuple[int, ...], tuple[int, ...]], TablePlan]) -> np.ndarray | None:
        """Output of shape ``out_shape`` through the tables of ``plan(x1.shape, x2.shape)``."""
        if _policy == "never" or x1.dtype != self.a_dtype or x2.dtype != self.b_dtype:
            return None
        shapes = (x1.shape, x2.shape)
        built = self._built
        if built is None or built.shapes != shapes:
            if _policy == "auto":
                n = int(np.prod(out_shape, dtype=np.int64))
                self.credit += n + CALL_OVERHEAD_ELEMENTS
                if self.credit < TABLE_SIZE:
                    return None
            built = self._built = _Built(shapes, plan(*shapes), self.a_dtype, self.b_dtype,
                                         self.out_dtype)
        return built.apply(x1, x2, out_shape)


def eval_binary(p, x1: np.ndarray, x2: np.ndarray,
                table_plan: Callable[[object, tuple, tuple], TablePlan],
                eval_direct: Callable[[object, np.ndarray, np.ndarray], list]) -> list[np.ndarray]:
    """``eval`` of an 8-bit binary kernel (ADD/SUB, MUL) on any numerics path: through
    its tables once :class:`LazyBinaryTable` has built them (``table_plan(p, shape1,
    shape2)`` says which), else ``eval_direct(p, x1, x2)``. ``p`` is the kernel's
    params or a ``PathParams`` wrapping them (``.base``)."""
    base = getattr(p, "base", p)
    if base.lut is not None:
        out = base.lut.apply(x1, x2, base.output_shape, lambda s1, s2: table_plan(p, s1, s2))
        if out is not None:
            return [out]
    return eval_direct(p, x1, x2)
