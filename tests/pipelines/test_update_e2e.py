"""``hyperlake update`` end to end, against the emulator on loopback: runs hours apart
with a running clock land what one backfill lands; a downtime longer than the native
horizon takes the older part from the deeper source (or ledgers it); concurrent runs
leave one writer; a ``kill -9`` mid-run and another run land the same lake."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.store import Location
from hyperlake.query.catalog import connect
from hyperlake.query.loaders import features
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from hyperlake.schemas.times import format_instant
from tests.pipelines.test_candles_resume import wait_for
from tests.pipelines.test_candles_support import expected_rows, kill_group, ms, seed_universe
from tests.pipelines.update_support import (
    lake_values,
    leftovers,
    run_update,
    start_update,
    summary,
    update_env,
    write_config,
)

StartEmulator = Callable[..., Emulator]
T0 = ms("2026-03-30T06:00:00Z")
RATE = 60.0  # a minute a second
SETTLE_MS = 5 * MINUTE_MS

THREE_RUNS = '''\
lake = "{lake}"
[markets]
list = ["BTC", "kPEPE"]
[candles]
start = "2026-03-30T00:00:00Z"
[candles.hyperliquid]
intervals = ["1m", "1h"]
[funding]
start = "2026-03-29T00:00:00Z"
'''


def generous(emu_start: StartEmulator, now_ms: int, **extra: Any) -> Emulator:
    """An emulator whose weight budget no test run exhausts."""
    return emu_start(frozen_config(now_ms, info_weight_per_minute=10**7,
                                   hydromancer_weight_per_minute=10**7, **extra))


def run_at(emu: Emulator, config: Path, at_ms: int, rate: float = RATE,
           *extra: str) -> dict[str, Any]:
    """One update with the emulator's clock (and ours) running from ``at_ms``."""
    anchor = time.time()
    emu.set_clock(at_ms, rate)
    result = run_update(config, update_env(emu, at_ms, rate, anchor), *extra)
    assert result.returncode == 0, result.stderr
    return summary(result)


def test_three_runs_hours_apart_land_what_one_backfill_lands(
        make_emulator: StartEmulator, tmp_path: Path, lake_root: Location) -> None:
    """(On an s3:// root, compared with the one run on a local lake.)"""
    emu = generous(make_emulator, T0)
    lake, backfill = lake_root, tmp_path / "backfill"
    config = write_config(tmp_path, THREE_RUNS.format(lake=lake))
    runs = [run_at(emu, config, T0 + hours * HOUR_MS) for hours in (0, 2, 5)]

    assert [r["result"] for r in runs] == ["ok"] * 3
    assert all(r["violations"] == 0 and r["gaps"] == 0 for r in runs)
    assert runs[1]["planned"] < runs[0]["planned"], "a later run fetched history again"
    assert runs[1]["requests"] <= 2 * 2 + 2 + 1, "more than a window per series"
    one = run_at(emu, write_config(tmp_path, THREE_RUNS.format(lake=backfill), "b.toml"),
                 T0 + 5 * HOUR_MS)
    assert one["result"] == "ok"

    settled = T0 + 5 * HOUR_MS - SETTLE_MS
    for dataset in ("candles", "funding"):
        mine, theirs = lake_values(lake, dataset, settled), lake_values(backfill, dataset, settled)
        assert mine == theirs and len(mine) > 1000 if dataset == "candles" else mine == theirs
    assert not leftovers(lake)


def test_features_attach_the_latest_snapshot_at_or_before_each_bar(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    emu = generous(make_emulator, T0)
    lake = tmp_path / "lake"
    config = write_config(tmp_path, THREE_RUNS.format(lake=lake))
    for hours in (0, 2, 3):
        run_at(emu, config, T0 + hours * HOUR_MS, 0.0)
    snapshots = connect(lake).execute(
        "SELECT epoch_ms(time), mark_px FROM asset_ctxs WHERE market = 'BTC' ORDER BY 1"
    ).fetchall()
    assert [t for t, _ in snapshots] == [T0, T0 + 2 * HOUR_MS, T0 + 3 * HOUR_MS]

    frame = features(lake, "BTC", "1m", asset_ctxs=True)
    t = frame["t"].dt.epoch("ms")
    ctx = frame["ctx_time"].dt.epoch("ms")
    assert frame.filter(t < T0)["ctx_time"].null_count() == int((t < T0).sum())
    assert (ctx.filter(t >= T0) <= t.filter(t >= T0)).all(), "a snapshot from the future"
    later = frame.filter(pl.col("t").dt.epoch("ms") >= T0 + 2 * HOUR_MS)
    assert later["ctx_mark_px"].unique().to_list() == [snapshots[1][1]]
    between = frame.filter(pl.col("t").dt.epoch("ms").is_between(T0, T0 + 2 * HOUR_MS - 1))
    assert between["ctx_mark_px"].unique().to_list() == [snapshots[0][1]]


DOWNTIME = '''\
lake = "{lake}"
{deep}
[markets]
list = ["BTC"]
[candles]
start = "2026-03-25T00:00:00Z"
[candles.hyperliquid]
intervals = ["1m"]
[funding]
enabled = false
[asset_ctxs]
enabled = false
'''
T1 = ms("2026-03-26T00:00:00Z")
T2 = T1 + 4 * DAY_MS  # 5760 minutes later: beyond the 5000 most recent 1m candles


def test_after_a_downtime_beyond_the_horizon_the_deeper_source_takes_the_older_part(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    emu = generous(make_emulator, T1)
    lake = tmp_path / "lake"
    config = write_config(tmp_path, DOWNTIME.format(lake=lake, deep="[sources.hydromancer]"))
    first = run_at(emu, config, T1, 0.0)
    assert first["beyond_horizon"] == [] and first["planned"] == 1440

    anchor = time.time()
    emu.set_clock(T2, 0.0)
    result = run_update(config, update_env(emu, T2, 0.0, anchor))
    assert result.returncode == 0, result.stderr
    second = summary(result)
    horizon = T2 - 4999 * MINUTE_MS
    (beyond,) = second["beyond_horizon"]
    # the downtime's part beyond the horizon, and what the first run left provisional (an
    # empty bucket minutes before its head), now beyond it too
    old = (horizon - T1) // MINUTE_MS + first["provisional"]
    assert first["provisional"] == 1
    assert beyond == {"series": "candles hyperliquid BTC 1m",
                      "start": format_instant(T1 - DAY_MS), "end": format_instant(horizon),
                      "buckets": old, "taken": {"hydromancer": old}, "ledgered": 0}
    notes = [line for line in result.stderr.splitlines() if "beyond its reach" in line]
    assert len(notes) == 1 and f"{old} from hydromancer" in notes[0]

    rows = connect(lake).execute(
        "SELECT epoch_ms(t), o, h, l, c, v, n, source FROM candles ORDER BY t").fetchall()
    want = [(r[0], *r[1:6], r[7]) for r in expected_rows("hyperliquid", "1m",
                                                          T1 - DAY_MS, T2)]
    assert [r[:7] for r in rows] == want
    assert {r[7] for r in rows if T1 <= r[0] < horizon} == {"hydromancer"}
    assert {r[7] for r in rows if r[0] >= horizon or r[0] < T1 - 5 * MINUTE_MS} == {
        "hyperliquid"}


def test_without_a_deeper_source_the_old_part_goes_to_the_gap_ledger(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    emu = generous(make_emulator, T2)
    lake = tmp_path / "lake"
    config = write_config(tmp_path, DOWNTIME.format(lake=lake, deep=""))
    result = run_update(config, update_env(emu, T2))
    assert result.returncode == 4, result.stderr
    (beyond,) = summary(result)["beyond_horizon"]
    assert beyond["taken"] == {} and beyond["ledgered"] == beyond["buckets"] > 0
    assert "to the gap ledger" in result.stderr
    ledger = Series(LakePaths(lake), SeriesKey("candles", "hyperliquid", "BTC", "1m")).gaps()
    assert ledger and all("beyond hyperliquid's reach" in g.info["reason"] for g in ledger)
    again = run_update(config, update_env(emu, T2))
    assert again.returncode == 4 and summary(again)["requests"] == 0


SLOW = '''\
lake = "{lake}"
[markets]
list = ["BTC", "ETH", "kPEPE", "SOL"]
[candles]
start = "2026-03-28T00:00:00Z"
[candles.hyperliquid]
intervals = ["1m", "1h"]
[funding]
start = "2026-03-20T00:00:00Z"
'''
NOW = ms("2026-03-31T00:00:00Z")


def slow_emulator(make_emulator: StartEmulator, delay: float) -> Emulator:
    emu = generous(make_emulator, NOW)
    emu.set_faults([FaultRule("info", "slow", 1.0, delay)])
    return emu


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lake one uninterrupted run lands (once for the tests that compare with it)."""
    folder = tmp_path_factory.mktemp("reference")
    lake = folder / "lake"
    with Emulator(frozen_config(NOW, info_weight_per_minute=10**7)) as emu, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPERLAKE_PACING_DIR", str(folder / "pacing"))
        result = run_update(write_config(folder, SLOW.format(lake=lake)), update_env(emu, NOW))
    assert result.returncode == 0, result.stderr
    yield lake


def assert_same_lake(lake: Path, other: Path) -> None:
    for dataset in ("candles", "funding"):
        assert lake_values(lake, dataset) == lake_values(other, dataset)
    query = "SELECT market, epoch_ms(time), mark_px FROM asset_ctxs ORDER BY ALL"
    assert connect(lake).execute(query).fetchall() == connect(other).execute(query).fetchall()
    assert not leftovers(lake)


def test_eight_concurrent_updates_leave_one_writer_and_an_intact_lake(
        make_emulator: StartEmulator, tmp_path: Path, reference: Path) -> None:
    emu = slow_emulator(make_emulator, 0.5)
    lake = tmp_path / "lake"
    seed_universe(emu)
    config = write_config(tmp_path, SLOW.format(lake=lake))
    processes = [start_update(config, update_env(emu, NOW)) for _ in range(8)]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in processes]

    assert [code for code, _, _ in outcomes] == [0] * 8
    results = sorted(summary(out)["result"] for _, out, _ in outcomes)
    assert results == ["busy"] * 7 + ["ok"]
    busy = [err for _, out, err in outcomes if summary(out)["result"] == "busy"]
    assert all(len(e.strip().splitlines()) == 1 and "another hyperlake run holds the lake"
               in e for e in busy)
    assert_same_lake(lake, reference)


def test_kill_minus_9_mid_update_then_update_lands_the_same_lake(
        make_emulator: StartEmulator, tmp_path: Path, reference: Path) -> None:
    emu = slow_emulator(make_emulator, 0.3)
    lake = tmp_path / "lake"
    seed_universe(emu)
    config = write_config(tmp_path, SLOW.format(lake=lake))
    process = start_update(config, update_env(emu, NOW))
    def parts() -> list[Path]:
        return list(lake.glob("_checkpoints/candles/**/part-*.parquet"))

    assert wait_for(lambda: len(parts()) >= 2 or process.poll() is not None)
    assert process.poll() is None, "the run ended before it could be killed"
    kill_group(process)
    assert process.returncode == -9

    emu.set_faults([])
    again = run_update(config, update_env(emu, NOW))
    assert again.returncode == 0, again.stderr
    assert summary(again)["result"] == "ok"
    assert_same_lake(lake, reference)
    quiet = run_update(config, update_env(emu, NOW), "--quiet")
    assert summary(quiet)["series_updated"] == 0


