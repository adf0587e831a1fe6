"""quantcore's per-operator results as Model Explorer overlays ("node data" files).

Model Explorer (``pip install 'quantcore[view]'``, google-ai-edge/model-explorer) draws
a .tflite graph and colours its nodes from *node data* JSON files. Each file is one
"run" (one column of the side tables; the selected run colours the graph)::

    {GRAPH_ID: {"name": "...", "results": {KEY: {"value": 3.2, "bgColor"?: "#..."}},
                "thresholds": [{"value": v, "bgColor": c}, ...]}}

KEY is the operator's index in its subgraph's ``operators`` (the node id Model
Explorer's built-in TFLite adapter gives operator ``i``: ``"i"``), GRAPH_ID the id that
adapter gives the subgraph (:func:`graph_ids`): the subgraph's name, else the key of
a signature on it, else ``"main"`` for subgraph 0 and ``"subgraph_<i>"`` for the
others (``src/builtin-adapter/direct_flatbuffer_to_json_graph_convert.cc``,
``GetSubgraphName``). Both are computed from the .tflite alone; tests/test_overlays.py
checks them against the adapter's own graph JSON for every fixture model.

Colours. A numeric value is coloured by the run's ``thresholds``: the first entry
whose ``value`` the result does not exceed wins (Model Explorer's rule), so every list
here is ascending and its colours are chosen per metric: for SQNR (higher is better)
the low thresholds are red, for differing elements, LSB and MSE (lower is better) the
low thresholds are green. A string value is a category; its colour is given with the
result (``bgColor``). JSON has no infinity: an exact layer (SQNR +inf) is the category
``"exact"``; a tensor of a different shape is ``"shape differs"``.

One call gives a list of :class:`Overlay` (one per metric, the primary one first);
:func:`write_overlays` writes the first to ``OUT.json`` and the others beside it as
``OUT.<metric>.json``:

================  ===================================================================
``compare``       ``differing`` elements per operator (primary), ``lsb``: max |diff|
                  in LSB (integer outputs)
``compare_all``   ``paths``: which LiteRT path disagrees with the other two, and whether
                  this operator made the difference or inherited it (primary);
                  ``quantcore``: on which paths quantcore differs from LiteRT;
                  ``lsb``: largest difference between two LiteRT paths in LSB
``debug``         ``local_sqnr`` (the SQNR the layer adds by itself), ``sqnr`` (whole
                  model), ``mse``, ``lsb`` (RMS error in LSB), ``denylist`` (suggested
                  layers); the primary one follows the result's sort
``diff``          ``changes`` per operator of NEW (added, op changed, quantization
                  changed, weights changed, output differs, unchanged; primary), ``detail``
                  (the same with what changed), ``lsb`` (max |old - new| in LSB), and
                  for OLD ``old`` (removed, ...)
``micro``         ``arena``: live tensor-arena bytes while each operator runs, the peak
                  operator in red (primary)
================  ===================================================================
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from quantcore.errors import InputError
from quantcore.schema.model import Model

# Colours (Material 300 shades: Model Explorer picks a dark or light text colour itself)
GREEN = "#81c784"
LIGHT_GREEN = "#c5e1a5"
YELLOW = "#fff176"
ORANGE = "#ffb74d"
RED = "#e57373"
GREY = "#e0e0e0"
BLUE = "#64b5f6"
LIGHT_BLUE = "#bbdefb"
PURPLE = "#ba68c8"
LIGHT_PURPLE = "#e1bee7"
LIGHT_ORANGE = "#ffe0b2"
LIGHT_RED = "#ffcdd2"
TEAL = "#4db6ac"

_TOP = 1e300        # the last threshold of a list: every finite value is below it

#: Thresholds of lower-is-better counts and LSB distances: 0 green, 1 yellow, <= 4
#: orange, more red.
LSB_THRESHOLDS = [{"value": 0, "bgColor": GREEN}, {"value": 1, "bgColor": YELLOW},
                  {"value": 4, "bgColor": ORANGE}, {"value": _TOP, "bgColor": RED}]
#: Differing elements: none green, a few (<= 10) yellow, <= 1000 orange, more red.
COUNT_THRESHOLDS = [{"value": 0, "bgColor": GREEN}, {"value": 10, "bgColor": YELLOW},
                    {"value": 1000, "bgColor": ORANGE}, {"value": _TOP, "bgColor": RED}]
#: SQNR in dB, higher is better: <= 20 red, <= 30 orange, <= 40 yellow, above green
#: (rounding alone costs an int8 tensor whose range fits its values about 40-50 dB).
SQNR_THRESHOLDS = [{"value": 20, "bgColor": RED}, {"value": 30, "bgColor": ORANGE},
                   {"value": 40, "bgColor": YELLOW}, {"value": _TOP, "bgColor": GREEN}]
#: RMS error in quantization steps, lower is better: pure rounding of a well-fitted
#: range is 1/sqrt(12) = 0.29 LSB, so <= 0.5 green, <= 1 yellow, <= 4 orange, more red.
RMSE_LSB_THRESHOLDS = [{"value": 0.5, "bgColor": GREEN}, {"value": 1, "bgColor": YELLOW},
                       {"value": 4, "bgColor": ORANGE}, {"value": _TOP, "bgColor": RED}]

ADAPTER_ID = "builtin_tflite_flatbuffer"


# ---------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------
def graph_ids(model: Model) -> list[str]:
    """The graph id Model Explorer's TFLite adapter gives each subgraph, in order: the
    subgraph's name, else the key of the first signature on it, else ``"main"`` for
    subgraph 0 and ``"subgraph_<i>"`` for the others."""
    out = []
    for s, sg in enumerate(model.subgraphs):
        name = sg.name or ""
        if not name:
            for sig in model.signature_defs or []:
                if sig.subgraph_index == s and sig.signature_key:
                    name = sig.signature_key
                    break
        out.append(name or ("main" if s == 0 else f"subgraph_{s}"))
    return out


def op_key(op_index: int) -> str:
    """The node id of operator ``op_index`` of a subgraph: its index."""
    return str(int(op_index))


# ---------------------------------------------------------------------------
# the node-data file
# ---------------------------------------------------------------------------
@dataclass
class Overlay:
    """One Model Explorer run: a value per operator, by subgraph.

    ``results[subgraph][op_index] = {"value": ..., "bgColor"?: ...}``. ``metric`` names
    the file (``OUT.<metric>.json``); ``name`` is the run's name in the UI.
    """
    metric: str
    name: str
    results: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    thresholds: list[dict[str, Any]] | None = None
    model: str | None = None          # which model it belongs to (a label; diff: "old"/"new")

    def set(self, subgraph: int, op_index: int, value: Any, bg: str | None = None) -> None:
        if isinstance(value, float):
            if math.isnan(value):
                return
            value = float(f"{value:.6g}")     # 6 significant digits
        r: dict[str, Any] = {"value": value}
        if bg is not None:
            r["bgColor"] = bg
        self.results.setdefault(subgraph, {})[int(op_index)] = r

    def get(self, subgraph: int, op_index: int) -> Any:
        r = self.results.get(subgraph, {}).get(int(op_index))
        return None if r is None else r["value"]

    def to_json(self, model: Model) -> dict:
        """``{graph id: per-graph data}`` for every subgraph with results."""
        ids = graph_ids(model)
        out: dict[str, Any] = {}
        for s in sorted(self.results):
            if s >= len(ids):
                raise InputError(f"overlay {self.metric!r} has results for subgraph {s}, "
                                 f"the model has {len(ids)}")
            if ids[s] in out:
                raise InputError(f"subgraphs share the graph id {ids[s]!r}: Model Explorer cannot "
                                 "tell them apart")
            n = len(model.subgraphs[s].operators)
            bad = [o for o in self.results[s] if not 0 <= o < n]
            if bad:
                raise InputError(f"overlay {self.metric!r}: operator {bad[0]} is not in subgraph {s} "
                                 f"({n} operators)")
            g: dict[str, Any] = {"name": self.name,
                                 "results": {op_key(o): r for o, r in sorted(self.results[s].items())}}
            if self.thresholds:
                g["thresholds"] = self.thresholds
            out[ids[s]] = g
        return out


def overlay_paths(path: str | os.PathLike, overlays: list[Overlay]) -> list[str]:
    """Where :func:`write_overlays` puts each overlay: the first at ``path``, the
    others at ``<path without .json>.<metric>.json``."""
    path = os.fspath(path)
    stem = path[:-5] if path.lower().endswith(".json") else path
    return [path if k == 0 else f"{stem}.{o.metric}.json" for k, o in enumerate(overlays)]


def write_overlays(overlays: list[Overlay], model: Model, path: str | os.PathLike) -> list[str]:
    """Write every overlay (atomically) and return the paths, primary first."""
    from quantcore.schema import atomic_write

    if not overlays:
        raise InputError("nothing to write: no overlay")
    paths = overlay_paths(path, overlays)
    for o, p in zip(overlays, paths):
        atomic_write(p, json.dumps(o.to_json(model), indent=1, allow_nan=False).encode())
    return paths


def _model(model: Any) -> Model:
    if isinstance(model, Model):
        return model
    from quantcore.schema import read_model
    return read_model(model)


# ---------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------
def compare_overlays(model: Any, result: Any) -> list[Overlay]:
    """:func:`quantcore.compare.compare` (one path) per operator of subgraph 0: how
    many output elements differ from LiteRT (all outputs of the operator together) and
    the largest difference in LSB (integer outputs; a float output has no LSB)."""
    _model(model)
    p = result.numerics
    count = Overlay("differing", f"quantcore vs LiteRT {p}: differing elements", thresholds=COUNT_THRESHOLDS)
    lsb = Overlay("lsb", f"quantcore vs LiteRT {p}: max |diff| (LSB)", thresholds=LSB_THRESHOLDS)
    for r in result.rows:
        prev = count.get(0, r.op_index)
        count.set(0, r.op_index, r.num_different + (prev or 0))
        if r.dtype.startswith("float"):
            continue
        if math.isinf(r.max_lsb):
            lsb.set(0, r.op_index, "shape differs", RED)
            continue
        old = lsb.get(0, r.op_index)
        if not isinstance(old, str):
            lsb.set(0, r.op_index, max(r.max_lsb, old or 0.0))
    return [count, lsb]


_PATH_SHORT = {"reference": "reference", "optimized": "optimized", "xnnpack": "xnnpack"}
_PAIRS = ("reference~optimized", "reference~xnnpack", "optimized~xnnpack")
# who differs from the other two, by the set of pairs that differ
_ODD_ONE = {frozenset({"reference~optimized", "optimized~xnnpack"}): "optimized",
            frozenset({"reference~xnnpack", "optimized~xnnpack"}): "xnnpack",
            frozenset({"reference~optimized", "reference~xnnpack"}): "reference"}
_MADE_COLOURS = {"optimized": BLUE, "xnnpack": PURPLE, "reference": ORANGE, "all": RED, "other": RED}
_INHERITED_COLOURS = {"optimized": LIGHT_BLUE, "xnnpack": LIGHT_PURPLE, "reference": LIGHT_ORANGE,
                      "all": LIGHT_RED, "other": LIGHT_RED}

#: The categories of the ``paths`` overlay (``compare --numerics all``) and their colours.
PATH_CATEGORIES: dict[str, str] = {"paths agree": GREEN, "not compared": GREY, "float rounding": LIGHT_GREEN}
for _who in ("optimized", "xnnpack", "reference"):
    PATH_CATEGORIES[f"{_who} differs"] = _MADE_COLOURS[_who]
    PATH_CATEGORIES[f"{_who} differs (inherited)"] = _INHERITED_COLOURS[_who]
PATH_CATEGORIES["all three differ"] = RED
PATH_CATEGORIES["all three differ (inherited)"] = LIGHT_RED


def path_category(row: Any) -> tuple[str, str, int]:
    """``(category, colour, rank)`` of one :class:`quantcore.compare.PathsRow`: which
    LiteRT path disagrees with the two others (``"xnnpack differs"``), with
    ``" (inherited)"`` when this operator's own arithmetic agrees on every disagreeing
    pair (quantcore evaluated each path's kernel on the reference path's inputs), so
    the difference came from its inputs. ``rank`` orders categories by how much they
    say (an operator with several outputs takes the highest)."""
    known = {k: d for k, d in row.litert.items() if d is not None}
    if not known:
        return "not compared", GREY, 0
    differ = {k for k, d in known.items() if not d.equal}
    if not differ:
        return "paths agree", GREEN, 1
    floats = row.dtype.startswith("float")
    if floats and all(known[k].close for k in differ):
        return "float rounding", LIGHT_GREEN, 2
    if len(differ) == 3:
        who = "all"
    else:
        who = _ODD_ONE.get(frozenset(differ)) if len(known) == 3 else None
        if who is None:          # a path not exposed: name the pair(s)
            who = "other"
    local = [row.local_pairs.get(k) for k in differ]
    made = any(d is not None and not d.equal for d in local)
    inherited = not made and all(d is not None for d in local)
    if who == "all":
        label = "all three differ"
    elif who == "other":
        label = ", ".join(k.replace("~", " != ") for k in sorted(differ))
    else:
        label = f"{who} differs"
    if inherited:
        return f"{label} (inherited)", _INHERITED_COLOURS[who], 3
    return label, _MADE_COLOURS[who], 4


def compare_all_overlays(model: Any, result: Any) -> list[Overlay]:
    """:func:`quantcore.compare.compare_all` per operator of subgraph 0 (see
    :func:`path_category`)."""
    _model(model)
    paths = Overlay("paths", "LiteRT numerics paths: which one disagrees")
    ours = Overlay("quantcore", "quantcore vs LiteRT (and TFLite Micro), per path")
    lsb = Overlay("lsb", "LiteRT paths: max |diff| between two paths (LSB)", thresholds=LSB_THRESHOLDS)
    rank: dict[int, int] = {}
    bad: dict[int, set[str]] = {}
    compared: dict[int, bool] = {}
    from quantcore.compare import PATHS

    for r in result.rows:
        o = r.op_index
        cat, colour, k = path_category(r)
        if k > rank.get(o, -1):
            rank[o] = k
            paths.set(0, o, cat, colour)
        floats = r.dtype.startswith("float")
        for p, d in r.ours.items():
            if d is None:
                continue
            compared[o] = True
            if not d.equal and not (floats and d.close):
                bad.setdefault(o, set()).add(p)
        if not floats:
            vals = [d.max_lsb for d in r.litert.values() if d is not None]
            if vals:
                m = max(vals)
                prev = lsb.get(0, o)
                if math.isinf(m) or prev == "shape differs":
                    lsb.set(0, o, "shape differs", RED)
                else:
                    lsb.set(0, o, max(m, prev or 0.0))
    order = list(getattr(result, "paths", PATHS))
    for o in sorted(set(compared) | set(bad)):
        if o in bad:
            # LiteRT's three paths, then "micro" (compared with TFLite Micro) when it ran
            failing = [p for p in order if p in bad[o]] + sorted(bad[o] - set(order))
            ours.set(0, o, "quantcore != oracle on " + ", ".join(failing), RED)
        else:
            ours.set(0, o, "quantcore = LiteRT" + (" and TFLite Micro" if "micro" in order else ""), GREEN)
    return [paths, ours, lsb]


# ---------------------------------------------------------------------------
# debug
# ---------------------------------------------------------------------------
def _worse(a: Any, b: Any, higher_is_better: bool) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b) if higher_is_better else max(a, b)


def _db_value(v: float) -> tuple[Any, str | None]:
    if math.isinf(v):
        return ("exact", GREEN) if v > 0 else ("no signal", RED)
    return v, None


def debug_overlays(quant_model: Any, result: Any) -> list[Overlay]:
    """:func:`quantcore.debug.debug` per operator of the quantized model's subgraph 0:
    local SQNR (dB), whole-model SQNR (dB), MSE, RMS error in LSB, and the suggested
    denylist. An operator with several quantized outputs shows its worst one. The
    overlay matching the result's sort comes first."""
    _model(quant_model)
    local = Overlay("local_sqnr", "quantcore debug: local SQNR dB (error the layer adds; higher is better)",
                    thresholds=SQNR_THRESHOLDS)
    whole = Overlay("sqnr", "quantcore debug: SQNR dB vs float model (higher is better)",
                    thresholds=SQNR_THRESHOLDS)
    mse = Overlay("mse", "quantcore debug: MSE vs float model (lower is better)")
    lsb = Overlay("lsb", "quantcore debug: RMS error in LSB (lower is better)", thresholds=RMSE_LSB_THRESHOLDS)
    deny = Overlay("denylist", "quantcore debug: suggested denylist")
    worst: dict[str, dict[int, float]] = {"local": {}, "sqnr": {}, "mse": {}, "lsb": {}}
    for r in result.rows:
        o = r.op_index
        if r.local_sqnr_db is not None and not math.isnan(r.local_sqnr_db):
            worst["local"][o] = _worse(worst["local"].get(o), r.local_sqnr_db, True)
        if not math.isnan(r.sqnr_db):
            worst["sqnr"][o] = _worse(worst["sqnr"].get(o), r.sqnr_db, True)
        worst["mse"][o] = _worse(worst["mse"].get(o), r.mse, False)
        worst["lsb"][o] = _worse(worst["lsb"].get(o), r.rmse_lsb, False)
        if r.suggested:
            deny.set(0, o, "suggested: keep in float", RED)
        elif deny.get(0, o) is None:
            deny.set(0, o, "keep quantized", GREEN)
    for o, v in worst["local"].items():
        local.set(0, o, *_db_value(v))
    for o, v in worst["sqnr"].items():
        whole.set(0, o, *_db_value(v))
    mse_values = [v for v in worst["mse"].values() if math.isfinite(v)]
    hi = max(mse_values, default=0.0)
    if hi > 0:
        # MSE is in real units, so the scale is the model's: quarters of the largest
        mse.thresholds = [{"value": 0, "bgColor": GREEN}, {"value": hi / 4, "bgColor": LIGHT_GREEN},
                          {"value": hi / 2, "bgColor": YELLOW}, {"value": 3 * hi / 4, "bgColor": ORANGE},
                          {"value": _TOP, "bgColor": RED}]
    else:
        mse.thresholds = [{"value": 0, "bgColor": GREEN}, {"value": _TOP, "bgColor": RED}]
    for o, v in worst["mse"].items():
        mse.set(0, o, v)
    for o, v in worst["lsb"].items():
        lsb.set(0, o, v)
    order = {"local": [local, whole, lsb, mse, deny], "sqnr": [whole, local, lsb, mse, deny],
             "rmse": [lsb, local, whole, mse, deny]}.get(getattr(result, "sort", "local"),
                                                         [local, whole, lsb, mse, deny])
    return order


# ---------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------
#: Categories of the diff overlays, most important first, and their colours.
DIFF_CATEGORIES: dict[str, str] = {"added": BLUE, "removed": BLUE, "op changed": RED,
                                   "quantization changed": PURPLE, "weights changed": ORANGE,
                                   "tensors changed": YELLOW, "output differs": LIGHT_RED,
                                   "unchanged": GREEN}
_DIFF_RANK = {c: k for k, c in enumerate(DIFF_CATEGORIES)}


def diff_overlays(old: Any, new: Any, result: Any) -> list[Overlay]:
    """:func:`quantcore.diff.diff` per operator of subgraph 0. For NEW: ``changes``
    (one category per operator, the most important of: added, op changed (type,
    version, options or wiring), quantization changed (dtype, scale or zero point
    of an input, weight or output), weights changed (a constant input's values),
    tensors changed (shape or name), output differs (the numbers only), unchanged),
    ``detail`` (what changed, in words) and ``lsb`` (the largest |old - new| of its
    outputs in LSB, when run). For OLD: ``old`` (removed, or the category of its
    match). Written with :func:`write_overlays` for NEW, and the OLD overlay on its
    own (``model="old"``)."""
    mo, mn = _model(old), _model(new)
    s = result.structure
    cat: dict[int, str] = {}
    detail: dict[int, list[str]] = {}

    def note(o: int, c: str, text: str | None = None) -> None:
        if o not in cat or _DIFF_RANK[c] < _DIFF_RANK[cat[o]]:
            cat[o] = c
        if text:
            detail.setdefault(o, []).append(text)

    for a in s.ops_added:
        note(a.new_index, "added", f"added {a.op}")
    for c in s.ops_changed:
        note(c.new_index, "op changed", "; ".join(c.what))
    changed_t = {t.new_index: t for t in s.tensors_changed if t.new_index is not None}
    nsg = mn.subgraphs[0]
    for o, op in enumerate(nsg.operators):
        for slot, t in [("input", i) for i in op.inputs] + [("output", i) for i in op.outputs]:
            tc = changed_t.get(t)
            if t < 0 or tc is None:
                continue
            kinds = set(tc.kinds)
            const = mn.tensor_data(0, t) is not None
            text = f"{slot} {tc.name!r}: {'; '.join(tc.what)}"
            if kinds & {"dtype", "quantization"}:
                note(o, "quantization changed", text)
            elif const and "values" in kinds:
                note(o, "weights changed", text)
            else:
                note(o, "tensors changed", text)
    lsb = Overlay("lsb", "quantcore diff: max |new - old| of the outputs (LSB)", thresholds=LSB_THRESHOLDS,
                  model="new")
    for tn in result.tensors:
        o = s.op_pairs.get(tn.op_index)
        if o is None:
            continue
        d = tn.diff
        if not d.equal:
            note(o, "output differs", None if o in detail else
                 f"output {d.name!r}: {d.num_different}/{d.num_elements} differ, max |diff| "
                 f"{d.max_abs_diff:.4g}" + (f" ({d.max_lsb_diff} LSB)" if d.max_lsb_diff is not None else ""))
        if d.note:
            lsb.set(0, o, "shape differs", RED)
        elif d.equal:
            if lsb.get(0, o) is None:
                lsb.set(0, o, 0)
        elif d.max_lsb_diff is not None and not isinstance(lsb.get(0, o), str):
            lsb.set(0, o, max(int(d.max_lsb_diff), lsb.get(0, o) or 0))
    changes = Overlay("changes", "quantcore diff: what changed (new model)", model="new")
    words = Overlay("detail", "quantcore diff: what changed, in words (new model)", model="new")
    for o in range(len(nsg.operators)):
        c = cat.get(o, "unchanged")
        changes.set(0, o, c, DIFF_CATEGORIES[c])
        words.set(0, o, f"{c}: " + " | ".join(detail[o]) if detail.get(o) else c, DIFF_CATEGORIES[c])
    old_o = Overlay("old", "quantcore diff: what changed (old model)", model="old")
    for o in range(len(mo.subgraphs[0].operators)):
        if o in s.op_pairs:
            c = cat.get(s.op_pairs[o], "unchanged")
        else:
            c = "removed"
        old_o.set(0, o, c, DIFF_CATEGORIES[c])
    out = [changes, words]
    if result.ran and result.numbers_error is None:
        out.append(lsb)
    return out + [old_o]


def write_diff_overlays(overlays: list[Overlay], old: Any, new: Any, path: str | os.PathLike) -> list[str]:
    """Write the NEW-model overlays of :func:`diff_overlays` at ``path`` (and beside
    it) and the OLD-model one at ``<path>.old.json``; the paths, NEW first."""
    from quantcore.schema import atomic_write

    news = [o for o in overlays if o.model != "old"]
    olds = [o for o in overlays if o.model == "old"]
    paths = write_overlays(news, _model(new), path)
    for o, p in zip(olds, overlay_paths(path, news + olds)[len(news):]):
        atomic_write(p, json.dumps(o.to_json(_model(old)), indent=1, allow_nan=False).encode())
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------
# micro
# ---------------------------------------------------------------------------
def micro_overlays(model: Any, report: Any) -> list[Overlay]:
    """:func:`quantcore.micro.analyze` per operator of every subgraph: the bytes of
    tensor arena live while it runs (planned buffers whose lifetime includes its
    step), coloured against the peak: <= 50% green, <= 80% yellow, above orange, and
    the operator where the plan peaks red. An operator run several times (a
    WHILE body) shows its largest value."""
    _model(model)
    live: dict[tuple[int, int], int] = {}
    for row in report.timeline:
        k = (int(row["subgraph"]), int(row["index"]))
        live[k] = max(live.get(k, 0), int(row["live_bytes"]))
    peak_key = None
    if 0 <= report.peak_row < len(report.timeline):
        row = report.timeline[report.peak_row]
        peak_key = (int(row["subgraph"]), int(row["index"]))
    top = max(live.values(), default=0)
    arena = Overlay("arena", f"quantcore micro: live arena bytes (peak {report.head:,} B"
                    + (f" at op {peak_key[1]}" if peak_key else "") + ")")
    if top > 0:
        arena.thresholds = [{"value": top * 0.5, "bgColor": GREEN}, {"value": top * 0.8, "bgColor": YELLOW},
                            {"value": _TOP, "bgColor": ORANGE}]
    for (s, o), v in sorted(live.items()):
        arena.set(s, o, v, RED if (s, o) == peak_key else None)
    return [arena]


def categories(overlays: Iterable[Overlay]) -> dict[str, str]:
    """Every category value used by the overlays with its colour (for legends)."""
    out: dict[str, str] = {}
    for o in overlays:
        for per in o.results.values():
            for r in per.values():
                if isinstance(r["value"], str) and "bgColor" in r:
                    out.setdefault(r["value"], r["bgColor"])
    return out


__all__ = ["ADAPTER_ID", "COUNT_THRESHOLDS", "DIFF_CATEGORIES", "LSB_THRESHOLDS", "Overlay",
           "PATH_CATEGORIES", "RMSE_LSB_THRESHOLDS", "SQNR_THRESHOLDS", "compare_all_overlays",
           "compare_overlays", "debug_overlays", "diff_overlays", "graph_ids", "micro_overlays",
           "op_key", "overlay_paths", "path_category", "write_diff_overlays", "write_overlays"]
