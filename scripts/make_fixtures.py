#!/usr/bin/env python3
"""Build, briefly train and convert small Keras models into TFLite test fixtures.

This is the ONLY place in quantcore that imports TensorFlow.  Run it with an
interpreter that has ``tensorflow-cpu`` and ``tf_keras`` installed, e.g.::

    /path/to/venv-with-tensorflow-cpu/bin/python scripts/make_fixtures.py

Outputs (all under ``tests/fixtures/models/``):

* ``<model>_<mode>.tflite``  -- one file per successful conversion;
* ``<model>_calib.npy``      -- the 32 float32 calibration samples that were fed
  to the converter's representative dataset (shape ``[32, *input_shape]``);
* ``manifest.json``          -- one entry per (model, mode) with status, I/O
  tensors, ops, sha256 and whether LiteRT runs it with the optimized and the
  reference kernels.

Every TensorFlow step (training, each single conversion) runs in its own child
process, because the converter can crash hard (SIGSEGV/abort); a crash is
recorded in the manifest and the script goes on.  The LiteRT run checks are
done by a separate Python that has ``ai_edge_litert`` (``--litert-python``,
default ``python3``), again one child process per (file, op resolver), since
the BUILTIN_REF resolver can abort.

Determinism: fixed seeds, op determinism, single-threaded TF, oneDNN off; the
manifest contains no timestamps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "models"

SEED = 1234
N_CALIB = 32
N_CHECK = 4  # calibration samples run through LiteRT by the check step

ALL_MODES = [
    "float32",
    "float16",
    "dynamic",
    "int8",
    "int8_io",
    "uint8_io",
    "int8_pertensor",
    "int16x8",
]
FLOAT_MODES = ["float32", "float16"]
# The two MobileNets are the largest files: skip the modes that only change
# I/O types or weight storage (covered by the small models) to keep the
# fixtures directory around 15 MB.
BIG_MODES = [m for m in ALL_MODES if m not in ("float16", "uint8_io")]

# ---------------------------------------------------------------------------
# Model specifications.  `data` selects a numpy generator below, `input_shape`
# excludes the batch dimension (conversion always uses batch 1).
# ---------------------------------------------------------------------------
MODELS: dict[str, dict] = {
    "small_cnn": dict(
        input_shape=(32, 32, 3), data="image", classes=10, value_range=(0.0, 1.0),
        steps=80, batch=32, lr=2e-3, modes=ALL_MODES,
        description="Conv2D(SAME, stride 2, relu) -> DepthwiseConv2D + ReLU6 -> residual Add -> "
                    "MaxPool / (1x1 conv -> AvgPool) -> Concatenate -> tanh-conv * sigmoid-conv (Multiply) "
                    "-> MaxPool -> Flatten -> Dense(relu) -> Dense -> Softmax",
    ),
    "resnet_tiny": dict(
        input_shape=(32, 32, 3), data="image", classes=10, value_range=(0.0, 1.0),
        steps=80, batch=32, lr=2e-3, modes=ALL_MODES,
        description="Conv+BN+ReLU stem, 3 residual blocks (16/24/32 ch; blocks 2-3 strided 3x3 conv with "
                    "1x1 strided projection shortcut), GlobalAveragePooling (MEAN), Dense, softmax",
    ),
    "mlp": dict(
        input_shape=(64,), data="regression", outputs=8,
        steps=100, batch=32, lr=3e-3, modes=ALL_MODES,
        description="Dense(64, tanh) and Dense(64, sigmoid) on the input, elementwise Multiply, "
                    "Dense(32, relu), Dense(8) linear output (regression, no softmax)",
    ),
    "dscnn_kws": dict(
        input_shape=(49, 10, 1), data="kws", classes=12,
        steps=80, batch=32, lr=3e-3, modes=ALL_MODES,
        description="DS-CNN keyword spotting: Conv2D 64x(10x4) stride 2 + BN + ReLU, 4 depthwise-separable "
                    "blocks (DW 3x3 + BN + ReLU, PW 1x1 64 + BN + ReLU), GlobalAveragePooling, Dense(12), softmax",
    ),
    "dilated": dict(
        input_shape=(32, 32, 3), data="image", classes=10, value_range=(0.0, 1.0),
        steps=120, batch=32, lr=3e-3, modes=ALL_MODES,
        description="ZeroPadding2D (asymmetric, PAD) -> Conv2D stride 2 VALID -> Conv2D dilation 2 (fused by "
                    "the converter into a dilated CONV_2D) -> DepthwiseConv2D depth_multiplier=2 -> explicit "
                    "SPACE_TO_BATCH_ND -> Conv2D VALID + ReLU -> BATCH_TO_SPACE_ND (crops) (= a dilated conv the "
                    "converter does not fuse) -> Conv2D stride 2 VALID -> GlobalAveragePooling -> Dense, softmax",
    ),
    "mobilenet_v2_tiny": dict(
        input_shape=(96, 96, 3), data="image", classes=10, value_range=(-1.0, 1.0),
        steps=100, batch=16, lr=2e-3, modes=BIG_MODES,
        description="keras.applications.MobileNetV2(input_shape=(96,96,3), alpha=0.35, weights=None, "
                    "classes=10): inverted residuals, ReLU6, softmax",
    ),
    "mobilenet_v3_tiny": dict(
        input_shape=(48, 48, 3), data="image", classes=10, value_range=(-1.0, 1.0),
        steps=80, batch=32, lr=2e-3, modes=BIG_MODES,
        description="keras.applications.MobileNetV3Small(input_shape=(48,48,3), alpha=0.5, minimalistic=False, "
                    "include_top=False, pooling='avg', include_preprocessing=False, weights=None) + Dense(10, "
                    "softmax): hard-swish, squeeze-excite (MEAN, hard-sigmoid, Multiply)",
    ),
    "mediapipe_style": dict(
        input_shape=(32, 32, 3), data="segmentation", value_range=(-1.0, 1.0),
        steps=80, batch=16, lr=3e-3, modes=FLOAT_MODES,
        description="Float-only segmentation-style net: ZeroPadding2D + Conv2D stride 2 VALID + PReLU, "
                    "depthwise/pointwise residual + PReLU, ZeroPadding2D + strided conv, "
                    "UpSampling2D(bilinear) and Resizing(bilinear) (RESIZE_BILINEAR), 3x3 conv, sigmoid mask",
    ),
}


# ---------------------------------------------------------------------------
# Data generators (numpy only, deterministic).  Each returns (x, y) for n
# samples; the task is learnable (class prototypes / teacher function / blobs).
# ---------------------------------------------------------------------------
def _smooth_field(rng, n, h, w, c, low=4):
    """n smooth random fields of shape [h, w, c], roughly in [-1, 1]."""
    coarse = rng.standard_normal((n, low, low, c)).astype(np.float32)
    # separable linear upsampling of the coarse grid
    ys = np.linspace(0, low - 1, h)
    xs = np.linspace(0, low - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, low - 2)
    x0 = np.floor(xs).astype(int).clip(0, low - 2)
    fy = (ys - y0)[None, :, None, None].astype(np.float32)
    fx = (xs - x0)[None, None, :, None].astype(np.float32)
    rows = coarse[:, y0] * (1 - fy) + coarse[:, y0 + 1] * fy
    out = rows[:, :, x0] * (1 - fx) + rows[:, :, x0 + 1] * fx
    return np.tanh(out)


def _prototypes(spec, seed):
    rng = np.random.RandomState(seed)
    h, w, c = spec["input_shape"]
    return _smooth_field(rng, spec["classes"], h, w, c)


def gen_image(spec, rng, n, protos):
    h, w, c = spec["input_shape"]
    y = rng.randint(0, spec["classes"], size=n)
    contrast = rng.uniform(0.6, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    bright = rng.uniform(-0.15, 0.15, size=(n, 1, 1, 1)).astype(np.float32)
    clutter = _smooth_field(rng, n, h, w, c, low=8)
    noise = rng.standard_normal((n, h, w, c)).astype(np.float32)
    u = 0.5 + 0.22 * contrast * protos[y] + 0.25 * clutter + 0.08 * noise + bright  # ~[0, 1]
    u = np.clip(u, 0.0, 1.0)
    lo, hi = spec["value_range"]
    return (lo + (hi - lo) * u).astype(np.float32), y.astype(np.int32)


def gen_kws(spec, rng, n, protos):
    h, w, _ = spec["input_shape"]
    y = rng.randint(0, spec["classes"], size=n)
    # MFCC-like: coefficient 0 carries energy (large), higher ones decay in scale
    scale = np.array([6.0, 3.0, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6], np.float32)[:w]
    offset = np.array([-8.0, 1.0, 0.5, 0, 0, 0, 0, 0, 0, 0], np.float32)[:w]
    shift = rng.randint(-4, 5, size=n)
    x = np.empty((n, h, w, 1), np.float32)
    for i in range(n):
        x[i] = np.roll(protos[y[i]], shift[i], axis=0)
    gain = rng.uniform(0.7, 1.3, size=(n, 1, 1, 1)).astype(np.float32)
    x = gain * x * 1.5 + 0.35 * rng.standard_normal((n, h, w, 1)).astype(np.float32)
    x = x * scale[None, None, :, None] + offset[None, None, :, None]
    return x.astype(np.float32), y.astype(np.int32)


def gen_regression(spec, rng, n, teacher):
    d = spec["input_shape"][0]
    w1, b1, w2 = teacher
    scales = np.linspace(0.5, 2.0, d).astype(np.float32)  # features with different ranges
    x = rng.standard_normal((n, d)).astype(np.float32) * scales
    y = np.tanh(x @ w1 + b1) @ w2 + 0.05 * rng.standard_normal((n, w2.shape[1])).astype(np.float32)
    return x.astype(np.float32), y.astype(np.float32)


def _teacher(spec, seed):
    rng = np.random.RandomState(seed)
    d, hdim, o = spec["input_shape"][0], 32, spec["outputs"]
    w1 = (rng.standard_normal((d, hdim)) / np.sqrt(d)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(hdim)).astype(np.float32)
    w2 = (rng.standard_normal((hdim, o)) * 1.5 / np.sqrt(hdim)).astype(np.float32)
    return w1, b1, w2


def gen_segmentation(spec, rng, n, _unused):
    h, w, c = spec["input_shape"]
    bg = 0.5 + 0.25 * _smooth_field(rng, n, h, w, c, low=6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = rng.uniform(0.2 * h, 0.8 * h, size=n)
    cx = rng.uniform(0.2 * w, 0.8 * w, size=n)
    r = rng.uniform(0.12 * h, 0.3 * h, size=n)
    mask = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < (r[:, None, None] ** 2)
    mask = mask.astype(np.float32)[..., None]
    color = np.array([0.9, 0.2, 0.3], np.float32)[:c]
    u = bg * (1 - mask) + (color + 0.08 * rng.standard_normal((n, 1, 1, c))) * mask
    u = np.clip(u + 0.03 * rng.standard_normal(u.shape), 0.0, 1.0)
    lo, hi = spec["value_range"]
    return (lo + (hi - lo) * u).astype(np.float32), mask


def make_data(name, n, seed):
    spec = MODELS[name]
    kind = spec["data"]
    rng = np.random.RandomState(seed)
    if kind == "image":
        return gen_image(spec, rng, n, _prototypes(spec, SEED + 7))
    if kind == "kws":
        return gen_kws(spec, rng, n, _prototypes(spec, SEED + 7)[..., :1])
    if kind == "regression":
        return gen_regression(spec, rng, n, _teacher(spec, SEED + 7))
    if kind == "segmentation":
        return gen_segmentation(spec, rng, n, None)
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# Keras model builders (only called inside worker processes).
# ---------------------------------------------------------------------------
def build_small_cnn(tf, keras, spec):
    L = keras.layers
    inp = keras.Input(spec["input_shape"], name="input")
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)  # 16x16x16
    d = L.DepthwiseConv2D(3, padding="same")(x)
    d = L.ReLU(max_value=6.0)(d)
    x = L.Add()([x, d])
    a = L.MaxPooling2D(2)(x)  # 8x8x16
    b = L.Conv2D(16, 1, activation="relu")(x)
    b = L.AveragePooling2D(2)(b)  # 8x8x16
    x = L.Concatenate()([a, b])  # 8x8x32
    t = L.Conv2D(24, 3, padding="same", activation="tanh")(x)
    s = L.Conv2D(24, 3, padding="same", activation="sigmoid")(x)
    x = L.Multiply()([t, s])
    x = L.MaxPooling2D(2)(x)  # 4x4x24
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dense(spec["classes"])(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out, name="small_cnn")


def build_resnet_tiny(tf, keras, spec):
    L = keras.layers

    def block(x, f, stride):
        y = L.Conv2D(f, 3, strides=stride, padding="same", use_bias=False)(x)
        y = L.BatchNormalization()(y)
        y = L.ReLU()(y)
        y = L.Conv2D(f, 3, padding="same", use_bias=False)(y)
        y = L.BatchNormalization()(y)
        if stride != 1 or x.shape[-1] != f:
            sc = L.Conv2D(f, 1, strides=stride, use_bias=False)(x)
            sc = L.BatchNormalization()(sc)
        else:
            sc = x
        return L.ReLU()(L.Add()([y, sc]))

    inp = keras.Input(spec["input_shape"], name="input")
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = block(x, 16, 1)
    x = block(x, 24, 2)
    x = block(x, 32, 2)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(spec["classes"], activation="softmax")(x)
    return keras.Model(inp, out, name="resnet_tiny")


def build_mlp(tf, keras, spec):
    L = keras.layers
    inp = keras.Input(spec["input_shape"], name="input")
    a = L.Dense(64, activation="tanh")(inp)
    b = L.Dense(64, activation="sigmoid")(inp)
    x = L.Multiply()([a, b])
    x = L.Dense(32, activation="relu")(x)
    out = L.Dense(spec["outputs"])(x)
    return keras.Model(inp, out, name="mlp")


def build_dscnn_kws(tf, keras, spec):
    L = keras.layers
    inp = keras.Input(spec["input_shape"], name="input")
    x = L.Conv2D(64, (10, 4), strides=2, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for _ in range(4):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        x = L.Conv2D(64, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(spec["classes"], activation="softmax")(x)
    return keras.Model(inp, out, name="dscnn_kws")


def build_dilated(tf, keras, spec):
    L = keras.layers
    inp = keras.Input(spec["input_shape"], name="input")
    x = L.ZeroPadding2D(((1, 2), (2, 1)))(inp)  # 35x35x3, explicit PAD
    x = L.Conv2D(16, 3, strides=2, padding="valid", activation="relu")(x)  # 17x17x16
    x = L.Conv2D(16, 3, padding="same", dilation_rate=2, activation="relu")(x)  # fused dilated CONV_2D
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(x)  # 17x17x32
    # The same computation as Conv2D(16, 3, dilation_rate=2, padding="same") written out with
    # explicit SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (17 -> pad [2,3] -> 22 -> 4x 11x11 -> 9x9 -> 18 -> crop 17).
    # Pure functions of their input, no captured variables.
    x = L.Lambda(lambda t: tf.space_to_batch_nd(t, [2, 2], [[2, 3], [2, 3]]), name="space_to_batch")(x)
    x = L.Conv2D(16, 3, padding="valid", activation="relu")(x)
    x = L.Lambda(lambda t: tf.batch_to_space(t, [2, 2], [[0, 1], [0, 1]]), name="batch_to_space")(x)
    x = L.Conv2D(32, 3, strides=2, padding="valid", activation="relu")(x)  # 8x8x32
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(spec["classes"], activation="softmax")(x)
    return keras.Model(inp, out, name="dilated")


def build_mobilenet_v2_tiny(tf, keras, spec):
    return keras.applications.MobileNetV2(
        input_shape=spec["input_shape"], alpha=0.35, weights=None, classes=spec["classes"])


def build_mobilenet_v3_tiny(tf, keras, spec):
    base = keras.applications.MobileNetV3Small(
        input_shape=spec["input_shape"], alpha=0.5, minimalistic=False, include_top=False,
        weights=None, pooling="avg", include_preprocessing=False)
    out = keras.layers.Dense(spec["classes"], activation="softmax")(base.output)
    return keras.Model(base.input, out, name="mobilenet_v3_tiny")


def build_mediapipe_style(tf, keras, spec):
    L = keras.layers
    h, w, _ = spec["input_shape"]

    def prelu():  # MediaPipe-style per-channel PReLU, negative slopes start at 0.25
        return L.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2])

    inp = keras.Input(spec["input_shape"], name="input")
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(inp)  # == SAME for stride 2: folded into the conv
    x = L.Conv2D(16, 3, strides=2, padding="valid")(x)  # 16x16x16
    x = prelu()(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    y = L.Conv2D(16, 1)(y)
    x = prelu()(L.Add()([x, y]))
    z = L.ZeroPadding2D(1)(x)  # symmetric pad before a stride-2 conv: stays an explicit PAD
    z = L.Conv2D(32, 3, strides=2, padding="valid")(z)  # 8x8x32
    z = prelu()(z)
    z = L.UpSampling2D(2, interpolation="bilinear")(z)  # 16x16x32
    z = L.Conv2D(16, 1)(z)
    x = prelu()(L.Add()([x, z]))
    x = L.Resizing(h, w, interpolation="bilinear")(x)  # 32x32x16
    out = L.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(inp, out, name="mediapipe_style")


BUILDERS = {
    "small_cnn": build_small_cnn,
    "resnet_tiny": build_resnet_tiny,
    "mlp": build_mlp,
    "dscnn_kws": build_dscnn_kws,
    "dilated": build_dilated,
    "mobilenet_v2_tiny": build_mobilenet_v2_tiny,
    "mobilenet_v3_tiny": build_mobilenet_v3_tiny,
    "mediapipe_style": build_mediapipe_style,
}


# ---------------------------------------------------------------------------
# Worker side (TensorFlow imported here only).
# ---------------------------------------------------------------------------
def _import_tf(threads):
    import tensorflow as tf  # noqa: WPS433 (deliberately local)
    import tf_keras as keras

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    return tf, keras


def _recalibrate_batchnorm(keras, model, x):
    """Set BN moving statistics to the statistics of one large batch.

    A few dozen training steps with momentum 0.99/0.999 leave the moving
    statistics at their initial values (0/1), which would make inference-mode
    activations (and so the quantization ranges) unrealistic.
    """
    bns = [l for l in model.submodules if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)
    for bn, m in zip(bns, saved):
        bn.momentum = m
    return len(bns)


def worker_train(name, work, threads):
    spec = MODELS[name]
    tf, keras = _import_tf(threads)
    model = BUILDERS[name](tf, keras, spec)
    n_train = spec["steps"] * spec["batch"]
    x, y = make_data(name, n_train, SEED + 1)
    xv, yv = make_data(name, 256, SEED + 2)
    if spec["data"] == "regression":
        loss, metrics = "mse", ["mae"]
    elif spec["data"] == "segmentation":
        loss, metrics = "binary_crossentropy", ["binary_accuracy"]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(spec["lr"]), loss=loss, metrics=metrics)
    hist = model.fit(x, y, batch_size=spec["batch"], epochs=1, shuffle=False, verbose=0)
    n_bn = _recalibrate_batchnorm(keras, model, xv[:256])
    ev = model.evaluate(xv, yv, batch_size=64, verbose=0, return_dict=True)
    weights = model.get_weights()
    np.savez(work / f"{name}_weights.npz", *weights)
    xc, _ = make_data(name, N_CALIB, SEED + 3)
    np.save(work / f"{name}_calib.npy", xc)
    info = {
        "params": int(model.count_params()),
        "train_steps": spec["steps"],
        "batch_size": spec["batch"],
        "learning_rate": spec["lr"],
        "train_loss_last_epoch": round(float(hist.history["loss"][-1]), 4),
        "batchnorm_layers_recalibrated": n_bn,
        "val_" + metrics[0]: round(float(ev[metrics[0]]), 4),
        "val_loss": round(float(ev["loss"]), 4),
        "tf_version": tf.__version__,
    }
    (work / f"{name}_train.json").write_text(json.dumps(info))


def _tflite_info(buf):
    """Ops and I/O tensors of a .tflite flatbuffer, via TF's generated schema."""
    from tensorflow.lite.python import schema_py_generated as fb

    op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    m = fb.Model.GetRootAs(buf, 0)
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        nm = op_names.get(code, f"BUILTIN_{code}")
        if nm == "CUSTOM":
            nm = "CUSTOM:" + (oc.CustomCode() or b"").decode()
        codes.append(nm)
    counts: dict[str, int] = {}
    for s in range(m.SubgraphsLength()):
        g = m.Subgraphs(s)
        for i in range(g.OperatorsLength()):
            nm = codes[g.Operators(i).OpcodeIndex()]
            counts[nm] = counts.get(nm, 0) + 1
    g = m.Subgraphs(0)

    def tensor(idx):
        t = g.Tensors(idx)
        q = t.Quantization()
        entry = {
            "name": (t.Name() or b"").decode(),
            "shape": [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else [],
            "dtype": type_names.get(t.Type(), str(t.Type())).lower(),
        }
        if q is not None and q.ScaleLength():
            entry["quantization"] = {
                "scale": [float(v) for v in q.ScaleAsNumpy()],
                "zero_point": [int(v) for v in q.ZeroPointAsNumpy()],
            }
        return entry

    return {
        "inputs": [tensor(g.Inputs(i)) for i in range(g.InputsLength())],
        "outputs": [tensor(g.Outputs(i)) for i in range(g.OutputsLength())],
        "ops": sorted(counts),
        "op_counts": dict(sorted(counts.items())),
    }


def converter_settings(mode):
    """Human/JSON-readable description of what `worker_convert` sets per mode."""
    s = {"optimizations": [], "representative_dataset": False}
    if mode == "float32":
        return s
    s["optimizations"] = ["DEFAULT"]
    if mode == "float16":
        s["supported_types"] = ["float16"]
    elif mode == "dynamic":
        pass
    elif mode in ("int8", "int8_io", "uint8_io", "int8_pertensor"):
        s["representative_dataset"] = True
        s["supported_ops"] = ["TFLITE_BUILTINS_INT8"]
        if mode == "int8_io":
            s["inference_input_type"] = s["inference_output_type"] = "int8"
        if mode == "uint8_io":
            s["inference_input_type"] = s["inference_output_type"] = "uint8"
        if mode == "int8_pertensor":
            s["_experimental_disable_per_channel"] = True
            s["_experimental_disable_per_channel_quantization_for_dense_layers"] = True
    elif mode == "int16x8":
        s["representative_dataset"] = True
        s["supported_ops"] = ["EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"]
    else:
        raise ValueError(mode)
    return s


def worker_convert(name, mode, work, out_dir, result_path, threads):
    spec = MODELS[name]
    tf, keras = _import_tf(threads)
    model = BUILDERS[name](tf, keras, spec)
    with np.load(work / f"{name}_weights.npz") as z:
        model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])
    calib = np.load(out_dir / f"{name}_calib.npy")

    @tf.function(input_signature=[tf.TensorSpec([1, *spec["input_shape"]], tf.float32, name="input")])
    def serve(x):
        return model(x, training=False)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    st = converter_settings(mode)
    if st["optimizations"]:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if "supported_types" in st:
        conv.target_spec.supported_types = [tf.float16]
    if st["representative_dataset"]:
        def rep():
            for i in range(calib.shape[0]):
                yield [calib[i:i + 1]]
        conv.representative_dataset = rep
    if "supported_ops" in st:
        conv.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in st["supported_ops"]]
    if "inference_input_type" in st:
        dt = {"int8": tf.int8, "uint8": tf.uint8}[st["inference_input_type"]]
        conv.inference_input_type = dt
        conv.inference_output_type = dt
    if st.get("_experimental_disable_per_channel"):
        conv._experimental_disable_per_channel = True
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True

    res = {"tf_version": tf.__version__, "converter": st}
    try:
        buf = conv.convert()
    except Exception as e:  # ConverterError etc.: recorded, not fatal
        res["status"] = _short_error(f"{type(e).__name__}: {e}")
    else:
        fname = f"{name}_{mode}.tflite"
        (out_dir / fname).write_bytes(buf)
        res.update(_tflite_info(buf))
        res["status"] = "ok"
    Path(result_path).write_text(json.dumps(res))


def _short_error(text, limit=1200):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    keep = [l for l in lines if "error" in l.lower()] or lines
    out, seen = [], set()
    for l in keep:
        if l not in seen:
            seen.add(l)
            out.append(l)
    msg = " | ".join(out)
    return msg if len(msg) <= limit else msg[:limit] + " ..."


# ---------------------------------------------------------------------------
# LiteRT check (runs under --litert-python, which only needs ai_edge_litert+numpy).
# ---------------------------------------------------------------------------
CHECK_SRC = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    path, resolver, calib, out_npy, n = sys.argv[1:6]
    it = Interpreter(model_path=path, num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    ind = it.get_input_details()[0]
    outd = it.get_output_details()[0]
    x = np.load(calib)[: int(n)]
    outs = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        if ind["dtype"] != np.float32:
            s, z = ind["quantization"]
            info = np.iinfo(ind["dtype"])
            xi = np.clip(np.round(xi / s) + z, info.min, info.max).astype(ind["dtype"])
        it.set_tensor(ind["index"], xi)
        it.invoke()
        o = it.get_tensor(outd["index"])
        if o.dtype != np.float32:
            s, z = outd["quantization"]
            o = (o.astype(np.float32) - z) * s
        outs.append(o.astype(np.float32))
    y = np.concatenate(outs)
    np.save(out_npy, y)
    ops = sorted({d["op_name"] for d in it._get_ops_details()})
    print("CHECK_RESULT " + json.dumps({"ok": bool(np.all(np.isfinite(y))), "ops": ops}))
    """
)

RESOLVERS = {"opt": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "ref": "BUILTIN_REF"}


def _describe_rc(rc):
    if rc < 0:
        try:
            return f"killed by signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def run_check(litert_py, tflite_path, resolver, calib, out_npy, timeout):
    cmd = [litert_py, "-c", CHECK_SRC, str(tflite_path), resolver, str(calib), str(out_npy), str(N_CHECK)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout}s"
    for line in p.stdout.splitlines():
        if line.startswith("CHECK_RESULT "):
            r = json.loads(line[len("CHECK_RESULT "):])
            return (True, None) if r["ok"] else (False, "non-finite output")
    tail = [l for l in p.stderr.splitlines() if l.strip()][-3:]
    return False, _short_error(f"{_describe_rc(p.returncode)}: " + " | ".join(tail), 600)


# ---------------------------------------------------------------------------
# Orchestration.
# ---------------------------------------------------------------------------
def _child_env(threads):
    env = dict(os.environ)
    env.update({
        "CUDA_VISIBLE_DEVICES": "-1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "TF_USE_LEGACY_KERAS": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
    })
    return env


def _run_worker(args_list, threads, log_path, timeout):
    cmd = [sys.executable, str(Path(__file__).resolve()), *args_list, "--threads", str(threads)]
    with open(log_path, "w") as log:
        try:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env(threads),
                               timeout=timeout)
            return p.returncode
        except subprocess.TimeoutExpired:
            return None


def _log_tail(log_path, n=4):
    try:
        lines = [l for l in Path(log_path).read_text(errors="replace").splitlines()
                 if l.strip() and not l.startswith(("I0000", "W0000", "WARNING: All log"))]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset (default: all)")
    ap.add_argument("--modes", default=None,
                    help="comma-separated subset of modes (intersected with each model's own list; "
                         "manifest entries and files of other modes are kept)")
    ap.add_argument("--litert-python", default=os.environ.get("LITERT_PYTHON", "python3"),
                    help="python with ai_edge_litert for the run checks (default: python3)")
    ap.add_argument("--skip-check", action="store_true", help="do not run the LiteRT checks")
    ap.add_argument("--threads", type=int, default=1, help="TF threads per worker (default 1)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work dir")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per worker process")
    # internal worker entry points
    ap.add_argument("--worker", choices=["train", "convert"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "train":
        worker_train(args.model, args.work, args.threads)
        return 0
    if args.worker == "convert":
        worker_convert(args.model, args.mode, args.work, args.out, args.result, args.threads)
        return 0

    names = [m for m in args.models.split(",") if m]
    for m in names:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; known: {', '.join(MODELS)}")
    wanted = args.modes.split(",") if args.modes else ALL_MODES
    for m in wanted:
        if m not in ALL_MODES:
            ap.error(f"unknown mode {m!r}; known: {', '.join(ALL_MODES)}")
    modes_of = {n: [m for m in MODELS[n]["modes"] if m in wanted] for n in names}
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    old_entries = []
    if manifest_path.exists():
        old_entries = [e for e in json.loads(manifest_path.read_text())
                       if e["mode"] not in modes_of.get(e["model"], ())]

    work = Path(tempfile.mkdtemp(prefix="quantcore_fixtures_"))
    t_start = time.time()
    entries = []
    litert_version = None
    if not args.skip_check:
        p = subprocess.run([args.litert_python, "-c",
                            "import importlib.metadata as m; print(m.version('ai-edge-litert'))"],
                           capture_output=True, text=True)
        litert_version = p.stdout.strip() or None
        if p.returncode != 0:
            print(f"warning: {args.litert_python} has no ai_edge_litert; skipping checks", file=sys.stderr)
            args.skip_check = True
    try:
        for name in names:
            spec = MODELS[name]
            for f in [out / f"{name}_{m}.tflite" for m in modes_of[name]] + [out / f"{name}_calib.npy"]:
                if f.exists():
                    f.unlink()
            t0 = time.time()
            log = work / f"{name}_train.log"
            rc = _run_worker(["--worker", "train", "--model", name, "--work", str(work)],
                             args.threads, log, args.timeout)
            tj = work / f"{name}_train.json"
            if rc != 0 or not tj.exists():
                err = f"training failed ({'timeout' if rc is None else _describe_rc(rc)}): {_log_tail(log)}"
                print(f"[{name}] {err}", flush=True)
                for mode in modes_of[name]:
                    entries.append({"file": f"{name}_{mode}.tflite", "model": name, "mode": mode,
                                    "status": _short_error(err)})
                continue
            train = json.loads(tj.read_text())
            shutil.copy(work / f"{name}_calib.npy", out / f"{name}_calib.npy")
            print(f"[{name}] trained in {time.time() - t0:.0f}s: {train}", flush=True)
            for mode in modes_of[name]:
                t0 = time.time()
                fname = f"{name}_{mode}.tflite"
                rpath = work / f"{name}_{mode}.json"
                log = work / f"{name}_{mode}.log"
                rc = _run_worker(["--worker", "convert", "--model", name, "--mode", mode,
                                  "--work", str(work), "--out", str(out), "--result", str(rpath)],
                                 args.threads, log, args.timeout)
                if rpath.exists():
                    res = json.loads(rpath.read_text())
                else:
                    why = "timeout" if rc is None else _describe_rc(rc)
                    res = {"status": _short_error(f"converter process crashed ({why}): {_log_tail(log)}"),
                           "converter": converter_settings(mode), "tf_version": train["tf_version"]}
                    if (out / fname).exists():
                        (out / fname).unlink()
                entry = {
                    "file": fname, "model": name, "mode": mode,
                    "tf_version": res.get("tf_version"),
                    "status": res["status"],
                    "converter": res.get("converter"),
                    "calib": f"{name}_calib.npy",
                    "input_range": list(spec["value_range"]) if "value_range" in spec else None,
                    "train": {k: v for k, v in train.items() if k != "tf_version"},
                    "description": spec["description"],
                }
                if res["status"] == "ok":
                    entry.update({
                        "sha256": sha256(out / fname),
                        "size_bytes": (out / fname).stat().st_size,
                        "inputs": res["inputs"], "outputs": res["outputs"],
                        "ops": res["ops"], "op_counts": res["op_counts"],
                    })
                print(f"[{name}/{mode}] {time.time() - t0:.0f}s status={entry['status'][:200]}", flush=True)
                entries.append(entry)

            if args.skip_check:
                continue
            # LiteRT checks: optimized kernels (no default delegate) and reference kernels.
            opt_out = {}
            for entry in [e for e in entries if e["model"] == name and e["status"] == "ok"]:
                path = out / entry["file"]
                for key, resolver in RESOLVERS.items():
                    npy = work / f"{entry['file']}.{key}.npy"
                    ok, err = run_check(args.litert_python, path, resolver, out / entry["calib"], npy, 300)
                    entry[f"runs_{key}"] = ok
                    if not ok:
                        entry[f"{key}_error"] = err
                    elif key == "opt":
                        opt_out[entry["mode"]] = np.load(npy)
                    if ok and key == "ref" and entry.get("runs_opt"):
                        d = np.abs(np.load(npy) - np.load(work / f"{entry['file']}.opt.npy")).max()
                        entry["max_abs_diff_ref_vs_opt"] = round(float(d), 6)
                print(f"[{entry['file']}] runs_opt={entry['runs_opt']} runs_ref={entry['runs_ref']}"
                      f" {entry.get('ref_error', '')}", flush=True)
            f32 = out / f"{name}_float32.tflite"
            if "float32" not in opt_out and f32.exists():  # partial run (--modes): reuse the kept float32 file
                npy = work / f"{name}_float32_ref_output.npy"
                ok, _ = run_check(args.litert_python, f32, RESOLVERS["opt"], out / f"{name}_calib.npy", npy, 300)
                if ok:
                    opt_out["float32"] = np.load(npy)
            if "float32" in opt_out:
                for entry in [e for e in entries if e["model"] == name and e["mode"] in opt_out]:
                    d = np.abs(opt_out[entry["mode"]] - opt_out["float32"]).max()
                    entry["max_abs_diff_vs_float32"] = round(float(d), 6)
    finally:
        if args.keep_work:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    for e in entries:
        e["litert_version"] = litert_version
    order = {m: i for i, m in enumerate(MODELS)}
    all_entries = old_entries + entries
    all_entries.sort(key=lambda e: (order.get(e["model"], 99),
                                    ALL_MODES.index(e["mode"]) if e["mode"] in ALL_MODES else 99))
    manifest_path.write_text(json.dumps(all_entries, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    n_ok = sum(e["status"] == "ok" for e in all_entries)
    print(f"done in {time.time() - t_start:.0f}s: {n_ok}/{len(all_entries)} conversions ok, "
          f"{total / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
