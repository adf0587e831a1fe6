"""Random valid models for the runtime fuzzer (tests/test_fuzz_runtime.py), and the
mutations that break exactly one of their fields.

A *recipe* builds one operator of one builtin with :class:`ModelBuilder`: random
types (float32, int8, uint8, 16x8, int32, ...), shapes, options and quantization,
the output shape LiteRT would compute, and the constants (weights, bias, axes,
paddings, indices, sizes) the operator needs. ``build_case`` chains one to three
recipes (the output of one operator is the input of the next) into a model and
draws its input arrays. Every random choice goes through a :class:`Rand`, which is
backed either by hypothesis (shrinkable draws) or by ``random.Random`` (the fast,
time-boxed campaign), so the same recipes serve both.

``MUTATIONS`` break one field of the built model: a dimension, a tensor type, a
scale (0, negative, NaN, inf, denormal), a zero point out of range, the number of
per-channel scales, an option value (0, -1, huge), the operator's inputs and outputs
(dropped, duplicated, -1, swapped), constant data (indices, axes, paddings, sizes
out of range), the operator version or the operator itself.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from quantcore.schema import _schema_desc as desc
from quantcore.schema.builder import ModelBuilder, options_table_for
from quantcore.schema.model import Buffer, Model, QuantizationParameters, Tensor, TensorType

# ---------------------------------------------------------------------------
# Randomness
# ---------------------------------------------------------------------------
class Rand:
    """Every random choice of a case. Subclasses give ``integers(lo, hi)`` (inclusive);
    the first element of a ``choice`` is the "simplest", where hypothesis shrinks to."""

    def integers(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq):
        seq = list(seq)
        return seq[self.integers(0, len(seq) - 1)]

    def coin(self, p: float = 0.5) -> bool:
        return self.integers(0, 999) < int(p * 1000)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.integers(0, 1 << 20) / (1 << 20)

    def log_uniform(self, lo: float, hi: float) -> float:
        return float(np.float32(math.exp(self.uniform(math.log(lo), math.log(hi)))))

    def np(self) -> np.random.Generator:
        """A NumPy generator for bulk data (weights, input values)."""
        return np.random.default_rng(self.integers(0, 2**32 - 1))


class RandomRand(Rand):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integers(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisRand(Rand):
    def __init__(self, data) -> None:
        from hypothesis import strategies as st
        self._data = data
        self._st = st

    def integers(self, lo: int, hi: int) -> int:
        return self._data.draw(self._st.integers(lo, hi))


# ---------------------------------------------------------------------------
# Graph building
# ---------------------------------------------------------------------------
DTYPES = {"f32": np.float32, "i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32,
          "i64": np.int64, "bool": np.bool_, "f16": np.float16}
QUANT = ("i8", "u8", "i16")
INT_RANGE = {"i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767)}
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


@dataclass
class T:
    """A tensor of the graph being built."""
    index: int
    shape: tuple[int, ...]
    kind: str
    scale: float | None = None
    zp: int = 0

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class Graph:
    def __init__(self, r: Rand) -> None:
        self.r = r
        self.b = ModelBuilder("quantcore fuzz")
        self.rng = r.np()
        self.inputs: list[T] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def qparams(self, kind: str) -> tuple[float | None, int]:
        if kind not in QUANT:
            return None, 0
        scale = self.r.log_uniform(1e-3, 1.0)
        zp = 0 if kind == "i16" else self.r.integers(*INT_RANGE[kind])
        return scale, zp

    def tensor(self, shape, kind: str, like: T | None = None, scale=None, zp=None) -> T:
        """A new activation tensor; quantized types get ``like``'s parameters, the
        given ones, or random ones."""
        if like is not None and kind in QUANT and like.kind == kind:
            scale, zp = like.scale, like.zp
        elif scale is None and kind in QUANT:
            scale, zp = self.qparams(kind)
        shape = tuple(int(d) for d in shape)
        kw = {} if scale is None else {"scale": scale, "zero_point": zp or 0}
        i = self.b.add_tensor(self._name("t"), shape, DTYPES[kind], **kw)
        return T(i, shape, kind, scale, zp or 0)

    def input(self, shape, kind: str, **kw) -> T:
        t = self.tensor(shape, kind, **kw)
        self.b.subgraph.inputs.append(t.index)
        self.inputs.append(t)
        return t

    def const(self, value, kind: str | None = None, *, scale=None, zp=None, axis: int = 0) -> T:
        arr = np.asarray(value)
        if kind is not None:
            arr = arr.astype(DTYPES[kind])
        kind = kind or next(k for k, d in DTYPES.items() if np.dtype(d) == arr.dtype)
        kw = {}
        if scale is not None:
            kw = {"scale": scale, "zero_point": 0 if zp is None else zp, "quantized_dimension": axis}
        i = self.b.add_constant(self._name("c"), arr, **kw)
        s = None if scale is None else float(np.atleast_1d(scale)[0])
        z = 0 if zp is None else int(np.atleast_1d(zp)[0])
        return T(i, tuple(arr.shape), kind, s, z)

    def variable(self, shape, kind: str, scale=None, zp=None) -> T:
        """A variable tensor (``is_variable``, no buffer): the state of a recurrent
        operator, zeroed by allocate_tensors and updated in place by invoke."""
        if scale is None and kind in QUANT:
            scale, zp = self.qparams(kind)
        shape = tuple(int(d) for d in shape)
        kw = {} if scale is None else {"scale": scale, "zero_point": zp or 0}
        i = self.b.add_tensor(self._name("v"), shape, DTYPES[kind], is_variable=True, **kw)
        return T(i, shape, kind, scale, zp or 0)

    def intermediate(self, kind: str, scale=None, zp=None) -> int:
        """An operator intermediate (the integer LSTM's gate / hidden scales): shape [0],
        as the converter writes them."""
        kw = {} if scale is None else {"scale": scale, "zero_point": zp or 0}
        return self.b.add_tensor(self._name("im"), (0,), DTYPES[kind], **kw)

    def values(self, shape, kind: str) -> np.ndarray:
        """Random values of a type: full-range integers, floats in [-2, 2)."""
        dt = np.dtype(DTYPES[kind])
        if kind == "bool":
            return self.rng.integers(0, 2, size=shape).astype(bool)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            lo, hi = max(int(info.min), -(2**40)), min(int(info.max), 2**40)
            return self.rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dt)
        return self.rng.uniform(-2, 2, size=shape).astype(dt)

    def op(self, name: str, inputs, outputs, **options) -> int:
        return self.b.add_operator(name, [getattr(t, "index", t) for t in inputs],
                                   [t.index for t in outputs], **options)

    def x(self, x: T | None, kind: str, ranks=(1, 2, 3, 4), max_dim: int = 5, min_dim: int = 1) -> T | None:
        """The operator's main input: ``x`` when it fits, else a new graph input."""
        if x is not None:
            if x.kind != kind or x.rank not in ranks or x.size == 0:
                return None
            return x
        rank = self.r.choice(ranks)
        return self.input([self.r.integers(min_dim, max_dim) for _ in range(rank)], kind)


def shape_bits(r: Rand, shape) -> tuple[int, ...]:
    """A broadcast partner of ``shape``: some dimensions 1, maybe fewer of them."""
    s = [d if r.coin(0.6) else 1 for d in shape]
    drop = r.integers(0, len(s)) if r.coin(0.3) else 0
    return tuple(s[drop:])


def out_size(padding: str, size: int, k: int, stride: int, dil: int = 1) -> int:
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size - eff + stride) // stride


# ---------------------------------------------------------------------------
# Recipes: one builtin each (returns the output tensor(s), or None when ``x`` does not fit)
# ---------------------------------------------------------------------------
Recipe = Callable[[Rand, Graph, "T | None", str], "list[T] | None"]
RECIPES: dict[str, tuple[tuple[str, ...], Recipe]] = {}


def recipe(*names: str, kinds: tuple[str, ...]):
    def register(fn):
        for n in names:
            RECIPES[n] = (kinds, lambda r, g, x, kind, _n=n: fn(r, g, x, kind, _n))
        return fn
    return register


def _bias(g: Graph, kind: str, n: int, s_in: float | None, s_w) -> T:
    if kind in ("f32", "hybrid"):
        return g.const(g.rng.uniform(-1, 1, n), "f32")
    s_b = np.asarray(s_w, np.float64) * (s_in or 1.0)
    bkind = "i64" if kind == "i16" and g.r.coin(0.7) else "i32"
    return g.const(g.rng.integers(-3000, 3000, n), bkind, scale=s_b.astype(np.float32), zp=0)


def _weights(g: Graph, kind: str, shape, axis: int, per_channel: bool) -> tuple[T, Any]:
    """Constant weights (filter) for a float, 8-bit, 16x8 or hybrid operator."""
    r = g.r
    if kind == "f32":
        return g.const(g.rng.uniform(-1, 1, shape), "f32"), None
    if kind == "u8":
        s, z = r.log_uniform(1e-3, 0.1), r.integers(0, 255)
        return g.const(g.values(shape, "u8"), "u8", scale=s, zp=z), s
    n = shape[axis]
    s_w = (np.array([r.log_uniform(1e-3, 0.1) for _ in range(n)], np.float32) if per_channel
           else np.float32(r.log_uniform(1e-3, 0.1)))
    w = g.rng.integers(-127, 128, size=shape)
    t = g.const(w, "i8", scale=s_w, zp=np.zeros(np.size(s_w), np.int64) if per_channel else 0, axis=axis)
    return t, s_w


@recipe("CONV_2D", kinds=("f32", "i8", "u8", "i16", "hybrid"))
def r_conv(r, g, x, kind, name):
    xk = "f32" if kind == "hybrid" else kind
    x = g.x(x, xk, ranks=(4,), max_dim=6)
    if x is None:
        return None
    n, h, w, cin = x.shape
    groups = r.choice([1] + [d for d in (2, 3) if cin % d == 0 and r.coin(0.2)])
    cout = groups * r.integers(1, 3)
    kh, kw = r.integers(1, 3), r.integers(1, 3)
    sh, sw, dh, dw = r.integers(1, 2), r.integers(1, 2), r.integers(1, 2), r.integers(1, 2)
    pad = r.choice(("SAME", "VALID"))
    oh, ow = out_size(pad, h, kh, sh, dh), out_size(pad, w, kw, sw, dw)
    if oh <= 0 or ow <= 0:
        pad, oh, ow = "SAME", out_size("SAME", h, kh, sh), out_size("SAME", w, kw, sw)
    wk = "f32" if kind == "f32" else ("u8" if kind == "u8" else "i8")
    wt, s_w = _weights(g, wk, (cout, kh, kw, cin // groups), 0, kind in ("i8", "i16", "hybrid") and r.coin())
    bias = _bias(g, kind, cout, x.scale, s_w if s_w is not None else 1.0)
    y = g.tensor((n, oh, ow, cout), xk)
    g.op(name, [x, wt, bias], [y], padding=pad, stride_h=sh, stride_w=sw, dilation_h_factor=dh,
         dilation_w_factor=dw, fused_activation_function=r.choice(ACTIVATIONS))
    return [y]


@recipe("DEPTHWISE_CONV_2D", kinds=("f32", "i8", "u8", "i16", "hybrid"))
def r_depthwise(r, g, x, kind, name):
    xk = "f32" if kind == "hybrid" else kind
    x = g.x(x, xk, ranks=(4,), max_dim=6)
    if x is None:
        return None
    n, h, w, cin = x.shape
    dm = r.integers(1, 2)
    kh, kw = r.integers(1, 3), r.integers(1, 3)
    sh, sw, dh, dw = r.integers(1, 2), r.integers(1, 2), r.integers(1, 2), r.integers(1, 2)
    pad = r.choice(("SAME", "VALID"))
    oh, ow = out_size(pad, h, kh, sh, dh), out_size(pad, w, kw, sw, dw)
    if oh <= 0 or ow <= 0:
        pad, oh, ow = "SAME", out_size("SAME", h, kh, sh), out_size("SAME", w, kw, sw)
    cout = cin * dm
    wk = "f32" if kind == "f32" else ("u8" if kind == "u8" else "i8")
    wt, s_w = _weights(g, wk, (1, kh, kw, cout), 3, kind in ("i8", "i16", "hybrid") and r.coin())
    bias = _bias(g, kind, cout, x.scale, s_w if s_w is not None else 1.0)
    y = g.tensor((n, oh, ow, cout), xk)
    g.op(name, [x, wt, bias], [y], padding=pad, stride_h=sh, stride_w=sw, depth_multiplier=dm,
         dilation_h_factor=dh, dilation_w_factor=dw, fused_activation_function=r.choice(ACTIVATIONS))
    return [y]


@recipe("TRANSPOSE_CONV", kinds=("f32", "i8", "u8", "i16"))
def r_transpose_conv(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(4,), max_dim=5)
    if x is None:
        return None
    n, h, w, cin = x.shape
    cout, kh, kw = r.integers(1, 3), r.integers(1, 3), r.integers(1, 3)
    sh, sw = r.integers(1, 2), r.integers(1, 2)
    pad = r.choice(("SAME", "VALID"))
    oh = h * sh if pad == "SAME" else (h - 1) * sh + kh
    ow = w * sw if pad == "SAME" else (w - 1) * sw + kw
    shape = g.const(np.array([n, oh, ow, cout], np.int32))
    wk = "f32" if kind == "f32" else ("u8" if kind == "u8" else "i8")
    wt, s_w = _weights(g, wk, (cout, kh, kw, cin), 0, kind in ("i8", "i16") and r.coin())
    ins = [shape, wt, x]
    if r.coin(0.7):
        ins.append(_bias(g, kind, cout, x.scale, s_w if s_w is not None else 1.0))
    y = g.tensor((n, oh, ow, cout), kind)
    g.op(name, ins, [y], padding=pad, stride_h=sh, stride_w=sw)
    return [y]


@recipe("FULLY_CONNECTED", kinds=("f32", "i8", "u8", "i16", "hybrid"))
def r_fc(r, g, x, kind, name):
    xk = "f32" if kind == "hybrid" else kind
    x = g.x(x, xk, ranks=(1, 2, 3))
    if x is None:
        return None
    k = x.shape[-1]
    units = r.integers(1, 5)
    wk = "f32" if kind == "f32" else ("u8" if kind == "u8" else "i8")
    wt, s_w = _weights(g, wk, (units, k), 0, kind in ("i8", "hybrid") and r.coin(0.3))
    ins = [x, wt]
    if r.coin(0.8):
        ins.append(_bias(g, kind, units, x.scale, s_w if s_w is not None else 1.0))
    keep = r.coin(0.3) and x.rank > 1
    shape = x.shape[:-1] + (units,) if keep else (x.size // k, units)
    y = g.tensor(shape, xk)
    g.op(name, ins, [y], keep_num_dims=keep, fused_activation_function=r.choice(ACTIVATIONS))
    return [y]


@recipe("BATCH_MATMUL", kinds=("f32", "i8", "i16"))
def r_bmm(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(2, 3, 4))
    if x is None:
        return None
    adj_x, adj_y = r.coin(0.3), r.coin(0.3)
    m, k = (x.shape[-1], x.shape[-2]) if adj_x else (x.shape[-2], x.shape[-1])
    nn = r.integers(1, 4)
    yshape = x.shape[:-2] + ((nn, k) if adj_y else (k, nn))
    if r.coin():
        y = g.const(g.values(yshape, kind), kind, **({"scale": g.qparams(kind)[0], "zp": 0} if kind in QUANT else {}))
    else:
        y = g.input(yshape, kind, **({"scale": g.qparams(kind)[0], "zp": 0} if kind in QUANT else {}))
    out = g.tensor(x.shape[:-2] + (m, nn), kind)
    g.op(name, [x, y], [out], adj_x=adj_x, adj_y=adj_y)
    return [out]


@recipe("ADD", "SUB", "MUL", kinds=("f32", "i8", "u8", "i16", "i32", "i64"))
@recipe("DIV", kinds=("f32", "u8", "i32"))
@recipe("SQUARED_DIFFERENCE", kinds=("f32", "i8", "i32"))
@recipe("MAXIMUM", "MINIMUM", kinds=("f32", "i8", "u8", "i16", "i32", "i64"))
def r_binary(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    yshape = shape_bits(r, x.shape)
    if r.coin(0.5):
        yshape, xs = x.shape, yshape   # broadcast the other way round sometimes
        x2 = g.input(xs, kind)
        a, bb = (x2, x) if r.coin() else (x, x2)
    else:
        y = g.const(g.values(yshape, kind), kind, **_q(g, kind)) if r.coin() else g.input(yshape, kind)
        a, bb = (x, y) if r.coin() else (y, x)
    shape = np.broadcast_shapes(a.shape, bb.shape)
    like = a if name in ("MAXIMUM", "MINIMUM") else None
    scale = zp = None
    if kind == "i16" and name in ("ADD", "SUB"):
        scale, zp = g.qparams("i16")
    out = g.tensor(shape, kind, like=like, scale=scale, zp=zp)
    opts = {}
    if name in ("ADD", "SUB", "MUL", "DIV"):
        opts["fused_activation_function"] = r.choice(ACTIVATIONS)
    if name in ("ADD", "SUB") and kind == "i16":
        opts["pot_scale_int16"] = r.coin(0.3)
    g.op(name, [a, bb], [out], **opts)
    return [out]


def _q(g: Graph, kind: str) -> dict:
    if kind not in QUANT:
        return {}
    s, z = g.qparams(kind)
    return {"scale": s, "zp": z}


@recipe("AVERAGE_POOL_2D", "MAX_POOL_2D", kinds=("f32", "i8", "u8", "i16"))
def r_pool(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(4,), max_dim=6)
    if x is None:
        return None
    n, h, w, c = x.shape
    fh, fw, sh, sw = r.integers(1, 3), r.integers(1, 3), r.integers(1, 2), r.integers(1, 2)
    pad = r.choice(("SAME", "VALID"))
    oh, ow = out_size(pad, h, fh, sh), out_size(pad, w, fw, sw)
    if oh <= 0 or ow <= 0:
        pad, oh, ow = "SAME", out_size("SAME", h, fh, sh), out_size("SAME", w, fw, sw)
    y = g.tensor((n, oh, ow, c), kind, like=x)
    g.op(name, [x], [y], padding=pad, stride_h=sh, stride_w=sw, filter_height=fh, filter_width=fw,
         fused_activation_function=r.choice(ACTIVATIONS))
    return [y]


@recipe("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", kinds=("f32", "i8", "u8", "i16", "i32"))
def r_reduce(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    axes = sorted({r.integers(0, x.rank - 1) for _ in range(r.integers(1, x.rank))})
    keep = r.coin()
    stored = [a - x.rank if r.coin(0.3) else a for a in axes]
    ax = g.const(np.array(stored, np.int32 if r.coin(0.8) else np.int64))
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    like = x if name in ("REDUCE_MAX", "REDUCE_MIN") or r.coin(0.3) else None
    y = g.tensor(shape, kind, like=like)
    g.op(name, [x, ax], [y], keep_dims=keep)
    return [y]


_FIXED_OUT = {  # (op, kind) -> the output quantization LiteRT requires
    ("SOFTMAX", "i8"): (1 / 256, -128), ("SOFTMAX", "u8"): (1 / 256, 0), ("SOFTMAX", "i16"): (1 / 32768, 0),
    ("LOGISTIC", "i8"): (1 / 256, -128), ("LOGISTIC", "u8"): (1 / 256, 0), ("LOGISTIC", "i16"): (1 / 32768, 0),
    ("TANH", "i8"): (1 / 128, 0), ("TANH", "u8"): (1 / 128, 128), ("TANH", "i16"): (1 / 32768, 0),
    ("LOG_SOFTMAX", "i8"): (16 / 256, 127), ("LOG_SOFTMAX", "u8"): (16 / 256, 255),
}


@recipe("SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "RELU_N1_TO_1",
        "RELU_0_TO_1", "LEAKY_RELU", "ELU", "EXP", "SQRT", "RSQRT", "ABS", "NEG",
        kinds=("f32", "i8", "u8", "i16", "i32"))
def r_unary(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    scale = zp = None
    if (name, kind) in _FIXED_OUT and r.coin(0.9):
        scale, zp = _FIXED_OUT[(name, kind)]
    like = x if scale is None and name in ("RELU", "RELU6", "RELU_N1_TO_1", "ABS", "NEG") and r.coin(0.3) else None
    y = g.tensor(x.shape, kind, like=like, scale=scale, zp=zp)
    opts = {}
    if name == "SOFTMAX":
        opts["beta"] = r.choice((1.0, 0.5, 2.0, r.uniform(0.01, 3)))
    if name == "LEAKY_RELU":
        opts["alpha"] = r.choice((0.2, 0.01, 0.5, r.uniform(-2, 2)))
    g.op(name, [x], [y], **opts)
    return [y]


@recipe("PRELU", kinds=("f32", "i8", "u8"))
def r_prelu(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(2, 3, 4))
    if x is None:
        return None
    ashape = shape_bits(r, x.shape)
    alpha = g.const(g.values(ashape, kind), kind, **_q(g, kind))
    y = g.tensor(x.shape, kind)
    g.op(name, [x, alpha], [y])
    return [y]


@recipe("QUANTIZE", kinds=("f32", "i8", "u8", "i16"))
def r_quantize(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    if kind == "f32":
        ok = r.choice(QUANT)
        if ok == "i8" and x.rank >= 1 and r.coin(0.2):
            axis = r.integers(0, x.rank - 1)
            n = x.shape[axis]
            scales = np.array([r.log_uniform(1e-3, 1) for _ in range(n)], np.float32)
            i = g.b.add_tensor(g._name("t"), x.shape, np.int8, scale=scales,
                               zero_point=np.zeros(n, np.int64), quantized_dimension=axis)
            y = T(i, x.shape, "i8", float(scales[0]), 0)
        else:
            y = g.tensor(x.shape, ok)
    else:
        y = g.tensor(x.shape, r.choice(("i8", "u8") if kind != "i16" else ("i16", "i8")))
    g.op(name, [x], [y])
    return [y]


@recipe("DEQUANTIZE", kinds=("i8", "u8", "i16", "f16"))
def r_dequantize(r, g, x, kind, name):
    if kind == "f16":
        shape = [r.integers(1, 4) for _ in range(r.integers(1, 3))]
        x = g.const(g.rng.uniform(-2, 2, shape).astype(np.float16), "f16")
    else:
        x = g.x(x, kind)
        if x is None:
            return None
    y = g.tensor(x.shape, "f32")
    g.op(name, [x], [y])
    return [y]


@recipe("CONCATENATION", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_concat(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axis = r.integers(0, x.rank - 1)
    parts = [x]
    for _ in range(r.integers(0, 2)):
        shape = list(x.shape)
        shape[axis] = r.integers(1, 3)
        parts.append(g.input(shape, kind, like=x) if r.coin(0.7) else
                     g.const(g.values(shape, kind), kind, scale=x.scale, zp=x.zp if x.scale else None))
    g.rng.shuffle(parts)
    shape = list(x.shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    y = g.tensor(shape, kind, like=x)
    g.op(name, parts, [y], axis=axis - x.rank if r.coin(0.3) else axis)
    return [y]


@recipe("PAD", "PADV2", kinds=("f32", "i8", "u8", "i16", "i32", "i64"))
def r_pad(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    pads = np.array([[r.integers(0, 2), r.integers(0, 2)] for _ in range(x.rank)])
    p = g.const(pads.astype(np.int32 if r.coin(0.8) else np.int64))
    y = g.tensor(tuple(d + a + b for d, (a, b) in zip(x.shape, pads)), kind, like=x)
    ins = [x, p]
    if name == "PADV2" and r.coin(0.8):
        ins.append(g.const(g.values((), kind), kind, scale=x.scale, zp=x.zp if x.scale else None))
    g.op(name, ins, [y])
    return [y]


@recipe("MIRROR_PAD", kinds=("f32", "i8", "u8", "i16", "i32", "i64"))
def r_mirror_pad(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    mode = r.choice(("REFLECT", "SYMMETRIC"))
    lim = [d - 1 if mode == "REFLECT" else d for d in x.shape]
    pads = np.array([[r.integers(0, m), r.integers(0, m)] for m in lim])
    p = g.const(pads.astype(np.int32 if r.coin(0.8) else np.int64))
    y = g.tensor(tuple(d + a + b for d, (a, b) in zip(x.shape, pads)), kind, like=x)
    g.op(name, [x, p], [y], mode=mode)
    return [y]


@recipe("RESHAPE", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_reshape(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    n, target = x.size, []
    while n > 1 and len(target) < 4:
        f = r.choice([d for d in range(1, n + 1) if n % d == 0])
        target.append(f)
        n //= f
    if n > 1 or not target:
        target.append(n)
    g.rng.shuffle(target)
    stored = list(target)
    if r.coin(0.3):
        stored[r.integers(0, len(stored) - 1)] = -1
    y = g.tensor(target, kind, like=x)
    how = r.integers(0, 2)
    if how == 0:
        g.op(name, [x, g.const(np.array(stored, np.int32))], [y])
    elif how == 1:
        g.op(name, [x], [y], new_shape=stored)
    else:
        g.op(name, [x, g.const(np.array(stored, np.int32))], [y], new_shape=stored)
    return [y]


@recipe("SQUEEZE", kinds=("f32", "i8", "u8", "i16", "i32"))
def r_squeeze(r, g, x, kind, name):
    if x is None:
        x = g.input([r.choice((1, 1, 2, 3)) for _ in range(r.integers(1, 4))], kind)
    x = g.x(x, kind)
    if x is None:
        return None
    ones = [i for i, d in enumerate(x.shape) if d == 1]
    dims = [i for i in ones if r.coin()] if ones else []
    shape = [d for i, d in enumerate(x.shape) if i not in (dims or ones)]
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x], [y], squeeze_dims=[d - x.rank if r.coin(0.3) else d for d in dims])
    return [y]


@recipe("EXPAND_DIMS", kinds=("f32", "i8", "u8", "i32", "bool"))
def r_expand_dims(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axis = r.integers(-x.rank - 1, x.rank)
    a = axis + x.rank + 1 if axis < 0 else axis
    shape = list(x.shape)
    shape.insert(a, 1)
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x, g.const(np.array([axis], np.int32 if r.coin(0.8) else np.int64))], [y])
    return [y]


@recipe("TRANSPOSE", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_transpose(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    perm = list(range(x.rank))
    g.rng.shuffle(perm)
    y = g.tensor([x.shape[p] for p in perm], kind, like=x)
    g.op(name, [x, g.const(np.array(perm, np.int32))], [y])
    return [y]


@recipe("STRIDED_SLICE", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_strided_slice(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    begin, end, strides, bm, em, sm, idx = [], [], [], 0, 0, 0, []
    for i, d in enumerate(x.shape):
        s = r.choice((1, 1, 2, -1))
        b = r.integers(-d, d - 1)
        e = r.integers(-d - 1, d)
        shrink = r.coin(0.15)
        if shrink:
            sm |= 1 << i
            s, e = 1, b + 1 if b != -1 else 0
            idx.append(b)
        else:
            if r.coin(0.2):
                bm |= 1 << i
            if r.coin(0.2):
                em |= 1 << i
            idx.append(slice(None if bm >> i & 1 else b, None if em >> i & 1 else e, s))
        begin.append(b)
        end.append(e)
        strides.append(s)
    try:
        shape = np.empty(x.shape)[tuple(idx)].shape
    except IndexError:
        return None
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x, g.const(np.array(begin, np.int32)), g.const(np.array(end, np.int32)),
                g.const(np.array(strides, np.int32))], [y], begin_mask=bm, end_mask=em, shrink_axis_mask=sm)
    return [y]


@recipe("SLICE", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_slice(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    begin = [r.integers(0, d - 1) for d in x.shape]
    size = [r.integers(1, d - b) if r.coin(0.8) else -1 for d, b in zip(x.shape, begin)]
    shape = [d - b if s == -1 else s for d, b, s in zip(x.shape, begin, size)]
    it = np.int32 if r.coin(0.8) else np.int64
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x, g.const(np.array(begin, it)), g.const(np.array(size, it))], [y])
    return [y]


@recipe("SPLIT", "SPLIT_V", kinds=("f32", "i8", "u8", "i16", "i32"))
def r_split(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axis = r.integers(0, x.rank - 1)
    d = x.shape[axis]
    stored_axis = g.const(np.array([axis - x.rank if r.coin(0.3) else axis], np.int32))
    if name == "SPLIT":
        n = r.choice([k for k in range(1, d + 1) if d % k == 0])
        sizes = [d // n] * n
        ins = [stored_axis, x]
    else:
        n = r.integers(1, min(d, 3))
        cuts = sorted(r.integers(1, d - 1) for _ in range(n - 1)) if d > 1 else []
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [d])]
        n = len(sizes)
        stored = list(sizes)
        if r.coin(0.3):
            stored[r.integers(0, n - 1)] = -1
        ins = [x, g.const(np.array(stored, np.int32)), stored_axis]
    outs = []
    for s in sizes:
        shape = list(x.shape)
        shape[axis] = s
        outs.append(g.tensor(shape, kind, like=x))
    g.op(name, ins, outs, num_splits=n)
    return outs


@recipe("PACK", kinds=("f32", "i8", "u8", "i16", "i32", "i64"))
def r_pack(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(0, 1, 2, 3))
    if x is None:
        return None
    parts = [x] + [g.input(x.shape, kind, like=x) for _ in range(r.integers(0, 2))]
    axis = r.integers(0, x.rank)
    shape = list(x.shape)
    shape.insert(axis, len(parts))
    y = g.tensor(shape, kind, like=x)
    g.op(name, parts, [y], values_count=len(parts), axis=axis - x.rank - 1 if r.coin(0.3) else axis)
    return [y]


@recipe("UNPACK", kinds=("f32", "i8", "u8", "i16", "i32"))
def r_unpack(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4), max_dim=3)
    if x is None:
        return None
    axis = r.integers(0, x.rank - 1)
    shape = [d for i, d in enumerate(x.shape) if i != axis]
    outs = [g.tensor(shape, kind, like=x) for _ in range(x.shape[axis])]
    g.op(name, [x], outs, num=x.shape[axis], axis=axis - x.rank if r.coin(0.3) else axis)
    return outs


@recipe("SHAPE", kinds=("f32", "i8", "u8", "i32", "bool"))
def r_shape(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(0, 1, 2, 3, 4))
    if x is None:
        return None
    out = r.choice(("i32", "i64"))
    y = g.tensor((x.rank,), out)
    g.op(name, [x], [y], out_type="INT32" if out == "i32" else "INT64")
    return [y]


@recipe("GATHER", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_gather(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axis = r.integers(0, x.rank - 1)
    ishape = [r.integers(1, 3) for _ in range(r.integers(0, 2))]
    ik = r.choice(("i32", "i64"))
    values = g.rng.integers(0, x.shape[axis], size=ishape)
    idx = g.const(values, ik) if r.coin(0.6) else g.input(ishape, ik)
    shape = x.shape[:axis] + tuple(ishape) + x.shape[axis + 1:]
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x, idx], [y], axis=axis - x.rank if r.coin(0.3) else axis)
    return [y]


@recipe("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", kinds=("f32", "i8", "u8", "i16"))
def r_space_batch(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(4,), max_dim=6)
    if x is None:
        return None
    n, h, w, c = x.shape
    bh, bw = r.integers(1, 3), r.integers(1, 3)
    if name == "SPACE_TO_BATCH_ND":
        ph = (-h) % bh
        pw = (-w) % bw
        pads = [[0, ph], [pw, 0]]
        y = g.tensor((n * bh * bw, (h + ph) // bh, (w + pw) // bw, c), kind, like=x)
    else:
        if n % (bh * bw):
            bh = bw = 1
        ch = r.integers(0, min(1, h * bh - 1))
        pads = [[0, ch], [0, 0]]
        y = g.tensor((n // (bh * bw), h * bh - ch, w * bw, c), kind, like=x)
    g.op(name, [x, g.const(np.array([bh, bw], np.int32)), g.const(np.array(pads, np.int32))], [y])
    return [y]


@recipe("DEPTH_TO_SPACE", "SPACE_TO_DEPTH", kinds=("f32", "i8", "u8", "i32"))
def r_depth_space(r, g, x, kind, name):
    b = r.integers(1, 3)
    if x is None:
        if name == "DEPTH_TO_SPACE":
            x = g.input((1, r.integers(1, 3), r.integers(1, 3), b * b * r.integers(1, 2)), kind)
        else:
            x = g.input((1, b * r.integers(1, 2), b * r.integers(1, 2), r.integers(1, 3)), kind)
    x = g.x(x, kind, ranks=(4,))
    if x is None:
        return None
    n, h, w, c = x.shape
    if name == "DEPTH_TO_SPACE":
        b = b if c % (b * b) == 0 else 1
        shape = (n, h * b, w * b, c // (b * b))
    else:
        b = b if h % b == 0 and w % b == 0 else 1
        shape = (n, h // b, w // b, c * b * b)
    y = g.tensor(shape, kind, like=x)
    g.op(name, [x], [y], block_size=b)
    return [y]


@recipe("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", kinds=("f32", "i8", "u8", "i16"))
def r_resize(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(4,))
    if x is None:
        return None
    oh, ow = r.integers(1, 8), r.integers(1, 8)
    ac = r.coin(0.3)
    hp = not ac and r.coin(0.4)
    y = g.tensor((x.shape[0], oh, ow, x.shape[3]), kind, like=x)
    g.op(name, [x, g.const(np.array([oh, ow], np.int32))], [y], align_corners=ac, half_pixel_centers=hp)
    return [y]


@recipe("ARG_MAX", "ARG_MIN", kinds=("f32", "i8", "u8", "i32", "bool"))
def r_arg(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axis = r.integers(0, x.rank - 1)
    out = r.choice(("i32", "i64"))
    y = g.tensor([d for i, d in enumerate(x.shape) if i != axis], out)
    ax = g.const(np.array([axis - x.rank if r.coin(0.3) else axis], r.choice((np.int32, np.int64))))
    g.op(name, [x, ax], [y], output_type="INT32" if out == "i32" else "INT64")
    return [y]


_TYPE_NAMES = {"f32": "FLOAT32", "i8": "INT8", "u8": "UINT8", "i16": "INT16", "i32": "INT32",
               "i64": "INT64", "bool": "BOOL", "f16": "FLOAT16"}


@recipe("CAST", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_cast(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    out = r.choice(("f32", "i32", "i64", "u8", "i8", "i16", "bool"))
    y = g.tensor(x.shape, out, scale=1.0 if out in QUANT else None, zp=0)
    g.b.subgraph.tensors[y.index].quantization = None
    g.op(name, [x], [y], in_data_type=_TYPE_NAMES[kind], out_data_type=_TYPE_NAMES[out])
    return [y]


@recipe("FILL", kinds=("f32", "i32", "i64", "bool", "i8", "i16"))
def r_fill(r, g, x, kind, name):
    if x is not None:
        return None
    shape = [r.integers(0 if r.coin(0.1) else 1, 4) for _ in range(r.integers(0, 3))]
    dk = r.choice(("i32", "i64"))
    dims = g.const(np.array(shape, DTYPES[dk])) if r.coin(0.7) else g.input((len(shape),), dk)
    if dims.index in [t.index for t in g.inputs]:
        g.inputs[-1] = dataclass_replace(g.inputs[-1], fixed=np.array(shape, DTYPES[dk]))
    q = _q(g, kind)
    value = g.const(g.values((), kind), kind, **q) if r.coin(0.7) else g.input((), kind, **(
        {"scale": q["scale"], "zp": q["zp"]} if q else {}))
    y = g.tensor(shape, kind, scale=q.get("scale"), zp=q.get("zp"))
    g.op(name, [dims, value], [y])
    return [y]


@recipe("ZEROS_LIKE", kinds=("f32", "i32", "i64"))
def r_zeros_like(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(0, 1, 2, 3))
    if x is None:
        return None
    y = g.tensor(x.shape, kind)
    g.op(name, [x], [y])
    return [y]


@recipe("BROADCAST_TO", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_broadcast_to(r, g, x, kind, name):
    if x is None:
        x = g.input([r.choice((1, 1, 2, 3)) for _ in range(r.integers(1, 3))], kind)
    x = g.x(x, kind)
    if x is None:
        return None
    extra = [r.integers(1, 3) for _ in range(r.integers(0, 2))]
    target = extra + [r.integers(1, 3) if d == 1 else d for d in x.shape]
    y = g.tensor(target, kind, like=x)
    g.op(name, [x, g.const(np.array(target, np.int32 if r.coin(0.8) else np.int64))], [y])
    return [y]


@recipe("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL",
        kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_compare(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    other = g.const(g.values(shape_bits(r, x.shape), kind), kind, **_q(g, kind)) if r.coin() else \
        g.input(shape_bits(r, x.shape), kind)
    a, b = (x, other) if r.coin() else (other, x)
    y = g.tensor(np.broadcast_shapes(a.shape, b.shape), "bool")
    g.op(name, [a, b], [y])
    return [y]


@recipe("LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", kinds=("bool",))
def r_logical(r, g, x, kind, name):
    x = g.x(x, kind, ranks=(1, 2, 3, 4))
    if x is None:
        return None
    ins = [x]
    shape = x.shape
    if name != "LOGICAL_NOT":
        other = g.input(shape_bits(r, x.shape), "bool")
        ins = [x, other] if r.coin() else [other, x]
        shape = np.broadcast_shapes(x.shape, other.shape)
    y = g.tensor(shape, "bool")
    g.op(name, ins, [y])
    return [y]


@recipe("REVERSE_V2", kinds=("f32", "i8", "u8", "i16", "i32", "i64", "bool"))
def r_reverse(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    axes = sorted({r.integers(0, x.rank - 1) for _ in range(r.integers(1, x.rank))})
    y = g.tensor(x.shape, kind, like=x)
    g.op(name, [x, g.const(np.array(axes, np.int32))], [y])
    return [y]


@recipe("FAKE_QUANT", kinds=("f32",))
def r_fake_quant(r, g, x, kind, name):
    x = g.x(x, kind)
    if x is None:
        return None
    lo = -r.uniform(0, 3)
    y = g.tensor(x.shape, kind)
    g.op(name, [x], [y], min=lo, max=lo + r.uniform(0.1, 6), num_bits=r.choice((8, 16, 4, 2)))
    return [y]


# Recurrent kernels: the state inputs are variable tensors; sequences stay short (T <= 8).
RNN_ACTIVATIONS = ("TANH", "RELU", "NONE", "RELU6", "RELU_N1_TO_1", "SIGN_BIT")


def _rec_weights(g: Graph, kind: str, shape) -> T:
    """Recurrent weights: float32, or int8 with one per-tensor scale (hybrid, integer)."""
    if kind == "f32":
        return g.const(g.rng.uniform(-1, 1, shape), "f32")
    return g.const(g.rng.integers(-127, 128, size=shape), "i8", scale=g.r.log_uniform(1e-3, 0.1), zp=0)


def _seq_input(r: Rand, g: Graph, x: T | None, kind: str) -> tuple[T, bool, int, int] | None:
    """(x [B, T, n] or [T, B, n], time_major, T, B) with T <= 8."""
    x = g.x(x, kind, ranks=(3,), max_dim=4)
    if x is None:
        return None
    time_major = r.coin(0.3)
    steps, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    if steps > 8 or steps * batch * x.shape[2] == 0:
        return None
    return x, time_major, steps, batch


@recipe("RNN", "UNIDIRECTIONAL_SEQUENCE_RNN", kinds=("f32", "hybrid"))
def r_rnn(r, g, x, kind, name):
    seq = name == "UNIDIRECTIONAL_SEQUENCE_RNN"
    if seq:
        got = _seq_input(r, g, x, "f32")
        if got is None:
            return None
        x, time_major, _steps, batch = got
    else:
        x = g.x(x, "f32", ranks=(2,), max_dim=4)
        if x is None:
            return None
        time_major, batch = False, x.shape[0]
    n_in = x.shape[-1]
    units = r.integers(1, 4)
    wk = "f32" if kind == "f32" else "i8"
    w, rw = _rec_weights(g, wk, (units, n_in)), _rec_weights(g, wk, (units, units))
    b = g.const(g.rng.uniform(-1, 1, units), "f32")
    h = g.variable((batch, units), "f32")
    y = g.tensor(x.shape[:-1] + (units,), "f32")
    opts = dict(fused_activation_function=r.choice(RNN_ACTIVATIONS))
    if kind == "hybrid":
        opts["asymmetric_quantize_inputs"] = r.coin()
    if seq:
        opts["time_major"] = time_major
    g.op(name, [x, w, rw, b, h], [y], **opts)
    return [y]


@recipe("SVDF", kinds=("f32", "hybrid", "i8"))
def r_svdf(r, g, x, kind, name):
    xk = "i8" if kind == "i8" else "f32"
    x = g.x(x, xk, ranks=(2,), max_dim=5)
    if x is None:
        return None
    batch, n_in = x.shape
    rank, units, memory = r.integers(1, 2), r.integers(1, 3), r.integers(1, 4)
    nf = rank * units
    opts = dict(rank=rank, fused_activation_function=r.choice(ACTIVATIONS))
    if kind == "f32":
        wf = g.const(g.rng.uniform(-1, 1, (nf, n_in)), "f32")
        wt = g.const(g.rng.uniform(-1, 1, (nf, memory)), "f32")
        bias = g.const(g.rng.uniform(-1, 1, units), "f32")
        state = g.variable((batch, memory * nf), "f32")
        y = g.tensor((batch, units), "f32")
    elif kind == "hybrid":
        wf = _rec_weights(g, "i8", (nf, n_in))
        wt = _rec_weights(g, "i8", (nf, memory))
        bias = g.const(g.rng.uniform(-1, 1, units), "f32")
        state = g.variable((batch, memory * nf), "f32")
        y = g.tensor((batch, units), "f32")
        opts["asymmetric_quantize_inputs"] = r.coin()
    else:
        wf = _rec_weights(g, "i8", (nf, n_in))
        s_state = r.log_uniform(1e-4, 1e-2)
        s_wt = r.log_uniform(1e-4, 1e-2)
        wt = g.const(g.rng.integers(-32767, 32768, size=(nf, memory)), "i16", scale=s_wt, zp=0)
        bias = g.const(g.rng.integers(-3000, 3000, units), "i32", scale=np.float32(s_state * s_wt), zp=0)
        state = g.variable((batch, memory * nf), "i16", scale=s_state, zp=0)
        y = g.tensor((batch, units), "i8")
        opts["fused_activation_function"] = "RELU"   # LiteRT requires it (and never applies it)
    ins = [x, wf, wt, bias if r.coin(0.8) else -1, state]
    g.op(name, ins, [y], **opts)
    return [y]


def _lstm_direction(r: Rand, g: Graph, kind: str, n_in: int, n_cell: int, n_out: int, *,
                    cifg: bool, peep: bool, proj: bool, ln: bool, diag: bool, s_in: float,
                    s_h: float) -> tuple[list, list]:
    """The 17 weight / bias / projection slots of one LSTM direction (inputs 1-17: -1 where
    absent) and its 4 layer norm coefficients (inputs 20-23)."""
    wk = "f32" if kind == "f32" else "i8"

    def w(shape):
        return _rec_weights(g, wk, shape)

    def bias(n, s_w):
        if kind != "i8":
            return g.const(g.rng.uniform(-1, 1, n), "f32")
        return g.const(g.rng.integers(-3000, 3000, n), "i32", scale=np.float32(s_w * s_in), zp=0)

    slots = []
    for g_ in "ifco":      # input-to-gate weights
        slots.append(-1 if (g_ == "i" and cifg) else w((n_cell, n_in)))
    for g_ in "ifco":      # recurrent-to-gate weights (float: maybe diagonal)
        slots.append(-1 if (g_ == "i" and cifg) else w((n_cell,) if diag else (n_cell, n_out)))
    for g_ in "ifo":       # peepholes
        if not peep or (g_ == "i" and cifg):
            slots.append(-1)
        elif kind == "i8":
            slots.append(g.const(g.rng.integers(-32767, 32768, n_cell), "i16",
                                 scale=r.log_uniform(1e-4, 1e-2), zp=0))
        else:
            slots.append(w((n_cell,)))
    for k, g_ in enumerate("ifco"):   # gate biases
        src = slots[k]
        slots.append(-1 if (g_ == "i" and cifg) else bias(n_cell, src.scale or 1.0))
    if proj:
        pw = w((n_out, n_cell))
        slots.append(pw)
        slots.append(bias(n_out, (pw.scale or 1.0) / s_in * s_h) if r.coin(0.7) else -1)
    else:
        slots += [-1, -1]
    lns = []
    for g_ in "ifco":
        if not ln or (g_ == "i" and cifg):
            lns.append(-1)
        elif kind == "i8":
            lns.append(g.const(g.rng.integers(1, 32767, n_cell), "i16", scale=r.log_uniform(1e-5, 1e-3), zp=0))
        else:
            lns.append(g.const(g.rng.uniform(0.2, 1.5, n_cell), "f32"))
    return slots, lns


def _lstm_shape_choices(r: Rand, kind: str) -> dict:
    """Random CIFG / peephole / projection / layer norm / sizes for one direction."""
    n_cell = r.integers(1, 4)
    proj = r.coin(0.3)
    n_out = r.integers(1, 4) if proj else n_cell
    peep = r.coin(0.3)
    if kind == "i8" and peep and n_out > n_cell:
        n_out = r.integers(1, n_cell)     # LiteRT's integer peephole walks n_output cells
    diag = kind == "f32" and not proj and r.coin(0.15)
    return dict(n_cell=n_cell, n_out=n_out, cifg=r.coin(0.3), peep=peep, proj=proj, diag=diag)


@recipe("UNIDIRECTIONAL_SEQUENCE_LSTM", kinds=("f32", "hybrid", "i8"))
def r_uni_lstm(r, g, x, kind, name):
    xk = "i8" if kind == "i8" else "f32"
    got = _seq_input(r, g, x, xk)
    if got is None:
        return None
    x, time_major, _steps, batch = got
    c = _lstm_shape_choices(r, kind)
    ln = r.coin(0.3) and not c["diag"]
    n_cell, n_out = c["n_cell"], c["n_out"]
    s_in = x.scale or 1.0
    if kind == "i8":
        h = g.variable((batch, n_out), "i8")
        cell = g.variable((batch, n_cell), "i16", scale=2.0 ** -r.integers(9, 15), zp=0)
        s_h = h.scale
    else:
        h = g.variable((batch, n_out), "f32")
        cell = g.variable((batch, n_cell), "f32")
        s_h = 1.0
    slots, lns = _lstm_direction(r, g, kind, x.shape[2], n_cell, n_out, ln=ln, s_in=s_in,
                                 s_h=s_h, **{k: c[k] for k in ("cifg", "peep", "proj", "diag")})
    ins = [x] + slots + [h, cell]
    if ln or r.coin(0.8):
        ins += lns                      # else the deprecated 20-input form
    y = g.tensor(x.shape[:-1] + (n_out,), xk, like=h if kind == "i8" and r.coin(0.9) else None)
    opts = dict(fused_activation_function="TANH" if kind == "i8" or r.coin(0.7) else r.choice(RNN_ACTIVATIONS),
                time_major=time_major, diagonal_recurrent_tensors=c["diag"])
    if r.coin(0.4):
        opts["cell_clip"] = r.uniform(0.5, 10.0)
    if c["proj"] and r.coin(0.4):
        opts["proj_clip"] = r.uniform(0.5, 10.0)
    if kind == "hybrid":
        opts["asymmetric_quantize_inputs"] = r.coin()
    inter = None
    if kind == "i8":
        inter = [g.intermediate("i16", scale=r.log_uniform(1e-4, 1e-2), zp=0) if ln
                 else g.intermediate("f32") for _ in range(4)]
        inter.append(g.intermediate("i8", scale=h.scale, zp=h.zp) if r.coin(0.8)
                     else g.intermediate("i8", *g.qparams("i8")))
    g.op(name, ins, [y], intermediates=inter, **opts)
    return [y]


@recipe("BIDIRECTIONAL_SEQUENCE_LSTM", kinds=("f32", "hybrid"))
def r_bi_lstm(r, g, x, kind, name):
    got = _seq_input(r, g, x, "f32")
    if got is None:
        return None
    x, time_major, steps, batch = got
    n_in = x.shape[2]
    aux_mode = r.choice(("none", "none", "none", "weights", "non_stacking"))
    aux = None
    if aux_mode == "weights":
        n_aux = r.integers(1, 3)
        aux = g.input(x.shape[:2] + (n_aux,), "f32")
    elif aux_mode == "non_stacking":
        aux = g.input(x.shape, "f32")
    dirs, states, aux_w, n_outs = [], [], [], []
    shared = _lstm_shape_choices(r, kind)   # LiteRT checks both directions against fw's sizes
    for _d in ("fw", "bw"):
        c = dict(shared, cifg=r.coin(0.3), peep=r.coin(0.3), diag=False)   # no diagonal form here
        slots, _ = _lstm_direction(r, g, kind, n_in, c["n_cell"], c["n_out"], ln=False, s_in=1.0,
                                   s_h=1.0, **{k: c[k] for k in ("cifg", "peep", "proj", "diag")})
        dirs.append(slots)
        states.append([g.variable((batch, c["n_out"]), "f32"), g.variable((batch, c["n_cell"]), "f32")])
        n_outs.append(c["n_out"])
        if aux_mode == "weights":
            wk = "f32" if kind == "f32" else "i8"
            aux_w.append([-1 if (g_ == "i" and c["cifg"]) else _rec_weights(g, wk, (c["n_cell"], aux.shape[2]))
                          for g_ in "ifco"])
        else:
            aux_w.append([-1] * 4)
    merge = r.coin(0.4)
    if merge and not time_major and batch > 1:
        merge = False                   # refused: LiteRT indexes the state out of bounds
    ins = [x] + dirs[0] + dirs[1] + states[0] + states[1] + [aux if aux is not None else -1] + \
        aux_w[0] + aux_w[1]
    if merge:
        outs = [g.tensor(x.shape[:-1] + (n_outs[0] + n_outs[1],), "f32")]
    else:
        outs = [g.tensor(x.shape[:-1] + (n,), "f32") for n in n_outs]
    opts = dict(fused_activation_function="TANH" if r.coin(0.7) else r.choice(RNN_ACTIVATIONS),
                time_major=time_major, merge_outputs=merge)
    if r.coin(0.3):
        opts["cell_clip"] = r.uniform(0.5, 10.0)
    if r.coin(0.3):
        opts["proj_clip"] = r.uniform(0.5, 10.0)
    if kind == "hybrid":
        opts["asymmetric_quantize_inputs"] = r.coin()
    g.op(name, ins, outs, **opts)
    return outs


# ---------------------------------------------------------------------------
# Control flow, resource variables and DENSIFY: extra subgraphs, sparse constants
# ---------------------------------------------------------------------------
def _enter(g: Graph, name: str) -> int:
    """Start a new subgraph (cond, body, branch, init) and make it the one built."""
    g.__dict__.setdefault("_stack", []).append(g.b.subgraph)
    return g.b.new_subgraph(g._name(name))


def _leave(g: Graph) -> None:
    """Back to building the subgraph that calls it (the main one, or a branch / body
    for nested control flow)."""
    g.b.subgraph = g._stack.pop() if getattr(g, "_stack", None) else g.b.model.subgraphs[0]


def _sub_input(g: Graph, t: T) -> T:
    """An input of the subgraph being built, of ``t``'s shape, type and quantization
    (LiteRT copies the caller's tensors into it)."""
    s = g.tensor(t.shape, t.kind, scale=t.scale, zp=t.zp) if t.kind in QUANT else g.tensor(t.shape, t.kind)
    g.b.subgraph.inputs.append(s.index)
    return s


def _step(r: Rand, g: Graph, x: T, how: str) -> T:
    """A small operator on ``x`` inside a called subgraph; same shape, type, quantization."""
    if how == "pass":
        return x
    if how == "if":     # nested control flow: IF(constant) inside a branch or body
        c = g.const(np.array([r.coin()]), "bool")
        y = g.tensor(x.shape, x.kind, scale=x.scale, zp=x.zp) if x.kind in QUANT else g.tensor(x.shape, x.kind)
        branches = []
        for role in ("then", "else"):
            branches.append(_enter(g, role))
            xi = _sub_input(g, x)
            g.b.mark_outputs(_step(r, g, xi, r.choice(("add", "relu", "pass"))).index)
            _leave(g)
        g.op("IF", [c, x], [y], then_subgraph_index=branches[0], else_subgraph_index=branches[1])
        return y
    y = g.tensor(x.shape, x.kind, scale=x.scale, zp=x.zp) if x.kind in QUANT else g.tensor(x.shape, x.kind)
    if how == "relu":
        g.op("RELU", [x], [y])
    elif how == "add":
        c = g.const(g.values((x.shape[-1],) if x.rank else (), x.kind), x.kind,
                    **({"scale": x.scale, "zp": x.zp} if x.kind in QUANT else {}))
        g.op("ADD", [x, c], [y], fused_activation_function=r.choice(ACTIVATIONS))
    else:   # "mul": halve (float) / multiply by ~0.5 (int8)
        c = g.const(np.full((1,), 0.5, np.float32), "f32") if x.kind == "f32" else \
            g.const(np.array([100], np.int8), "i8", scale=0.005, zp=0)
        g.op("MUL", [x, c], [y], fused_activation_function="NONE")
    return y


@recipe("WHILE", kinds=("f32", "i8"))
def r_while(r, g, x, kind, name):
    """i, x -> WHILE(i < limit) {i + 1, step(x)} (and maybe a loop variable passed
    through): a counter loop of at most 6 iterations."""
    x = g.x(x, kind, ranks=(0, 1, 2, 3), max_dim=4)
    if x is None:
        return None
    start, limit = r.integers(0, 2), r.integers(0, 6)
    if r.coin(0.6):
        i0 = g.const(np.array(start, np.int32))
    else:
        i0 = g.input((), "i32")
        i0.fixed = np.array(start, np.int32)
    extra = g.x(None, kind, ranks=(1,), max_dim=3) if r.coin(0.3) else None
    loop = [i0, x] + ([extra] if extra is not None else [])
    i_out = g.tensor((), "i32")
    outs = [i_out] + [g.tensor(t.shape, t.kind, scale=t.scale, zp=t.zp) if t.kind in QUANT
                      else g.tensor(t.shape, t.kind) for t in loop[1:]]
    cond = _enter(g, "cond")
    ci = [_sub_input(g, t) for t in loop]
    lim = g.const(np.array(limit, np.int32))
    c = g.tensor((), "bool")
    g.op("LESS", [ci[0], lim], [c])
    g.b.mark_outputs(c.index)
    _leave(g)
    body = _enter(g, "body")
    bi = [_sub_input(g, t) for t in loop]
    one = g.const(np.array(1, np.int32))
    i2 = g.tensor((), "i32")
    g.op("ADD", [bi[0], one], [i2], fused_activation_function="NONE")
    x2 = _step(r, g, bi[1], r.choice(("add", "relu", "mul", "pass", "if")))
    g.b.mark_outputs(i2.index, x2.index, *(t.index for t in bi[2:]))
    _leave(g)
    g.op(name, loop, outs, cond_subgraph_index=cond, body_subgraph_index=body)
    return outs[1:2]


@recipe("IF", kinds=("f32", "i8"))
def r_if(r, g, x, kind, name):
    """IF(c) then step_a(x) else step_b(x); the condition a graph input or a constant."""
    x = g.x(x, kind, ranks=(0, 1, 2, 3, 4), max_dim=4)
    if x is None:
        return None
    cshape = r.choice(((1,), (), (1, 1)))
    if r.coin(0.7):
        c = g.input(cshape, "bool")
    else:
        c = g.const(np.full(cshape, r.coin()), "bool")
    ins = [c, x]
    if r.coin(0.3):
        ins.append(g.x(None, kind, ranks=(1, 2), max_dim=3))
    outs = [g.tensor(x.shape, kind, scale=x.scale, zp=x.zp) if kind in QUANT else g.tensor(x.shape, kind)]
    branches = []
    for role in ("then", "else"):
        branches.append(_enter(g, role))
        si = [_sub_input(g, t) for t in ins[1:]]
        y = _step(r, g, si[0], r.choice(("add", "relu", "mul", "pass", "if")))
        g.b.mark_outputs(y.index)
        _leave(g)
    g.op(name, ins, outs, then_subgraph_index=branches[0], else_subgraph_index=branches[1])
    return outs


def _resource(g: Graph) -> int:
    from quantcore.schema.model import TensorType as _TT
    return g.b.add_tensor(g._name("h"), (), None, tensor_type=int(_TT.RESOURCE))


@recipe("CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", kinds=("f32", "i8"))
def r_variables(r, g, x, kind, name):
    """CALL_ONCE(init: VAR_HANDLE(v) <- constant); VAR_HANDLE(v); s = READ(v) + x;
    ASSIGN(v, s); output s. Without CALL_ONCE the main subgraph assigns x first."""
    x = g.x(x, kind, ranks=(1, 2, 3), max_dim=4)
    if x is None:
        return None
    var = g._name("var")
    container = r.choice(("", "", "c"))
    q = {"scale": x.scale, "zp": x.zp} if kind in QUANT else {}
    call_once = name == "CALL_ONCE" or r.coin(0.6)
    init = None
    if call_once:
        init = _enter(g, "init")
        h2 = _resource(g)
        g.op("VAR_HANDLE", [], [T(h2, (), "resource")], container=container, shared_name=var)
        v0 = g.const(g.values(x.shape, kind), kind, **q)
        g.op("ASSIGN_VARIABLE", [h2, v0], [])
        _leave(g)
        g.op("CALL_ONCE", [], [], init_subgraph_index=init)
    h = _resource(g)
    g.op("VAR_HANDLE", [], [T(h, (), "resource")], container=container, shared_name=var)
    if not call_once:
        g.op("ASSIGN_VARIABLE", [h, x], [])
    rd = g.tensor(x.shape if r.coin(0.8) else (), kind, scale=x.scale, zp=x.zp) if kind in QUANT \
        else g.tensor(x.shape if r.coin(0.8) else (), kind)
    g.op("READ_VARIABLE", [h], [rd])
    if rd.shape != x.shape:
        rd = T(rd.index, x.shape, kind, rd.scale, rd.zp)
    s = g.tensor(x.shape, kind, scale=x.scale, zp=x.zp) if kind in QUANT else g.tensor(x.shape, kind)
    g.op("ADD", [rd, x], [s], fused_activation_function=r.choice(ACTIVATIONS))
    g.op("ASSIGN_VARIABLE", [h, s], [])
    return [s]


def _sparse(r: Rand, g: Graph, dense: np.ndarray) -> tuple[dict, np.ndarray]:
    """Sparsity parameters and stored values of ``dense``: the converter's layout
    (last dimension CSR, maybe 1 x c blocks), or every level DENSE, or every level CSR."""
    from quantcore.compress import dense_to_sparse
    how = r.integers(0, 2)
    if how == 0 and dense.ndim >= 1:
        c = r.choice([b for b in (1, 2, 4) if dense.shape[-1] % b == 0])
        return dense_to_sparse(dense, [1] * (dense.ndim - 1) + [c])
    dims = []
    if how == 1:
        for d in dense.shape:
            dims.append({"format": 0, "dense_size": int(d), "array_segments_type": 0,
                         "array_segments": None, "array_indices_type": 0, "array_indices": None})
        vals = dense.reshape(-1)
    else:
        # every level SPARSE_CSR: a path is kept when its subtree holds a non-zero
        parents = [()]
        for level, d in enumerate(dense.shape):
            seg, idx, kids = [0], [], []
            for p in parents:
                for i in range(d):
                    if np.any(dense[p + (i,)] != 0):
                        idx.append(i)
                        kids.append(p + (i,))
                seg.append(len(idx))
            top = max(seg + idx)   # an index vector type that holds every value
            kind = r.choice([k for k, hi in ((1, 2**31 - 1), (2, 65535), (3, 255)) if top <= hi])
            dt = {1: np.int32, 2: np.uint16, 3: np.uint8}[kind]
            dims.append({"format": 1, "dense_size": 0,
                         "array_segments_type": kind, "array_segments": {"values": np.array(seg, dt)},
                         "array_indices_type": kind, "array_indices": {"values": np.array(idx, dt)}})
            parents = kids
        vals = np.array([dense[p] for p in parents], dense.dtype)
    sp = {"traversal_order": np.arange(dense.ndim, dtype=np.int32), "block_map": None,
          "dim_metadata": dims}
    return sp, np.asarray(vals, dense.dtype).reshape(-1)


@recipe("DENSIFY", kinds=("f32", "i8"))
def r_densify(r, g, x, kind, name):
    """w = DENSIFY(sparse constant); ADD(x, w), or (float) FULLY_CONNECTED(x, w)."""
    x = g.x(x, kind, ranks=(1, 2, 3), max_dim=5)
    if x is None:
        return None
    fc = kind == "f32" and r.coin(0.4)
    wshape = (r.integers(1, 4), x.shape[-1]) if fc else x.shape
    if kind == "f32":
        dense = g.rng.uniform(-1, 1, wshape).astype(np.float32)
        q = {}
    else:
        dense = g.rng.integers(-128, 128, wshape).astype(np.int8)
        q = {"scale": x.scale, "zero_point": x.zp}
    dense[g.rng.random(wshape) < r.uniform(0, 0.9)] = 0
    if not dense.any():
        dense.flat[0] = 1       # an empty buffer is no constant (DENSIFY refuses it)
    sp, vals = _sparse(r, g, dense)
    buf = g.b.add_buffer(np.ascontiguousarray(vals).astype(vals.dtype.newbyteorder("<")).tobytes())
    ws = g.b.add_tensor(g._name("sp"), wshape, DTYPES[kind], buffer=buf, **q)
    g.b.subgraph.tensors[ws].sparsity = sp
    wd = g.tensor(wshape, kind, scale=x.scale, zp=x.zp) if kind in QUANT else g.tensor(wshape, kind)
    g.op(name, [ws], [wd])
    if fc:
        y = g.tensor((x.size // x.shape[-1], wshape[0]), kind)
        g.op("FULLY_CONNECTED", [x, wd], [y], fused_activation_function=r.choice(ACTIVATIONS))
    else:
        y = g.tensor(x.shape, kind, like=x) if kind in QUANT else g.tensor(x.shape, kind)
        g.op("ADD", [x, wd], [y], fused_activation_function=r.choice(ACTIVATIONS))
    return [y]


def dataclass_replace(t: T, **extra) -> T:
    t = T(t.index, t.shape, t.kind, t.scale, t.zp)
    for k, v in extra.items():
        setattr(t, k, v)
    return t


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
@dataclass
class Case:
    model: Model
    inputs: list[np.ndarray]
    ops: list[str]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"ops {self.ops}" + (f"; {'; '.join(self.notes)}" if self.notes else "")


def build_case(r: Rand, op: str | None = None, max_ops: int = 3) -> Case:
    """A valid model of one to ``max_ops`` chained operators, and its input arrays."""
    g = Graph(r)
    names = sorted(RECIPES)
    first = op or r.choice(names)
    kinds, fn = RECIPES[first]
    kind = r.choice(kinds)
    outs = None
    while outs is None:
        outs = fn(r, g, None, kind)
    ops = [first]
    for _ in range(r.integers(0, max_ops - 1)):
        x = r.choice(outs)
        tried = 0
        while tried < 6:
            tried += 1
            name = r.choice(names)
            kinds, fn = RECIPES[name]
            k = "hybrid" if x.kind == "f32" and "hybrid" in kinds and r.coin(0.2) else x.kind
            if k not in kinds:
                continue
            new = fn(r, g, x, k)
            if new is not None:
                ops.append(name)
                dangling = [t for t in outs if t is not x]
                g.b.mark_outputs(*(t.index for t in dangling))
                outs = new
                break
    g.b.mark_outputs(*(t.index for t in outs))
    inputs = []
    for t in g.inputs:
        fixed = getattr(t, "fixed", None)
        inputs.append(fixed if fixed is not None else g.values(t.shape, t.kind))
    return Case(g.b.build(), inputs, ops)


# ---------------------------------------------------------------------------
# Mutations: break one field
# ---------------------------------------------------------------------------
INT32_EDGES = (0, -1, 1, 2, 3, 7, 255, 256, 65535, 2**16, 2**20, 2**31 - 1, -(2**31), -2, 100000)
FLOAT_EDGES = (0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 1e-38, 1e-30,
               3.4e38, 1e30, 2.0**-32, 65536.0)
TYPE_CHOICES = ("FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL", "FLOAT16", "STRING",
                "COMPLEX64", "FLOAT64", "UINT32", "INT4", "UINT16")

# The subgraph the mutation breaks (mutate_model draws it: the main one, or a cond /
# body / branch / init subgraph of a control-flow operator).
_TARGET = [0]


def _pick_tensor(r: Rand, m: Model, *, constant: bool | None = None) -> int | None:
    sg = m.subgraphs[_TARGET[0]]
    used = sorted({i for op in sg.operators for i in op.inputs + op.outputs if i >= 0})
    cands = [i for i in used if constant is None or
             (sg.tensors[i].buffer != 0 and m.buffers[sg.tensors[i].buffer].data is not None) == constant]
    return r.choice(cands) if cands else None


def m_shape(r, m):
    t = _pick_tensor(r, m, constant=False if r.coin(0.8) else None)
    if t is None:
        return None
    tensor = m.subgraphs[_TARGET[0]].tensors[t]
    how = r.integers(0, 3)
    if how == 0 and tensor.shape:
        d = r.integers(0, len(tensor.shape) - 1)
        old = tensor.shape[d]
        tensor.shape[d] = r.choice((0, old + 1, max(old - 1, 0), 1, 2, 2**16, 2**31 - 1, 3 * old, 1000))
        return f"tensor {t} dim {d}: {old} -> {tensor.shape[d]}"
    if how == 1 and tensor.shape:
        tensor.shape.pop(r.integers(0, len(tensor.shape) - 1))
        return f"tensor {t} drops a dimension: {tensor.shape}"
    if how == 2:
        tensor.shape.insert(r.integers(0, len(tensor.shape)), r.choice((1, 2, 0, 3)))
        return f"tensor {t} gains a dimension: {tensor.shape}"
    tensor.shape = []
    return f"tensor {t} becomes a scalar"


def m_type(r, m):
    t = _pick_tensor(r, m)
    if t is None:
        return None
    tensor = m.subgraphs[_TARGET[0]].tensors[t]
    old = tensor.type
    tensor.type = int(TensorType[r.choice(TYPE_CHOICES)])
    return f"tensor {t} type {TensorType(old).name} -> {TensorType(tensor.type).name}"


def m_reinterpret(r, m):
    """Same itemsize, other type: the buffer size still matches (int8<->uint8, int32<->float32)."""
    t = _pick_tensor(r, m)
    if t is None:
        return None
    tensor = m.subgraphs[_TARGET[0]].tensors[t]
    swap = {"INT8": ("UINT8", "BOOL"), "UINT8": ("INT8", "BOOL"), "BOOL": ("INT8", "UINT8"),
            "INT32": ("FLOAT32", "UINT32"), "FLOAT32": ("INT32",), "INT16": ("FLOAT16", "UINT16"),
            "FLOAT16": ("INT16",), "INT64": ("FLOAT64", "UINT64"), "FLOAT64": ("INT64",)}
    name = TensorType(tensor.type).name
    if name not in swap:
        return None
    tensor.type = int(TensorType[r.choice(swap[name])])
    return f"tensor {t} reinterpreted {name} -> {TensorType(tensor.type).name}"


def _quantized(r, m):
    sg = m.subgraphs[_TARGET[0]]
    cands = [i for i, t in enumerate(sg.tensors) if t.quantization is not None and t.quantization.scale is not None
             and len(t.quantization.scale)]
    return r.choice(cands) if cands else None


def m_scale(r, m):
    t = _quantized(r, m)
    if t is None:
        return None
    q = m.subgraphs[_TARGET[0]].tensors[t].quantization
    q.scale = np.array(q.scale, np.float32)
    j = r.integers(0, len(q.scale) - 1)
    q.scale[j] = np.float32(r.choice(FLOAT_EDGES + (-float(q.scale[j]),)))
    return f"tensor {t} scale[{j}] = {q.scale[j]}"


def m_zero_point(r, m):
    t = _quantized(r, m)
    if t is None:
        return None
    q = m.subgraphs[_TARGET[0]].tensors[t].quantization
    q.zero_point = np.array(q.zero_point if q.zero_point is not None else np.zeros(len(q.scale)), np.int64)
    j = r.integers(0, len(q.zero_point) - 1)
    q.zero_point[j] = r.choice((-129, 128, 256, -1, 255, -32769, 32768, 2**31 - 1, -(2**31), 2**40, 1, -128, 127))
    return f"tensor {t} zero_point[{j}] = {q.zero_point[j]}"


def m_channels(r, m):
    t = _quantized(r, m)
    if t is None:
        return None
    tensor = m.subgraphs[_TARGET[0]].tensors[t]
    q = tensor.quantization
    how = r.integers(0, 3)
    if how == 0:
        n = len(q.scale) + r.choice((1, -1 if len(q.scale) > 1 else 2, 5))
        q.scale = np.resize(q.scale, n).astype(np.float32)
        q.zero_point = np.resize(q.zero_point, n).astype(np.int64)
        return f"tensor {t} has {n} scales"
    if how == 1:
        q.quantized_dimension = r.choice((1, 2, 3, 0, 5, -1))
        return f"tensor {t} quantized_dimension {q.quantized_dimension}"
    if how == 2:
        tensor.quantization = None
        return f"tensor {t} loses its quantization"
    q.scale = np.resize(q.scale, len(q.scale) + 1).astype(np.float32)
    return f"tensor {t} scale/zero point counts differ"


def m_add_quant(r, m):
    t = _pick_tensor(r, m)
    if t is None:
        return None
    tensor = m.subgraphs[_TARGET[0]].tensors[t]
    tensor.quantization = QuantizationParameters(
        scale=np.array([r.choice((0.1, 1.0, 1e-6, 0.0))], np.float32),
        zero_point=np.array([r.choice((0, 3, -5))], np.int64))
    return f"tensor {t} gets quantization {tensor.quantization.scale[0]}"


def m_option(r, m):
    sg = m.subgraphs[_TARGET[0]]
    o = r.integers(0, len(sg.operators) - 1)
    op = sg.operators[o]
    name = m.operator_codes[op.opcode_index].name
    table = options_table_for(name)
    if table is None:
        return None
    rows = [row for row in desc.TABLES[table] if not row[5]]
    if not rows:
        return None
    fname, _slot, kind, elem, default, *_ = r.choice(rows)
    if op.builtin_options is None:
        op.builtin_options = {}
    if kind == "enum":
        value = r.integers(0, 20) if r.coin(0.4) else r.choice(sorted(desc.ENUMS[elem][1].values()))
    elif kind == "scalar" and elem == "bool":
        value = not (op.builtin_options.get(fname, default) or False)
    elif kind == "scalar" and elem.startswith("float"):
        value = r.choice(FLOAT_EDGES)
    elif kind == "scalar":
        value = r.choice(INT32_EDGES)
        if elem.startswith("u"):
            value = abs(value)
        bits = {"int8": 8, "int16": 16, "uint8": 8, "uint16": 16, "int64": 64}.get(elem, 32)
        if bits < 32:
            value = max(min(value, 2 ** (bits - 1) - 1), -(2 ** (bits - 1)))
    elif kind.startswith("vector"):
        value = [r.choice(INT32_EDGES) for _ in range(r.integers(0, 5))]
    else:
        return None
    op.builtin_options[fname] = value
    return f"operator {o} {name}.{fname} = {value}"


def m_inputs(r, m):
    sg = m.subgraphs[_TARGET[0]]
    o = r.integers(0, len(sg.operators) - 1)
    op = sg.operators[o]
    how = r.integers(0, 5)
    avail = sorted(set(sg.inputs) | {i for p in sg.operators[:o] for i in p.outputs} |
                   {i for i, t in enumerate(sg.tensors) if t.buffer and m.buffers[t.buffer].data is not None})
    if how == 0 and op.inputs:
        op.inputs.pop(r.integers(0, len(op.inputs) - 1))
        return f"operator {o} drops an input"
    if how == 1:
        op.inputs.append(r.choice(avail) if avail else 0)
        return f"operator {o} gains input {op.inputs[-1]}"
    if how == 2 and op.inputs:
        j = r.integers(0, len(op.inputs) - 1)
        op.inputs[j] = -1
        return f"operator {o} input {j} = -1"
    if how == 3 and len(op.inputs) > 1:
        a, b = r.integers(0, len(op.inputs) - 1), r.integers(0, len(op.inputs) - 1)
        op.inputs[a], op.inputs[b] = op.inputs[b], op.inputs[a]
        return f"operator {o} swaps inputs {a} and {b}"
    if op.inputs and avail:
        j = r.integers(0, len(op.inputs) - 1)
        op.inputs[j] = r.choice(avail)
        return f"operator {o} input {j} -> tensor {op.inputs[j]}"
    return None


def m_outputs(r, m):
    sg = m.subgraphs[_TARGET[0]]
    o = r.integers(0, len(sg.operators) - 1)
    op = sg.operators[o]
    if not op.outputs:          # ASSIGN_VARIABLE, CALL_ONCE
        if not sg.tensors:
            return None
        op.outputs.append(r.integers(0, len(sg.tensors) - 1))
        return f"operator {o} gains output {op.outputs[-1]}"
    if r.coin() or len(op.outputs) == 1:
        like = sg.tensors[op.outputs[0]]
        sg.tensors.append(Tensor(shape=list(like.shape), type=like.type, name=f"extra{len(sg.tensors)}",
                                 quantization=like.quantization))
        op.outputs.append(len(sg.tensors) - 1)
        return f"operator {o} gains an output"
    t = op.outputs.pop()
    if t in sg.outputs and not any(t in p.outputs for p in sg.operators):
        sg.outputs.remove(t)
    return f"operator {o} drops output {t}"


def m_const_data(r, m):
    t = _pick_tensor(r, m, constant=True)
    if t is None:
        return None
    sg = m.subgraphs[_TARGET[0]]
    tensor = sg.tensors[t]
    try:
        arr = np.array(m.tensor_data(_TARGET[0], t))
    except Exception:
        return None
    if arr.dtype == object or arr.size == 0:
        return None
    flat = arr.reshape(-1)
    j = r.integers(0, flat.size - 1)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        edges = [v for v in INT32_EDGES + (int(info.min), int(info.max), -3, 8, 9, 6)
                 if info.min <= v <= info.max]
        flat[j] = r.choice(edges)
        if r.coin(0.2):
            flat[:] = flat[j]
    elif arr.dtype.kind == "f":
        with np.errstate(over="ignore"):
            flat[j] = r.choice(FLOAT_EDGES)
    elif arr.dtype.kind == "b":
        flat[j] = not flat[j]
    else:
        return None
    m.buffers[tensor.buffer] = Buffer(data=arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return f"constant tensor {t}[{j}] = {flat[j]}"


def m_version(r, m):
    c = r.integers(0, len(m.operator_codes) - 1)
    m.operator_codes[c].version = r.choice((2, 3, 4, 5, 7, 9, 13, 100))
    return f"operator code {c} version {m.operator_codes[c].version}"


def m_opcode(r, m):
    c = r.integers(0, len(m.operator_codes) - 1)
    from quantcore.schema.model import BuiltinOperator
    name = r.choice(sorted(RECIPES))
    code = int(BuiltinOperator[name])
    m.operator_codes[c].builtin_code = code
    m.operator_codes[c].deprecated_builtin_code = min(code, 127)
    return f"operator code {c} becomes {name}"


def m_graph_io(r, m):
    sg = m.subgraphs[_TARGET[0]]
    how = r.integers(0, 2)
    if how == 0 and sg.inputs:
        sg.inputs.pop(r.integers(0, len(sg.inputs) - 1))
        return "a graph input is dropped"
    if how == 1:
        t = r.integers(0, len(sg.tensors) - 1)
        sg.outputs.append(t)
        return f"tensor {t} is also a graph output"
    if sg.inputs:
        sg.inputs.append(sg.inputs[0])
        return "graph input listed twice"
    return None


def m_subgraph_index(r, m):
    """A control-flow operator calls another subgraph: another valid one, itself, one
    out of range."""
    sg = m.subgraphs[_TARGET[0]]
    cands = [(o, f) for o, op in enumerate(sg.operators) for f in (op.builtin_options or {})
             if f.endswith("_subgraph_index")]
    if not cands:
        return None
    o, f = r.choice(cands)
    n = len(m.subgraphs)
    value = r.choice((r.integers(0, n - 1), r.integers(0, n - 1), _TARGET[0], n, -1))
    sg.operators[o].builtin_options[f] = value
    return f"operator {o} {f} = {value}"


def m_sparsity(r, m):
    """Break one field of a sparse constant's sparsity parameters."""
    sg = m.subgraphs[_TARGET[0]]
    cands = [i for i, t in enumerate(sg.tensors) if isinstance(t.sparsity, dict)]
    if not cands:
        return None
    t = r.choice(cands)
    sp = sg.tensors[t].sparsity
    dims = sp.get("dim_metadata") or []
    how = r.integers(0, 6)
    if how == 0:
        order = [int(v) for v in np.asarray(sp.get("traversal_order", []))]
        if len(order) > 1 and r.coin():
            a, b = r.integers(0, len(order) - 1), r.integers(0, len(order) - 1)
            order[a], order[b] = order[b], order[a]
        elif order:
            order[r.integers(0, len(order) - 1)] = r.choice((-1, len(order), 2**31 - 1, 0))
        else:
            order = [0]
        sp["traversal_order"] = np.array(order, np.int32)
        return f"tensor {t} traversal_order {order}"
    if how == 1:
        bm = [r.choice((0, 1, -1, 5)) for _ in range(r.integers(0, 2))]
        sp["block_map"] = np.array(bm, np.int32) if bm or r.coin() else None
        return f"tensor {t} block_map {bm}"
    if not dims:
        return None
    d = r.integers(0, len(dims) - 1)
    md = dims[d] = dict(dims[d])
    if how == 2:
        md["format"] = r.choice((0, 1, 2, 255))
        if md["format"] == 0 and not md.get("dense_size"):
            md["dense_size"] = r.choice((0, 1, 3))
        return f"tensor {t} dim_metadata[{d}].format {md['format']}"
    if how == 3:
        md["dense_size"] = r.choice(INT32_EDGES)
        return f"tensor {t} dim_metadata[{d}].dense_size {md['dense_size']}"
    if how == 4 and len(dims) > 1:
        dims.pop(d) if r.coin() else dims.append(dict(md))
        return f"tensor {t} has {len(dims)} dim_metadata"
    key = r.choice(("array_segments", "array_indices"))
    vec = md.get(key)
    if not isinstance(vec, dict) or vec.get("values") is None:
        md[key + "_type"] = r.choice((1, 2, 3))
        md[key] = {"values": np.array([r.choice((0, 1, 2, 255))], np.int32)}
        md["format"] = 1
        return f"tensor {t} dim_metadata[{d}] becomes sparse"
    vals = np.array(vec["values"]).astype(np.int64)
    if vals.size and r.coin(0.7):
        vals[r.integers(0, vals.size - 1)] = r.choice((-1, 0, 1, 3, 255, 65535, 2**31 - 1))
    else:
        vals = np.resize(vals, max(vals.size + r.choice((-1, 1, 5)), 0))
    md[key] = {"values": vals.astype(np.int32)}
    md[key + "_type"] = 1 if r.coin(0.6) else r.choice((0, 2, 3, 9))
    return f"tensor {t} dim_metadata[{d}].{key} = {vals.tolist()[:8]}"


MUTATIONS: dict[str, Callable[[Rand, Model], str | None]] = {
    "shape": m_shape, "type": m_type, "reinterpret": m_reinterpret, "scale": m_scale,
    "zero_point": m_zero_point, "channels": m_channels, "add_quant": m_add_quant,
    "option": m_option, "inputs": m_inputs, "outputs": m_outputs, "const_data": m_const_data,
    "version": m_version, "opcode": m_opcode, "graph_io": m_graph_io,
    "subgraph_index": m_subgraph_index, "sparsity": m_sparsity,
}
# Options and constants reach the deepest code: draw them more often.
MUTATION_WEIGHTS = {"option": 4, "const_data": 4, "shape": 3, "scale": 2, "zero_point": 2,
                    "channels": 2, "type": 2, "reinterpret": 2, "inputs": 2, "sparsity": 2}


def mutate_model(r: Rand, m: Model) -> str:
    names = [n for n in MUTATIONS for _ in range(MUTATION_WEIGHTS.get(n, 1))]
    # Which subgraph: the main one, or (half the time, when there are others) a called one
    # that has operators (a cond / body / branch / init subgraph).
    called = [s for s in range(1, len(m.subgraphs)) if m.subgraphs[s].operators]
    _TARGET[0] = r.choice(called) if called and r.coin() else 0
    where = f"subgraph {_TARGET[0]}: " if _TARGET[0] else ""
    try:
        for _ in range(8):
            what = MUTATIONS[r.choice(names)](r, m)
            if what:
                return where + what
        return "no mutation"
    finally:
        _TARGET[0] = 0


# ---------------------------------------------------------------------------
# Input arrays: the right ones, or wrong dtype / shape / special values
# ---------------------------------------------------------------------------
def special_values(r: Rand, arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr)
    if arr.size == 0:
        return arr
    flat = arr.reshape(-1)
    if arr.dtype.kind == "f":
        pool = [np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38, 1e-45]
    elif arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        pool = [int(info.min), int(info.max), 0, -1 if info.min < 0 else 1]
    else:
        return arr
    rng = r.np()
    k = r.integers(1, flat.size)
    where = rng.choice(flat.size, size=k, replace=False)
    with np.errstate(over="ignore"):  # 3.4e38 becomes inf in float16
        flat[where] = rng.choice(np.array(pool, dtype=arr.dtype), size=k)
    return arr


def wrong_input(r: Rand, arr: np.ndarray) -> tuple[str, np.ndarray]:
    how = r.integers(0, 3)
    if how == 0:
        dt = r.choice([d for d in (np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64,
                                   np.bool_, np.int16) if np.dtype(d) != arr.dtype])
        with np.errstate(all="ignore"):
            return f"dtype {np.dtype(dt)}", arr.astype(dt)
    if how == 1:
        return "one more dimension", arr[None]
    if how == 2 and arr.ndim:
        return "flattened", arr.reshape(-1)[: max(arr.size - 1, 0)]
    return "a list of floats", arr.astype(np.float64).tolist()
