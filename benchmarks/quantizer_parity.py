"""quantcore's quantizer against the TensorFlow converter, on the committed fixtures.

For each fixture model and int8 mode: quantize the float32 conversion with the same
calibration samples the converter was given, then report

* tensors: how many quantized tensors have a scale within 1e-5 (relative) of the
  converter's and an equal zero point;
* output SQNR (dB) against the float model, of quantcore's model and of the
  converter's, both run in quantcore's runtime (bit-exact with LiteRT
  BUILTIN_REF) on held-out samples drawn from the calibration distribution
  (the calibration samples shuffled with a fixed seed and perturbed slightly).

Usage: ``python benchmarks/quantizer_parity.py [--markdown]``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from quantcore import quantize
from quantcore.runtime import Interpreter
from quantcore.schema import read_model

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"
MODES = {"int8": {}, "int8_pertensor": dict(per_channel=False), "int16x8": dict(mode="int16x8")}


def _outputs(model: bytes, xs: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for x in xs:
        it.set_tensor(d_in["index"], x[None].astype(np.float32))
        it.invoke()
        out.append(it.get_tensor(d_out["index"]).astype(np.float64))
    return np.stack(out)


def sqnr(ref: np.ndarray, test: np.ndarray) -> float:
    err = float(np.sum((ref - test) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(ref ** 2)) / err)


def tensor_agreement(ours: bytes, theirs: bytes) -> tuple[int, int]:
    o, t = read_model(ours), read_model(theirs)
    by_name = {x.name: x for x in o.subgraphs[0].tensors}
    same = total = 0
    for x in t.subgraphs[0].tensors:
        tq = x.qparams()
        if tq is None or x.name not in by_name:
            continue
        total += 1
        oq = by_name[x.name].qparams()
        if oq is not None and len(oq[0]) == len(tq[0]) and np.allclose(oq[0], tq[0], rtol=1e-5, atol=0) \
                and np.array_equal(oq[1], tq[1]):
            same += 1
    return same, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    for f in sorted(FIXTURES.glob("*_float32.tflite")):
        name = f.name[: -len("_float32.tflite")]
        calib_path = FIXTURES / f"{name}_calib.npy"
        if not calib_path.exists():
            continue
        calib = np.load(calib_path)
        rng = np.random.default_rng(0)
        held_out = calib[rng.permutation(len(calib))] * np.float32(0.98) + np.float32(0.01)
        float_out = _outputs(f.read_bytes(), held_out)
        for mode, kwargs in MODES.items():
            conv = FIXTURES / f"{name}_{mode}.tflite"
            if not conv.exists():
                continue
            ours = quantize(f, representative_dataset=lambda: ([x[None]] for x in calib), **kwargs)
            theirs = conv.read_bytes()
            same, total = tensor_agreement(ours, theirs)
            rows.append((name, mode, same, total, sqnr(float_out, _outputs(ours, held_out)),
                         sqnr(float_out, _outputs(theirs, held_out))))
    if args.markdown:
        print("| model | mode | tensors equal (scale 1e-5, zero point) | SQNR quantcore (dB) | SQNR converter (dB) |")
        print("|---|---|---|---|---|")
        for name, mode, same, total, s_o, s_t in rows:
            print(f"| {name} | {mode} | {same}/{total} | {s_o:.2f} | {s_t:.2f} |")
    else:
        for name, mode, same, total, s_o, s_t in rows:
            print(f"{name:20s} {mode:15s} tensors {same:3d}/{total:<3d}  SQNR ours {s_o:6.2f} dB  "
                  f"converter {s_t:6.2f} dB")


if __name__ == "__main__":
    main()
