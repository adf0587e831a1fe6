"""Pruning, clustering, TFLite's sparse format and compression statistics.

Every output model runs in LiteRT (BUILTIN_REF, and the optimized path where LiteRT
has one for it) and quantcore gives the same tensors (integers equal, floats within
the harness tolerance). Inputs: the converter fixtures in tests/fixtures/models/ and
the pruned Keras models converted with ``Optimize.EXPERIMENTAL_SPARSITY`` in
tests/fixtures/qat/ (scripts/make_fixtures_qat.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import quantcore
from harness import compare_tensor
from quantcore.cli import main as cli_main
from quantcore.compress import (compression_stats, dense_to_sparse, dense_value, interpreter,
                                load_model, magnitude_mask, weight_tensors)
from quantcore.errors import InputError
from quantcore.schema import read_model

MODELS = Path(__file__).parent / "fixtures" / "models"
QAT = Path(__file__).parent / "fixtures" / "qat"
FLOAT_MODELS = ["mlp_float32", "small_cnn_float32"]
INT8_MODELS = ["mlp_int8", "small_cnn_int8", "dscnn_kws_int8"]


def _inputs(name: str, n: int = 2) -> list[list[np.ndarray]]:
    if name.startswith("sparse"):
        calib = np.load(QAT / "sparse_calib.npy")
        return [[c] for c in calib[:n]]
    calib = np.load(MODELS / f"{name.rsplit('_', 1)[0]}_calib.npy")
    return [[c[None].astype(np.float32)] for c in calib[:n]]


def assert_runs_like_litert(oracle, model: bytes, inputs: list[np.ndarray],
                            numerics: str = "reference") -> None:
    """LiteRT runs the model; quantcore (sparse constants read as stored values) gives
    the same outputs and intermediate tensors."""
    theirs = oracle.run(model, inputs, numerics)
    assert theirs.ok, f"LiteRT ({numerics}) failed: {theirs.error}"
    it = interpreter(model, numerics)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    sg = it.model.subgraphs[0]
    problems = []
    for j, t in enumerate(sg.outputs):
        msg = compare_tensor(f"output {j}", it.get_tensor(t), theirs.outputs[j])
        if msg:
            problems.append(msg)
    for t, value in theirs.tensors.items():
        if t >= len(sg.tensors) or sg.tensors[t].sparsity is not None:
            continue
        try:
            mine = it.get_tensor(t)
        except Exception:
            continue
        msg = compare_tensor(f"tensor {t} {sg.tensors[t].name!r}", mine, value)
        if msg:
            problems.append(msg)
    assert not problems, "\n".join(problems)


def _stats_by_name(model) -> dict:
    return {r["name"].removesuffix("_sparse"): r for r in compression_stats(model)["tensors"]}


# ---------------------------------------------------------------------------
# pruning
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", FLOAT_MODELS + INT8_MODELS)
def test_prune_half_zeros_each_tensor_and_shrinks_gzip(oracle, name):
    path = MODELS / f"{name}.tflite"
    out = quantcore.prune(path, sparsity=0.5)
    stats = compression_stats(out)
    assert stats["tensors"]
    for r in stats["tensors"]:
        assert r["sparsity"] >= 0.5, r
    assert stats["model"]["gzip_bytes"] < compression_stats(path)["model"]["gzip_bytes"]
    for x in _inputs(name):
        assert_runs_like_litert(oracle, out, x)


def test_prune_keeps_the_largest_weights():
    path = MODELS / "mlp_float32.tflite"
    before, after = load_model(path), load_model(quantcore.prune(path, sparsity=0.6))
    for ref_b, ref_a in zip(weight_tensors(before), weight_tensors(after)):
        w = dense_value(before, 0, ref_b.tensor)
        p = dense_value(after, 0, ref_a.tensor)
        kept = p != 0
        assert np.array_equal(p[kept], w[kept])
        assert np.abs(w[~kept]).max() <= np.abs(w[kept]).min()


def test_prune_blocks_of_1x4(oracle):
    path = MODELS / "mlp_float32.tflite"
    out = quantcore.prune(path, sparsity=0.75, block="1x4")
    m = load_model(out)
    for ref in weight_tensors(m):
        w = dense_value(m, 0, ref.tensor)
        blocks = w.reshape(w.shape[0], -1, 4)
        zero_blocks = np.all(blocks == 0, axis=2)
        assert np.array_equal(np.any(blocks == 0, axis=2), zero_blocks)   # whole blocks
        assert zero_blocks.mean() >= 0.75
    assert_runs_like_litert(oracle, out, _inputs("mlp_float32")[0])


def test_prune_int8_weights_keep_quantization(oracle):
    path = MODELS / "small_cnn_int8.tflite"
    out = quantcore.prune(path, sparsity=0.5)
    a, b = read_model(path), read_model(out)
    qa = {t.name: t.qparams() for t in a.subgraphs[0].tensors if t.qparams() is not None}
    for t in b.subgraphs[0].tensors:
        if t.name in qa:
            np.testing.assert_array_equal(t.qparams()[0], qa[t.name][0])
    for x in _inputs("small_cnn_int8"):
        assert_runs_like_litert(oracle, out, x, "optimized")


@pytest.mark.parametrize("name", ["mlp_float32", "small_cnn_float32", "small_cnn_int8", "mlp_int8"])
def test_prune_sparse_format_runs_like_litert(oracle, name):
    out = quantcore.prune(MODELS / f"{name}.tflite", sparsity=0.75, block=(1, 4), sparse_format=True)
    m = read_model(out)
    ops = {m.op_name(op) for op in m.subgraphs[0].operators}
    sparse = [t for t in m.subgraphs[0].tensors if t.sparsity is not None]
    assert sparse
    assert "DENSIFY" in ops or name == "mlp_float32"     # float FC 1x4: read directly
    assert compression_stats(out)["model"]["size_bytes"] < (MODELS / f"{name}.tflite").stat().st_size
    for x in _inputs(name):
        assert_runs_like_litert(oracle, out, x)
    if "int8" in name:
        assert_runs_like_litert(oracle, out, _inputs(name)[0], "optimized")


def test_sparse_format_equals_the_converters_encoding():
    """quantcore's encoder reproduces the converter's sparse buffers and metadata."""
    for f in ("sparse_float", "sparse_int8"):
        m = load_model(QAT / f"{f}.tflite")
        n = 0
        for i, t in enumerate(m.subgraphs[0].tensors):
            if t.sparsity is None:
                continue
            w = dense_value(m, 0, i)
            bs = [1] * w.ndim
            for k, d in enumerate(t.sparsity["block_map"] if t.sparsity["block_map"] is not None else []):
                bs[int(d)] = int(t.sparsity["dim_metadata"][w.ndim + k]["dense_size"])
            sp, values = dense_to_sparse(w, bs)
            assert values.tobytes() == bytes(m.buffers[t.buffer].data)
            for ours, theirs in zip(sp["dim_metadata"], t.sparsity["dim_metadata"]):
                for key in ("format", "dense_size", "array_segments_type", "array_indices_type"):
                    assert int(ours[key] or 0) == int(theirs[key] or 0), (f, i, key)
            n += 1
        assert n == 4


def test_prune_arguments():
    path = MODELS / "mlp_float32.tflite"
    with pytest.raises(InputError, match="sparsity"):
        quantcore.prune(path, sparsity=1.5)
    with pytest.raises(InputError, match="block"):
        quantcore.prune(path, block="1x")
    with pytest.raises(InputError, match="cannot prune"):
        quantcore.prune(path, ops=["SOFTMAX"])
    with pytest.raises(InputError, match="no constant weights"):
        quantcore.prune(path, ops=["CONV_2D"])
    out = quantcore.prune(path, sparsity=0.0)
    assert all(r["sparsity"] < 0.5 for r in compression_stats(out)["tensors"])


def test_magnitude_mask_counts_blocks():
    w = np.arange(1, 33, dtype=np.float32).reshape(4, 8)
    keep = magnitude_mask(w, 0.5, (2, 4))
    assert keep.sum() == 16 and not keep[:2, :4].any() and keep[2:, 4:].all()


# ---------------------------------------------------------------------------
# the converter's sparse models
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sparse_float", "sparse_int8"])
def test_converter_sparse_models_run_like_litert(oracle, name):
    data = (QAT / f"{name}.tflite").read_bytes()
    stats = compression_stats(data)
    assert sum(r["sparse_format"] for r in stats["tensors"]) == 4
    assert all(r["sparsity"] >= 0.55 for r in stats["tensors"])
    for x in _inputs(name, 4):
        assert_runs_like_litert(oracle, data, x, "reference")
    if name == "sparse_int8":
        assert_runs_like_litert(oracle, data, _inputs(name)[0], "optimized")
        # NUMERICS.md: LiteRT's default (XNNPACK) path refuses this model
        assert not oracle.run(data, _inputs(name)[0], "xnnpack").ok


@pytest.mark.parametrize("name", ["sparse_float", "sparse_int8"])
def test_prune_and_cluster_converter_sparse_models(oracle, name):
    data = (QAT / f"{name}.tflite").read_bytes()
    pruned = quantcore.prune(data, sparsity=0.8, sparse_format=True)
    clustered = quantcore.cluster(data, clusters=8)
    for r in compression_stats(pruned)["tensors"]:
        assert r["sparsity"] >= 0.8
    for r in compression_stats(clustered)["tensors"]:
        assert r["unique"] <= 8
    x = _inputs(name)[0]
    assert_runs_like_litert(oracle, pruned, x)
    assert_runs_like_litert(oracle, clustered, x)


# ---------------------------------------------------------------------------
# clustering
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", FLOAT_MODELS + INT8_MODELS)
def test_cluster_16_leaves_at_most_16_values(oracle, name):
    path = MODELS / f"{name}.tflite"
    out = quantcore.cluster(path, clusters=16)
    for r in compression_stats(out)["tensors"]:
        assert r["unique"] <= 16, r
        assert r["entropy_bits"] <= 4.0
    assert compression_stats(out)["model"]["gzip_bytes"] < compression_stats(path)["model"]["gzip_bytes"]
    for x in _inputs(name):
        assert_runs_like_litert(oracle, out, x)


def test_cluster_int8_centroids_on_the_grid():
    path = MODELS / "small_cnn_int8.tflite"
    before, after = load_model(path), load_model(quantcore.cluster(path, clusters=4))
    for ref in weight_tensors(after):
        w = dense_value(after, 0, ref.tensor)
        assert w.dtype == np.int8 and w.min() >= -127 and np.unique(w).size <= 4
    a = {t.name: t.qparams() for t in before.subgraphs[0].tensors if t.qparams() is not None}
    for t in after.subgraphs[0].tensors:
        if t.name in a:
            np.testing.assert_array_equal(t.qparams()[0], a[t.name][0])


def test_cluster_per_channel_and_deterministic(oracle):
    path = MODELS / "small_cnn_float32.tflite"
    out = quantcore.cluster(path, clusters=4, per_channel=True)
    assert out == quantcore.cluster(path, clusters=4, per_channel=True)
    m = load_model(out)
    for ref in weight_tensors(m):
        w = np.moveaxis(dense_value(m, 0, ref.tensor), ref.axis, 0)
        assert all(np.unique(ch).size <= 4 for ch in w)
    assert_runs_like_litert(oracle, out, _inputs("small_cnn_float32")[0])


def test_cluster_arguments_and_small_tensors():
    path = MODELS / "mlp_float32.tflite"
    with pytest.raises(InputError, match="clusters"):
        quantcore.cluster(path, clusters=0)
    big = quantcore.cluster(path, clusters=10**6)      # fewer values than clusters: unchanged
    a, b = load_model(path), load_model(big)
    for ra, rb in zip(weight_tensors(a), weight_tensors(b)):
        np.testing.assert_array_equal(dense_value(a, 0, ra.tensor), dense_value(b, 0, rb.tensor))


# ---------------------------------------------------------------------------
# statistics and the command line
# ---------------------------------------------------------------------------
def test_compression_stats_fields():
    s = compression_stats(MODELS / "mlp_int8.tflite")
    assert s["model"]["size_bytes"] == (MODELS / "mlp_int8.tflite").stat().st_size
    assert 0 < s["model"]["gzip_bytes"] < s["model"]["size_bytes"]
    r = s["tensors"][0]
    assert {"name", "shape", "type", "sparsity", "unique", "entropy_bits", "stored_bytes"} <= set(r)
    assert 0 < r["entropy_bits"] <= 8


def test_cli_prune_cluster_and_inspect_compression(tmp_path, capsys):
    src = MODELS / "mlp_float32.tflite"
    pruned, clustered = tmp_path / "p.tflite", tmp_path / "c.tflite"
    assert cli_main(["prune", str(src), "-o", str(pruned), "--sparsity", "0.6", "--block", "1x4",
                     "--sparse-format"]) == 0
    assert cli_main(["cluster", str(pruned), "-o", str(clustered), "--clusters", "8"]) == 0
    capsys.readouterr()
    assert cli_main(["inspect", str(pruned), "--compression", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert all(r["sparsity"] >= 0.6 for r in info["tensors"])
    assert cli_main(["inspect", str(clustered), "--compression"]) == 0
    text = capsys.readouterr().out
    assert "gzip" in text and "bits/w" in text
    assert cli_main(["prune", str(src), "-o", str(pruned), "--sparsity", "2"]) == 2
