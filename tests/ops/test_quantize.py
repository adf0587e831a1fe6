"""QUANTIZE float32 -> int8/uint8/int16 per tensor: the few-pass kernel of
runtime/ops/quantize.py (``quantize_float_per_tensor``) against LiteRT BUILTIN_REF
(``reference_ops::AffineQuantize``: ``clamp(int32(roundf(f32(x / s))) + zp)``), on
rounding ties, values one ulp from a tie, saturating values, and the inputs that need
the general formula (NaN, +-inf, |x / s| >= 2^30, where x86's int32 conversion gives
INT32_MIN and ``+ zp`` wraps)."""
from __future__ import annotations

import numpy as np
import pytest

from harness import assert_matches_litert
from quantcore.runtime.ops.quantize import quantize_float_per_tensor
from quantcore.schema.builder import ModelBuilder

CASES = [(np.int8, -128, 127), (np.uint8, 0, 255), (np.int16, -32768, 32767)]


def _model(shape, dtype, scale, zp) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", shape, np.float32)
    y = b.add_tensor("y", shape, dtype, scale=scale, zero_point=zp)
    b.add_operator("QUANTIZE", [x], [y])
    b.mark_outputs(y)
    return b.to_bytes()


def _tricky_values(rng, n, scale) -> np.ndarray:
    """Ties (k + 0.5) s, one float32 ulp either side of them, and values of every size."""
    s = np.float32(scale)
    k = rng.integers(-400, 400, n).astype(np.float32)
    ties = ((k + np.float32(0.5)) * s).astype(np.float32)
    kind = rng.integers(0, 5, n)
    wide = (rng.normal(0, 1, n) * 10.0 ** rng.uniform(-3, 3, n) * scale).astype(np.float32)
    x = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                  [ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)),
                   (np.nextafter(np.float32(0.5), np.float32(0)) * s * np.sign(k)).astype(np.float32)],
                  wide).astype(np.float32)
    return x


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
@pytest.mark.parametrize("scale,zp_pick", [(0.0078125, "low"), (0.02, "high"), (0.37, "mid"),
                                           (3e-5, "low"), (1.7, "high")])
def test_quantize_per_tensor_ties_vs_litert_ref(oracle, dtype, qmin, qmax, scale, zp_pick):
    zp = {"low": qmin + 3, "high": qmax - 5, "mid": (qmin + qmax) // 2}[zp_pick]
    if dtype == np.int16:
        zp = 0 if zp_pick == "mid" else (7 if zp_pick == "low" else -9)
    rng = np.random.default_rng(abs(zp) + int(scale * 1000))
    shape = [3, 37, 5]
    x = _tricky_values(rng, int(np.prod(shape)), scale).reshape(shape)
    assert quantize_float_per_tensor(x, scale, zp, qmin, qmax, dtype) is not None   # fast path taken
    assert_matches_litert(oracle, _model(shape, dtype, scale, zp), [x])


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
@pytest.mark.parametrize("zp_sign", [-1, 1])
def test_quantize_nonfinite_and_huge_fall_back_vs_litert_ref(oracle, dtype, qmin, qmax, zp_sign):
    """NaN, +-inf and |x / s| >= 2^30 take the general formula; with a negative zero
    point x86's INT32_MIN + zp wraps to a large positive value (qmax), with a positive
    one it stays at qmin (uint8 zero points are >= 0)."""
    scale = 0.05
    zp = (5 if zp_sign > 0 else -5) if dtype != np.uint8 else (5 if zp_sign > 0 else 0)
    base = np.linspace(-20, 20, 40).astype(np.float32)
    for special in (np.nan, np.inf, -np.inf, np.float32(2.0**30) * np.float32(scale),
                    np.float32(-3e9) * np.float32(scale), np.float32(2.0**29) * np.float32(scale)):
        x = base.copy()
        x[7] = special
        fast = quantize_float_per_tensor(x, scale, zp, qmin, qmax, dtype)
        if not np.isfinite(special) or abs(float(special) / scale) >= 2.0**30:
            assert fast is None
        assert_matches_litert(oracle, _model([40], dtype, scale, zp), [x])


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
def test_quantize_scalar_input_vs_litert_ref(oracle, dtype, qmin, qmax):
    """A 0-d float input (found by the fuzzer: the fast path's in-place clip needs an
    array, not a NumPy scalar)."""
    zp = 0 if dtype == np.int16 else qmin + 7
    for value in (1.26, -0.35, 1e6):
        x = np.array(value, np.float32)
        assert quantize_float_per_tensor(x, 0.1, zp, qmin, qmax, dtype).shape == ()
        assert_matches_litert(oracle, _model([], dtype, 0.1, zp), [x])


def test_requantize_to_per_channel_output_is_refused_with_the_reason():
    """int8 -> int8 QUANTIZE into a per-channel tensor: LiteRT divides by the legacy
    per-tensor scale, which is 0 for per-channel tensors (undefined behaviour);
    quantcore refuses it with the reason (a documented refusal of the fuzzer's
    differential acceptance test, tests/test_fuzz_runtime.py KEEP_REFUSING)."""
    from quantcore.errors import ModelFormatError
    from quantcore.runtime import Interpreter

    b = ModelBuilder()
    x = b.add_input("x", [1, 2], np.int8, scale=0.1, zero_point=0)
    y = b.add_tensor("y", [1, 2], np.int8, scale=[0.1, 0.2], zero_point=[0, 0], quantized_dimension=1)
    b.add_operator("QUANTIZE", [x], [y])
    b.mark_outputs(y)
    it = Interpreter(model_content=b.to_bytes())
    with pytest.raises(ModelFormatError, match="LiteRT would divide by the output's legacy per-tensor scale"):
        it.allocate_tensors()
