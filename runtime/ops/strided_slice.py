"""STRIDED_SLICE with begin/end/ellipsis/new-axis/shrink-axis masks and ``offset``.

Mirrors ``tflite/kernels/strided_slice.cc`` (``BuildStridedSliceParams``: the
ellipsis expands to full ranges, new axes become size-1 dimensions of an
"effective" input shape, dimensions past ``begin`` get full ranges) and
``reference/strided_slice.h`` ``StartForAxis``/``EndForAxis``: negative indices
wrap once, then clamp to [0, size] for positive strides or [-1, size-1] for
negative ones, then the begin/end masks override; a shrunk axis takes one element.
A stride of 0 is an error (CVE: STRIDED_SLICE infinite loop). Two cases where
LiteRT leaves output elements uninitialized (or writes past them) raise InputError
instead: ``offset`` slices that leave the dimension or combine with any mask,
and shrunk axes with a negative stride.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import InputError

from ._common import INT32, OpContext, copy_array as _copy, int_param

NUMERICS = ("reference", "optimized", "xnnpack", "micro")


@dataclass(frozen=True)
class StridedSliceParams:
    path: str
    begin_mask: int
    end_mask: int
    ellipsis_mask: int
    new_axis_mask: int
    shrink_axis_mask: int
    offset: bool


def prepare(ctx: OpContext) -> StridedSliceParams:
    ctx.check_io_count(4, 1)
    x = ctx.input(0)
    ctx.check(len(x.shape) <= 5, f"STRIDED_SLICE supports up to 5 dimensions, input has {len(x.shape)}")
    for i in (1, 2, 3):
        t = int_param(ctx, i, ("begin", "end", "strides")[i - 1], (INT32,))  # strided_slice.cc: int32
        ctx.check(len(t.shape) == 1, f"input {i} must be 1-D", f".inputs[{i}]")
        ctx.check(t.shape[0] == ctx.input(1).shape[0], "begin, end and strides differ in length")
    if ctx.input(3).data is not None:
        ctx.check(bool(np.all(ctx.input(3).data != 0)), "strides must be non-zero", ".inputs[3]")
    o = ctx.options
    ctx.check(ctx.output(0).type == x.type, "output type differs from input type")
    return StridedSliceParams(ctx.path, int(o["begin_mask"]), int(o["end_mask"]), int(o["ellipsis_mask"]),
                              int(o["new_axis_mask"]), int(o["shrink_axis_mask"]), bool(o.get("offset", False)))


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if v > hi else lo if v < lo else v


def eval(p: StridedSliceParams, x, begin, end, strides) -> list[np.ndarray]:  # noqa: A001
    if p.offset and (p.begin_mask or p.end_mask or p.shrink_axis_mask or p.ellipsis_mask
                     or p.new_axis_mask or np.size(begin) != x.ndim):
        # LiteRT sizes offset-mode outputs from end[] alone; with masks its copy loop and
        # that size disagree (uninitialized output or a crash).
        raise InputError(f"{p.path}: STRIDED_SLICE with offset=true needs one index per "
                         "dimension and no masks (LiteRT reads end[] out of range otherwise)")
    begin = [int(v) for v in np.asarray(begin).reshape(-1)]
    end = [int(v) for v in np.asarray(end).reshape(-1)]
    strides = [int(v) for v in np.asarray(strides).reshape(-1)]
    count = len(begin)
    rank = x.ndim
    num_add = sum(1 for i in range(count)
                  if not (p.ellipsis_mask >> i) & 1 and (p.new_axis_mask >> i) & 1)
    dims = rank + num_add
    # Expand the ellipsis and locate new axes in the effective index space.
    eff_ellipsis, eff_new = set(), set()
    ellipsis_start, expanded = dims, 0
    i = 0
    while i < dims:
        if (p.ellipsis_mask >> i) & 1:
            ellipsis_start = i
            stop = max(i + 1, min(i + 1 + num_add + rank - count, dims))
            expanded = stop - ellipsis_start - 1
            eff_ellipsis.update(range(i, stop))
            i = stop
            continue
        if i - expanded >= 0 and (p.new_axis_mask >> (i - expanded)) & 1:
            eff_new.add(i)
        i += 1
    shape, starts, stops, steps, shrink = [], [], [], [], []
    added_ellipsis = added_axes = 0
    if len(eff_new) != num_add:
        # new_axis_mask bits past the index vectors: LiteRT's effective shape then no
        # longer covers the input, and it slices elements it did not mean to (or reads
        # past the input's dimensions).
        raise InputError(f"{p.path}: new_axis_mask {p.new_axis_mask:#x} / ellipsis_mask "
                         f"{p.ellipsis_mask:#x} do not fit {count} indices on a rank-{rank} input")
    for i in range(dims):
        if i in eff_ellipsis:
            added_ellipsis = max(0, i - ellipsis_start)
            size = x.shape[i - added_axes]
            shape.append(size)
            starts.append(0), stops.append(size), steps.append(1), shrink.append(False)
            continue
        if i in eff_new:
            shape.append(1)
            starts.append(0), stops.append(1), steps.append(1), shrink.append(False)
            added_axes += 1
            continue
        size = x.shape[i - added_axes]
        shape.append(size)
        if i >= count + expanded:
            starts.append(0), stops.append(size), steps.append(1), shrink.append(False)
            continue
        j = i - added_ellipsis
        st = strides[j]
        if st == 0:
            raise InputError(f"{p.path}: stride {j} is 0")
        s = begin[j]
        if s < 0:
            s += size
        s = _clamp(s, 0, size) if st > 0 else _clamp(s, -1, size - 1)
        if (p.begin_mask >> j) & 1:
            s = 0 if st > 0 else size - 1
        is_shrink = bool((p.shrink_axis_mask >> j) & 1)
        if is_shrink and st < 0:
            # LiteRT's copy loop runs zero times here (stop = start + 1 with a negative
            # stride) and the output is left uninitialized; it can crash.
            raise InputError(f"{p.path}: shrinking axis {j} with negative stride {st} is not "
                             "computed by LiteRT (its output would be uninitialized)")
        if is_shrink:
            if not 0 <= s < size:
                raise InputError(f"{p.path}: shrink index {begin[j]} out of range for dimension "
                                 f"{i - added_axes} of size {size}")
            e = s + 1
        else:
            e = end[j] + (s if p.offset else 0)
            if p.offset and ((p.end_mask >> j) & 1 or e > size or e < s):
                # LiteRT sizes the output as end[j] but copies only the in-range part,
                # leaving the rest uninitialized: refuse instead of inventing values.
                raise InputError(f"{p.path}: offset slice [{s}, {s} + {end[j]}) exceeds dimension "
                                 f"{i - added_axes} of size {size}")
            if e < 0:
                e += size
            e = _clamp(e, 0, size) if st > 0 else _clamp(e, -1, size - 1)
            if (p.end_mask >> j) & 1:
                e = size if st > 0 else -1
        starts.append(s), stops.append(e), steps.append(st), shrink.append(is_shrink)
    y = x.reshape(shape)
    for axis in range(dims):
        idx = np.arange(starts[axis], stops[axis], steps[axis])
        y = np.take(y, idx, axis=axis)
    keep = [d for d in range(dims) if not shrink[d]]
    return [_copy(y.reshape([y.shape[d] for d in keep]))]
