"""Data-movement operators are identical on LiteRT's three paths (XNNPACK copies the same
bytes; its PAD fills with xnn_qs8_quantize(0) = the zero point; a uint8 CONCATENATION
with differing parameters stays in LiteRT's rescaling kernel). Checked against LiteRT's
"optimized" and "xnnpack" paths on quantized tensors."""
from __future__ import annotations

import numpy as np
import pytest

from _paths_cases import check_paths, ints
from quantcore.schema.builder import ModelBuilder

Q = dict(scale=0.05, zero_point=7)


def _model(build) -> bytes:
    b = ModelBuilder()
    outs = build(b)
    b.mark_outputs(*outs)
    return b.to_bytes()


def _concat(dtype, rescale):
    def build(b):
        q2 = dict(scale=0.08, zero_point=20) if rescale else Q
        x1 = b.add_input("x1", [2, 3, 5], dtype, **Q)
        x2 = b.add_input("x2", [2, 4, 5], dtype, **q2)
        y = b.add_tensor("y", [2, 7, 5], dtype, **Q)
        b.add_operator("CONCATENATION", [x1, x2], [y], axis=1)
        return [y]
    return build, [[2, 3, 5], [2, 4, 5]]


def _pad(dtype, v2):
    def build(b):
        x = b.add_input("x", [1, 3, 4, 5], dtype, **Q)
        p = b.add_constant("p", np.array([[0, 0], [1, 2], [2, 0], [0, 1]], np.int32))
        y = b.add_tensor("y", [1, 6, 6, 6], dtype, **Q)
        if v2:
            cv = b.add_constant("cv", np.array([3], dtype), **Q)
            b.add_operator("PADV2", [x, p, cv], [y])
        else:
            b.add_operator("PAD", [x, p], [y])
        return [y]
    return build, [[1, 3, 4, 5]]


def _transpose(dtype):
    def build(b):
        x = b.add_input("x", [2, 3, 4, 5], dtype, **Q)
        perm = b.add_constant("perm", np.array([0, 3, 1, 2], np.int32))
        y = b.add_tensor("y", [2, 5, 3, 4], dtype, **Q)
        b.add_operator("TRANSPOSE", [x, perm], [y])
        return [y]
    return build, [[2, 3, 4, 5]]


def _reshape_slice(dtype):
    def build(b):
        x = b.add_input("x", [2, 3, 4, 5], dtype, **Q)
        shape = b.add_constant("shape", np.array([6, 20], np.int32))
        r = b.add_tensor("r", [6, 20], dtype, **Q)
        b.add_operator("RESHAPE", [x, shape], [r], new_shape=[6, 20])
        s = b.add_tensor("s", [3, 7], dtype, **Q)
        b.add_operator("SLICE", [r, b.add_constant("begin", np.array([1, 4], np.int32)),
                                 b.add_constant("size", np.array([3, 7], np.int32))], [s])
        return [s]
    return build, [[2, 3, 4, 5]]


def _space_depth(dtype):
    def build(b):
        x = b.add_input("x", [1, 4, 6, 3], dtype, **Q)
        d = b.add_tensor("d", [1, 2, 3, 12], dtype, **Q)
        b.add_operator("SPACE_TO_DEPTH", [x], [d], block_size=2)
        s = b.add_tensor("s", [1, 4, 6, 3], dtype, **Q)
        b.add_operator("DEPTH_TO_SPACE", [d], [s], block_size=2)
        return [s]
    return build, [[1, 4, 6, 3]]


def _space_batch(dtype):
    def build(b):
        x = b.add_input("x", [1, 4, 5, 3], dtype, **Q)
        blk = b.add_constant("block", np.array([2, 2], np.int32))
        pads = b.add_constant("pads", np.array([[0, 0], [1, 0]], np.int32))
        y = b.add_tensor("y", [4, 2, 3, 3], dtype, **Q)
        b.add_operator("SPACE_TO_BATCH_ND", [x, blk, pads], [y])
        crops = b.add_constant("crops", np.array([[0, 0], [1, 0]], np.int32))
        z = b.add_tensor("z", [1, 4, 5, 3], dtype, **Q)
        b.add_operator("BATCH_TO_SPACE_ND", [y, blk, crops], [z])
        return [z]
    return build, [[1, 4, 5, 3]]


def _split_gather(dtype):
    def build(b):
        x = b.add_input("x", [4, 6], dtype, **Q)
        ax = b.add_constant("axis", np.array(1, np.int32))
        a = b.add_tensor("a", [4, 3], dtype, **Q)
        c = b.add_tensor("c", [4, 3], dtype, **Q)
        b.add_operator("SPLIT", [ax, x], [a, c], num_splits=2)
        idx = b.add_constant("idx", np.array([3, 0, 2], np.int32))
        g = b.add_tensor("g", [3, 3], dtype, **Q)
        b.add_operator("GATHER", [c, idx], [g], axis=0)
        return [a, g]
    return build, [[4, 6]]


def _mirror_pad(dtype):
    def build(b):
        x = b.add_input("x", [3, 4], dtype, **Q)
        p = b.add_constant("p", np.array([[1, 2], [2, 1]], np.int32))
        y = b.add_tensor("y", [6, 7], dtype, **Q)
        b.add_operator("MIRROR_PAD", [x, p], [y], mode="REFLECT")
        return [y]
    return build, [[3, 4]]


CASES = {
    "concat": lambda dt: _concat(dt, False), "concat_rescale_uint8": lambda dt: _concat(np.uint8, True),
    "pad": lambda dt: _pad(dt, False), "padv2": lambda dt: _pad(dt, True), "transpose": _transpose,
    "reshape_slice": _reshape_slice, "space_depth": _space_depth, "space_batch": _space_batch,
    "split_gather": _split_gather, "mirror_pad": _mirror_pad,
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_data_movement_identical_on_every_path_vs_litert(oracle, name, dtype):
    build, shapes = CASES[name](dtype)
    if name == "concat_rescale_uint8":
        dtype = np.uint8
    rng = np.random.default_rng(len(name))
    check_paths(oracle, _model(build), [ints(rng, s, dtype) for s in shapes])
