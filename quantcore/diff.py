"""What changed between two .tflite models: graph, tensors and numbers.

``diff(old, new)`` answers the question a converter or quantizer change raises:
*is this model still the one we shipped, and if not, how far did it move?*

1. **Graph.** Operators are matched by the names of their output tensors, and the
   rest by graph position (the unmatched operators of both models aligned as two
   sequences of operator types, ``difflib`` style). A matched pair that differs in
   type, version, options or wiring is *changed*; the others are *added* or *removed*.
2. **Tensors.** Tensors are matched by (unique) name, then graph inputs and outputs by
   position, then through matched operators (input ``k`` of a matched pair with input
   ``k``). For each pair: dtype, shape, quantized or not, per-channel vs per-tensor,
   quantized dimension, scale (as the ratio new/old), zero point (as the delta new -
   old), and for constants how many values changed and by how much, in LSB (integer
   steps of the stored type) and in real units (``scale * (q - zero_point)``,
   docs/quantization.md eq. 1).
3. **Numbers.** Both models run in quantcore's runtime (the same ``numerics``) on the
   same inputs: given, or seeded random over each input's range (full integer range
   for integer inputs; for float inputs the range of the QUANTIZE that consumes them,
   else [-1, 1)). When an input is float in one model and integer in the other, the
   values are carried over through the input quantization, so both models see the
   same real input. Every matched tensor is compared in real units (and in LSB), the
   first operator whose output differs is named, and each graph output gets its
   largest difference and its SQNR of NEW against OLD
   (``10 log10(sum old^2 / sum (new - old)^2)``).

``DiffResult.exit_code`` is 0 when graph, tensors and outputs are identical (outputs
within ``tolerance`` LSB), 1 when anything differs, 2 when the numbers could not be
computed (a model quantcore cannot run, random inputs that fit only one model) and
nothing else differs.

The same comparison of tensors is used by :mod:`quantcore.baseline` against a
recorded summary (:class:`GraphSummary` serializes to JSON), where constant values
are known only by their sha256.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quantcore.errors import InputError, QuantcoreError
from quantcore.schema.model import ActivationFunctionType, Model, Padding, TensorType, numpy_dtype

# ---------------------------------------------------------------------------
# Summaries: what diff compares (built from a Model, or read back from JSON)
# ---------------------------------------------------------------------------


@dataclass
class TensorSummary:
    """One tensor as diff sees it. ``values`` is the constant data when known;
    ``sha256`` identifies the constant bytes (None for computed tensors)."""
    index: int
    name: str
    dtype: str
    shape: list[int]
    scale: np.ndarray | None = None          # float32, length 1 or channels
    zero_point: np.ndarray | None = None     # int64, same length
    quantized_dimension: int = 0
    constant: bool = False
    sha256: str | None = None
    values: np.ndarray | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and len(self.scale) > 0

    @property
    def per_channel(self) -> bool:
        return self.quantized and len(self.scale) > 1

    def to_json(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.constant:
            d["constant"] = True
            d["sha256"] = self.sha256
        if self.quantized:
            d["scale"] = [float(s) for s in self.scale]
            d["zero_point"] = [int(z) for z in self.zero_point]
            if self.per_channel or self.quantized_dimension:
                d["quantized_dimension"] = int(self.quantized_dimension)
        return d

    @classmethod
    def from_json(cls, index: int, d: dict) -> "TensorSummary":
        scale = d.get("scale")
        return cls(index, d.get("name", ""), d["dtype"], [int(v) for v in d.get("shape", [])],
                   None if scale is None else np.asarray(scale, np.float32),
                   None if scale is None else np.asarray(d.get("zero_point", [0] * len(scale)), np.int64),
                   int(d.get("quantized_dimension", 0)), bool(d.get("constant", False)), d.get("sha256"))


@dataclass
class OpSummary:
    index: int
    op: str
    version: int
    options: dict
    inputs: list[int]
    outputs: list[int]

    def to_json(self) -> dict:
        return {"op": self.op, "version": self.version, "inputs": self.inputs, "outputs": self.outputs,
                "options": self.options}

    @classmethod
    def from_json(cls, index: int, d: dict) -> "OpSummary":
        return cls(index, d["op"], int(d.get("version", 1)), dict(d.get("options", {})),
                   [int(v) for v in d.get("inputs", [])], [int(v) for v in d.get("outputs", [])])


@dataclass
class GraphSummary:
    """Tensors, operators, inputs and outputs of one subgraph."""
    tensors: list[TensorSummary]
    operators: list[OpSummary]
    inputs: list[int]
    outputs: list[int]
    _producers: dict[int, int] | None = field(default=None, repr=False, compare=False)

    def producer(self, t: int) -> OpSummary | None:
        """The operator that writes tensor ``t`` (None for inputs and constants)."""
        if self._producers is None:
            self._producers = {o: op.index for op in self.operators for o in op.outputs if o >= 0}
        i = self._producers.get(t)
        return None if i is None else self.operators[i]

    def to_json(self) -> dict:
        return {"inputs": self.inputs, "outputs": self.outputs,
                "operators": [o.to_json() for o in self.operators],
                "tensors": [t.to_json() for t in self.tensors]}

    @classmethod
    def from_json(cls, d: dict) -> "GraphSummary":
        return cls([TensorSummary.from_json(i, t) for i, t in enumerate(d.get("tensors", []))],
                   [OpSummary.from_json(i, o) for i, o in enumerate(d.get("operators", []))],
                   [int(v) for v in d.get("inputs", [])], [int(v) for v in d.get("outputs", [])])


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def summarize(model: Model, subgraph: int = 0, *, values: bool = True) -> GraphSummary:
    """The :class:`GraphSummary` of one subgraph (with constant values unless ``values=False``)."""
    sg = model.subgraphs[subgraph]
    tensors = []
    for i, t in enumerate(sg.tensors):
        qp = t.qparams()
        data = model.tensor_data(subgraph, i) if t.type != TensorType.STRING else None
        buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
        raw = None if buf is None or buf.data is None or len(buf.data) == 0 else bytes(buf.data)
        tensors.append(TensorSummary(
            i, t.name, TensorType(t.type).name.lower(), [int(d) for d in t.shape],
            None if qp is None else qp[0], None if qp is None else qp[1],
            t.quantization.quantized_dimension if t.quantization is not None else 0,
            raw is not None, None if raw is None else hashlib.sha256(raw).hexdigest(),
            data if values else None))
    ops = [OpSummary(o, model.op_name(op), model.operator_codes[op.opcode_index].version,
                     {k: _option_str(k, v) if k in _ENUM_OPTIONS else v
                      for k, v in _jsonable(op.options).items()},
                     list(op.inputs), list(op.outputs))
           for o, op in enumerate(sg.operators)]
    return GraphSummary(tensors, ops, list(sg.inputs), list(sg.outputs))


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


@dataclass
class OpChange:
    op: str
    outputs: list[str]
    old_index: int | None = None
    new_index: int | None = None
    what: list[str] = field(default_factory=list)


@dataclass
class TensorChange:
    name: str
    what: list[str]
    kinds: list[str]                       # subset of dtype, shape, quantization, values, name, kind
    old_index: int | None = None
    new_index: int | None = None
    line_kinds: list[str] = field(default_factory=list)   # the kind of each line of ``what``

    @property
    def quantization_changed(self) -> bool:
        return bool({"dtype", "quantization"} & set(self.kinds))


@dataclass
class StructuralDiff:
    graph: list[str]
    ops_added: list[OpChange]
    ops_removed: list[OpChange]
    ops_changed: list[OpChange]
    tensors_changed: list[TensorChange]
    tensors_added: list[str]
    tensors_removed: list[str]
    tensor_pairs: dict[int, int]            # old index -> new index
    op_pairs: dict[int, int]

    @property
    def identical(self) -> bool:
        return not (self.graph or self.ops_added or self.ops_removed or self.ops_changed
                    or self.tensors_changed or self.tensors_added or self.tensors_removed)


@dataclass
class ArrayDiff:
    """OLD against NEW for one tensor. ``max_lsb_diff`` is the exact integer distance
    when both sides share dtype and quantization, else the real difference in OLD's
    LSB (rounded); None when there is no LSB (float tensors not fed by a quantized one)."""
    name: str
    dtype: str
    shape: list[int]
    equal: bool
    num_elements: int
    num_different: int
    max_abs_diff: float
    max_lsb_diff: int | None
    worst_index: list[int] = field(default_factory=list)
    old_value: float | None = None
    new_value: float | None = None
    sqnr_db: float | None = None           # None: infinite (equal) or not computed
    note: str = ""


@dataclass
class TensorNumbers:
    op_index: int
    op: str
    diff: ArrayDiff


@dataclass
class DiffResult:
    old: str
    new: str
    structure: StructuralDiff
    numerics: str
    tolerance: int = 0
    inputs_source: str = ""
    tensors: list[TensorNumbers] = field(default_factory=list)
    outputs: list[ArrayDiff] = field(default_factory=list)
    first_divergence: TensorNumbers | None = None
    first_divergence_causes: list[str] = field(default_factory=list)        # its changed inputs
    first_divergence_outputs: list[str] = field(default_factory=list)       # its changed outputs
    numbers_error: str | None = None
    ran: bool = True

    @property
    def outputs_within_tolerance(self) -> bool:
        return all(_within(o, self.tolerance) for o in self.outputs)

    @property
    def identical(self) -> bool:
        return (self.structure.identical and self.numbers_error is None
                and self.outputs_within_tolerance)

    @property
    def exit_code(self) -> int:
        """0 identical, 1 different, 2 when the numbers are unknown and nothing else differs."""
        if self.numbers_error is not None and self.structure.identical:
            return 2
        return 0 if self.identical else 1

    def to_json(self) -> dict:
        s = self.structure
        fd = self.first_divergence
        return {
            "old": self.old, "new": self.new, "identical": self.identical,
            "graph": s.graph,
            "ops": {"added": [asdict(o) for o in s.ops_added], "removed": [asdict(o) for o in s.ops_removed],
                    "changed": [asdict(o) for o in s.ops_changed]},
            "changed_tensors": [{"name": t.name, "what": t.what, "kinds": t.kinds, "old_index": t.old_index,
                                 "new_index": t.new_index} for t in s.tensors_changed],
            "added_tensors": s.tensors_added, "removed_tensors": s.tensors_removed,
            "numerics": self.numerics, "tolerance": self.tolerance, "inputs": self.inputs_source,
            "numbers_error": self.numbers_error,
            "first_divergent_op": None if fd is None else {
                "op_index": fd.op_index, "op": fd.op, "tensor": fd.diff.name,
                "worst_index": fd.diff.worst_index, "old": fd.diff.old_value, "new": fd.diff.new_value,
                "max_abs_diff": fd.diff.max_abs_diff, "max_lsb_diff": fd.diff.max_lsb_diff,
                "changed_inputs": self.first_divergence_causes,
                "changed_outputs": self.first_divergence_outputs},
            "outputs": [_finite(asdict(o)) for o in self.outputs],
            "tensors": [_finite({"op_index": t.op_index, "op": t.op, **asdict(t.diff)}) for t in self.tensors],
        }

    def format(self, max_lines: int = 25) -> str:
        """The summary a person reads in ten seconds."""
        s = self.structure
        lines = [f"quantcore diff {self.old} -> {self.new}"]
        n_old = len(s.op_pairs) + len(s.ops_removed)
        n_new = len(s.op_pairs) + len(s.ops_added)
        lines.append(f"graph:   {n_old} -> {n_new} operators: {len(s.ops_added)} added, "
                     f"{len(s.ops_removed)} removed, {len(s.ops_changed)} changed")
        for g in s.graph:
            lines.append(f"  {g}")
        shown = 0
        for label, items in (("+", s.ops_added), ("-", s.ops_removed), ("~", s.ops_changed)):
            for o in items:
                if shown >= max_lines:
                    break
                idx = o.new_index if label == "+" else o.old_index
                out = _short(o.outputs[0] if o.outputs else "", 40)
                extra = f": {'; '.join(o.what)}" if o.what else ""
                lines.append(f"  {label} op {idx} {o.op} -> {out!r}{extra}")
                shown += 1
        tc = s.tensors_changed
        counts: dict[str, int] = {}
        for t in tc:
            for k in t.kinds:
                counts[k] = counts.get(k, 0) + 1
        kinds = ", ".join(f"{k} {v}" for k, v in counts.items())
        lines.append(f"tensors: {len(tc)} changed" + (f" ({kinds})" if kinds else "")
                     + (f", {len(s.tensors_added)} added" if s.tensors_added else "")
                     + (f", {len(s.tensors_removed)} removed" if s.tensors_removed else ""))
        for t in tc[:max_lines]:
            lines.append(f"  {_short(t.name, 44):<44}  {'; '.join(t.what)}")
        if len(tc) > max_lines:
            lines.append(f"  ... and {len(tc) - max_lines} more (--json for all)")
        for sign, names in (("+", s.tensors_added), ("-", s.tensors_removed)):
            for name in names[:5]:
                lines.append(f"  {sign} {_short(name, 60)}")
            if len(names) > 5:
                lines.append(f"  {sign} ... and {len(names) - 5} more")
        if not self.ran:
            lines.append("numbers: not run")
        elif self.numbers_error:
            lines.append(f"numbers: could not run ({self.numerics}): {self.numbers_error}")
        else:
            nd = sum(1 for t in self.tensors if not t.diff.equal)
            lines.append(f"numbers: {self.numerics} numerics, inputs {self.inputs_source}; "
                         f"{nd} of {len(self.tensors)} matched operator outputs differ")
            fd = self.first_divergence
            if fd is not None:
                d = fd.diff
                lines.append(f"  first divergent op: {fd.op_index} {fd.op} -> {_short(d.name, 50)!r}")
                for label, names in (("inputs", self.first_divergence_causes),
                                     ("outputs", self.first_divergence_outputs)):
                    if names:
                        lines.append(f"    its changed {label}: {', '.join(repr(_short(c, 40)) for c in names)}")
                if d.worst_index or d.old_value is not None:
                    lsb = f", {d.max_lsb_diff} LSB" if d.max_lsb_diff is not None else ""
                    lines.append(f"    worst element {tuple(d.worst_index)}: old {_g(d.old_value)}, "
                                 f"new {_g(d.new_value)} (|diff| {d.max_abs_diff:.4g}{lsb})")
            lines.append("outputs:")
            for o in self.outputs:
                lines.append("  " + _format_output(o))
        verdict = "IDENTICAL" if self.identical else "DIFFERENT"
        if self.exit_code == 2:
            verdict = "UNKNOWN (numbers could not be computed)"
        tol = f", tolerance {self.tolerance} LSB" if self.tolerance else ""
        lines.append(f"result: {verdict}{tol} (exit {self.exit_code})")
        return "\n".join(lines)


def _format_output(o: ArrayDiff) -> str:
    head = f"{_short(o.name, 40)} {o.dtype} {o.shape}"
    if o.note:
        return f"{head}: {o.note}"
    if o.equal:
        return f"{head}: equal"
    lsb = f" ({o.max_lsb_diff} LSB)" if o.max_lsb_diff is not None else ""
    sq = "inf" if o.sqnr_db is None else f"{o.sqnr_db:.1f}"
    return (f"{head}: {o.num_different}/{o.num_elements} differ, max |diff| {o.max_abs_diff:.4g}{lsb}, "
            f"SQNR {sq} dB")


def _within(o: ArrayDiff, tolerance: int) -> bool:
    if o.note:                                 # not comparable (shape or type)
        return False
    if o.equal:
        return True
    if o.max_lsb_diff is None:
        return False
    return o.max_lsb_diff <= tolerance


def _finite(d: dict) -> dict:
    """JSON has no inf/nan: such floats become None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _distinct(a: str, b: str, n: int = 30) -> tuple[str, str]:
    """Two names shortened to ``n`` characters so that their difference stays visible
    (converter names often differ only in a numeric suffix)."""
    if len(a) <= n and len(b) <= n:
        return a, b
    p = len(os.path.commonprefix([a, b]))
    if p < n - 10:
        return _short(a, n), _short(b, n)
    start = max(p - 10, 0)
    return ("..." + a[start:start + n - 3], "..." + b[start:start + n - 3])


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


# ---------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------


def _unique_names(g: GraphSummary) -> dict[str, int]:
    seen: dict[str, int] = {}
    dup = set()
    for t in g.tensors:
        if not t.name:
            continue
        if t.name in seen:
            dup.add(t.name)
        seen[t.name] = t.index
    return {k: v for k, v in seen.items() if k not in dup}


def _match_ops(old: GraphSummary, new: GraphSummary) -> dict[int, int]:
    """Old op index -> new op index: by output tensor names, then by position."""
    def keys(g: GraphSummary) -> dict[tuple, int]:
        out: dict[tuple, int] = {}
        dup = set()
        for o in g.operators:
            k = tuple(g.tensors[t].name if 0 <= t < len(g.tensors) else "" for t in o.outputs)
            if not k or not all(k):
                continue
            if k in out:
                dup.add(k)
            out[k] = o.index
        return {k: v for k, v in out.items() if k not in dup}

    ko, kn = keys(old), keys(new)
    # A name match of two different op types (a float output now made by SOFTMAX
    # instead of DEQUANTIZE) is left to the positional alignment below.
    pairs = {ko[k]: kn[k] for k in ko.keys() & kn.keys()
             if old.operators[ko[k]].op == new.operators[kn[k]].op}
    # Positional fallback: align the remaining operators as sequences of op types.
    rest_old = [o for o in old.operators if o.index not in pairs]
    taken = set(pairs.values())
    rest_new = [o for o in new.operators if o.index not in taken]
    sm = difflib.SequenceMatcher(a=[o.op for o in rest_old], b=[o.op for o in rest_new], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for a, b in zip(rest_old[i1:i2], rest_new[j1:j2]):
                pairs[a.index] = b.index
    return pairs


def _match_tensors(old: GraphSummary, new: GraphSummary, op_pairs: dict[int, int]) -> dict[int, int]:
    """Old tensor index -> new tensor index.

    In order of trust: graph inputs and outputs (by name when both models use the
    same names, else by position); outputs of matched operators; equal unique names
    (constants: weights keep their names); inputs of matched operators. Structure
    comes before names because converters reuse names (``conv/Conv2D1`` is an
    activation in one model and a dequantized bias in the other).
    """
    pairs: dict[int, int] = {}
    used: set[int] = set()

    def pair(a: int, b: int) -> None:
        if a < 0 or b < 0 or a in pairs or b in used:
            return
        pairs[a] = b
        used.add(b)

    for lo, ln in ((old.inputs, new.inputs), (old.outputs, new.outputs)):
        by_name_o = {old.tensors[t].name: t for t in lo}
        by_name_n = {new.tensors[t].name: t for t in ln}
        if len(by_name_o) == len(lo) and set(by_name_o) == set(by_name_n) and len(by_name_n) == len(ln):
            for name, a in by_name_o.items():
                pair(a, by_name_n[name])
        else:
            for a, b in zip(lo, ln):
                pair(a, b)
    for o, n in sorted(op_pairs.items()):
        for a, b in zip(old.operators[o].outputs, new.operators[n].outputs):
            pair(a, b)
    no, nn = _unique_names(old), _unique_names(new)
    for k in sorted(no.keys() & nn.keys(), key=lambda k: no[k]):
        pair(no[k], nn[k])
    for o, n in sorted(op_pairs.items()):
        for a, b in zip(old.operators[o].inputs, new.operators[n].inputs):
            pair(a, b)
    return pairs


# ---------------------------------------------------------------------------
# Structural comparison
# ---------------------------------------------------------------------------

_ENUM_OPTIONS = {"fused_activation_function": ActivationFunctionType, "padding": Padding}


def _option_str(key: str, v: Any) -> str:
    enum = _ENUM_OPTIONS.get(key)
    if enum is not None and isinstance(v, int):
        try:
            return enum(v).name
        except ValueError:
            pass
    return str(v)


def _op_changes(old: GraphSummary, new: GraphSummary, oo: OpSummary, on: OpSummary,
                tpairs: dict[int, int]) -> list[str]:
    what = []
    if oo.op != on.op:
        what.append(f"type {oo.op} -> {on.op}")
    if oo.version != on.version:
        what.append(f"version {oo.version} -> {on.version}")
    if oo.op == on.op:
        for k in sorted(set(oo.options) | set(on.options)):
            a, b = oo.options.get(k), on.options.get(k)
            if a != b and _option_str(k, a) != _option_str(k, b):
                what.append(f"{k} {_option_str(k, a)} -> {_option_str(k, b)}")
    elif oo.options != on.options:
        what.append("options differ")
    if len(oo.inputs) != len(on.inputs):
        what.append(f"{len(oo.inputs)} -> {len(on.inputs)} inputs")
    for k, (a, b) in enumerate(zip(oo.inputs, on.inputs)):
        if (a < 0) != (b < 0) or (a >= 0 and tpairs.get(a) != b):
            na, nb = _distinct("(none)" if a < 0 else old.tensors[a].name,
                               "(none)" if b < 0 else new.tensors[b].name)
            what.append(f"input {k} {na!r} -> {nb!r}")
    if len(oo.outputs) != len(on.outputs):
        what.append(f"{len(oo.outputs)} -> {len(on.outputs)} outputs")
    return what


def _ratio_text(old: np.ndarray, new: np.ndarray) -> tuple[str, bool]:
    a = np.asarray(old, np.float64)
    b = np.asarray(new, np.float64)
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        return f"scale: {len(a)} -> {len(b)} values", True
    a, b = np.broadcast_arrays(a, b)
    changed = a != b
    if not changed.any():
        return "", False
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(changed, b / a, 1.0)
    if a.size == 1:
        return f"scale x{r[0]:.4g} ({a[0]:.6g} -> {b[0]:.6g})", True
    lo, hi = f"{float(np.min(r[changed])):.4g}", f"{float(np.max(r[changed])):.4g}"
    span = f"x{lo}" if lo == hi else f"x{lo}..{hi}"
    return f"scale {span} in {int(changed.sum())}/{a.size} channels", True


def _zp_text(old: np.ndarray, new: np.ndarray) -> tuple[str, bool]:
    a = np.asarray(old, np.int64)
    b = np.asarray(new, np.int64)
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        return f"zero point: {len(a)} -> {len(b)} values", True
    a, b = np.broadcast_arrays(a, b)
    d = b - a
    if not d.any():
        return "", False
    if a.size == 1:
        return f"zero point {a[0]} -> {b[0]} ({d[0]:+d})", True
    nz = d[d != 0]
    lo, hi = int(nz.min()), int(nz.max())
    span = f"{lo:+d}" if lo == hi else f"{lo:+d}..{hi:+d}"
    return f"zero point {span} in {nz.size}/{a.size} channels", True


def _qdesc(t: TensorSummary) -> str:
    if not t.quantized:
        return "not quantized"
    if t.per_channel:
        return f"per-channel ({len(t.scale)}, dim {t.quantized_dimension})"
    return "per-tensor"


def _broadcast_param(p: np.ndarray, shape: tuple[int, ...], qdim: int) -> np.ndarray:
    """A per-channel parameter shaped to broadcast against a tensor of ``shape``."""
    p = np.asarray(p)
    if p.size == 1 or not shape:
        return p.reshape(()) if p.size == 1 else p[:1].reshape(())
    if 0 <= qdim < len(shape) and shape[qdim] == p.size:
        s = [1] * len(shape)
        s[qdim] = p.size
        return p.reshape(s)
    return p[:1].reshape(())


def dequantize(t: TensorSummary, q: np.ndarray) -> np.ndarray:
    """Real values (float64) of ``q`` stored as tensor ``t`` (eq. 1); floats unchanged."""
    q = np.asarray(q)
    if q.dtype.kind == "f":
        return q.astype(np.float64)
    if q.dtype == np.bool_ or not t.quantized:
        return q.astype(np.float64)
    s = _broadcast_param(t.scale.astype(np.float64), q.shape, t.quantized_dimension)
    z = _broadcast_param(t.zero_point.astype(np.float64), q.shape, t.quantized_dimension)
    return (q.astype(np.float64) - z) * s


def _same_quantization(a: TensorSummary, b: TensorSummary) -> bool:
    if a.dtype != b.dtype or a.quantized != b.quantized:
        return False
    if not a.quantized:
        return True
    return (len(a.scale) == len(b.scale) and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point)
            and (not a.per_channel or a.quantized_dimension == b.quantized_dimension))


def _values_text(a: TensorSummary, b: TensorSummary) -> str | None:
    """How the constant values changed; None when they did not."""
    if a.values is None or b.values is None:
        if a.sha256 is not None and b.sha256 is not None and a.sha256 != b.sha256:
            return "values changed (sha256 differs)"
        return None
    va, vb = np.asarray(a.values), np.asarray(b.values)
    if va.dtype == object or vb.dtype == object:
        return None if np.array_equal(va, vb) else "values changed"
    if va.shape != vb.shape:
        return "values: not comparable (shape differs)"
    if va.dtype == vb.dtype and np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"):
        return None
    ra, rb = dequantize(a, va), dequantize(b, vb)
    real = np.abs(rb - ra)
    if va.dtype == vb.dtype and va.dtype.kind in "iub":
        raw = np.abs(vb.astype(np.int64) - va.astype(np.int64))
        nd = int(np.count_nonzero(raw))
        w = np.unravel_index(int(np.argmax(raw)), raw.shape) if raw.size else ()
        txt = f"values: {nd}/{va.size} changed, max {int(raw[w])} LSB"
        if a.quantized or b.quantized:
            txt += f" (max |real| {float(np.max(real)):.4g})"
        where = tuple(int(i) for i in w)
        return txt + f"; at {list(where)}: {va[w]} -> {vb[w]}"
    nd = int(np.count_nonzero(ra != rb))
    w = np.unravel_index(int(np.nanargmax(real)), real.shape) if real.size else ()
    return (f"values: {nd}/{va.size} changed, max |real| {float(real[w]):.4g}; at "
            f"{[int(i) for i in w]}: {_g(float(ra[w]))} -> {_g(float(rb[w]))}")


def tensor_changes(a: TensorSummary, b: TensorSummary) -> TensorChange | None:
    """What changed from tensor ``a`` (OLD) to ``b`` (NEW); None when nothing did."""
    what: list[str] = []
    kinds: list[str] = []
    line_kinds: list[str] = []

    def add(kind: str, text: str) -> None:
        what.append(text)
        line_kinds.append(kind)
        if kind not in kinds:
            kinds.append(kind)

    if a.name != b.name:
        add("name", f"renamed to {_distinct(a.name, b.name, 44)[1]!r}")
    if a.dtype != b.dtype:
        add("dtype", f"dtype {a.dtype} -> {b.dtype}")
    if list(a.shape) != list(b.shape):
        add("shape", f"shape {list(a.shape)} -> {list(b.shape)}")
    if a.constant != b.constant:
        add("kind", "constant -> computed" if a.constant else "computed -> constant")
    if a.quantized != b.quantized:
        add("quantization", f"{_qdesc(a)} -> {_qdesc(b)}")
    elif a.quantized:
        if a.per_channel != b.per_channel or (a.per_channel and len(a.scale) != len(b.scale)):
            add("quantization", f"{_qdesc(a)} -> {_qdesc(b)}")
        elif a.per_channel and a.quantized_dimension != b.quantized_dimension:
            add("quantization", f"quantized_dimension {a.quantized_dimension} -> {b.quantized_dimension}")
        txt, changed = _ratio_text(a.scale, b.scale)
        if changed:
            add("quantization", txt)
        txt, changed = _zp_text(a.zero_point, b.zero_point)
        if changed:
            add("quantization", txt)
    if a.constant and b.constant:
        v = _values_text(a, b)
        if v is not None:
            add("values", v)
    if not what:
        return None
    return TensorChange(a.name, what, kinds, a.index, b.index, line_kinds)


def structural_diff(old: GraphSummary, new: GraphSummary) -> StructuralDiff:
    """Operators and tensors of two subgraphs, matched and compared (no running)."""
    op_pairs = _match_ops(old, new)
    tpairs = _match_tensors(old, new, op_pairs)
    graph = []
    if len(old.inputs) != len(new.inputs):
        graph.append(f"{len(old.inputs)} -> {len(new.inputs)} graph inputs")
    if len(old.outputs) != len(new.outputs):
        graph.append(f"{len(old.outputs)} -> {len(new.outputs)} graph outputs")
    for k, (a, b) in enumerate(zip(old.inputs, new.inputs)):
        if tpairs.get(a) != b:
            graph.append(f"graph input {k}: {old.tensors[a].name!r} -> {new.tensors[b].name!r}")
    for k, (a, b) in enumerate(zip(old.outputs, new.outputs)):
        if tpairs.get(a) != b:
            graph.append(f"graph output {k}: {old.tensors[a].name!r} -> {new.tensors[b].name!r}")

    def names(g: GraphSummary, o: OpSummary) -> list[str]:
        return [g.tensors[t].name for t in o.outputs if 0 <= t < len(g.tensors)]

    taken = set(op_pairs.values())
    removed = [OpChange(o.op, names(old, o), old_index=o.index) for o in old.operators if o.index not in op_pairs]
    added = [OpChange(o.op, names(new, o), new_index=o.index) for o in new.operators if o.index not in taken]
    changed = []
    for a, b in sorted(op_pairs.items()):
        oo, on = old.operators[a], new.operators[b]
        what = _op_changes(old, new, oo, on, tpairs)
        if what:
            changed.append(OpChange(oo.op if oo.op == on.op else f"{oo.op} -> {on.op}", names(old, oo), a, b, what))
    tchanged = []
    for a, b in sorted(tpairs.items()):
        c = tensor_changes(old.tensors[a], new.tensors[b])
        if c is not None:
            tchanged.append(c)
    used = set(tpairs.values())
    tadded = [t.name for t in new.tensors if t.index not in used]
    tremoved = [t.name for t in old.tensors if t.index not in tpairs]
    return StructuralDiff(graph, added, removed, changed, tchanged, tadded, tremoved, tpairs, op_pairs)


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------


def lsb_scale(g: GraphSummary, t: int) -> np.ndarray | None:
    """The real size of one LSB of tensor ``t``: its own scale, or for a float tensor
    made by DEQUANTIZE, the scale of the quantized tensor it came from."""
    ts = g.tensors[t]
    if ts.quantized and ts.dtype not in ("float32", "float16", "float64"):
        return ts.scale.astype(np.float64)
    o = g.producer(t)
    if o is not None and o.op == "DEQUANTIZE" and o.inputs and o.inputs[0] >= 0:
        src = g.tensors[o.inputs[0]]
        if src.quantized:
            return src.scale.astype(np.float64)
    return None


def compare_arrays(name: str, a_t: TensorSummary, a: np.ndarray, b_t: TensorSummary, b: np.ndarray,
                   scale: np.ndarray | None, *, sqnr: bool = False) -> ArrayDiff:
    """OLD value ``a`` (stored as ``a_t``) against NEW value ``b`` (stored as ``b_t``).

    ``scale`` is the size of OLD's LSB (:func:`lsb_scale`), used when the raw
    integers cannot be compared directly."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = a.dtype.name if a.dtype == b.dtype else f"{a.dtype.name}->{b.dtype.name}"
    shape = list(a.shape)
    if a.shape != b.shape:
        return ArrayDiff(name, dtype, shape, False, int(a.size), int(a.size), math.inf, None,
                         note=f"shape {list(a.shape)} -> {list(b.shape)}")
    if a.dtype == object or b.dtype == object:
        eq = bool(np.array_equal(a, b))
        return ArrayDiff(name, dtype, shape, eq, int(a.size), 0 if eq else int(a.size), 0.0 if eq else math.inf,
                         0 if eq else None)
    ra, rb = dequantize(a_t, a), dequantize(b_t, b)
    both_nan = np.isnan(ra) & np.isnan(rb)
    real = np.where(both_nan, 0.0, np.abs(rb - ra))
    real = np.where(np.isnan(real), np.inf, real)
    raw_ok = a.dtype == b.dtype and a.dtype.kind in "iub" and _same_quantization(a_t, b_t)
    if raw_ok:
        raw = np.abs(b.astype(np.int64) - a.astype(np.int64))
        diff_mask = raw != 0
    else:
        raw = None
        diff_mask = real != 0
    nd = int(np.count_nonzero(diff_mask))
    if a.size == 0:
        return ArrayDiff(name, dtype, shape, True, 0, 0, 0.0, 0)
    max_abs = float(np.max(real))
    if raw is not None:
        max_lsb: int | None = int(np.max(raw))
        w = np.unravel_index(int(np.argmax(raw)), raw.shape)
    else:
        w = np.unravel_index(int(np.argmax(real)), real.shape)
        if scale is not None and math.isfinite(max_abs):
            s = _broadcast_param(scale, a.shape, a_t.quantized_dimension)
            with np.errstate(divide="ignore", invalid="ignore"):
                lsb = np.where(np.broadcast_to(s, real.shape) > 0, real / s, 0.0)
            max_lsb = int(np.rint(np.max(lsb)))
        elif nd == 0:
            max_lsb = 0
        else:
            max_lsb = None
    out = ArrayDiff(name, dtype, shape, nd == 0, int(a.size), nd, max_abs, max_lsb,
                    [int(i) for i in w], float(ra[w]), float(rb[w]))
    if sqnr and nd:
        signal = float(np.sum(np.where(both_nan, 0.0, ra) ** 2))
        err = float(np.sum(np.where(both_nan, 0.0, rb - ra) ** 2))
        out.sqnr_db = 10 * math.log10(signal / err) if signal > 0 and err > 0 and math.isfinite(err) \
            else -math.inf
    return out


def quantize_to(t: TensorSummary, real: np.ndarray) -> np.ndarray:
    """Real values stored as tensor ``t``: ``clamp(round(real / scale) + zero_point)``
    (round half away from zero, as LiteRT's QUANTIZE of a float input)."""
    from quantcore.fixedpoint import round_half_away

    dt = numpy_dtype(TensorType[t.dtype.upper()])
    if dt.kind == "f":
        return np.asarray(real).astype(dt)
    if dt.kind == "b":
        return np.asarray(real) != 0
    info = np.iinfo(dt)
    if not t.quantized:
        return np.clip(round_half_away(np.asarray(real, np.float64)), info.min, info.max).astype(dt)
    r = np.asarray(real, np.float32)
    s = _broadcast_param(t.scale.astype(np.float32), r.shape, t.quantized_dimension)
    z = _broadcast_param(t.zero_point.astype(np.float64), r.shape, t.quantized_dimension)
    q = round_half_away((r / s).astype(np.float32)).astype(np.float64) + z
    return np.clip(q, info.min, info.max).astype(dt)


def convert_input(x: np.ndarray, src: TensorSummary, dst: TensorSummary) -> np.ndarray:
    """``x`` (stored as ``src``) expressed as ``dst``: the same real values."""
    x = np.asarray(x)
    want = numpy_dtype(TensorType[dst.dtype.upper()])
    if list(x.shape) != list(dst.shape):
        raise InputError(f"input {dst.name!r} needs shape {list(dst.shape)}, got {list(x.shape)}")
    if x.dtype == want and (src.dtype == dst.dtype and _same_quantization(src, dst) or want.kind == "f"
                            and x.dtype.kind == "f"):
        return x
    if x.dtype.kind in "iu" and want.kind in "iu" and not src.quantized and not dst.quantized:
        return x.astype(want)
    return quantize_to(dst, dequantize(src, x))


def input_range(g: GraphSummary, t: int) -> tuple[float, float] | None:
    """The real range an input covers: from its own quantization, or from the QUANTIZE
    that consumes it (float inputs); None when unknown."""
    def qrange(ts: TensorSummary) -> tuple[float, float] | None:
        if not ts.quantized or ts.per_channel:
            return None
        try:
            info = np.iinfo(numpy_dtype(TensorType[ts.dtype.upper()]))
        except (ValueError, KeyError):
            return None
        s, z = float(ts.scale[0]), int(ts.zero_point[0])
        return s * (info.min - z), s * (info.max - z)

    r = qrange(g.tensors[t])
    if r is not None:
        return r
    for o in g.operators:
        if o.op == "QUANTIZE" and o.inputs and o.inputs[0] == t and o.outputs:
            r = qrange(g.tensors[o.outputs[0]])
            if r is not None:
                return r
    return None


def random_inputs(g: GraphSummary, seed: int = 0, other: GraphSummary | None = None) -> list[np.ndarray]:
    """Seeded random inputs over each input's range: every integer value of integer
    inputs; float inputs uniform over the range of their quantization (that of
    ``other``'s matching input when this model does not know it), else [-1, 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for k, t in enumerate(g.inputs):
        ts = g.tensors[t]
        dt = numpy_dtype(TensorType[ts.dtype.upper()])
        shape = [max(int(d), 0) for d in ts.shape]
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            r = input_range(g, t)
            if r is None and other is not None and k < len(other.inputs):
                r = input_range(other, other.inputs[k])
            lo, hi = r if r is not None else (-1.0, 1.0)
            out.append(rng.uniform(lo, hi, shape).astype(dt))
    return out


def run_all(model: Model, inputs: list[np.ndarray], numerics: str) -> dict[int, np.ndarray]:
    """Every tensor value of subgraph 0 after one run in quantcore's runtime."""
    from quantcore.runtime import Interpreter

    it = Interpreter(model=model, numerics=numerics)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    sg = model.subgraphs[0]
    values = {}
    for i in range(len(sg.tensors)):
        try:
            values[i] = it.get_tensor(i)
        except InputError:
            pass
    return values


def _load(model: Any) -> tuple[Model, str]:
    from quantcore.schema import read_model

    if isinstance(model, Model):
        return model, "<model>"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_model(bytes(model)), "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        return read_model(model), os.fspath(model)
    raise InputError(f"model must be a path, bytes or Model, not {type(model).__name__}")


def _inputs_from(inputs: Any, model: Model, g: GraphSummary, label: str) -> list[np.ndarray]:
    """Inputs given as a path (.npy/.npz), one array, a list or a dict by input name."""
    from quantcore.compare import load_inputs

    if isinstance(inputs, (str, os.PathLike)):
        return load_inputs(inputs, model)
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if isinstance(inputs, dict):
        names = [g.tensors[i].name for i in g.inputs]
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"inputs lack {missing} ({label} needs {names})")
        inputs = [inputs[n] for n in names]
    arrays = [np.asarray(x) for x in inputs]
    if len(arrays) != len(g.inputs):
        raise InputError(f"{len(arrays)} input arrays given, {label} has {len(g.inputs)} inputs")
    for x, i in zip(arrays, g.inputs):
        t = g.tensors[i]
        want = numpy_dtype(TensorType[t.dtype.upper()])
        if x.dtype != want or list(x.shape) != list(t.shape):
            raise InputError(f"input {t.name!r} of {label} must be {want} {list(t.shape)}, "
                             f"got {x.dtype} {list(x.shape)}")
    return arrays


def _paired_inputs(inputs: Any, mo: Model, mn: Model, go: GraphSummary, gn: GraphSummary,
                   seed: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    if len(go.inputs) != len(gn.inputs):
        raise InputError(f"the models have {len(go.inputs)} and {len(gn.inputs)} inputs")
    src_g, dst_g, flip = go, gn, False
    if inputs is None:
        xs = random_inputs(go, seed, gn)
        source = f"seeded random (seed {seed})"
    else:
        try:
            xs = _inputs_from(inputs, mo, go, "OLD")
        except InputError as first:
            try:
                xs = _inputs_from(inputs, mn, gn, "NEW")
            except InputError:
                raise first from None
            src_g, dst_g, flip = gn, go, True
        source = os.fspath(inputs) if isinstance(inputs, (str, os.PathLike)) else "given"
    ys = [convert_input(x, src_g.tensors[a], dst_g.tensors[b])
          for x, a, b in zip(xs, src_g.inputs, dst_g.inputs)]
    return (ys, xs, source) if flip else (xs, ys, source)


def diff(old: Any, new: Any, inputs: Any = None, numerics: str = "reference", tolerance: int = 0, *,
         seed: int = 0, run: bool = True) -> DiffResult:
    """Compare two models: graph, tensors and (with ``run``) the numbers.

    ``old``/``new``: paths, bytes or :class:`~quantcore.schema.Model`. ``inputs``:
    None (seeded random over the input range), a .npy/.npz path, an array, a list or
    a dict by input name, in either model's input types (converted through the
    input quantization for the other). ``tolerance``: outputs differing by at most
    this many LSB count as identical. Raises QuantcoreError on unreadable models or
    inputs; a model quantcore cannot run is reported in ``numbers_error``.
    """
    if tolerance < 0:
        raise InputError(f"tolerance must be >= 0 LSB, not {tolerance}")
    mo, lo = _load(old)
    mn, ln = _load(new)
    go, gn = summarize(mo), summarize(mn)
    structure = structural_diff(go, gn)
    if len(mo.subgraphs) != len(mn.subgraphs):
        structure.graph.append(f"{len(mo.subgraphs)} -> {len(mn.subgraphs)} subgraphs")
    for s in range(1, min(len(mo.subgraphs), len(mn.subgraphs))):
        sub = structural_diff(summarize(mo, s), summarize(mn, s))
        if not sub.identical:
            n = (len(sub.ops_added) + len(sub.ops_removed) + len(sub.ops_changed))
            structure.graph.append(f"subgraph {s}: {n} operator and {len(sub.tensors_changed)} tensor changes")
    result = DiffResult(lo, ln, structure, numerics, int(tolerance), ran=run)
    if not run:
        return result
    try:
        xo, xn, result.inputs_source = _paired_inputs(inputs, mo, mn, go, gn, seed)
    except InputError as e:
        if inputs is not None:
            raise                      # the user's inputs fit neither model: bad input
        result.numbers_error = f"no common inputs: {e}"
        return result
    try:
        vo = run_all(mo, xo, numerics)
        vn = run_all(mn, xn, numerics)
    except QuantcoreError as e:
        result.numbers_error = str(e)
        return result
    changed = {c.old_index for c in structure.tensors_changed}
    for o in go.operators:
        if o.index not in structure.op_pairs:
            continue
        for t in o.outputs:
            b = structure.tensor_pairs.get(t)
            if t < 0 or b is None or t not in vo or b not in vn:
                continue
            d = compare_arrays(go.tensors[t].name, go.tensors[t], vo[t], gn.tensors[b], vn[b], lsb_scale(go, t))
            row = TensorNumbers(o.index, o.op, d)
            result.tensors.append(row)
            if not d.equal and result.first_divergence is None:
                result.first_divergence = row
                result.first_divergence_causes = [go.tensors[i].name for i in o.inputs
                                                  if i >= 0 and i in changed]
                result.first_divergence_outputs = [go.tensors[i].name for i in o.outputs
                                                   if i >= 0 and i in changed]
    for a in go.outputs:
        b = structure.tensor_pairs.get(a)
        if b is not None and a in vo and b in vn:
            scale = lsb_scale(go, a)
            if scale is None:
                scale = lsb_scale(gn, b)
            result.outputs.append(compare_arrays(go.tensors[a].name, go.tensors[a], vo[a], gn.tensors[b], vn[b],
                                                 scale, sqnr=True))
    return result


def write_json(result: DiffResult, path: str | os.PathLike) -> None:
    from quantcore.schema import atomic_write

    atomic_write(path, json.dumps(result.to_json(), indent=1).encode())


__all__ = ["ArrayDiff", "DiffResult", "GraphSummary", "OpChange", "OpSummary", "StructuralDiff",
           "TensorChange", "TensorNumbers", "TensorSummary", "compare_arrays", "convert_input", "dequantize",
           "diff", "input_range", "lsb_scale", "quantize_to", "random_inputs", "run_all", "structural_diff",
           "summarize", "tensor_changes", "write_json"]
