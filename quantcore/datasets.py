"""Loading representative data and model inputs from files.

* ``.npy``: an array whose first axis indexes samples, for a single-input model
  (``[N, *input_shape_without_batch]`` or ``[N, *input_shape]``);
* ``.npz``: one such array per model input, keyed by input name (or signature
  input name), or ``arr_0``, ``arr_1``, ... in input order;
* a directory: every ``.npy`` file in it (sorted) is one sample for a
  single-input model, or every image (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``;
  Pillow needed) decoded to RGB or grayscale to match the input's channels,
  resized to the input's height and width and scaled to [0, 1] as float32.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from quantcore.errors import CalibrationError, InputError
from quantcore.schema.model import Model, numpy_dtype

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _input_specs(model: Model) -> list[tuple[str, list[int], np.dtype]]:
    sg = model.subgraphs[0]
    return [(sg.tensors[i].name, list(sg.tensors[i].shape), numpy_dtype(sg.tensors[i].type))
            for i in sg.inputs]


def _as_samples(arr: np.ndarray, shape: list[int], name: str, source: str) -> np.ndarray:
    """[N, *shape] from [N, *shape[1:]] or [N, *shape] (batch 1 models)."""
    if list(arr.shape[1:]) == shape:
        return arr
    if list(arr.shape[1:]) == shape[1:] and shape and shape[0] == 1:
        return arr[:, None]
    raise CalibrationError(f"{source}: array for input {name!r} has shape {list(arr.shape)}; expected "
                           f"[N, {', '.join(map(str, shape[1:]))}] (N samples of input shape {shape})")


def sample_arrays(data, specs: list, source: str) -> list[np.ndarray]:
    """The per-input ``[N, *shape]`` sample arrays of a loaded ``.npy`` (one input) or
    ``.npz`` (by input name, ``arr_k``, or in order when the counts agree), checked:
    shapes, equal sample counts, dtype kinds, at least one sample."""
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise CalibrationError(f"{source}: a .npy file holds data for one input; the model has "
                                   f"{len(specs)} ({', '.join(s[0] for s in specs)}): use a .npz")
        arrays = [_as_samples(data, specs[0][1], specs[0][0], source)]
    else:
        keys = list(data.keys())
        arrays = []
        for k, (name, shape, _) in enumerate(specs):
            key = name if name in data else (f"arr_{k}" if f"arr_{k}" in data else
                                             (keys[k] if len(keys) == len(specs) else None))
            if key is None:
                raise CalibrationError(f"{source}: no array for input {name!r} (has {keys})")
            arrays.append(_as_samples(data[key], shape, name, source))
        if len({len(a) for a in arrays}) > 1:
            raise CalibrationError(f"{source}: inputs have different sample counts "
                                   f"{[len(a) for a in arrays]}")
    for (name, _, dtype), a in zip(specs, arrays):
        if a.dtype.kind != np.dtype(dtype).kind:
            raise CalibrationError(f"{source}: input {name!r} has dtype {a.dtype}, the model expects {dtype}")
    if len(arrays[0]) == 0:
        raise CalibrationError(f"{source}: the calibration data has no samples")
    return arrays


def representative_dataset(path: str | os.PathLike, model: Model) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A TFLite-style representative dataset (callable returning an iterator of
    per-sample input lists) read from ``path``."""
    p = Path(path)
    specs = _input_specs(model)
    if not p.exists():
        raise InputError(f"calibration data {os.fspath(p)!r} does not exist")
    if p.is_dir():
        return _directory(p, specs)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read calibration data {os.fspath(p)!r}: {e}") from None
    arrays = sample_arrays(data, specs, p.name)
    n = len(arrays[0])
    return lambda: ([a[i].astype(dtype) for a, (_, _, dtype) in zip(arrays, specs)] for i in range(n))


def _directory(p: Path, specs) -> Callable[[], Iterator[list[np.ndarray]]]:
    if len(specs) != 1:
        raise CalibrationError(f"{p}: a directory of samples needs a single-input model")
    name, shape, dtype = specs[0]
    npys = sorted(f for f in p.iterdir() if f.suffix == ".npy")
    images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not npys and not images:
        raise CalibrationError(f"{p}: no .npy files or images ({', '.join(IMAGE_SUFFIXES)}) in the directory")
    if npys:
        def gen():
            for f in npys:
                a = np.load(f, allow_pickle=False)
                if list(a.shape) == shape[1:]:
                    a = a[None]
                if list(a.shape) != shape:
                    raise CalibrationError(f"{f.name}: shape {list(a.shape)}, input {name!r} needs {shape}")
                yield [a.astype(dtype)]
        return gen
    if len(shape) != 4 or shape[3] not in (1, 3):
        raise CalibrationError(f"{p}: images need an NHWC input with 1 or 3 channels, input {name!r} is {shape}")
    try:
        from PIL import Image
    except ImportError:
        raise CalibrationError("reading images needs Pillow: pip install pillow") from None

    def gen_images():
        for f in images:
            try:
                img = Image.open(f).convert("L" if shape[3] == 1 else "RGB").resize((shape[2], shape[1]))
            except OSError as e:
                raise CalibrationError(f"{f.name}: cannot decode image: {e}") from None
            a = np.asarray(img, np.float32) / 255.0
            yield [a.reshape(shape).astype(dtype)]
    return gen_images
