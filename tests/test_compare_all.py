"""compare_all / ``quantcore compare --numerics all``: LiteRT's three numerics paths and
quantcore's three paths side by side, and a report that names which paths disagree,
by how much, and whether an operator made the difference or inherited it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.compare import MICRO_SKIPPED, ComparePathsResult, compare_all
from quantcore.micro_oracle import available as micro_available
from quantcore.schema.builder import ModelBuilder


def _quantize_model(n: int = 19) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", [n], np.float32)
    q = b.add_tensor("q", [n], np.int8, scale=0.25, zero_point=0)
    b.add_operator("QUANTIZE", [x], [q])
    b.mark_outputs(q)
    return b.to_bytes()


def _mean_chain_model(c: int = 37) -> bytes:
    """QUANTIZE -> MEAN over H, W -> ADD (the ADD only inherits differences)."""
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, c], np.float32)
    q = b.add_tensor("q", [1, 4, 4, c], np.int8, scale=0.25, zero_point=0)
    b.add_operator("QUANTIZE", [x], [q])
    axis = b.add_constant("axis", np.array([1, 2], np.int32))
    mean = b.add_tensor("mean", [1, 1, 1, c], np.int8, scale=0.125, zero_point=-3)
    b.add_operator("MEAN", [q, axis], [mean], keep_dims=True)
    y = b.add_tensor("y", [1, 1, 1, c], np.int8, scale=0.25, zero_point=1)
    b.add_operator("ADD", [mean, mean], [y])
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.fixture(scope="module")
def halves() -> np.ndarray:
    return ((np.arange(19) - 9 + 0.5) * 0.25).astype(np.float32)   # every value a tie


def test_quantize_ties_name_the_disagreeing_paths(oracle, halves):
    r = compare_all(_quantize_model(), [halves], oracle=oracle, micro=False)
    assert isinstance(r, ComparePathsResult) and r.equal and r.exit_code == 0
    assert not r.litert_errors and not r.quantcore_errors
    (row,) = r.rows
    assert row.op == "QUANTIZE" and row.num_elements == 19
    assert all(d is not None and d.equal for d in row.ours.values())
    ro, rx, ox = (row.litert[k] for k in ("reference~optimized", "reference~xnnpack", "optimized~xnnpack"))
    # optimized: 16 elements in 8-wide blocks round to even, the 3-element tail like the
    # reference (away from zero); XNNPACK rounds all 19 to even.
    assert ro.max_lsb == 1 and 0 < ro.count <= 16
    assert rx.max_lsb == 1 and rx.count > ro.count
    assert ox.count == rx.count - ro.count
    assert row.arithmetic == {"reference": "reference", "optimized": "litert-optimized",
                              "xnnpack": "xnnpack"}
    assert f"reference != optimized (1 LSB on {ro.count} of 19 elements, made by this op: " \
           "optimized runs litert-optimized)" in row.explanation
    assert "reference != xnnpack" in row.explanation and "xnnpack runs xnnpack" in row.explanation
    text = r.format()
    assert "first operator where LiteRT's paths disagree: 0 QUANTIZE" in text
    assert "experimental_preserve_all_tensors" in text and "identical" in text


def test_mean_over_hw_made_by_mean_inherited_by_add(oracle):
    rng = np.random.default_rng(0)
    x = ((rng.integers(-200, 200, (1, 4, 4, 37)) + 0.5) * 0.25).astype(np.float32)
    r = compare_all(_mean_chain_model(), [x], oracle=oracle)
    assert r.equal and r.exit_code == 0
    quant, mean, add = r.rows
    assert (quant.op, mean.op, add.op) == ("QUANTIZE", "MEAN", "ADD")
    # MEAN's own optimized arithmetic (16-channel blocks ties-up) differs from the reference
    # on identical inputs; the ADD only passes differences on.
    assert mean.local["optimized"] is not None and not mean.local["optimized"].equal
    assert "made by this op" in mean.explanation and "optimized runs litert-optimized" in mean.explanation
    assert add.local["optimized"].equal and add.local["xnnpack"].equal
    assert not add.litert["reference~optimized"].equal
    assert "inherited from its inputs" in add.explanation and "made by this op" not in add.explanation


def test_identical_paths_report_agreement(oracle):
    b = ModelBuilder()
    x = b.add_input("x", [2, 9], np.int8, scale=0.1, zero_point=3)
    y = b.add_tensor("y", [2, 9], np.int8, scale=0.1, zero_point=3)
    b.add_operator("RELU6", [x], [y])
    b.mark_outputs(y)
    r = compare_all(b.to_bytes(), seed=4, oracle=oracle)
    assert r.equal and r.rows[0].explanation == ""
    assert all(d.equal for d in r.rows[0].litert.values())
    assert "LiteRT's numerics paths agree on every exposed tensor" in r.format()


def test_reference_abort_is_reported_and_other_paths_compared(oracle):
    """A tiny-scale int8 SOFTMAX aborts LiteRT's reference path; the optimized and
    XNNPACK paths (which run LiteRT's float table) are still compared."""
    b = ModelBuilder()
    x = b.add_input("x", [2, 10], np.int8, scale=1e-9, zero_point=0)
    y = b.add_tensor("y", [2, 10], np.int8, scale=1 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [x], [y], beta=1.0)
    b.mark_outputs(y)
    r = compare_all(b.to_bytes(), seed=1, oracle=oracle, micro=False)
    assert set(r.litert_errors) == {"reference"} and "reference" in r.quantcore_errors
    row = r.rows[0]
    assert row.ours["reference"] is None and row.ours["optimized"].equal and row.ours["xnnpack"].equal
    assert row.litert["optimized~xnnpack"].equal and row.litert["reference~optimized"] is None
    assert r.exit_code == 0
    assert "LiteRT reference (BUILTIN_REF) failed" in r.format()


def test_quantcore_mismatch_on_one_path_fails(oracle, halves, monkeypatch):
    """A planted one-LSB error in quantcore's XNNPACK QUANTIZE is flagged on that path only."""
    from quantcore.runtime.ops import _paths_unary

    real = _paths_unary.eval_quantize

    def broken(p, x, reference_eval):
        out = real(p, x, reference_eval)
        if p.how == "xnnpack":
            out = [(out[0].astype(np.int16) + (np.arange(out[0].size) == 2)).astype(np.int8)]
        return out

    monkeypatch.setattr(_paths_unary, "eval_quantize", broken)
    r = compare_all(_quantize_model(), [halves], oracle=oracle)
    row = r.rows[0]
    assert row.ours["reference"].equal and row.ours["optimized"].equal
    assert row.ours["xnnpack"].count == 1 and row.ours["xnnpack"].max_lsb == 1
    assert not r.equal and r.exit_code == 1
    assert "NO 1" in r.format()


def test_cli_compare_numerics_all_text_and_json(tmp_path, capsys, halves):
    model = tmp_path / "q.tflite"
    model.write_bytes(_quantize_model())
    inputs = tmp_path / "x.npy"
    np.save(inputs, halves)
    out = tmp_path / "r.json"
    assert main(["compare", str(model), "--inputs", str(inputs), "--numerics", "all", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ref=" in text and "opt=" in text and "xnn=" in text
    assert "reference != optimized (1 LSB on" in text
    data = json.loads(out.read_text())
    micro = ["micro"] if micro_available() else []
    assert data["equal"] is True and data["paths"] == ["reference", "optimized", "xnnpack"] + micro
    row = data["rows"][0]
    assert row["litert_paths"]["reference~xnnpack"]["max_lsb"] == 1
    assert row["ours_vs_litert"]["optimized"]["count"] == 0
    assert row["arithmetic"]["optimized"] == "litert-optimized"


def test_cli_compare_single_path_unchanged(tmp_path, capsys, halves):
    model = tmp_path / "q.tflite"
    model.write_bytes(_quantize_model())
    inputs = tmp_path / "x.npy"
    np.save(inputs, halves)
    assert main(["compare", str(model), "--inputs", str(inputs), "--numerics", "optimized"]) == 0
    assert "equal to LiteRT (optimized)" in capsys.readouterr().out


def test_xnnpack_unwritten_dequantize_outputs_are_not_compared(oracle):
    """Constant float16 weights behind a DEQUANTIZE: the XNNPACK delegate unpacks them
    itself and never writes the DEQUANTIZE output, so that path is not compared there
    (instead of reporting garbage as a difference) and a note says why."""
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 3], np.float32)
    w16 = b.add_constant("w16", np.linspace(-1, 1, 2 * 3 * 3 * 3).reshape(2, 3, 3, 3).astype(np.float16))
    w = b.add_tensor("w", [2, 3, 3, 3], np.float32)
    b.add_operator("DEQUANTIZE", [w16], [w])
    bias = b.add_constant("bias", np.zeros(2, np.float32))
    y = b.add_tensor("y", [1, 4, 4, 2], np.float32)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    r = compare_all(b.to_bytes(), seed=0, oracle=oracle)
    deq = r.rows[0]
    assert deq.op == "DEQUANTIZE" and deq.ours["xnnpack"] is None and deq.litert["reference~xnnpack"] is None
    assert deq.ours["reference"].equal and deq.ours["optimized"].equal
    assert any("DEQUANTIZE/DENSIFY" in n for n in r.notes)
    assert r.rows[1].ours["xnnpack"].close


# ---------------------------------------------------------------------------
# Naming what a path runs; TFLite Micro as a fourth path
# ---------------------------------------------------------------------------
def _conv_model(depthwise: bool, seed: int = 3) -> bytes:
    """One int8 per-channel CONV_2D / DEPTHWISE_CONV_2D with random weights: XNNPACK's
    fp32 requantization and LiteRT's other paths disagree by an LSB on some outputs."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.add_input("x", [1, 9, 9, 8], np.int8, scale=0.03, zero_point=-4)
    shape = (1, 3, 3, 8) if depthwise else (16, 3, 3, 8)
    cout = shape[3] if depthwise else shape[0]
    scales = rng.uniform(0.002, 0.01, cout).astype(np.float32)
    w = b.add_constant("w", rng.integers(-127, 128, shape).astype(np.int8), scale=scales,
                       zero_point=np.zeros(cout, np.int64), quantized_dimension=3 if depthwise else 0)
    bias = b.add_constant("b", rng.integers(-2000, 2000, cout).astype(np.int32),
                          scale=(scales * np.float32(0.03)).astype(np.float32),
                          zero_point=np.zeros(cout, np.int64))
    y = b.add_tensor("y", [1, 9, 9, cout], np.int8, scale=0.05, zero_point=2)
    if depthwise:
        b.add_operator("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1,
                       stride_h=1, depth_multiplier=1)
    else:
        b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
def test_conv_difference_names_the_path_that_makes_it(oracle, depthwise):
    """LiteRT's reference and XNNPACK paths disagree on a convolution: the explanation
    must name XNNPACK's own requantization as the cause on the xnnpack side (it used to
    say "xnnpack runs same as reference", naming the reference for the path that
    differs from it)."""
    r = compare_all(_conv_model(depthwise), seed=0, oracle=oracle, micro=False)
    (row,) = r.rows
    assert r.equal, r.format()
    rx = row.litert["reference~xnnpack"]
    assert rx is not None and not rx.equal, "LiteRT's reference and XNNPACK paths agree here"
    assert row.local["xnnpack"] is not None and not row.local["xnnpack"].equal
    assert row.arithmetic["reference"] == "reference"
    assert row.arithmetic["xnnpack"] == "xnnpack (fp32 requantization)"
    assert row.arithmetic["optimized"].startswith("litert-optimized")
    assert "reference != xnnpack" in row.explanation
    assert "made by this op: xnnpack runs xnnpack (fp32 requantization)" in row.explanation
    assert "same as reference" not in row.explanation
    assert "runs reference" not in row.explanation
    for key, d in row.litert.items():
        if d is not None and not d.equal and "made by this op" in row.explanation:
            a, b = key.split("~")
            part = next(p for p in row.explanation.split("; ") if p.startswith(f"{a} != {b}"))
            # every path named as running something is one of the pair, and not the reference
            named = [p for p in ("reference", "optimized", "xnnpack") if f"{p} runs" in part]
            assert set(named) <= {a, b} - {"reference"}, part


def _fc_model(seed: int = 0) -> bytes:
    """int8 FULLY_CONNECTED, per-tensor weights: TFLM requantizes with the fixed-point
    multiplier, LiteRT's reference path in double (runtime/micro.py)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.add_input("x", [4, 48], np.int8, scale=0.037, zero_point=5)
    w = b.add_constant("w", rng.integers(-127, 128, (24, 48)).astype(np.int8), scale=0.0071,
                       zero_point=0)
    bias = b.add_constant("b", rng.integers(-3000, 3000, 24).astype(np.int32),
                          scale=np.float32(0.037) * np.float32(0.0071), zero_point=0)
    y = b.add_tensor("y", [4, 24], np.int8, scale=0.11, zero_point=-3)
    b.add_operator("FULLY_CONNECTED", [x, w, bias], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def test_numerics_all_includes_tflite_micro(oracle):
    """With tflite-micro installed, --numerics all runs TFLM beside LiteRT's three
    paths: quantcore's micro mode against TFLM, and TFLM against LiteRT's reference."""
    pytest.importorskip("tflite_micro")
    found = None
    for seed in range(8):
        r = compare_all(_fc_model(seed), seed=seed, oracle=oracle)
        d = r.rows[0].tflm_vs_reference
        if d is not None and not d.equal:
            found = r
            break
    assert found is not None, "TFLM and LiteRT's reference path agree on every FC tried"
    r = found
    assert r.paths == ("reference", "optimized", "xnnpack", "micro")
    assert r.equal and r.exit_code == 0 and not r.litert_errors
    (row,) = r.rows
    assert row.ours["micro"] is not None and row.ours["micro"].equal
    assert row.arithmetic["micro"].startswith("tflite-micro")
    assert "reference != micro" in row.explanation and "made by this op: micro runs tflite-micro" \
        in row.explanation
    text = r.format()
    assert "mic=" in text
    assert "first operator where TFLite Micro and LiteRT's reference path disagree: 0 " \
           "FULLY_CONNECTED" in text
    assert r.to_json()["paths"][-1] == "micro"
    assert set(row.litert) == {"reference~optimized", "reference~xnnpack", "optimized~xnnpack"}
    assert r.to_json()["rows"][0]["tflm_vs_litert_reference"]["count"] == row.tflm_vs_reference.count


def test_numerics_all_micro_mismatch_fails(oracle, monkeypatch):
    """A planted error in quantcore's micro FULLY_CONNECTED shows in the micro column
    and makes the comparison fail."""
    pytest.importorskip("tflite_micro")
    from quantcore.runtime.micro import MicroRequant

    real = MicroRequant.apply
    monkeypatch.setattr(MicroRequant, "apply", lambda self, acc: real(self, acc) + 1)
    r = compare_all(_fc_model(), seed=0, oracle=oracle)
    assert "micro" in r.paths and not r.rows[0].ours["micro"].equal and r.exit_code == 1


def test_numerics_all_says_micro_was_skipped(oracle, halves, monkeypatch):
    """Without tflite-micro, the three LiteRT paths are compared and a note says TFLM
    was skipped, with the install hint."""
    import quantcore.micro_oracle

    monkeypatch.setattr(quantcore.micro_oracle, "available", lambda: False)
    r = compare_all(_quantize_model(), [halves], oracle=oracle)
    assert r.paths == ("reference", "optimized", "xnnpack") and r.exit_code == 0
    assert MICRO_SKIPPED in r.notes
    assert "pip install 'quantcore[micro]'" in r.format() and "mic=" not in r.format()


def test_cli_numerics_all_shows_the_micro_column(tmp_path, capsys):
    pytest.importorskip("tflite_micro")
    model = tmp_path / "fc.tflite"
    model.write_bytes(_fc_model())
    assert main(["compare", str(model), "--numerics", "all"]) == 0
    text = capsys.readouterr().out
    assert "mic=" in text and "TFLite Micro" in text


def test_streaming_model_with_resource_variables(oracle):
    """A stateful model (VAR_HANDLE's RESOURCE output is an opaque object in LiteRT):
    compared on every path without tripping over it; single-path compare too."""
    from pathlib import Path

    from quantcore.compare import compare

    path = Path(__file__).parent / "fixtures" / "micro" / "wake_word_stream_int8.tflite"
    r = compare_all(path, seed=0, oracle=oracle)
    assert r.equal and r.exit_code == 0, r.format()
    handle = next(row for row in r.rows if row.op == "VAR_HANDLE")
    assert all(d is None for d in handle.ours.values())
    assert any(row.op == "READ_VARIABLE" and row.ours["reference"].equal for row in r.rows)
    single = compare(path, numerics="reference", oracle=oracle)
    assert single.exit_code == 0 and all(row.op != "VAR_HANDLE" for row in single.rows)
