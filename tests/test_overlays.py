"""Model Explorer overlays (quantcore.overlays), ``quantcore view`` without a browser,
and ``debug --html``.

The keys: graph ids and operator node ids computed from the .tflite alone must be
the ones Model Explorer's own TFLite adapter (``ai_edge_model_explorer_adapter``,
installed with ``quantcore[view]``) gives, for every fixture model, multi-subgraph
(WHILE) models included; those tests skip when the adapter is missing.
"""
from __future__ import annotations

import json
import math
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from quantcore import overlays as ov
from quantcore.cli import main
from quantcore.schema import read_model, write_model

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = FIXTURES / "models"
ALL_MODELS = sorted(MODELS.glob("*.tflite")) + sorted((FIXTURES / "recurrent").glob("*.tflite"))
FLOAT = MODELS / "small_cnn_float32.tflite"
QUANT = MODELS / "small_cnn_int8.tflite"
CALIB = MODELS / "small_cnn_calib.npy"
LSTM = FIXTURES / "recurrent" / "lstm_k3_float32.tflite"


def adapter_graphs(path: Path) -> list[dict]:
    """The graphs Model Explorer's built-in TFLite adapter makes of a .tflite, in order."""
    adapter = pytest.importorskip("ai_edge_model_explorer_adapter",
                                  reason="Model Explorer's adapter is not installed (pip install 'quantcore[view]')")
    text = adapter.ConvertFlatbufferDirectlyToJson(adapter.VisualizeConfig(), str(path))
    return [g for collection in json.loads(text) for g in collection["subgraphs"]]


# ---------------------------------------------------------------------------
# keys against Model Explorer's adapter
# ---------------------------------------------------------------------------
def test_fixture_lists_are_not_empty():
    assert len(ALL_MODELS) > 50
    assert any(len(read_model(p).subgraphs) > 1 for p in ALL_MODELS)


@pytest.mark.parametrize("path", ALL_MODELS, ids=lambda p: p.name)
def test_keys_match_model_explorer_adapter(path):
    graphs = adapter_graphs(path)
    model = read_model(path)
    assert [g["id"] for g in graphs] == ov.graph_ids(model)
    for s, (g, sg) in enumerate(zip(graphs, model.subgraphs)):
        nodes = {n["id"]: n for n in g["nodes"]}
        for o, op in enumerate(sg.operators):
            node = nodes.get(ov.op_key(o))
            assert node is not None, (s, o)
            assert node["label"] == model.op_name(op).lower(), (s, o, node["label"])
        # a key is looked up as an output tensor name first: no tensor may be named like a key
        names = {sg.tensors[t].name for op in sg.operators for t in op.outputs if t >= 0}
        assert not names & {ov.op_key(o) for o in range(len(sg.operators))}
    # every overlay of a whole-model analysis lands on an existing node of the right graph
    from quantcore.micro import analyze

    micro = read_model(path, micro=True)
    data = ov.micro_overlays(micro, analyze(path))[0].to_json(micro)
    by_id = {g["id"]: {n["id"] for n in g["nodes"]} for g in graphs}
    assert data and set(data) <= set(by_id)
    for gid, g in data.items():
        assert set(g["results"]) <= by_id[gid]


def test_graph_ids_without_names(tmp_path):
    """No subgraph name: the signature key, else main / subgraph_<i> (checked against the adapter)."""
    from quantcore.schema.model import SignatureDef

    m = read_model(LSTM)
    for sg in m.subgraphs:
        sg.name = None
    m.signature_defs = [SignatureDef(signature_key="serve", subgraph_index=0)]
    p = tmp_path / "unnamed.tflite"
    p.write_bytes(write_model(m))
    assert ov.graph_ids(read_model(p)) == ["serve", "subgraph_1", "subgraph_2"]
    m.signature_defs = [SignatureDef(signature_key="body_sig", subgraph_index=2)]
    p2 = tmp_path / "unnamed2.tflite"
    p2.write_bytes(write_model(m))
    assert ov.graph_ids(read_model(p2)) == ["main", "subgraph_1", "body_sig"]
    if __import__("importlib").util.find_spec("ai_edge_model_explorer_adapter") is not None:
        assert [g["id"] for g in adapter_graphs(p)] == ov.graph_ids(read_model(p))
        assert [g["id"] for g in adapter_graphs(p2)] == ov.graph_ids(read_model(p2))


def test_micro_overlay_covers_every_subgraph_and_marks_the_peak():
    from quantcore.micro import analyze

    m = read_model(LSTM, micro=True)
    report = analyze(LSTM)
    (arena,) = ov.micro_overlays(m, report)
    data = arena.to_json(m)
    assert list(data) == ov.graph_ids(m)                      # main, cond, body
    peak = report.timeline[report.peak_row]
    gid = ov.graph_ids(m)[peak["subgraph"]]
    assert data[gid]["results"][str(peak["index"])]["bgColor"] == ov.RED
    assert sum(r.get("bgColor") == ov.RED for g in data.values() for r in g["results"].values()) == 1
    for row in report.timeline:
        v = data[ov.graph_ids(m)[row["subgraph"]]]["results"][str(row["index"])]["value"]
        assert v >= row["live_bytes"]


# ---------------------------------------------------------------------------
# the overlays of each tool
# ---------------------------------------------------------------------------
def _thresholds_ascending(t):
    return all(a["value"] < b["value"] for a, b in zip(t, t[1:]))


def test_threshold_directions():
    colour = lambda v, t: next((x["bgColor"] for x in t if v <= x["value"]), None)  # noqa: E731
    for t in (ov.SQNR_THRESHOLDS, ov.LSB_THRESHOLDS, ov.COUNT_THRESHOLDS, ov.RMSE_LSB_THRESHOLDS):
        assert _thresholds_ascending(t)
    # higher SQNR is better: green high, red low
    assert colour(60.0, ov.SQNR_THRESHOLDS) == ov.GREEN and colour(5.0, ov.SQNR_THRESHOLDS) == ov.RED
    # more differing elements / LSB is worse
    assert colour(0, ov.COUNT_THRESHOLDS) == ov.GREEN and colour(5000, ov.COUNT_THRESHOLDS) == ov.RED
    assert colour(0, ov.LSB_THRESHOLDS) == ov.GREEN and colour(1, ov.LSB_THRESHOLDS) == ov.YELLOW
    assert colour(9, ov.LSB_THRESHOLDS) == ov.RED
    assert colour(0.29, ov.RMSE_LSB_THRESHOLDS) == ov.GREEN and colour(7, ov.RMSE_LSB_THRESHOLDS) == ov.RED


@pytest.fixture(scope="module")
def debug_result():
    from quantcore.debug import debug

    return debug(FLOAT, QUANT, CALIB, max_samples=8)


def test_debug_overlays(debug_result):
    m = read_model(QUANT)
    out = ov.debug_overlays(m, debug_result)
    assert [o.metric for o in out] == ["local_sqnr", "sqnr", "lsb", "mse", "denylist"]
    data = {o.metric: o.to_json(m)["main"] for o in out}
    json.dumps(data, allow_nan=False)
    assert data["local_sqnr"]["thresholds"] == ov.SQNR_THRESHOLDS
    for r in debug_result.rows:
        key = str(r.op_index)
        got = data["sqnr"]["results"][key]["value"]
        assert math.isclose(got, r.sqnr_db, rel_tol=1e-5)
        loc = data["local_sqnr"]["results"][key]
        if r.local_sqnr_db == math.inf:
            assert loc == {"value": "exact", "bgColor": ov.GREEN}
        else:
            assert math.isclose(loc["value"], r.local_sqnr_db, rel_tol=1e-5)
        assert math.isclose(data["lsb"]["results"][key]["value"], r.rmse_lsb, rel_tol=1e-5)
        assert math.isclose(data["mse"]["results"][key]["value"], r.mse, rel_tol=1e-5)
    # MSE thresholds: lower is better, scaled to the model
    assert data["mse"]["thresholds"][0]["bgColor"] == ov.GREEN and _thresholds_ascending(data["mse"]["thresholds"])
    # the sort picks the primary overlay
    debug_result.sort = "rmse"
    try:
        assert ov.debug_overlays(m, debug_result)[0].metric == "lsb"
    finally:
        debug_result.sort = "local"


def test_compare_overlays(oracle):
    from quantcore.compare import compare

    m = read_model(QUANT)
    result = compare(QUANT, numerics="reference", oracle=oracle)
    count, lsb = ov.compare_overlays(m, result)
    c, lsb_data = count.to_json(m)["main"], lsb.to_json(m)["main"]
    assert c["thresholds"] == ov.COUNT_THRESHOLDS
    for r in result.rows:
        assert c["results"][str(r.op_index)]["value"] == sum(
            x.num_different for x in result.rows if x.op_index == r.op_index)
        if not r.dtype.startswith("float"):
            assert lsb_data["results"][str(r.op_index)]["value"] == r.max_lsb
    # a float-only operator (the final DEQUANTIZE) has no LSB
    deq = [o for o, op in enumerate(m.subgraphs[0].operators) if m.op_name(op) == "DEQUANTIZE"]
    assert deq and all(str(o) not in lsb_data["results"] for o in deq)


def test_compare_all_overlays_name_the_disagreeing_path(oracle):
    from quantcore.compare import compare_all

    m = read_model(QUANT)
    result = compare_all(QUANT, oracle=oracle)
    paths, ours, lsb = ov.compare_all_overlays(m, result)
    p = paths.to_json(m)["main"]["results"]
    for r in result.rows:
        cat = p[str(r.op_index)]
        assert cat["bgColor"] == ov.PATH_CATEGORIES.get(cat["value"], cat["bgColor"])
        differ = {k for k, d in r.litert.items() if d is not None and not d.equal}
        if not differ:
            assert cat["value"] in ("paths agree", "not compared") or len(
                [x for x in result.rows if x.op_index == r.op_index]) > 1
        if differ == {"reference~xnnpack", "optimized~xnnpack"} and not r.dtype.startswith("float"):
            assert cat["value"].startswith("xnnpack differs")
            made = any(not r.local_pairs[k].equal for k in differ if r.local_pairs.get(k) is not None)
            assert cat["value"].endswith("(inherited)") != made
    # quantcore equals LiteRT on every path of this model (tests/test_models_paths.py), and
    # TFLite Micro in micro mode when the tflite-micro package ran beside them
    want = "quantcore = LiteRT" + (" and TFLite Micro" if "micro" in result.paths else "")
    assert {v["value"] for v in ours.to_json(m)["main"]["results"].values()} == {want}
    assert max(v["value"] for v in lsb.to_json(m)["main"]["results"].values()) >= 1


def _diff(**kw):
    from quantcore.compare import Difference, PathsRow

    d = lambda n: None if n is None else Difference(n, float(n), float(n))  # noqa: E731
    lit = {"reference~optimized": d(kw.get("ro", 0)), "reference~xnnpack": d(kw.get("rx", 0)),
           "optimized~xnnpack": d(kw.get("ox", 0))}
    local = {"reference~optimized": d(kw.get("lro", 0)), "reference~xnnpack": d(kw.get("lrx", 0)),
             "optimized~xnnpack": d(kw.get("lox", 0))}
    return PathsRow(0, "ADD", 1, "t", kw.get("dtype", "int8"), 10, {}, lit, {}, {}, local_pairs=local)


def test_path_category_rules():
    assert ov.path_category(_diff())[0] == "paths agree"
    assert ov.path_category(_diff(ro=None, rx=None, ox=None))[0] == "not compared"
    assert ov.path_category(_diff(rx=1, ox=1, lrx=1, lox=1))[:2] == ("xnnpack differs", ov.PURPLE)
    assert ov.path_category(_diff(rx=1, ox=1))[:2] == ("xnnpack differs (inherited)", ov.LIGHT_PURPLE)
    assert ov.path_category(_diff(ro=2, ox=2, lro=1))[0] == "optimized differs"
    assert ov.path_category(_diff(ro=1, rx=1, lro=1))[0] == "reference differs"
    assert ov.path_category(_diff(ro=1, rx=1, ox=1, lro=1))[0] == "all three differ"
    assert ov.path_category(_diff(ro=1, rx=None, ox=None, lro=None))[0] == "reference != optimized"


def test_diff_overlays():
    from quantcore.diff import diff

    old, new = MODELS / "small_cnn_int8.tflite", MODELS / "small_cnn_int8_pertensor.tflite"
    result = diff(old, new)
    mo, mn = read_model(old), read_model(new)
    out = ov.diff_overlays(mo, mn, result)
    assert [o.metric for o in out] == ["changes", "detail", "lsb", "old"]
    changes = out[0].to_json(mn)["main"]["results"]
    assert len(changes) == len(mn.subgraphs[0].operators)
    # per-channel -> per-tensor: the convolutions' weights changed quantization
    convs = [o for o, op in enumerate(mn.subgraphs[0].operators) if mn.op_name(op) == "CONV_2D"]
    assert all(changes[str(o)]["value"] == "quantization changed" for o in convs)
    assert "per-channel" in out[1].to_json(mn)["main"]["results"][str(convs[0])]["value"]
    for k, v in changes.items():
        assert v["bgColor"] == ov.DIFF_CATEGORIES[v["value"]]
    # identical models: everything unchanged, 0 LSB
    same = ov.diff_overlays(mo, mo, diff(old, old))
    assert {v["value"] for v in same[0].to_json(mo)["main"]["results"].values()} == {"unchanged"}
    assert {v["value"] for v in same[2].to_json(mo)["main"]["results"].values()} == {0}


def test_overlay_rejects_wrong_keys():
    m = read_model(QUANT)
    o = ov.Overlay("x", "x")
    o.set(0, 999, 1.0)
    with pytest.raises(ov.InputError, match="operator 999"):
        o.to_json(m)
    o = ov.Overlay("x", "x")
    o.set(3, 0, 1.0)
    with pytest.raises(ov.InputError, match="subgraph 3"):
        o.to_json(m)
    o = ov.Overlay("x", "x")
    o.set(0, 0, float("nan"))                 # no value: no result
    assert o.to_json(m) == {}


def test_write_overlays_paths(tmp_path):
    m = read_model(QUANT)
    a, b = ov.Overlay("first", "a"), ov.Overlay("second", "b")
    a.set(0, 0, 1)
    b.set(0, 1, "x", ov.RED)
    paths = ov.write_overlays([a, b], m, tmp_path / "out.json")
    assert paths == [str(tmp_path / "out.json"), str(tmp_path / "out.second.json")]
    assert json.loads(Path(paths[1]).read_text()) == {"main": {"name": "b", "results": {
        "1": {"value": "x", "bgColor": ov.RED}}}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.second.json"]   # no temp files


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------
def test_cli_model_explorer_outputs(tmp_path, capsys):
    assert main(["compare", str(QUANT), "--model-explorer", str(tmp_path / "c.json")]) == 0
    assert main(["debug", str(FLOAT), str(QUANT), "--data", str(CALIB), "--max-samples", "4",
                 "--model-explorer", str(tmp_path / "d.json"), "--html", str(tmp_path / "r.html")]) == 0
    assert main(["diff", str(QUANT), str(MODELS / "small_cnn_int8_pertensor.tflite"),
                 "--model-explorer", str(tmp_path / "f.json")]) == 1
    assert main(["micro", str(QUANT), "--json", "--model-explorer", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr()
    json.loads(out.out[out.out.index("{"):])        # micro --json: stdout stays JSON
    assert "wrote" in out.err and "quantcore view" in out.err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.json", "c.lsb.json", "d.denylist.json", "d.json", "d.lsb.json", "d.mse.json",
                     "d.sqnr.json", "f.detail.json", "f.json", "f.lsb.json", "f.old.json", "m.json", "r.html"]
    for n in names:
        if n.endswith(".json"):
            data = json.loads((tmp_path / n).read_text())
            assert list(data) == ["main"] and data["main"]["results"]


def test_cli_view_without_extra_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "model_explorer", None)       # import fails
    monkeypatch.setitem(sys.modules, "model_explorer.server", None)
    assert main(["view", str(QUANT), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'quantcore[view]'" in err[0]
    # --view fails before the work
    assert main(["debug", str(FLOAT), str(QUANT), "--data", str(CALIB), "--view",
                 "--html", str(tmp_path / "never.html")]) == 2
    assert "pip install 'quantcore[view]'" in capsys.readouterr().err
    assert not (tmp_path / "never.html").exists()
    assert main(["compare", str(QUANT), "--view"]) == 2


def test_view_url_format():
    from quantcore.view import view_url

    url = view_url("127.0.0.1", 8123, "m/model.tflite", ["a.json", "b.json"])
    assert url.startswith("http://127.0.0.1:8123/?data=")
    data = json.loads(urllib.parse.unquote(url.split("?data=", 1)[1]))
    assert data["models"][0]["adapterId"] == "builtin_tflite_flatbuffer"
    assert data["models"][0]["url"].endswith("/m/model.tflite") and Path(data["models"][0]["url"]).is_absolute()
    # the first overlay colours the graph: Model Explorer selects the run it adds last
    assert [Path(p).name for p in data["nodeData"]] == ["b.json", "a.json"]
    assert data["nodeDataTargets"] == ["model.tflite", "model.tflite"]


def test_check_overlay(tmp_path):
    from quantcore.errors import InputError
    from quantcore.view import check_overlay

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        check_overlay(bad, QUANT)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"some_graph": {"results": {"0": {"value": 1}}}}))
    assert "another model" in check_overlay(other, QUANT)[0]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"results": {"0": {"value": 1}}}))
    assert check_overlay(bare, QUANT) == []


def test_server_starts_offline_and_stops(tmp_path):
    pytest.importorskip("model_explorer", reason="Model Explorer is not installed (pip install 'quantcore[view]')")
    from quantcore.view import ModelExplorerServer

    m = read_model(QUANT)
    o = ov.Overlay("x", "x")
    o.set(0, 1, 2.0)
    (path,) = ov.write_overlays([o], m, tmp_path / "x.json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with ModelExplorerServer(QUANT, [path]) as srv:
        assert srv.url.startswith(f"http://127.0.0.1:{srv.port}/?data=")
        with opener.open(srv.base_url + "/api/v1/check_new_version", timeout=10) as r:
            assert json.loads(r.read())["version"] == ""            # the update check answers offline
        with opener.open(srv.base_url + "/api/v1/read_text_file?path=" + urllib.parse.quote(path),
                         timeout=10) as r:
            assert json.loads(json.loads(r.read())["content"]) == o.to_json(m)
        proc = srv.proc
    assert proc.poll() is not None


def test_debug_html_report(debug_result, tmp_path):
    from quantcore.report_html import debug_html, write_debug_html

    text = debug_html(debug_result, float_model=str(FLOAT), quant_model=str(QUANT), data=str(CALIB))
    assert text.startswith("<!DOCTYPE html>") and "http" not in text.split("<body>", 1)[1].replace(
        "data:image/png", "")                                       # self-contained
    rows = [line for line in text.splitlines() if line.startswith("<tr data-op=")]
    assert [int(r.split('"')[1]) for r in rows] == [r.op_index for r in debug_result.rows]
    if __import__("importlib").util.find_spec("matplotlib") is not None:
        assert 'src="data:image/png;base64,' in text
    else:
        assert "plot-missing" in text
    no_plot = debug_html(debug_result, plots=False)
    assert "data:image/png" not in no_plot
    write_debug_html(debug_result, tmp_path / "r.html", plots=False)
    assert (tmp_path / "r.html").read_text() == no_plot
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_debug_html_lists_suggested_layers(debug_result):
    from quantcore.report_html import debug_html

    r = debug_result.rows[0]
    old = (list(debug_result.suggested), r.suggested, r.quantizable)
    try:
        r.suggested, r.quantizable = True, True
        debug_result.suggested = [r]
        text = debug_html(debug_result, plots=False)
        assert '<ul id="denylist">' in text and f'<li data-op="{r.op_index}">' in text
        assert "quantcore quantize" in text and "--denylist" in text
    finally:
        debug_result.suggested, r.suggested, r.quantizable = old
    assert np.isfinite(debug_result.output_sqnr_db)


def test_compare_all_overlay_names_micro_when_only_micro_differs():
    """The 'quantcore' overlay lists every path quantcore missed, TFLite Micro's
    included (it used to list LiteRT's three only, leaving an empty label)."""
    from types import SimpleNamespace

    from quantcore.compare import Difference

    m = read_model(QUANT)
    same, off = Difference(0, 0.0, 0.0), Difference(3, 1.0, 1.0)
    row = SimpleNamespace(op_index=0, dtype="int8", litert={}, local_pairs={},
                          ours={"reference": same, "optimized": same, "xnnpack": same, "micro": off})
    result = SimpleNamespace(rows=[row], paths=("reference", "optimized", "xnnpack", "micro"))
    _, ours, _ = ov.compare_all_overlays(m, result)
    assert ours.to_json(m)["main"]["results"]["0"]["value"] == "quantcore != oracle on micro"
