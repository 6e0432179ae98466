"""Crash safety of candle extraction: ``kill -9`` of the whole command (workers
included) at random instants never leaves overlapping parts, half-written files or
a stale lock, and the next run resumes to exactly what an uninterrupted run lands.
One writer per lake: a second run on a busy lake exits 3 and touches nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from hyperlake.emulator.server import Emulator
from hyperlake.lake.atomic import TMP_PREFIX
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.schemas.intervals import FIXED_STEP_MS
from tests.conftest import on_disk
from tests.pipelines.test_candles_support import (
    assert_parts_disjoint,
    background_cli,
    candles_argv,
    cli_env,
    expected_rows,
    extract,
    kill_group,
    lake_rows,
    ms,
    raw_open_times,
    run_cli,
    series_of,
    start_cli,
    summary_of,
    tmp_files,
)

EXIT_BUSY = 3
SEED = 15  # dwellir kills at 1.94 s, first commit + 0.22 s, 1.52 s


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def assert_consistent(series: Series) -> None:
    """What any instant of a run may leave behind: disjoint parts, each row once,
    no temporary file taken for a part."""
    assert_parts_disjoint(series)
    times = raw_open_times(series)
    assert len(times) == len(set(times)), "two parts hold the same candle"
    assert not [p for _, p in series.parts() if p.name.startswith(TMP_PREFIX)]


def kill_after_commits(argv: list[str], env: dict[str, str], series: Series, delay: float,
                       commits: int = 1) -> bool:
    """Start the command, wait for ``commits`` new parts, then ``delay`` seconds more, and
    SIGKILL its process group. True when it was still running when killed."""
    known = {path for _, path in series.parts()}
    process = start_cli(argv, env)
    wait_for(lambda: process.poll() is not None
             or sum(path not in known for _, path in series.parts()) >= commits)
    time.sleep(delay)
    alive = process.poll() is None
    kill_group(process)
    return alive


def kill_after(argv: list[str], env: dict[str, str], delay: float) -> bool:
    process = start_cli(argv, env)
    time.sleep(delay)
    alive = process.poll() is None
    kill_group(process)
    return alive


def assert_resumed_to_the_model(series: Series, clean: Series, source: str, interval: str,
                                span: Span) -> None:
    rows = lake_rows(series)
    assert rows == lake_rows(clean), "the resumed lake differs from an uninterrupted run"
    assert rows == list(expected_rows(source, interval, span.start, span.end))
    assert_consistent(series)
    assert series.done() == RangeSet([span])
    assert series.gaps() == []
    assert tmp_files(on_disk(series.folder)) == [], "temporaries of killed runs were not swept"


def test_dwellir_resumes_exactly_after_kill_minus_9(emulator: Emulator, tmp_path: Path) -> None:
    span = Span(ms("2026-03-30T12:00:00Z"), ms("2026-03-30T14:00:00Z"))
    buckets = len(span) // FIXED_STEP_MS["1s"]
    lake = tmp_path / "lake"
    env = cli_env(emulator)
    series = series_of(lake, "dwellir", "1s")
    clean_argv = candles_argv("dwellir", "1s", span.start, span.end, tmp_path / "clean")
    # 1000 req/s: a run would take 7 s; each of its two workers commits every 2 s.
    slow = candles_argv("dwellir", "1s", span.start, span.end, lake, "--rate", "1000",
                        "--workers", "2")
    rng = random.Random(SEED)

    with background_cli(clean_argv, env) as clean:  # the uninterrupted run, meanwhile
        killed = 0
        for attempt in range(3):
            delay = rng.uniform(0.2, 2.0)
            if attempt % 2:  # mid-fetch, after a commit of this run
                killed += kill_after_commits(slow, env, series, delay)
            else:  # from the start: universe, lock, sweep, job file, spawn, first requests
                killed += kill_after(slow, env, delay)
            assert_consistent(series)
        assert killed == 3
        done_before = series.done().total() // 1000
        assert 0 < done_before < buckets, "committed work should survive the kills"

        final = run_cli(candles_argv("dwellir", "1s", span.start, span.end, lake), env)
        assert final.returncode == 0, final.stderr
        assert summary_of(final)["planned"] == buckets - done_before
        _, clean_errors = clean.communicate(timeout=120)
        assert clean.returncode == 0, clean_errors

    assert_resumed_to_the_model(series, series_of(tmp_path / "clean", "dwellir", "1s"),
                                "dwellir", "1s", span)


def test_hydromancer_windows_resume_exactly_after_kill_minus_9(emulator: Emulator,
                                                               tmp_path: Path) -> None:
    span = Span(ms("2026-03-29T00:00:00Z"), ms("2026-03-30T00:00:00Z"))  # 18 windows
    lake = tmp_path / "lake"
    argv = candles_argv("hydromancer", "1s", span.start, span.end, lake)
    env = cli_env(emulator)
    series = series_of(lake, "hydromancer", "1s")
    clean_argv = candles_argv("hydromancer", "1s", span.start, span.end, tmp_path / "clean")
    rng = random.Random(SEED)

    with background_cli(clean_argv, env) as clean:  # the uninterrupted run, meanwhile
        # Killed 1-3 windows into each run, at a random instant of the next window.
        for _ in range(3):
            assert kill_after_commits(argv, env, series, rng.uniform(0.0, 0.05),
                                      rng.randint(1, 3))
            assert_consistent(series)
        assert 0 < series.done().total() < len(span)

        final = run_cli(argv, env)
        assert final.returncode == 0, final.stderr
        _, clean_errors = clean.communicate(timeout=120)
        assert clean.returncode == 0, clean_errors

    assert_resumed_to_the_model(series, series_of(tmp_path / "clean", "hydromancer", "1s"),
                                "hydromancer", "1s", span)


def test_a_second_run_on_a_busy_lake_exits_3_and_touches_nothing(emulator: Emulator,
                                                                 tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first_span = Span(ms("2026-03-30T15:00:00Z"), ms("2026-03-30T15:20:00Z"))
    first_argv = candles_argv("dwellir", "1s", first_span.start, first_span.end, lake,
                              "--rate", "400")
    env = cli_env(emulator)
    first_series = series_of(lake, "dwellir", "1s")
    other_span = Span(ms("2026-03-29T00:00:00Z"), ms("2026-03-29T01:00:00Z"))
    other_argv = candles_argv("hydromancer", "1m", other_span.start, other_span.end, lake)
    other = series_of(lake, "hydromancer", "1m")

    first = start_cli(first_argv, env)
    try:
        assert wait_for(lambda: any(on_disk(first_series.folder).glob("job-*/job.json"))), \
            "the first run never started its job"
        emulator.reset_stats()
        busy = run_cli(other_argv, env)
        assert first.poll() is None, "the first run ended too soon to test the lock"
    finally:
        _, stderr = first.communicate(timeout=60)

    assert busy.returncode == EXIT_BUSY
    assert busy.stdout == ""
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1, busy.stderr
    assert "another hyperlake run holds the lake" in lines[0]
    assert f"pid {first.pid}" in lines[0]
    assert emulator.stats().get("hydromancer_requests", 0) == 0
    assert not on_disk(other.folder).exists()
    assert not on_disk(other.ledger.folder).exists()

    assert first.returncode == 0, stderr
    assert lake_rows(first_series) == list(
        expected_rows("dwellir", "1s", first_span.start, first_span.end))
    extract(emulator, "hydromancer", "1m", other_span.start, other_span.end, lake)
    assert lake_rows(other) == list(
        expected_rows("hydromancer", "1m", other_span.start, other_span.end))
