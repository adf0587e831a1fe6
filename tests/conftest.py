"""Shared test fixtures: the LiteRT oracle and the --slow switch."""
from __future__ import annotations

import os

import pytest

from quantcore.oracle import LiteRTOracle


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="deep randomized settings (many more hypothesis examples)")


def pytest_configure(config):
    if config.getoption("--slow"):
        os.environ["QUANTCORE_SLOW"] = "1"


@pytest.fixture(scope="session")
def oracle():
    """One LiteRT worker process for the whole session (restarted if LiteRT aborts)."""
    o = LiteRTOracle()
    yield o
    o.close()
