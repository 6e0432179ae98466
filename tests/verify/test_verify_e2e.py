"""``hyperlake verify`` after the real pipeline: extract from the emulator, compact,
verify — the commands as a user runs them, in subprocesses.

Candles from Dwellir (1s: some buckets empty, confirmed by 404s) must verify clean;
funding over the recorded 2023 BTC history must verify with exactly the cadence
warnings the real exchange produced (a missing hour, two off-hour rows), exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from hyperlake.emulator.server import Emulator
from tests.conftest import DWELLIR_KEY

NOW_ISO = "2026-03-31T00:00:00Z"


def env_for(emu: Emulator) -> dict[str, str]:
    env = {**os.environ,
           "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
           "HYPERLAKE_DWELLIR_URL": emu.urls.dwellir,
           "HYPERLAKE_DWELLIR_KEY": DWELLIR_KEY,
           "HYPERLAKE_NOW": NOW_ISO,
           "HYPERLAKE_HYPERLIQUID_WEIGHT": "1000000"}
    env.pop("HYPERLAKE_LAKE", None)
    return env


def hyperlake(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperlake.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def verify_json(env: dict[str, str], lake: Path, *argv: str) -> dict[str, Any]:
    report: dict[str, Any] = orjson.loads(ok(hyperlake(env, "verify", "--lake", str(lake),
                                                       "--json", *argv)))
    return report


def test_dwellir_candles_compacted_verify_clean(emulator: Emulator, tmp_path: Path) -> None:
    env = env_for(emulator)
    ok(hyperlake(env, "candles", "--source", "dwellir", "--market", "BTC", "--interval", "1s",
                 "--start", "2026-03-30T23:58:00Z", "--end", "2026-03-31T00:00:00Z",
                 "--lake", str(tmp_path), "--rate", "20000", "--json"))
    ok(hyperlake(env, "compact", "--lake", str(tmp_path)))
    report = verify_json(env, tmp_path)
    [one] = report["series"]
    assert report["ok"] is True and report["violations"] == 0 and report["warnings"] == 0
    assert one["coverage"]["buckets"] == 120
    empty = one["findings"]["empty"]["count"]
    # the range ends at the emulator's now: its empty buckets are within the settle
    # window of the head, so they are provisional, not confirmed empty
    provisional = one["findings"]["provisional"]["count"]
    assert one["rows"] + empty + provisional == 120 and one["rows"] > 0
    assert provisional > 0 and empty == 0
    assert one["rows_by_source"] == {"dwellir": one["rows"]}


def test_real_2023_funding_verifies_with_cadence_warnings(emulator: Emulator,
                                                          tmp_path: Path) -> None:
    env = env_for(emulator)
    ok(hyperlake(env, "funding", "--coins", "BTC", "--start", "2023-05-20T00:00:00Z",
                 "--end", "2023-07-15T00:00:00Z", "--lake", str(tmp_path), "--json"))
    ok(hyperlake(env, "compact", "--lake", str(tmp_path)))
    report = verify_json(env, tmp_path, "--dataset", "funding")
    [one] = report["series"]
    found = {name: f for name, f in one["findings"].items() if f["count"]}
    assert report["violations"] == 0
    assert set(found) == {"missing_hours", "off_hour"}
    assert found["missing_hours"]["first"] == ["2023-07-02T20:00:00Z"]
    assert [t[:19] for t in found["off_hour"]["first"]] == ["2023-05-23T08:23:53",
                                                           "2023-07-12T18:00:05"]
    assert one["rows"] == 19 * 3 + 37 * 24 - 1
