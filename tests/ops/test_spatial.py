"""Resize, space/batch/depth rearrangements, MIRROR_PAD, CAST, FILL, ZEROS_LIKE,
BROADCAST_TO against LiteRT BUILTIN_REF."""
from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from harness import assert_matches_litert, examples, random_input, run_ours
from quantcore.errors import InputError
from quantcore.schema.builder import ModelBuilder

seeds = st.integers(0, 2**31)
KINDS = ["float32", "int8", "uint8", "int16"]


def _q(kind, zp=0):
    return dict(scale=0.1, zero_point=0 if kind == "int16" else zp) if kind in ("int8", "uint8", "int16") else {}


def _single(op, x_shape, kind, consts, out_placeholder=(1,), **options):
    """Build a one-op model; the output shape comes from running quantcore first."""
    dtype = np.dtype(kind)

    def build(out_shape):
        b = ModelBuilder()
        x = b.add_input("x", x_shape, dtype, **_q(kind, 5))
        ins = [x] + [b.add_constant(f"c{i}", c) for i, c in enumerate(consts)]
        y = b.add_tensor("y", out_shape, dtype, **_q(kind, 5))
        b.add_operator(op, ins, [y], **options)
        b.mark_outputs(y)
        return b.to_bytes()
    return build


def _check(oracle, build, x):
    try:
        it = run_ours(build([1]), [x])
        out_shape = it.get_tensor(it.get_output_details()[0]["index"]).shape
    except InputError:
        assume(False)
    assert_matches_litert(oracle, build(list(out_shape)), [x])


@examples(120)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 12), st.integers(1, 12), seeds,
       st.sampled_from(KINDS), st.sampled_from(["none", "align", "half"]))
def test_resize_bilinear_vs_litert_ref(oracle, ih, iw, oh, ow, seed, kind, mode):
    rng = np.random.default_rng(seed)
    shape = [1, ih, iw, int(rng.integers(1, 4))]
    build = _single("RESIZE_BILINEAR", shape, kind, [np.array([oh, ow], np.int32)],
                    align_corners=mode == "align", half_pixel_centers=mode == "half")
    _check(oracle, build, random_input(rng, shape, np.dtype(kind)))


@examples(80)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 12), st.integers(1, 12), seeds,
       st.sampled_from(KINDS + ["int32"]), st.sampled_from(["none", "align", "half"]))
def test_resize_nearest_neighbor_vs_litert_ref(oracle, ih, iw, oh, ow, seed, kind, mode):
    rng = np.random.default_rng(seed)
    shape = [1, ih, iw, int(rng.integers(1, 4))]
    build = _single("RESIZE_NEAREST_NEIGHBOR", shape, kind, [np.array([oh, ow], np.int32)],
                    align_corners=mode == "align", half_pixel_centers=mode == "half")
    _check(oracle, build, random_input(rng, shape, np.dtype(kind)))


@examples(80)
@given(st.integers(1, 3), st.integers(1, 3), seeds, st.sampled_from(KINDS), st.booleans())
def test_space_batch_roundtrip_vs_litert_ref(oracle, bh, bw, seed, kind, three_d):
    rng = np.random.default_rng(seed)
    if three_d:
        pads = rng.integers(0, 3, (1, 2))
        w = int(rng.integers(1, 6))
        w += (-(w + pads.sum())) % bh
        shape, block = [int(rng.integers(1, 3)), w, 2], [bh]
    else:
        pads = rng.integers(0, 3, (2, 2))
        h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        h += (-(h + pads[0].sum())) % bh
        w += (-(w + pads[1].sum())) % bw
        shape, block = [int(rng.integers(1, 3)), h, w, 2], [bh, bw]
    x = random_input(rng, shape, np.dtype(kind))
    build = _single("SPACE_TO_BATCH_ND", shape, kind, [np.array(block, np.int32), pads.astype(np.int32)])
    _check(oracle, build, x)
    s2b = run_ours(build([1]), [x]).get_tensor(3)
    crops = pads.astype(np.int32)
    build2 = _single("BATCH_TO_SPACE_ND", list(s2b.shape), kind, [np.array(block, np.int32), crops])
    _check(oracle, build2, s2b)


@examples(60)
@given(st.integers(1, 3), seeds, st.sampled_from(["float32", "int8", "uint8", "int32"]))
def test_depth_space_vs_litert_ref(oracle, b, seed, kind):
    rng = np.random.default_rng(seed)
    shape = [1, b * int(rng.integers(1, 3)), b * int(rng.integers(1, 3)), b * b * int(rng.integers(1, 3))]
    x = random_input(rng, shape, np.dtype(kind))
    _check(oracle, _single("SPACE_TO_DEPTH", shape, kind, [], block_size=b), x)
    _check(oracle, _single("DEPTH_TO_SPACE", shape, kind, [], block_size=b), x)


@examples(60)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), seeds, st.sampled_from(KINDS + ["int32"]),
       st.sampled_from(["REFLECT", "SYMMETRIC"]))
def test_mirror_pad_vs_litert_ref(oracle, shape, seed, kind, mode):
    rng = np.random.default_rng(seed)
    lim = [d - 1 if mode == "REFLECT" else d for d in shape]
    pads = np.array([[rng.integers(0, m + 1), rng.integers(0, m + 1)] for m in lim], np.int32)
    x = random_input(rng, shape, np.dtype(kind))
    _check(oracle, _single("MIRROR_PAD", shape, kind, [pads], mode=mode), x)


CASTS = ["float32", "int32", "int64", "uint8", "int8", "int16", "bool"]


@examples(100)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), seeds, st.sampled_from(CASTS), st.sampled_from(CASTS))
def test_cast_vs_litert_ref(oracle, shape, seed, src, dst):
    rng = np.random.default_rng(seed)
    if src == "float32":
        x = (rng.normal(0, 1, shape) * 10.0 ** rng.integers(0, 12)).astype(np.float32)
    else:
        x = random_input(rng, shape, np.dtype(src))
    b = ModelBuilder()
    xt = b.add_input("x", shape, np.dtype(src))
    y = b.add_tensor("y", shape, np.dtype(dst))
    b.add_operator("CAST", [xt], [y])
    b.mark_outputs(y)
    assert_matches_litert(oracle, b.to_bytes(), [x])


@examples(40)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds, st.sampled_from(["float32", "int32", "int64"]))
def test_fill_zeros_like_broadcast_to_vs_litert_ref(oracle, shape, seed, kind):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(kind)
    b = ModelBuilder()
    v = b.add_input("v", [], dtype)
    dims = b.add_constant("dims", np.array(shape, np.int32))
    f = b.add_tensor("f", shape, dtype)
    b.add_operator("FILL", [dims, v], [f])
    z = b.add_tensor("z", shape, dtype)
    b.add_operator("ZEROS_LIKE", [f], [z])
    src_shape = [1 if rng.integers(0, 2) else d for d in shape]
    s = b.add_input("s", src_shape, dtype)
    bt = b.add_tensor("bt", shape, dtype)
    b.add_operator("BROADCAST_TO", [s, dims], [bt], version=2)
    b.mark_outputs(f, z, bt)
    assert_matches_litert(oracle, b.to_bytes(), [random_input(rng, [], dtype), random_input(rng, src_shape, dtype)])
