"""DENSIFY and TFLite's sparsity format against LiteRT.

Random dense tensors (rank 1-4, float32 / float16 / int8, 0-95% zeros) are encoded
by an independent tree-walking encoder with random traversal orders, DENSE or
SPARSE_CSR levels, block dimensions and Int32/Uint16/Uint8 index vectors; a
single-op DENSIFY model must give LiteRT's output bit for bit. Malformed metadata
raises ModelFormatError (LiteRT refuses the same files).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import examples
from quantcore.compress import dense_to_sparse, interpreter
from quantcore.errors import ModelFormatError, UnsupportedOpError
from quantcore.runtime.ops.densify import parse_sparsity, sparse_to_dense
from quantcore.schema import read_model
from quantcore.schema.builder import ModelBuilder

DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


def encode(dense: np.ndarray, order: list[int], formats: list[int], block_map: list[int],
           block_sizes: list[int], index_types: list[tuple[int, int]]) -> tuple[dict, np.ndarray]:
    """Reference encoder: walk the expanded tensor level by level in traversal order;
    a SPARSE_CSR level keeps the children whose subtree has a non-zero value, a DENSE
    level keeps all; the stored values are the leaves reached, in order."""
    n = dense.ndim
    shape = list(dense.shape)
    blocked = list(shape)
    for b, d in enumerate(block_map):
        blocked[d] //= block_sizes[b]
    expanded = blocked + list(block_sizes)

    def orig_index(coord):  # coord over expanded dims (0..n-1 blocked, n.. in-block)
        idx = list(coord[:n])
        for b, d in enumerate(block_map):
            idx[d] = idx[d] * block_sizes[b] + coord[n + b]
        return tuple(idx)

    total = len(order)

    def subtree_nonzero(level, coord):
        free = [order[k] for k in range(level, total)]
        for vals in itertools.product(*[range(expanded[d]) for d in free]):
            c = dict(coord)
            c.update(zip(free, vals))
            if dense[orig_index([c[d] for d in range(total)])] != 0:
                return True
        return False

    segments = [[0] for _ in range(total)]
    indices = [[] for _ in range(total)]
    values = []

    def walk(level, coord):
        if level == total:
            values.append(dense[orig_index([coord[d] for d in range(total)])])
            return
        d = order[level]
        for i in range(expanded[d]):
            c = dict(coord)
            c[d] = i
            if formats[level] == 1:
                if not subtree_nonzero(level + 1, c):
                    continue
                indices[level].append(i)
            walk(level + 1, c)
        if formats[level] == 1:
            segments[level].append(len(indices[level]))

    walk(0, {})
    dims = []
    for level in range(total):
        if formats[level] == 0:
            dims.append({"format": 0, "dense_size": expanded[order[level]], "array_segments_type": 0,
                         "array_segments": None, "array_indices_type": 0, "array_indices": None})
        else:
            (st_, sdt), (it_, idt) = (_fit(index_types[level][0], segments[level]),
                                      _fit(index_types[level][1], indices[level]))
            dims.append({"format": 1, "dense_size": 0,
                         "array_segments_type": st_, "array_segments": {"values": np.array(segments[level], sdt)},
                         "array_indices_type": it_, "array_indices": {"values": np.array(indices[level], idt)}})
    sparsity = {"traversal_order": np.array(order, np.int32),
                "block_map": np.array(block_map, np.int32) if block_map else None, "dim_metadata": dims}
    return sparsity, np.array(values, dense.dtype)


_WIDTHS = [(3, np.uint8, 255), (2, np.uint16, 65535), (1, np.int32, 2**31 - 1)]


def _fit(kind, vals):
    """The requested index vector type, or the next wider one that holds ``vals``."""
    start = [w[0] for w in _WIDTHS].index(kind[0])
    top = max(vals) if len(vals) else 0
    for k, dt, mx in _WIDTHS[start:]:
        if top <= mx:
            return k, dt
    raise AssertionError(top)


def densify_model(sparsity: dict, values: np.ndarray, shape, dtype, quantized: bool = False,
                  out_dtype=None) -> bytes:
    b = ModelBuilder()
    q = dict(scale=0.05, zero_point=0) if quantized else {}
    buf = b.add_buffer(np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes())
    w = b.add_tensor("w_sparse", shape, dtype, buffer=buf, **q)
    b.model.subgraphs[0].tensors[w].sparsity = sparsity
    y = b.add_tensor("w_dense", shape, out_dtype or dtype, **q)
    b.add_operator("DENSIFY", [w], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def run_quantcore(model: bytes) -> np.ndarray:
    it = interpreter(model, fold_densify=False)
    it.allocate_tensors()
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def random_case(rng, dtype):
    n = int(rng.integers(1, 5))
    nblock = int(rng.integers(0, min(n, 2) + 1))
    block_map = sorted(rng.choice(n, nblock, replace=False).tolist())
    block_sizes = [int(rng.choice([2, 3, 4])) for _ in block_map]
    # LiteRT's verifier divides dimension block_map[i] by the size of *level* n + i, so
    # a permuted block traversal is only consistent with equal block sizes
    permute_blocks = nblock == 2 and bool(rng.integers(0, 2))
    if permute_blocks:
        block_sizes = [block_sizes[0]] * 2
    shape = []
    for d in range(n):
        s = int(rng.integers(1, 5))
        if d in block_map:
            s *= block_sizes[block_map.index(d)]
        shape.append(s)
    density = rng.uniform(0.05, 1.0)
    if dtype == np.int8:
        dense = rng.integers(-128, 128, shape).astype(np.int8)
    else:
        dense = rng.standard_normal(shape).astype(dtype)
    dense[rng.random(shape) > density] = 0
    order = rng.permutation(n).tolist()
    if permute_blocks:
        order += [n + 1, n]
    else:
        order += [n + i for i in range(nblock)]
    formats = [int(rng.integers(0, 2)) for _ in range(n)] + [0] * nblock
    kinds = [(1, np.int32), (2, np.uint16), (3, np.uint8)]
    index_types = [(kinds[int(rng.integers(0, 3))], kinds[int(rng.integers(0, 3))])
                   for _ in range(n + nblock)]
    # small index vectors only fit uint8/uint16 when the values do
    sparsity, values = encode(dense, order, formats, block_map, block_sizes, index_types)
    return dense, sparsity, values


@pytest.mark.parametrize("kind", ["float32", "int8", "float16"])
@given(seed=st.integers(0, 2**31))
@examples(60)
def test_densify_vs_litert_ref(oracle, kind, seed):
    rng = np.random.default_rng(seed)
    dtype = DTYPES[kind]
    dense, sparsity, values = random_case(rng, dtype)
    model = densify_model(sparsity, values, dense.shape, dtype, quantized=kind == "int8")
    ours = run_quantcore(model)
    np.testing.assert_array_equal(ours.view(np.uint8), dense.view(np.uint8))
    theirs = oracle.run(model, [], "reference")
    assert theirs.ok, theirs.error
    np.testing.assert_array_equal(ours.view(np.uint8), theirs.outputs[0].view(np.uint8))


@given(seed=st.integers(0, 2**31))
@examples(30)
def test_densify_converter_layout_vs_litert_ref(oracle, seed):
    """quantcore's own encoder (the converter's layout: last dimension CSR, 1xc blocks)."""
    rng = np.random.default_rng(seed)
    rows, c = int(rng.integers(1, 9)), int(rng.choice([1, 2, 4]))
    dense = rng.standard_normal((rows, c * int(rng.integers(1, 9)))).astype(np.float32)
    dense[rng.random(dense.shape) < rng.uniform(0, 1)] = 0
    sparsity, values = dense_to_sparse(dense, [1, c])
    model = densify_model(sparsity, values, dense.shape, np.float32)
    np.testing.assert_array_equal(run_quantcore(model), dense)
    theirs = oracle.run(model, [], "reference")
    assert theirs.ok, theirs.error
    np.testing.assert_array_equal(run_quantcore(model).view(np.int32), theirs.outputs[0].view(np.int32))


def test_densify_on_the_optimized_path(oracle):
    """(LiteRT's XNNPACK delegate claims a lone DENSIFY and then fails to set up; it
    densifies weights itself when DENSIFY feeds an operator it takes.)"""
    rng = np.random.default_rng(3)
    dense, sparsity, values = random_case(rng, np.float32)
    model = densify_model(sparsity, values, dense.shape, np.float32)
    for numerics in ("reference", "optimized"):
        theirs = oracle.run(model, [], numerics)
        assert theirs.ok, theirs.error
        np.testing.assert_array_equal(run_quantcore(model), theirs.outputs[0])


def _csr_4x4():
    dense = np.array([[1, 0, 0, 2], [0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 4, 5]], np.float32)
    sparsity, values = encode(dense, [0, 1], [0, 1], [], [], [None, ((1, np.int32), (3, np.uint8))])
    return dense, sparsity, values


def _mutations():
    """(description, mutate(sparsity) -> sparsity, values change)"""
    def seg(vals):
        def f(sp):
            sp["dim_metadata"][1]["array_segments"] = {"values": np.array(vals, np.int32)}
            return sp
        return f

    def idx(vals):
        def f(sp):
            sp["dim_metadata"][1]["array_indices"] = {"values": np.array(vals, np.uint8)}
            return sp
        return f

    def key(k, v, level=None):
        def f(sp):
            if level is None:
                sp[k] = v
            else:
                sp["dim_metadata"][level][k] = v
            return sp
        return f

    return [
        ("segments decreasing", seg([0, 2, 1, 3, 5])),
        ("segments too short", seg([0, 2, 2, 5])),
        ("segments not from 0", seg([1, 2, 2, 3, 5])),
        ("index out of range", idx([0, 4, 1, 2, 3])),
        ("too few indices", idx([0, 3, 1, 2])),
        ("dense size wrong", key("dense_size", 3, 0)),
        ("unknown format", key("format", 2, 0)),
        ("index vector type missing", key("array_indices_type", 0, 1)),
        ("traversal not a permutation", key("traversal_order", np.array([0, 0], np.int32))),
        ("traversal too short", key("traversal_order", np.array([0], np.int32))),
        ("block map without blocks", key("block_map", np.array([0], np.int32))),
    ]


@pytest.mark.parametrize("name,mutate", _mutations(), ids=[m[0] for m in _mutations()])
def test_densify_bad_metadata_raises(name, mutate):
    dense, sparsity, values = _csr_4x4()
    bad = mutate(sparsity)
    with pytest.raises(ModelFormatError):
        parse_sparsity(bad, dense.shape, "t")
    model = densify_model(bad, values, dense.shape, np.float32)
    with pytest.raises(ModelFormatError):
        run_quantcore(model)


def test_densify_bad_block_metadata_raises():
    dense = np.arange(16, dtype=np.float32).reshape(4, 4)
    sparsity, values = dense_to_sparse(dense, [1, 2])
    sparsity["dim_metadata"][2]["dense_size"] = 0
    with pytest.raises(ModelFormatError, match="block"):
        parse_sparsity(sparsity, dense.shape, "t")
    sparsity, _ = dense_to_sparse(dense, [1, 2])
    sparsity["block_map"] = np.array([5], np.int32)
    with pytest.raises(ModelFormatError, match="block_map"):
        parse_sparsity(sparsity, dense.shape, "t")
    sparsity, _ = dense_to_sparse(dense, [1, 2])
    sparsity["dim_metadata"][2]["format"] = 1
    with pytest.raises(ModelFormatError):
        parse_sparsity(sparsity, dense.shape, "t")


def test_densify_csr_example_and_litert_on_bad_segments(oracle):
    """LiteRT's Python interpreter does not run the flatbuffer verifier: with
    decreasing segments it runs DENSIFY and misplaces values (quantcore refuses)."""
    dense, sparsity, values = _csr_4x4()
    np.testing.assert_array_equal(sparse_to_dense(parse_sparsity(sparsity, dense.shape), values), dense)
    bad = _mutations()[0][1](_csr_4x4()[1])
    theirs = oracle.run(densify_model(bad, values, dense.shape, np.float32), [], "reference")
    assert not theirs.ok or not np.array_equal(theirs.outputs[0], dense)


def test_densify_int32_unsupported(oracle):
    dense = np.array([[1, 0], [0, 2]], np.int32)
    sparsity, values = dense_to_sparse(dense, [1, 1])
    model = densify_model(sparsity, values, dense.shape, np.int32)
    assert not oracle.run(model, [], "reference").ok
    with pytest.raises(UnsupportedOpError):
        run_quantcore(model)


def test_densify_non_constant_input_raises():
    b = ModelBuilder()
    x = b.add_input("x", [2, 2], np.float32)
    b.model.subgraphs[0].tensors[x].sparsity = dense_to_sparse(np.eye(2, dtype=np.float32), [1, 1])[0]
    y = b.add_tensor("y", [2, 2], np.float32)
    b.add_operator("DENSIFY", [x], [y])
    b.mark_outputs(y)
    it = interpreter(b.to_bytes(), fold_densify=False)
    with pytest.raises(ModelFormatError, match="constant"):
        it.allocate_tensors()


def test_sparse_model_reads_stored_values():
    dense, sparsity, values = _csr_4x4()
    m = read_model(densify_model(sparsity, values, dense.shape, np.float32), validate=True)
    from quantcore.runtime.ops.densify import SparseModel
    np.testing.assert_array_equal(SparseModel.of(m).tensor_data(0, 0), values)
