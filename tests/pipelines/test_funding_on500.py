"""``--on-500 empty|split|skip-coin`` under injected HTTP 500s, then recovery.

Every test saves the universe snapshot first, so the only requests of a run are
``fundingHistory`` (the injected 500s are per endpoint and would hit ``meta`` too).
Runs are in-process, with HYPERLAKE_MAX_ATTEMPTS=2 and fast backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.times import format_instant
from tests.conftest import NOW_MS
from tests.pipelines.test_funding_support import (
    DAY_MS,
    FAST_WEIGHT,
    ApiRow,
    assert_complete,
    extract,
    funding_args,
    funding_env,
    gap_spans,
    info_requests,
    lake_rows,
    model_hours,
    model_rows,
    ms,
    part_rows,
    record_requests,
    requested_spans,
    run_funding,
    series_of,
    stat,
    values,
    warm_universe,
)

START, END = ms("2026-03-20T00:00:00Z"), ms("2026-03-22T00:00:00Z")
DAYS = [Span(START, START + DAY_MS), Span(START + DAY_MS, END)]
ATTEMPTS = 2
ALWAYS_500 = [FaultRule("info", "500", 1.0)]


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(frozen_config(NOW_MS, info_weight_per_minute=FAST_WEIGHT))


def truth(coin: str, start: int, end: int) -> list[ApiRow]:
    """The rows the API serves for [start, end) (the model's: no recording in 2026;
    asking the API itself would meet the injected faults)."""
    return model_rows(coin, model_hours(start, end))


def env_for(emu: Emulator) -> dict[str, str]:
    return funding_env(emu, HYPERLAKE_MAX_ATTEMPTS=str(ATTEMPTS))


def faulty_lake(emu: Emulator, lake: Path, rules: list[FaultRule], seed: int = 0) -> None:
    """Snapshot the universe into ``lake``, zero the counters, turn the faults on."""
    warm_universe(emu)
    emu.reset_stats()
    emu.set_faults(rules, seed)


def recover(emu: Emulator, lake: Path, coins: list[str], *extra: str,
            start: int = START, end: int = END) -> dict[str, Any]:
    """Faults off, the same command again: it must finish clean and complete."""
    emu.set_faults([])
    summary = extract(funding_args(",".join(coins), start, end, lake, *extra), env_for(emu))
    assert summary["gaps"] == 0 and summary["skipped_coins"] == {}
    for coin in coins:
        assert_complete(lake, coin, start, end)
        assert values(lake_rows(lake, coin)) == truth(coin, start, end), coin
    return summary


# -- empty ----------------------------------------------------------------------------------


def test_empty_ledgers_each_window_and_stores_no_row(emu: Emulator, tmp_path: Path) -> None:
    coins = ["BTC", "ETH"]
    faulty_lake(emu, tmp_path, ALWAYS_500)
    summary = extract(funding_args("BTC,ETH", START, END, tmp_path, "--hours-per-window", "24",
                                   "--on-500", "empty"), env_for(emu), expect=4)
    assert (summary["rows"], summary["windows"], summary["failed_windows"]) == (0, 4, 4)
    assert summary["gaps"] == 4 and summary["skipped_coins"] == {}
    assert summary["requests"] == info_requests(emu) == stat(emu, "fault_500") == 4 * ATTEMPTS
    for coin in coins:
        series = series_of(tmp_path, coin)
        assert gap_spans(tmp_path, coin) == DAYS
        assert {g.info["reason"] for g in series.gaps()} == {"http 500 (counted as empty)"}
        assert lake_rows(tmp_path, coin) == []
        assert series.covered() == RangeSet(DAYS)  # an (empty) part per window...
        assert series.done() == RangeSet()  # ...that the ledger keeps from counting as done
        assert series.missing(Span(START, END)) == RangeSet(DAYS)

    emu.reset_stats()
    again = recover(emu, tmp_path, coins, "--hours-per-window", "24")
    assert again["requests"] == info_requests(emu) == 4


# -- split ----------------------------------------------------------------------------------


def assert_halving(spans: list[Span], windows: list[Span]) -> None:
    """``spans`` (each request, in order) is, for each window in turn, a depth-first walk
    of a binary tree: the window, then its two halves (an hour-aligned cut, the halves
    at most an hour apart in length), recursively, down to one-hour leaves; every node
    asked ATTEMPTS times in a row."""
    nodes = spans[::ATTEMPTS]
    assert [s for s in nodes for _ in range(ATTEMPTS)] == spans, "not ATTEMPTS tries a span"

    def walk(span: Span, i: int) -> int:
        assert nodes[i] == span, (i, nodes[i], span)
        if len(span) == HOUR_MS:
            return i + 1
        left = nodes[i + 1]
        assert left.start == span.start and left.end < span.end and left.end % HOUR_MS == 0
        assert abs(len(left) - (span.end - left.end)) <= HOUR_MS, (span, left)
        return walk(Span(left.end, span.end), walk(left, i + 1))

    i = 0
    for window in windows:
        i = walk(window, i)
    assert i == len(nodes)


def test_split_halves_down_to_one_hour_windows(emu: Emulator, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    faulty_lake(emu, tmp_path, ALWAYS_500)
    log = record_requests(monkeypatch)
    summary = extract(funding_args("BTC", START, END, tmp_path, "--hours-per-window", "24",
                                   "--on-500", "split"), env_for(emu), expect=4)
    gaps = gap_spans(tmp_path, "BTC")
    assert all(len(g) == HOUR_MS for g in gaps)
    assert RangeSet(gaps) == RangeSet([Span(START, END)]) and len(gaps) == 48
    spans = requested_spans(log, "BTC")
    assert_halving(spans, DAYS)
    # A full binary tree with 24 one-hour leaves has 47 nodes: per day, 47 x ATTEMPTS.
    assert summary["requests"] == len(spans) == info_requests(emu) == 2 * 47 * ATTEMPTS
    assert summary["failed_windows"] == summary["gaps"] == 48 and summary["rows"] == 0
    assert series_of(tmp_path, "BTC").done() == RangeSet()

    recover(emu, tmp_path, ["BTC"], "--hours-per-window", "24", "--on-500", "split")


def test_split_stops_at_the_failing_hours(emu: Emulator, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Partial faults: whatever half answers is stored, only failing hours are ledgered."""
    faulty_lake(emu, tmp_path, [FaultRule("info", "500", 0.75)], seed=10)
    log = record_requests(monkeypatch)
    summary = extract(funding_args("ETH", START, END, tmp_path, "--hours-per-window", "24",
                                   "--on-500", "split", "--threads", "1"), env_for(emu),
                      expect=4)
    gaps = gap_spans(tmp_path, "ETH")
    assert gaps and all(len(g) == HOUR_MS for g in gaps)
    series = series_of(tmp_path, "ETH")
    assert series.done() == RangeSet([Span(START, END)]).subtract(RangeSet(gaps))
    assert summary["rows"] == 48 - len(gaps)
    want = truth("ETH", START, END)
    stored = values(lake_rows(tmp_path, "ETH"))
    assert stored == [r for r in want if not any(g.start <= r[0] < g.end for g in gaps)]
    # Every requested span lies inside a day window and starts and ends on the hour.
    for span in requested_spans(log, "ETH"):
        assert span.start % HOUR_MS == 0 and span.end % HOUR_MS == 0
        assert any(d.start <= span.start and span.end <= d.end for d in DAYS)

    recover(emu, tmp_path, ["ETH"], "--hours-per-window", "24", "--on-500", "split")


# -- skip-coin ------------------------------------------------------------------------------


def test_skip_coin_abandons_the_coin_at_its_first_failed_window(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    faulty_lake(emu, tmp_path, ALWAYS_500)
    log = record_requests(monkeypatch)
    summary = extract(funding_args("BTC,ETH", START, END, tmp_path, "--hours-per-window", "24",
                                   "--on-500", "skip-coin"), env_for(emu), expect=4)
    first = f"{format_instant(DAYS[0].start)} → {format_instant(DAYS[0].end)}"
    assert set(summary["skipped_coins"]) == {"BTC", "ETH"}
    assert all(first in why for why in summary["skipped_coins"].values())
    # Only the first window was asked (twice); the second never was.
    assert summary["requests"] == info_requests(emu) == 2 * ATTEMPTS
    for coin in ("BTC", "ETH"):
        assert requested_spans(log, coin) == [DAYS[0]] * ATTEMPTS
        assert gap_spans(tmp_path, coin) == [DAYS[0]]
        assert [span for span, _ in part_rows(tmp_path, coin)] == [DAYS[0]]

    emu.reset_stats()
    again = recover(emu, tmp_path, ["BTC", "ETH"], "--hours-per-window", "24",
                    "--on-500", "skip-coin")
    assert again["requests"] == info_requests(emu) == 4


SKIP_COINS = ["BTC", "ETH", "SOL", "kPEPE", "DOGE", "AVAX"]
SKIP_START = START - DAY_MS  # three one-day windows a coin


def test_skip_coin_leaves_the_other_coins_alone(emu: Emulator, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # One coin at a time makes the seeded fault draws, hence the outcome, reproducible.
    faulty_lake(emu, tmp_path, [FaultRule("info", "500", 0.45)], seed=11)
    log = record_requests(monkeypatch)
    summary = extract(funding_args(",".join(SKIP_COINS), SKIP_START, END, tmp_path,
                                   "--hours-per-window", "24", "--on-500", "skip-coin",
                                   "--threads", "1"), env_for(emu), expect=4)
    skipped = summary["skipped_coins"]
    assert 0 < len(skipped) < len(SKIP_COINS), f"seed gives no mix: {skipped}"
    windows = [Span(SKIP_START + i * DAY_MS, SKIP_START + (i + 1) * DAY_MS) for i in range(3)]
    left = 0  # windows the skipped coins never finished
    for coin in SKIP_COINS:
        asked = requested_spans(log, coin)
        if coin not in skipped:
            assert_complete(tmp_path, coin, SKIP_START, END)
            assert values(lake_rows(tmp_path, coin)) == truth(coin, SKIP_START, END)
            continue
        [failed] = gap_spans(tmp_path, coin)
        assert f"{format_instant(failed.start)} → {format_instant(failed.end)}" in skipped[coin]
        assert asked[-ATTEMPTS:] == [failed] * ATTEMPTS  # its last requests: then nothing
        assert all(span.start <= failed.start for span in asked)
        before = [w for w in windows if w.end <= failed.start]
        assert [s for s, _ in part_rows(tmp_path, coin)] == [*before, failed]
        assert values(lake_rows(tmp_path, coin)) == (
            truth(coin, SKIP_START, failed.start) if before else [])
        left += len(windows) - len(before)

    emu.reset_stats()
    again = recover(emu, tmp_path, SKIP_COINS, "--hours-per-window", "24", "--on-500",
                    "skip-coin", start=SKIP_START)
    assert again["requests"] == info_requests(emu) == left


# -- partial faults, re-runs converge ---------------------------------------------------------

PARTIAL_COINS = ["BTC", "ETH", "SOL", "kPEPE"]
PARTIAL_START = END - 4 * DAY_MS


def test_partial_500s_then_reruns_equal_a_clean_run(emu: Emulator, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--hours-per-window", "24", "--on-500", "empty", "--threads", "1"]
    clean = tmp_path / "clean"
    extract(funding_args(",".join(PARTIAL_COINS), PARTIAL_START, END, clean, *args),
            env_for(emu))
    lake = tmp_path / "lake"
    faulty_lake(emu, lake, [FaultRule("info", "500", 0.3)], seed=5)
    env = funding_env(emu, HYPERLAKE_MAX_ATTEMPTS="1")  # every fault is a ledgered window
    first = extract(funding_args(",".join(PARTIAL_COINS), PARTIAL_START, END, lake, *args),
                    env, expect=4)
    ledgered = {c: gap_spans(lake, c) for c in PARTIAL_COINS}
    assert first["gaps"] == first["failed_windows"] == sum(map(len, ledgered.values())) > 0
    assert first["requests"] == 16
    for coin in PARTIAL_COINS:  # what was stored is right; only the ledgered days lack
        series = series_of(lake, coin)
        assert series.missing(Span(PARTIAL_START, END)) == RangeSet(ledgered[coin])
        assert [r for r in lake_rows(lake, coin)
                if not any(g.start <= r[0] < g.end for g in ledgered[coin])] == \
            [r for r in lake_rows(clean, coin)
             if not any(g.start <= r[0] < g.end for g in ledgered[coin])]

    # A re-run (faults still on) asks for exactly the ledgered windows, nothing else.
    log = record_requests(monkeypatch)
    second = run_funding(funding_args(",".join(PARTIAL_COINS), PARTIAL_START, END, lake,
                                      *args), env)
    assert second.code == (4 if second.summary()["gaps"] else 0), second
    for coin in PARTIAL_COINS:
        assert requested_spans(log, coin) == ledgered[coin], coin

    emu.set_faults([])
    final = extract(funding_args(",".join(PARTIAL_COINS), PARTIAL_START, END, lake, *args),
                    env_for(emu))
    assert final["gaps"] == 0
    for coin in PARTIAL_COINS:
        assert_complete(lake, coin, PARTIAL_START, END)
        assert values(lake_rows(lake, coin)) == values(lake_rows(clean, coin)), coin


# -- other failures are not 500s ---------------------------------------------------------------


@pytest.mark.parametrize(("kind", "reason"), [
    ("503", "http 503"), ("429", "http 429"), ("malformed", "malformed answer"),
])
def test_other_persistent_failures_are_ledgered_but_never_skip_the_coin(
        emu: Emulator, tmp_path: Path, kind: str, reason: str) -> None:
    faulty_lake(emu, tmp_path, [FaultRule("info", kind, 1.0)])
    summary = extract(funding_args("BTC,ETH", START, END, tmp_path, "--hours-per-window", "24",
                                   "--on-500", "skip-coin"), env_for(emu), expect=4)
    assert summary["skipped_coins"] == {} and summary["gaps"] == 4
    assert summary["requests"] == info_requests(emu) == 4 * ATTEMPTS  # every window tried
    for coin in ("BTC", "ETH"):
        series = series_of(tmp_path, coin)
        assert [g.span for g in series.gaps()] == DAYS
        assert all(g.info["reason"].startswith(reason) for g in series.gaps()), series.gaps()
    recover(emu, tmp_path, ["BTC", "ETH"], "--hours-per-window", "24")


def test_without_json_the_summary_is_a_line_and_the_trouble_goes_to_stderr(
        emu: Emulator, tmp_path: Path) -> None:
    faulty_lake(emu, tmp_path, ALWAYS_500)
    args = funding_args("BTC,ETH", START, END, tmp_path, "--hours-per-window", "24",
                        "--on-500", "skip-coin")
    args.remove("--json")
    run = run_funding(args, env_for(emu))
    assert run.code == 4
    assert run.stdout.startswith("funding 2 coins 2026-03-20T00:00:00Z → 2026-03-22T00:00:00Z: "
                                 "0 rows in 2 windows, 4 requests")
    assert len(run.stdout.splitlines()) == 1
    lines = run.stderr.splitlines()
    assert sorted(lines[:2]) == [
        "  skipped BTC: http 500 on 2026-03-20T00:00:00Z → 2026-03-21T00:00:00Z",
        "  skipped ETH: http 500 on 2026-03-20T00:00:00Z → 2026-03-21T00:00:00Z"]
    assert lines[2:] == ["  2 windows are in the gap ledger; run the same command again to "
                         "retry them"]
