"""Candle extraction through injected faults: transient failures are retried and the
rows are still the model's; buckets that keep failing sit in the gap ledger until a
later run fetches them; the Dwellir API key never leaks (output, lake files, process
command lines, exception messages) — not even when the key is refused."""

from __future__ import annotations

import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from hyperlake.emulator.config import EmulatorConfig, FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.errors import HyperlakeError
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.pipelines.candles.job import CandleJob, run_job
from hyperlake.pipelines.settings import SourceSettings
from tests.conftest import NOW_MS
from tests.pipelines.test_candles_support import (
    all_files,
    candles_argv,
    cli_env,
    expected_rows,
    group_members,
    lake_rows,
    ms,
    raw_open_times,
    run_cli,
    series_of,
    start_cli,
    summary_of,
    warm_universe,
)

SECRET = "dw-SECRET-1234"
WRONG_SECRET = "dw-SECRET-5678"
TRANSIENT_KINDS = ["429", "500", "503", "malformed", "truncated", "stream_reset"]
EXIT_GAPS = 4
StartEmulator = Callable[..., Emulator]


def dwellir_config(*faults: FaultRule) -> EmulatorConfig:
    """The frozen clock, SECRET as the only Dwellir key (without a rate ceiling)."""
    return frozen_config(NOW_MS, faults=faults, dwellir_keys={SECRET: "scale"},
                         dwellir_rate_overrides={SECRET: 10**6})


def secret_env(emu: Emulator, key: str = SECRET) -> dict[str, str]:
    return cli_env(emu, HYPERLAKE_DWELLIR_KEY=key)


def assert_no_secret(texts: Iterable[str], lake: Path, secret: str = SECRET) -> None:
    for text in texts:
        assert secret not in text
    files = all_files(lake)
    assert files, "the lake should hold files to search"
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
        assert secret not in str(path)


def ledger_spans(lake: Path, source: str, interval: str) -> RangeSet:
    return RangeSet(gap.span for gap in series_of(lake, source, interval).gaps())


def assert_complete(lake: Path, source: str, interval: str, span: Span) -> None:
    series = series_of(lake, source, interval)
    times = raw_open_times(series)
    assert len(times) == len(set(times))
    assert lake_rows(series) == list(expected_rows(source, interval, span.start, span.end))
    assert series.done() == RangeSet([span])
    assert series.gaps() == []


# -- transient faults are retried -------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSIENT_KINDS)
def test_dwellir_rows_survive_ten_percent_faults(make_emulator: StartEmulator, tmp_path: Path,
                                                 kind: str) -> None:
    emu = make_emulator(dwellir_config(FaultRule("dwellir", kind, 0.1)))
    lake = tmp_path / "lake"
    span = Span(ms("2026-03-30T04:00:00Z"), ms("2026-03-30T04:02:00Z"))

    result = run_cli(candles_argv("dwellir", "1s", span.start, span.end, lake),
                     secret_env(emu))

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert emu.stats().get(f"fault_{kind}", 0) > 0, "the fault never fired"
    assert summary["retried"] > 0
    assert (summary["failed"], summary["gaps"]) == (0, 0)
    # every bucket once, every retry once, plus the DWSESSION warm-up (≤ 3 per lane)
    assert 0 <= summary["requests"] - summary["buckets"] - summary["retried"] <= 6
    assert_complete(lake, "dwellir", "1s", span)
    assert_no_secret([result.stdout, result.stderr], lake)


@pytest.mark.parametrize(("kind", "rate", "most"), [
    ("goaway", 0.1, 2.0), ("goaway", 0.3, 2.5), ("reset", 0.1, 2.0)])
def test_dying_connections_do_not_multiply_requests(make_emulator: StartEmulator,
                                                    tmp_path: Path, kind: str, rate: float,
                                                    most: float) -> None:
    """A GOAWAY or a TCP reset fails everything in flight on the connection (and
    libcurl re-sends the unprocessed streams itself): with 128 in flight, 10 % of
    GOAWAYs once cost the server 7 times the requests (30 %: 19 times) and left gaps.
    The in-flight window halves on a dying connection, so the server sees at most
    ``most`` requests per bucket and every bucket lands."""
    emu = make_emulator(dwellir_config(FaultRule("dwellir", kind, rate)))
    lake = tmp_path / "lake"
    span = Span(ms("2026-03-30T04:00:00Z"), ms("2026-03-30T05:00:00Z"))
    argv = candles_argv("dwellir", "1s", span.start, span.end, lake)
    env = secret_env(emu) | {"HYPERLAKE_BACKOFF_BASE": "0.01"}
    first = run_cli(argv, env)
    assert first.returncode in (0, 4), first.stderr
    if first.returncode == 4:  # a bucket unlucky six times is in the ledger: run again
        assert run_cli(argv, env).returncode == 0
    served = emu.stats()["dwellir_requests"]
    assert summary_of(first)["retried"] > 0, "the fault never fired"
    assert served <= most * 3600, f"{served} requests at the server for 3600 buckets"
    assert_complete(lake, "dwellir", "1s", span)


# -- buckets that keep failing go to the gap ledger, and are fetched later ---------------


def run_watching_command_lines(argv: list[str],
                               env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                             set[bytes]]:
    """Run the command; also collect the command lines of it and its workers."""
    process = start_cli(argv, env)
    seen: set[bytes] = set()
    while process.poll() is None:
        seen.update(group_members(process.pid).values())
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr), seen


def test_dwellir_failures_go_to_the_ledger_then_a_rerun_fills_them(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    emu = make_emulator(dwellir_config(FaultRule("dwellir", "500", 1.0)))
    lake = tmp_path / "lake"
    span = Span(ms("2026-03-30T04:00:21Z"), ms("2026-03-30T04:00:25Z"))
    assert expected_rows("dwellir", "1s", span.start, span.end), "the span must trade"
    argv = candles_argv("dwellir", "1s", span.start, span.end, lake)

    human = [arg for arg in argv if arg != "--json"]  # the gap notice is for humans
    failed, command_lines = run_watching_command_lines(human, secret_env(emu))

    assert failed.returncode == EXIT_GAPS, failed.stderr
    assert "4 buckets failed and are in the gap ledger" in failed.stderr
    assert "4 failed" in failed.stdout
    series = series_of(lake, "dwellir", "1s")
    assert ledger_spans(lake, "dwellir", "1s") == RangeSet([span])
    assert {gap.info["reason"] for gap in series.gaps()} == {"http 500"}
    assert series.covered() == RangeSet([span]), "the failed span was committed"
    assert series.done() == RangeSet()
    assert series.missing(span) == RangeSet([span])
    assert lake_rows(series) == []
    assert any(b"spawn_main" in line for line in command_lines), "no worker was seen"
    assert all(SECRET.encode() not in line for line in command_lines)
    assert_no_secret([failed.stdout, failed.stderr], lake)

    emu.set_faults([])
    again = run_cli(argv, secret_env(emu))

    assert again.returncode == 0, again.stderr
    assert summary_of(again)["planned"] == 4
    assert_complete(lake, "dwellir", "1s", span)
    assert_no_secret([again.stdout, again.stderr], lake)


def test_hyperliquid_failures_go_to_the_ledger_then_a_rerun_fills_them(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    emu = make_emulator(frozen_config(NOW_MS))
    lake = tmp_path / "lake"
    warm_universe(emu)  # market names come from /info too
    span = Span(ms("2026-03-30T10:00:00Z"), ms("2026-03-30T11:00:00Z"))
    argv = candles_argv("hyperliquid", "1m", span.start, span.end, lake)
    emu.set_faults([FaultRule("info", "500", 1.0)])

    failed = run_cli(argv, cli_env(emu))

    assert failed.returncode == EXIT_GAPS, failed.stderr
    summary = summary_of(failed)
    assert (summary["gaps"], summary["retried"]) == (60, summary["requests"] - 1)
    assert summary["retried"] > 0
    series = series_of(lake, "hyperliquid", "1m")
    assert ledger_spans(lake, "hyperliquid", "1m") == RangeSet([span])
    assert series.done() == RangeSet()
    assert lake_rows(series) == []

    emu.set_faults([])
    emu.reset_stats()
    again = run_cli(argv, cli_env(emu))

    assert again.returncode == 0, again.stderr
    assert emu.stats().get("info_requests") == 1
    assert_complete(lake, "hyperliquid", "1m", span)


# -- the key is refused ------------------------------------------------------------------


def test_a_refused_dwellir_key_is_named_but_never_shown(make_emulator: StartEmulator,
                                                        tmp_path: Path) -> None:
    emu = make_emulator(dwellir_config())
    lake = tmp_path / "lake"
    span = Span(ms("2026-03-30T04:00:00Z"), ms("2026-03-30T04:00:30Z"))

    result = run_cli(candles_argv("dwellir", "1s", span.start, span.end, lake),
                     secret_env(emu, WRONG_SECRET))

    assert result.returncode not in (0, EXIT_GAPS)
    assert emu.stats().get("dwellir_status_401", 0) > 0
    assert "HYPERLAKE_DWELLIR_KEY" in result.stderr
    assert "401" in result.stderr
    assert_no_secret([result.stdout, result.stderr], lake, WRONG_SECRET)
    assert series_of(lake, "dwellir", "1s").done() == RangeSet()


def test_a_refused_dwellir_key_is_not_in_the_exception(make_emulator: StartEmulator,
                                                       tmp_path: Path) -> None:
    emu = make_emulator(dwellir_config())
    settings = SourceSettings.from_env(secret_env(emu, WRONG_SECRET))
    span = Span(ms("2026-03-30T04:00:00Z"), ms("2026-03-30T04:00:10Z"))
    job = CandleJob(source="dwellir", market="BTC", interval="1s", start_ms=span.start,
                    end_ms=span.end, lake=tmp_path / "lake", workers=1, rate=1000.0)

    with pytest.raises(HyperlakeError) as caught:
        run_job(job, settings)

    text = "".join(traceback.format_exception(caught.value))
    assert "HYPERLAKE_DWELLIR_KEY" in text
    assert WRONG_SECRET not in text
    assert WRONG_SECRET not in repr(vars(caught.value))


# -- market names come from /info too ----------------------------------------------------


def test_a_transient_error_while_loading_market_names_is_retried(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    # fault_seed 31 at 10 %: the first /info request (meta) draws a 500, the next ten do not.
    emu = make_emulator(frozen_config(NOW_MS, faults=(FaultRule("info", "500", 0.1),),
                                      fault_seed=31))
    span = Span(ms("2026-03-30T10:00:00Z"), ms("2026-03-30T11:00:00Z"))

    result = run_cli(candles_argv("hyperliquid", "1m", span.start, span.end, tmp_path / "lake"),
                     cli_env(emu))

    assert emu.stats().get("fault_500") == 1
    assert result.returncode == 0, result.stderr
    assert_complete(tmp_path / "lake", "hyperliquid", "1m", span)
