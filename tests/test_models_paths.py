"""Model-level differential tests on LiteRT's non-reference numerics paths.

Every committed quantized converter fixture (tests/fixtures/models: ``*int8*``,
``*uint8*``, ``*int16x8*``, ``*pertensor*``) runs in quantcore with
``numerics="optimized"`` and ``numerics="xnnpack"`` and in LiteRT with the matching
resolver (``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` / ``BUILTIN``), every tensor preserved
on both sides: integer tensors must be equal, float tensors agree within 1e-4 of the
tensor's range (float inputs and outputs of the ``*_io`` models).

A model skips (with the reason) while some operator in it has no kernel for that path
in quantcore yet (``NumericsPathError``). On the xnnpack path LiteRT's intermediate
tensors are those of XNNPACK's delegate nodes (``experimental_preserve_all_tensors``
makes every delegated operator its own node, so each keeps its output); all of them
are compared.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import compare_tensor, random_input
from quantcore.errors import NumericsPathError
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "models"
PATTERNS = ("*int8*.tflite", "*uint8*.tflite", "*int16x8*.tflite", "*pertensor*.tflite")
MODELS = sorted({p for pat in PATTERNS for p in FIXTURES.glob(pat)})
PATHS = ("optimized", "xnnpack")


def _inputs(model_path: Path, seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs: uniform [-1, 1) for float inputs, full range for integers (as
    tests/test_models.py)."""
    rng = np.random.default_rng(seed)
    it = Interpreter(model_path=model_path)
    out = []
    for d in it.get_input_details():
        shape = [int(s) for s in d["shape"]]
        if d["dtype"] == np.float32:
            out.append(rng.uniform(-1, 1, shape).astype(np.float32))
        else:
            out.append(random_input(rng, shape, d["dtype"]))
    return out


def _ours(data: bytes, inputs: list[np.ndarray], path: str) -> Interpreter:
    """quantcore on ``path``; skips while an operator lacks that path."""
    try:
        it = Interpreter(model_content=data, numerics=path, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
    except NumericsPathError as e:
        pytest.skip(f"quantcore has no {path!r} path for this model yet: {e}")
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model_path", MODELS, ids=[p.name for p in MODELS])
def test_fixture_matches_litert_path(oracle, model_path, path):
    """quantcore (numerics=path) vs LiteRT on the same path, every tensor."""
    data = model_path.read_bytes()
    inputs = _inputs(model_path)
    it = _ours(data, inputs, path)
    theirs = oracle.run(data, inputs, path)
    assert theirs.ok, f"LiteRT ({path}) failed: {theirs.error}"
    model = read_model(data)
    sg = model.subgraphs[0]
    constant = {t for t in range(len(sg.tensors)) if model.tensor_data(0, t) is not None}
    problems = []
    for j, t in enumerate(sg.outputs):
        msg = compare_tensor(f"output {j}", it.get_tensor(t), theirs.outputs[j], rtol=1e-4)
        if msg:
            problems.append(msg)
    for t, value in theirs.tensors.items():
        if t in constant or t >= len(sg.tensors) or t in sg.outputs:
            continue
        msg = compare_tensor(f"tensor {t} {sg.tensors[t].name!r}", it.get_tensor(t), value, rtol=1e-4)
        if msg:
            problems.append(msg)
    assert not problems, f"{len(problems)} tensors differ:\n" + "\n".join(problems[:10])


def test_path_fixtures_exist():
    if not MODELS:
        pytest.skip("no fixtures generated")
    assert any("int8" in p.name for p in MODELS)
