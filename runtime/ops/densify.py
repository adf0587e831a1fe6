"""DENSIFY: a constant sparse tensor to its dense form; and TFLite's sparsity format.

LiteRT ``tflite/kernels/densify.cc`` (Prepare: one input, one output, the input a
constant, not a string, with sparsity parameters; Eval: float32, float16 and int8,
computed once), ``tflite/kernels/internal/reference/densify.h`` and
``tflite/kernels/internal/utils/sparsity_format_converter.cc``
(``FormatConverter::SparseToDense``/``Populate``). The checks on the metadata are
those of ``tflite/core/tools/verifier.cc`` (``VerifyAndCountSparseElements``) and
``InterpreterBuilder::ParseSparsity``.

The format (``SparsityParameters`` in schema.fbs). A tensor of rank n, optionally
cut into blocks of rank k, is traversed as a tree of n + k levels:

* ``traversal_order``: which expanded dimension each level walks; the first n
  entries are a permutation of ``0..n-1``, the last k of ``n..n+k-1`` (block dims);
* ``block_map[i]``: the original dimension that block dimension ``n + i`` splits;
  a block dimension of size ``b`` divides it into ``size / b`` blocks;
* ``dim_metadata[level]``: ``DENSE`` with ``dense_size`` (every index is stored
  implicitly) or ``SPARSE_CSR`` with ``array_segments`` (for each stored element of
  the levels above, the start of its children in ``array_indices``; non-decreasing,
  one more than the number of parents, starting at 0) and ``array_indices`` (the
  coordinates of the stored children, each below the dimension's size); the index
  vectors are Int32Vector, Uint16Vector or Uint8Vector;
* the buffer holds the stored values in traversal order.

A model file can only hold the stored values; :class:`SparseModel` exposes them as
a 1-D array (``Model.tensor_data`` decodes constants with the dense shape).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quantcore.errors import ModelFormatError
from quantcore.schema.model import Model, decode_tensor_bytes, packed_nbytes, numpy_dtype

from ._common import FLOAT16, FLOAT32, INT8, OpContext, check_output_size

NUMERICS = ("reference", "optimized", "xnnpack")

DENSE, SPARSE_CSR = 0, 1
# SparseIndexVector union members
INDEX_VECTORS = {1: ("Int32Vector", np.int32), 2: ("Uint16Vector", np.uint16),
                 3: ("Uint8Vector", np.uint8)}


@dataclass(frozen=True)
class Sparsity:
    """Validated sparsity parameters of one tensor (field names as in schema.fbs)."""
    shape: tuple[int, ...]
    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    format: tuple[int, ...]
    dense_size: tuple[int, ...]
    array_segments: tuple[np.ndarray | None, ...]
    array_indices: tuple[np.ndarray | None, ...]
    num_stored: int

    @property
    def block_size(self) -> tuple[int, ...]:
        """``FormatConverter``'s block sizes: ``dense_size[traversal_order[n + i]]``."""
        n = len(self.shape)
        return tuple(self.dense_size[self.traversal_order[n + i]] for i in range(len(self.block_map)))


def _index_vector(md: dict, key: str, where: str) -> np.ndarray:
    union = md.get(key)
    kind = int(md.get(f"{key}_type", 0) or 0)
    if kind not in INDEX_VECTORS or not isinstance(union, dict) or union.get("values") is None:
        raise ModelFormatError(f"sparse dimension needs {key} as an Int32Vector, Uint16Vector or "
                               f"Uint8Vector (type {kind})", f"{where}.{key}")
    vals = union["values"]
    dtype = INDEX_VECTORS[kind][1]
    if isinstance(vals, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(vals, np.dtype(dtype).newbyteorder("<"))
    else:
        arr = np.asarray(vals)
    return arr.astype(np.int64).reshape(-1)


def parse_sparsity(sparsity: dict | None, shape, path: str = "") -> Sparsity:
    """Check a tensor's ``sparsity`` table as LiteRT's verifier does and return it parsed.

    Raises ModelFormatError (at ``path + ".sparsity"``) for: a missing traversal order
    or dimension metadata, a traversal order that is not a permutation of the
    dimensions then the block dimensions, a block map of the wrong length or out of
    range, non-positive or sparse block dimensions, a dense size that differs from
    the (blocked) dimension, an unknown dimension format, segments that are not
    non-decreasing from 0 with one entry per parent plus one, indices out of range or
    not as many as the last segment says, and index vectors of an unknown type.
    """
    where = f"{path}.sparsity"
    if not isinstance(sparsity, dict):
        raise ModelFormatError("tensor has no sparsity parameters", where)
    order = sparsity.get("traversal_order")
    dims = sparsity.get("dim_metadata")
    if order is None or dims is None:
        raise ModelFormatError("traversal_order and dim_metadata are required", where)
    order = [int(v) for v in np.asarray(order).reshape(-1)]
    shape = tuple(int(d) for d in shape)
    rank, total = len(shape), len(order)
    if total < rank or len(dims) != total:
        raise ModelFormatError(f"{total} traversal dimensions and {len(dims)} dim_metadata for a "
                               f"tensor of rank {rank}", where)
    block_rank = total - rank
    bm = sparsity.get("block_map")
    block_map = [] if bm is None else [int(v) for v in np.asarray(bm).reshape(-1)]
    if len(block_map) != block_rank and not (block_rank == 0 and bm is None):
        raise ModelFormatError(f"block_map has {len(block_map)} entries, {block_rank} block "
                               "dimensions need as many", f"{where}.block_map")
    if sorted(order[:rank]) != list(range(rank)) or sorted(order[rank:]) != list(range(rank, total)):
        raise ModelFormatError(f"traversal_order {order} is not a permutation of the dimensions "
                               f"0..{rank - 1} followed by the block dimensions", f"{where}.traversal_order")
    formats, dense_sizes = [], []
    for i, md in enumerate(dims):
        if not isinstance(md, dict):
            raise ModelFormatError("missing dimension metadata", f"{where}.dim_metadata[{i}]")
        fmt = int(md.get("format", 0) or 0)
        if fmt not in (DENSE, SPARSE_CSR):
            raise ModelFormatError(f"unknown dimension format {fmt}", f"{where}.dim_metadata[{i}].format")
        formats.append(fmt)
        dense_sizes.append(int(md.get("dense_size", 0) or 0) if fmt == DENSE else 0)
    expanded = list(shape) + [0] * block_rank
    for i in range(block_rank):
        level = rank + i
        size = int(dims[level].get("dense_size", 0) or 0)
        if formats[level] != DENSE or size <= 0:
            raise ModelFormatError(f"block dimension {i} must be DENSE with a positive dense_size "
                                   f"(format {formats[level]}, dense_size {size})",
                                   f"{where}.dim_metadata[{level}]")
        if not 0 <= block_map[i] < rank:
            raise ModelFormatError(f"block_map[{i}] = {block_map[i]} is not a dimension of the "
                                   f"rank-{rank} tensor", f"{where}.block_map")
        expanded[order[level]] = size
        expanded[block_map[i]] //= size
    if block_rank and block_map != sorted(set(block_map)):
        raise ModelFormatError(f"block_map {block_map} must be strictly increasing (LiteRT's "
                               "FormatConverter pairs blocks with dimensions in order)",
                               f"{where}.block_map")
    for i in range(block_rank):
        level = order.index(rank + i)
        if dense_sizes[order[rank + i]] != dense_sizes[level]:
            raise ModelFormatError(f"the block dimensions' traversal order {order[rank:]} makes "
                                   "LiteRT's FormatConverter read the wrong block sizes",
                                   f"{where}.traversal_order")
    count = 1
    segments: list[np.ndarray | None] = []
    indices: list[np.ndarray | None] = []
    for i, md in enumerate(dims):
        dpath = f"{where}.dim_metadata[{i}]"
        dim = expanded[order[i]]
        if formats[i] == DENSE:
            if dense_sizes[i] != dim:
                raise ModelFormatError(f"dense_size {dense_sizes[i]} differs from the size {dim} of "
                                       f"dimension {order[i]}", dpath)
            count *= dim
            segments.append(None)
            indices.append(None)
            continue
        seg = _index_vector(md, "array_segments", dpath)
        idx = _index_vector(md, "array_indices", dpath)
        if len(seg) != count + 1 or (len(seg) and seg[0] != 0) or np.any(np.diff(seg) < 0):
            raise ModelFormatError(f"array_segments must hold {count + 1} non-decreasing values "
                                   f"from 0 (one per stored parent, plus one), has {len(seg)}",
                                   f"{dpath}.array_segments")
        if len(idx) != int(seg[-1]):
            raise ModelFormatError(f"array_indices has {len(idx)} values, the last segment says "
                                   f"{int(seg[-1])}", f"{dpath}.array_indices")
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= dim):
            raise ModelFormatError(f"array_indices must lie in [0, {dim}) (dimension {order[i]})",
                                   f"{dpath}.array_indices")
        segments.append(seg)
        indices.append(idx)
        count = len(idx)
    return Sparsity(shape=shape, traversal_order=tuple(order), block_map=tuple(block_map),
                    format=tuple(formats), dense_size=tuple(dense_sizes),
                    array_segments=tuple(segments), array_indices=tuple(indices), num_stored=count)


def dense_positions(sp: Sparsity) -> np.ndarray:
    """Flat index in the dense tensor of every stored value, in storage order.

    ``FormatConverter::Populate`` walked breadth-first with arrays: a DENSE level
    repeats each parent for ``dense_size`` children (child position ``parent *
    size + i``), a SPARSE_CSR level gives parent ``p`` the children
    ``segments[p] .. segments[p + 1]`` with coordinates from ``indices``; the leaf
    coordinates are mapped back through the traversal order, and block coordinates
    combined as ``coord * block_size + inner``.
    """
    n = len(sp.shape)
    total = len(sp.traversal_order)
    pos = np.zeros(1, np.int64)            # position of each path in its level
    coords: list[np.ndarray] = []          # per level, the coordinate of each path
    for level in range(total):
        if sp.format[level] == DENSE:
            size = sp.dense_size[level]
            reps = np.repeat(pos, size)
            inner = np.tile(np.arange(size, dtype=np.int64), len(pos))
            coords = [np.repeat(c, size) for c in coords]
            coords.append(inner)
            pos = reps * size + inner
        else:
            seg, idx = sp.array_segments[level], sp.array_indices[level]
            starts, ends = seg[pos], seg[pos + 1]
            counts = ends - starts
            parent = np.repeat(np.arange(len(pos)), counts)
            first = np.cumsum(counts) - counts
            offs = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
            child = np.repeat(starts, counts) + offs
            coords = [c[parent] for c in coords]
            coords.append(idx[child])
            pos = child
    orig = [np.zeros(len(pos), np.int64) for _ in range(n)]
    for i in range(n):
        orig[sp.traversal_order[i]] = coords[i]
    bsize = sp.block_size
    for i in range(n, total):
        b = sp.traversal_order[i] - n
        d = sp.block_map[b]
        orig[d] = orig[d] * bsize[b] + coords[i]
    flat = np.zeros(len(pos), np.int64)
    stride = 1
    for d in range(n - 1, -1, -1):
        flat += orig[d] * stride
        stride *= sp.shape[d]
    return flat


def sparse_to_dense(sp: Sparsity, values: np.ndarray) -> np.ndarray:
    """The dense tensor (zeros elsewhere); later stored values win, as in LiteRT."""
    values = np.asarray(values).reshape(-1)
    if values.size != sp.num_stored:
        raise ModelFormatError(f"{values.size} stored values, the sparsity parameters describe "
                               f"{sp.num_stored}")
    out = np.zeros(int(np.prod(sp.shape)), values.dtype)
    out[dense_positions(sp)] = values
    return out.reshape(sp.shape)


class SparseModel(Model):
    """A :class:`Model` whose ``tensor_data`` returns the stored values (1-D) of a
    sparse constant instead of decoding them with the dense shape.

    ``SparseModel.of(model)`` converts in place. Pass the result to
    ``Interpreter(model=...)`` to run models with sparse constants (DENSIFY, sparse
    FULLY_CONNECTED weights). (To move into ``schema/model.py``.)
    """

    @classmethod
    def of(cls, model: Model) -> "SparseModel":
        model.__class__ = cls
        return model  # type: ignore[return-value]

    def tensor_data(self, subgraph: int, tensor: int) -> np.ndarray | None:
        t = self.subgraphs[subgraph].tensors[tensor]
        if t.sparsity is None:
            return super().tensor_data(subgraph, tensor)
        buf = self.buffers[t.buffer] if t.buffer < len(self.buffers) else None
        if buf is None or buf.data is None or t.buffer == 0:
            return None  # (an empty data vector is a constant with no stored values)
        item = packed_nbytes(t.type, 1) or 1
        return decode_tensor_bytes(buf.data, t.type, [len(buf.data) // item],
                                   f"subgraphs[{subgraph}].tensors[{tensor}]")


def tensor_sparsity(ctx: OpContext, index: int) -> dict | None:
    return ctx.model.subgraphs[ctx.subgraph].tensors[index].sparsity


def densified_constant(ctx: OpContext, t) -> np.ndarray:
    """The dense value of constant sparse tensor ``t`` (TensorInfo) of this operator."""
    where = f"subgraphs[{ctx.subgraph}].tensors[{t.index}]"
    sp = parse_sparsity(tensor_sparsity(ctx, t.index), t.shape, where)
    values = np.asarray(t.data).reshape(-1)
    if values.size != sp.num_stored:
        raise ModelFormatError(f"buffer holds {values.size} values, the sparsity parameters "
                               f"describe {sp.num_stored} (a sparse constant needs "
                               "quantcore.runtime.ops.densify.SparseModel)", where)
    # The reader's budget counts the stored values only: bound the dense tensor too.
    check_output_size(where, "DENSIFY", sp.shape, numpy_dtype(t.type))
    return sparse_to_dense(sp, values).astype(numpy_dtype(t.type))


@dataclass(frozen=True)
class DensifyParams:
    dense: np.ndarray


def prepare(ctx: OpContext) -> DensifyParams:
    ctx.check_io_count(1, 1)
    x = ctx.input(0)
    out = ctx.output(0)
    ctx.check(x.is_constant, f"input tensor {x.index} must be a constant (densify.cc)", ".inputs[0]")
    ctx.check(tensor_sparsity(ctx, x.index) is not None,
              f"input tensor {x.index} has no sparsity parameters (densify.cc)", ".inputs[0]")
    ctx.check_type(x, (FLOAT32, FLOAT16, INT8), "input")
    ctx.check(out.type == x.type, f"output type {out.type_name} differs from the input type "
              f"{x.type_name}", ".outputs[0]")
    return DensifyParams(dense=densified_constant(ctx, x))


def eval(p: DensifyParams, x: np.ndarray) -> list[np.ndarray]:  # noqa: A001
    return [p.dense.copy()]
