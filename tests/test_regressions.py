"""The runtime regression corpus: one model per failure the runtime fuzzer found.

``tests/fixtures/regressions/`` (made by ``scripts/make_regressions.py``): each model
runs through ``Interpreter`` + ``allocate_tensors`` + ``set_tensor`` + ``invoke``
with NumPy warnings as errors, and must raise the QuantcoreError subclass named in
``expected.json`` with the message substring given there, or run (and give the
expected output, when one is recorded). ``why`` in ``expected.json`` says what
escaped before the fix.
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import quantcore.errors as errors
from quantcore.runtime import Interpreter

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "fixtures" / "regressions"
EXPECTED = json.loads((CORPUS / "expected.json").read_text()) if (CORPUS / "expected.json").is_file() else {}


def _generator():
    spec = importlib.util.spec_from_file_location("make_regressions", ROOT / "scripts" / "make_regressions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inputs(name: str) -> list[np.ndarray]:
    entry = EXPECTED[name]
    if "inputs" not in entry:
        return []
    with np.load(CORPUS / entry["inputs"]) as npz:
        return [npz[f"arr_{k}"] for k in range(len(npz.files))]


def _run(data: bytes, inputs: list[np.ndarray]) -> np.ndarray | None:
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    outs = it.get_output_details()
    return it.get_tensor(outs[0]["index"]) if outs else None


def test_corpus_is_current():
    """The files on disk are what scripts/make_regressions.py builds."""
    built = _generator().cases()
    assert sorted(p.name for p in CORPUS.glob("*.tflite")) == sorted(built), \
        "run python scripts/make_regressions.py"
    for name, (data, npz, expectation) in built.items():
        assert (CORPUS / name).read_bytes() == data, f"{name} is stale: run scripts/make_regressions.py"
        assert EXPECTED[name] == json.loads(json.dumps(expectation)), f"expected.json is stale ({name})"
        if npz is not None:
            import io
            with np.load(io.BytesIO(npz)) as fresh:
                on_disk = _inputs(name)
                assert len(on_disk) == len(fresh.files)
                for k, x in enumerate(on_disk):
                    np.testing.assert_array_equal(x, fresh[f"arr_{k}"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regression(name):
    entry = EXPECTED[name]
    data = (CORPUS / name).read_bytes()
    inputs = _inputs(name)
    with warnings.catch_warnings():
        # a NumPy warning is one of the failures recorded here (unless a known one)
        warnings.simplefilter("ignore" if entry.get("known_warnings") else "error")
        if entry["error"] is None:
            out = _run(data, inputs)
            if "output" in entry:
                want = np.asarray(entry["output"], dtype=out.dtype).reshape(entry["output_shape"])
                np.testing.assert_array_equal(out, want, err_msg=f"{name}: {entry['why']}")
            return
        cls = getattr(errors, entry["error"])
        with pytest.raises(cls) as info:
            _run(data, inputs)
    assert entry["message"] in str(info.value), f"{name}: {info.value}"
