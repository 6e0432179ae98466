"""Helpers of the ``hyperlake update`` tests: a config file, the command in a
subprocess against an emulator, and the lake's rows read back for comparison."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from hyperlake.emulator.server import Emulator
from hyperlake.lake.store import Location
from hyperlake.query.catalog import connect
from hyperlake.schemas.times import format_instant
from tests.conftest import lake_tree
from tests.pipelines.test_candles_support import cli_env

UPDATE = [sys.executable, "-m", "hyperlake.cli", "update"]


def write_config(folder: Path, text: str, name: str = "hyperlake.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def update_env(emu: Emulator, now_ms: int, rate: float = 0.0, anchor: float | None = None,
               **extra: str | None) -> dict[str, str]:
    """The environment of an update run against ``emu``, its clock at ``now_ms`` (running
    at ``rate`` from the wall time ``anchor``, when given)."""
    env = cli_env(emu, HYPERLAKE_NOW=format_instant(now_ms), HYPERLAKE_BACKOFF_BASE="0.01",
                  **extra)
    if rate:
        env["HYPERLAKE_CLOCK_RATE"] = repr(rate)
        env["HYPERLAKE_CLOCK_ANCHOR"] = repr(anchor)
    return env


def run_update(config: Path, env: dict[str, str], *extra: str,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UPDATE, "--config", str(config), "--json", *extra], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def start_update(config: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*UPDATE, "--config", str(config), "--json", *extra], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def summary(result: subprocess.CompletedProcess[str] | str) -> dict[str, Any]:
    text = result if isinstance(result, str) else result.stdout
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"no JSON summary in {text!r}"
    value: dict[str, Any] = orjson.loads(lines[-1])
    return value


CANDLE_VALUES = "market, interval, epoch_ms(t), o, h, l, c, v, n, x"
FUNDING_VALUES = "market, epoch_ms(time), fundingRate, premium"


def lake_values(lake: Location, dataset: str,
                before_ms: int | None = None) -> list[tuple[Any, ...]]:
    """Every row of a compacted dataset (what a source said, not when it was fetched),
    sorted, optionally only keys before ``before_ms``."""
    columns, key = {"candles": (CANDLE_VALUES, "t"), "funding": (FUNDING_VALUES, "time")}[dataset]
    where = "" if before_ms is None else f" WHERE epoch_ms({key}) < {before_ms}"
    rows = connect(lake).execute(f"SELECT {columns} FROM {dataset}{where} ORDER BY ALL")
    return [tuple(r) for r in rows.fetchall()]


def leftovers(lake: Location) -> list[str]:
    """Temporary files of interrupted atomic writes, anywhere in the lake (an object
    store has none by construction: every object is one PUT)."""
    return [name for name in lake_tree(lake) if "/.tmp-" in f"/{name}"]
