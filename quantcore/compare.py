"""Per-tensor comparison of quantcore against LiteRT on the same model and inputs.

``compare(model, inputs)`` runs the model in LiteRT (in a child process, with the
resolver matching ``numerics``; an abort is reported, not fatal) and in quantcore,
with every tensor preserved on both sides, and returns one row per operator output
in execution order: equal or not, how many elements differ, the largest difference
in LSB (integer steps) and in real units (``scale * LSB``). The first operator whose
integer output differs is named, with its worst element and the quantization
parameters of its inputs.
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
            lines.append(f"LiteRT ({self.numerics}) failed: {self.litert_error}")
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
                lines.append(f"\nall {sum(1 for r in self.rows)} operator outputs equal to LiteRT ({self.numerics})")
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
    """Run ``model`` in LiteRT and quantcore on the same inputs and compare every tensor."""
    from quantcore.runtime import Interpreter

    data = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read() \
        if isinstance(model, (str, os.PathLike)) else None
    if data is None:
        raise InputError("model must be a path or bytes")
    m = read_model(data)
    if inputs is None:
        inputs = default_inputs(m, seed)
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
            if t < 0 or t not in theirs.tensors:
                continue
            tensor = sg.tensors[t]
            ours = it.get_tensor(t)
            ref = theirs.tensors[t]
            qp = tensor.qparams()
            row = _row(o, name, t, tensor, ours, ref, qp)
            rows.append(row)
            if not row.equal and first is None and not row.dtype.startswith("float"):
                first = _divergence(o, name, t, tensor, ours, ref, op, sg)
    return CompareResult(numerics, rows, first)


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


def write_json(result: CompareResult, path: str | os.PathLike) -> None:
    from quantcore.schema import atomic_write
    atomic_write(path, json.dumps(result.to_json(), indent=2).encode())


__all__ = ["CompareResult", "Divergence", "TensorRow", "compare", "default_inputs", "load_inputs",
           "write_json"]
