"""Quantization-aware training (QAT) numerics and ranges carried by float models.

Three things live here:

* :func:`fake_quant`, TensorFlow's ``fake_quant_with_min_max_vars`` and
  ``fake_quant_with_min_max_vars_per_channel`` in NumPy, bit for bit equal to
  TensorFlow 2.21 (docs/quantization.md eq. 23-26);
* :func:`fake_quant_qparams`, the converter's conversion of a FakeQuant range
  into a scale and zero point (``fakeQuantAttrsToType``, eq. 27);
* :func:`model_ranges`, which finds the ranges a float model already carries
  (FAKE_QUANT operators, QUANTIZE/DEQUANTIZE pairs around float tensors, min/max in
  quantization parameters), removes those operators and tells the quantizer which
  parameters to use, so a QAT model needs no representative data.

Sources: TensorFlow ``tensorflow/core/kernels/fake_quant_ops_functor.h`` (the 2.21
functor, with ``inv_scale`` and ``quant_zero``), LiteRT
``tflite/converter/quantization/common/quantization_lib/quantization_utils.cc``
(``GetQuantizedType``, ``ExpandVerySmallRange``), TensorFlow
``compiler/mlir/quantization/common/ir/FakeQuantSupport.cc``
(``fakeQuantAttrsToType``), LiteRT ``tflite/converter/transforms/legalize_patterns.td``
(``LegalizeFakeQuantWithMinMaxVars``: a FakeQuant becomes an unsigned
QUANTIZE/DEQUANTIZE pair).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
import numpy as np

from quantcore.errors import InputError

F32 = np.float32


# ---------------------------------------------------------------------------
# TensorFlow's FakeQuant (training-time simulation)
# ---------------------------------------------------------------------------
_FLT_MIN = F32(np.finfo(np.float32).tiny)


def _ftz(a):
    """Flush float32 subnormals to a zero of the same sign: TensorFlow runs its kernels
    with the x86 FTZ and DAZ bits set (``port::ScopedFlushDenormal``), so subnormal
    inputs count as zero and subnormal results become zero."""
    a = np.asarray(a, F32)
    return np.where(np.abs(a) < _FLT_MIN, np.copysign(F32(0), a), a).astype(F32)


def _std_min(x: np.ndarray, y) -> np.ndarray:
    """``std::min(x, y)`` = ``(y < x) ? y : x`` (a NaN ``x`` passes through)."""
    return np.where(y < x, y, x).astype(F32)


def _std_max(x: np.ndarray, y) -> np.ndarray:
    """``std::max(x, y)`` = ``(x < y) ? y : x``."""
    return np.where(x < y, y, x).astype(F32)


def _cast_uint16(v: np.ndarray) -> np.ndarray:
    """``static_cast<uint16>(float)`` as x86 executes it: through int32 (cvttss2si,
    NaN -> INT32_MIN), then the low 16 bits."""
    v = np.asarray(v, np.float64)
    with np.errstate(invalid="ignore"):
        i = np.where(np.isfinite(v) & (np.abs(v) < 2.0**31), np.trunc(v), -(2.0**31))
    return (i.astype(np.int64) & 0xFFFF).astype(np.int64)


def tf_nudge(min_value, max_value, quant_min: int, quant_max: int, *, flush: bool = False):
    """TensorFlow's ``Nudge`` (eq. 23), in float32, elementwise over arrays.

    Returns ``(nudged_min, nudged_max, scale, inv_scale)``::

        scale = f32((max - min) / f32(qmax - qmin)),  inv_scale = f32(f32(qmax - qmin) / (max - min))
        zp = qmin if f32(qmin - min/scale) < qmin, qmax if > qmax, else round_away(...)  (uint16)
        nudged_min = f32(f32(qmin - zp) * scale),  nudged_max = f32(f32(qmax - zp) * scale)

    ``flush``: subnormal operands and results count as zero (TensorFlow's FTZ/DAZ).
    """
    from quantcore.fixedpoint import round_half_away
    z = _ftz if flush else (lambda v: np.asarray(v, F32))
    mn = z(min_value)
    mx = z(max_value)
    qminf, qmaxf = F32(quant_min), F32(quant_max)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rng = z(mx - mn)
        scale = z(rng / (qmaxf - qminf))
        inv_scale = z((qmaxf - qminf) / rng)
        zpf = z(qminf - z(mn / scale))
        # static_cast<uint16> of each branch (only matters above 16 bits)
        zp = np.where(zpf < qminf, quant_min & 0xFFFF,
                      np.where(zpf > qmaxf, quant_max & 0xFFFF, _cast_uint16(round_half_away(zpf))))
        zpf32 = zp.astype(F32)
        nudged_min = z((qminf - zpf32).astype(F32) * scale)
        nudged_max = z((qmaxf - zpf32).astype(F32) * scale)
    return nudged_min, nudged_max, scale, inv_scale


def _quant_range(num_bits: int, narrow_range: bool) -> tuple[int, int]:
    if not isinstance(num_bits, (int, np.integer)) or not 2 <= int(num_bits) <= 16:
        raise InputError(f"num_bits must be an integer in [2, 16] (TensorFlow's FakeQuant), "
                         f"not {num_bits!r}")
    return (1 if narrow_range else 0), (1 << int(num_bits)) - 1


def fake_quant(x, min, max, num_bits: int = 8, narrow_range: bool = False,  # noqa: A002
               axis: int | None = None) -> np.ndarray:
    """TensorFlow's FakeQuant, bit for bit (TF 2.21; docs/quantization.md eq. 23-26).

    ``axis=None``: ``fake_quant_with_min_max_vars`` (scalar ``min``/``max``)::

        if min == max == 0: 0 everywhere
        nudged_min, nudged_max, scale, inv_scale = Nudge(min, max)           (eq. 23)
        quant_zero = floor(f32(-nudged_min * inv_scale) + 0.5)                  (eq. 24)
        c = max(min(x, nudged_max), nudged_min) - nudged_min     (NaN passes through)
        out = floor(c / scale - quant_zero + 0.5) * scale                      (eq. 25)

    every step rounded to float32, with subnormal operands and results taken as zero
    (TensorFlow runs with FTZ/DAZ). ``axis=k``: ``..._per_channel`` along axis ``k``
    (TensorFlow only has the last axis), ``min``/``max`` one value per channel, a
    channel with ``min == max == 0`` all zeros, and ``c * inv_scale`` in place of
    ``c / scale`` (eq. 26). ``num_bits`` in [2, 16]; ``narrow_range`` makes the grid
    ``[1, 2^b - 1]`` instead of ``[0, 2^b - 1]``. ``min > max`` and ``min == max != 0``
    follow the same arithmetic (TensorFlow does not check them): the results are
    NaN or a constant, as TensorFlow's.
    """
    qmin, qmax = _quant_range(num_bits, narrow_range)
    z = _ftz
    x = z(x)
    mn = z(min)
    mx = z(max)
    if axis is None:
        if mn.size != 1 or mx.size != 1:
            raise InputError(f"per-tensor fake_quant takes scalar min and max (got {mn.size} and "
                             f"{mx.size} values); pass axis= for per-channel ranges")
        mn, mx = mn.reshape(()), mx.reshape(())
        if mn == 0 and mx == 0:
            return np.zeros_like(x)
        nmin, nmax, scale, inv = tf_nudge(mn, mx, qmin, qmax, flush=True)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            qz = z(np.floor(z(z(-nmin) * inv) + F32(0.5)))
            c = z(_std_max(_std_min(x, nmax), nmin) - nmin)
            t = z(z(c / scale) - qz)
            return z(np.floor(z(t + F32(0.5))) * scale)
    if x.ndim == 0:
        raise InputError("per-channel fake_quant needs an input of rank >= 1")
    ax = int(axis)
    if not -x.ndim <= ax < x.ndim:
        raise InputError(f"axis {axis} out of range for an input of rank {x.ndim}")
    ax %= x.ndim
    d = x.shape[ax]
    if mn.ndim != 1 or mx.ndim != 1 or mn.size != d or mx.size != d:
        raise InputError(f"per-channel min and max need {d} values each (dimension {ax} of "
                         f"{list(x.shape)}), got shapes {list(mn.shape)} and {list(mx.shape)}")
    shape = [1] * x.ndim
    shape[ax] = d
    nmin, nmax, scale, inv = (a.reshape(shape) for a in tf_nudge(mn, mx, qmin, qmax, flush=True))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        qz = z(np.floor(z(z(-nmin) * inv) + F32(0.5)))
        c = z(_std_max(_std_min(x, nmax), nmin) - nmin)
        t = z(z(c * inv) - qz)
        out = z(np.floor(z(t + F32(0.5))) * scale)
    zero = ((mn == 0) & (mx == 0)).reshape(shape)
    return np.where(zero, F32(0), out).astype(F32)


def litert_fake_quant(x, min_value: float, max_value: float, num_bits: int) -> np.ndarray:
    """LiteRT's FAKE_QUANT operator (``reference_ops::FakeQuant``), which is TensorFlow's
    older functor: ``NudgeQuantizationRange`` with ``quant_min = 0`` (eq. 23, no
    ``inv_scale``), then ``round_away(f32(c * f32(1/scale))) * scale + nudged_min`` with
    ``c = min(nudged_max, max(nudged_min, x)) - nudged_min`` (a NaN input becomes
    ``nudged_min``). See runtime/ops/fake_quant.py."""
    from quantcore.fixedpoint import round_half_away
    x = np.asarray(x, F32)
    qmax = (1 << int(num_bits)) - 1
    nmin, nmax, scale, _ = tf_nudge(F32(min_value), F32(max_value), 0, qmax)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = F32(F32(1) / scale)
        lo = np.where(nmin < x, x, nmin).astype(F32)          # std::max(nudged_min, x)
        c = np.where(lo < nmax, lo, nmax).astype(F32)          # std::min(nudged_max, .)
        sh = (c - nmin).astype(F32)
        q = round_half_away((sh * inv).astype(F32)).astype(F32)
        return ((q * scale).astype(F32) + nmin).astype(F32)


# ---------------------------------------------------------------------------
# The converter's parameters for a FakeQuant range
# ---------------------------------------------------------------------------
K_NEAR_ZERO_TOLERANCE = 1.0e-6
K_SMALLEST_HALF_RANGE = 5.0e-7


def _storage_range(num_bits: int, narrow_range: bool, signed: bool) -> tuple[int, int]:
    """``getDefaultStorageParams``: 4, 8, 16 or 32-bit storage."""
    for bits in (4, 8, 16, 32):
        if num_bits <= bits:
            qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            return qmin + (1 if narrow_range else 0), qmax
    raise InputError(f"unsupported FakeQuant number of bits: {num_bits}")


def fake_quant_qparams(min_value, max_value, num_bits: int = 8, narrow_range: bool = False,
                       signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The converter's (scale, zero point) for FakeQuant ranges (eq. 27), per element.

    ``GetQuantizedType``: ``ExpandVerySmallRange`` (a range narrower than 1e-6 becomes
    at least [-5e-7, 5e-7]), then ``fakeQuantAttrsToType`` in double: ``scale = (max -
    min) / (qmax - qmin)``; the zero point from ``min`` or from ``max``, whichever has
    the smaller error term ``|q| + |r / scale|``, clamped, ``round`` half away; a range
    narrower than DBL_EPSILON gives scale 1 and zero point qmin. The scale is stored
    as float32. TFLite's legalization uses unsigned storage (``signed=False``); an
    int8 model then has the zero point minus 128.
    """
    qmin, qmax = _storage_range(int(num_bits), bool(narrow_range), bool(signed))
    mins = np.atleast_1d(np.asarray(min_value, np.float64))
    maxs = np.atleast_1d(np.asarray(max_value, np.float64))
    scales, zps = [], []
    for rmin, rmax in zip(mins.tolist(), maxs.tolist()):
        if not rmax - rmin > K_NEAR_ZERO_TOLERANCE:
            rmin, rmax = min(rmin, -K_SMALLEST_HALF_RANGE), max(rmax, K_SMALLEST_HALF_RANGE)
        if abs(rmax - rmin) < np.finfo(np.float64).eps:
            scales.append(1.0)
            zps.append(qmin)
            continue
        scale = (rmax - rmin) / (float(qmax) - float(qmin))
        zp_min, err_min = qmin - rmin / scale, abs(qmin) + abs(rmin / scale)
        zp_max, err_max = qmax - rmax / scale, abs(qmax) + abs(rmax / scale)
        zpd = zp_min if err_min < err_max else zp_max
        if zpd < qmin:
            zp = qmin
        elif zpd > qmax:
            zp = qmax
        else:
            zp = int(math.floor(abs(zpd) + 0.5)) * (1 if zpd >= 0 else -1)
        scales.append(scale)
        zps.append(zp)
    return np.asarray(scales, np.float64).astype(F32), np.asarray(zps, np.int64)


# ---------------------------------------------------------------------------
# Ranges a float model carries
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CarriedParams:
    """Quantization parameters a float model carries for one tensor, in unsigned
    8-bit form as TFLite's legalization makes them (``scale``, ``zero_point`` with
    ``q in [qmin, 255]``), with the float range they represent.
    ``axis`` is the quantized dimension of per-channel (weight) parameters."""
    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int = 0
    axis: int = 0
    source: str = ""

    def signed(self) -> tuple[np.ndarray, np.ndarray]:
        """int8 parameters: the same scale, zero point minus 128 (the converter's
        unsigned-to-signed step)."""
        return self.scale.astype(F32), (self.zero_point - 128).astype(np.int64)

    def unsigned(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scale.astype(F32), self.zero_point.astype(np.int64)

    def float_range(self) -> tuple[float, float]:
        """The represented range (first channel): ``s * (qmin - z)``, ``s * (255 - z)``."""
        s, z = float(self.scale[0]), int(self.zero_point[0])
        return s * (self.qmin - z), s * (255 - z)


@dataclass
class ModelRanges:
    """What :func:`model_ranges` found: activation parameters by tensor index,
    weight parameters by constant tensor index, and what was removed."""
    activations: dict[int, CarriedParams] = field(default_factory=dict)
    weights: dict[int, CarriedParams] = field(default_factory=dict)
    removed_ops: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.activations or self.weights)


def _to_unsigned(scale: np.ndarray, zp: np.ndarray, tensor_type: int) -> tuple[np.ndarray, np.ndarray, int]:
    from quantcore.schema.model import TensorType
    if tensor_type == int(TensorType.INT8):
        return scale, zp + 128, 0
    if tensor_type == int(TensorType.UINT8):
        return scale, zp, 0
    raise InputError(f"a QUANTIZE/DEQUANTIZE pair of type {TensorType(tensor_type).name} carries no "
                     "8-bit range quantcore can use")


def model_ranges(m, *, strip: bool = True) -> ModelRanges:
    """Find the quantization ranges a float model carries, in subgraph 0.

    Sources, as TensorFlow 2.21 emits them for fake-quantized graphs:

    * QUANTIZE -> DEQUANTIZE pairs around a float tensor (uint8, from
      ``tf.quantization.fake_quant_*`` converted without optimizations): the pair's
      scale and zero point; on a constant (weights) per channel or per tensor;
    * FAKE_QUANT operators: their ``min``/``max``/``num_bits``/``narrow_range``
      through :func:`fake_quant_qparams` (eq. 27);
    * ``min``/``max`` in a float tensor's quantization parameters (8 bits, not narrow).

    With ``strip`` the pairs and FAKE_QUANT operators are removed (the model is
    modified in place; their consumers read the original tensor, graph outputs keep
    their tensor). Parameters are then propagated backwards through operators that
    keep their input's parameters (RESHAPE, pooling, ...) to producers that have
    none, as the converter's quantization driver does.
    """
    from quantcore.schema.model import TensorType
    from quantcore.quantizer.rules import RULES
    found = ModelRanges()
    sg = m.subgraphs[0]
    fl = int(TensorType.FLOAT32)
    consumers: dict[int, list[int]] = {}
    for o, op in enumerate(sg.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(o)
    rename: dict[int, int] = {}   # tensor -> the tensor that replaces it
    drop: set[int] = set()
    outputs = set(sg.outputs)
    for o, op in enumerate(sg.operators):
        name = m.op_name(op)
        if name == "QUANTIZE" and len(op.inputs) == 1 and len(op.outputs) == 1:
            src, q = op.inputs[0], op.outputs[0]
            if src < 0 or sg.tensors[src].type != fl or sg.tensors[q].qparams() is None:
                continue
            users = consumers.get(q, [])
            if not users or q in outputs or any(
                    m.op_name(sg.operators[u]) != "DEQUANTIZE" for u in users):
                continue
            tq = sg.tensors[q]
            scale, zp = tq.qparams()
            scale, zp, _ = _to_unsigned(scale, zp, tq.type)
            const = m.tensor_data(0, src) is not None
            params = CarriedParams(scale.astype(F32), zp.astype(np.int64),
                                   axis=tq.quantization.quantized_dimension if len(scale) > 1 else 0,
                                   source=f"QUANTIZE/DEQUANTIZE (operators {o}, {users})")
            (found.weights if const else found.activations)[src] = params
            drop.add(o)
            drop.update(users)
            for u in users:
                rename[sg.operators[u].outputs[0]] = src
        elif name == "FAKE_QUANT" and len(op.inputs) == 1 and len(op.outputs) == 1:
            src, dst = op.inputs[0], op.outputs[0]
            o_ = op.options
            bits = int(o_.get("num_bits", 8))
            if bits != 8:
                raise InputError(f"operator {o}: FAKE_QUANT with num_bits {bits}; quantcore takes "
                                 "8-bit ranges only")
            narrow = bool(o_.get("narrow_range", False))
            scale, zp = fake_quant_qparams(o_.get("min", 0.0), o_.get("max", 0.0), 8, narrow)
            params = CarriedParams(scale, zp, qmin=1 if narrow else 0, source=f"FAKE_QUANT (operator {o})")
            const = m.tensor_data(0, src) is not None
            (found.weights if const else found.activations)[src] = params
            drop.add(o)
            rename[dst] = src
    for t, tensor in enumerate(sg.tensors):
        q = tensor.quantization
        if tensor.type != fl or q is None or q.min is None or q.max is None or t in found.activations:
            continue
        if len(q.min) == 1 and len(q.max) == 1 and m.tensor_data(0, t) is None:
            scale, zp = fake_quant_qparams(q.min, q.max, 8, False)
            found.activations[t] = CarriedParams(scale, zp, source="min/max in quantization parameters")
    if not strip:
        return found

    def final(t: int) -> int:
        while t in rename:
            t = rename[t]
        return t

    # A graph output that a removed pair produced keeps its own tensor: the
    # producer of the source writes it instead.
    for out in list(outputs):
        src = final(out)
        if src == out:
            continue
        params = found.activations.pop(src, None)
        if params is not None:
            found.activations[out] = params
        for k in list(rename):
            if final(k) == src:
                rename[k] = out
        rename.pop(out, None)
        rename[src] = out
        for op in sg.operators:
            op.outputs = [out if t == src else t for t in op.outputs]
        if src in sg.inputs:
            raise InputError(f"graph input {src} is fake-quantized straight into graph output {out}")
    for o in sorted(drop):
        found.removed_ops.append((o, m.op_name(sg.operators[o])))
        if m.op_name(sg.operators[o]) == "QUANTIZE":
            # the pair's integer tensor is now unused (and removed when the model is
            # written); it must not make the model look quantized meanwhile
            q = sg.tensors[sg.operators[o].outputs[0]]
            q.type, q.quantization = fl, None
    sg.operators = [op for o, op in enumerate(sg.operators) if o not in drop]
    for op in sg.operators:
        op.inputs = [final(t) if t >= 0 else t for t in op.inputs]
    sg.outputs = [final(t) for t in sg.outputs]
    # backward propagation through operators that keep their input's parameters, to
    # tensors that do not get parameters forward (from an input that has them)
    producer = {t: op for op in sg.operators for t in op.outputs if t >= 0}
    known = set(found.activations)
    for op in sg.operators:
        rule = RULES.get(m.op_name(op))
        if rule is not None and rule.same_as_input and op.outputs:
            j = rule.quantized_inputs[0] if rule.quantized_inputs else 0
            if j < len(op.inputs) and op.inputs[j] in known:
                known.update(t for t in op.outputs if t >= 0)
    changed = True
    while changed:
        changed = False
        for op in sg.operators:
            rule = RULES.get(m.op_name(op))
            if rule is None or not rule.same_as_input or not op.outputs:
                continue
            out = op.outputs[0]
            j = rule.quantized_inputs[0] if rule.quantized_inputs else 0
            if j >= len(op.inputs) or op.inputs[j] < 0:
                continue
            src = op.inputs[j]
            if out in found.activations and src not in known and src in producer \
                    and m.tensor_data(0, src) is None and sg.tensors[src].type == fl:
                p = found.activations[out]
                found.activations[src] = CarriedParams(p.scale, p.zero_point, p.qmin, p.axis,
                                                       f"propagated back from tensor {out}")
                known.add(src)
                changed = True
    return found
