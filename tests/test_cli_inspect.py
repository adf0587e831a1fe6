"""``quantcore inspect``: content of the text and JSON output, and the error contract
(exit code 2 and exactly one ``quantcore: error:`` line on stderr, traceback only
with ``--debug``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quantcore import cli
from quantcore.cli import main
from quantcore.inspect import format_text, inspect_model
from quantcore.schema import Operator, TensorType, read_model
from quantcore.schema.builder import ModelBuilder

CORPUS = Path(__file__).parent / "fixtures" / "malformed"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "models").glob("*.tflite"))
FIXTURE_PARAMS = ([pytest.param(p, id=p.stem) for p in FIXTURES] or
                  [pytest.param(None, marks=pytest.mark.skip(reason="no fixture models yet"))])


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rich_model() -> bytes:
    """Per-channel conv and depthwise, int16 activations, a float16 constant, a
    dynamic batch, a custom op and a string constant, with a signature."""
    b = ModelBuilder("cli test model")
    x = b.add_input("input", [1, 6, 6, 2], np.int8, scale=0.5, zero_point=-1,
                    shape_signature=[-1, 6, 6, 2])
    w_scales = np.linspace(0.01, 0.08, 8).astype(np.float32)
    w = b.add_constant("conv_w", np.ones((8, 3, 3, 2), np.int8), scale=w_scales, zero_point=0,
                       quantized_dimension=0)
    bias = b.add_constant("conv_b", np.zeros(8, np.int32), scale=0.5 * w_scales, zero_point=0)
    y = b.add_tensor("conv_out", [1, 3, 3, 8], np.int8, scale=0.25, zero_point=3,
                     shape_signature=[-1, 3, 3, 8])
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=2, stride_h=2,
                   fused_activation_function="RELU6")
    dw_scales = np.full(8, 0.02, np.float32)
    dw = b.add_constant("dw_w", np.ones((1, 3, 3, 8), np.int8), scale=dw_scales, zero_point=0,
                        quantized_dimension=3)
    z = b.add_tensor("dw_out", [1, 1, 1, 8], np.int8, scale=0.25, zero_point=3)
    b.add_operator("DEPTHWISE_CONV_2D", [y, dw, -1], [z], padding="VALID", stride_w=1, stride_h=1,
                   depth_multiplier=1, dilation_w_factor=2, dilation_h_factor=2)
    q16 = b.add_tensor("as_int16", [1, 1, 1, 8], np.int16, scale=0.001, zero_point=0)
    b.add_operator("QUANTIZE", [z], [q16])
    c = b.add_tensor("custom_out", [1, 1, 1, 8], np.int16, scale=0.001, zero_point=0)
    b.model.subgraphs[0].operators.append(Operator(
        opcode_index=b.opcode("CUSTOM", custom_code="MyCustom"), inputs=[q16], outputs=[c],
        custom_options=b"\x01\x02\x03"))
    b.add_constant("half_table", np.array([0.5, 1.5], np.float16))
    b.add_constant("labels", np.array([b"cat", b"dog"], dtype=object))
    b.mark_outputs(c)
    b.add_signature("serving_default")
    b.add_metadata("min_runtime_version", b"2.3.0\0\0\0\0\0\0\0\0\0\0\0")
    return b.to_bytes()


@pytest.fixture(scope="module")
def rich_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("models") / "rich.tflite"
    p.write_bytes(rich_model())
    return p


# ---------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------
def test_text_output(rich_path, capsys):
    code, out, err = run_cli(["inspect", rich_path], capsys)
    assert code == 0 and err == ""
    size = rich_path.stat().st_size
    header = out.splitlines()[0]
    assert f"{size:,} bytes" in header and "schema version 3" in header
    assert "cli test model" in header
    assert "operators: 4 (CONV_2D 1, CUSTOM(MyCustom) 1, DEPTHWISE_CONV_2D 1, QUANTIZE 1)" in out
    assert "min_runtime_version" in out and "'2.3.0'" in out
    assert "signature 'serving_default'" in out
    for line in ("padding=SAME stride=2x2 act=RELU6",
                 "padding=VALID stride=1x1 dilation=2x2"):
        assert line in out
    rows = {line.split()[1]: line for line in out.splitlines()
            if line.startswith("    ") and len(line.split()) > 2 and line.split()[0].isdigit()}
    assert "per-channel x8 dim=0 scale=[0.01..0.08] zp=0" in rows["conv_w"]
    assert "per-channel x8 dim=3 scale=[0.02..0.02] zp=0" in rows["dw_w"]
    assert "int16" in rows["as_int16"] and "scale=0.001 zp=0" in rows["as_int16"]
    assert "float16" in rows["half_table"] and "4B" in rows["half_table"]
    assert "string" in rows["labels"]
    assert "[-1, 6, 6, 2]" in rows["input"]  # the signature column, shown as it differs
    assert "(in)" in rows["input"] and "(out)" in rows["custom_out"]


def test_text_columns_are_aligned(rich_path, capsys):
    _, out, _ = run_cli(["inspect", rich_path], capsys)
    lines = out.splitlines()
    start = lines.index("  tensors:") + 1
    table = lines[start:]
    header = table[0]
    for col in ("name", "type", "shape"):  # columns never empty
        pos = header.index(col)
        for row in table[1:]:
            # every cell of a left-aligned column starts where its header starts
            assert row[pos - 1] == " " and row[pos] != " ", (col, row)
    quant = header.index("quantization")
    for row in table[1:]:
        assert len(row) <= quant or row[quant - 1] == " " and row[quant] != " ", row


def test_json_output(rich_path, capsys):
    code, out, err = run_cli(["inspect", rich_path, "--json"], capsys)
    assert code == 0 and err == ""
    info = json.loads(out)
    model = read_model(rich_path)
    sg = model.subgraphs[0]
    assert info["file_size"] == rich_path.stat().st_size
    assert info["op_counts"] == {"CONV_2D": 1, "CUSTOM(MyCustom)": 1, "DEPTHWISE_CONV_2D": 1,
                                 "QUANTIZE": 1}
    ops = info["subgraphs"][0]["operators"]
    assert [o["op"] for o in ops] == [model.op_name(op) for op in sg.operators]
    assert [o["inputs"] for o in ops] == [op.inputs for op in sg.operators]
    assert ops[0]["options"]["padding"] == "SAME" and ops[0]["options"]["stride_w"] == 2
    assert ops[0]["options"]["fused_activation_function"] == "RELU6"
    assert ops[3]["custom_options_bytes"] == 3
    tensors = info["subgraphs"][0]["tensors"]
    assert [t["type"] for t in tensors] == [t.type_name for t in sg.tensors]
    assert [t["shape"] for t in tensors] == [t.shape for t in sg.tensors]
    for t, ours in zip(tensors, sg.tensors):
        q = ours.qparams()
        if q is None:
            assert t["quantization"] is None
            continue
        assert t["quantization"]["count"] == len(q[0])
        assert t["quantization"]["scale"] == [float(s) for s in q[0]]  # every value, in full
        assert t["quantization"]["zero_point"] == [int(z) for z in q[1]]
    w = next(t for t in tensors if t["name"] == "conv_w")
    assert w["constant"] and w["bytes"] == 8 * 3 * 3 * 2 and w["quantization"]["per_channel"]
    assert tensors[0]["shape_signature"] == [-1, 6, 6, 2]
    assert w["shape_signature"] is None
    assert info["signature_defs"][0]["inputs"] == {"input": 0}
    assert info["metadata"][0]["value"] == "2.3.0"


@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_fixture_models(path, capsys):
    model = read_model(path)
    code, out, err = run_cli(["inspect", path], capsys)
    assert code == 0 and err == ""
    for op in model.subgraphs[0].operators:
        assert model.op_name(op) in out
    code, out, err = run_cli(["inspect", path, "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    for s, sg in enumerate(model.subgraphs):
        tensors = info["subgraphs"][s]["tensors"]
        assert [t["type"] for t in tensors] == [t.type_name for t in sg.tensors]
        for t, ours in zip(tensors, sg.tensors):
            q = ours.qparams()
            assert (t["quantization"] is None) == (q is None)
            if q is not None:
                assert t["quantization"]["count"] == len(q[0])
                assert t["quantization"]["quantized_dimension"] == ours.quantization.quantized_dimension


def test_control_flow_model(capsys):
    code, out, _ = run_cli(["inspect", CORPUS / "while_valid.tflite"], capsys)
    assert code == 0
    assert "subgraph 1 'cond'" in out and "subgraph 2 'body'" in out
    assert "cond_subgraph_index=1 body_subgraph_index=2" in out
    assert "pot_scale_int16" not in out  # options equal to their schema default are hidden


def test_inspect_model_accepts_model_and_bytes():
    data = rich_model()
    from_bytes = inspect_model(data)
    from_model = inspect_model(read_model(data))
    assert from_bytes["file_size"] == len(data) and from_model["file_size"] is None
    from_bytes["file_size"] = None
    assert from_bytes == from_model
    assert format_text(from_model).startswith("schema version 3")


def test_no_validate_shows_inconsistent_models(capsys):
    path = CORPUS / "opcode_index_out_of_range.tflite"
    code, _, err = run_cli(["inspect", path], capsys)
    assert code == 2 and "opcode_index" in err
    code, out, err = run_cli(["inspect", path, "--no-validate"], capsys)
    assert code == 0 and "<opcode 7?>" in out


def test_no_validate_never_crashes_on_the_corpus(capsys):
    """Every corpus file either fails to decode (exit 2) or is shown."""
    for path in sorted(CORPUS.glob("*.tflite")):
        for extra in ([], ["--json"]):
            code, out, err = run_cli(["inspect", path, "--no-validate", *extra], capsys)
            assert code in (0, 2), path
            if code == 0:
                assert out and not err
                if extra:
                    json.loads(out)
            else:
                assert err.count("\n") == 1 and err.startswith("quantcore: error: ")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.fixture
def bad_files(tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((CORPUS / "base_valid.tflite").read_bytes()[:100])
    text = tmp_path / "notes.txt"
    text.write_text("this is not a model\n" * 10)
    return {"truncated": truncated, "missing": tmp_path / "absent.tflite", "not_tflite": text,
            "directory": tmp_path, "empty": CORPUS / "empty.tflite"}


@pytest.mark.parametrize("case,needle", [
    ("truncated", "100-byte buffer"),
    ("missing", "cannot read model file"),
    ("not_tflite", "not a .tflite model"),
    ("directory", "cannot read model file"),
    ("empty", "file is 0 bytes"),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_errors_are_one_line_and_exit_2(bad_files, capsys, case, needle, as_json):
    argv = ["inspect", bad_files[case]] + (["--json"] if as_json else [])
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("quantcore: error: ") and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_traceback(bad_files, capsys, where):
    argv = (["--debug", "inspect", bad_files["truncated"]] if where == "before"
            else ["inspect", bad_files["truncated"], "--debug"])
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert "Traceback" in err and "ModelFormatError" in err
    assert err.rstrip().splitlines()[-1].startswith("quantcore: error: ")


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["inspect"], ["no-such-command"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


def test_commands_registry():
    names = [c.name for c in cli._commands]
    assert "inspect" in names and len(names) == len(set(names))
    for c in cli._commands:
        assert callable(c.add_arguments) and callable(c.run) and c.help
    parser = cli.build_parser()
    args = parser.parse_args(["inspect", "m.tflite", "--json"])
    assert args.command == "inspect" and args.json and args.debug is False


def test_module_entry_point(bad_files):
    proc = subprocess.run([sys.executable, "-m", "quantcore.cli", "inspect", str(bad_files["missing"])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("quantcore: error: ")


def test_string_and_float16_types_in_json(rich_path):
    info = inspect_model(rich_path)
    by_name = {t["name"]: t for t in info["subgraphs"][0]["tensors"]}
    assert by_name["labels"]["type"] == "STRING" and by_name["labels"]["constant"]
    assert by_name["half_table"]["type"] == "FLOAT16"
    assert by_name["as_int16"]["type"] == "INT16"
    assert TensorType[by_name["conv_w"]["type"]] == TensorType.INT8
