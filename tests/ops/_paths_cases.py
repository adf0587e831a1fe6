"""Shared pieces of the numerics-path tests (tests/ops/test_paths_*.py): single-operator
model builders, a check against LiteRT's "optimized" (BUILTIN_WITHOUT_DEFAULT_DELEGATES)
and "xnnpack" (BUILTIN) paths, and a measure of whether a case really exercises
arithmetic that differs from the reference path (so a test of a path difference cannot
pass vacuously)."""
from __future__ import annotations

import numpy as np

from harness import assert_matches_litert, run_ours
from quantcore.schema.builder import ModelBuilder

NON_REF = ("optimized", "xnnpack")
QRANGE = {np.int8: (-128, 127), np.uint8: (0, 255), np.int16: (-32768, 32767)}


def log_scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def zero_point(rng: np.random.Generator, dtype) -> int:
    if np.dtype(dtype) == np.int16:
        return 0
    lo, hi = QRANGE[np.dtype(dtype).type]
    return int(rng.integers(lo, hi + 1))


def ints(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    lo, hi = QRANGE[np.dtype(dtype).type]
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dtype)


def unary_model(op: str, dtype, shape, qi=None, qo=None, *, out_dtype=None, **options) -> bytes:
    """``y = op(x)``; ``qi``/``qo`` are (scale, zero point) or None."""
    b = ModelBuilder()
    kw = {} if qi is None else dict(scale=qi[0], zero_point=qi[1])
    x = b.add_input("x", list(shape), dtype, **kw)
    kw = {} if qo is None else dict(scale=qo[0], zero_point=qo[1])
    y = b.add_tensor("y", list(shape), out_dtype or dtype, **kw)
    b.add_operator(op, [x], [y], **options)
    b.mark_outputs(y)
    return b.to_bytes()


def binary_model(op: str, dtype, s1, s2, q1, q2, qo, **options) -> bytes:
    b = ModelBuilder()
    xs = [b.add_input(n, list(s), dtype, scale=q[0], zero_point=q[1])
          for n, s, q in (("x1", s1, q1), ("x2", s2, q2))]
    out = np.broadcast_shapes(tuple(s1), tuple(s2))
    y = b.add_tensor("y", list(out), dtype, scale=qo[0], zero_point=qo[1])
    b.add_operator(op, xs, [y], **options)
    b.mark_outputs(y)
    return b.to_bytes()


def check_paths(oracle, model: bytes, inputs, paths=NON_REF) -> None:
    """quantcore equals LiteRT on each of ``paths`` (every tensor)."""
    for p in paths:
        assert_matches_litert(oracle, model, inputs, p)


def ours(model: bytes, inputs, path: str) -> list[np.ndarray]:
    it = run_ours(model, inputs, path)
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def differs(model: bytes, inputs, a: str = "reference", b: str = "optimized") -> bool:
    """quantcore's path ``a`` and path ``b`` give different outputs on these inputs."""
    return any(not np.array_equal(x, y) for x, y in zip(ours(model, inputs, a), ours(model, inputs, b)))
