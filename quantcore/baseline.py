"""Golden baselines: record what a model is and computes, check it later in CI.

``record_model(model, directory)`` stores, per model, two files in ``directory``:

* ``<name>.json``, the manifest, written for people and for ``git diff``: the model
  file (relative to the directory), its sha256 and size, the quantcore version, the
  inputs, and the graph summary of :mod:`quantcore.diff` (every operator; every
  tensor's dtype, shape, scale, zero point, quantized dimension, and for constants
  the sha256 of their bytes), plus per numerics mode the outputs' dtype, shape and
  sha256 (or the error quantcore raised on that path);
* ``<name>.npz``, the arrays: the inputs (``input_0``...) and quantcore's outputs
  in each numerics mode (``reference_output_0``...).

Both are written atomically (temporary file, then rename); the arrays first, so a
manifest never points at arrays that are not there. One pair of files per model
keeps a change to one model a change to two files, and lets tests record in
parallel without sharing a file.

``check(directory)`` reads each manifest, re-reads the model, runs it on the
recorded inputs in each recorded numerics mode, and compares with
:func:`quantcore.diff.structural_diff` (against the recorded parameters) and
:func:`quantcore.diff.compare_arrays` (against the recorded outputs). A model passes
in a numerics mode when its graph and quantization are unchanged and every output
is within ``tolerance`` LSB of the recorded one. A changed file whose graph,
quantization and outputs are unchanged (new metadata) passes, with a note.
``CheckResult.exit_code``: 0 all pass, 1 some model changed, 2 a baseline or model
could not be read. :meth:`CheckResult.junit` gives JUnit XML for CI, one testcase
per model x numerics mode.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from quantcore import __version__
from quantcore.diff import (ArrayDiff, GraphSummary, StructuralDiff, _format_output, _short, _within,
                            compare_arrays, convert_input, lsb_scale, quantize_to, run_all, structural_diff,
                            summarize)
from quantcore.errors import InputError, QuantcoreError
from quantcore.schema.model import Model, TensorType, numpy_dtype

FORMAT = "quantcore-baseline/1"
NUMERICS = ("reference", "optimized", "xnnpack", "micro")


# ---------------------------------------------------------------------------
# JSON written for people: one key per line, short lists of numbers on one line
# ---------------------------------------------------------------------------
def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with dicts and lists of containers one item per line, and lists of
    scalars (scales, shapes) on a single line, so ``git diff`` shows what changed."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def _atomic(path: Path, data: bytes) -> None:
    from quantcore.schema import atomic_write

    atomic_write(path, data)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_name(path: str | os.PathLike) -> str:
    """The baseline name of a model file: its stem, with characters outside
    ``[A-Za-z0-9_.-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem) or "model"


def _read(model: Any) -> tuple[bytes, Model, str | None]:
    from quantcore.schema import read_model

    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        return data, read_model(data), None
    if isinstance(model, (str, os.PathLike)):
        try:
            data = Path(model).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read model {os.fspath(model)!r}: {e.strerror}") from None
        return data, read_model(data), os.fspath(model)
    raise InputError(f"model must be a path or bytes, not {type(model).__name__}")


def coerce_inputs(inputs: Any, g: GraphSummary, label: str) -> list[np.ndarray]:
    """Inputs for the model summarized by ``g``, from a .npy/.npz path, one array, a
    list or a dict by input name. An array of the model's type is used as is; a float
    array for an integer input is quantized with the input's parameters (so one
    float .npz serves float-I/O and int8-I/O models alike)."""
    names = [g.tensors[i].name for i in g.inputs]
    if isinstance(inputs, (str, os.PathLike)):
        try:
            data = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read inputs from {os.fspath(inputs)!r}: {e}") from None
        if isinstance(data, np.ndarray):
            inputs = [data]
        else:
            keys = list(data.keys())
            inputs = [data[n] if n in data else data[keys[k]] if k < len(keys) else None
                      for k, n in enumerate(names)]
            if any(a is None for a in inputs):
                raise InputError(f"{os.fspath(inputs)!r} has arrays {keys}; {label} needs {names}")
    elif isinstance(inputs, np.ndarray):
        inputs = [inputs]
    elif isinstance(inputs, dict):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"inputs lack {missing} ({label} needs {names})")
        inputs = [inputs[n] for n in names]
    arrays = [np.asarray(x) for x in inputs]
    if len(arrays) != len(g.inputs):
        raise InputError(f"{len(arrays)} input arrays given, {label} has {len(g.inputs)} inputs")
    out = []
    for x, i in zip(arrays, g.inputs):
        t = g.tensors[i]
        want = numpy_dtype(TensorType[t.dtype.upper()])
        if list(x.shape) != list(t.shape):
            raise InputError(f"input {t.name!r} of {label} must have shape {list(t.shape)}, "
                             f"got {list(x.shape)}")
        if x.dtype == want:
            out.append(x)
        elif x.dtype.kind == "f" and want.kind in "iu" and t.quantized:
            out.append(quantize_to(t, x))
        else:
            raise InputError(f"input {t.name!r} of {label} must be {want}, got {x.dtype}")
    return out


# ---------------------------------------------------------------------------
# record
# ---------------------------------------------------------------------------
@dataclass
class Recorded:
    name: str
    manifest: Path
    arrays: Path
    sha256: str
    numerics: dict[str, str | None]          # mode -> error or None

    def format(self) -> str:
        modes = ", ".join(m if e is None else f"{m} (error recorded: {_short(e, 60)})"
                          for m, e in self.numerics.items())
        return f"recorded {self.name}: sha256 {self.sha256[:12]}, outputs in {modes} -> {self.manifest}"


def record_model(model: Any, directory: str | os.PathLike, *, name: str | None = None, inputs: Any = None,
                 numerics: Iterable[str] = ("reference",), seed: int = 0) -> Recorded:
    """Record one model's baseline in ``directory`` (created if needed).

    ``inputs``: a .npy/.npz path, arrays, a dict by input name, or None for seeded
    random inputs over the input range (:func:`quantcore.diff.random_inputs`); they
    are stored with the baseline, so ``check`` reuses them. A numerics mode the
    model cannot run in is recorded with its error.
    """
    numerics = list(dict.fromkeys(numerics))
    for n in numerics:
        if n not in NUMERICS:
            raise InputError(f"numerics must be among {', '.join(NUMERICS)}, not {n!r}")
    if not numerics:
        raise InputError("record at least one numerics mode")
    data, m, path = _read(model)
    if name is None:
        if path is None:
            raise InputError("a model given as bytes needs a name")
        name = model_name(path)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise InputError(f"baseline name {name!r} must use only letters, digits, '_', '.', '-'")
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {os.fspath(d)!r}: {e.strerror}") from None
    g = summarize(m, values=False)
    xs = coerce_inputs(inputs, g, name) if inputs is not None else _random(g, seed)
    arrays: dict[str, np.ndarray] = {f"input_{k}": x for k, x in enumerate(xs)}
    modes: dict[str, Any] = {}
    errors: dict[str, str | None] = {}
    for mode in numerics:
        try:
            values = run_all(m, xs, mode)
        except QuantcoreError as e:
            modes[mode] = {"error": str(e)}
            errors[mode] = str(e)
            continue
        outs = []
        for k, t in enumerate(g.outputs):
            v = values[t]
            key = f"{mode}_output_{k}"
            arrays[key] = v
            outs.append({"name": g.tensors[t].name, "dtype": v.dtype.name, "shape": list(v.shape),
                         "key": key, "sha256": _sha(np.ascontiguousarray(v).tobytes())})
        modes[mode] = {"outputs": outs}
        errors[mode] = None
    manifest = {
        "format": FORMAT,
        "name": name,
        "model": None if path is None else _relpath(path, d),
        "sha256": _sha(data),
        "size_bytes": len(data),
        "quantcore_version": __version__,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": [{"name": g.tensors[t].name, "dtype": x.dtype.name, "shape": list(x.shape),
                    "key": f"input_{k}", "sha256": _sha(np.ascontiguousarray(x).tobytes()),
                    **({"source": os.fspath(inputs)} if isinstance(inputs, (str, os.PathLike)) else
                       {"source": "given"} if inputs is not None else {"source": f"seeded random (seed {seed})"})}
                   for k, (t, x) in enumerate(zip(g.inputs, xs))],
        "numerics": modes,
        "graph": g.to_json(),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic(d / f"{name}.npz", buf.getvalue())
    _atomic(d / f"{name}.json", (dumps(manifest) + "\n").encode())
    return Recorded(name, d / f"{name}.json", d / f"{name}.npz", manifest["sha256"], errors)


def record(models: Iterable[Any], directory: str | os.PathLike, *, inputs: Any = None,
           numerics: Iterable[str] = ("reference",), seed: int = 0) -> list[Recorded]:
    """:func:`record_model` for each model path (named by file stem; stems must differ)."""
    models = list(models)
    names = [model_name(p) for p in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"several models would be recorded as {dup}: give files distinct names")
    numerics = list(numerics)
    return [record_model(p, directory, name=n, inputs=inputs, numerics=numerics, seed=seed)
            for p, n in zip(models, names)]


def _random(g: GraphSummary, seed: int) -> list[np.ndarray]:
    from quantcore.diff import random_inputs

    return random_inputs(g, seed)


def _relpath(path: str, directory: Path) -> str:
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(directory))).as_posix()
    except ValueError:                       # another drive (Windows)
        return Path(os.path.abspath(path)).as_posix()


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------
@dataclass
class NumericsCheck:
    numerics: str
    outputs: list[ArrayDiff] = field(default_factory=list)
    error: str | None = None                  # quantcore failed now
    recorded_error: str | None = None         # quantcore failed at record time
    inputs_note: str = ""


@dataclass
class ModelCheck:
    name: str
    model: str | None
    recorded_sha256: str = ""
    sha256: str = ""
    error: str | None = None                  # the baseline or the model could not be read
    structure: StructuralDiff | None = None
    numerics: list[NumericsCheck] = field(default_factory=list)
    tolerance: int = 0
    seconds: float = 0.0

    def numerics_passed(self, n: NumericsCheck) -> bool:
        if self.error is not None or (self.structure is not None and not self.structure.identical):
            return False
        if n.recorded_error is not None or n.error is not None:
            return n.recorded_error == n.error
        return not n.inputs_note and all(_within(o, self.tolerance) for o in n.outputs)

    @property
    def passed(self) -> bool:
        return self.error is None and all(self.numerics_passed(n) for n in self.numerics)

    def details(self, numerics: NumericsCheck | None = None) -> list[str]:
        """What changed, one line per finding (for one numerics mode, or all)."""
        lines = []
        if self.error is not None:
            return [self.error]
        if self.sha256 != self.recorded_sha256:
            lines.append(f"model file changed: sha256 {self.recorded_sha256[:12]} -> {self.sha256[:12]}")
        s = self.structure
        if s is not None:
            lines.extend(s.graph)
            for label, ops in (("added", s.ops_added), ("removed", s.ops_removed), ("changed", s.ops_changed)):
                for o in ops:
                    idx = o.new_index if label == "added" else o.old_index
                    extra = f": {'; '.join(o.what)}" if o.what else ""
                    lines.append(f"op {label}: {idx} {o.op} -> {_short(o.outputs[0] if o.outputs else '', 40)!r}{extra}")
            if s.tensors_changed:
                q = sum(1 for t in s.tensors_changed if t.quantization_changed)
                lines.append(f"{len(s.tensors_changed)} tensors changed ({q} in quantization):")
                for t in s.tensors_changed[:20]:
                    lines.append(f"  {_short(t.name, 44)}: {'; '.join(t.what)}")
                if len(s.tensors_changed) > 20:
                    lines.append(f"  ... and {len(s.tensors_changed) - 20} more")
            for sign, names in (("added", s.tensors_added), ("removed", s.tensors_removed)):
                if names:
                    lines.append(f"tensors {sign}: {', '.join(repr(_short(n, 40)) for n in names[:5])}"
                                 + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
        for n in self.numerics if numerics is None else [numerics]:
            if n.recorded_error != n.error:
                lines.append(f"{n.numerics}: recorded {'error ' + repr(n.recorded_error) if n.recorded_error else 'outputs'}"
                             f", now {'error ' + repr(n.error) if n.error else 'outputs'}")
            if n.inputs_note:
                lines.append(f"{n.numerics}: {n.inputs_note}")
            for o in n.outputs:
                if not o.equal:
                    within = " (within tolerance)" if _within(o, self.tolerance) else ""
                    lines.append(f"{n.numerics}: output {_format_output(o)}{within}")
        if self.sha256 != self.recorded_sha256 and len(lines) == 1:
            lines.append("graph, quantization and outputs unchanged")
        return lines


@dataclass
class CheckResult:
    directory: str
    models: list[ModelCheck]
    tolerance: int = 0

    @property
    def exit_code(self) -> int:
        if any(m.error is not None for m in self.models):
            return 2
        return 0 if all(m.passed for m in self.models) else 1

    def format(self) -> str:
        modes = sorted({n.numerics for m in self.models for n in m.numerics})
        lines = [f"quantcore baseline check {self.directory}: {len(self.models)} models, "
                 f"numerics {', '.join(modes) or '-'}"
                 + (f", tolerance {self.tolerance} LSB" if self.tolerance else "")]
        width = max([len(m.name) for m in self.models] + [4])
        for m in self.models:
            if m.error is not None:
                status = "ERROR"
            else:
                status = "ok" if m.passed else "FAILED"
            per = ", ".join(f"{n.numerics} {'ok' if m.numerics_passed(n) else 'FAILED'}"
                            + (" (cannot run, as recorded)" if n.recorded_error and n.error == n.recorded_error
                               else "") for n in m.numerics)
            lines.append(f"  {status:<6} {m.name:<{width}}  {per}")
            moved = any(not o.equal for n in m.numerics for o in n.outputs)
            if not m.passed or m.sha256 != m.recorded_sha256 or moved:
                lines.extend("         " + d for d in m.details())
        failed = [m.name for m in self.models if not m.passed]
        if failed:
            lines.append(f"result: {len(failed)} of {len(self.models)} models changed or failed: "
                         f"{', '.join(failed)} (exit {self.exit_code})")
        else:
            lines.append(f"result: all {len(self.models)} models match their baselines (exit 0)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"directory": self.directory, "passed": self.exit_code == 0, "models": [
            {"name": m.name, "model": m.model, "passed": m.passed, "error": m.error,
             "sha256": m.sha256, "recorded_sha256": m.recorded_sha256,
             "numerics": {n.numerics: m.numerics_passed(n) for n in m.numerics},
             "details": m.details()} for m in self.models]}

    def junit(self) -> bytes:
        """JUnit XML: one testcase per model x numerics mode, failures with the message."""
        cases = [(m, n) for m in self.models for n in (m.numerics or [None])]
        failures = sum(1 for m, n in cases if m.error is None and (n is None or not m.numerics_passed(n)))
        errors = sum(1 for m, n in cases if m.error is not None)
        total = sum(m.seconds for m in self.models)
        suites = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures), errors=str(errors),
                            time=f"{total:.3f}")
        suite = ET.SubElement(suites, "testsuite", name="quantcore.baseline", tests=str(len(cases)),
                              failures=str(failures), errors=str(errors), skipped="0", time=f"{total:.3f}")
        for m, n in cases:
            mode = n.numerics if n is not None else "load"
            case = ET.SubElement(suite, "testcase", classname=f"quantcore.baseline.{m.name}",
                                 name=f"{m.name}[{mode}]",
                                 time=f"{m.seconds / max(len(m.numerics), 1):.3f}")
            if m.error is not None:
                el = ET.SubElement(case, "error", message=_one_line(m.error), type="QuantcoreError")
                el.text = m.error
            elif n is None or not m.numerics_passed(n):
                text = "\n".join(m.details(n))
                first = text.splitlines()[0] if text else "changed"
                el = ET.SubElement(case, "failure", message=f"{m.name} [{mode}]: {_one_line(first)}",
                                   type="BaselineMismatch")
                el.text = text
        ET.indent(suites)
        return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


def _load_manifest(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read baseline {os.fspath(path)!r}: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InputError(f"{os.fspath(path)!r} is not a quantcore baseline (format {FORMAT})")
    return m


def manifests(directory: str | os.PathLike) -> dict[str, Path]:
    """Name -> manifest path of every baseline in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"baseline directory {os.fspath(d)!r} does not exist")
    out = {}
    for p in sorted(d.glob("*.json")):
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and m.get("format") == FORMAT:
            out[str(m.get("name", p.stem))] = p
    return out


def check_model(directory: str | os.PathLike, name: str, *, model: Any = None, inputs: Any = None,
                tolerance: int = 0, numerics: Iterable[str] | None = None) -> ModelCheck:
    """Check one recorded model. ``model`` overrides the recorded path (a path or
    bytes); ``inputs`` replaces the recorded inputs (they must then equal them, else
    the check fails: re-record); ``numerics`` restricts the modes checked."""
    t0 = time.perf_counter()
    d = Path(directory)
    mpath = d / f"{name}.json"
    result = ModelCheck(name, None, tolerance=tolerance)
    try:
        man = _load_manifest(mpath)
        result.recorded_sha256 = str(man.get("sha256", ""))
        if model is None:
            if not man.get("model"):
                raise InputError(f"baseline {name!r} was recorded from bytes: give the model")
            model = d / man["model"]
        result.model = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "<bytes>"
        data, m, _ = _read(model)
        result.sha256 = _sha(data)
        rec = GraphSummary.from_json(man.get("graph", {}))
        cur = summarize(m, values=False)
        result.structure = structural_diff(rec, cur)
        try:
            with np.load(d / f"{name}.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {os.fspath(d / (name + '.npz'))!r}: {e}") from None
        rec_inputs = [arrays[i["key"]] for i in man.get("inputs", [])]
    except QuantcoreError as e:
        result.error = str(e)
        result.seconds = time.perf_counter() - t0
        return result
    except KeyError as e:
        result.error = f"baseline {name!r} is incomplete: no {e}"
        result.seconds = time.perf_counter() - t0
        return result
    modes = man.get("numerics", {})
    wanted = list(modes) if numerics is None else [n for n in numerics if n in modes]
    inputs_note = ""
    try:
        if len(rec.inputs) != len(cur.inputs):
            raise InputError(f"the model now has {len(cur.inputs)} inputs, {len(rec.inputs)} recorded")
        xs = [convert_input(x, rec.tensors[a], cur.tensors[b])
              for x, a, b in zip(rec_inputs, rec.inputs, cur.inputs)]
        if inputs is not None:
            given = coerce_inputs(inputs, cur, name)
            if not all(np.array_equal(a, b) for a, b in zip(given, xs)):
                inputs_note = "inputs differ from the recorded ones (re-record the baseline)"
                xs = given
    except QuantcoreError as e:
        inputs_note = f"cannot feed the recorded inputs: {e}"
        xs = None
    for mode in wanted:
        entry = modes[mode]
        n = NumericsCheck(mode, recorded_error=entry.get("error"), inputs_note=inputs_note)
        result.numerics.append(n)
        if xs is None:
            continue
        try:
            values = run_all(m, xs, mode)
        except QuantcoreError as e:
            n.error = str(e)
            continue
        if n.recorded_error is not None:
            continue
        outs = entry.get("outputs", [])
        if len(outs) != len(cur.outputs):
            n.inputs_note = f"the model now has {len(cur.outputs)} outputs, {len(outs)} recorded"
            continue
        for k, (o, b) in enumerate(zip(outs, cur.outputs)):
            a = rec.outputs[k] if k < len(rec.outputs) else None
            if a is not None and result.structure is not None:
                b = result.structure.tensor_pairs.get(a, b)
            ref = arrays.get(o["key"])
            if ref is None or a is None:
                n.inputs_note = f"recorded output {o.get('name')!r} is missing"
                continue
            scale = lsb_scale(rec, a)
            if scale is None:
                scale = lsb_scale(cur, b)
            n.outputs.append(compare_arrays(o.get("name", rec.tensors[a].name), rec.tensors[a], ref,
                                            cur.tensors[b], values[b], scale, sqnr=True))
    result.seconds = time.perf_counter() - t0
    return result


def check(directory: str | os.PathLike, models: Iterable[Any] | None = None, *, tolerance: int = 0,
          numerics: Iterable[str] | None = None, workers: Any = None) -> CheckResult:
    """Check the baselines in ``directory`` (all, or those named in ``models``: a
    baseline name, or a model path, which then replaces the recorded path).

    ``workers``: None or 1 in this process; ``N`` local processes; ``"ray"``,
    ``"ray://ADDRESS"`` or :class:`quantcore.distributed.RayOptions` on Ray. Work is
    split into one task per (model, numerics mode); the result is the same as a
    local run's (report, JSON; JUnit differs only in the times)."""
    from quantcore.distributed import parse_workers

    workers = parse_workers(workers)
    if tolerance < 0:
        raise InputError(f"tolerance must be >= 0 LSB, not {tolerance}")
    found = manifests(directory)
    if not found:
        raise InputError(f"no quantcore baselines in {os.fspath(directory)!r} (record some with "
                         f"`quantcore baseline record`)")
    numerics = None if numerics is None else list(numerics)
    todo: list[tuple[str, Any]] = []
    if models is None:
        todo = [(n, None) for n in found]
    else:
        for item in models:
            s = os.fspath(item)
            if s in found:
                todo.append((s, None))
            elif model_name(s) in found and os.path.isfile(s):
                todo.append((model_name(s), s))
            else:
                raise InputError(f"no baseline for {s!r} in {os.fspath(directory)!r}; "
                                 f"recorded: {', '.join(found)}")
    if workers is not None:
        from quantcore.distributed import check_baselines

        return CheckResult(os.fspath(directory), check_baselines(directory, todo, tolerance=tolerance,
                                                                 numerics=numerics, workers=workers),
                           tolerance)
    return CheckResult(os.fspath(directory),
                       [check_model(directory, n, model=p, tolerance=tolerance, numerics=numerics)
                        for n, p in todo], tolerance)


def write_junit(result: CheckResult, path: str | os.PathLike) -> None:
    _atomic(Path(path), result.junit())


__all__ = ["CheckResult", "FORMAT", "ModelCheck", "NumericsCheck", "Recorded", "check", "check_model",
           "coerce_inputs", "dumps", "manifests", "model_name", "record", "record_model", "write_junit"]
