"""pytest plugin (entry point ``pytest11``): golden baselines of models in your tests.

Installed with quantcore, it adds the ``quantcore_baseline`` fixture::

    def test_model_unchanged(quantcore_baseline):
        quantcore_baseline.check("models/kws_int8.tflite", np.load("kws_inputs.npz"))

The baseline directory is ``--quantcore-baseline DIR`` on the command line, or
``quantcore_baseline_dir = DIR`` in the ini file (relative to the ini file). Run
once with ``--quantcore-record`` to record (or re-record) the baselines the tests
touch; later runs fail when a model's graph, quantization parameters or outputs
moved away from the recorded ones, with the list of what changed. The baselines
are :mod:`quantcore.baseline` files (``DIR/<name>.json`` + ``DIR/<name>.npz``),
so ``quantcore baseline check DIR`` checks the same files outside pytest.

The plugin imports nothing from quantcore until a test uses the fixture, so it
costs nothing in test sessions that do not. :func:`quantcore.testing.assert_bit_exact`
and :func:`quantcore.testing.assert_same_quantization` need no plugin.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantcore", "quantcore model baselines")
    group.addoption("--quantcore-baseline", metavar="DIR", default=None,
                    help="directory of quantcore model baselines (quantcore_baseline fixture)")
    group.addoption("--quantcore-record", action="store_true", default=False,
                    help="record (or re-record) the baselines checked by quantcore_baseline")
    parser.addini("quantcore_baseline_dir", "directory of quantcore model baselines, relative to the "
                  "ini file", default="")


def _directory(config: pytest.Config) -> Path | None:
    opt = config.getoption("--quantcore-baseline")
    if opt:
        return Path(opt).absolute()
    ini = config.getini("quantcore_baseline_dir")
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return (base / str(ini)).absolute()
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    d = _directory(config)
    if d is None:
        return None
    mode = "recording" if config.getoption("--quantcore-record") else "checking"
    return f"quantcore baselines: {d} ({mode})"


class QuantcoreBaseline:
    """What the ``quantcore_baseline`` fixture returns."""

    def __init__(self, directory: Path | None, record: bool, test_name: str) -> None:
        self.directory = directory
        self.record = record
        self.test_name = test_name

    def check(self, model: Any, inputs: Any = None, *, name: str | None = None,
              numerics: str | Iterable[str] = ("reference",), tolerance: int = 0):
        """Compare ``model`` (path or bytes) with its baseline ``name`` (default: the
        file stem, or the test's name for bytes), running it on ``inputs`` (default:
        the recorded inputs; seeded random when recording) in each ``numerics`` mode.
        With ``--quantcore-record``, record instead. Fails the test with the list of
        what changed; returns the :class:`~quantcore.baseline.ModelCheck` (or
        :class:`~quantcore.baseline.Recorded`).
        """
        from quantcore import baseline

        __tracebackhide__ = True
        if self.directory is None:
            pytest.fail("quantcore_baseline needs a directory: pass --quantcore-baseline DIR or set "
                        "quantcore_baseline_dir in the ini file", pytrace=False)
        modes = [numerics] if isinstance(numerics, str) else list(numerics)
        if name is None:
            name = (baseline.model_name(model) if isinstance(model, (str, os.PathLike))
                    else re.sub(r"[^A-Za-z0-9_.-]", "_", self.test_name))
        if self.record:
            return baseline.record_model(model, self.directory, name=name, inputs=inputs, numerics=modes)
        manifest = self.directory / f"{name}.json"
        if not manifest.exists():
            pytest.fail(f"no quantcore baseline {name!r} in {self.directory}; run pytest with "
                        f"--quantcore-record to record it", pytrace=False)
        result = baseline.check_model(self.directory, name, model=model, inputs=inputs,
                                      tolerance=tolerance, numerics=modes)
        recorded = {n.numerics for n in result.numerics}
        missing = [m for m in modes if m not in recorded]
        if result.error is None and missing:
            pytest.fail(f"quantcore baseline {name!r} has no {', '.join(missing)} outputs; re-record with "
                        f"--quantcore-record", pytrace=False)
        if not result.passed:
            detail = "\n".join("  " + line for line in result.details())
            pytest.fail(f"model {name!r} differs from its quantcore baseline in {self.directory}:\n{detail}\n"
                        f"(if the change is intended, re-record with --quantcore-record)", pytrace=False)
        return result


@pytest.fixture
def quantcore_baseline(request: pytest.FixtureRequest) -> QuantcoreBaseline:
    """Golden baseline of a model: ``quantcore_baseline.check(model, inputs, name=...)``."""
    config = request.config
    return QuantcoreBaseline(_directory(config), bool(config.getoption("--quantcore-record")),
                             request.node.name)
