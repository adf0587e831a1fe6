"""STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, UNPACK, GATHER against LiteRT BUILTIN_REF."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, run_ours
from quantcore.errors import InputError
from quantcore.oracle import LiteRTOracle
from quantcore.schema.builder import ModelBuilder

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)
seeds = st.integers(0, 2**31)
KINDS = ["float32", "int8", "int16", "int32"]


def _q(kind):
    return dict(scale=0.1, zero_point=0) if kind in ("int8", "int16") else {}


def _strided_model(shape, kind, begin, end, strides, masks, out_shape):
    b = ModelBuilder()
    dtype = np.dtype(kind)
    x = b.add_input("x", shape, dtype, **_q(kind))
    tb = b.add_constant("begin", np.array(begin, np.int32))
    te = b.add_constant("end", np.array(end, np.int32))
    ts = b.add_constant("strides", np.array(strides, np.int32))
    y = b.add_tensor("y", out_shape, dtype, **_q(kind))
    b.add_operator("STRIDED_SLICE", [x, tb, te, ts], [y], **masks)
    b.mark_outputs(y)
    return b.to_bytes()


@examples(150)
@given(shapes, seeds, st.sampled_from(KINDS))
def test_strided_slice_vs_litert_ref(oracle, shape, seed, kind):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, len(shape) + 1))
    begin = rng.integers(-6, 6, n).tolist()
    end = rng.integers(-6, 7, n).tolist()
    strides = [int(s) for s in rng.choice([-3, -2, -1, 1, 2, 3], n)]
    masks = dict(begin_mask=int(rng.integers(0, 2 ** n)), end_mask=int(rng.integers(0, 2 ** n)),
                 shrink_axis_mask=int(rng.integers(0, 2 ** n)) if rng.integers(0, 3) == 0 else 0,
                 ellipsis_mask=0, new_axis_mask=0)
    if rng.integers(0, 4) == 0:
        masks["offset"] = True
        begin = [abs(v) % 3 for v in begin]
        end = [abs(v) % 3 for v in end]
        strides = [1] * n
    # Shrunk axes must index a valid element for LiteRT too.
    for j in range(n):
        if (masks["shrink_axis_mask"] >> j) & 1:
            begin[j] = int(rng.integers(-shape[j], shape[j]))
            masks["begin_mask"] &= ~(1 << j)
    x = random_input(rng, shape, np.dtype(kind))
    # Use our result's shape as the declared output shape; LiteRT recomputes it anyway.
    try:
        out_shape = run_ours(_strided_model(shape, kind, begin, end, strides, masks, [1]), [x]).get_tensor(4).shape
    except InputError:
        assume(False)
    model = _strided_model(shape, kind, begin, end, strides, masks, list(out_shape))
    assume(0 not in out_shape)
    assert_matches_litert(oracle, model, [x])


@examples(100)
@given(shapes, seeds, st.sampled_from(KINDS))
def test_slice_split_unpack_vs_litert_ref(oracle, shape, seed, kind):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(kind)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - bg + 1)) if rng.integers(0, 3) else -1 for d, bg in zip(shape, begin)]
    out_shape = [d - bg if s == -1 else s for d, bg, s in zip(shape, begin, size)]
    b = ModelBuilder()
    x = b.add_input("x", shape, dtype, **_q(kind))
    sl = b.add_tensor("sl", out_shape, dtype, **_q(kind))
    b.add_operator("SLICE", [x, b.add_constant("begin", np.array(begin, np.int32)),
                             b.add_constant("size", np.array(size, np.int32))], [sl])
    axis = int(rng.integers(0, len(shape)))
    outs = []
    parts = out_shape[axis]
    ax = b.add_constant("axis", np.array([axis], np.int32))
    for i in range(parts):
        sh = list(out_shape)
        sh[axis] = 1
        outs.append(b.add_tensor(f"s{i}", sh, dtype, **_q(kind)))
    b.add_operator("SPLIT", [ax, sl], outs, num_splits=parts)
    ups = []
    for i in range(parts):
        sh = list(out_shape)
        del sh[axis]
        ups.append(b.add_tensor(f"u{i}", sh, dtype, **_q(kind)))
    b.add_operator("UNPACK", [sl], ups, num=parts, axis=axis)
    sizes = np.array([parts - 1, 1] if parts > 1 else [-1], np.int32)
    if parts > 1 and rng.integers(0, 2):
        sizes = np.array([-1, 1], np.int32)
    vs = []
    for i, s in enumerate(sizes):
        sh = list(out_shape)
        sh[axis] = int(s) if s != -1 else parts - int(sizes.sum() + 1)
        vs.append(b.add_tensor(f"v{i}", sh, dtype, **_q(kind)))
    b.add_operator("SPLIT_V", [sl, b.add_constant("sizes", sizes), ax], vs, num_splits=len(sizes))
    b.mark_outputs(*outs, *ups, *vs)
    assert_matches_litert(oracle, b.to_bytes(), [random_input(rng, shape, dtype)])


@examples(100)
@given(shapes, st.lists(st.integers(1, 3), min_size=0, max_size=2), seeds, st.sampled_from(KINDS),
       st.sampled_from(["int32", "int64"]))
def test_gather_vs_litert_ref(oracle, shape, ishape, seed, kind, itype):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(kind)
    axis = int(rng.integers(0, len(shape)))
    bd = int(rng.integers(0, min(axis, len(ishape)) + 1))
    ishape = list(shape[:bd]) + list(ishape[bd:]) if bd else list(ishape)
    assume(all(shape[d] == ishape[d] for d in range(bd)))
    idx = rng.integers(0, shape[axis], ishape).astype(itype)
    x = random_input(rng, shape, dtype)
    b = ModelBuilder()
    xt = b.add_input("x", shape, dtype, **_q(kind))
    it = b.add_constant("idx", idx)
    from quantcore.runtime.ops.gather import eval as gather_eval, GatherParams
    out = gather_eval(GatherParams("", axis, bd), x, idx)[0]
    y = b.add_tensor("y", out.shape, dtype, **_q(kind))
    b.add_operator("GATHER", [xt, it], [y], axis=axis, batch_dims=bd)
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [x])


def test_gather_out_of_range_index_raises_input_error():
    b = ModelBuilder()
    x = b.add_input("x", [3], np.float32)
    i = b.add_input("i", [1], np.int32)
    y = b.add_tensor("y", [1], np.float32)
    b.add_operator("GATHER", [x, i], [y], axis=0)
    b.mark_outputs(y)
    with pytest.raises(InputError, match="out of bounds"):
        run_ours(b.to_bytes(), [np.zeros(3, np.float32), np.array([3], np.int32)])
    with LiteRTOracle() as o:
        assert not o.run(b.to_bytes(), [np.zeros(3, np.float32), np.array([3], np.int32)]).ok
