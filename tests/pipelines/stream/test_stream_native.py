"""The native scanner is built by the install (a fresh machine has gcc and the Python
headers), and states the limits the Python side does. Without it everything works on
msgspec alone, slower: this is the test that says so."""

from __future__ import annotations

import importlib

from hyperlake.pipelines.stream import trades


def test_the_native_scanner_is_built() -> None:
    assert trades.NATIVE_SCANNER, (
        "hyperlake/pipelines/stream/_scan.c was not compiled at install (no C compiler "
        "or Python headers?): install them and run pip install -e . again")


def test_the_scanner_uses_the_limits_the_python_side_states() -> None:
    scan = importlib.import_module("hyperlake.pipelines.stream._scan")
    assert scan.SIZE_SCALE == trades.SIZE_SCALE
    assert scan.PLAIN_SUM_LIMIT == trades.PLAIN_SUM_LIMIT
