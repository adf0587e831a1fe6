"""quantcore's quantizer against the TensorFlow converter, on the same data.

For every committed fixture model, the float32 conversion is quantized by quantcore
with the same representative samples the converter was given
(``<model>_calib.npy``), in the mode of each committed converter output, and the
two models are compared tensor by tensor (matched by name): same type, scales
equal within 1e-5 relative, zero points equal, quantized constants equal, and the
same operator sequence and versions. Both models then run in LiteRT BUILTIN_REF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantcore import quantize
from quantcore.schema import read_model

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MODES = {
    "int8": {},
    "int8_io": dict(inference_input_type=np.int8, inference_output_type=np.int8),
    "uint8_io": dict(inference_input_type=np.uint8, inference_output_type=np.uint8),
    "int8_pertensor": dict(per_channel=False),
    "int16x8": dict(mode="int16x8"),
    "dynamic": dict(mode="dynamic"),
    "float16": dict(mode="float16"),
}
CASES = sorted((p.name[: -len("_float32.tflite")], mode)
               for p in FIXTURES.glob("*_float32.tflite") for mode in MODES
               if (FIXTURES / f"{p.name[: -len('_float32.tflite')]}_{mode}.tflite").exists())


def _ours(name: str, mode: str) -> bytes:
    calib = np.load(FIXTURES / f"{name}_calib.npy")
    kwargs = MODES[mode]
    data = None if kwargs.get("mode") in ("dynamic", "float16") else (lambda: ([x[None]] for x in calib))
    return quantize(FIXTURES / f"{name}_float32.tflite", representative_dataset=data, **kwargs)


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_quantizer_matches_tensorflow_converter(name, mode):
    ours = read_model(_ours(name, mode))
    theirs = read_model(FIXTURES / f"{name}_{mode}.tflite")
    osg, tsg = ours.subgraphs[0], theirs.subgraphs[0]
    assert [ours.op_name(o) for o in osg.operators] == [theirs.op_name(o) for o in tsg.operators]
    assert [ours.operator_codes[o.opcode_index].version for o in osg.operators] == \
        [theirs.operator_codes[o.opcode_index].version for o in tsg.operators]
    by_name = {t.name: (i, t) for i, t in enumerate(osg.tensors)}
    problems = []
    for ti, t in enumerate(tsg.tensors):
        if t.name not in by_name:
            problems.append(f"{t.name!r}: missing in quantcore's model")
            continue
        oi, o = by_name[t.name]
        if t.name.startswith("arith.constant") and t.qparams() is None and o.qparams() is None:
            continue  # the converter renumbers its unquantized shape constants freely
        if o.type != t.type:
            problems.append(f"{t.name!r}: type {o.type_name} != {t.type_name}")
            continue
        tq, oq = t.qparams(), o.qparams()
        if (tq is None) != (oq is None):
            problems.append(f"{t.name!r}: quantized in only one model")
        elif tq is not None:
            if len(tq[0]) != len(oq[0]) or not np.allclose(oq[0], tq[0], rtol=1e-5, atol=0):
                problems.append(f"{t.name!r}: scales {oq[0][:3]} != {tq[0][:3]}")
            if not np.array_equal(oq[1], tq[1]):
                problems.append(f"{t.name!r}: zero points {oq[1][:3]} != {tq[1][:3]}")
        td, od = theirs.tensor_data(0, ti), ours.tensor_data(0, oi)
        if (td is None) != (od is None):
            problems.append(f"{t.name!r}: constant in only one model")
        elif td is not None and not np.array_equal(td, od):
            # Scales a few float32 ulps away (calibration ranges from float kernels that
            # sum in another order) move large bias values by what that relative change
            # explains, plus one for rounding; anything else is a bug.
            same_scales = tq is not None and np.array_equal(oq[0], tq[0])
            explained = False
            if not same_scales and tq is not None and td.dtype.kind in "iu":
                rel = float(np.max(np.abs(oq[0].astype(np.float64) / tq[0] - 1)))
                allowed = np.ceil(np.abs(td.astype(np.float64)) * rel) + 1
                explained = bool(np.all(np.abs(td.astype(np.int64) - od.astype(np.int64)) <= allowed))
            if not explained:
                diff = np.count_nonzero(td != od)
                problems.append(f"{t.name!r}: {diff} of {td.size} constant values differ")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted({n for n, _ in CASES}))
def test_quantized_fixture_runs_bit_exact_in_litert(oracle, name):
    """The int8 result of quantcore's quantizer, LiteRT BUILTIN_REF vs quantcore."""
    from harness import assert_matches_litert
    q = _ours(name, "int8")
    calib = np.load(FIXTURES / f"{name}_calib.npy")
    theirs = oracle.run(q, [calib[:1]], "reference")
    if theirs.aborted:
        pytest.skip(f"LiteRT BUILTIN_REF aborts on this model: {theirs.error}")
    assert_matches_litert(oracle, q, [calib[:1]], "reference")
