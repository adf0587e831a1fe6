"""Differential testing helpers: run a model in quantcore and in LiteRT, compare.

Every comparison names the LiteRT path it uses (``numerics``: "reference" =
``BUILTIN_REF``, "optimized" = ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, "xnnpack" =
``BUILTIN``). Integer tensors must be equal (``np.array_equal``); float tensors
agree within ``rtol`` of the tensor's value range.
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import settings

from quantcore.oracle import LiteRTOracle, OracleResult
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

SLOW = os.environ.get("QUANTCORE_SLOW") == "1"


def examples(fast: int, slow: int | None = None) -> settings:
    """hypothesis settings: ``fast`` examples by default, ``slow`` (10x) with --slow."""
    n = (slow if slow is not None else fast * 10) if SLOW else fast
    return settings(max_examples=n, deadline=None, derandomize=not SLOW,
                    suppress_health_check=list(__import__("hypothesis").HealthCheck))


def run_outputs_no_warnings(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Allocate, set the inputs, invoke and read every output, NumPy warnings as errors
    (as the fuzzer's guard runs them)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()
        return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def run_ours(model: bytes, inputs: list[np.ndarray], numerics: str = "reference") -> Interpreter:
    it = Interpreter(model_content=model, numerics=numerics, experimental_preserve_all_tensors=True)
    details = it.get_input_details()
    for d, x in zip(details, inputs):
        if tuple(d["shape"]) != tuple(np.shape(x)):
            it.resize_tensor_input(d["index"], np.shape(x))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], np.asarray(x))
    it.invoke()
    return it


def describe_mismatch(name: str, ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape != theirs.shape:
        return f"{name}: shape {ours.shape} (quantcore) != {theirs.shape} (LiteRT)"
    if ours.dtype != theirs.dtype:
        return f"{name}: dtype {ours.dtype} (quantcore) != {theirs.dtype} (LiteRT)"
    diff = np.argwhere(ours != theirs)
    first = tuple(int(i) for i in diff[0]) if len(diff) else ()
    return (f"{name}: {len(diff)} of {ours.size} elements differ; first at {first}: "
            f"quantcore {ours[first]!r}, LiteRT {theirs[first]!r}; max |diff| "
            f"{np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))}")


def compare_tensor(name: str, ours: np.ndarray, theirs: np.ndarray, rtol: float = 1e-6) -> str | None:
    """None when equal (ints) or close (floats: within rtol of the value range)."""
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        return describe_mismatch(name, ours, theirs)
    if ours.dtype.kind == "f":
        a = ours.astype(np.float64)
        b = theirs.astype(np.float64)
        if np.array_equal(np.isnan(a), np.isnan(b)) and np.all(a[np.isnan(a)] != a[np.isnan(a)]):
            mask = ~np.isnan(a)
            a, b = a[mask], b[mask]
        if a.size == 0:
            return None
        finite = np.isfinite(b)
        if not np.array_equal(a[~finite], b[~finite]):
            return describe_mismatch(name, ours, theirs)
        span = float(np.max(b[finite]) - np.min(b[finite])) if finite.any() else 0.0
        tol = rtol * max(span, 1e-30) + 1e-30
        err = np.max(np.abs(a[finite] - b[finite])) if finite.any() else 0.0
        return None if err <= tol else f"{name}: max |diff| {err} > {tol} ({describe_mismatch(name, ours, theirs)})"
    if np.array_equal(ours, theirs):
        return None
    return describe_mismatch(name, ours, theirs)


def assert_matches_litert(oracle: LiteRTOracle, model: bytes, inputs: list[np.ndarray],
                          numerics: str = "reference", *, all_tensors: bool = True,
                          rtol: float = 1e-6) -> tuple[Interpreter, OracleResult]:
    """Run both runtimes and assert every output (and intermediate) tensor matches."""
    theirs = oracle.run(model, inputs, numerics)
    assert theirs.ok, f"LiteRT ({numerics}) failed: {theirs.error}"
    it = run_ours(model, inputs, numerics)
    sg = read_model(model).subgraphs[0]
    problems = []
    for j, t in enumerate(sg.outputs):
        msg = compare_tensor(f"output {j} (tensor {t} {sg.tensors[t].name!r})", it.get_tensor(t),
                             theirs.outputs[j], rtol)
        if msg:
            problems.append(msg)
    if all_tensors:
        for t, value in theirs.tensors.items():
            if t in sg.outputs or t in sg.inputs:
                continue
            try:
                mine = it.get_tensor(t)
            except Exception:
                continue
            msg = compare_tensor(f"tensor {t} {sg.tensors[t].name!r}", mine, value, rtol)
            if msg:
                problems.append(msg)
    assert not problems, f"quantcore differs from LiteRT ({numerics}):\n" + "\n".join(problems)
    return it, theirs


def random_input(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Full-range integers, or floats in [-1, 1) scaled by a random magnitude."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def random_scale(rng: np.random.Generator, lo: float = 1e-3, hi: float = 1.0) -> float:
    """A float32 scale, log-uniform in [lo, hi]."""
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
