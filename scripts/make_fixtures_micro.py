#!/usr/bin/env python3
"""Train small microcontroller-style models briefly and convert them into TFLite fixtures
for TFLite Micro (issue 11).

Run with an interpreter that has TensorFlow and tf_keras::

    /work/venv-tf/bin/python scripts/make_fixtures_micro.py [--only NAME ...]

Outputs under ``tests/fixtures/micro/``:

* ``person_detect_int8.tflite``: the person-detection shape TFLM's
  ``examples/person_detection`` deploys: a 96x96x1 grayscale image, a MobileNet-v1-like
  stack of CONV_2D + DEPTHWISE_CONV_2D (batch norm folded, ReLU6, stride-2 stages),
  AVERAGE_POOL_2D over the last 6x6 map, RESHAPE, FULLY_CONNECTED to 2 classes and
  SOFTMAX; full integer with int8 input and output, as TFLM's example;
* ``person_detect_int8_floatio.tflite``: the same model, full integer inside with float
  input and output (the converter adds QUANTIZE / DEQUANTIZE);
* ``wake_word_stream_{int8,int8_state,float32}.tflite``: a streaming
  wake-word model. A ``tf.Module`` keeps the last ``W`` feature frames in a
  ``tf.Variable``; each call reads it, shifts in the new frame, writes it back and runs a
  small CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / SOFTMAX classifier on the window.
  Converted from a SavedModel with resource variables, so the model has CALL_ONCE (the
  initialisation subgraph), VAR_HANDLE, READ_VARIABLE and ASSIGN_VARIABLE, and its state
  carries across invokes as on a device. ``int8``: full integer with int8 input and
  output; the converter keeps the variable float32 (QUANTIZE / DEQUANTIZE around it).
  ``int8_state``: the same with ``_experimental_variable_quantization``, so the state
  is int8 too. ``float32``: no quantization;
* ``wake_word_stream_calib.npy`` (float32 frames) / ``person_detect_calib_u8.npy``
  (uint8 pixels, ``x = u8 / 127.5 - 1``): the inputs fed to the converter's
  representative dataset, in order (for the streaming model, one frame per invoke: the state the
  calibrator saw is the state these frames build up);
* ``manifest.json``: one entry per converted model with status (a converter error or a
  crash of the converting process is recorded, never fatal), ops per subgraph, input
  and output types, variable types, size and sha256.

Training uses generated data, a few hundred steps, so the weights and the calibrated
ranges are those of a trained network (not random weights): images with a bright
upright blob ("person") against textured backgrounds, and feature sequences where a
rising chirp ("wake word") crosses the window.

Every TensorFlow step (training, each conversion) runs in its own child process: the
converter can crash hard (SIGSEGV).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "micro"
SEED = 2718
IMG = 96
W, F = 12, 10          # streaming window: W frames of F features
N_CALIB = 16

MODELS = {
    "person_detect": "96x96x1 MobileNet-v1-like CONV_2D/DEPTHWISE_CONV_2D (ReLU6, stride-2 "
                     "stages) -> AVERAGE_POOL_2D -> FC(2) -> SOFTMAX",
    "wake_word_stream": f"tf.Module streaming a [{W},{F}] feature window in a tf.Variable "
                        "(shift in one frame per invoke) -> CONV_2D -> DEPTHWISE_CONV_2D -> "
                        "FC(3) -> SOFTMAX",
}
MODES = {"person_detect": ["int8", "int8_floatio"],
         "wake_word_stream": ["int8", "int8_state", "float32"]}


# ---------------------------------------------------------------------------
# Generated data
# ---------------------------------------------------------------------------
def person_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, 96, 96, 1] float32 in [-1, 1] (multiples of 1/127.5, minus 1): textured
    noise; label 1 images also hold an upright ellipse (a body) under a small disc (a
    head) at a random place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:IMG, 0:IMG].astype(np.float32)
    x = np.empty((n, IMG, IMG, 1), np.float32)
    y = rng.integers(0, 2, n)
    for i in range(n):
        fx, fy = rng.uniform(0.05, 0.3, 2)
        img = 0.3 * np.sin(fx * xx + rng.uniform(0, 6)) * np.cos(fy * yy) + \
            0.15 * rng.normal(size=(IMG, IMG))
        if y[i]:
            cx, cy = rng.uniform(25, 71), rng.uniform(35, 65)
            a, b = rng.uniform(8, 14), rng.uniform(16, 26)
            body = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
            head = (xx - cx) ** 2 + (yy - (cy - b - 6)) ** 2 < rng.uniform(25, 49)
            img = np.where(body | head, 0.8 + 0.1 * rng.normal(size=img.shape), img)
        x[i, :, :, 0] = np.clip(img, -1, 1)
    # On a 256-level grid (as a camera's 8-bit pixels), so the calibration images are
    # stored exactly as uint8: x = u8 / 127.5 - 1.
    x = (np.round((x + 1) * 127.5) / 127.5 - 1).astype(np.float32)
    return x, y.astype(np.int64)


def wake_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, W, F] float32 feature windows; class 0 noise, 1 a rising chirp, 2 a falling
    chirp crossing the window."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = 0.2 * rng.normal(size=(n, W, F)).astype(np.float32)
    t = np.arange(W)
    for i in range(n):
        if y[i]:
            start = rng.uniform(0, F - 1)
            slope = rng.uniform(0.4, 0.8) * (1 if y[i] == 1 else -1)
            band = np.clip(np.round(start + slope * t).astype(int), 0, F - 1)
            x[i, t, band] += rng.uniform(1.0, 2.0)
    return x.astype(np.float32), y.astype(np.int64)


def wake_stream(n_frames: int, seed: int) -> np.ndarray:
    """[n_frames, 1, F] float32 frames: several generated windows laid end to end, the
    order a device would feed them."""
    x, _ = wake_windows(n_frames // W + 1, seed)
    return x.reshape(-1, F)[:n_frames, None, :].astype(np.float32)


# ---------------------------------------------------------------------------
# TensorFlow workers (child processes)
# ---------------------------------------------------------------------------
def _import_tf():
    import tensorflow as tf
    tf.random.set_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _person_model():
    import tf_keras as K
    K.utils.set_random_seed(SEED)
    L = K.layers

    def conv_bn(h, filters, kernel, stride):
        h = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(h)
        h = L.BatchNormalization(momentum=0.9)(h)
        return L.ReLU(6.0)(h)

    def dw_bn(h, stride):
        h = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
        h = L.BatchNormalization(momentum=0.9)(h)
        return L.ReLU(6.0)(h)

    inp = K.Input((IMG, IMG, 1), batch_size=1)
    h = conv_bn(inp, 8, 3, 2)                       # 48x48x8
    for filters, stride in [(16, 1), (24, 2), (24, 1), (32, 2), (48, 2)]:  # -> 6x6x48
        h = dw_bn(h, stride)
        h = conv_bn(h, filters, 1, 1)
    h = L.AveragePooling2D(pool_size=(6, 6))(h)    # 1x1x48 (AVERAGE_POOL_2D, as TFLM's)
    h = L.Reshape((48,))(h)
    h = L.Dense(2)(h)
    out = L.Softmax()(h)
    return K.Model(inp, out), K


def _wake_classifier():
    """The classifier run on one [1, W, F, 1] window (trained as a Keras model)."""
    import tf_keras as K
    K.utils.set_random_seed(SEED)
    L = K.layers
    inp = K.Input((W, F, 1), batch_size=1)
    h = L.Conv2D(8, (3, 3), strides=(2, 1), padding="valid", activation="relu")(inp)  # 5x8x8
    h = L.DepthwiseConv2D((3, 3), padding="same", activation="relu")(h)
    h = L.Flatten()(h)
    out = L.Dense(3)(h)
    return K.Model(inp, out), K


def worker_train(name: str, work: Path) -> None:
    _import_tf()
    if name == "person_detect":
        model, K = _person_model()
        x, y = person_images(384, SEED)
        model.compile(optimizer=K.optimizers.Adam(0.005),
                      loss=K.losses.SparseCategoricalCrossentropy())
        # Batch norm momentum 0.9: the moving statistics the converter folds in settle
        # within these few steps (with 0.99 the model outputs one constant).
        model.fit(x, y, batch_size=16, epochs=4, verbose=2, shuffle=False)
        xv, yv = person_images(64, SEED + 7)
        acc = float(np.mean(np.argmax(model.predict(xv, batch_size=16, verbose=0), 1) == yv))
        print(f"held-out accuracy {acc:.3f}")
    else:
        model, K = _wake_classifier()
        x, y = wake_windows(1024, SEED)
        model.compile(optimizer=K.optimizers.Adam(0.01),
                      loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[..., None], y, batch_size=16, epochs=3, verbose=2, shuffle=False)
        xv, yv = wake_windows(256, SEED + 7)
        pred = np.argmax(model.predict(xv[..., None], batch_size=16, verbose=0), 1)
        print(f"held-out accuracy {float(np.mean(pred == yv)):.3f}")
    np.savez(work / f"{name}_weights.npz", *model.get_weights())


class _WakeWordStream:
    """The deployed streaming form: state = the last W frames, in a tf.Variable."""

    def __init__(self, tf, weights: list[np.ndarray]):
        k1, b1, kd, bd, wf, bf = weights
        self.module = tf.Module()
        self.module.window = tf.Variable(np.zeros((1, W, F), np.float32), name="window")
        consts = [tf.constant(v) for v in (k1, b1, kd, bd, wf, bf)]

        @tf.function(input_signature=[tf.TensorSpec([1, 1, F], tf.float32, name="frame")])
        def serve(frame):
            window = tf.concat([self.module.window[:, 1:, :], frame], axis=1)
            self.module.window.assign(window)
            c1, c1b, cd, cdb, fw, fb = consts
            h = tf.reshape(window, [1, W, F, 1])
            h = tf.nn.relu(tf.nn.conv2d(h, c1, strides=[1, 2, 1, 1], padding="VALID") + c1b)
            h = tf.nn.relu(tf.nn.depthwise_conv2d(h, cd, strides=[1, 1, 1, 1],
                                                  padding="SAME") + cdb)
            logits = tf.matmul(tf.reshape(h, [1, -1]), fw) + fb
            return tf.nn.softmax(logits)
        self.serve = serve


def _ops(buf: bytes) -> list[list[str]]:
    """Operator names per subgraph, read with TF's generated schema module."""
    from tensorflow.lite.python import schema_py_generated as fb
    m = fb.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    out = []
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        out.append(sorted({names.get(codes[sg.Operators(o).OpcodeIndex()], "?")
                           for o in range(sg.OperatorsLength())}))
    return out


def _io_types(buf: bytes) -> dict:
    """Types of the inputs, outputs and the variables (the tensors ASSIGN_VARIABLE
    writes) of subgraph 0."""
    from tensorflow.lite.python import schema_py_generated as fb
    m = fb.Model.GetRootAsModel(buf, 0)
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.Subgraphs(0)

    def t(i):
        return types[sg.Tensors(i).Type()].lower()
    variables = []
    for o in range(sg.OperatorsLength()):
        op = sg.Operators(o)
        code = m.OperatorCodes(op.OpcodeIndex())
        if names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) == "ASSIGN_VARIABLE":
            variables.append(t(op.Inputs(1)))
    return {"inputs": [t(sg.Inputs(i)) for i in range(sg.InputsLength())],
            "outputs": [t(sg.Outputs(i)) for i in range(sg.OutputsLength())],
            "variables": variables}


def worker_convert(name: str, mode: str, work: Path, result_path: str) -> None:
    tf = _import_tf()
    calib = load_calibration(name)
    with np.load(work / f"{name}_weights.npz") as z:
        weights = [z[f"arr_{i}"] for i in range(len(z.files))]
    if name == "person_detect":
        model, _ = _person_model()
        model.set_weights(weights)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        stream = _WakeWordStream(tf, weights)
        # Mutated tf.Variable: through a SavedModel, so the converter keeps it as a
        # resource variable (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE) and emits
        # its initialisation as a CALL_ONCE subgraph.
        saved = work / f"{name}_saved"
        tf.saved_model.save(stream.module, str(saved), signatures={
            "serving_default": stream.serve.get_concrete_function()})
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        conv.experimental_enable_resource_variables = True
    if mode != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def rep():
            for i in range(calib.shape[0]):
                yield [calib[i]]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode in ("int8", "int8_state"):
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        if mode == "int8_state":
            # The converter keeps resource variables float in full-integer models
            # (QUANTIZE / DEQUANTIZE around READ_VARIABLE and ASSIGN_VARIABLE) unless
            # asked to quantize them too (TFLiteConverter._experimental_variable_quantization).
            conv._experimental_variable_quantization = True
    res = {"tf_version": tf.__version__}
    try:
        buf = conv.convert()
    except Exception as e:
        lines = [ln for ln in str(e).splitlines() if "rror" in ln] or str(e).splitlines()
        res["status"] = f"converter error: {type(e).__name__}: {' | '.join(lines[:4])[:600]}"
    else:
        fname = f"{name}_{mode}.tflite"
        (OUT / fname).write_bytes(buf)
        res.update(status="ok", file=fname, ops=_ops(buf), types=_io_types(buf),
                   size_bytes=len(buf), sha256=hashlib.sha256(buf).hexdigest())
    Path(result_path).write_text(json.dumps(res))


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ)
    env.update({"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                "TF_USE_LEGACY_KERAS": "1"})
    return env


def _child(args: list[str], log: Path) -> int | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    with open(log, "w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(),
                                  timeout=1800).returncode
        except subprocess.TimeoutExpired:
            return None


def _describe(rc: int | None) -> str:
    if rc is None:
        return "timeout"
    if rc < 0:
        import signal
        return f"converter process killed by {signal.Signals(-rc).name}"
    return f"exit code {rc}"


def _log_tail(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines()
             if ln.strip() and not ln.startswith(("WARNING: All log", "I0000", "E0000", "W0000"))]
    return " | ".join(lines[-3:])[:600]


def _calibration(name: str) -> np.ndarray:
    if name == "person_detect":
        x, _ = person_images(N_CALIB, SEED + 1)
        return x[:, None]                          # [N, 1, 96, 96, 1]
    return wake_stream(3 * W, SEED + 1)[:, None]   # [N, 1, 1, F]


def load_calibration(name: str, root: Path = OUT) -> np.ndarray:
    """The float32 calibration inputs of ``name`` as fed to the converter, [N, 1, ...]
    (the person images are stored as uint8 pixels, ``x = u8 / 127.5 - 1``)."""
    if name == "person_detect":
        u8 = np.load(root / "person_detect_calib_u8.npy")
        return (u8.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)
    return np.load(root / f"{name}_calib.npy")


def save_calibration(name: str, x: np.ndarray) -> str:
    if name == "person_detect":
        u8 = np.round((x.astype(np.float64) + 1) * 127.5).astype(np.uint8)
        np.save(OUT / "person_detect_calib_u8.npy", u8)
        if not np.array_equal(load_calibration(name), x):
            raise SystemExit("person_detect calibration images are not on the uint8 grid")
        return "person_detect_calib_u8.npy"
    np.save(OUT / f"{name}_calib.npy", x)
    return f"{name}_calib.npy"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, *rest = a.worker
        if kind == "train":
            worker_train(rest[0], Path(rest[1]))
        else:
            worker_convert(rest[0], rest[1], Path(rest[2]), rest[3])
        return
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    names = a.only or list(MODELS)
    entries = [e for e in old if e["model"] not in names]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in names:
            calib_file = save_calibration(name, _calibration(name))
            rc = _child(["--worker", "train", name, str(work)], work / "train.log")
            if rc != 0:
                entries.append({"model": name, "mode": "train",
                                "status": f"training failed ({_describe(rc)}): "
                                          f"{_log_tail(work / 'train.log')}"})
                print(name, "training failed", entries[-1]["status"], flush=True)
                continue
            print(name, "trained:", _log_tail(work / "train.log"), flush=True)
            for mode in MODES[name]:
                result = work / f"{name}_{mode}.json"
                rc = _child(["--worker", "convert", name, mode, str(work), str(result)],
                            work / "convert.log")
                entry = {"model": name, "mode": mode, "description": MODELS[name],
                         "calib": calib_file}
                if rc == 0 and result.exists():
                    entry.update(json.loads(result.read_text()))
                else:
                    entry["status"] = f"{_describe(rc)}: {_log_tail(work / 'convert.log')}"
                    stale = OUT / f"{name}_{mode}.tflite"
                    if stale.exists():
                        stale.unlink()
                print(name, mode, entry["status"], entry.get("ops", ""), entry.get("types", ""),
                      flush=True)
                entries.append(entry)
    order = list(MODELS)
    entries.sort(key=lambda e: (order.index(e["model"]) if e["model"] in order else 99,
                                MODES.get(e["model"], []).index(e["mode"])
                                if e["mode"] in MODES.get(e["model"], []) else -1))
    manifest_path.write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
