"""Differential tests of :mod:`quantcore.numerics` against LiteRT, bit for bit.

Every case builds a single-op model (QUANTIZE or DEQUANTIZE) with our own
:class:`~quantcore.schema.builder.ModelBuilder`, runs it in LiteRT and compares with
quantcore. The LiteRT path is named in every test: "LiteRT BUILTIN_REF" (the reference
kernels, ``numerics="reference"``), "LiteRT optimized" (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``)
or "LiteRT XNNPACK" (``BUILTIN``).

Kernels compared (google-ai-edge/LiteRT): ``tflite/kernels/quantize.cc``,
``tflite/kernels/dequantize.{cc,h}``, ``tflite/kernels/internal/reference/quantize.h``,
``reference/dequantize.h``, ``reference/requantize.h`` and
``optimized/optimized_ops.h`` (``AffineQuantize``).

Fast by default (fixed hypothesis seeds); ``pytest --slow`` or ``QUANTCORE_SLOW=1``
multiplies the number of examples by 20 and randomizes them.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantcore.errors import InputError
from quantcore.fixedpoint import activation_range, quantize_multiplier
from quantcore.numerics import dequantize, qrange, quantize, requantize
from quantcore.oracle import LiteRTOracle
from quantcore.schema.builder import ModelBuilder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                reason="ai-edge-litert is not installed")

SLOW = os.environ.get("QUANTCORE_SLOW") == "1"
PATH_NAMES = {"reference": "LiteRT BUILTIN_REF", "optimized": "LiteRT optimized "
              "(BUILTIN_WITHOUT_DEFAULT_DELEGATES)", "xnnpack": "LiteRT XNNPACK (BUILTIN)"}


def examples(n: int) -> settings:
    """``n`` hypothesis examples (derandomized); 20x as many, random, when slow."""
    return settings(max_examples=n * 20 if SLOW else n, deadline=None, derandomize=not SLOW,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="session")
def litert(request):
    """The session's one LiteRT worker: conftest's ``oracle`` when present, else our own."""
    try:
        shared = request.getfixturevalue("oracle")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    own = LiteRTOracle()
    yield own
    own.close()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def run_litert(oracle: LiteRTOracle, model: bytes, inputs: list, numerics: str) -> np.ndarray:
    """Output 0 of ``model`` in LiteRT; fails the test when LiteRT refuses or dies."""
    r = oracle.run(model, inputs, numerics, preserve_all_tensors=False)
    if not r.ok:
        pytest.fail(f"{PATH_NAMES[numerics]} refused the model: {r.error}")
    return r.outputs[0]


def _bits(a: np.ndarray) -> np.ndarray:
    """Integers compare as they are; floats by bit pattern (so -0.0 != 0.0, NaN == NaN)."""
    if a.dtype.kind == "f":
        return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
    return a


def assert_bitexact(ours, theirs, inputs, context: str) -> None:
    """assert_array_equal; on mismatch name the first differing index, its input and both outputs."""
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    inputs = np.asarray(inputs)
    assert ours.dtype == theirs.dtype, f"{context}: dtype {ours.dtype} (quantcore) != {theirs.dtype} (LiteRT)"
    assert ours.shape == theirs.shape, f"{context}: shape {ours.shape} (quantcore) != {theirs.shape} (LiteRT)"
    diff = np.argwhere(_bits(ours) != _bits(theirs))
    msg = ""
    if len(diff):
        idx = tuple(int(i) for i in diff[0])
        x = inputs[idx] if inputs.shape == ours.shape else inputs.reshape(-1)[np.ravel_multi_index(idx, ours.shape)]
        xs = f"{x!r} (float32 bits 0x{np.float32(x).view(np.uint32):08x})" if inputs.dtype == np.float32 else repr(x)
        msg = (f"{context}: {len(diff)} of {ours.size} elements differ; first at index {idx}: "
               f"input {xs}, quantcore {ours[idx]!r}, LiteRT {theirs[idx]!r}")
    np.testing.assert_array_equal(ours, theirs, err_msg=msg)
    if msg:  # equal as values but not as bits (a signed zero)
        raise AssertionError(msg)


def quantize_model(shape, out_dtype, scale, zero_point, quantized_dimension: int = 0,
                   in_dtype=np.float32, in_scale=None, in_zero_point=None) -> bytes:
    """One QUANTIZE op: graph input ``x`` (float32, or quantized for requantize) -> output ``y``."""
    b = ModelBuilder()
    x = b.add_input("x", shape, in_dtype, scale=in_scale, zero_point=in_zero_point)
    y = b.add_tensor("y", shape, out_dtype, scale=scale, zero_point=zero_point,
                     quantized_dimension=quantized_dimension)
    b.add_operator("QUANTIZE", [x], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def dequantize_model(q: np.ndarray | None, shape, dtype, scale, zero_point,
                     quantized_dimension: int = 0) -> bytes:
    """One DEQUANTIZE op; its input is a constant holding ``q``, or a graph input when ``q`` is None."""
    b = ModelBuilder()
    kw = dict(scale=scale, zero_point=zero_point, quantized_dimension=quantized_dimension)
    if q is None:
        x = b.add_input("q", shape, dtype, **kw)
    else:
        x = b.add_constant("q", np.asarray(q, dtype), **kw)
    y = b.add_tensor("y", shape, np.float32)
    b.add_operator("DEQUANTIZE", [x], [y])
    b.mark_outputs(y)
    return b.to_bytes()


F32_MAX = float(np.finfo(np.float32).max)
SPECIALS = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39,
                     1.1754944e-38, -1.1754944e-38, F32_MAX, -F32_MAX, 1e38, -1e38, 3e9, -3e9,
                     2.0**31, -(2.0**31), 2147483520.0, -2147483520.0], np.float32)


def float_inputs(rng: np.random.Generator, scale, zero_point, qmin: int, qmax: int, n: int) -> np.ndarray:
    """``n`` float32 inputs for QUANTIZE with (per-element) ``scale``/``zero_point``.

    A mix of exact and near rounding ties ``(k + 0.5) * scale`` (computed in float64
    and in float32, and their float32 neighbours), uniform values over the output
    range and a little beyond, values whose ``x / scale`` is near the int32 limits
    (where the zero-point addition wraps), and the specials (+-inf, NaN, -0.0,
    subnormals, FLT_MAX).
    """
    s = np.broadcast_to(np.asarray(scale, np.float64), (n,))
    z = np.broadcast_to(np.asarray(zero_point, np.float64), (n,))
    lo, hi = qmin - z - 3, qmax - z + 3
    k = np.floor(rng.uniform(lo, hi + 1)).astype(np.float64)
    kind = rng.integers(0, 9, n)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.select(
            [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4, kind == 5, kind == 6, kind == 7],
            [(k + 0.5) * s,                                                # tie, rounded once
             np.float32(k + 0.5) * s.astype(np.float32),                    # tie, float32 product
             np.nextafter(((k + 0.5) * s).astype(np.float32), np.float32(np.inf)).astype(np.float64),
             np.nextafter(((k + 0.5) * s).astype(np.float32), np.float32(-np.inf)).astype(np.float64),
             k * s,                                                         # exact steps
             rng.uniform(lo, hi) * s,                                       # anywhere in range
             rng.choice([-1.0, 1.0], n) * (2.0**31 + rng.uniform(-2.0**9, 2.0**9, n)) * s,  # int32 edge
             rng.choice(SPECIALS.astype(np.float64), n)],
            rng.standard_normal(n) * s * rng.choice([1.0, 10.0, 1000.0], n))
        out = out.astype(np.float32)
    return out


def int_inputs(rng: np.random.Generator, dtype, n: int) -> np.ndarray:
    """Integer inputs for DEQUANTIZE/requantize: every value for 8-bit types, else a mix
    of extremes, small values and uniform draws over the whole range."""
    dt = np.dtype(dtype)
    lo, hi = qrange(dt)
    if dt.itemsize == 1:
        return rng.permutation(np.arange(lo, hi + 1)).astype(dt)
    edges = np.array([lo, lo + 1, hi - 1, hi, -1, 0, 1], np.int64)
    small = rng.integers(-300, 301, n // 4)
    wide = rng.integers(lo, hi, n - len(edges) - len(small), endpoint=True)
    return rng.permutation(np.concatenate([edges, small, wide])).astype(dt)


# hypothesis strategies ------------------------------------------------------
def scales(lo_exp: float = -6.0, hi_exp: float = 3.0):
    """float32 scales, log-uniform in [10^lo_exp, 10^hi_exp] (shrinks toward 1.0)."""
    return st.floats(lo_exp, hi_exp).map(lambda e: float(np.float32(10.0**e)))


def zero_points(dtype):
    lo, hi = qrange(dtype)
    return st.integers(lo, hi)


seeds = st.integers(0, 2**32 - 1)
Q_TYPES = [np.int8, np.uint8, np.int16]


# ---------------------------------------------------------------------------
# QUANTIZE float32 -> int8 / uint8 / int16
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", Q_TYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_per_tensor_matches_litert_builtin_ref(litert, dtype):
    """QUANTIZE float32 -> int, per tensor, vs LiteRT BUILTIN_REF (reference_ops::AffineQuantize):
    f32 division, ties away from zero, x86 int32 cast, wrapping zero-point add."""
    qmin, qmax = qrange(dtype)

    @examples(300)
    @given(scale=scales(), zp=zero_points(dtype), seed=seeds)
    def check(scale, zp, seed):
        x = float_inputs(np.random.default_rng(seed), scale, zp, qmin, qmax, 256)
        theirs = run_litert(litert, quantize_model(x.shape, dtype, scale, zp), [x], "reference")
        assert_bitexact(quantize(x, scale, zp, dtype), theirs, x,
                        f"QUANTIZE f32->{np.dtype(dtype).name} scale={scale!r} zp={zp} vs LiteRT BUILTIN_REF")

    check()


@pytest.mark.parametrize("dtype", Q_TYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_special_values_matches_litert_builtin_ref(litert, dtype):
    """QUANTIZE of +-inf, NaN, -0.0, subnormals and huge values at the extreme zero points
    and scales, vs LiteRT BUILTIN_REF (NaN and |x/s| >= 2^31 become INT32_MIN before the
    zero point is added, so a negative zero point wraps them to qmax)."""
    qmin, qmax = qrange(dtype)
    x = np.concatenate([SPECIALS, -SPECIALS, np.float32([0.5, -0.5, 1.5, -1.5, 2.5, -2.5,
                                                         0.49999997, -0.49999997])])
    for scale in (1e-6, 0.1, 1.0, 1e3, 2.0**-20, 3e-7):
        scale = float(np.float32(scale))
        for zp in sorted({qmin, qmin + 1, -1, 0, 1, qmax - 1, qmax} & set(range(qmin, qmax + 1))):
            theirs = run_litert(litert, quantize_model(x.shape, dtype, scale, zp), [x], "reference")
            assert_bitexact(quantize(x, scale, zp, dtype), theirs, x,
                            f"QUANTIZE specials f32->{np.dtype(dtype).name} scale={scale!r} zp={zp} "
                            "vs LiteRT BUILTIN_REF")


@st.composite
def per_channel_cases(draw):
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    axis = draw(st.integers(0, rank - 1))
    shape[axis] = draw(st.integers(2, 6))
    dtype = draw(st.sampled_from(Q_TYPES))
    n = shape[axis]
    sc = draw(st.lists(scales(), min_size=n, max_size=n))
    zp = draw(st.lists(zero_points(dtype), min_size=n, max_size=n))
    return tuple(shape), axis, dtype, np.array(sc, np.float32), np.array(zp, np.int64), draw(seeds)


def _channel_of_each_element(shape, axis) -> np.ndarray:
    return np.indices(shape)[axis].reshape(-1)


def test_quantize_per_channel_matches_litert_builtin_ref(litert):
    """Per-channel QUANTIZE float32 -> int8/uint8/int16 (output scale per ``quantized_dimension``),
    vs LiteRT BUILTIN_REF (reference_ops::PerChannelQuantize)."""

    @examples(300)
    @given(case=per_channel_cases())
    def check(case):
        shape, axis, dtype, sc, zp, seed = case
        qmin, qmax = qrange(dtype)
        ch = _channel_of_each_element(shape, axis)
        x = float_inputs(np.random.default_rng(seed), sc[ch], zp[ch], qmin, qmax, len(ch)).reshape(shape)
        theirs = run_litert(litert, quantize_model(shape, dtype, sc, zp, axis), [x], "reference")
        assert_bitexact(quantize(x, sc, zp, dtype, axis=axis), theirs, x,
                        f"per-channel QUANTIZE f32->{np.dtype(dtype).name} shape={shape} axis={axis} "
                        f"scales={sc.tolist()} zps={zp.tolist()} vs LiteRT BUILTIN_REF")

    check()


@pytest.mark.parametrize("numerics", ["optimized", "xnnpack"])
@pytest.mark.parametrize("dtype", Q_TYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_fast_paths_match_litert(litert, numerics, dtype):
    """QUANTIZE float32 -> int per tensor vs LiteRT optimized (8-wide blocks x*f32(1/s) ties to
    even, scalar tail double(x)/double(s) ties away) and LiteRT XNNPACK (rint(f32(x*f32(1/s)))
    + zp, saturating; int16 is not delegated), over element counts 1..70."""
    qmin, qmax = qrange(dtype)

    @examples(150)
    @given(scale=scales(), zp=zero_points(dtype), n=st.integers(1, 70), seed=seeds)
    def check(scale, zp, n, seed):
        x = float_inputs(np.random.default_rng(seed), scale, zp, qmin, qmax, n)
        theirs = run_litert(litert, quantize_model(x.shape, dtype, scale, zp), [x], numerics)
        assert_bitexact(quantize(x, scale, zp, dtype, numerics=numerics), theirs, x,
                        f"QUANTIZE f32->{np.dtype(dtype).name} n={n} scale={scale!r} zp={zp} "
                        f"vs {PATH_NAMES[numerics]}")

    check()


def test_quantize_paths_differ_on_ties_litert_builtin_ref_vs_optimized(litert):
    """The three LiteRT paths round exact ties differently: 0.5, 1.5, 2.5, -0.5 with scale 1
    give 1, 2, 3, -1 on BUILTIN_REF (ties away) but 0, 2, 2, 0 in optimized's 8-wide block and
    in XNNPACK (ties to even); optimized's scalar tail (element 8) rounds away again."""
    x = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 4.5, 0.5])
    model = quantize_model(x.shape, np.int8, 1.0, 0)
    want = {"reference": [1, 2, 3, -1, -2, -3, 4, 5, 1],
            "optimized": [0, 2, 2, 0, -2, -2, 4, 4, 1],
            "xnnpack": [0, 2, 2, 0, -2, -2, 4, 4, 0]}
    for numerics, expected in want.items():
        theirs = run_litert(litert, model, [x], numerics)
        np.testing.assert_array_equal(theirs, np.int8(expected), err_msg=PATH_NAMES[numerics])
        assert_bitexact(quantize(x, 1.0, 0, np.int8, numerics=numerics), theirs, x, PATH_NAMES[numerics])


# ---------------------------------------------------------------------------
# DEQUANTIZE int8 / uint8 / int16 -> float32
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("numerics", ["reference", "optimized", "xnnpack"])
@pytest.mark.parametrize("dtype", Q_TYPES, ids=lambda d: np.dtype(d).name)
def test_dequantize_per_tensor_graph_input_matches_litert(litert, numerics, dtype):
    """DEQUANTIZE of a graph input, per tensor, every value of the type (int16: 4096 of them),
    vs LiteRT BUILTIN_REF and XNNPACK (float(double(s) * (q - zp)), one rounding) and LiteRT
    optimized (8-wide blocks f32(f32(q * s) + f32(-zp * s)), two roundings). int16 needs zp 0."""
    fixed_zp = np.dtype(dtype) == np.dtype(np.int16)

    @examples(100 if numerics == "reference" else 30)
    @given(scale=scales(), zp=st.just(0) if fixed_zp else zero_points(dtype), seed=seeds)
    def check(scale, zp, seed):
        q = int_inputs(np.random.default_rng(seed), dtype, 4096)
        theirs = run_litert(litert, dequantize_model(None, q.shape, dtype, scale, zp), [q], numerics)
        assert_bitexact(dequantize(q, scale, zp, numerics=numerics), theirs, q,
                        f"DEQUANTIZE {np.dtype(dtype).name} scale={scale!r} zp={zp} vs {PATH_NAMES[numerics]}")

    check()


@pytest.mark.parametrize("dtype", Q_TYPES, ids=lambda d: np.dtype(d).name)
def test_dequantize_per_tensor_constant_matches_litert_builtin_ref(litert, dtype):
    """DEQUANTIZE of a constant tensor feeding a graph output (LiteRT dequantizes it once, in
    Prepare/first Eval, into a persistent tensor), per tensor, vs LiteRT BUILTIN_REF."""
    fixed_zp = np.dtype(dtype) == np.dtype(np.int16)

    @examples(30)
    @given(scale=scales(), zp=st.just(0) if fixed_zp else zero_points(dtype), seed=seeds)
    def check(scale, zp, seed):
        q = int_inputs(np.random.default_rng(seed), dtype, 512).reshape(-1, 8)
        theirs = run_litert(litert, dequantize_model(q, q.shape, dtype, scale, zp), [], "reference")
        assert_bitexact(dequantize(q, scale, zp), theirs, q,
                        f"const DEQUANTIZE {np.dtype(dtype).name} scale={scale!r} zp={zp} vs LiteRT BUILTIN_REF")

    check()


@st.composite
def per_channel_dequant_cases(draw):
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    axis = draw(st.integers(0, rank - 1))
    shape[axis] = draw(st.integers(2, 8))
    dtype = draw(st.sampled_from([np.int8, np.uint8]))
    n = shape[axis]
    sc = draw(st.lists(scales(), min_size=n, max_size=n))
    zp = draw(st.lists(zero_points(dtype), min_size=n, max_size=n))
    const = draw(st.booleans())
    return tuple(shape), axis, dtype, np.array(sc, np.float32), np.array(zp, np.int64), const, draw(seeds)


def test_dequantize_per_channel_matches_litert_builtin_ref(litert):
    """Per-channel DEQUANTIZE int8/uint8 -> float32 along ``quantized_dimension``, from a constant
    (weights) or a graph input, vs LiteRT BUILTIN_REF (reference_ops::PerChannelDequantize:
    float32 product scale[c] * (q - zp[c]))."""

    @examples(200)
    @given(case=per_channel_dequant_cases())
    def check(case):
        shape, axis, dtype, sc, zp, const, seed = case
        rng = np.random.default_rng(seed)
        lo, hi = qrange(dtype)
        q = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
        model = dequantize_model(q if const else None, shape, dtype, sc, zp, axis)
        theirs = run_litert(litert, model, [] if const else [q], "reference")
        assert_bitexact(dequantize(q, sc, zp, axis=axis), theirs, q,
                        f"per-channel DEQUANTIZE {np.dtype(dtype).name} shape={shape} axis={axis} "
                        f"const={const} scales={sc.tolist()} zps={zp.tolist()} vs LiteRT BUILTIN_REF")

    check()


def test_dequantize_litert_refusals_builtin_ref(litert):
    """What LiteRT BUILTIN_REF refuses: per-channel int16 DEQUANTIZE ("Type 7 not supported for
    per-channel", at Eval) and per-tensor int16 with a nonzero zero point (Prepare)."""
    q = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    r = litert.run(dequantize_model(q, q.shape, np.int16, [0.1, 0.2, 0.3], 0, 0), [], "reference")
    assert not r.ok and "per-channel" in r.error
    r = litert.run(dequantize_model(None, q.shape, np.int16, 0.1, 3), [q], "reference")
    assert not r.ok and "zero_point" in r.error


# ---------------------------------------------------------------------------
# requantize: QUANTIZE with an integer input
# ---------------------------------------------------------------------------
REQUANT_PAIRS = [(np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8), (np.uint8, np.uint8),
                 (np.int16, np.int8), (np.int8, np.int16), (np.uint8, np.int16), (np.int16, np.int16),
                 (np.int16, np.int32), (np.int32, np.int8), (np.int32, np.int16)]


@st.composite
def requant_scales(draw):
    """(s_in, s_out): independent log-uniform, dyadic ratios j/2^k (exact rounding ties),
    powers of two, equal scales, or ratios >= 2^31 (shift >= 32)."""
    mode = draw(st.sampled_from(["random", "random", "dyadic", "pow2", "equal", "huge"]))
    s_out = draw(scales())
    if mode == "random":
        return draw(scales()), s_out
    if mode == "dyadic":
        j = draw(st.integers(1, 255)) * 2 + 1
        k = draw(st.integers(1, 14))
        return float(np.float32(s_out * j / 2.0**k)), s_out
    if mode == "pow2":
        return float(np.float32(s_out * 2.0 ** draw(st.integers(-20, 12)))), s_out
    if mode == "equal":
        return s_out, s_out
    s_out = draw(scales(-6.0, -3.0))
    return float(np.float32(s_out * 2.0 ** draw(st.integers(31, 40)) * draw(st.floats(1.0, 1.9)))), s_out


def requant_zp(dtype, fixed_zero: bool):
    if fixed_zero:
        return st.just(0)
    return zero_points(dtype)


@pytest.mark.parametrize("din,dout", REQUANT_PAIRS,
                         ids=lambda d: np.dtype(d).name)
def test_requantize_matches_litert_builtin_ref(litert, din, dout):
    """QUANTIZE int -> int (reference_ops::Requantize with QuantizeMultiplier(double(s_in) /
    double(s_out)), gemmlowp double rounding), vs LiteRT BUILTIN_REF, zero points over the full
    type ranges (int16 -> int16: both 0, as LiteRT requires)."""
    both16 = np.dtype(din) == np.dtype(dout) == np.dtype(np.int16)

    @examples(150)
    @given(sc=requant_scales(), zp_in=requant_zp(din, both16), zp_out=requant_zp(dout, both16),
           seed=seeds)
    def check(sc, zp_in, zp_out, seed):
        s_in, s_out = sc
        q = int_inputs(np.random.default_rng(seed), din, 2048)
        model = quantize_model(q.shape, dout, s_out, zp_out, in_dtype=din, in_scale=s_in,
                               in_zero_point=zp_in)
        theirs = run_litert(litert, model, [q], "reference")
        m, shift = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))
        assert_bitexact(requantize(q, s_in, zp_in, s_out, zp_out, dout), theirs, q,
                        f"requantize {np.dtype(din).name}->{np.dtype(dout).name} s_in={s_in!r} zp_in={zp_in} "
                        f"s_out={s_out!r} zp_out={zp_out} (M0={m}, shift={shift}) vs LiteRT BUILTIN_REF")

    check()


@pytest.mark.parametrize("din,dout", [(np.int8, np.uint8), (np.uint8, np.int8)],
                         ids=lambda d: np.dtype(d).name)
def test_requantize_xor_0x80_fast_path_matches_litert_builtin_ref(litert, din, dout):
    """int8 <-> uint8 with equal scales and zero points 128 apart takes requantize.h's
    ``x ^ 0x80`` fast path in LiteRT BUILTIN_REF; quantcore mirrors it, and it equals the
    general formula."""
    q = int_inputs(np.random.default_rng(0), din, 256)
    zps = [(-128, 0), (0, 128), (-5, 123), (127, 255)] if din == np.int8 else [(128, 0), (255, 127), (0, -128)]
    for scale in (1e-6, 0.0078125, 0.1, 1.0, 1e3):
        scale = float(np.float32(scale))
        for zp_in, zp_out in zps:
            model = quantize_model(q.shape, dout, scale, zp_out, in_dtype=din, in_scale=scale,
                                   in_zero_point=zp_in)
            theirs = run_litert(litert, model, [q], "reference")
            ours = requantize(q, scale, zp_in, scale, zp_out, dout)
            assert_bitexact(ours, theirs, q, f"XOR path {zp_in}->{zp_out} scale={scale!r} vs LiteRT BUILTIN_REF")
            general = np.clip(q.astype(np.int64) - zp_in + zp_out, *qrange(dout)).astype(dout)
            np.testing.assert_array_equal(ours, general)


def test_requantize_shift_32_and_above_matches_litert_builtin_ref(litert):
    """A requantize multiplier >= 2^31 (shift >= 32) makes ``1 << left_shift`` undefined in C++;
    on x86 LiteRT BUILTIN_REF shifts by ``shift mod 32``: M = 2^31 halves the input and M = 2^32
    copies it (measured), and quantcore does the same."""
    q = np.arange(-128, 128, dtype=np.int8)
    expected = {31: np.clip(np.floor(q / 2 + 0.5), -32768, 32767),   # SRDHM(x, 2^30): ties up
                32: q.astype(np.float64), 33: 2.0 * q}
    for k, want in expected.items():
        s_out = float(np.float32(2.0**-k))
        theirs = run_litert(litert, quantize_model(q.shape, np.int16, s_out, 0, in_dtype=np.int8,
                                                   in_scale=1.0, in_zero_point=0), [q], "reference")
        np.testing.assert_array_equal(theirs, want.astype(np.int16), err_msg=f"LiteRT BUILTIN_REF, M = 2^{k}")
        assert_bitexact(requantize(q, 1.0, 0, s_out, 0, np.int16), theirs, q,
                        f"requantize M = 2^{k} vs LiteRT BUILTIN_REF")


def test_requantize_srdhm_ties_up_matches_litert_builtin_ref(litert):
    """M = 1/2 encodes as (M0 = 2^30, shift 0): requantize is SRDHM alone, whose ties go toward
    +inf (eq. 7): -5 -> -2 and 5 -> 3 on LiteRT BUILTIN_REF, not -3 as ties-away would give."""
    q = np.int8([-5, -3, -1, 1, 3, 5, -128, 127])
    theirs = run_litert(litert, quantize_model(q.shape, np.int8, 1.0, 0, in_dtype=np.int8, in_scale=0.5,
                                               in_zero_point=0), [q], "reference")
    np.testing.assert_array_equal(theirs, np.int8([-2, -1, 0, 1, 2, 3, -64, 64]))
    assert_bitexact(requantize(q, 0.5, 0, 1.0, 0, np.int8), theirs, q, "requantize M = 1/2 vs LiteRT BUILTIN_REF")


def test_requantize_int16_to_int16_needs_zero_points_0_like_litert_builtin_ref(litert):
    """LiteRT BUILTIN_REF refuses int16 -> int16 QUANTIZE with a nonzero zero point (quantize.cc
    Prepare); quantcore raises InputError."""
    q = np.array([1, 2, 3], np.int16)
    for zp_in, zp_out in [(3, 0), (0, -2)]:
        r = litert.run(quantize_model(q.shape, np.int16, 0.5, zp_out, in_dtype=np.int16, in_scale=1.0,
                                      in_zero_point=zp_in), [q], "reference")
        assert not r.ok and "zero_point" in r.error
        with pytest.raises(InputError):
            requantize(q, 1.0, zp_in, 0.5, zp_out, np.int16)


# ---------------------------------------------------------------------------
# fused activation range refusal (kernel_util.cc Quantize)
# ---------------------------------------------------------------------------
def test_activation_range_overflow_refused_like_litert_builtin_ref(litert):
    """A RELU6 bound whose f32(6 / s_out) rounds beyond 2^31 makes LiteRT BUILTIN_REF refuse a
    FULLY_CONNECTED at Prepare (no_integer_overflow_from_quantization); quantcore's
    activation_range raises InputError for exactly the same output scales (2^31 itself passes)."""
    for s_out in (1e-10, 6 / 2.0**31 * 0.99, 6 / 2.0**31, 6 / 2.0**31 * 1.01, 1e-3):
        s_out = float(np.float32(s_out))
        b = ModelBuilder()
        x = b.add_input("x", [1, 4], np.int8, scale=0.1, zero_point=0)
        w = b.add_constant("w", np.ones((2, 4), np.int8), scale=0.1, zero_point=0)
        y = b.add_tensor("y", [1, 2], np.int8, scale=s_out, zero_point=0)
        b.add_operator("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="RELU6")
        b.mark_outputs(y)
        r = litert.run(b.to_bytes(), [np.int8([[1, 2, 3, 4]])], "reference")
        assert not r.aborted, r.error
        litert_refuses = not r.ok and "no_integer_overflow_from_quantization" in r.error
        try:
            activation_range(3, s_out, 0, -128, 127)
            ours_refuses = False
        except InputError:
            ours_refuses = True
        assert ours_refuses == litert_refuses, f"s_out={s_out!r}: LiteRT {r.error or 'ran'}"
