"""Weight compression: magnitude pruning, k-means weight clustering, TFLite's sparse
format, and compression statistics.

* :func:`prune` zeroes the smallest weights (or blocks of weights) of CONV_2D,
  DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV, float or quantized, and can
  store them in TFLite's sparse format the way the converter's
  ``Optimize.EXPERIMENTAL_SPARSITY`` does (``dense_to_sparse_pass.cc``).
* :func:`cluster` replaces each weight tensor's values by the nearest of at most
  ``clusters`` centroids (1-D k-means, k-means++ initialisation, fixed seed): float
  weights get float32 centroids, int8 weights centroids on the integer grid.
* :func:`compression_stats` reports per weight tensor the sparsity, the number of
  distinct values and their entropy, and the model's size raw and gzip-compressed
  (the quantity pruning and clustering reduce).

Every output is an ordinary .tflite model that LiteRT runs; quantcore's runtime is
bit-exact with it (tests/test_compress.py). Sparse constants are read with
:func:`load_model` (:class:`~quantcore.runtime.ops.densify.SparseModel`).
"""
from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from quantcore.errors import InputError
from quantcore.schema import read_model, write_model
from quantcore.schema.model import Buffer, BuiltinOperator, Model, Operator, OperatorCode, Tensor, TensorType

# operator -> (weight input index, output-channel axis of the weights)
WEIGHT_OPS: dict[str, tuple[int, int]] = {
    "CONV_2D": (1, 0),
    "DEPTHWISE_CONV_2D": (1, 3),
    "FULLY_CONNECTED": (1, 0),
    "TRANSPOSE_CONV": (1, 0),
}
FLOAT32 = int(TensorType.FLOAT32)
INT8 = int(TensorType.INT8)
UINT8 = int(TensorType.UINT8)
K_MIN_SPARSITY_LEVEL = 0.3     # dense_to_sparse_pass.cc: below this a weight stays dense
SEED = 1234


# ---------------------------------------------------------------------------
# loading and the weights of a model
# ---------------------------------------------------------------------------
def load_model(model: Any) -> Model:
    """A private copy of ``model`` (path, bytes or Model) that reads sparse constants
    as their stored values (:class:`~quantcore.runtime.ops.densify.SparseModel`)."""
    from quantcore.runtime.ops.densify import SparseModel
    if isinstance(model, Model):
        model = write_model(model)
    elif not isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
        raise InputError(f"model must be a path, bytes or a Model, not {type(model).__name__}")
    return SparseModel.of(read_model(model))


def interpreter(model: Any, numerics: str = "reference", *, fold_densify: bool = True,
                **kwargs: Any):
    """A quantcore :class:`~quantcore.runtime.Interpreter` for a model that may hold
    sparse constants.

    The constants are read as their stored values (:func:`load_model`). Where the
    runtime does not yet evaluate DENSIFY of a constant once at allocation (as LiteRT
    does, so that CONV_2D and friends see constant weights), each such DENSIFY is
    evaluated here with the DENSIFY kernel's own code and its output tensor made
    that constant; tensor indices are unchanged (``fold_densify=False`` keeps them,
    for DENSIFY's own tests).
    """
    from quantcore.runtime import Interpreter
    from quantcore.runtime import interpreter as _interp
    from quantcore.runtime.ops.densify import parse_sparsity, sparse_to_dense
    m = load_model(model)
    if fold_densify and "DENSIFY" not in getattr(_interp, "_FOLDABLE", ()):
        for s, sg in enumerate(m.subgraphs):
            keep = []
            for op in sg.operators:
                src = op.inputs[0] if m.op_name(op) == "DENSIFY" and len(op.inputs) == 1 else -1
                if src >= 0 and sg.tensors[src].sparsity is not None and m.tensor_data(s, src) is not None \
                        and len(op.outputs) == 1 and sg.tensors[op.outputs[0]].type == sg.tensors[src].type:
                    t = sg.tensors[src]
                    sp = parse_sparsity(t.sparsity, t.shape, f"subgraphs[{s}].tensors[{src}]")
                    dense = sparse_to_dense(sp, m.tensor_data(s, src))
                    m.buffers.append(Buffer(data=np.ascontiguousarray(dense).tobytes()))
                    sg.tensors[op.outputs[0]].buffer = len(m.buffers) - 1
                    continue
                keep.append(op)
            sg.operators = keep
    return Interpreter(model=m, numerics=numerics, **kwargs)


@dataclass
class WeightRef:
    """A constant weight tensor and the operators that read it."""
    subgraph: int
    tensor: int
    op_names: list[str]
    axis: int          # output-channel axis
    dense_input: bool  # True when it reaches its operators through DENSIFY


def weight_tensors(m: Model, ops: Iterable[str] | None = None) -> list[WeightRef]:
    """Constant weights of the operators in ``ops`` (default: :data:`WEIGHT_OPS`),
    in order of first use; a weight behind a DENSIFY counts as the DENSIFY's input."""
    wanted = set(WEIGHT_OPS if ops is None else ops)
    unknown = wanted - set(WEIGHT_OPS)
    if unknown:
        raise InputError(f"cannot prune or cluster the weights of {sorted(unknown)}; supported: "
                         f"{sorted(WEIGHT_OPS)}")
    found: dict[tuple[int, int], WeightRef] = {}
    for s, sg in enumerate(m.subgraphs):
        producer = {t: op for op in sg.operators for t in op.outputs if t >= 0}
        for op in sg.operators:
            name = m.op_name(op)
            if name not in wanted:
                continue
            j, axis = WEIGHT_OPS[name]
            if j >= len(op.inputs) or op.inputs[j] < 0:
                continue
            t = op.inputs[j]
            through = False
            src = producer.get(t)
            if src is not None and m.op_name(src) == "DENSIFY" and src.inputs:
                t, through = src.inputs[0], True
            tensor = sg.tensors[t]
            if m.tensor_data(s, t) is None or tensor.type not in (FLOAT32, INT8, UINT8):
                continue
            key = (s, t)
            if key in found:
                found[key].op_names.append(name)
            else:
                found[key] = WeightRef(s, t, [name], axis, through)
    return list(found.values())


def dense_value(m: Model, s: int, t: int) -> np.ndarray:
    """A constant's dense value (sparse constants densified)."""
    from quantcore.runtime.ops.densify import parse_sparsity, sparse_to_dense
    tensor = m.subgraphs[s].tensors[t]
    data = m.tensor_data(s, t)
    if tensor.sparsity is None:
        return np.array(data)
    sp = parse_sparsity(tensor.sparsity, tensor.shape, f"subgraphs[{s}].tensors[{t}]")
    return sparse_to_dense(sp, data)


def _zero_code(tensor: Tensor) -> np.ndarray | int:
    """The stored value that means real 0 (the zero point; 0 for float)."""
    qp = tensor.qparams()
    if tensor.type == FLOAT32 or qp is None:
        return 0
    return qp[1]


def _zero_like(tensor: Tensor, value: np.ndarray, axis: int) -> np.ndarray:
    """Real-zero codes broadcast to ``value``'s shape (per-channel zero points)."""
    z = np.asarray(_zero_code(tensor))
    if z.size <= 1:
        return np.full(value.shape, int(z.reshape(-1)[0]) if z.size else 0, value.dtype)
    qd = tensor.quantization.quantized_dimension
    shape = [1] * value.ndim
    shape[qd] = -1
    return np.broadcast_to(z.reshape(shape), value.shape).astype(value.dtype)


def _set_constant(m: Model, s: int, t: int, value: np.ndarray) -> None:
    """Store ``value`` (dense) as tensor t's data in a fresh buffer, dropping any
    sparsity (shared buffers are not modified)."""
    tensor = m.subgraphs[s].tensors[t]
    value = np.ascontiguousarray(value.astype(np.dtype(value.dtype).newbyteorder("<")))
    m.buffers.append(Buffer(data=value.tobytes()))
    tensor.buffer = len(m.buffers) - 1
    tensor.sparsity = None


# ---------------------------------------------------------------------------
# pruning
# ---------------------------------------------------------------------------
def _parse_block(block: Any) -> tuple[int, int]:
    if isinstance(block, str):
        parts = block.lower().replace("*", "x").split("x")
        if len(parts) != 2:
            raise InputError(f"block must look like 1x4, not {block!r}")
        block = tuple(parts)
    try:
        r, c = (int(v) for v in block)
    except (TypeError, ValueError):
        raise InputError(f"block must be two positive integers (rows, columns), not {block!r}") from None
    if r < 1 or c < 1:
        raise InputError(f"block sizes must be positive, not {r}x{c}")
    return r, c


def magnitude_mask(w: np.ndarray, sparsity: float, block: tuple[int, int] = (1, 1),
                   zero: np.ndarray | int = 0) -> np.ndarray:
    """Boolean keep-mask zeroing at least ``ceil(sparsity * blocks)`` blocks.

    The tensor is viewed as a matrix ``[shape[0], prod(shape[1:])]`` (output
    channels by the rest, TFLite's weight layouts), cut into ``r x c`` blocks (which
    must divide it); blocks are ranked by the sum of ``|w - zero|`` and the smallest
    are removed, ties by position (stable). Blocks that are already zero count.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise InputError(f"sparsity must lie in [0, 1], not {sparsity}")
    r, c = block
    rows = w.shape[0] if w.ndim else 1
    cols = w.size // max(rows, 1)
    if rows % r or cols % c:
        raise InputError(f"block {r}x{c} does not divide the weights viewed as a "
                         f"{rows}x{cols} matrix (shape {list(w.shape)})")
    mag = np.abs(w.astype(np.float64) - np.asarray(zero, np.float64)).reshape(rows // r, r, cols // c, c)
    score = mag.sum(axis=(1, 3)).reshape(-1)
    n_zero = int(math.ceil(sparsity * score.size - 1e-9))
    keep = np.ones(score.size, bool)
    keep[np.argsort(score, kind="stable")[:n_zero]] = False
    keep = keep.reshape(rows // r, cols // c)
    return np.repeat(np.repeat(keep, r, 0), c, 1).reshape(w.shape)


def prune(model: Any, sparsity: float = 0.5, block: Any = (1, 1), ops: Iterable[str] | None = None,
          sparse_format: bool = False) -> bytes:
    """Magnitude-prune the weights of a model; returns the new model's bytes.

    For every constant weight of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
    TRANSPOSE_CONV (or only the operators named in ``ops``), the ``sparsity``
    fraction of ``block``-sized blocks (rows x columns of the weights viewed as
    ``[out, rest]``) with the smallest magnitude is set to real zero: 0.0 for float
    weights, the zero point for quantized ones; a weight the block does not divide is
    pruned element by element. Biases are kept.

    ``sparse_format=True`` stores each pruned weight that is at least 30% zeros in
    TFLite's sparse format, as the converter's ``EXPERIMENTAL_SPARSITY`` does: the
    last dimension CSR, blocks dense; float FULLY_CONNECTED weights pruned in 1x4
    blocks are read by FULLY_CONNECTED directly, every other sparse weight goes
    through a DENSIFY operator. (The converter's int8 1x16 direct path is not used.)
    """
    r, c = _parse_block(block)
    m = load_model(model)
    refs = weight_tensors(m, ops)
    if not refs:
        raise InputError("the model has no constant weights to prune"
                         + ("" if ops is None else f" in operators {sorted(set(ops))}"))
    for ref in refs:
        tensor = m.subgraphs[ref.subgraph].tensors[ref.tensor]
        w = dense_value(m, ref.subgraph, ref.tensor)
        zero = _zero_like(tensor, w, ref.axis)
        rows = w.shape[0] if w.ndim else 1
        blk = (r, c) if rows % r == 0 and (w.size // max(rows, 1)) % c == 0 else (1, 1)
        keep = magnitude_mask(w, float(sparsity), blk, zero)
        _set_constant(m, ref.subgraph, ref.tensor, np.where(keep, w, zero).astype(w.dtype))
    moved = _remove_densify(m)
    if sparse_format:
        for ref in refs:
            _make_sparse(m, _after_densify(ref, moved), (r, c))
    return write_model(_tidy(m))


def _remove_densify(m: Model) -> dict[tuple[int, int], int]:
    """Drop DENSIFY operators whose input is now a dense constant (their output
    becomes that constant); returns {(subgraph, input): output}."""
    moved: dict[tuple[int, int], int] = {}
    for s, sg in enumerate(m.subgraphs):
        keep = []
        for op in sg.operators:
            if m.op_name(op) == "DENSIFY" and op.inputs and sg.tensors[op.inputs[0]].sparsity is None \
                    and m.tensor_data(s, op.inputs[0]) is not None:
                src, dst = op.inputs[0], op.outputs[0]
                sg.tensors[dst].buffer = sg.tensors[src].buffer
                moved[(s, src)] = dst
                continue
            keep.append(op)
        sg.operators = keep
    return moved


def _after_densify(ref: WeightRef, moved: dict[tuple[int, int], int]) -> WeightRef:
    t = moved.get((ref.subgraph, ref.tensor), ref.tensor)
    return WeightRef(ref.subgraph, t, ref.op_names, ref.axis, False)


def _tidy(m: Model) -> Model:
    """Drop tensors and buffers nothing uses any more (the quantizer's clean-up)."""
    from quantcore.quantizer.core import _prune
    return _prune(m)


def _index_vector(values: np.ndarray) -> tuple[int, dict]:
    """The smallest SparseIndexVector type holding ``values`` (Uint8, Uint16, Int32)."""
    top = int(values.max()) if values.size else 0
    if top < 256:
        return 3, {"values": values.astype(np.uint8)}
    if top < 65536:
        return 2, {"values": values.astype(np.uint16)}
    return 1, {"values": values.astype(np.int32)}


def dense_to_sparse(w: np.ndarray, block_size: list[int], zero=0) -> tuple[dict, np.ndarray]:
    """TFLite sparsity parameters and stored values for dense ``w`` (``FormatConverter::
    DenseToSparse`` with the converter's encoding, ``PopulateEncodingParams``).

    Traversal in dimension order, every dimension DENSE but the last, which is
    SPARSE_CSR; dimensions with ``block_size[d] > 1`` get a DENSE block dimension
    (``block_map``). A block (all of it, zeros included) is stored when any of its
    values differs from ``zero``.
    """
    n = w.ndim
    bs = [int(b) for b in block_size]
    if len(bs) != n or any(w.shape[d] % bs[d] for d in range(n)):
        raise InputError(f"block {bs} does not divide shape {list(w.shape)}")
    blocked = [w.shape[d] // bs[d] for d in range(n)]
    bdims = [d for d in range(n) if bs[d] != 1]
    # axes: blocked dims then in-block offsets of the block dims
    split = w.reshape([x for d in range(n) for x in (blocked[d], bs[d])])
    perm = [2 * d for d in range(n)] + [2 * d + 1 for d in bdims]
    inner = int(np.prod([bs[d] for d in bdims])) if bdims else 1
    t = split.transpose(perm + [2 * d + 1 for d in range(n) if d not in bdims])
    t = t.reshape(int(np.prod(blocked[:-1])) if n > 1 else 1, blocked[-1], inner)
    nonzero = np.any(t != zero, axis=2)
    counts = nonzero.sum(axis=1)
    segments = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows, cols = np.nonzero(nonzero)
    values = t[rows, cols].reshape(-1)
    dims = []
    for d in range(n - 1):
        dims.append({"format": 0, "dense_size": blocked[d], "array_segments_type": 0,
                     "array_segments": None, "array_indices_type": 0, "array_indices": None})
    st, sv = _index_vector(segments)
    it, iv = _index_vector(cols.astype(np.int64))
    dims.append({"format": 1, "dense_size": 0, "array_segments_type": st, "array_segments": sv,
                 "array_indices_type": it, "array_indices": iv})
    for d in bdims:
        dims.append({"format": 0, "dense_size": bs[d], "array_segments_type": 0, "array_segments": None,
                     "array_indices_type": 0, "array_indices": None})
    sparsity = {"traversal_order": np.arange(n + len(bdims), dtype=np.int32),
                "block_map": np.array(bdims, np.int32), "dim_metadata": dims}
    return sparsity, values


def _opcode(m: Model, name: str, version: int = 1) -> int:
    code = int(BuiltinOperator[name])
    for i, oc in enumerate(m.operator_codes):
        if oc.code == code and not oc.custom_code:
            return i
    m.operator_codes.append(OperatorCode(deprecated_builtin_code=min(code, 127), version=version,
                                         builtin_code=code))
    return len(m.operator_codes) - 1


def _make_sparse(m: Model, ref: WeightRef, block: tuple[int, int]) -> None:
    s, t = ref.subgraph, ref.tensor
    sg = m.subgraphs[s]
    tensor = sg.tensors[t]
    w = dense_value(m, s, t)
    zero = _zero_like(tensor, w, ref.axis)
    if np.mean(w == zero) < K_MIN_SPARSITY_LEVEL or tensor.type not in (FLOAT32, INT8):
        return
    if not np.all(zero == 0):
        return  # LiteRT's sparse format stores real zeros as 0 only
    r, c = block
    bs = [1] * w.ndim
    if (r, c) != (1, 1):
        if w.ndim != 2 or r != 1:
            bs = [1] * w.ndim  # converter: blocks only for FULLY_CONNECTED, 1 x c
        else:
            bs = [1, c]
    direct = (set(ref.op_names) == {"FULLY_CONNECTED"} and tensor.type == FLOAT32
              and w.ndim == 2 and bs == [1, 4])
    sparsity, values = dense_to_sparse(w, bs, 0)
    m.buffers.append(Buffer(data=np.ascontiguousarray(values).tobytes()))
    if direct:
        tensor.buffer = len(m.buffers) - 1
        tensor.sparsity = sparsity
        return
    # a new sparse constant, and DENSIFY writing the old tensor
    sparse_t = Tensor(shape=list(tensor.shape), type=tensor.type, buffer=len(m.buffers) - 1,
                      name=tensor.name + "_sparse", quantization=tensor.quantization,
                      sparsity=sparsity)
    sg.tensors.append(sparse_t)
    st = len(sg.tensors) - 1
    tensor.buffer = 0
    densify = Operator(opcode_index=_opcode(m, "DENSIFY"), inputs=[st], outputs=[t])
    first = min(i for i, op in enumerate(sg.operators) if t in op.inputs)
    sg.operators.insert(first, densify)


# ---------------------------------------------------------------------------
# clustering
# ---------------------------------------------------------------------------
def _kmeans_1d(values: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator,
               integer: bool, max_iter: int = 100) -> np.ndarray:
    """Weighted 1-D k-means on distinct ``values`` (with multiplicities ``weights``):
    k-means++ initialisation, Lloyd iterations until no centroid moves. With
    ``integer`` the centroids are rounded (half away from zero) after each update.
    Returns the sorted distinct centroids."""
    x = values.astype(np.float64)
    wt = weights.astype(np.float64)
    centers = [x[rng.choice(len(x), p=wt / wt.sum())]]
    d2 = (x - centers[0]) ** 2
    while len(centers) < k:
        p = wt * d2
        if p.sum() <= 0:
            break
        c = x[rng.choice(len(x), p=p / p.sum())]
        centers.append(c)
        d2 = np.minimum(d2, (x - c) ** 2)
    cent = np.unique(np.asarray(centers))
    for _ in range(max_iter):
        assign = _nearest(x, cent)
        sums = np.bincount(assign, wt * x, len(cent))
        cnt = np.bincount(assign, wt, len(cent))
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1e-300), cent)
        if integer:
            new = np.sign(new) * np.floor(np.abs(new) + 0.5)
        new = np.unique(new)
        if len(new) == len(cent) and np.array_equal(new, cent):
            break
        cent = new
    return cent


def _nearest(x: np.ndarray, cent: np.ndarray) -> np.ndarray:
    """Index of the nearest sorted centroid (ties to the lower one)."""
    if len(cent) == 1:
        return np.zeros(len(x), np.int64)
    mids = (cent[:-1] + cent[1:]) / 2
    return np.searchsorted(mids, x, side="left").astype(np.int64)


def cluster_values(w: np.ndarray, clusters: int, *, integer: bool, seed: int = SEED,
                   lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``w`` with each value replaced by its nearest of at most ``clusters`` centroids."""
    if w.size == 0:
        return w.copy()
    flat = w.reshape(-1)
    uniq, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if len(uniq) <= clusters:
        return w.copy()
    rng = np.random.default_rng(seed)
    cent = _kmeans_1d(uniq, counts, clusters, rng, integer)
    if lo is not None or hi is not None:
        cent = np.unique(np.clip(cent, lo, hi))
    if not integer:
        cent = np.unique(cent.astype(np.float32)).astype(np.float64)
    mapped = cent[_nearest(uniq.astype(np.float64), cent)]
    return mapped[inv].astype(w.dtype).reshape(w.shape)


def cluster(model: Any, clusters: int = 16, per_channel: bool = False, ops: Iterable[str] | None = None,
            seed: int = SEED, preserve_zeros: bool = True) -> bytes:
    """Cluster the weights of a model (k-means); returns the new model's bytes.

    Each constant weight of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
    TRANSPOSE_CONV (or of ``ops``) with more than ``clusters`` distinct values gets at
    most ``clusters`` (per output channel with ``per_channel``): 1-D k-means with
    k-means++ initialisation from ``np.random.default_rng(seed)`` (deterministic),
    each value replaced by its nearest centroid. Float weights keep float32
    centroids; int8/uint8 weights get integer centroids inside the storage range
    (int8 weights of a symmetric scheme stay in [-127, 127]), so scales and zero
    points are unchanged. With ``preserve_zeros`` (default) real zeros stay zero and
    the other values share ``clusters - 1`` centroids, so a pruned model stays as
    sparse; weights stored in the sparse format are stored sparse again.
    """
    if not isinstance(clusters, (int, np.integer)) or clusters < 1:
        raise InputError(f"clusters must be a positive integer, not {clusters!r}")
    m = load_model(model)
    refs = weight_tensors(m, ops)
    if not refs:
        raise InputError("the model has no constant weights to cluster")
    was_sparse = {}
    for ref in refs:
        tensor = m.subgraphs[ref.subgraph].tensors[ref.tensor]
        if tensor.sparsity is not None:
            bm = tensor.sparsity.get("block_map")
            dims = tensor.sparsity["dim_metadata"]
            c = int(dims[len(tensor.shape)]["dense_size"]) if bm is not None and len(bm) == 1 \
                and int(bm[0]) == len(tensor.shape) - 1 else 1
            was_sparse[(ref.subgraph, ref.tensor)] = (1, c)
        w = dense_value(m, ref.subgraph, ref.tensor)
        zero = _zero_like(tensor, w, ref.axis)
        keep_zero = (w == zero) if preserve_zeros else np.zeros(w.shape, bool)
        integer = tensor.type != FLOAT32
        lo = hi = None
        if integer:
            info = np.iinfo(w.dtype)
            qp = tensor.qparams()
            symmetric = qp is not None and bool(np.all(qp[1] == 0)) and tensor.type == INT8
            lo, hi = (-127 if symmetric and w.min() >= -127 else info.min), info.max
        def one(v: np.ndarray, z: np.ndarray, i: int) -> np.ndarray:
            out = v.copy()
            sel = ~z
            k = clusters - 1 if z.any() and clusters > 1 else clusters
            out[sel] = cluster_values(v[sel], k, integer=integer, seed=seed + i, lo=lo, hi=hi)
            return out

        if per_channel and w.ndim > 0:
            moved, mz = np.moveaxis(w, ref.axis, 0), np.moveaxis(keep_zero, ref.axis, 0)
            new = np.moveaxis(np.stack([one(ch, chz, i) for i, (ch, chz) in enumerate(zip(moved, mz))]),
                              0, ref.axis)
        else:
            new = one(w, keep_zero, 0)
        _set_constant(m, ref.subgraph, ref.tensor, new.astype(w.dtype))
    moved = _remove_densify(m)
    for ref in refs:
        if (ref.subgraph, ref.tensor) in was_sparse:
            _make_sparse(m, _after_densify(ref, moved), was_sparse[(ref.subgraph, ref.tensor)])
    return write_model(_tidy(m))


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
def entropy_bits(values: np.ndarray) -> float:
    """Shannon entropy of the value distribution, bits per value."""
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values.reshape(-1), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def gzip_size(data: bytes) -> int:
    """Bytes after gzip at level 9 (no file name, mtime 0: reproducible)."""
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))


def compression_stats(model: Any) -> dict:
    """Per weight tensor and whole-model compression statistics.

    ``tensors``: for each weight (see :func:`weight_tensors`): index, name, operators,
    type, shape, elements, ``zeros`` (real zeros: the zero point for quantized
    tensors) and ``sparsity`` (their fraction), ``unique`` distinct values,
    ``entropy_bits`` per weight, ``stored_bytes`` (the buffer, smaller when sparse),
    ``sparse_format``. ``model``: ``size_bytes``, ``gzip_bytes``, the weights' totals.
    """
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            raw = f.read()
    elif isinstance(model, Model):
        raw = write_model(model)
    else:
        raw = bytes(model)
    m = load_model(raw)
    rows = []
    tot_el = tot_zero = tot_stored = 0
    for ref in weight_tensors(m):
        tensor = m.subgraphs[ref.subgraph].tensors[ref.tensor]
        w = dense_value(m, ref.subgraph, ref.tensor)
        zero = _zero_like(tensor, w, ref.axis)
        zeros = int(np.sum(w == zero))
        stored = len(m.buffers[tensor.buffer]) if tensor.buffer < len(m.buffers) else 0
        rows.append({
            "subgraph": ref.subgraph, "index": ref.tensor, "name": tensor.name,
            "ops": sorted(set(ref.op_names)), "type": tensor.type_name, "shape": list(tensor.shape),
            "elements": int(w.size), "zeros": zeros,
            "sparsity": float(zeros / w.size) if w.size else 0.0,
            "unique": int(np.unique(w).size), "entropy_bits": entropy_bits(w),
            "stored_bytes": stored, "sparse_format": tensor.sparsity is not None,
        })
        tot_el += int(w.size)
        tot_zero += zeros
        tot_stored += stored
    return {"tensors": rows,
            "model": {"size_bytes": len(raw), "gzip_bytes": gzip_size(raw),
                      "weight_tensors": len(rows), "weight_elements": tot_el, "weight_zeros": tot_zero,
                      "weight_sparsity": float(tot_zero / tot_el) if tot_el else 0.0,
                      "weight_stored_bytes": tot_stored}}


def format_stats(stats: dict) -> str:
    """Text table of :func:`compression_stats`."""
    lines = ["weight tensors:",
             f"  {'#':>4}  {'name':<40} {'type':<8} {'shape':<16} {'sparsity':>8} {'unique':>7} "
             f"{'bits/w':>6} {'stored':>9}"]
    for r in stats["tensors"]:
        name = r["name"] if len(r["name"]) <= 40 else r["name"][:37] + "..."
        shape = "x".join(str(d) for d in r["shape"])
        lines.append(f"  {r['index']:>4}  {name:<40} {r['type']:<8} {shape:<16} {r['sparsity']:>8.1%} "
                     f"{r['unique']:>7} {r['entropy_bits']:>6.2f} {r['stored_bytes']:>9,}"
                     + ("  sparse" if r["sparse_format"] else ""))
    mm = stats["model"]
    lines.append(f"model: {mm['size_bytes']:,} bytes, {mm['gzip_bytes']:,} gzip-compressed "
                 f"({mm['gzip_bytes'] / max(mm['size_bytes'], 1):.1%}); weights: {mm['weight_elements']:,} "
                 f"values, {mm['weight_sparsity']:.1%} zeros")
    return "\n".join(lines) + "\n"
