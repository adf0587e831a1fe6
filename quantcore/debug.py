"""Layer-by-layer quantization error: which layers of a quantized model lose accuracy.

quantcore's counterpart of TensorFlow's ``QuantizationDebugger``, without TensorFlow.
``debug(float_model, quant_model, data)`` runs both models in quantcore's runtime on
the same samples and, for every quantized (int8, int16, uint8) operator output of
the quantized model, dequantizes it (``real = scale * (q - zero_point)``, eq. 1 of
docs/quantization.md, per channel where the tensor is) and compares it with the
matching float tensor. Two errors are measured per layer:

* **whole model** (``sqnr_db`` and the other plain columns): the dequantized tensor
  against the float model's tensor. It includes the error every earlier layer
  passed on (and a saturating TANH or a SOFTMAX may amplify it), so the layers after
  a bad one look bad too;
* **local** (``local_sqnr_db``, ``local_rmse_lsb``): the dequantized output against
  the float operator applied to the *dequantized inputs of the quantized operator*,
  the error this layer adds by itself (TensorFlow's layer-wise "debug mode"
  verification). A ``QUANTIZE`` row's local error is its own rounding and clamping.

Error statistics are aggregated over all elements of all samples, with
``e = dequantized - float``: mean and standard deviation of ``e``, ``max |e|``,
``MSE = mean(e^2)``, ``SQNR = 10 log10(sum f^2 / sum e^2)`` in dB (``+inf`` when the
tensors are equal), and ``rmse_lsb = sqrt(mean((e / scale)^2))``, the RMS error in
quantization steps (1/sqrt(12) = 0.29 LSB is pure rounding error of a well-fitted
range).

Tensors are matched by name (the quantizer keeps float names on quantized tensors;
the integer copy of a float output is recognised through the ``DEQUANTIZE`` or
``QUANTIZE`` that follows it; a ``QUANTIZE`` output through its input), falling back
to graph position (the k-th operator of the same type in execution order, same
output slot, same shape). Rows are sorted by local SQNR by default, so the layer
that causes an error comes first rather than the layers that inherit it.

The suggested denylist holds the quantizable layers whose local SQNR is more than
``margin_db`` below the median local SQNR of all layers: the layers whose own error
dominates. ``selective=True`` re-quantizes the float model once per suggested layer
with :func:`quantcore.quantize` and that layer kept in float (mode, per-channel and
I/O types detected from the given quantized model) and reports the model output
SQNR gained.
"""
from __future__ import annotations

import io
import json
import math
import os
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quantcore.errors import InputError, QuantcoreError
from quantcore.numerics import dequantize, quantize as affine_quantize
from quantcore.schema import read_model, write_model
from quantcore.schema.model import Model, TensorType, numpy_dtype

_QUANT_TYPES = (int(TensorType.INT8), int(TensorType.INT16), int(TensorType.UINT8))
_FLOAT32 = int(TensorType.FLOAT32)
_CONVERSION = ("QUANTIZE", "DEQUANTIZE")
SORT_KEYS = ("local", "sqnr", "rmse", "op")
_HIST_CAP = 20000       # values kept per layer for the --plot histograms
PLOT_HINT = "pip install 'quantcore[plot]'"


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------
@dataclass
class LayerRow:
    """Error of one quantized operator output (aggregated over all samples)."""
    op_index: int                     # operator index in the quantized model
    op: str
    tensor: int                       # tensor index in the quantized model
    name: str                         # tensor name in the quantized model
    dtype: str
    scale: float | list[float]        # a list when quantized per channel
    zero_point: int | list[int]
    num_elements: int                 # elements per sample
    mean_error: float
    std_error: float
    max_abs_error: float
    mse: float
    sqnr_db: float                    # whole model; +inf when equal
    rmse_lsb: float                   # RMS error / scale (quantization steps)
    local_sqnr_db: float | None = None
    local_rmse_lsb: float | None = None
    float_tensor: int | None = None   # matched tensor of the float model
    float_name: str | None = None
    float_op_index: int | None = None  # operator of the float model producing it
    match: str = "name"               # name, conversion, quantize-input, position
    quantizable: bool = False         # can be kept in float with quantize(denylist=...)
    suggested: bool = False

    @property
    def denylist_entry(self) -> str | None:
        """What ``quantcore quantize --denylist`` needs to keep this layer in float: the
        float output tensor's name (the float operator index if the name has a comma)."""
        if not self.quantizable or self.float_name is None:
            return None
        return self.float_name if "," not in self.float_name else str(self.float_op_index)


@dataclass
class SelectiveRow:
    """Model output SQNR after re-quantizing with ``denylist`` kept in float."""
    label: str
    denylist: list[str]
    output_sqnr_db: float
    gain_db: float                        # against the given quantized model
    gain_vs_requantized_db: float | None  # against quantcore's re-quantization without denylist
    kept_in_float: list[tuple[int, str, str]] = field(default_factory=list)
    error: str | None = None              # why re-quantizing or running failed (SQNRs are NaN)


@dataclass
class DebugResult:
    rows: list[LayerRow]                  # sorted by ``sort``
    samples: int
    output_sqnr_db: float                 # model outputs, all samples and outputs together
    settings: dict[str, Any]              # detected mode, per_channel, input_type, output_type and
                                          # denylist (operators the quantized model runs in float)
    suggested: list[LayerRow]             # the suggested denylist, worst first
    median_db: float | None               # median local SQNR the suggestion is measured from
    margin_db: float
    sort: str = "local"
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    selective: list[SelectiveRow] | None = None
    _values: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def denylist(self) -> list[str]:
        return [r.denylist_entry for r in self.suggested]

    def quantize_command(self, float_model: str = "FLOAT.tflite", data: str = "DATA",
                         output: str = "OUT.tflite") -> str:
        """A ready ``quantcore quantize`` command with the suggested denylist."""
        s = self.settings
        parts = ["quantcore", "quantize", float_model, "-o", output, "--data", data]
        if s["mode"] != "int8":
            parts += ["--mode", s["mode"]]
        if s["input_type"] != "float32":
            parts += ["--io", s["input_type"]]
        if not s["per_channel"]:
            parts.append("--per-tensor")
        parts += ["--denylist", ",".join(list(s.get("denylist", [])) + self.denylist)]
        return " ".join(shlex.quote(p) for p in parts)

    def to_json(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        return clean({
            "samples": self.samples, "settings": self.settings, "sort": self.sort,
            "output_sqnr_db": self.output_sqnr_db,
            "rows": [asdict(r) for r in self.rows],
            "unmatched": self.unmatched,
            "suggestion": {
                "metric": "local_sqnr_db", "median_db": self.median_db, "margin_db": self.margin_db,
                "denylist": self.denylist,
                "layers": [{"float_op_index": r.float_op_index, "op": r.op, "name": r.float_name,
                            "op_index": r.op_index, "local_sqnr_db": r.local_sqnr_db, "sqnr_db": r.sqnr_db}
                           for r in self.suggested],
                "command": self.quantize_command() if self.suggested else None},
            "selective": None if self.selective is None else [asdict(s) for s in self.selective],
        })

    def format(self, top: int | None = None, float_model: str = "FLOAT.tflite", data: str = "DATA") -> str:
        """The table a person reads, worst layers first (``top``: only the first N rows)."""
        s = self.settings
        lines = [f"{len(self.rows)} quantized operator outputs, {self.samples} samples "
                 f"(mode {s['mode']}, {'per-channel' if s['per_channel'] else 'per-tensor'}, "
                 f"I/O {s['input_type']}/{s['output_type']}); model output SQNR "
                 f"{_db(self.output_sqnr_db)} dB"]
        if s.get("denylist"):
            lines.append(f"operators already in float in the quantized model (kept in float by the "
                         f"commands below): {', '.join(s['denylist'])}")
        lines.append("")
        head = (f"{'op':>4}  {'type':<18} {'dtype':<5} {'scale':>10} {'zp':>6} {'elems':>7} "
                f"{'local dB':>9} {'SQNR dB':>9} {'RMSE LSB':>9} {'max|err|':>9} {'mean err':>9} "
                f"{'std err':>9} {'MSE':>9}  tensor")
        shown = self.rows if not top else self.rows[:top]
        names = [r.name if len(r.name) <= 56 else r.name[:53] + "..." for r in shown]
        lines += [head, "-" * (len(head) - len("tensor") + max([len("tensor")] + [len(n) for n in names]))]
        for r, name in zip(shown, names):
            scale = f"{r.scale:10.4g}" if isinstance(r.scale, float) else f"{'per-ch':>10}"
            zp = f"{r.zero_point:6d}" if isinstance(r.zero_point, int) else f"{'per-ch':>6}"
            mark = "*" if r.suggested else " "
            lines.append(
                f"{r.op_index:>4}{mark} {r.op:<18} {r.dtype:<5} {scale} {zp} {r.num_elements:>7} "
                f"{_db(r.local_sqnr_db):>9} {_db(r.sqnr_db):>9} {r.rmse_lsb:>9.3f} {r.max_abs_error:>9.3g} "
                f"{r.mean_error:>9.2e} {r.std_error:>9.3g} {r.mse:>9.3g}  {name}")
        if len(shown) < len(self.rows):
            lines.append(f"... {len(self.rows) - len(shown)} more rows (all of them in --json)")
        order = {"sqnr": "whole-model SQNR, ascending", "local": "local SQNR, ascending",
                 "rmse": "whole-model RMSE in LSB, descending", "op": "execution order"}[self.sort]
        lines.append(f"sorted by {order}; * suggested for the denylist")
        lines.append("local dB: the error the layer adds by itself (the float op on the dequantized inputs "
                     "of the quantized op)")
        lines.append("other columns: against the float model's tensor (errors of earlier layers included)")
        for u in self.unmatched:
            lines.append(f"no float counterpart: op {u['op_index']} {u['op']} tensor {u['name']!r}")
        lines.append("")
        if self.suggested:
            lines.append(f"suggested denylist: {len(self.suggested)} layer(s) whose local SQNR is more than "
                         f"{self.margin_db:g} dB below the median ({_db(self.median_db)} dB)")
            for r in self.suggested:
                lines.append(f"  op {r.op_index} {r.op}: local {_db(r.local_sqnr_db)} dB, whole model "
                             f"{_db(r.sqnr_db)} dB  {r.float_name}")
            lines.append("keep them in float with:")
            lines.append("  " + self.quantize_command(float_model, data))
        else:
            lines.append("no layer stands out: every local SQNR is within "
                         f"{self.margin_db:g} dB of the median ({_db(self.median_db)} dB)")
        if self.selective is not None:
            lines.append("")
            lines.append(f"selective quantization (re-quantized from the float model with quantcore, "
                         f"{s['mode']}, {'per-channel' if s['per_channel'] else 'per-tensor'}, "
                         f"I/O {s['input_type']}/{s['output_type']}):")
            lines.append(f"  {'kept in float':<50} {'output SQNR dB':>14} {'gain dB':>8} {'vs re-quant':>11}")
            lines.append(f"  {'(the given quantized model)':<50} {_db(self.output_sqnr_db):>14}")
            for sr in self.selective:
                label = sr.label if len(sr.label) <= 50 else sr.label[:47] + "..."
                vs = "" if sr.gain_vs_requantized_db is None or not sr.denylist else \
                    f"{sr.gain_vs_requantized_db:>+11.2f}"
                if sr.error is not None:
                    lines.append(f"  {label:<50} failed: {sr.error}")
                    continue
                lines.append(f"  {label:<50} {_db(sr.output_sqnr_db):>14} {sr.gain_db:>+8.2f} {vs}".rstrip())
            lines.append("  gain: against the given model; vs re-quant: against quantcore's re-quantization")
            lines.append("  without denylist (the part of the gain due to keeping the layer in float)")
        return "\n".join(lines)


def _db(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.2f}"


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------
class _Stats:
    """Running sums of an error ``e = got - ref`` over samples (float64)."""
    __slots__ = ("n", "sum_e", "sum_e2", "max_abs", "sum_ref2", "sum_lsb2")

    def __init__(self) -> None:
        self.n = 0
        self.sum_e = self.sum_e2 = self.max_abs = self.sum_ref2 = self.sum_lsb2 = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray, scale: np.ndarray | float) -> None:
        ref = np.asarray(ref, np.float64)
        e = np.asarray(got, np.float64) - ref
        self.n += e.size
        if not e.size:
            return
        e2 = e * e
        self.sum_e += float(e.sum())
        self.sum_e2 += float(e2.sum())
        self.max_abs = max(self.max_abs, float(np.max(np.abs(e))))
        self.sum_ref2 += float(np.sum(ref * ref))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.sum_lsb2 += float(np.sum(e2 / np.square(np.asarray(scale, np.float64))))

    @property
    def sqnr_db(self) -> float:
        if self.sum_e2 == 0:
            return math.inf
        if self.sum_ref2 == 0:
            return -math.inf
        return 10.0 * math.log10(self.sum_ref2 / self.sum_e2)

    @property
    def rmse_lsb(self) -> float:
        return math.sqrt(self.sum_lsb2 / self.n) if self.n else 0.0


def _sqnr(ref_sq: float, err_sq: float) -> float:
    if err_sq == 0:
        return math.inf
    if ref_sq == 0:
        return -math.inf
    return 10.0 * math.log10(ref_sq / err_sq)


# ---------------------------------------------------------------------------
# models, samples, matching
# ---------------------------------------------------------------------------
def _load(model: Any, label: str) -> tuple[bytes, Model]:
    if isinstance(model, Model):
        data = write_model(model)
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        try:
            with open(model, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise InputError(f"cannot read {label} {os.fspath(model)!r}: {e.strerror}") from None
    else:
        raise InputError(f"{label} must be a path, bytes or a Model, not {type(model).__name__}")
    return data, read_model(data)


def _is_quantized(t) -> bool:
    return t.type in _QUANT_TYPES and t.qparams() is not None


def _op_outputs(m: Model):
    sg = m.subgraphs[0]
    for o, op in enumerate(sg.operators):
        for j, t in enumerate(op.outputs):
            if t >= 0:
                yield o, op, j, t


def _check_models(fm: Model, qm: Model) -> None:
    fsg, qsg = fm.subgraphs[0], qm.subgraphs[0]
    for o, op, _, t in _op_outputs(fm):
        if _is_quantized(fsg.tensors[t]):
            raise InputError(f"the float model is quantized (operator {o} {fm.op_name(op)} writes "
                             f"{fsg.tensors[t].type_name} tensor {fsg.tensors[t].name!r}); give the float "
                             "model first and the quantized model second")
    if not any(_is_quantized(qsg.tensors[t]) for _, _, _, t in _op_outputs(qm)):
        raise InputError("the quantized model has no quantized (int8, int16, uint8) operator outputs")
    if len(fsg.inputs) != len(qsg.inputs) or len(fsg.outputs) != len(qsg.outputs):
        raise InputError(f"the models do not match: the float model has {len(fsg.inputs)} inputs and "
                         f"{len(fsg.outputs)} outputs, the quantized model {len(qsg.inputs)} and "
                         f"{len(qsg.outputs)}")
    for kind, fl, ql in (("input", fsg.inputs, qsg.inputs), ("output", fsg.outputs, qsg.outputs)):
        for k, (f, q) in enumerate(zip(fl, ql)):
            if list(fsg.tensors[f].shape) != list(qsg.tensors[q].shape):
                raise InputError(f"the models do not match: {kind} {k} is {fsg.tensors[f].shape} in the "
                                 f"float model and {qsg.tensors[q].shape} in the quantized model")


def _samples(data: Any, fm: Model, max_samples: int | None) -> list[list[np.ndarray]]:
    """The float input samples (each a list of arrays, one per model input)."""
    from quantcore.quantizer.calibrate import _sample_inputs, iterate_dataset

    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) < 1):
        raise InputError(f"max_samples must be a positive integer or None, not {max_samples!r}")
    if isinstance(data, (str, os.PathLike)):
        from quantcore.datasets import representative_dataset
        data = representative_dataset(data, fm)
    sg = fm.subgraphs[0]
    specs = [(sg.tensors[i].name, tuple(sg.tensors[i].shape), numpy_dtype(sg.tensors[i].type))
             for i in sg.inputs]
    out = []
    for n, sample in enumerate(iterate_dataset(data)):
        if max_samples is not None and n >= max_samples:
            break
        arrays = []
        for (name, shape, dtype), x in zip(specs, _sample_inputs(sample, fm, n)):
            if x.dtype.kind != np.dtype(dtype).kind:
                raise InputError(f"sample {n}: input {name!r} has dtype {x.dtype}, the float model "
                                 f"expects {dtype}")
            if tuple(x.shape) != shape:
                if x.shape == shape[1:] and shape[:1] == (1,):
                    x = x.reshape(shape)
                else:
                    raise InputError(f"sample {n}: input {name!r} has shape {list(x.shape)}, the "
                                     f"model expects {list(shape)}")
            arrays.append(np.ascontiguousarray(x, dtype))
        out.append(arrays)
    if not out:
        raise InputError("the data has no samples")
    return out


def _match(fm: Model, qm: Model) -> dict[int, tuple[int, str]]:
    """Quantized-model tensor -> (float-model tensor, how it was matched)."""
    fsg, qsg = fm.subgraphs[0], qm.subgraphs[0]
    fnames: dict[str, int] = {}
    for i, t in enumerate(fsg.tensors):
        if fm.tensor_data(0, i) is None:
            fnames.setdefault(t.name, i)
    f_by_type: dict[str, list[int]] = {}
    for o, op in enumerate(fsg.operators):
        f_by_type.setdefault(fm.op_name(op), []).append(o)
    consumers: dict[int, list[int]] = {}
    for o, op in enumerate(qsg.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(o)
    result: dict[int, tuple[int, str]] = {}
    for q, f in zip(qsg.inputs, fsg.inputs):
        result[q] = (f, "input")
    seen: dict[str, int] = {}
    for o, op in enumerate(qsg.operators):
        name = qm.op_name(op)
        pos = None
        if name not in _CONVERSION:
            k = seen.get(name, 0)
            seen[name] = k + 1
            same = f_by_type.get(name, [])
            pos = same[k] if k < len(same) else None
        for j, t in enumerate(op.outputs):
            if t < 0 or t in result:
                continue
            tensor = qsg.tensors[t]
            cands: list[tuple[int | None, str]] = [(fnames.get(tensor.name), "name")]
            for c in consumers.get(t, []):
                cop = qsg.operators[c]
                # the integer copy of a float output, converted back by a DEQUANTIZE (or a
                # QUANTIZE to uint8) that carries the float name
                if qm.op_name(cop) in _CONVERSION and cop.outputs and cop.outputs[0] >= 0:
                    cands.append((fnames.get(qsg.tensors[cop.outputs[0]].name), "conversion"))
            if name in _CONVERSION and op.inputs and op.inputs[0] in result:
                cands.append((result[op.inputs[0]][0], "quantize-input"))
            if pos is not None and j < len(fsg.operators[pos].outputs):
                cands.append((fsg.operators[pos].outputs[j], "position"))
            for f, how in cands:
                if f is not None and f >= 0 and list(fsg.tensors[f].shape) == list(tensor.shape):
                    result[t] = (f, how)
                    break
    return result


def detect_settings(qm: Model) -> dict[str, Any]:
    """The quantize() settings a quantized model was most likely made with: mode
    (int8, int16x8, uint8), per-channel weights, input and output types."""
    sg = qm.subgraphs[0]
    act = set()
    for o, op, _, t in _op_outputs(qm):
        if qm.op_name(op) not in _CONVERSION and _is_quantized(sg.tensors[t]):
            act.add(sg.tensors[t].type)
    if int(TensorType.INT16) in act:
        mode = "int16x8"
    elif int(TensorType.UINT8) in act and int(TensorType.INT8) not in act:
        mode = "uint8"
    else:
        mode = "int8"
    per_channel = None
    for op in sg.operators:
        if qm.op_name(op) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV") \
                and len(op.inputs) > 1 and op.inputs[1] >= 0:
            w = sg.tensors[op.inputs[1]]
            qp = w.qparams()
            if qp is not None and qm.tensor_data(0, op.inputs[1]) is not None:
                if len(qp[0]) > 1:
                    per_channel = True
                    break
                per_channel = False if per_channel is None else per_channel
    if mode == "uint8":
        per_channel = False

    def io_type(tensors: list[int]) -> str:
        return str(numpy_dtype(sg.tensors[tensors[0]].type)) if tensors else "float32"
    return {"mode": mode, "per_channel": True if per_channel is None else per_channel,
            "input_type": io_type(sg.inputs), "output_type": io_type(sg.outputs)}


def _real(value: np.ndarray, tensor) -> np.ndarray:
    """A tensor value in real units: dequantized when it is quantized."""
    if _is_quantized(tensor) and value.dtype.kind in "iu":
        scale, zp = tensor.qparams()
        axis = tensor.quantization.quantized_dimension if len(scale) > 1 else None
        return dequantize(value, scale, zp, axis)
    return value


def _scale_array(tensor, shape) -> np.ndarray | float:
    scale, _ = tensor.qparams()
    if len(scale) == 1:
        return float(scale[0])
    s = [1] * len(shape)
    s[tensor.quantization.quantized_dimension] = len(scale)
    return scale.astype(np.float64).reshape(s)


def _feed(it, model: Model, sample: list[np.ndarray]) -> None:
    sg = model.subgraphs[0]
    for i, x in zip(sg.inputs, sample):
        t = sg.tensors[i]
        if _is_quantized(t) and np.dtype(numpy_dtype(t.type)).kind in "iu":
            scale, zp = t.qparams()
            axis = t.quantization.quantized_dimension if len(scale) > 1 else None
            x = affine_quantize(x, scale, zp, numpy_dtype(t.type), axis)
        it.set_tensor(i, np.asarray(x, numpy_dtype(t.type)))
    it.invoke()


def _outputs(it, model: Model) -> list[np.ndarray]:
    sg = model.subgraphs[0]
    return [np.asarray(_real(it.get_tensor(t), sg.tensors[t]), np.float64) for t in sg.outputs]


def _float_kernels(it) -> dict[int, tuple[Any, Any]]:
    """{operator index: (kernel, prepared params)} of an allocated interpreter, to run
    one float operator on substituted inputs (the local error). Empty when the
    interpreter does not expose its prepared operators."""
    states = getattr(it, "_states", None)
    if not states:
        return {}
    return {p.index: (p.kernel, p.params) for p in getattr(states[0], "ops", [])
            if hasattr(p, "kernel") and hasattr(p, "params")}


# ---------------------------------------------------------------------------
# debug
# ---------------------------------------------------------------------------
def debug(float_model: Any, quant_model: Any, data: Any, *, max_samples: int | None = None,
          sort: str = "local", margin_db: float = 10.0, selective: bool = False) -> DebugResult:
    """Compare every quantized operator output of ``quant_model`` with ``float_model``.

    ``float_model``/``quant_model``: paths, bytes or :class:`~quantcore.schema.Model`.
    ``data``: the float inputs, as for :func:`quantcore.quantize`'s
    ``representative_dataset`` (a callable or iterable of samples, an array whose
    first axis indexes samples) or a path (.npy, .npz, directory; see
    :func:`quantcore.datasets.representative_dataset`); at most ``max_samples`` are
    used. Rows are sorted by ``sort``: ``"local"`` (local SQNR ascending, the
    default: the layer that causes an error comes first, not the layers after it
    that inherit and amplify it), ``"sqnr"`` (whole-model SQNR ascending),
    ``"rmse"`` (whole-model RMSE in LSB descending) or ``"op"`` (execution order).
    A layer is suggested for the denylist when it can be kept in float and its local
    SQNR is more than ``margin_db`` below the median.
    ``selective``: also re-quantize the float model with each suggested layer kept in
    float (calibrated on the same samples; operators the quantized model already runs
    in float stay in float) and report the output SQNR (:attr:`DebugResult.selective`).
    """
    from quantcore.runtime import Interpreter

    if sort not in SORT_KEYS:
        raise InputError(f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
    try:
        margin_db = float(margin_db)
    except (TypeError, ValueError):
        raise InputError(f"margin_db must be a number, not {margin_db!r}") from None
    if not math.isfinite(margin_db) or margin_db < 0:
        raise InputError(f"margin_db must be a finite number >= 0, not {margin_db!r}")
    f_bytes, fm = _load(float_model, "float model")
    q_bytes, qm = _load(quant_model, "quantized model")
    _check_models(fm, qm)
    samples = _samples(data, fm, max_samples)
    fsg, qsg = fm.subgraphs[0], qm.subgraphs[0]
    matched = _match(fm, qm)
    f_prod = {t: o for o, op in enumerate(fsg.operators) for t in op.outputs if t >= 0}

    from quantcore.quantizer.rules import PASSTHROUGH, RULES

    # the rows: every quantized operator output, with its float counterpart
    layers = []      # (q op index, q op, out slot, q tensor, float tensor or None, how, float op or None)
    unmatched = []
    for o, op, j, t in _op_outputs(qm):
        tensor = qsg.tensors[t]
        if not _is_quantized(tensor):
            continue
        name = qm.op_name(op)
        if t not in matched:
            unmatched.append({"op_index": o, "op": name, "tensor": t, "name": tensor.name})
            continue
        f, how = matched[t]
        fo = f_prod.get(f)
        if fo is not None and (fm.op_name(fsg.operators[fo]) != name
                               or fsg.operators[fo].outputs.index(f) != j):
            fo = None
        layers.append((o, op, j, t, f, how, fo))

    f_it = Interpreter(model_content=f_bytes, experimental_preserve_all_tensors=True)
    q_it = Interpreter(model_content=q_bytes, experimental_preserve_all_tensors=True)
    f_it.allocate_tensors()
    q_it.allocate_tensors()
    kernels = _float_kernels(f_it)
    q_consts = {i for op in qsg.operators for i in op.inputs if i >= 0 and qm.tensor_data(0, i) is not None}
    whole = {t: _Stats() for _, _, _, t, _, _, _ in layers}
    local: dict[int, _Stats | None] = {}
    for o, op, j, t, f, how, fo in layers:
        can = qm.op_name(op) in _CONVERSION or (
            fo is not None and fo in kernels and len(fsg.operators[fo].inputs) == len(op.inputs))
        local[t] = _Stats() if can else None
    values: dict[int, list[list[np.ndarray]]] = {t: [[], []] for t in whole}
    out_sig = out_err = 0.0
    float_outputs: list[list[np.ndarray]] = []
    for sample in samples:
        _feed(f_it, fm, sample)
        _feed(q_it, qm, sample)
        fo_vals, qo_vals = _outputs(f_it, fm), _outputs(q_it, qm)
        float_outputs.append(fo_vals)
        for a, b in zip(fo_vals, qo_vals):
            out_sig += float(np.sum(a * a))
            out_err += float(np.sum((b - a) ** 2))
        qreal: dict[int, np.ndarray] = {}

        def real(i: int) -> np.ndarray:
            if i not in qreal:
                qreal[i] = _real(q_it.tensor(i)(), qsg.tensors[i])
            return qreal[i]

        for o, op, j, t, f, how, fo in layers:
            tensor = qsg.tensors[t]
            got = real(t)
            ref = f_it.tensor(f)()
            if ref is None or got.shape != ref.shape:
                continue
            scale = _scale_array(tensor, got.shape)
            whole[t].add(ref, got, scale)
            kept = values[t]
            if sum(v.size for v in kept[0]) < _HIST_CAP:
                kept[0].append(np.asarray(ref, np.float32).reshape(-1)[:_HIST_CAP])
                kept[1].append(np.asarray(got, np.float32).reshape(-1)[:_HIST_CAP])
            st = local[t]
            if st is None:
                continue
            if qm.op_name(op) in _CONVERSION:
                lref = real(op.inputs[0])
            else:
                args = []
                for fi, qi in zip(fsg.operators[fo].inputs, op.inputs):
                    if fi < 0 or qi < 0:
                        args.append(None)
                    elif qi in q_consts:   # weights, bias, shapes: the float model's values
                        args.append(f_it.tensor(fi)())
                    else:
                        args.append(real(qi))
                kernel, params = kernels[fo]
                try:
                    lref = kernel.eval(params, *args)[j]
                except QuantcoreError:
                    local[t] = None
                    continue
            if np.shape(lref) != got.shape:
                local[t] = None
                continue
            st.add(lref, got, scale)

    rows = []
    for o, op, j, t, f, how, fo in layers:
        s = whole[t]
        if s.n == 0:
            unmatched.append({"op_index": o, "op": qm.op_name(op), "tensor": t, "name": qsg.tensors[t].name})
            continue
        tensor = qsg.tensors[t]
        scale, zp = tensor.qparams()
        name = qm.op_name(op)
        mean = s.sum_e / s.n
        rule_ok = name in RULES or name in PASSTHROUGH
        ls = local[t]
        rows.append(LayerRow(
            op_index=o, op=name, tensor=t, name=tensor.name, dtype=tensor.type_name.lower(),
            scale=float(scale[0]) if len(scale) == 1 else [float(v) for v in scale],
            zero_point=int(zp[0]) if len(zp) == 1 else [int(v) for v in zp],
            num_elements=s.n // len(samples), mean_error=mean,
            std_error=math.sqrt(max(s.sum_e2 / s.n - mean * mean, 0.0)), max_abs_error=s.max_abs,
            mse=s.sum_e2 / s.n, sqnr_db=s.sqnr_db, rmse_lsb=s.rmse_lsb,
            local_sqnr_db=None if ls is None or ls.n == 0 else ls.sqnr_db,
            local_rmse_lsb=None if ls is None or ls.n == 0 else ls.rmse_lsb,
            float_tensor=f, float_name=fsg.tensors[f].name, float_op_index=fo, match=how,
            quantizable=fo is not None and name not in _CONVERSION and rule_ok))
    suggested, median = _suggest(rows, margin_db)
    result = DebugResult(rows=_sorted(rows, sort), samples=len(samples),
                         output_sqnr_db=_sqnr(out_sig, out_err),
                         settings={**detect_settings(qm), "denylist": _kept_in_float(fm, qm, matched, f_prod)},
                         suggested=suggested, median_db=median, margin_db=margin_db, sort=sort,
                         unmatched=unmatched)
    result._values = {t: (np.concatenate(v[0])[:_HIST_CAP], np.concatenate(v[1])[:_HIST_CAP])
                      for t, v in values.items() if v[0]}
    if selective:
        result.selective = _selective(f_bytes, fm, samples, float_outputs, result)
    return result


def _kept_in_float(fm: Model, qm: Model, matched: dict[int, tuple[int, str]],
                   f_prod: dict[int, int]) -> list[str]:
    """Denylist entries for the operators the quantized model already runs in float
    (float outputs, not QUANTIZE/DEQUANTIZE), so a re-quantization keeps them too."""
    fsg, qsg = fm.subgraphs[0], qm.subgraphs[0]
    out: list[str] = []
    for o, op, j, t in _op_outputs(qm):
        if j or qm.op_name(op) in _CONVERSION or qsg.tensors[t].type != _FLOAT32 or t not in matched:
            continue
        f = matched[t][0]
        fo = f_prod.get(f)
        if fo is None or fm.op_name(fsg.operators[fo]) != qm.op_name(op):
            continue
        entry = fsg.tensors[f].name if "," not in fsg.tensors[f].name else str(fo)
        if entry not in out:
            out.append(entry)
    return out


def _suggest(rows: list[LayerRow], margin_db: float) -> tuple[list[LayerRow], float | None]:
    """Quantizable layers whose local SQNR is more than ``margin_db`` below the median
    (finite local SQNRs of all layers), worst first."""
    finite = [r.local_sqnr_db for r in rows if r.local_sqnr_db is not None and math.isfinite(r.local_sqnr_db)]
    if not finite:
        return [], None
    median = float(np.median(finite))
    out = [r for r in rows if r.quantizable and r.local_sqnr_db is not None
           and r.local_sqnr_db < median - margin_db and r.denylist_entry is not None]
    out.sort(key=lambda r: (r.local_sqnr_db, r.op_index))
    for r in out:
        r.suggested = True
    return out, median


def _sorted(rows: list[LayerRow], sort: str) -> list[LayerRow]:
    def up(v: float | None) -> float:
        return math.inf if v is None or math.isnan(v) else v
    if sort == "op":
        return sorted(rows, key=lambda r: (r.op_index, r.tensor))
    if sort == "local":
        return sorted(rows, key=lambda r: (up(r.local_sqnr_db), up(r.sqnr_db), r.op_index))
    if sort == "rmse":
        return sorted(rows, key=lambda r: (-r.rmse_lsb, r.op_index))
    return sorted(rows, key=lambda r: (up(r.sqnr_db), up(r.local_sqnr_db), r.op_index))


def _selective(f_bytes: bytes, fm: Model, samples: list[list[np.ndarray]],
               float_outputs: list[list[np.ndarray]], result: DebugResult) -> list[SelectiveRow]:
    """Re-quantize with each suggested layer (and all of them) kept in float."""
    from quantcore.quantizer import QuantizationReport, quantize
    from quantcore.runtime import Interpreter

    s = result.settings
    in_t, out_t = np.dtype(s["input_type"]), np.dtype(s["output_type"])
    if s["mode"] == "int16x8":
        # quantize() offers float32 or int16 I/O in 16x8
        in_t = in_t if in_t in (np.dtype(np.float32), np.dtype(np.int16)) else np.dtype(np.float32)
        out_t = out_t if out_t in (np.dtype(np.float32), np.dtype(np.int16)) else np.dtype(np.float32)

    def output_sqnr(denylist: list[str]) -> tuple[float, list, str | None]:
        report = QuantizationReport([])
        try:
            q = quantize(f_bytes, representative_dataset=samples, mode=s["mode"],
                         per_channel=s["per_channel"], inference_input_type=in_t,
                         inference_output_type=out_t, denylist=list(s.get("denylist", [])) + denylist,
                         report=report)
            qm = read_model(q)
            it = Interpreter(model_content=q)
            it.allocate_tensors()
            sig = err = 0.0
            for sample, ref in zip(samples, float_outputs):
                _feed(it, qm, sample)
                for a, b in zip(ref, _outputs(it, qm)):
                    sig += float(np.sum(a * a))
                    err += float(np.sum((b - a) ** 2))
        except QuantcoreError as e:
            return math.nan, list(report.float_ops), " ".join(str(e).split())
        return _sqnr(sig, err), list(report.float_ops), None

    given = result.output_sqnr_db

    def gain(v: float, ref: float) -> float:
        if math.isinf(v) and math.isinf(ref) and v == ref:
            return 0.0
        return v - ref

    base, kept, error = output_sqnr([])
    rows = [SelectiveRow("(nothing: quantcore re-quantization)", [], base, gain(base, given), 0.0, kept,
                         error)]
    groups = [([r.denylist_entry], f"op {r.op_index} {r.op} {r.float_name}") for r in result.suggested]
    if len(result.suggested) > 1:
        groups.append((result.denylist, f"all {len(result.suggested)} suggested layers"))
    for denylist, label in groups:
        v, kept, error = output_sqnr(denylist)
        rows.append(SelectiveRow(label, denylist, v, gain(v, given), gain(v, base), kept, error))
    return rows


# ---------------------------------------------------------------------------
# output files
# ---------------------------------------------------------------------------
def write_json(result: DebugResult, path: str | os.PathLike) -> None:
    from quantcore.schema import atomic_write
    atomic_write(path, json.dumps(result.to_json(), indent=1).encode())


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}") from None
    return Figure, FigureCanvasAgg


def plot(result: DebugResult, path: str | os.PathLike, worst: int = 3) -> None:
    """A PNG: per-layer SQNR bars (execution order; local SQNR as markers; suggested
    layers in red) and value histograms of the ``worst`` layers (by the result's sort
    order) against their quantization grid. Needs matplotlib (``quantcore[plot]``)."""
    from quantcore.schema import atomic_write

    Figure, FigureCanvasAgg = _matplotlib()
    rows = sorted(result.rows, key=lambda r: (r.op_index, r.tensor))
    worst_rows = [r for r in result.rows if r.tensor in result._values][:max(int(worst), 0)]
    n_hist = len(worst_rows)
    fig = Figure(figsize=(max(8.0, 0.35 * len(rows) + 2), 4.2 + 2.8 * ((n_hist + 2) // 3)), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + (n_hist + 2) // 3, 3, height_ratios=[1.5] + [1.0] * ((n_hist + 2) // 3))
    ax = fig.add_subplot(grid[0, :])
    finite = [v for r in rows for v in (r.sqnr_db, r.local_sqnr_db) if v is not None and math.isfinite(v)]
    top = (max(finite) if finite else 1.0) + 5
    x = np.arange(len(rows))
    heights = [min(r.sqnr_db, top) if not math.isnan(r.sqnr_db) else 0.0 for r in rows]
    colors = ["tab:red" if r.suggested else "tab:blue" for r in rows]
    ax.bar(x, heights, color=colors, alpha=0.8, label="whole-model SQNR")
    lx = [i for i, r in enumerate(rows) if r.local_sqnr_db is not None and math.isfinite(r.local_sqnr_db)]
    ax.plot(lx, [rows[i].local_sqnr_db for i in lx], "k_", markersize=12, markeredgewidth=2,
            linestyle="none", label="local SQNR")
    ex = [i for i, r in enumerate(rows) if r.local_sqnr_db is not None and r.local_sqnr_db == math.inf]
    if ex:
        ax.plot(ex, [top - 1.5] * len(ex), "kv", markersize=5, linestyle="none", label="local: exact")
    if result.median_db is not None:
        ax.axhline(result.median_db - result.margin_db, color="tab:red", linestyle=":", linewidth=1,
                   label=f"median local - {result.margin_db:g} dB")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r.op_index} {r.op}" for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("SQNR (dB)")
    ax.set_ylim(min(0.0, min(finite, default=0.0) - 2), top)
    ax.set_title(f"per-layer SQNR ({result.samples} samples; model output "
                 f"{_db(result.output_sqnr_db)} dB; red: suggested denylist)")
    ax.legend(fontsize=7, loc="lower left")
    for k, r in enumerate(worst_rows):
        hx = fig.add_subplot(grid[1 + k // 3, k % 3])
        ref, got = result._values[r.tensor]
        lo = float(min(ref.min(), got.min()))
        hi = float(max(ref.max(), got.max()))
        if hi <= lo:
            hi = lo + 1.0
        bins = np.linspace(lo, hi, 81)
        grid_note = "per-channel grid"
        steps = []
        if isinstance(r.scale, float) and r.scale > 0:
            info = np.iinfo(np.dtype(r.dtype))
            first = max(math.ceil(lo / r.scale + r.zero_point), int(info.min))
            last = min(math.floor(hi / r.scale + r.zero_point), int(info.max))
            steps = list(range(first, last + 1))
            if 64 < len(steps) <= 512:
                # one bin per quantization level: the histogram shows how the grid is used
                bins = (np.arange(first, last + 2) - 0.5 - r.zero_point) * r.scale
            grid_note = f"scale {r.scale:.3g}, zp {r.zero_point}, {len(steps)} levels in view"
            for e in (r.scale * (int(info.min) - r.zero_point), r.scale * (int(info.max) - r.zero_point)):
                if lo - 0.05 * (hi - lo) <= e <= hi + 0.05 * (hi - lo):
                    hx.axvline(e, color="tab:red", linewidth=1, linestyle="--")   # clamp limit
        if 0 < len(steps) <= 64:
            for q in steps:
                hx.axvline(r.scale * (q - r.zero_point), color="0.5", linewidth=0.6, zorder=0)
        hx.hist(ref, bins=bins, color="tab:blue", alpha=0.6, label="float")
        hx.hist(got, bins=bins, histtype="step", color="tab:orange", label="dequantized")
        hx.set_title(f"op {r.op_index} {r.op}\nlocal {_db(r.local_sqnr_db)} dB, SQNR {_db(r.sqnr_db)} dB"
                     f"\n{grid_note}", fontsize=8)
        hx.tick_params(labelsize=7)
        hx.set_yscale("log")
        if k == 0:
            hx.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


__all__ = ["DebugResult", "LayerRow", "SelectiveRow", "SORT_KEYS", "debug", "detect_settings", "plot",
           "write_json"]
