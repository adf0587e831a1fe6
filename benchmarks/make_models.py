#!/usr/bin/env python3
"""Build, briefly train and convert the benchmark models (TensorFlow converter).

Run with a Python that has ``tensorflow`` and ``tf_keras`` (TensorFlow is never a
dependency of quantcore)::

    /work/venv-tf/bin/python benchmarks/make_models.py [--models mobilenet_v2_224,cnn28]

Writes to ``benchmarks/models/``:

* ``mobilenet_v2_224_int8.tflite``: ``keras.applications.MobileNetV2(input_shape=
  (224, 224, 3), alpha=1.0, weights=None)`` (1000 classes), trained for a few steps on
  generated images (so weights and batch-norm statistics, hence quantization ranges,
  are realistic), full int8 with float input/output, 32 calibration samples;
* ``mobilenet_v2_224_float32.tflite`` when it is under 15 MB (quantcore's
  calibration benchmark starts from it);
* ``cnn28_int8.tflite`` (+ ``cnn28_float32.tflite``): a 28x28x1 MNIST-like CNN;
* ``<model>_int8.json``: training summary and the converter's wall time (float
  conversion alone, and the full int8 conversion with calibration), the number
  ``benchmarks/run.py`` compares quantcore's calibration with.

Calibration samples are not stored: :func:`benchmarks._data.calibration` regenerates
the same 32 samples deterministically on both sides.

Every TensorFlow step runs in a child process (the converter can crash hard).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _data  # noqa: E402

OUT = HERE / "models"
FLOAT_LIMIT = 15_000_000

MODELS = {
    "mobilenet_v2_224": dict(steps=12, batch=16, lr=1e-3,
                             description="keras.applications.MobileNetV2(input_shape=(224,224,3), "
                                         "alpha=1.0, weights=None), 1000 classes"),
    "cnn28": dict(steps=150, batch=64, lr=2e-3,
                  description="MNIST-like CNN: Conv2D 32x3x3 relu, MaxPool, Conv2D 64x3x3 relu, "
                              "MaxPool, Flatten, Dense 128 relu, Dense 10, Softmax"),
}


def _build(name: str, keras):
    if name == "mobilenet_v2_224":
        return keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="input")
    x = L.Conv2D(32, 3, activation="relu")(inp)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(128, activation="relu")(x)
    x = L.Dense(10)(x)
    return keras.Model(inp, L.Softmax()(x), name="cnn28")


def _import_tf(threads: int):
    import tensorflow as tf  # deliberately local: only in worker processes
    import tf_keras as keras

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(_data.SEED)
    return tf, keras


def worker_train(name: str, work: Path, threads: int) -> None:
    spec = MODELS[name]
    tf, keras = _import_tf(threads)
    model = _build(name, keras)
    model.compile(optimizer=keras.optimizers.Adam(spec["lr"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    losses = []
    for step in range(spec["steps"]):
        x, y = _data.images(name, spec["batch"], _data.SEED + 100 + step)
        losses.append(float(model.train_on_batch(x, y)[0]))
    # A few steps leave batch-norm moving statistics near 0/1: set them from one batch.
    bns = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    if bns:
        saved = [b.momentum for b in bns]
        for b in bns:
            b.momentum = 0.0
        model(_data.images(name, 32, _data.SEED + 2)[0], training=True)
        for b, m in zip(bns, saved):
            b.momentum = m
    np.savez(work / f"{name}_weights.npz", *model.get_weights())
    info = {"params": int(model.count_params()), "train_steps": spec["steps"],
            "batch_size": spec["batch"], "loss_first": round(losses[0], 4),
            "loss_last": round(losses[-1], 4), "train_seconds": round(time.time() - t0, 1),
            "batchnorm_layers_recalibrated": len(bns), "tf_version": tf.__version__}
    (work / f"{name}_train.json").write_text(json.dumps(info))


def worker_convert(name: str, work: Path, threads: int) -> None:
    tf, keras = _import_tf(threads)
    model = _build(name, keras)
    with np.load(work / f"{name}_weights.npz") as z:
        model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])
    shape = _data.SPECS[name][0]
    calib = _data.calibration(name)

    @tf.function(input_signature=[tf.TensorSpec([1, *shape], tf.float32, name="input")])
    def serve(x):
        return model(x, training=False)

    def converter():
        return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)

    res = {}
    conv = converter()
    t0 = time.perf_counter()
    fbuf = conv.convert()
    res["converter_float32_seconds"] = round(time.perf_counter() - t0, 3)

    conv = converter()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(calib.shape[0]):
            yield [calib[i:i + 1]]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    t0 = time.perf_counter()
    qbuf = conv.convert()
    res["converter_int8_seconds"] = round(time.perf_counter() - t0, 3)
    res["converter_calibration_samples"] = int(calib.shape[0])
    res["converter_threads"] = threads
    (work / f"{name}_float32.tflite").write_bytes(fbuf)
    (work / f"{name}_int8.tflite").write_bytes(qbuf)
    (work / f"{name}_convert.json").write_text(json.dumps(res))


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0",
                "TF_USE_LEGACY_KERAS": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": str(threads)})
    return env


def _run(args: list[str], threads: int, log: Path, timeout: int) -> int | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--threads", str(threads)]
    with open(log, "w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(threads),
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--train-threads", type=int, default=2)
    ap.add_argument("--convert-threads", type=int, default=1,
                    help="TF threads while converting (the timed step; default 1, as quantcore)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--worker", choices=["train", "convert"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "train":
        worker_train(a.model, a.work, a.threads)
        return 0
    if a.worker == "convert":
        worker_convert(a.model, a.work, a.threads)
        return 0

    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="quantcore_bench_models_"))
    failed = 0
    for name in [m for m in a.models.split(",") if m]:
        if name not in MODELS:
            ap.error(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        t0 = time.time()
        rc = _run(["--worker", "train", "--model", name, "--work", str(work)], a.train_threads,
                  work / f"{name}_train.log", a.timeout)
        if rc != 0:
            print(f"[{name}] training failed (rc={rc}); log: {work / f'{name}_train.log'}")
            failed += 1
            continue
        train = json.loads((work / f"{name}_train.json").read_text())
        print(f"[{name}] trained in {time.time() - t0:.0f}s: {train}", flush=True)
        rc = _run(["--worker", "convert", "--model", name, "--work", str(work)], a.convert_threads,
                  work / f"{name}_convert.log", a.timeout)
        if rc != 0:
            print(f"[{name}] conversion failed (rc={rc}); log: {work / f'{name}_convert.log'}")
            failed += 1
            continue
        conv = json.loads((work / f"{name}_convert.json").read_text())
        qbuf = (work / f"{name}_int8.tflite").read_bytes()
        fbuf = (work / f"{name}_float32.tflite").read_bytes()
        (OUT / f"{name}_int8.tflite").write_bytes(qbuf)
        kept_float = len(fbuf) < FLOAT_LIMIT
        if kept_float:
            (OUT / f"{name}_float32.tflite").write_bytes(fbuf)
        info = {"model": name, "description": MODELS[name]["description"],
                "input_shape": list(_data.SPECS[name][0]), "int8_size_bytes": len(qbuf),
                "float32_size_bytes": len(fbuf), "float32_kept": kept_float,
                "calibration": "benchmarks/_data.py calibration(name): 32 samples, deterministic",
                "train": train, **conv}
        (OUT / f"{name}_int8.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"[{name}] int8 {len(qbuf) / 1e6:.2f} MB, float32 {len(fbuf) / 1e6:.2f} MB "
              f"(kept: {kept_float}); converter {conv}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
