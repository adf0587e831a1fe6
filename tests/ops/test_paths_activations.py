"""Activations against LiteRT's "optimized" and "xnnpack" paths.

* LOGISTIC / TANH (int8, uint8) and ELU (int8): XNNPACK builds its own 256-entry
  table (ties to even after adding the zero point in float32); LiteRT's table is the
  same on its reference and optimized paths. int16 LOGISTIC/TANH with a power-of-two
  input scale: LiteRT's optimized kernel is gemmlowp fixed point (every int16 code
  checked).
* LEAKY_RELU: XNNPACK's 8-bit fixed-point multipliers.
* SOFTMAX / LOG_SOFTMAX (8-bit): LiteRT's optimized float lookup table, including input
  scales on which the reference kernel aborts.
* HARD_SWISH, RELU family, EXP/ABS/NEG/SQRT/RSQRT: the same arithmetic on every path.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _paths_cases import check_paths, differs, ints, log_scale, ours, unary_model, zero_point
from harness import examples

lut_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["LOGISTIC", "TANH", "ELU"]), dtype=st.sampled_from([np.int8, np.uint8]),
    pot_in=st.booleans(), free_out=st.booleans(), n=st.integers(1, 70), seed=st.integers(0, 2**31)))


@examples(60)
@given(lut_cases)
def test_lut_activations_8bit_vs_litert_optimized_xnnpack(oracle, c):
    """Every input code once (plus random codes): the whole table is compared."""
    rng = np.random.default_rng(c["seed"])
    op, dtype = c["op"], c["dtype"]
    if op == "ELU":
        dtype = np.int8
    si = float(2.0 ** rng.integers(-8, 0)) if c["pot_in"] else log_scale(rng, 1e-3, 0.5)
    zi = zero_point(rng, dtype)
    off = 128 if dtype is np.uint8 else 0
    if op == "LOGISTIC":
        qo = (1 / 256, -128 + off)
    elif op == "TANH":
        qo = (1 / 128, off)
    else:
        qo = (log_scale(rng, 1e-3, 0.1), zero_point(rng, dtype))
    lo, hi = (-128, 127) if dtype is np.int8 else (0, 255)
    x = np.concatenate([np.arange(lo, hi + 1), rng.integers(lo, hi + 1, c["n"])]).astype(dtype)
    check_paths(oracle, unary_model(op, dtype, [x.size], (si, zi), qo), [x])


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("zi", [-128, -5, 0, 77, 127])
def test_xnnpack_table_differs_from_litert_table_vs_litert_xnnpack(oracle, op, zi):
    """Input scale 2^-8, output zero point -103: tanh/logistic of the smallest inputs
    scaled to the output is just below a half, and XNNPACK adds the zero point in
    float32 before rounding (-102.50000x becomes -102.5, then ties to even), so its table
    differs from LiteRT's (which rounds first) in at least one entry, for every input
    zero point."""
    x = np.arange(-128, 128).astype(np.int8)
    qo = (1 / 256, -103) if op == "LOGISTIC" else (1 / 128, -103)
    model = unary_model(op, np.int8, [256], (2.0**-8, zi), qo)
    assert differs(model, [x], "reference", "xnnpack")
    check_paths(oracle, model, [x])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_logistic_other_output_scale_runs_only_on_xnnpack(oracle, dtype):
    """LiteRT's LOGISTIC refuses an output scale other than 1/256 on its reference and
    optimized paths; delegated to XNNPACK the same model runs. quantcore does the same."""
    from quantcore.errors import ModelFormatError

    lo, hi = (-128, 127) if dtype is np.int8 else (0, 255)
    x = np.arange(lo, hi + 1).astype(dtype)
    model = unary_model("LOGISTIC", dtype, [x.size], (0.05, 3), (1 / 128, lo))
    for path in ("reference", "optimized"):
        assert not oracle.run(model, [x], path).ok
        with pytest.raises(ModelFormatError):
            ours(model, [x], path)
    check_paths(oracle, model, [x], ("xnnpack",))


def test_elu_xnnpack_table_differs_from_litert_table(oracle):
    """ELU int8: XNNPACK's table (expm1f, ties to even after + zp) differs from LiteRT's in
    some entries; both paths match LiteRT."""
    rng = np.random.default_rng(7)
    x = np.arange(-128, 128).astype(np.int8)
    hits = 0
    for _ in range(15):
        si = float(2.0 ** rng.integers(-8, 0))
        model = unary_model("ELU", np.int8, [256], (si, zero_point(rng, np.int8)),
                            (si * float(2.0 ** rng.integers(-2, 3)), zero_point(rng, np.int8)))
        check_paths(oracle, model, [x])
        hits += differs(model, [x], "optimized", "xnnpack")
    assert hits > 0


@pytest.mark.parametrize("op,scale", [("TANH", 2.0**-12), ("TANH", 2.0**-11), ("LOGISTIC", 2.0**-12),
                                      ("TANH", 2.0**-13), ("LOGISTIC", 2.0**-11), ("TANH", 1e-4)])
def test_int16_tanh_logistic_every_code_vs_litert_optimized_xnnpack(oracle, op, scale):
    """All 65536 int16 codes. Power-of-two scales 2^-12 (and 2^-11 for TANH) take
    gemmlowp's fixed-point tanh/logistic on the optimized path (up to 10 LSB from the
    reference table); other scales use the reference table on every path."""
    x = np.arange(-32768, 32768).astype(np.int16)
    model = unary_model(op, np.int16, [x.size], (scale, 0), (2.0**-15, 0))
    gemmlowp = (op, scale) in (("TANH", 2.0**-12), ("TANH", 2.0**-11), ("LOGISTIC", 2.0**-12))
    assert differs(model, [x]) == gemmlowp
    check_paths(oracle, model, [x])


leaky_cases = st.fixed_dictionaries(dict(
    dtype=st.sampled_from([np.int8, np.uint8, np.int16]), ratio=st.sampled_from(["pot", "free", "wide"]),
    alpha=st.sampled_from([0.01, 0.1, 0.2, 0.25, 0.3, 0.5, -0.5, 1.5]), seed=st.integers(0, 2**31)))


@examples(50)
@given(leaky_cases)
def test_leaky_relu_vs_litert_optimized_xnnpack(oracle, c):
    """XNNPACK: m = lrintf(256 * ratio), ((d * m + 128) >> 8); ratios outside [1/256, 128]
    or |ratio * alpha| < 1/256 are not delegated (LiteRT's kernel runs)."""
    rng = np.random.default_rng(c["seed"])
    dtype = c["dtype"]
    si = log_scale(rng, 1e-3, 0.5)
    so = {"pot": si * float(2.0 ** rng.integers(-3, 3)), "free": log_scale(rng, 1e-3, 0.5),
          "wide": si * float(rng.choice([1e-3, 300.0]))}[c["ratio"]]
    model = unary_model("LEAKY_RELU", dtype, [3, 40], (si, zero_point(rng, dtype)),
                        (so, zero_point(rng, dtype)), alpha=c["alpha"])
    lo, hi = (-32768, 32767) if dtype is np.int16 else ((-128, 127) if dtype is np.int8 else (0, 255))
    x = np.concatenate([np.arange(lo, hi + 1)[: 120], rng.integers(lo, hi + 1, 0)]).astype(dtype)
    x = rng.integers(lo, hi + 1, (3, 40)).astype(dtype) if dtype is np.int16 else \
        np.resize(np.arange(lo, hi + 1), (3, 40)).astype(dtype)
    check_paths(oracle, model, [x])


softmax_cases = st.fixed_dictionaries(dict(
    op=st.sampled_from(["SOFTMAX", "LOG_SOFTMAX"]), dtype=st.sampled_from([np.int8, np.uint8]),
    out16=st.booleans(), tiny=st.booleans(), rows=st.integers(1, 3), depth=st.integers(1, 40),
    beta=st.sampled_from([1.0, 0.5, 2.0, 0.77]), seed=st.integers(0, 2**31)))


@examples(80)
@given(softmax_cases)
def test_softmax_log_softmax_8bit_vs_litert_optimized_xnnpack(oracle, c):
    """LiteRT's optimized float table: expf(f32(-s*beta) * v), summed in order in float32;
    SOFTMAX rounds half away (int8/int16 out) or adds 0.5f and truncates without the zero
    point (uint8 out); LOG_SOFTMAX rounds to even. ``tiny`` input scales make the
    reference kernel abort; the optimized path still runs."""
    rng = np.random.default_rng(c["seed"])
    op, dtype = c["op"], c["dtype"]
    si = log_scale(rng, 1e-9, 1e-6) if c["tiny"] else log_scale(rng, 1e-3, 1.0)
    opts = {}
    out_dtype = dtype
    if op == "SOFTMAX":
        opts["beta"] = c["beta"]
        if c["out16"]:
            out_dtype, qo = np.int16, (1 / 32768, 0)
        elif dtype is np.int8:
            qo = (1 / 256, -128)
        else:
            qo = (log_scale(rng, 1 / 300, 1 / 200), int(rng.integers(0, 10)))
    else:
        qo = (16 / 256, 127 if dtype is np.int8 else 255)
    shape = [c["rows"], c["depth"]]
    model = unary_model(op, dtype, shape, (si, zero_point(rng, dtype)), qo, out_dtype=out_dtype, **opts)
    check_paths(oracle, model, [ints(rng, shape, dtype)])


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
def test_softmax_optimized_runs_where_reference_aborts(oracle, op):
    """An input scale so small that beta * s_in * 2^26 <= 1: LiteRT's reference kernel
    aborts the process (quantcore raises NumericsPathError), the optimized float table
    runs. (On ordinary scales the table and the reference fixed point agreed on every
    element of 400 random rows: both are accurate to far below half an output step.)"""
    from quantcore.errors import NumericsPathError

    rng = np.random.default_rng(0)
    qo = (1 / 256, -128) if op == "SOFTMAX" else (16 / 256, 127)
    model = unary_model(op, np.int8, [3, 17], (1e-9, 0), qo, **({"beta": 1.0} if op == "SOFTMAX" else {}))
    x = ints(rng, [3, 17], np.int8)
    assert oracle.run(model, [x], "reference").aborted
    with pytest.raises(NumericsPathError):
        ours(model, [x], "reference")
    check_paths(oracle, model, [x])


@pytest.mark.parametrize("op", ["HARD_SWISH", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_activations_identical_on_every_path_vs_litert(oracle, op, dtype):
    """One kernel computes these on every x86 path (HARD_SWISH's NEON body needs
    __ARM_NEON); XNNPACK takes only their float versions. Sizes 1..70 cover any block."""
    rng = np.random.default_rng(13)
    for n in (1, 7, 8, 16, 31, 32, 33, 70):
        si = log_scale(rng, 1e-3, 0.5)
        model = unary_model(op, dtype, [n], (si, zero_point(rng, dtype)),
                            (log_scale(rng, si / 4, si * 4), zero_point(rng, dtype)))
        lo, hi = (-128, 127) if dtype is np.int8 else (0, 255)
        check_paths(oracle, model, [rng.integers(lo, hi + 1, n).astype(dtype)])


@pytest.mark.parametrize("op", ["EXP", "ABS", "NEG", "SQRT", "RSQRT"])
def test_unary_int8_identical_on_every_path_vs_litert(oracle, op):
    rng = np.random.default_rng(17)
    x = np.arange(-128, 128).astype(np.int8)
    si = 0.05 if op not in ("SQRT", "RSQRT") else 0.1
    zi = 0 if op in ("ABS", "NEG") else (-128 if op in ("SQRT", "RSQRT") else 10)
    qo = {"EXP": (0.3, -128), "ABS": (0.05, 0), "NEG": (0.05, 0), "SQRT": (0.03, -128),
          "RSQRT": (0.05, -128)}[op]
    if op == "RSQRT":
        x = np.arange(-127, 128).astype(np.int8)
    check_paths(oracle, unary_model(op, np.int8, [x.size], (si, zi), qo), [x])
    del rng
