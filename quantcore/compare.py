"""Per-tensor comparison of quantcore against LiteRT on the same model and inputs.

``compare(model, inputs)`` runs the model in LiteRT (in a child process, with the
resolver matching ``numerics``; an abort is reported, not fatal) and in quantcore,
with every tensor preserved on both sides, and returns one row per operator output
in execution order: equal or not, how many elements differ, the largest difference
in LSB (integer steps) and in real units (``scale * LSB``). The first operator whose
integer output differs is named, with its worst element and the quantization
parameters of its inputs.

``compare_all(model, inputs)`` does this for LiteRT's three numerics paths at once
(``quantcore compare MODEL --numerics all``) and says, per operator output, which LiteRT
paths disagree, by how much, and whether the operator's own arithmetic on a path made
the difference or it came from the operator's inputs (docs/numerics-paths.md).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quantcore.errors import InputError
from quantcore.oracle import LiteRTOracle
from quantcore.schema import read_model
from quantcore.schema.model import Model, TensorType, numpy_dtype


@dataclass
class TensorRow:
    op_index: int
    op: str
    tensor: int
    name: str
    dtype: str
    equal: bool
    num_elements: int
    num_different: int
    max_lsb: float                # integer tensors: max |ours - theirs|; floats: 0
    max_abs: float                # in real units (dequantized for integer tensors)
    scale: float | None = None
    zero_point: int | None = None


@dataclass
class Divergence:
    op_index: int
    op: str
    tensor: int
    name: str
    index: list[int]
    ours: float
    theirs: float
    inputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompareResult:
    numerics: str
    rows: list[TensorRow]
    first_divergence: Divergence | None
    litert_error: str | None = None

    @property
    def equal(self) -> bool:
        """True when every integer tensor is equal (floats are reported, not judged)."""
        return self.litert_error is None and all(
            r.equal for r in self.rows if not r.dtype.startswith("float"))

    @property
    def oracle_name(self) -> str:
        return "TFLite Micro" if self.numerics == "micro" else f"LiteRT ({self.numerics})"

    @property
    def exit_code(self) -> int:
        if self.litert_error is not None:
            return 2
        return 0 if self.equal else 1

    def to_json(self) -> dict:
        return {"numerics": self.numerics, "equal": self.equal, "litert_error": self.litert_error,
                "rows": [asdict(r) for r in self.rows],
                "first_divergence": None if self.first_divergence is None else asdict(self.first_divergence)}

    def format(self) -> str:
        """The table a person reads: one line per operator output."""
        lines = []
        if self.litert_error:
            lines.append(f"{self.oracle_name} failed: {self.litert_error}")
        head = f"{'op':>4}  {'type':<22} {'tensor':<40} {'dtype':<8} {'equal':<5} {'diff':>7} {'maxLSB':>7} {'max|real|':>10}"
        lines.append(head)
        lines.append("-" * len(head))
        for r in self.rows:
            name = (r.name[:37] + "...") if len(r.name) > 40 else r.name
            lines.append(f"{r.op_index:>4}  {r.op:<22} {name:<40} {r.dtype:<8} {'yes' if r.equal else 'NO':<5} "
                         f"{r.num_different:>7} {r.max_lsb:>7.0f} {r.max_abs:>10.3g}")
        d = self.first_divergence
        if d is None:
            if not self.litert_error:
                lines.append(f"\nall {sum(1 for r in self.rows)} operator outputs equal to {self.oracle_name}")
        else:
            lines.append(f"\nfirst divergent op: {d.op_index} {d.op}, tensor {d.tensor} {d.name!r}")
            lines.append(f"  worst element {tuple(d.index)}: quantcore {d.ours:g}, LiteRT {d.theirs:g}")
            for i in d.inputs:
                q = f"scale {i['scale']}, zero point {i['zero_point']}" if i.get("scale") is not None else "not quantized"
                lines.append(f"  input {i['tensor']} {i['name']!r} ({i['dtype']}): {q}")
        return "\n".join(lines)


def default_inputs(model: Model, seed: int = 0) -> list[np.ndarray]:
    """Seeded random inputs: full-range integers, floats uniform in [-1, 1)."""
    rng = np.random.default_rng(seed)
    sg = model.subgraphs[0]
    out = []
    for i in sg.inputs:
        t = sg.tensors[i]
        dt = numpy_dtype(t.type)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, int(info.max) + 1, t.shape, dtype=np.int64).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, t.shape).astype(bool))
        else:
            out.append(rng.uniform(-1, 1, t.shape).astype(dt))
    return out


def load_inputs(path: str | os.PathLike, model: Model) -> list[np.ndarray]:
    """Inputs from .npy (single input) or .npz (by input name, or arr_0, arr_1...)."""
    sg = model.subgraphs[0]
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read inputs from {os.fspath(path)!r}: {e}") from None
    if isinstance(data, np.ndarray):
        arrays = [data]
    else:
        names = [sg.tensors[i].name for i in sg.inputs]
        keys = list(data.keys())
        arrays = [data[n] if n in data else data[keys[k]] if k < len(keys) else None
                  for k, n in enumerate(names)]
        if any(a is None for a in arrays):
            raise InputError(f"{os.fspath(path)!r} has arrays {keys}; the model needs {names}")
    if len(arrays) != len(sg.inputs):
        raise InputError(f"{len(arrays)} input arrays given, the model has {len(sg.inputs)} inputs")
    for a, i in zip(arrays, sg.inputs):
        t = sg.tensors[i]
        if a.dtype != numpy_dtype(t.type) or list(a.shape) != list(t.shape):
            raise InputError(f"input {t.name!r} must be {numpy_dtype(t.type)} {t.shape}, "
                             f"got {a.dtype} {list(a.shape)}")
    return arrays


def compare(model: Any, inputs: list[np.ndarray] | None = None, *, numerics: str = "reference",
            seed: int = 0, oracle: LiteRTOracle | None = None) -> CompareResult:
    """Run ``model`` in LiteRT and quantcore on the same inputs and compare every tensor.

    ``numerics`` names the LiteRT path ("reference", "optimized", "xnnpack"), or
    "micro" for TFLite Micro's interpreter (``pip install 'quantcore[micro]'``); quantcore
    runs the matching numerics mode."""
    from quantcore.runtime import Interpreter

    data = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read() \
        if isinstance(model, (str, os.PathLike)) else None
    if data is None:
        raise InputError("model must be a path or bytes")
    m = read_model(data)
    if inputs is None:
        inputs = default_inputs(m, seed)
    if numerics == "micro":
        theirs = _run_micro(data, inputs)
    else:
        own = oracle is None
        oracle = oracle or LiteRTOracle()
        try:
            theirs = oracle.run(data, inputs, numerics)
        finally:
            if own:
                oracle.close()
    if not theirs.ok:
        return CompareResult(numerics, [], None, litert_error=theirs.error)
    it = Interpreter(model_content=data, numerics=numerics, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    sg = m.subgraphs[0]
    rows: list[TensorRow] = []
    first: Divergence | None = None
    for o, op in enumerate(sg.operators):
        name = m.op_name(op)
        for t in op.outputs:
            if t < 0 or t not in theirs.tensors or np.asarray(theirs.tensors[t]).dtype == object:
                continue    # not exposed, or a RESOURCE tensor (opaque in LiteRT)
            tensor = sg.tensors[t]
            ours = it.get_tensor(t)
            ref = theirs.tensors[t]
            qp = tensor.qparams()
            row = _row(o, name, t, tensor, ours, ref, qp)
            rows.append(row)
            if not row.equal and first is None and not row.dtype.startswith("float"):
                first = _divergence(o, name, t, tensor, ours, ref, op, sg)
    return CompareResult(numerics, rows, first)


def _run_micro(data: bytes, inputs: list[np.ndarray]):
    """TFLite Micro's interpreter (the ``tflite-micro`` package, in a child process) as
    the other side, shaped like an OracleResult: outputs and subgraph-0 tensors."""
    from quantcore.micro_oracle import MicroOracle
    from quantcore.oracle import OracleResult

    with MicroOracle() as micro:
        r = micro.run(data, [inputs])
    if not r.ok:
        return OracleResult(error=f"TFLite Micro: {r.error}", aborted=r.aborted)
    tensors = {t: v for (sg, t), v in (r.tensors[0] if r.tensors else {}).items() if sg == 0}
    return OracleResult(outputs=list(r.outputs[0]), tensors=tensors)


def _row(o, name, t, tensor, ours, ref, qp) -> TensorRow:
    dtype = TensorType(tensor.type).name.lower()
    if ours.shape != ref.shape:
        return TensorRow(o, name, t, tensor.name, dtype, False, int(ref.size), int(ref.size),
                         float("inf"), float("inf"))
    diff = ours.astype(np.float64) - ref.astype(np.float64)
    if ours.dtype.kind == "f":
        both_nan = np.isnan(ours) & np.isnan(ref)
        diff = np.where(both_nan, 0.0, diff)
        nd = int(np.count_nonzero(diff))
        return TensorRow(o, name, t, tensor.name, dtype, nd == 0, int(ref.size), nd, 0.0,
                         float(np.nanmax(np.abs(diff))) if diff.size else 0.0)
    nd = int(np.count_nonzero(diff))
    max_lsb = float(np.max(np.abs(diff))) if diff.size else 0.0
    scale = float(qp[0][0]) if qp is not None and len(qp[0]) == 1 else None
    zp = int(qp[1][0]) if qp is not None and len(qp[1]) == 1 else None
    return TensorRow(o, name, t, tensor.name, dtype, nd == 0, int(ref.size), nd, max_lsb,
                     max_lsb * scale if scale is not None else max_lsb, scale, zp)


def _divergence(o, name, t, tensor, ours, ref, op, sg) -> Divergence:
    if ours.shape != ref.shape:
        return Divergence(o, name, t, tensor.name, [], float("nan"), float("nan"))
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    inputs = []
    for i in op.inputs:
        if i < 0:
            continue
        ti = sg.tensors[i]
        qp = ti.qparams()
        inputs.append({"tensor": i, "name": ti.name, "dtype": TensorType(ti.type).name.lower(),
                       "scale": None if qp is None else [float(v) for v in qp[0][:8]],
                       "zero_point": None if qp is None else [int(v) for v in qp[1][:8]]})
    return Divergence(o, name, t, tensor.name, [int(v) for v in idx], float(ours[idx]), float(ref[idx]), inputs)


def write_json(result: "CompareResult | ComparePathsResult", path: str | os.PathLike) -> None:
    from quantcore.schema import atomic_write
    atomic_write(path, json.dumps(result.to_json(), indent=2).encode())


# ---------------------------------------------------------------------------
# All three LiteRT numerics paths at once
# ---------------------------------------------------------------------------
PATHS = ("reference", "optimized", "xnnpack")
MICRO = "micro"
_RESOLVER_NAMES = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
                   "xnnpack": "BUILTIN (XNNPACK)", MICRO: "TFLite Micro"}
MICRO_SKIPPED = ("TFLite Micro: skipped, tflite-micro is not installed "
                 "(pip install 'quantcore[micro]' to compare with TFLM's reference kernels too)")


@dataclass
class Difference:
    """How two versions of one tensor differ (``count`` elements, at most ``max_lsb``
    integer steps, or ``max_abs`` for float tensors)."""
    count: int
    max_lsb: float
    max_abs: float
    close: bool = True     # floats: within 1e-6 of the tensor's value range (ints: equal)

    @property
    def equal(self) -> bool:
        return self.count == 0

    def describe(self, size: int) -> str:
        if self.count == 0:
            return "equal"
        if self.max_lsb == float("inf"):
            return "shape differs"
        amount = f"{self.max_lsb:g} LSB" if self.max_lsb else f"{self.max_abs:.3g}"
        return f"{amount} on {self.count} of {size} elements"


@dataclass
class PathsRow:
    """One operator output across the three LiteRT paths.

    ``ours[path]``: quantcore on ``path`` against LiteRT on ``path`` (None when one side
    did not run or LiteRT does not expose the tensor). ``litert[a~b]``: LiteRT's path a
    against its path b. ``local[path]``: this operator's own arithmetic on ``path``
    against the reference arithmetic, evaluated by quantcore on identical inputs (the
    reference path's input tensors), so an inherited difference is told apart from
    one this operator makes. ``arithmetic[path]`` names what runs on that path.
    With TFLite Micro beside them, ``ours["micro"]`` is quantcore's micro mode against
    TFLM and ``tflm_vs_reference`` TFLM against LiteRT's reference path (its local
    counterpart is ``local_pairs["reference~micro"]``).
    """
    op_index: int
    op: str
    tensor: int
    name: str
    dtype: str
    num_elements: int
    ours: dict[str, Difference | None]
    litert: dict[str, Difference | None]
    local: dict[str, Difference | None]
    arithmetic: dict[str, str]
    explanation: str = ""
    local_pairs: dict[str, Difference | None] = field(default_factory=dict)
    # TFLite Micro (path "micro") against LiteRT's reference path; None when TFLM did not
    # run (``litert`` keeps LiteRT's own three pairs only).
    tflm_vs_reference: Difference | None = None


@dataclass
class ComparePathsResult:
    """Result of :func:`compare_all`."""
    rows: list[PathsRow]
    litert_errors: dict[str, str]
    quantcore_errors: dict[str, str]
    notes: list[str] = field(default_factory=list)
    paths: tuple[str, ...] = PATHS   # LiteRT's three, plus "micro" when TFLM ran beside them

    @property
    def equal(self) -> bool:
        """quantcore equals LiteRT on every integer tensor of every path both ran."""
        return all(d is None or d.equal for r in self.rows if not r.dtype.startswith("float")
                   for d in r.ours.values())

    @property
    def exit_code(self) -> int:
        ran = [p for p in self.paths if p not in self.litert_errors and p not in self.quantcore_errors]
        if not ran:
            return 2
        return 0 if self.equal else 1

    def to_json(self) -> dict:
        def d(x):
            return None if x is None else asdict(x)
        return {"paths": list(self.paths), "equal": self.equal, "litert_errors": self.litert_errors,
                "quantcore_errors": self.quantcore_errors, "notes": self.notes,
                "rows": [{"op_index": r.op_index, "op": r.op, "tensor": r.tensor, "name": r.name,
                          "dtype": r.dtype, "num_elements": r.num_elements,
                          "ours_vs_litert": {k: d(v) for k, v in r.ours.items()},
                          "litert_paths": {k: d(v) for k, v in r.litert.items()},
                          "local_vs_reference": {k: d(v) for k, v in r.local.items()},
                          "local_pairs": {k: d(v) for k, v in r.local_pairs.items()},
                          "tflm_vs_litert_reference": d(r.tflm_vs_reference),
                          "arithmetic": r.arithmetic, "explanation": r.explanation}
                         for r in self.rows]}

    def format(self) -> str:
        lines = []
        for p, e in self.litert_errors.items():
            lines.append(f"TFLite Micro failed: {e}" if p == MICRO else
                         f"LiteRT {p} ({_RESOLVER_NAMES[p]}) failed: {e}")
        for p, e in self.quantcore_errors.items():
            lines.append(f"quantcore {p} failed: {e}")
        head = (f"{'op':>4}  {'type':<18} {'tensor':<28} {'dtype':<7} "
                + " ".join(f"{p[:3] + '=':<9}" for p in self.paths) + " paths that disagree")
        lines.append(head)
        lines.append("-" * len(head))
        for r in self.rows:
            name = (r.name[:25] + "...") if len(r.name) > 28 else r.name
            cells = []
            for p in self.paths:
                dd = r.ours.get(p)
                cell = "-" if dd is None else "yes" if dd.equal else "~" if (
                    r.dtype.startswith("float") and dd.close) else f"NO {dd.max_lsb:g}" \
                    if not r.dtype.startswith("float") else f"NO {dd.max_abs:.2g}"
                cells.append(f"{cell:<9}")
            lines.append(f"{r.op_index:>4}  {r.op:<18} {name:<28} {r.dtype:<7} " + " ".join(cells)
                         + " " + (r.explanation or "all agree"))
        lines.append("")
        columns = "/".join(p[:3] + "=" for p in self.paths)
        lines.append(f"columns {columns}: quantcore on that path equals LiteRT on that path"
                     + (" (mic=: quantcore micro equals TFLite Micro)" if MICRO in self.paths else "")
                     + " (NO n: max difference n LSB; ~: float tensor within 1e-6 of its range; "
                     "-: not run or not exposed)")

        def first_where(keep) -> PathsRow | None:
            return next((r for r in self.rows if any(
                dd is not None and not dd.equal for k, dd in _pairs(r).items() if keep(k))), None)
        first = first_where(lambda k: MICRO not in k.split("~"))
        if first is None:
            if len([p for p in PATHS if p not in self.litert_errors]) > 1:
                lines.append("LiteRT's numerics paths agree on every exposed tensor")
        else:
            lines.append(f"first operator where LiteRT's paths disagree: {first.op_index} {first.op}: "
                         f"{_explain(first, lambda k: MICRO not in k.split('~'))}")
        if MICRO in self.paths and MICRO not in self.litert_errors and "reference" not in self.litert_errors:
            first_micro = first_where(lambda k: k == f"reference~{MICRO}")
            if first_micro is None:
                lines.append("TFLite Micro equals LiteRT's reference path on every tensor both expose")
            else:
                lines.append(f"first operator where TFLite Micro and LiteRT's reference path disagree: "
                             f"{first_micro.op_index} {first_micro.op}: "
                             f"{_explain(first_micro, lambda k: k == f'reference~{MICRO}')}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


def _difference(a: np.ndarray | None, b: np.ndarray | None) -> Difference | None:
    if a is None or b is None:
        return None
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype == object or b.dtype == object:
        return None     # a RESOURCE tensor (LiteRT gives an opaque object): nothing to compare
    if a.shape != b.shape:
        return Difference(int(max(a.size, b.size)), float("inf"), float("inf"))
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        x, y = a.astype(np.float64), b.astype(np.float64)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        n = int(np.count_nonzero(~same))
        with np.errstate(invalid="ignore"):
            mx = float(np.nanmax(np.abs(np.where(same, 0.0, x - y)))) if n else 0.0
            finite = y[np.isfinite(y)]
            span = float(finite.max() - finite.min()) if finite.size else 0.0
        return Difference(n, 0.0, mx, bool(n == 0 or mx <= 1e-6 * max(span, 1e-30) + 1e-30))
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    n = int(np.count_nonzero(diff))
    return Difference(n, float(diff.max()) if n else 0.0, float(diff.max()) if n else 0.0, n == 0)


def _arithmetic_name(params: Any, path: str) -> str:
    """What runs on ``path`` for one prepared operator: "reference", "litert-optimized",
    "xnnpack", ... (kernels without a path-specific variant compute the reference)."""
    how = getattr(params, "how", None)
    if isinstance(how, str):
        return how
    if path != "reference" and hasattr(params, "requant"):
        # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED...: the path's arithmetic is the
        # Requant of runtime/ops/_paths.py (None: the reference requantization).
        return _requant_name(getattr(params, "requant"))
    return "reference" if path == "reference" else "reference arithmetic"


_REQUANT_NAMES = {"fp32": "xnnpack (fp32 requantization)",
                  "mbqm32": "tflite-micro (fixed-point MultiplyByQuantizedMultiplier)",
                  "mbqm64": "tflite-micro (int64 MultiplyByQuantizedMultiplier)",
                  "ties_up": "litert-optimized (ruy, ties rounded up)",
                  "channel_blocks": "litert-optimized (vector blocks over channels)",
                  "flat_blocks": "litert-optimized (vector blocks over elements)"}


def _requant_name(requant: Any) -> str:
    """The name of a :class:`runtime.ops._paths.Requant` mode (None: the reference)."""
    if requant is None:
        return "reference arithmetic"
    mode = getattr(requant, "mode", None)
    return _REQUANT_NAMES.get(mode, f"requantization {mode!r}")


def _run_quantcore(data: bytes, inputs: list[np.ndarray], path: str):
    from quantcore.runtime import Interpreter

    it = Interpreter(model_content=data, numerics=path, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it


def _local_outputs(it, op_index: int, values: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Evaluate one prepared operator of ``it`` on the given input values."""
    try:
        p = it._states[0].ops[op_index]
        if p.folded or any(v is None for i, v in zip(p.inputs, values) if i >= 0):
            return None
        return p.kernel.eval(p.params, *[None if i < 0 else v for i, v in zip(p.inputs, values)])
    except Exception:  # noqa: BLE001 - a kernel that cannot run on these inputs: no local verdict
        return None


def _pairs(r: PathsRow) -> dict[str, Difference | None]:
    """LiteRT's path pairs, and ``reference~micro`` when TFLite Micro ran."""
    pairs = dict(r.litert)
    if r.tflm_vs_reference is not None:
        pairs[f"reference~{MICRO}"] = r.tflm_vs_reference
    return pairs


def _explain(r: PathsRow, keep=lambda key: True) -> str:
    """``"reference != optimized (1 LSB on 37 of 592 elements, made by this op: ...)"`` for
    every pair of paths (LiteRT's, and TFLite Micro against LiteRT's reference) that
    disagree on this tensor; ``keep(pair key)`` selects the pairs. "made by this op"
    names what each non-reference path of the pair runs (``arithmetic``)."""
    parts = []
    for key, dd in _pairs(r).items():
        if dd is None or dd.equal or not keep(key):
            continue
        a, b = key.split("~")
        why = ""
        local = r.local_pairs.get(key)
        if r.dtype.startswith("float") and (local is None or local.equal):
            why = ", float rounding: quantcore's float kernels follow the reference on every path"
        elif local is not None and not local.equal:
            named = [f"{p} runs {r.arithmetic.get(p, '?')}" for p in (a, b) if p != "reference"]
            why = ", made by this op" + (": " + ", ".join(named) if named else "")
        elif local is not None:
            why = ", inherited from its inputs"
        parts.append(f"{a} != {b} ({dd.describe(r.num_elements)}{why})")
    return "; ".join(parts)


def compare_all(model: Any, inputs: list[np.ndarray] | None = None, seed: int = 0, *,
                oracle: LiteRTOracle | None = None, micro: bool | None = None) -> ComparePathsResult:
    """Run ``model`` on LiteRT's three numerics paths (``BUILTIN_REF``,
    ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, ``BUILTIN`` with XNNPACK) and in quantcore on
    the matching three paths, and report per operator output which paths agree.

    For every operator output: quantcore against LiteRT on each path, LiteRT's paths
    against each other (``reference~optimized``, ``reference~xnnpack``,
    ``optimized~xnnpack``), and, to tell a difference an operator makes from one it
    inherits, each path's arithmetic of that operator evaluated by quantcore on the
    reference path's inputs. A LiteRT path that aborts or refuses the model is
    reported in ``litert_errors`` and the other paths are still compared.

    LiteRT's XNNPACK path fuses consecutive delegated operators into one partition
    whose intermediate tensors are never written. LiteRT is therefore run with
    ``experimental_preserve_all_tensors``, which gives every delegated operator its
    own partition so its output is exposed; the final outputs of a normal (fused) run
    are compared with those and the result is stated in ``notes``. A tensor LiteRT does
    not expose is shown as not compared.

    TFLite Micro runs beside them as a fourth path, ``"micro"`` (its interpreter from
    the ``tflite-micro`` package, in a child process, against quantcore's
    ``numerics="micro"``), when ``micro`` is True, or when it is None (the default) and
    tflite-micro is installed; otherwise a note says it was skipped and how to install
    it. Its pair ``reference~micro`` compares TFLM with LiteRT's reference path.
    """
    data = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read() \
        if isinstance(model, (str, os.PathLike)) else None
    if data is None:
        raise InputError("model must be a path or bytes")
    data = bytes(data)
    m = read_model(data)
    if inputs is None:
        inputs = default_inputs(m, seed)
    own = oracle is None
    oracle = oracle or LiteRTOracle()
    theirs: dict[str, Any] = {}
    litert_errors: dict[str, str] = {}
    notes: list[str] = []
    try:
        for p in PATHS:
            res = oracle.run(data, inputs, p)
            if res.ok:
                theirs[p] = res
            else:
                litert_errors[p] = res.error or "failed"
        fused = oracle.run(data, inputs, "xnnpack", preserve_all_tensors=False) if "xnnpack" in theirs else None
    finally:
        if own:
            oracle.close()
    if fused is not None:
        if fused.ok and all(np.array_equal(a, b) for a, b in zip(fused.outputs, theirs["xnnpack"].outputs)):
            notes.append("LiteRT xnnpack: intermediate tensors come from a run with "
                         "experimental_preserve_all_tensors (one XNNPACK partition per operator); "
                         "the final outputs of the normal fused run are identical")
        else:
            notes.append("LiteRT xnnpack: the final outputs of the normal fused run DIFFER from the run "
                         "with experimental_preserve_all_tensors used for the intermediate tensors")
    paths = PATHS
    if micro is None:
        from quantcore.micro_oracle import available
        micro = available()
        if not micro:
            notes.append(MICRO_SKIPPED)
    if micro:
        paths = PATHS + (MICRO,)
        tflm = _run_micro_guarded(data, inputs)
        if tflm.ok:
            theirs[MICRO] = tflm
        else:
            litert_errors[MICRO] = tflm.error or "failed"
    ours: dict[str, Any] = {}
    quantcore_errors: dict[str, str] = {}
    for p in paths:
        try:
            ours[p] = _run_quantcore(data, inputs, p)
        except Exception as e:  # noqa: BLE001 - reported per path
            quantcore_errors[p] = f"{type(e).__name__}: {e}"
    sg = m.subgraphs[0]
    rows: list[PathsRow] = []
    ref_it = ours.get("reference")
    hidden = _xnnpack_unwritten(m)
    if hidden and "xnnpack" in theirs:
        notes.append("LiteRT xnnpack: the XNNPACK delegate unpacks constant weights behind "
                     "DEQUANTIZE/DENSIFY operators into its own buffers and never writes their "
                     f"output tensors ({len(hidden)} here): not compared on that path")
    pairs = [("reference", "optimized"), ("reference", "xnnpack"), ("optimized", "xnnpack")]
    if MICRO in paths:
        pairs.append(("reference", MICRO))
    for o, op in enumerate(sg.operators):
        name = m.op_name(op)
        arithmetic = {}
        for p in paths:
            if p in ours:
                try:
                    arithmetic[p] = _arithmetic_name(ours[p]._states[0].ops[o].params, p)
                except (AttributeError, IndexError):
                    arithmetic[p] = "?"
        local_outputs: dict[str, list | None] = {}
        if ref_it is not None:
            values = [None if i < 0 else _get(ref_it, i) for i in op.inputs]
            for p in paths:
                if p in ours:
                    local_outputs[p] = _local_outputs(ours[p], o, values)
        for k, t in enumerate(op.outputs):
            if t < 0:
                continue
            tensor = sg.tensors[t]
            size = int(np.prod(tensor.shape, dtype=np.int64)) if tensor.shape is not None else 0
            def litert_value(p: str):
                if p not in theirs or (p == "xnnpack" and t in hidden):
                    return None
                return theirs[p].tensors.get(t)
            ours_d = {p: _difference(_get(ours[p], t) if p in ours else None, litert_value(p))
                      for p in paths}
            lit = {f"{a}~{b}": _difference(litert_value(a), litert_value(b)) for a, b in pairs
                   if MICRO not in (a, b)}
            ref_local = (local_outputs.get("reference") or [None] * (k + 1))[k] \
                if local_outputs.get("reference") is not None else None
            def local_out(p: str):
                lo = local_outputs.get(p)
                return lo[k] if lo is not None and k < len(lo) else None
            local = {p: _difference(local_out(p), ref_local) for p in paths}
            local_pairs = {f"{a}~{b}": _difference(local_out(a), local_out(b)) for a, b in pairs}
            ref_val = theirs[next(iter(theirs))].tensors.get(t) if theirs else None
            size = int(np.asarray(ref_val).size) if ref_val is not None else size
            row = PathsRow(o, name, t, tensor.name, TensorType(tensor.type).name.lower(), size,
                           ours_d, lit, local, arithmetic, local_pairs=local_pairs,
                           tflm_vs_reference=_difference(litert_value("reference"), litert_value(MICRO))
                           if MICRO in paths else None)
            row.explanation = _explain(row)
            rows.append(row)
    return ComparePathsResult(rows, litert_errors, quantcore_errors, notes, paths)


def _run_micro_guarded(data: bytes, inputs: list[np.ndarray]):
    """:func:`_run_micro`, with a worker that cannot start reported as an error."""
    from quantcore.micro_oracle import MicroOracleUnavailable
    from quantcore.oracle import OracleResult

    try:
        return _run_micro(data, inputs)
    except MicroOracleUnavailable as e:
        return OracleResult(error=f"{e} ({MICRO_SKIPPED})")


def _xnnpack_unwritten(m: Model) -> set[int]:
    """Outputs of DEQUANTIZE/DENSIFY operators whose inputs are all constant: LiteRT's
    XNNPACK delegate unpacks such weights itself (``xnnpack_delegate.cc``,
    ``static_unpacked_data``) and never writes these tensors."""
    sg = m.subgraphs[0]
    out: set[int] = set()
    for op in sg.operators:
        if m.op_name(op) not in ("DEQUANTIZE", "DENSIFY"):
            continue
        ins = [i for i in op.inputs if i >= 0]
        if ins and all(m.tensor_data(0, i) is not None for i in ins):
            out.update(t for t in op.outputs if t >= 0)
    return out


def _get(it, t: int) -> np.ndarray | None:
    try:
        return it.get_tensor(t)
    except Exception:  # noqa: BLE001 - a tensor without a value
        return None


__all__ = ["CompareResult", "ComparePathsResult", "Difference", "Divergence", "PathsRow", "TensorRow",
           "compare", "compare_all", "default_inputs", "load_inputs", "write_json"]
