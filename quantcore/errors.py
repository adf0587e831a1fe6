"""The quantcore error hierarchy.

Every failure caused by bad input (a malformed model, an unsupported operator, bad
calibration data, a wrong input array) raises a subclass of :class:`QuantcoreError`
whose message names what is wrong and where, using a path into the model such as
``subgraphs[0].operators[12].inputs[1]``.
"""
from __future__ import annotations

from collections.abc import Iterable


class QuantcoreError(Exception):
    """Base class of every error quantcore raises on bad input."""


class ModelFormatError(QuantcoreError):
    """The .tflite bytes or the in-memory model are malformed or inconsistent.

    ``path`` is the location in the model (``subgraphs[0].tensors[5].buffer``), or
    ``""`` when the whole file is at fault.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class UnsupportedOpError(QuantcoreError):
    """An operator (or an operator/type combination) quantcore cannot run."""

    def __init__(self, op: str, version: int | None = None, supported: Iterable[str] = (),
                 path: str = "", detail: str = "") -> None:
        self.op = op
        self.version = version
        self.supported = sorted(supported)
        self.path = path
        where = f"{path}: " if path else ""
        ver = f" (version {version})" if version is not None else ""
        msg = f"{where}unsupported operator {op}{ver}"
        if detail:
            msg += f": {detail}"
        if self.supported:
            msg += f". Supported: {', '.join(self.supported)}"
        super().__init__(msg)


class CalibrationError(QuantcoreError):
    """Calibration data is unusable (NaN, wrong shape, empty dataset, ...)."""


class InputError(QuantcoreError, ValueError):
    """An input array, file or argument given by the user is wrong.

    Also a ``ValueError``, as LiteRT raises for the same mistakes, so scripts written
    for ``ai_edge_litert.interpreter.Interpreter`` keep working.
    """


class NumericsPathError(QuantcoreError):
    """The requested LiteRT numerics path cannot produce a result for this model.

    Raised where the LiteRT kernel being mirrored would abort the process (for
    example the reference int8 SOFTMAX on a tiny input scale); the message says why
    and which other path can run the model.
    """


class ResourceLimitError(QuantcoreError):
    """The machine ran out of memory for an operator's working arrays.

    The reader refuses tensors a model declares beyond its memory budget, but kernels
    also hold int64/float64 working copies (up to ~16x an output's bytes), and the
    free memory is the machine's, not the model's, to decide. Raised with the
    operator's path instead of letting a ``MemoryError`` escape.
    """


class LoopLimitError(ResourceLimitError):
    """Work that would run past ``Interpreter(max_loop_iterations=...)``: a WHILE loop
    whose condition has not turned false after that many body runs (LiteRT would loop
    forever), or a sequence op (LSTM, RNN) with more time steps than that. A bound on
    time, as the memory budget is a bound on space; raise the limit for longer runs.
    """
