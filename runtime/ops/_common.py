"""What every kernel shares: the prepare-time view of an operator and its tensors,
checks that raise typed errors with the operator's path, padding arithmetic and
fused-activation clamps.

A kernel module under ``runtime/ops/`` defines::

    def prepare(ctx: OpContext) -> Params      # all validation, multipliers, tables
    def eval(params: Params, *inputs) -> list   # arithmetic only; one array per output

``Params`` is a frozen dataclass named after TFLite's OpData/params structs, with
TFLite's own field names (``input_offset``, ``output_multiplier``, ...).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from quantcore.errors import InputError, ModelFormatError, UnsupportedOpError
from quantcore.fixedpoint import activation_range, round_half_away
from quantcore.schema.model import Model, Operator, TensorType
from quantcore.schema.validate import DEFAULT_MEMORY_BUDGET

INT8 = int(TensorType.INT8)
UINT8 = int(TensorType.UINT8)
INT16 = int(TensorType.INT16)
INT32 = int(TensorType.INT32)
INT64 = int(TensorType.INT64)
FLOAT32 = int(TensorType.FLOAT32)
FLOAT16 = int(TensorType.FLOAT16)
BOOL = int(TensorType.BOOL)

QMIN = {INT8: -128, UINT8: 0, INT16: -32768, INT32: -(2**31)}
QMAX = {INT8: 127, UINT8: 255, INT16: 32767, INT32: 2**31 - 1}

NUMERICS = ("reference", "optimized", "xnnpack", "micro")
FLT_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TensorInfo:
    """Prepare-time facts about one tensor. ``data`` is the constant value (or None)."""
    index: int
    name: str
    type: int
    dtype: np.dtype
    shape: tuple[int, ...]
    scale: np.ndarray | None = None        # float32, length 1 or per channel
    zero_point: np.ndarray | None = None   # int64, same length as scale
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    is_variable: bool = False

    @property
    def quantized(self) -> bool:
        return self.scale is not None and len(self.scale) > 0

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and len(self.scale) > 1

    @property
    def s(self) -> float:
        """The per-tensor scale as a Python float (the float32 value, widened)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])

    @property
    def type_name(self) -> str:
        return TensorType(self.type).name

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class OpContext:
    """An operator as prepare sees it."""
    model: Model
    subgraph: int
    index: int
    op: Operator
    op_name: str
    version: int
    inputs: list[TensorInfo | None]
    outputs: list[TensorInfo]
    options: dict
    numerics: str = "reference"
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"subgraphs[{self.subgraph}].operators[{self.index}]"

    # -- errors --------------------------------------------------------------------
    def error(self, message: str, where: str = "") -> ModelFormatError:
        return ModelFormatError(f"{self.op_name}: {message}", self.path + where)

    def check(self, condition: bool, message: str, where: str = "") -> None:
        """Raise ModelFormatError(message) at this operator's path unless condition holds."""
        if not condition:
            raise self.error(message, where)

    def unsupported(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.op_name, self.version, path=self.path, detail=detail)

    # -- accessors -----------------------------------------------------------------
    def input(self, i: int, *, optional: bool = False) -> TensorInfo | None:
        if i >= len(self.inputs):
            if optional:
                return None
            raise self.error(f"needs input {i}, has {len(self.inputs)}", ".inputs")
        t = self.inputs[i]
        if t is None and not optional:
            raise self.error(f"input {i} is required but marked absent (-1)", f".inputs[{i}]")
        return t

    def output(self, i: int = 0) -> TensorInfo:
        if i >= len(self.outputs):
            raise self.error(f"needs output {i}, has {len(self.outputs)}", ".outputs")
        return self.outputs[i]

    def check_io_count(self, n_in: int | tuple[int, int], n_out: int = 1) -> None:
        lo, hi = (n_in, n_in) if isinstance(n_in, int) else n_in
        self.check(lo <= len(self.inputs) <= hi,
                   f"expects {lo if lo == hi else f'{lo}..{hi}'} inputs, has {len(self.inputs)}", ".inputs")
        self.check(len(self.outputs) == n_out, f"expects {n_out} outputs, has {len(self.outputs)}",
                   ".outputs")

    def check_type(self, t: TensorInfo, allowed: tuple[int, ...], role: str) -> None:
        if t.type not in allowed:
            names = ", ".join(TensorType(a).name for a in allowed)
            raise self.unsupported(f"{role} tensor {t.index} ({t.name!r}) has type {t.type_name}; "
                                   f"supported: {names}")

    def where(self, t: TensorInfo) -> str:
        for kind in ("inputs", "outputs"):
            for j, x in enumerate(getattr(self, kind)):
                if x is not None and x.index == t.index:
                    return f".{kind}[{j}]"
        return ""

    def require_variable(self, t: TensorInfo, role: str) -> None:
        """A state tensor the kernel writes back at every invoke: LiteRT's
        ``GetVariableInput`` returns nullptr for a tensor that is not ``is_variable``
        (and the reader refuses a variable with a buffer), so Prepare fails."""
        self.check(t.is_variable and t.data is None, f"{role} (tensor {t.index}, {t.name!r}) "
                   "must be a variable tensor without a buffer (it is written at every invoke)",
                   self.where(t))

    def require_quantized(self, t: TensorInfo, *, per_channel_dim: int | None = None,
                          symmetric: bool = False) -> None:
        """Scale/zero point present, finite, > 0, zero points in range (CVE-2021-37682)."""
        w = self.where(t)
        self.check(t.quantized, f"{t.type_name} tensor {t.index} ({t.name!r}) has no quantization "
                   "parameters", w)
        self.check(bool(np.all(np.isfinite(t.scale)) and np.all(t.scale > 0)),
                   f"tensor {t.index} has a scale that is not finite and > 0: {t.scale.tolist()[:4]}", w)
        if t.type in QMIN and t.type != INT32:
            self.check(bool(np.all((t.zero_point >= QMIN[t.type]) & (t.zero_point <= QMAX[t.type]))),
                       f"tensor {t.index} has a zero point outside the {t.type_name} range", w)
        if t.per_channel:
            self.check(per_channel_dim is not None,
                       f"tensor {t.index} is quantized per channel, which this operator does not support", w)
            self.check(t.quantized_dimension == per_channel_dim,
                       f"tensor {t.index} is quantized along dimension {t.quantized_dimension}, "
                       f"expected {per_channel_dim} (LiteRT would apply the scales along dimension "
                       f"{per_channel_dim} anyway)", w)
            self.check(len(t.shape) > per_channel_dim and t.shape[per_channel_dim] == len(t.scale),
                       f"tensor {t.index} has {len(t.scale)} scales for {t.shape} along "
                       f"dimension {per_channel_dim}", w)
        if symmetric:
            self.check(bool(np.all(t.zero_point == 0)), f"tensor {t.index} must have zero point 0", w)

    def require_quantized_filter(self, x: TensorInfo, w: TensorInfo, out: TensorInfo,
                                 cout: int, role: str = "filter") -> None:
        """Quantized input, output and filter of a depthwise or transpose convolution:
        one filter scale or one per output channel (int8/int16 input only), along a
        dimension of the filter that has ``cout`` entries."""
        self.require_quantized(x)
        self.require_quantized(out)
        self.check(w.quantized, f"{role} tensor {w.index} has no quantization parameters", ".inputs[1]")
        self.check(len(w.scale) in (1, cout), f"{role} has {len(w.scale)} scales for {cout} channels",
                   ".inputs[1]")
        if len(w.scale) == 1:
            self.require_quantized(w)
            return
        self.check(x.type in (INT8, INT16), f"per-channel {role} needs int8 or int16 input", ".inputs[1]")
        qd = w.quantized_dimension
        self.check(0 <= qd < 4 and w.shape[qd] == cout,
                   f"per-channel {role} quantized along dimension {qd} of {list(w.shape)}, which "
                   f"does not have {cout} entries", ".inputs[1]")
        self.require_quantized(w, per_channel_dim=qd)

    def check_uint8_bias_scale(self, x: TensorInfo, w: TensorInfo, b: TensorInfo | None,
                               out: TensorInfo, where: str, role: str = "filter") -> None:
        """LiteRT's uint8 bias check (``GetQuantizedConvolutionMultipler``):
        ``|s_in * s_w - s_bias| / s_out <= 0.02`` (an unquantized bias counts as scale 0)."""
        if b is None:
            return
        bias_scale = b.s if b.quantized else 0.0
        self.check(abs(float(x.s) * float(w.s) - bias_scale) / float(out.s) <= 0.02,
                   f"bias scale differs from input scale x {role} scale by more than 2% of the "
                   "output scale", where)

    def activation_range(self, out: TensorInfo, activation: int | None = None) -> tuple[int, int]:
        """Fused activation clamp of a quantized output (eq. 11).

        Like ``CalculateActivationRangeQuantized``, refuses a bound whose
        ``roundf(f / scale)`` leaves the int32 range (``no_integer_overflow_from_quantization``,
        e.g. RELU6 on a tiny output scale), which LiteRT rejects at prepare.
        """
        act = self.options.get("fused_activation_function", 0) if activation is None else activation
        if act not in (0, 1, 2, 3):
            raise self.unsupported(f"fused activation {act} on a quantized output")
        for f in {1: (0.0,), 2: (-1.0, 1.0), 3: (0.0, 6.0)}.get(act, ()):
            with np.errstate(over="ignore", invalid="ignore"):
                tmp = float(round_half_away(np.float32(np.float32(f) / np.float32(out.s))))
            # the bounds are float(INT32_MIN) and float(INT32_MAX), which rounds up to 2^31
            self.check(-(2.0**31) <= tmp <= 2.0**31,
                       f"fused activation bound {f} / output scale {out.s} overflows int32 "
                       "(LiteRT: no_integer_overflow_from_quantization)", self.where(out))
        return activation_range(act, out.s, out.zp, QMIN[out.type], QMAX[out.type])

    def float_activation_range(self, activation: int | None = None) -> tuple[float, float]:
        """``CalculateActivationRange<float>``: NONE is [-FLT_MAX, FLT_MAX], RELU [0, FLT_MAX]
        (so an infinite result is clamped to FLT_MAX, as LiteRT does)."""
        act = self.options.get("fused_activation_function", 0) if activation is None else activation
        ranges = {0: (-FLT_MAX, FLT_MAX), 1: (0.0, FLT_MAX), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
        if act not in ranges:
            raise self.unsupported(f"fused activation {act}")
        return ranges[act]


def compute_padding(padding: int, in_size: int, filter_size: int, stride: int,
                    dilation: int = 1) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of one spatial dimension.

    ``tflite/kernels/padding.h``: effective filter ``(k - 1) * d + 1``; SAME: out =
    ceil(in / stride); VALID: out = floor((in - eff) / stride) + 1; total padding
    ``max((out - 1) * stride + eff - in, 0)``, the odd pixel after.
    ``padding`` is the schema's Padding value (0 SAME, 1 VALID).
    """
    eff = (filter_size - 1) * dilation + 1
    if padding == 0:
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - eff + stride) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return max(out, 0), total // 2, total - total // 2


def clamp_float(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``ActivationFunctionWithMinMax``: ``std::min(std::max(x, lo), hi)``; NaN passes through."""
    x = np.asarray(x, np.float32)
    y = np.where(x < np.float32(lo), np.float32(lo), x)
    return np.where(np.float32(hi) < y, np.float32(hi), y).astype(np.float32)


def copy_array(x: np.ndarray) -> np.ndarray:
    """A C-contiguous copy that keeps 0-d arrays 0-d (``np.ascontiguousarray`` does not)."""
    return np.array(x, copy=True, order="C")


# ---------------------------------------------------------------------------
# Checks against untrusted models that several kernels share (ROBUSTNESS.md):
# * require_inputs: every input the operator reads is present; -1 only where the
#   operator marks an input optional (CVE-2020-15211).
# * int_param: a tensor holding shapes, axes, paddings, block sizes or sizes has the
#   integer type LiteRT reads it as (a float tensor would be read as garbage).
# * check_output_size: an output whose size the *data* decides (FILL dims, PAD
#   paddings, RESIZE sizes, BROADCAST_TO shapes, ...) fits the memory budget before it
#   is allocated: an InputError instead of a MemoryError (CVE-2022-23558 class).
# * finite: a float derived from scales or options (a real multiplier, a scaled
#   bound) is finite before it is encoded as a fixed-point multiplier.
# ---------------------------------------------------------------------------
#: Bytes one output tensor may occupy; the reader applies the same budget to the
#: tensors a model declares. Tests lower it to keep fuzzing light.
# Suffix of a refusal of a tensor type the LiteRT kernel never checks (it reads the bytes
# as the type it expects): quantcore refuses such files (tests/test_fuzz_runtime.py,
# KEEP_REFUSING) instead of computing with reinterpreted bytes.
REINTERPRET = " (LiteRT does not check this type: it would reinterpret the tensor's bytes)"
MAX_OUTPUT_BYTES = DEFAULT_MEMORY_BUDGET
#: Dimensions a data-shaped output may have (NumPy 1.x arrays stop at 32).
MAX_RANK = 32


def require_inputs(ctx: OpContext, count: int | None = None) -> None:
    """Inputs ``0 .. count-1`` (all by default) are present, none of them ``-1``."""
    n = len(ctx.inputs) if count is None else count
    for j in range(n):
        ctx.input(j)


def int_param(ctx: OpContext, i: int, what: str,
              types: tuple[int, ...] = (INT32, INT64)) -> TensorInfo:
    """Input ``i`` (required) has one of the integer ``types``."""
    t = ctx.input(i)
    ctx.check_type(t, types, what)
    return t


def check_output_size(path: str, op: str, shape: Iterable[int], dtype) -> tuple[int, ...]:
    """``shape`` as Python ints, refused (InputError) when negative or over the budget."""
    dims = tuple(int(d) for d in shape)
    if len(dims) > MAX_RANK:
        raise InputError(f"{path}: {op} output would have {len(dims)} dimensions, more than "
                         f"{MAX_RANK}")
    if any(d < 0 for d in dims):
        raise InputError(f"{path}: {op} output shape {list(dims)} has a negative dimension")
    if any(d >= 2**31 for d in dims) or math.prod(d for d in dims if d) >= 2**62:
        # LiteRT's dimensions are int32; NumPy refuses even an empty array whose other
        # dimensions multiply past its index range.
        raise InputError(f"{path}: {op} output shape {list(dims)} has dimensions beyond int32")
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_OUTPUT_BYTES:
        raise InputError(f"{path}: {op} output shape {list(dims)} needs {nbytes} bytes, over the "
                         f"limit of {MAX_OUTPUT_BYTES} bytes")
    return dims


def finite(ctx: OpContext, value: float, what: str) -> float:
    """``value`` (computed without floating-point warnings) is finite, else ModelFormatError."""
    ctx.check(math.isfinite(float(value)), f"{what} is {float(value)}, not a finite number "
              "(scales or options out of range)")
    return float(value)
