"""Assertions for users' own test suites: guard a model's numerics and quantization.

* :func:`assert_bit_exact` runs a model in quantcore and in LiteRT (in a child
  process, :class:`quantcore.oracle.LiteRTOracle`, shared by all calls of the test
  session) with :func:`quantcore.compare.compare`, and fails naming the first
  divergent operator and its worst element.
* :func:`assert_same_quantization` compares two models' tensors with
  :func:`quantcore.diff.structural_diff` and fails listing every tensor whose
  dtype or quantization (scale, zero point, per-channel, quantized dimension) changed.

The pytest fixture ``quantcore_baseline`` (golden outputs and parameters on disk)
lives in :mod:`quantcore.pytest_plugin`.
"""
from __future__ import annotations

import atexit
import os
from typing import Any

from quantcore.errors import InputError

_ORACLE = None


def shared_oracle():
    """One LiteRT worker process for every assertion of this Python process."""
    global _ORACLE
    if _ORACLE is None:
        from quantcore.oracle import LiteRTOracle

        _ORACLE = LiteRTOracle()
        atexit.register(_close_oracle)
    return _ORACLE


def _close_oracle() -> None:
    global _ORACLE
    if _ORACLE is not None:
        _ORACLE.close()
        _ORACLE = None


def _model_bytes(model: Any) -> tuple[bytes, str]:
    from quantcore.schema import write_model
    from quantcore.schema.model import Model

    if isinstance(model, Model):
        return write_model(model), "<model>"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        try:
            with open(model, "rb") as fh:
                return fh.read(), os.fspath(model)
        except OSError as e:
            raise InputError(f"cannot read model {os.fspath(model)!r}: {e.strerror}") from None
    raise InputError(f"model must be a path, bytes or Model, not {type(model).__name__}")


def assert_bit_exact(model: Any, inputs: Any = None, numerics: str = "reference", *, seed: int = 0,
                     oracle: Any = None):
    """Assert that quantcore reproduces LiteRT bit for bit on ``model``.

    ``inputs``: None (seeded random full-range inputs), a .npy/.npz path, one array,
    a list in input order, or a dict by input name (float arrays are quantized for
    integer inputs). ``numerics``: LiteRT path, ``"reference"`` (BUILTIN_REF),
    ``"optimized"`` or ``"xnnpack"``. Every integer tensor must be equal (float
    tensors are reported by compare, not judged). Returns the
    :class:`~quantcore.compare.CompareResult`; raises ``AssertionError`` naming the
    first divergent operator, its worst element and its inputs' quantization, or
    LiteRT's error when LiteRT refused or aborted on the model.
    """
    from quantcore.baseline import coerce_inputs
    from quantcore.compare import compare
    from quantcore.diff import summarize
    from quantcore.schema import read_model

    data, label = _model_bytes(model)
    m = read_model(data)
    xs = None if inputs is None else coerce_inputs(inputs, summarize(m, values=False), label)
    result = compare(data, xs, numerics=numerics, seed=seed, oracle=oracle or shared_oracle())
    if result.litert_error is not None:
        raise AssertionError(f"LiteRT ({numerics}) failed on {label}: {result.litert_error}")
    if result.equal:
        return result
    bad = [r for r in result.rows if not r.equal and not r.dtype.startswith("float")]
    lines = [f"quantcore differs from LiteRT ({numerics}) on {label}: {len(bad)} of {len(result.rows)} "
             f"operator outputs differ"]
    d = result.first_divergence
    if d is not None:
        lines.append(f"first divergent op: {d.op_index} {d.op}, tensor {d.tensor} {d.name!r}")
        lines.append(f"  worst element {tuple(d.index)}: quantcore {d.ours:g}, LiteRT {d.theirs:g}")
        for i in d.inputs:
            q = (f"scale {i['scale']}, zero point {i['zero_point']}" if i.get("scale") is not None
                 else "not quantized")
            lines.append(f"  input {i['tensor']} {i['name']!r} ({i['dtype']}): {q}")
    lines.append("differing operator outputs (op, type, tensor, elements differing, max LSB):")
    for r in bad[:10]:
        lines.append(f"  {r.op_index:>4} {r.op:<20} {r.name[:50]!r} {r.num_different}/{r.num_elements} "
                     f"max {r.max_lsb:.0f} LSB")
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more")
    raise AssertionError("\n".join(lines))


def assert_same_quantization(old: Any, new: Any, *, values: bool = False) -> None:
    """Assert that every tensor of ``new`` is stored as in ``old``: same dtype, scale,
    zero point, per-channel or per-tensor, quantized dimension (and with ``values``,
    the same constant values). Tensors are matched as in :func:`quantcore.diff.diff`.

    Raises ``AssertionError`` listing each tensor whose quantization changed and how,
    and quantized tensors that appear in only one model.
    """
    from quantcore.diff import _load, structural_diff, summarize

    mo, lo = _load(old)
    mn, ln = _load(new)
    go, gn = summarize(mo, values=values), summarize(mn, values=values)
    s = structural_diff(go, gn)
    changed = [t for t in s.tensors_changed if t.quantization_changed or (values and "values" in t.kinds)]
    quantized_old = {t.name for t in go.tensors if t.quantized}
    quantized_new = {t.name for t in gn.tensors if t.quantized}
    removed = [n for n in s.tensors_removed if n in quantized_old]
    added = [n for n in s.tensors_added if n in quantized_new]
    if not (changed or removed or added):
        return
    lines = [f"quantization changed in {len(changed)} tensors ({lo} -> {ln}):"]
    for t in changed:
        what = [w for w, k in zip(t.what, t.line_kinds) if k != "name" and (values or k != "values")]
        lines.append(f"  {t.name}: {'; '.join(what)}")
    if removed:
        lines.append(f"quantized tensors only in OLD: {', '.join(map(repr, removed))}")
    if added:
        lines.append(f"quantized tensors only in NEW: {', '.join(map(repr, added))}")
    raise AssertionError("\n".join(lines))


__all__ = ["assert_bit_exact", "assert_same_quantization", "shared_oracle"]
