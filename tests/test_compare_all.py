"""compare_all / ``quantcore compare --numerics all``: LiteRT's three numerics paths and
quantcore's three paths side by side, and a report that names which paths disagree,
by how much, and whether an operator made the difference or inherited it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.compare import ComparePathsResult, compare_all
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
    r = compare_all(_quantize_model(), [halves], oracle=oracle)
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
    r = compare_all(b.to_bytes(), seed=1, oracle=oracle)
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
    assert data["equal"] is True and data["paths"] == ["reference", "optimized", "xnnpack"]
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
