"""Writing :class:`~quantcore.schema.model.Model` back to .tflite bytes."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

import numpy as np

from quantcore.errors import InputError, ModelFormatError

from . import _flatbuf
from .model import Model

# FlatBuffers address with 32-bit offsets; LiteRT writes bigger models with
# buffers after the FlatBuffer, which quantcore does not write.
MAX_MODEL_BYTES = 2**31 - 1


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [_to_dict(x) for x in obj]
    return obj


def write_model(model: Model) -> bytes:
    """Serialize a model to .tflite bytes (file identifier ``TFL3``).

    Fields equal to their schema default are omitted, as the C++ builders do.
    Models whose constant data exceeds 2 GiB are refused with ``ModelFormatError``.
    """
    total = sum(len(b) for b in model.buffers)
    if total > MAX_MODEL_BYTES:
        raise ModelFormatError(f"constant data is {total} bytes: models over 2 GiB cannot be "
                               "written (the 2 GiB FlatBuffer limit)")
    root = _to_dict(model)
    for i, b in enumerate(root["buffers"]):
        if b["data"] is not None and not isinstance(b["data"], (bytes, bytearray, memoryview, np.ndarray)):
            raise ModelFormatError(f"data must be bytes, not {type(b['data']).__name__}", f"buffers[{i}]")
        b["offset"] = b["size"] = 0
    try:
        return _flatbuf.encode(root, size_hint=total + 65536)
    except (ValueError, TypeError, OverflowError) as e:
        raise ModelFormatError(f"cannot serialize model: {e}") from None


def save_model(model: Model | bytes, path: str | os.PathLike) -> None:
    """Write a model (or ready bytes) to ``path`` atomically.

    The bytes go to a temporary file in the target directory that is renamed into
    place only once complete, so an interrupted write never leaves a partial file.
    """
    data = model if isinstance(model, (bytes, bytearray)) else write_model(model)
    atomic_write(path, bytes(data))


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file and ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".quantcore-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InputError(f"cannot write {path!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as e:
        _silent_unlink(tmp)
        raise InputError(f"cannot write {path!r}: {e.strerror}") from None
    except BaseException:
        _silent_unlink(tmp)
        raise


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
