#!/usr/bin/env python3
"""TensorFlow-made fixtures for QAT, FakeQuant and sparse (pruned) models.

Run with a Python that has TensorFlow (2.21 was used) and tf_keras::

    /path/to/venv-tf/bin/python scripts/make_fixtures_qat.py [--out tests/fixtures/qat]

Outputs (small, committed under ``tests/fixtures/qat/``):

* ``fake_quant.npz``: inputs, ranges and TensorFlow's outputs of
  ``tf.quantization.fake_quant_with_min_max_vars`` (keys ``pt_*``, one row per case)
  and ``fake_quant_with_min_max_vars_per_channel`` (keys ``pc<i>_*``): random and
  constructed half-way inputs, NaN/inf/signed zeros, 2..16 bits, narrow range,
  ``min == max`` (zero and non-zero), ``min > max``, tiny and huge ranges.
* ``qat_float.tflite``: a graph with FakeQuant ops (conv with per-channel weights,
  two branches concatenated, pooling, a dense layer with per-tensor weights),
  converted without optimizations: float operators with uint8
  QUANTIZE/DEQUANTIZE pairs that carry the ranges.
* ``qat_int8.tflite``: the same graph converted with ``Optimize.DEFAULT`` (int8,
  float I/O): the reference for the scales and zero points quantcore derives from
  ``qat_float.tflite`` without data.
* ``sparse_float.tflite`` / ``sparse_int8.tflite``: a small Keras CNN, trained,
  magnitude-pruned (random 70% in the convolutions and the last dense layer, 1x4
  blocks in the first dense layer) and fine-tuned with the masks, converted with
  ``Optimize.EXPERIMENTAL_SPARSITY`` (and ``DEFAULT`` with a representative
  dataset for int8): sparse constants with DENSIFY, and in float a 1x4
  block-sparse weight read by FULLY_CONNECTED directly.
* ``qat_calib.npy``, ``sparse_calib.npy``: input samples; ``manifest.json``.

Deterministic: fixed seeds, op determinism, one thread, oneDNN off.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "qat"
SEED = 4321
F32 = np.float32


def _tf():
    import tensorflow as tf
    import tf_keras as keras
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    return tf, keras


# ---------------------------------------------------------------------------
# fake_quant.npz
# ---------------------------------------------------------------------------
L = 48


def _nudge32(mn, mx, qmin, qmax):
    """Only to place constructed inputs on and between grid points."""
    with np.errstate(all="ignore"):
        s = F32(F32(mx - mn) / F32(qmax - qmin))
        zpf = F32(F32(qmin) - F32(mn / s))
        zp = qmin if not zpf >= qmin else qmax if zpf > qmax else float(np.floor(zpf + 0.5))
        return F32(F32(qmin - zp) * s), s


def _range(rng, kind):
    a = float(np.exp(rng.uniform(-9, 5)))
    if kind == "straddle":
        return -a * rng.uniform(0, 1), a * rng.uniform(0.05, 1)
    if kind == "positive":
        return a * rng.uniform(0, 1), a
    if kind == "negative":
        return -a, -a * rng.uniform(0, 1)
    if kind == "zero":
        return (0.0, 0.0) if rng.integers(0, 2) else (-0.0, 0.0)
    if kind == "equal":
        v = float(rng.choice([-1, 1])) * a
        return v, v
    if kind == "inverted":
        return a * rng.uniform(0.1, 1), -a * rng.uniform(0, 1)
    if kind == "tiny":
        t = float(np.exp(rng.uniform(-100, -85)))
        return -t * rng.uniform(0, 1), t
    if kind == "huge":
        h = float(np.exp(rng.uniform(60, 85)))
        return -h * rng.uniform(0, 1), h
    if kind == "zero_min":
        return 0.0, a
    raise ValueError(kind)


KINDS = ["straddle"] * 8 + ["positive", "negative", "zero", "equal", "inverted", "tiny", "huge",
                             "zero_min"]


def _inputs(rng, mn, mx, bits, narrow, n):
    qmin, qmax = (1 if narrow else 0), (1 << bits) - 1
    nmin, s = _nudge32(F32(mn), F32(mx), qmin, qmax)
    span = max(abs(mn), abs(mx), 1e-30)
    x = (rng.standard_normal(n) * span * 1.2).astype(F32)
    k = rng.integers(0, qmax - qmin + 1, n)
    with np.errstate(all="ignore"):
        grid = (nmin + (k * s)).astype(F32)
        half = (nmin + ((k + 0.5) * s)).astype(F32)
    pick = rng.integers(0, 4, n)
    x = np.where(pick == 1, grid, np.where(pick == 2, half, x)).astype(F32)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, mn, mx], F32)
    x[: len(special)] = special
    return x


def make_fake_quant(tf, out: Path) -> dict:
    rng = np.random.default_rng(SEED)
    rows = {"x": [], "min": [], "max": [], "bits": [], "narrow": [], "y": []}
    for i in range(400):
        kind = KINDS[i % len(KINDS)]
        bits = int(rng.choice([2, 3, 4, 5, 7, 8, 8, 8, 8, 10, 12, 15, 16, 16]))
        narrow = bool(rng.integers(0, 2))
        mn, mx = (F32(v) for v in _range(rng, kind))
        x = _inputs(rng, float(mn), float(mx), bits, narrow, L)
        y = tf.quantization.fake_quant_with_min_max_vars(
            tf.constant(x), tf.constant(mn), tf.constant(mx), num_bits=bits,
            narrow_range=narrow).numpy()
        for key, v in (("x", x), ("min", mn), ("max", mx), ("bits", bits), ("narrow", narrow), ("y", y)):
            rows[key].append(v)
    arrays = {"pt_x": np.stack(rows["x"]), "pt_min": np.array(rows["min"], F32),
              "pt_max": np.array(rows["max"], F32), "pt_bits": np.array(rows["bits"], np.int32),
              "pt_narrow": np.array(rows["narrow"], bool), "pt_y": np.stack(rows["y"])}
    shapes = [(5,), (3, 7), (2, 3, 3, 4), (1, 2, 2, 16), (6, 1), (4, 9)]
    n_pc = 0
    for i in range(48):
        shape = shapes[i % len(shapes)]
        d = shape[-1]
        bits = int(rng.choice([2, 4, 8, 8, 8, 12, 16]))
        narrow = bool(rng.integers(0, 2))
        kinds = [KINDS[int(j)] for j in rng.integers(0, len(KINDS), d)]
        mins, maxs = zip(*(_range(rng, k) for k in kinds))
        mins, maxs = np.array(mins, F32), np.array(maxs, F32)
        cols = [_inputs(rng, float(mins[c]), float(maxs[c]), bits, narrow,
                        int(np.prod(shape[:-1])) + 7)[7:] for c in range(d)]
        x = np.stack(cols, axis=-1).reshape(shape).astype(F32)
        y = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            tf.constant(x), tf.constant(mins), tf.constant(maxs), num_bits=bits,
            narrow_range=narrow).numpy()
        for key, v in (("x", x), ("min", mins), ("max", maxs), ("bits", np.int32(bits)),
                       ("narrow", np.bool_(narrow)), ("y", y)):
            arrays[f"pc{i}_{key}"] = v
        n_pc += 1
    np.savez_compressed(out / "fake_quant.npz", **arrays)
    return {"file": "fake_quant.npz", "per_tensor_cases": len(rows["x"]), "elements_per_case": L,
            "per_channel_cases": n_pc,
            "description": "tf.quantization.fake_quant_with_min_max_vars / _per_channel outputs"}


# ---------------------------------------------------------------------------
# QAT graph: FakeQuant ops around float ops
# ---------------------------------------------------------------------------
def make_qat(tf, out: Path) -> list[dict]:
    rng = np.random.default_rng(SEED + 1)
    k1 = (rng.standard_normal((3, 3, 3, 8)) * 0.35).astype(F32)
    b1 = (rng.standard_normal(8) * 0.1).astype(F32)
    k2 = (rng.standard_normal((1, 1, 8, 6)) * 0.4).astype(F32)
    b2 = (rng.standard_normal(6) * 0.1).astype(F32)
    k3 = (rng.standard_normal((3, 3, 8, 6)) * 0.2).astype(F32)
    b3 = (rng.standard_normal(6) * 0.1).astype(F32)
    w4 = (rng.standard_normal((4 * 4 * 12, 10)) * 0.08).astype(F32)
    b4 = (rng.standard_normal(10) * 0.05).astype(F32)
    fq = tf.quantization.fake_quant_with_min_max_vars

    def fq_w_channel(k):
        a = np.abs(k).reshape(-1, k.shape[-1]).max(0)
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(
            k, -a, a, num_bits=8, narrow_range=True)

    def fq_w_tensor(w):
        a = float(np.abs(w).max())
        return fq(w, -a, a, num_bits=8, narrow_range=True)

    # activation ranges (as a moving-average QAT would have learned them)
    r = {"in": (-1.0, 1.0), "c1": (0.0, 3.1), "c2": (-2.3, 1.9), "c3": (0.0, 2.6),
         "cat": (-2.3, 2.6), "pool": (-1.4, 2.2), "fc": (-4.2, 5.3)}

    class Qat(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
        def serve(self, x):
            x = fq(x, *r["in"])
            y = tf.nn.relu(tf.nn.conv2d(x, fq_w_channel(k1), 1, "SAME") + b1)
            y = fq(y, *r["c1"])
            a = tf.nn.conv2d(y, fq_w_channel(k2), 1, "SAME") + b2
            a = fq(a, *r["c2"])
            c = tf.nn.relu(tf.nn.conv2d(y, fq_w_channel(k3), 1, "SAME") + b3)
            c = fq(c, *r["c3"])
            z = tf.concat([a, c], axis=-1)
            z = fq(z, *r["cat"])
            z = tf.nn.avg_pool2d(z, 2, 2, "VALID")
            z = fq(z, *r["pool"])
            z = tf.reshape(z, [1, -1])
            z = tf.matmul(z, fq_w_tensor(w4)) + b4
            return fq(z, *r["fc"])

    m = Qat()
    cf = m.serve.get_concrete_function()
    files = []
    for name, opts in (("qat_float", None), ("qat_int8", [tf.lite.Optimize.DEFAULT])):
        c = tf.lite.TFLiteConverter.from_concrete_functions([cf], m)
        if opts:
            c.optimizations = opts
        data = c.convert()
        (out / f"{name}.tflite").write_bytes(data)
        files.append({"file": f"{name}.tflite",
                      "converter": {"optimizations": [str(o) for o in (opts or [])],
                                    "representative_dataset": False},
                      "description": "FakeQuant graph (tf.Module): conv per-channel weights, "
                                     "concatenated branches, avg pool, dense per-tensor weights"})
    xs = rng.uniform(-1, 1, (8, 1, 8, 8, 3)).astype(F32)
    np.save(out / "qat_calib.npy", xs)
    return files


# ---------------------------------------------------------------------------
# Pruned Keras model with EXPERIMENTAL_SPARSITY
# ---------------------------------------------------------------------------
def _prune_mask(w, sparsity, block, rng):
    """Magnitude mask keeping the largest blocks (block along the last two dims)."""
    if block == (1, 1):
        thr = np.quantile(np.abs(w), sparsity)
        return np.abs(w) > thr
    r, c = block
    out_dim, in_dim = w.shape[1], w.shape[0]  # Keras Dense kernel [in, out]
    wt = w.T.reshape(out_dim // r, r, in_dim // c, c)
    mag = np.abs(wt).sum(axis=(1, 3))
    thr = np.quantile(mag, sparsity)
    keep = mag > thr
    return np.repeat(np.repeat(keep, r, 0), c, 1).T


def make_sparse(tf, keras, out: Path) -> list[dict]:
    rng = np.random.default_rng(SEED + 2)
    n = 512
    x = rng.uniform(0, 1, (n, 12, 12, 1)).astype(F32)
    y = (x[:, 2:6, 2:6, 0].mean((1, 2)) * 10).astype(np.int64) % 10
    inp = keras.Input((12, 12, 1), batch_size=None)
    h = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    o = keras.layers.Dense(10)(h)
    model = keras.Model(inp, o)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    plan = {model.layers[1]: (0.7, (1, 1)), model.layers[2]: (0.7, (1, 1)),
            model.layers[4]: (0.75, (1, 4)), model.layers[5]: (0.6, (1, 1))}
    masks = {}
    for layer, (sp, block) in plan.items():
        w, b = layer.get_weights()
        masks[layer] = _prune_mask(w, sp, block, rng)
        layer.set_weights([w * masks[layer], b])
    for _ in range(3):  # fine-tune with the masks
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        for layer, mask in masks.items():
            w, b = layer.get_weights()
            layer.set_weights([w * mask, b])
    inp1 = keras.Input((12, 12, 1), batch_size=1)
    fixed = keras.Model(inp1, model(inp1))
    calib = x[:16][:, None]

    def rep():
        for s in calib:
            yield [s]

    files = []
    for name, opts, data in (
            ("sparse_float", [tf.lite.Optimize.EXPERIMENTAL_SPARSITY], None),
            ("sparse_int8", [tf.lite.Optimize.EXPERIMENTAL_SPARSITY, tf.lite.Optimize.DEFAULT], rep)):
        c = tf.lite.TFLiteConverter.from_keras_model(fixed)
        c.optimizations = opts
        if data is not None:
            c.representative_dataset = data
        (out / f"{name}.tflite").write_bytes(c.convert())
        files.append({"file": f"{name}.tflite",
                      "converter": {"optimizations": [str(o) for o in opts],
                                    "representative_dataset": data is not None},
                      "pruning": {layer.name: {"sparsity": sp, "block": list(block)}
                                  for layer, (sp, block) in plan.items()},
                      "description": "Conv2D(8,3,relu) -> Conv2D(16,3,s2,relu) -> Flatten -> "
                                     "Dense(64,relu) -> Dense(10), magnitude-pruned"})
    np.save(out / "sparse_calib.npy", calib[:8])
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", default="fake_quant,qat,sparse")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tf, keras = _tf()
    only = set(args.only.split(","))
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": []}
    entries = {e["file"]: e for e in manifest["files"]}
    new = []
    if "fake_quant" in only:
        new.append(make_fake_quant(tf, args.out))
    if "qat" in only:
        new.extend(make_qat(tf, args.out))
    if "sparse" in only:
        new.extend(make_sparse(tf, keras, args.out))
    for e in new:
        p = args.out / e["file"]
        e["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
        e["size_bytes"] = p.stat().st_size
        entries[e["file"]] = e
    manifest = {"tf_version": tf.__version__, "seed": SEED,
                "files": [entries[k] for k in sorted(entries)]}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(new)} fixtures to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
