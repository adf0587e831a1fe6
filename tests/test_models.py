"""Model-level differential tests: every committed converter fixture, every tensor.

Fixtures come from scripts/make_fixtures.py (Keras models trained for a few steps,
converted by the TensorFlow converter in every mode; tests/fixtures/models).
Each model runs in quantcore and in LiteRT BUILTIN_REF (reference kernels) with
all tensors preserved on both sides: every integer tensor must be equal; float
tensors agree within 1e-4 of the tensor's range (float, float16 and dynamic-range
models). Where LiteRT's reference resolver aborts the process, quantcore must
raise a QuantcoreError naming the reason instead of returning numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import compare_tensor, random_input
from quantcore import QuantcoreError
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODELS = sorted(FIXTURES.glob("*.tflite"))


def _inputs(model_path: Path, seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs: uniform [-1, 1) for float inputs, full range for integers."""
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


@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_fixture_matches_litert_reference(oracle, path):
    """quantcore vs LiteRT BUILTIN_REF on every tensor of a converter output."""
    data = path.read_bytes()
    inputs = _inputs(path)
    theirs = oracle.run(data, inputs, "reference")
    if theirs.aborted:
        with pytest.raises(QuantcoreError):
            it = Interpreter(model_content=data)
            it.allocate_tensors()
            for d, x in zip(it.get_input_details(), inputs):
                it.set_tensor(d["index"], x)
            it.invoke()
        return
    assert theirs.ok, theirs.error
    it = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    model = read_model(data)
    sg = model.subgraphs[0]
    constant = {t for t in range(len(sg.tensors)) if model.tensor_data(0, t) is not None}
    problems = []
    for t, value in theirs.tensors.items():
        if t in constant or t >= len(sg.tensors):
            continue
        msg = compare_tensor(f"tensor {t} {sg.tensors[t].name!r}", it.get_tensor(t), value, rtol=1e-4)
        if msg:
            problems.append(msg)
    for j, t in enumerate(sg.outputs):
        msg = compare_tensor(f"output {j}", it.get_tensor(t), theirs.outputs[j], rtol=1e-4)
        if msg:
            problems.append(msg)
    assert not problems, "\n".join(problems[:10])


def test_fixture_manifest_lists_every_model():
    if not MODELS:
        pytest.skip("no fixtures generated")
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    listed = {m["file"] for m in manifest if m.get("status") == "ok"}
    assert {p.name for p in MODELS} <= listed
