"""Deterministic, NumPy-only data for the benchmark models.

Imported both by ``benchmarks/make_models.py`` (under the TensorFlow venv) and by
``benchmarks/run.py`` (quantcore's environment), so the converter and quantcore
calibrate from the very same 32 samples without committing 19 MB of ``.npy``.
"""
from __future__ import annotations

import numpy as np

SEED = 4321
N_CALIB = 32

# name -> (input shape without batch, classes, value range)
SPECS = {
    "mobilenet_v2_224": ((224, 224, 3), 1000, (-1.0, 1.0)),
    "cnn28": ((28, 28, 1), 10, (0.0, 1.0)),
}


def _smooth_field(rng: np.random.RandomState, n: int, h: int, w: int, c: int, low: int) -> np.ndarray:
    """n smooth random fields [h, w, c] in (-1, 1): a coarse normal grid, bilinear upsampled."""
    coarse = rng.standard_normal((n, low, low, c)).astype(np.float32)
    ys = np.linspace(0, low - 1, h)
    xs = np.linspace(0, low - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, low - 2)
    x0 = np.floor(xs).astype(int).clip(0, low - 2)
    fy = (ys - y0)[None, :, None, None].astype(np.float32)
    fx = (xs - x0)[None, None, :, None].astype(np.float32)
    rows = coarse[:, y0] * (1 - fy) + coarse[:, y0 + 1] * fy
    return np.tanh(rows[:, :, x0] * (1 - fx) + rows[:, :, x0 + 1] * fx).astype(np.float32)


def images(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` labelled images for model ``name``: class prototypes + clutter + noise.

    The task is learnable (a few training steps move the weights and batch-norm
    statistics away from their initial values, so quantization ranges are realistic).
    Returns (float32 [n, H, W, C] in the model's value range, int32 labels).
    """
    (h, w, c), classes, (lo, hi) = SPECS[name]
    protos = _smooth_field(np.random.RandomState(SEED + 7), min(classes, 64), h, w, c, low=6)
    rng = np.random.RandomState(seed)
    y = rng.randint(0, classes, size=n)
    contrast = rng.uniform(0.6, 1.2, size=(n, 1, 1, 1)).astype(np.float32)
    clutter = _smooth_field(rng, n, h, w, c, low=12)
    noise = rng.standard_normal((n, h, w, c)).astype(np.float32)
    u = 0.5 + 0.25 * contrast * protos[y % len(protos)] + 0.2 * clutter + 0.06 * noise
    u = np.clip(u, 0.0, 1.0)
    return (lo + (hi - lo) * u).astype(np.float32), y.astype(np.int32)


def calibration(name: str) -> np.ndarray:
    """The 32 calibration samples, float32 [32, H, W, C] (same for converter and quantcore)."""
    return images(name, N_CALIB, SEED + 3)[0]
