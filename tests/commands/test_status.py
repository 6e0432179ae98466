"""``hyperlake status``: what each series holds, computed from names and small state
files only (the partition files here are not even Parquet), without changing a file;
the last update run and a streamer's health."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import orjson
import pytest

from hyperlake.cli import main
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import COVERED, LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import Location
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from hyperlake.schemas.times import format_instant, parse_instant
from tests.conftest import lake_tree

NOW = parse_instant("2026-03-31T00:00:00Z", "test")
DAY0 = NOW - 3 * DAY_MS


def build(lake: Location) -> None:
    """BTC 1h: three days compacted (one a 2-hour hole), one bucket failed, one
    provisional, 5 empty; ETH 1m: one part not compacted yet; partitions that are not
    Parquet (status must not open them)."""
    paths = LakePaths(lake)
    btc = Series(paths, SeriesKey("candles", "hyperliquid", "BTC", "1h"))
    btc.record_coverage([Span(DAY0, DAY0 + DAY_MS), Span(DAY0 + DAY_MS + 2 * HOUR_MS,
                                                         NOW - HOUR_MS)])
    btc.ledger.record(Failure(Span(NOW - 2 * HOUR_MS, NOW - HOUR_MS), "http 500"))
    btc.provisional.record(Failure(Span(NOW - HOUR_MS, NOW), "empty near the head"))
    days = {"2026-03-28": [24, DAY0, DAY0 + 23 * HOUR_MS],
            "2026-03-29": [20, DAY0 + DAY_MS + 2 * HOUR_MS, DAY0 + DAY_MS + 23 * HOUR_MS],
            "2026-03-30": [19, DAY0 + 2 * DAY_MS, NOW - 3 * HOUR_MS]}
    paths.store.put(paths.row_index("candles", "BTC", "1h"), orjson.dumps(days))
    for date in days:
        paths.store.put(paths.partition("candles", "BTC", "1h", date) / "part-0.parquet",
                        b"not parquet at all")
    eth = Series(paths, SeriesKey("candles", "dwellir", "ETH", "1m"))
    job = eth.job_folder(Span(NOW - 10 * MINUTE_MS, NOW)) / "shard-000"
    paths.store.put(job / f"part-{NOW - 10 * MINUTE_MS}-{NOW - 4 * MINUTE_MS}.parquet", b"x")
    markers = paths.store.files(btc.coverage_folder, "*")
    assert markers and all(COVERED.parse(m.name) is not None for m in markers)


def status(lake: Location, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPERLAKE_NOW", format_instant(NOW))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["status", "--lake", str(lake), *argv])
    return code, out.getvalue(), err.getvalue()


def test_status_counts_from_names_and_changes_nothing(lake_root: Location) -> None:
    build(lake_root)
    before = lake_tree(lake_root)
    code, out, err = status(lake_root, "--json")
    assert code == 0, err
    assert lake_tree(lake_root) == before
    data = orjson.loads(out)
    by = {(s["dataset"], s["market"], s["interval"]): s for s in data["series"]}
    btc = by[("candles", "BTC", "1h")]
    assert btc["first"] == format_instant(DAY0)
    assert btc["last"] == format_instant(NOW - 3 * HOUR_MS)
    assert btc["covered_to"] == format_instant(NOW - HOUR_MS)
    assert btc["lag_s"] == 3600
    assert btc["missing"] == 2 + 1  # the hole, and the hour after the covered extent
    assert btc["gaps"] == 1 and btc["provisional"] == 1
    assert btc["rows"] == 63 and btc["empty"] == (3 * 24 - 2 - 1) - 63
    eth = by[("candles", "ETH", "1m")]
    assert eth["pending_parts"] == 1 and eth["rows"] is None and eth["empty"] is None
    assert eth["missing"] == 4  # after the part, up to now
    assert data["last_update"] is None and data["stream"] is None


def test_status_shows_the_last_update_run_and_the_streamer(lake_root: Location) -> None:
    build(lake_root)
    paths = LakePaths(lake_root)
    paths.store.put(paths.update_record, orjson.dumps({
        "finished": "2026-03-30T23:55:00Z", "result": "gaps", "exit": 4, "seconds": 1.5,
        "requests": 12, "gaps": 1, "errors": []}))
    paths.store.put(paths.stream_status, orjson.dumps({
        "pid": os.getpid(), "last_frame": "2026-03-30T23:59:59Z", "connections": 2,
        "reconnects": 0, "awaiting_repair": {}}))
    code, out, _ = status(lake_root)
    assert code == 0
    assert "last update: 2026-03-30T23:55:00Z (gaps, exit 4), 1.5s, 12 requests" in out
    assert "stream: running" in out and "2 connections" in out
    for needle in ("candles", "BTC", "2026-03-28 00:00", "ETH"):
        assert needle in out
    code, out, _ = status(lake_root, "--json", "--market", "ETH")
    data = orjson.loads(out)
    assert [s["market"] for s in data["series"]] == ["ETH"]
    assert data["stream"]["alive"] is True and data["last_update"]["exit"] == 4


def test_status_of_a_missing_lake_is_one_line(tmp_path: Path) -> None:
    code, _, err = status(tmp_path / "nope")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
