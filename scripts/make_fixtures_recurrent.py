#!/usr/bin/env python3
"""Train small recurrent Keras models briefly and convert them into TFLite fixtures.

Run with an interpreter that has TensorFlow and tf_keras::

    /work/venv-tf/bin/python scripts/make_fixtures_recurrent.py [--only NAME ...]

Outputs under ``tests/fixtures/recurrent/``:

* ``<model>_<mode>.tflite`` for modes ``float32``, ``dynamic`` (dynamic-range,
  int8 weights) and ``int8`` (full integer with a representative dataset, float I/O);
* ``<model>_calib.npy``: the float32 calibration sequences fed to the converter
  (``[N, 1, *input_shape]``; the tests feed them one by one, batch 1 as deployed);
* ``manifest.json``: one entry per (model, mode) with status (a converter error or a
  crash of the converting process is recorded, never fatal), ops per subgraph, I/O,
  size and sha256.

Models (batch size 1, sequences of 8 steps):

* ``lstm_tfkeras``: tf_keras LSTM, fused by the converter into UNIDIRECTIONAL_SEQUENCE_LSTM;
* ``bilstm_tfkeras``: tf_keras Bidirectional(LSTM) (two fused LSTMs);
* ``lstm_k3`` / ``gru_k3`` / ``simplernn_k3``: Keras 3 layers, unroll off: WHILE loops;
* ``gru_stateful_tfkeras``: tf_keras GRU with ``stateful=True`` (not fused: a WHILE
  loop); the state is a tf.Variable (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE,
  CALL_ONCE initialisation);
* ``accumulator``: a tf.Module whose tf.Variable state is updated on every call.

The converter's dynamic-range mode leaves these small models' weights in float (weights
of fewer than 1024 elements are skipped; even a 32-unit fused LSTM stays float), so
the ``dynamic`` files are float models; the hybrid kernels are tested with single-op
models.

The converter has no path from Keras to SVDF, RNN or UNIDIRECTIONAL_SEQUENCE_RNN (no
fusion pass emits them), so those kernels are tested with single-op models only.

Every TensorFlow step (training, each conversion) runs in its own child process: the
converter can crash hard (SIGSEGV) on some int8 control-flow models.
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
OUT = ROOT / "tests" / "fixtures" / "recurrent"
SEED = 4321
T, F, CLASSES = 8, 4, 3
N_TRAIN, N_CALIB = 256, 16
MODES = ["float32", "dynamic", "int8"]
STATEFUL = ("gru_stateful_tfkeras", "accumulator")

MODELS = {
    "lstm_tfkeras": "tf_keras LSTM(12) -> Dense(3) (fused UNIDIRECTIONAL_SEQUENCE_LSTM)",
    "lstm_seq_tfkeras": "tf_keras LSTM(8, return_sequences) -> LSTM(6) -> Dense(3)",
    "bilstm_tfkeras": "tf_keras Bidirectional(LSTM(6)) -> Dense(3)",
    "lstm_k3": "Keras 3 LSTM(8) -> Dense(3) (WHILE loop)",
    "gru_k3": "Keras 3 GRU(8) -> Dense(3) (WHILE loop)",
    "simplernn_k3": "Keras 3 SimpleRNN(8) -> Dense(3) (WHILE loop)",
    "gru_stateful_tfkeras": "tf_keras GRU(6, stateful=True) -> Dense(3) (WHILE loop; state in a tf.Variable)",
    "accumulator": "tf.Module: s <- tanh(x W + 0.5 s) kept in a tf.Variable, output s",
}


def make_data(n, seed):
    """Noisy sinusoids; the class is the frequency band."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    freq = 0.3 + 0.5 * y + rng.uniform(-0.1, 0.1, n)
    t = np.arange(T)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, F))
    x = np.sin(freq[:, None, None] * t + phase) + 0.1 * rng.normal(size=(n, T, F))
    return x.astype(np.float32), y.astype(np.int64)


def _import_tf():
    import tensorflow as tf
    tf.random.set_seed(SEED)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def build(name, tf):
    """(callable model, list of trainable variables' owner) for a model name."""
    if name.endswith("tfkeras"):
        import tf_keras as K
        K.utils.set_random_seed(SEED)
        inp = K.Input((T, F), batch_size=1)
        if name == "lstm_tfkeras":
            h = K.layers.LSTM(12)(inp)
        elif name == "lstm_seq_tfkeras":
            h = K.layers.LSTM(8, return_sequences=True)(inp)
            h = K.layers.LSTM(6)(h)
        elif name == "gru_stateful_tfkeras":
            h = K.layers.GRU(6, stateful=True)(inp)
        else:
            h = K.layers.Bidirectional(K.layers.LSTM(6))(inp)
        out = K.layers.Dense(CLASSES)(h)
        return K.Model(inp, out), K
    if name == "accumulator":
        return None, None
    import keras as K
    K.utils.set_random_seed(SEED)
    inp = K.Input((T, F), batch_size=1)
    layer = {"lstm_k3": lambda: K.layers.LSTM(8, unroll=False),
             "gru_k3": lambda: K.layers.GRU(8, unroll=False),
             "simplernn_k3": lambda: K.layers.SimpleRNN(8, unroll=False)}[name]()
    out = K.layers.Dense(CLASSES)(layer(inp))
    return K.Model(inp, out), K


class _Accumulator:
    def __init__(self, tf):
        rng = np.random.default_rng(SEED)
        self.module = tf.Module()
        self.module.w = tf.Variable(rng.normal(0, 0.5, (T * F, 8)).astype(np.float32), name="w")
        self.module.state = tf.Variable(np.zeros((1, 8), np.float32), name="state")

        @tf.function(input_signature=[tf.TensorSpec([1, T, F], tf.float32, name="input")])
        def serve(x):
            s = tf.tanh(tf.matmul(tf.reshape(x, [1, T * F]), self.module.w) + 0.5 * self.module.state)
            self.module.state.assign(s)
            return s
        self.serve = serve


def worker_train(name, work):
    tf = _import_tf()
    if name == "accumulator":
        return
    model, K = build(name, tf)
    x, y = make_data(N_TRAIN, SEED)
    model.compile(optimizer=K.optimizers.Adam(0.01),
                  loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=1, epochs=1, steps_per_epoch=64, verbose=0, shuffle=False)
    if name == "gru_stateful_tfkeras":
        model.layers[1].reset_states()
    np.savez(work / f"{name}_weights.npz", *model.get_weights())


def _ops(buf):
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


def worker_convert(name, mode, work, result_path):
    tf = _import_tf()
    calib = np.load(OUT / f"{name}_calib.npy")
    if name == "accumulator":
        acc = _Accumulator(tf)
        fn, owner = acc.serve.get_concrete_function(), acc.module
    else:
        model, _ = build(name, tf)
        with np.load(work / f"{name}_weights.npz") as z:
            model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])

        @tf.function(input_signature=[tf.TensorSpec([1, T, F], tf.float32, name="input")])
        def serve(x):
            return model(x, training=False)
        fn, owner = serve.get_concrete_function(), model
    if name in STATEFUL:
        # Mutated tf.Variables: through a SavedModel, so the converter emits their
        # initialisation (CALL_ONCE of an init subgraph) and keeps them as resource
        # variables (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE).
        saved = work / f"{name}_saved"
        tf.saved_model.save(owner, str(saved), signatures={"serving_default": fn})
        conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    else:
        if not name.endswith("tfkeras"):
            # Keras 3 weights would otherwise stay uninitialised resource variables
            # (LiteRT then fails in READ_VARIABLE): freeze them into constants first.
            from tensorflow.python.framework.convert_to_constants import \
                convert_variables_to_constants_v2
            fn = convert_variables_to_constants_v2(fn)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], owner)
    if mode != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        def rep():
            for i in range(calib.shape[0]):
                yield [calib[i]]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    res = {"tf_version": tf.__version__}
    try:
        buf = conv.convert()
    except Exception as e:
        lines = [l for l in str(e).splitlines() if "rror" in l] or str(e).splitlines()
        res["status"] = f"converter error: {type(e).__name__}: {' | '.join(lines[:4])[:600]}"
    else:
        fname = f"{name}_{mode}.tflite"
        (OUT / fname).write_bytes(buf)
        res.update(status="ok", file=fname, ops=_ops(buf), size_bytes=len(buf),
                   sha256=hashlib.sha256(buf).hexdigest())
    Path(result_path).write_text(json.dumps(res))


def _env(keras3):
    env = dict(os.environ)
    env.update({"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                "TF_USE_LEGACY_KERAS": "0" if keras3 else "1", "KERAS_BACKEND": "tensorflow"})
    return env


def _child(args, keras3, log):
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    with open(log, "w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(keras3),
                                  timeout=900).returncode
        except subprocess.TimeoutExpired:
            return None


def _describe(rc):
    if rc is None:
        return "timeout"
    if rc < 0:
        import signal
        return f"converter process killed by {signal.Signals(-rc).name}"
    return f"exit code {rc}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
            keras3 = name.endswith("_k3")
            calib, _ = make_data(N_CALIB, SEED + 1)
            np.save(OUT / f"{name}_calib.npy", calib[:, None])
            rc = _child(["--worker", "train", name, str(work)], keras3, work / "train.log")
            if rc != 0:
                tail = (work / "train.log").read_text(errors="replace")[-800:]
                entries.append({"model": name, "mode": "train", "status": f"training failed "
                                f"({_describe(rc)}): {tail}"})
                print(name, "training failed", tail, flush=True)
                continue
            for mode in MODES:
                result = work / f"{name}_{mode}.json"
                rc = _child(["--worker", "convert", name, mode, str(work), str(result)], keras3,
                            work / "convert.log")
                entry = {"model": name, "mode": mode, "description": MODELS[name],
                         "calib": f"{name}_calib.npy"}
                if rc == 0 and result.exists():
                    entry.update(json.loads(result.read_text()))
                else:
                    tail = [l for l in (work / "convert.log").read_text(errors="replace").splitlines()
                            if l.strip() and not l.startswith(("WARNING: All log", "I0000", "E0000",
                                                               "W0000"))][-3:]
                    entry["status"] = f"{_describe(rc)}: {' | '.join(tail)[:600]}"
                    stale = OUT / f"{name}_{mode}.tflite"
                    if stale.exists():
                        stale.unlink()
                print(name, mode, entry["status"], entry.get("ops", ""), flush=True)
                entries.append(entry)
    entries.sort(key=lambda e: (list(MODELS).index(e["model"]) if e["model"] in MODELS else 99,
                                MODES.index(e["mode"]) if e["mode"] in MODES else -1))
    manifest_path.write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
