"""``quantcore micro``: the TFLite Micro arena computed from the model, checked against
what TFLM's RecordingMicroAllocator measures (quantcore.micro_oracle), and the CLI.

The planned head must equal TFLM's byte for byte; the persistent tail and the total are
estimates that must be within 10%.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantcore.cli import main
from quantcore.errors import InputError
from quantcore.micro import PlannedBuffer, analyze, greedy_plan, parse_size, resolver_code
from quantcore.schema import read_model
from quantcore.schema.builder import ModelBuilder

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODELS = sorted(FIXTURES.glob("*.tflite"))


@pytest.fixture(scope="module")
def micro():
    pytest.importorskip("tflite_micro")
    from quantcore.micro_oracle import MicroOracle
    o = MicroOracle()
    yield o
    o.close()


def assert_arena_matches(micro, data: bytes, *, tol: float = 0.10) -> None:
    measured = micro.allocations(data)
    assert measured.ok, measured.error
    r = analyze(data)
    assert r.head == measured.head, f"head {r.head} != TFLM's {measured.head}"
    assert abs(r.total - measured.total) <= tol * measured.total, \
        f"total {r.total} vs TFLM's {measured.total} (tail {r.tail} vs {measured.tail})"


# ---------------------------------------------------------------------------
# Against TFLM
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_fixture_arena_vs_tflm(micro, path):
    """Every fixture model TFLM can allocate: same head, total and tail within 10%; a
    model TFLM cannot run is reported with at least one unsupported operator."""
    data = path.read_bytes()
    measured = micro.allocations(data)
    r = analyze(data)
    if not measured.ok:
        assert r.unsupported, f"TFLM refuses the model ({measured.error}) but no op is flagged"
        return
    assert r.head == measured.head
    assert abs(r.total - measured.total) <= 0.10 * measured.total
    assert abs(r.tail - measured.tail) <= 0.10 * measured.tail
    assert r.flash_bytes == len(data)


RECURRENT = sorted((FIXTURES.parent / "recurrent").glob("*.tflite"))


@pytest.mark.parametrize("path", RECURRENT, ids=[p.name for p in RECURRENT])
def test_recurrent_fixture_arena_vs_tflm(micro, path):
    """The recurrent fixtures (fused LSTMs, WHILE loops, resource variables with
    CALL_ONCE): same head as TFLM's recording allocator, total and tail within 10%
    (the LSTM's OpDataLSTM and the resource-variable buffers are in the tail)."""
    assert_arena_matches(micro, path.read_bytes())
    r = analyze(path.read_bytes())
    measured = micro.allocations(path.read_bytes())
    assert abs(r.tail - measured.tail) <= 0.10 * measured.tail


def test_resource_variable_bytes_counts_each_variable_once():
    """One buffer per distinct VAR_HANDLE shared_name, of the assigned value's size
    (ASSIGN_VARIABLE in the init subgraph and the main graph share it), plus the
    MicroResourceVariables object and its slots."""
    from quantcore.micro import RESOURCE_VARIABLE, RESOURCE_VARIABLES, align_up, \
        resource_variable_bytes

    micro_dir = FIXTURES.parent / "micro"
    m = read_model((micro_dir / "wake_word_stream_int8_state.tflite").read_bytes())
    # one int8 [1, 12, 10] window
    assert resource_variable_bytes(m) == align_up(RESOURCE_VARIABLES) + \
        align_up(RESOURCE_VARIABLE) + align_up(120)
    m = read_model((micro_dir / "wake_word_stream_float32.tflite").read_bytes())
    assert resource_variable_bytes(m) == align_up(RESOURCE_VARIABLES) + \
        align_up(RESOURCE_VARIABLE) + align_up(480)
    assert resource_variable_bytes(read_model((micro_dir / "person_detect_int8.tflite")
                                              .read_bytes())) == 0


def _mean_model(dt, keep: bool) -> bytes:
    b = ModelBuilder()
    q = {} if dt == np.float32 else dict(scale=0.05, zero_point=0 if dt == np.int16 else 3)
    x = b.add_input("x", [1, 6, 5, 7], dt, **q)
    h = b.add_tensor("h", [1, 6, 5, 7], dt, **q)
    b.add_operator("RELU", [x], [h])
    axis = b.add_constant("axis", np.array([1, 2], np.int32))
    y = b.add_tensor("y", [1, 1, 1, 7] if keep else [1, 7], dt, **q)
    b.add_operator("MEAN", [h, axis], [y], keep_dims=keep)
    z = b.add_tensor("z", [1, 1, 1, 7] if keep else [1, 7], dt, **q)
    b.add_operator("SUM", [y, b.add_constant("a2", np.array([0], np.int32))], [z], keep_dims=True)
    b.mark_outputs(z)
    return b.to_bytes()


@pytest.mark.parametrize("dt", [np.int8, np.int16, np.float32], ids=["int8", "int16", "float32"])
@pytest.mark.parametrize("keep", [True, False])
def test_reduce_scratch_buffers_vs_tflm(micro, dt, keep):
    """MEAN/SUM request an int32 accumulator (integer types) and two index buffers."""
    assert_arena_matches(micro, _mean_model(dt, keep))


def test_transpose_conv_and_mirror_pad_scratch_vs_tflm(micro):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_input("x", [1, 4, 4, 3], np.int8, scale=0.05, zero_point=1)
    shape = b.add_constant("shape", np.array([1, 8, 8, 5], np.int32))
    w = b.add_constant("w", rng.integers(-127, 128, (5, 3, 3, 3)).astype(np.int8),
                       scale=np.full(5, 0.01, np.float32), zero_point=np.zeros(5, np.int64))
    bias = b.add_constant("b", np.zeros(5, np.int32), scale=np.full(5, 5e-4, np.float32),
                          zero_point=np.zeros(5, np.int64))
    y = b.add_tensor("y", [1, 8, 8, 5], np.int8, scale=0.1, zero_point=0)
    b.add_operator("TRANSPOSE_CONV", [shape, w, x, bias], [y], padding="SAME", stride_w=2,
                   stride_h=2, version=3)
    pads = b.add_constant("p", np.array([[0, 0], [1, 1], [2, 2], [0, 0]], np.int32))
    z = b.add_tensor("z", [1, 10, 12, 5], np.int8, scale=0.1, zero_point=0)
    b.add_operator("MIRROR_PAD", [y, pads], [z], mode="REFLECT")
    m = b.add_tensor("m", [1, 5], np.int8, scale=0.1, zero_point=0)
    b.add_operator("REDUCE_MAX", [z, b.add_constant("ax", np.array([1, 2], np.int32))], [m])
    b.mark_outputs(m)
    assert_arena_matches(micro, b.to_bytes())


def _chain_model(sizes) -> bytes:
    """A chain of 1-D PADs (or RESHAPEs for equal sizes) through tensors of the given
    sizes, then an ADD of the last tensor with the first one of the same size, which
    keeps that one alive: equal sizes exercise the planner's tie-break."""
    b = ModelBuilder()
    q = dict(scale=0.1, zero_point=0)
    prev = b.add_input("x", [sizes[0]], np.int8, **q)
    chain = [prev]
    for k, n in enumerate(sizes[1:]):
        r = b.add_tensor(f"r{k}", [n], np.int8, **q)
        grow = n - b.subgraph.tensors[prev].shape[0]
        if grow:
            b.add_operator("PAD", [prev, b.add_constant(f"p{k}", np.array([[0, grow]], np.int32))], [r])
        else:
            b.add_operator("RESHAPE", [prev, b.add_constant(f"s{k}", np.array([n], np.int32))], [r])
        chain.append(r)
        prev = r
    first_same = next(t for t in chain if b.subgraph.tensors[t].shape == [sizes[-1]])
    y = b.add_tensor("y", [sizes[-1]], np.int8, **q)
    b.add_operator("ADD", [first_same, prev], [y])
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("sizes", [[16, 16, 16, 16], [8, 24, 40, 40, 56], [32, 32, 48, 48, 64],
                                   [5, 17, 33, 33, 33]])
def test_planner_tie_breaks_vs_tflm(micro, sizes):
    assert_arena_matches(micro, _chain_model(sizes))


def test_offline_planned_offsets_vs_tflm(micro):
    """OfflineMemoryAllocation metadata: [version, subgraph, n, offset per tensor];
    -1 plans online."""
    b = ModelBuilder()
    q = dict(scale=0.1, zero_point=0)
    x = b.add_input("x", [64], np.int8, **q)
    h = b.add_tensor("h", [64], np.int8, **q)
    b.add_operator("RELU", [x], [h])
    y = b.add_tensor("y", [64], np.int8, **q)
    b.add_operator("RELU", [h], [y])
    b.mark_outputs(y)
    n = len(b.subgraph.tensors)
    offsets = [-1] * n
    offsets[x], offsets[y] = 0, 64   # x and y offline, h online
    b.add_metadata("OfflineMemoryAllocation", np.array([1, 0, n] + offsets, "<i4").tobytes())
    data = b.to_bytes()
    assert_arena_matches(micro, data)
    r = analyze(data)
    assert {bb.name: bb.offset for bb in r.buffers} == {"x": 0, "y": 64, "h": 128}
    assert any("offline" in n for n in r.notes)


def test_call_once_subgraph_vs_tflm(micro):
    """CALL_ONCE walks its init subgraph inside the calling operator's step."""
    b = ModelBuilder()
    q = dict(scale=0.1, zero_point=0)
    x = b.add_input("x", [32], np.int8, **q)
    y = b.add_tensor("y", [32], np.int8, **q)
    b.add_operator("CALL_ONCE", [], [], init_subgraph_index=1)
    b.add_operator("RELU", [x], [y])
    b.mark_outputs(y)
    main_sg = b.subgraph
    b.new_subgraph("init")
    a = b.add_tensor("a", [48], np.int8, **q)
    c = b.add_tensor("c", [48], np.int8, **q)
    b.add_operator("ZEROS_LIKE", [a], [c])
    b.subgraph.inputs.append(a)
    b.mark_outputs(c)
    b.subgraph = main_sg
    data = b.to_bytes()
    measured = micro.allocations(data)
    if not measured.ok:
        pytest.skip(f"TFLM refuses the hand-built CALL_ONCE model: {measured.error}")
    assert analyze(data).head == measured.head


# ---------------------------------------------------------------------------
# Planner and report, without TFLM
# ---------------------------------------------------------------------------
def test_greedy_planner_reuses_gaps():
    bufs = [PlannedBuffer("tensor", 0, i, f"t{i}", s, s, f, la)
            for i, (s, f, la) in enumerate([(32, 0, 1), (64, 1, 2), (32, 2, 3), (16, 3, 4)])]
    head = greedy_plan(bufs)
    # sorted by size: t1 (64) at 0; t0 and t2 (32) overlap t1 in time: after it (64);
    # t2 overlaps t0? no (0-1 vs 2-3) -> t2 takes t0's offset; t3 overlaps t2 only.
    assert [b.offset for b in bufs] == [64, 0, 64, 0]
    assert head == 96


def test_greedy_planner_equal_sizes_higher_index_first():
    bufs = [PlannedBuffer("tensor", 0, i, f"t{i}", 16, 16, 0, 1) for i in range(3)]
    greedy_plan(bufs)
    assert [b.offset for b in bufs] == [32, 16, 0]


def test_analysis_flags_what_tflm_lacks():
    r = analyze(FIXTURES / "mlp_dynamic.tflite")
    assert {u["op"] for u in r.unsupported} == {"FULLY_CONNECTED"}
    assert all("hybrid" in u["reason"] for u in r.unsupported)
    r = analyze(FIXTURES / "dilated_int16x8.tflite")
    assert any(u["op"] == "SPACE_TO_BATCH_ND" and "INT16" in u["reason"] for u in r.unsupported)


def test_resolver_lists_each_operator_once():
    m = read_model(FIXTURES / "resnet_tiny_int8.tflite")
    code = resolver_code(m)
    assert "tflite::MicroMutableOpResolver<7>" in code
    for call in ("AddQuantize", "AddConv2D", "AddAdd", "AddMean", "AddFullyConnected",
                 "AddSoftmax", "AddDequantize"):
        assert code.count(f"op_resolver.{call}()") == 1


def test_timeline_peak_is_the_head():
    r = analyze(FIXTURES / "resnet_tiny_int8.tflite")
    assert len(r.timeline) == len(read_model(FIXTURES / "resnet_tiny_int8.tflite").subgraphs[0].operators)
    peak = r.timeline[r.peak_row]
    assert peak["extent"] == r.head and peak["index"] == r.peak_op
    assert all(row["extent"] <= r.head for row in r.timeline)


def test_parse_size():
    assert parse_size("256K") == 262144
    assert parse_size("1.5M") == 1572864
    assert parse_size("300000") == 300000
    assert parse_size("64KiB") == 65536
    with pytest.raises(InputError):
        parse_size("lots")


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def test_cli_micro_json(capsys):
    path = FIXTURES / "small_cnn_int8.tflite"
    assert main(["micro", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"ops", "unsupported", "resolver", "arena", "flash_bytes", "peak_op"} <= set(d)
    assert d["arena"]["total"] == d["arena"]["head"] + d["arena"]["tail"]
    assert d["flash_bytes"] == path.stat().st_size
    assert d["unsupported"] == []
    assert isinstance(d["peak_op"], int) and d["peak_op"] >= 0
    assert all({"op", "version", "supported"} <= set(o) for o in d["ops"])


def test_cli_micro_arena_limit(capsys):
    path = str(FIXTURES / "small_cnn_int8.tflite")
    r = analyze(path)
    assert main(["micro", path, "--arena-limit", str(r.total)]) == 0
    assert "fits" in capsys.readouterr().out
    assert main(["micro", path, "--arena-limit", "8K"]) == 1
    captured = capsys.readouterr()
    assert "DOES NOT FIT" in captured.out
    assert "does not fit" in captured.err and "8,192" in captured.err


def test_cli_micro_text_reports_unsupported(capsys):
    assert main(["micro", str(FIXTURES / "mlp_dynamic.tflite")]) == 0
    out = capsys.readouterr().out
    assert "UNSUPPORTED: hybrid" in out and "MicroMutableOpResolver" in out


def test_cli_micro_bad_size(capsys):
    assert main(["micro", str(FIXTURES / "mlp_int8.tflite"), "--arena-limit", "big"]) == 2
    assert "not a size" in capsys.readouterr().err


def test_cli_micro_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plan.png"
    assert main(["micro", str(FIXTURES / "resnet_tiny_int8.tflite"), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _if_model() -> bytes:
    b = ModelBuilder()
    q = dict(scale=0.1, zero_point=0)
    cond = b.add_input("cond", [1], np.bool_)
    x = b.add_input("x", [40], np.int8, **q)
    y = b.add_tensor("y", [40], np.int8, **q)
    b.add_operator("IF", [cond, x], [y], then_subgraph_index=1, else_subgraph_index=2)
    z = b.add_tensor("z", [40], np.int8, **q)
    b.add_operator("ADD", [x, y], [z])
    b.mark_outputs(z)
    main_sg = b.subgraph
    for name, sizes in (("then", [40, 64]), ("else", [40, 96])):
        b.new_subgraph(name)
        a = b.add_input("a", [40], np.int8, **q)
        p = b.add_tensor("p", [sizes[1]], np.int8, **q)
        b.add_operator("PAD", [a, b.add_constant("pp", np.array([[0, sizes[1] - 40]], np.int32))], [p])
        s = b.add_tensor("s", [40], np.int8, **q)
        b.add_operator("STRIDED_SLICE", [p, b.add_constant("b0", np.array([0], np.int32)),
                                         b.add_constant("e0", np.array([40], np.int32)),
                                         b.add_constant("s0", np.array([1], np.int32))], [s])
        b.mark_outputs(s)
    b.subgraph = main_sg
    return b.to_bytes()


def test_if_subgraph_lifetimes_vs_tflm(micro):
    """IF walks then/else inside its step, each one scope step further."""
    data = _if_model()
    measured = micro.allocations(data)
    if not measured.ok:
        pytest.skip(f"TFLM refuses the hand-built IF model: {measured.error}")
    assert analyze(data).head == measured.head
