"""No silent loss at the head of the data: answers a source gives about buckets near
the head of its own data are provisional until a later run confirms them.

The scenario of the report: the source's clock (the emulator's) is 30 minutes behind
ours. Its candles after 12:30 do not exist yet and its 12:00 hour is still open; a
run must neither confirm those buckets as empty nor store the open candle as closed,
and a later run, once the source has moved on, must fill them with the real candles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.ledger import Failure
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.pipelines.head import NOT_SETTLED, Head, unsettled_empties
from hyperlake.schemas.intervals import HOUR_MS, MINUTE_MS, SECOND_MS
from tests.conftest import DWELLIR_KEY, NOW_MS
from tests.pipelines.test_candles_support import (
    cli_env,
    expected_rows,
    extract,
    iso,
    lake_rows,
    ms,
    series_of,
)

SOURCE_NOW = ms("2026-03-30T12:30:00Z")  # the source's clock
CLIENT_NOW = ms("2026-03-30T13:00:00Z")  # ours, 30 minutes ahead
LATER = ms("2026-03-30T13:10:00Z")  # the source's clock at the second run
START, END = ms("2026-03-30T12:00:00Z"), ms("2026-03-30T13:00:00Z")


@pytest.fixture
def lagging(make_emulator: Any) -> Emulator:
    emu: Emulator = make_emulator(frozen_config(SOURCE_NOW,
                                                dwellir_rate_overrides={DWELLIR_KEY: 10**6}))
    return emu


def skewed_env(emu: Emulator, now_ms: int = CLIENT_NOW) -> dict[str, str]:
    return cli_env(emu, HYPERLAKE_NOW=iso(now_ms))


def closed_rows(source: str, interval: str, start: int, end: int) -> list[Any]:
    return list(expected_rows(source, interval, start, end))


# -- the rule ------------------------------------------------------------------------


def test_the_head_is_the_earlier_clock() -> None:
    head = Head(CLIENT_NOW, SOURCE_NOW, 300_000)
    assert head.now_ms == SOURCE_NOW and head.skew_ms == 30 * MINUTE_MS
    assert head.settle_line == SOURCE_NOW - 300_000
    assert Head(CLIENT_NOW, None, 0).now_ms == CLIENT_NOW
    assert Head(SOURCE_NOW, CLIENT_NOW, 0).skew_ms == -30 * MINUTE_MS
    assert head.closed(SOURCE_NOW - 1) and not head.closed(SOURCE_NOW)


def test_unsettled_empties_are_the_tail_without_answers() -> None:
    head = Head(CLIENT_NOW, SOURCE_NOW, 5 * MINUTE_MS)
    window = Span(START, END)
    answered = [START + i * MINUTE_MS for i in range(30)]  # 12:00 .. 12:29 have candles
    assert unsettled_empties(window, "1m", head, answered) == [
        Failure(Span(SOURCE_NOW, END), NOT_SETTLED)]
    # a hole inside the settle window is provisional too; one before it is not
    answered.remove(ms("2026-03-30T12:27:00Z"))
    answered.remove(ms("2026-03-30T12:10:00Z"))
    spans = [f.span for f in unsettled_empties(window, "1m", head, answered)]
    assert spans == [Span(ms("2026-03-30T12:27:00Z"), ms("2026-03-30T12:28:00Z")),
                     Span(SOURCE_NOW, END)]
    old = Span(START - 2 * HOUR_MS, START - HOUR_MS)
    assert unsettled_empties(old, "1m", head, []) == []


# -- end to end, against a source whose clock is behind ours -------------------------


@pytest.mark.parametrize("source", ["dwellir", "hyperliquid"])
def test_a_lagging_source_leaves_provisional_buckets_that_a_later_run_fills(
        lagging: Emulator, tmp_path: Path, source: str) -> None:
    first = extract(lagging, source, "1m", START, END, tmp_path, env=skewed_env(lagging))
    series = series_of(tmp_path, source, "1m")
    # what the source had, and no more: closed candles up to 12:29, nothing invented
    assert lake_rows(series) == closed_rows(source, "1m", START, SOURCE_NOW)
    assert first["fetched"] == 30 and first["empty"] == 0
    assert first["provisional"] == 30  # the open 12:30 candle and 12:31 .. 12:59
    assert first["clock_skew_s"] == 1800.0
    assert series.provisional.spans() == RangeSet([Span(SOURCE_NOW, END)])
    assert series.missing(Span(START, END)) == RangeSet([Span(SOURCE_NOW, END)])

    lagging.set_clock(LATER)  # the source moves on
    second = extract(lagging, source, "1m", START, END, tmp_path, env=skewed_env(lagging))
    assert second["planned"] == 30 and second["provisional"] == 0
    assert lake_rows(series) == closed_rows(source, "1m", START, END)
    assert not series.provisional.spans()
    third = extract(lagging, source, "1m", START, END, tmp_path, env=skewed_env(lagging))
    assert third["planned"] == 0 and third["requests"] == 0


def test_an_open_native_hour_is_not_stored_as_closed(lagging: Emulator,
                                                     tmp_path: Path) -> None:
    start = ms("2026-03-30T10:00:00Z")
    first = extract(lagging, "hyperliquid", "1h", start, END, tmp_path,
                    env=skewed_env(lagging))
    series = series_of(tmp_path, "hyperliquid", "1h")
    assert [row[0] for row in lake_rows(series)] == [start, start + HOUR_MS]
    assert first["provisional"] == 1
    lagging.set_clock(LATER)
    extract(lagging, "hyperliquid", "1h", start, END, tmp_path, env=skewed_env(lagging))
    assert lake_rows(series) == closed_rows("hyperliquid", "1h", start, END)


def test_the_skew_is_reported_in_one_line(lagging: Emulator, tmp_path: Path) -> None:
    from tests.pipelines.test_candles_support import candles_argv, run_cli, seed_universe

    seed_universe(lagging)
    argv = [a for a in candles_argv("dwellir", "1m", START, END, tmp_path) if a != "--json"]
    result = run_cli(argv, skewed_env(lagging))
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "clock" in line]
    assert len(warning) == 1
    assert "30m00s ahead of dwellir's" in warning[0]
    assert "30 buckets near the head of dwellir's data are provisional" in result.stderr


def test_empties_within_the_settle_window_of_now_are_provisional(
        emulator: Emulator, tmp_path: Path) -> None:
    """No skew at all: an index may still be ingesting the last minutes, so empty 1s
    buckets of the last HYPERLAKE_SETTLE seconds are provisional; older ones are not."""
    start = NOW_MS - 10 * MINUTE_MS
    env = cli_env(emulator, HYPERLAKE_SETTLE="120")
    summary = extract(emulator, "dwellir", "1s", start, NOW_MS, tmp_path, env=env)
    series = series_of(tmp_path, "dwellir", "1s")
    line = NOW_MS - 120 * SECOND_MS
    provisional = series.provisional.spans()
    assert provisional and all(span.start >= line for span in provisional)
    assert summary["provisional"] == buckets_in(provisional, "1s")
    assert summary["empty"] > 0  # older empty buckets are confirmed
    assert lake_rows(series) == closed_rows("dwellir", "1s", start, NOW_MS)
    # with no settle window nothing near now waits, and a re-run settles them
    again = extract(emulator, "dwellir", "1s", start, NOW_MS, tmp_path,
                    env=cli_env(emulator, HYPERLAKE_SETTLE="0"))
    assert again["planned"] == summary["provisional"] and again["provisional"] == 0
    assert not series.provisional.spans()


def test_funding_hours_a_lagging_source_has_not_published_are_provisional(
        lagging: Emulator, tmp_path: Path) -> None:
    from tests.pipelines.test_funding_support import extract as extract_funding
    from tests.pipelines.test_funding_support import funding_args, funding_env

    start, end = ms("2026-03-30T00:00:00Z"), ms("2026-03-30T14:00:00Z")
    env = funding_env(lagging, HYPERLAKE_NOW=iso(end))  # ours: 14:00, the source's: 12:30
    first = extract_funding(funding_args("BTC", start, end, tmp_path), env)
    assert first["rows"] == 13  # 00:00 .. 12:00 are published by the source's 12:30
    assert first["provisional"] == 1 and first["gaps"] == 0  # 13:00 is not, yet
    lagging.set_clock(ms("2026-03-30T14:10:00Z"))
    second = extract_funding(funding_args("BTC", start, end, tmp_path), env)
    assert second["rows"] == 1 and second["provisional"] == 0
