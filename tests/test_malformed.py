"""Malformed models: every one raises ``ModelFormatError`` naming the fault, nothing else.

* The regression corpus ``tests/fixtures/malformed/`` (made by
  ``scripts/make_malformed.py``; ``expected.json`` gives the message and path each
  file must produce).
* Byte-level mutations of valid models (bit flips, truncations, 16- and 32-bit
  overwrites with boundary values): ``read_model`` either returns a model that the
  writer round-trips, or raises ``ModelFormatError``. A few hundred seeded mutants
  run by default (a few seconds); ``-m fuzz`` runs a time-boxed campaign
  (``QUANTCORE_FUZZ_SECONDS``, default 60) from a random seed it prints.
* A differential check: mutants our reader accepts are loaded by LiteRT (in a child
  process); LiteRT must not refuse them as malformed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantcore.errors import ModelFormatError
from quantcore.schema import read_model, write_model
from test_schema import assert_same

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "fixtures" / "malformed"
EXPECTED = json.loads((CORPUS / "expected.json").read_text()) if (CORPUS / "expected.json").is_file() else {}
MALFORMED = sorted(name for name, e in EXPECTED.items() if not e.get("valid"))
VALID = sorted(name for name, e in EXPECTED.items() if e.get("valid"))
FIXTURE_MODELS = sorted((Path(__file__).parent / "fixtures" / "models").glob("*.tflite"))

# LiteRT refusals of accepted mutants that are not format errors: an operator
# version this LiteRT build has no kernel for (quantcore's runtime raises
# UnsupportedOpError for the same models).
LITERT_NOT_FORMAT_ERRORS = ("Didn't find op for builtin opcode",)


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_malformed", ROOT / "scripts" / "make_malformed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------
def test_corpus_is_current():
    """The files on disk are exactly what scripts/make_malformed.py produces."""
    built = _load_generator().cases()
    on_disk = sorted(p.name for p in CORPUS.glob("*.tflite"))
    assert on_disk == sorted(built), "run python scripts/make_malformed.py"
    for name, (data, expectation) in built.items():
        assert (CORPUS / name).read_bytes() == data, f"{name} is stale: run scripts/make_malformed.py"
        assert EXPECTED[name] == json.loads(json.dumps(expectation)), f"expected.json is stale ({name})"


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_raises_model_format_error(name):
    expected = EXPECTED[name]
    data = (CORPUS / name).read_bytes()
    with pytest.raises(ModelFormatError) as info:
        read_model(data)
    err = info.value
    assert expected["message"] in str(err), f"{name}: {err}"
    if expected["path"] is not None:
        assert err.path == expected["path"], f"{name}: path {err.path!r} in {err}"


@pytest.mark.parametrize("name", MALFORMED[:5] + ["object_budget.tflite"])
def test_malformed_from_path(name):
    with pytest.raises(ModelFormatError, match=EXPECTED[name]["message"].replace("(", r"\(")):
        read_model(CORPUS / name)


@pytest.mark.parametrize("name", VALID)
def test_corpus_base_models_are_valid(name, oracle):
    data = (CORPUS / name).read_bytes()
    model = read_model(data)
    assert write_model(model) == data
    sg = model.subgraphs[0]
    inputs = [np.zeros(sg.tensors[i].shape, sg.tensors[i].dtype) for i in sg.inputs]
    result = oracle.run(data, inputs, "reference", preserve_all_tensors=False)
    assert result.ok, result.error


def test_object_budget_is_fast():
    """A shared-offset DAG is refused in time linear in its size, not its expansion."""
    data = (CORPUS / "object_budget.tflite").read_bytes()
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match="object budget"):
        read_model(data)
    assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------------------
# Byte-level mutations
# ---------------------------------------------------------------------------
def seed_models(max_bytes: int | None = 32 * 1024) -> list[bytes]:
    """The valid corpus models and the fixture models (up to ``max_bytes`` each:
    mutations of a large model mostly hit weights, and each costs a full read and
    write, so default runs keep to the small ones)."""
    seeds = [(CORPUS / name).read_bytes() for name in VALID]
    seeds += [p.read_bytes() for p in FIXTURE_MODELS
              if max_bytes is None or p.stat().st_size <= max_bytes]
    return seeds


def boundary_values(n: int) -> tuple[int, ...]:
    return (0, 1, 2, 4, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, n, n - 4, n + 4)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of ``data``; returns (description, mutant)."""
    n = len(data)
    out = bytearray(data)
    kind = rng.choice(("flip", "truncate", "word", "word", "word", "half"))
    if kind == "flip":
        where = [rng.randrange(n) for _ in range(rng.randint(1, 4))]
        for i in where:
            out[i] ^= 1 << rng.randrange(8)
        return f"flip bits at {where}", bytes(out)
    if kind == "truncate":
        cut = rng.randrange(n)
        return f"truncate to {cut}", bytes(out[:cut])
    if kind == "half":
        pos = rng.randrange(0, n - 1, 2)
        value = rng.choice((0, 1, 3, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(0x10000)))
        struct.pack_into("<H", out, pos, value)
        return f"u16 {value:#x} at {pos}", bytes(out)
    pos = rng.randrange(0, n - 3, 4)
    value = rng.choice(boundary_values(n) + (rng.randrange(1 << 32),)) & 0xFFFFFFFF
    struct.pack_into("<I", out, pos, value)
    return f"u32 {value:#x} at {pos}", bytes(out)


def check_mutant(data: bytes, what: str):
    """The invariant: ModelFormatError, or a model the writer round-trips."""
    try:
        model = read_model(data)
    except ModelFormatError:
        return None
    except Exception as e:  # pragma: no cover - the failure being tested for
        raise AssertionError(f"{what}: {type(e).__name__} escaped read_model: {e}") from e
    try:
        rewritten = write_model(model)
    except ModelFormatError:
        return None
    assert_same(model, read_model(rewritten), f"round trip of mutant ({what})")
    return model


def run_mutations(seed: int, count: int | None = None, seconds: float | None = None,
                  max_bytes: int | None = 32 * 1024):
    """Mutate the seed models; returns the accepted mutants (that differ from their seed)."""
    rng = random.Random(seed)
    seeds = seed_models(max_bytes)
    accepted = []
    t0 = time.perf_counter()
    k = 0
    while (count is None or k < count) and (seconds is None or time.perf_counter() - t0 < seconds):
        base = rng.choice(seeds)
        what, mutant = mutate(base, rng)
        what = f"seed {seed}, mutant {k}: {what}"
        t1 = time.perf_counter()
        if check_mutant(mutant, what) is not None and mutant != base:
            accepted.append((what, mutant))
        assert time.perf_counter() - t1 < 2.0, f"{what}: read_model took too long"
        k += 1
    return accepted


def test_mutations_raise_only_model_format_error():
    t0 = time.perf_counter()
    run_mutations(seed=20240611, count=400)
    assert time.perf_counter() - t0 < 30


SMALL_SEEDS = seed_models(16 * 1024)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutations_hypothesis(data):
    base = data.draw(st.sampled_from(SMALL_SEEDS), label="seed model")
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        pos = data.draw(st.integers(0, max(len(out) - 4, 0)), label="position") & ~3
        value = data.draw(st.sampled_from(boundary_values(len(out))) | st.integers(0, 2**32 - 1),
                          label="u32")
        if pos + 4 <= len(out):
            struct.pack_into("<I", out, pos, value)
    cut = data.draw(st.none() | st.integers(0, len(out)), label="truncate")
    check_mutant(bytes(out if cut is None else out[:cut]), "hypothesis mutant")


@pytest.mark.fuzz
def test_mutation_fuzz_campaign():
    seed = int(os.environ.get("QUANTCORE_FUZZ_SEED", random.randrange(1 << 30)))
    seconds = float(os.environ.get("QUANTCORE_FUZZ_SECONDS", "60"))
    print(f"fuzz seed {seed} ({seconds} s); reproduce with QUANTCORE_FUZZ_SEED={seed}")
    run_mutations(seed=seed, seconds=seconds, max_bytes=None)


# ---------------------------------------------------------------------------
# Differential: what we accept, LiteRT loads
# ---------------------------------------------------------------------------
_LOAD_SCRIPT = r"""
import os, pickle, struct, sys
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
from ai_edge_litert.interpreter import Interpreter, OpResolverType
for model in pickle.load(sys.stdin.buffer):
    try:
        Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        reply = None
    except Exception as e:
        reply = f"{type(e).__name__}: {e}"
    data = pickle.dumps(reply)
    out.write(struct.pack("<I", len(data)) + data)
    out.flush()
"""


def litert_load(models: list[bytes]) -> list[str | None]:
    """For each model, None when LiteRT's Interpreter loads it, else its error (a
    crash of the child process is reported as ``CRASH`` for that model)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    results: list[str | None] = []
    rest = list(models)
    while rest:
        proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT], input=pickle.dumps(rest),
                              capture_output=True, timeout=300, env=env)
        pos, got = 0, []
        while pos + 4 <= len(proc.stdout):
            (n,) = struct.unpack_from("<I", proc.stdout, pos)
            got.append(pickle.loads(proc.stdout[pos + 4:pos + 4 + n]))
            pos += 4 + n
        results += got
        rest = rest[len(got):]
        if rest:
            results.append(f"CRASH (exit code {proc.returncode}): {proc.stderr.decode()[-300:]}")
            rest = rest[1:]
    return results


def test_litert_loads_what_we_accept():
    accepted = run_mutations(seed=7, count=600)[:150]
    assert accepted, "no accepted mutants to compare"
    refused = []
    for (what, _), error in zip(accepted, litert_load([m for _, m in accepted])):
        if error is not None and not any(s in error for s in LITERT_NOT_FORMAT_ERRORS):
            refused.append(f"{what}: {error.splitlines()[0][:200]}")
    assert not refused, "LiteRT refuses models quantcore accepts:\n" + "\n".join(refused)
