"""DEQUANTIZE int8/uint8 per tensor through the 256-entry code table of
runtime/ops/dequantize.py, against LiteRT BUILTIN_REF (``reference_ops::Dequantize``:
``f = float(double(s) * (q - zp))``) on every code, including scales whose products
overflow float32 or come close to the subnormal range."""
from __future__ import annotations

import numpy as np
import pytest

from harness import run_ours
from quantcore.schema.builder import ModelBuilder


def _model(dtype, scale, zp) -> bytes:
    b = ModelBuilder()
    x = b.add_input("x", [2, 256], dtype, scale=scale, zero_point=zp)
    y = b.add_tensor("y", [2, 256], np.float32)
    b.add_operator("DEQUANTIZE", [x], [y])
    b.mark_outputs(y)
    return b.to_bytes()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("scale", [0.0078125, 0.1234567, 3.3e-7, 1.7e36, 2.9e-38])
def test_dequantize_8bit_every_code_vs_litert_ref(oracle, dtype, scale):
    info = np.iinfo(dtype)
    zp = int(info.min) + 77
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    x = np.stack([codes, codes[::-1]])
    model = _model(dtype, scale, zp)
    theirs = oracle.run(model, [x], "reference")
    assert theirs.ok, theirs.error
    it = run_ours(model, [x])
    ours = it.get_tensor(it.get_output_details()[0]["index"])
    assert ours.dtype == np.float32
    # bit for bit (also +-inf and the smallest subnormal-adjacent values)
    np.testing.assert_array_equal(ours.view(np.uint32), np.asarray(theirs.outputs[0], np.float32).view(np.uint32))
