"""Shared helpers of the funding-extraction tests (the other ``test_funding_*`` modules
import them), and the checks that keep the helpers honest: the ground truth they
compute is what the emulator serves and what its market model says.

Most runs call ``hyperlake funding`` in-process (``hyperlake.cli.main``: the same code
path as the command, without an interpreter start per run); the tests that need a
real process (``kill -9``, the writer lock) start it with ``start_cli``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyperlake.cli import main
from hyperlake.emulator.market import Market
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.pipelines.universe import cache_folder, load_universe
from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.times import format_instant, parse_instant
from tests.conftest import NOW_MS, on_disk

NOW_ISO = "2026-03-31T00:00:00Z"
DAY_MS = 24 * HOUR_MS
#: A weight budget that never binds (emulator and client), for tests not about pacing.
FAST_WEIGHT = 1_000_000_000
PAGE_ROWS = 500
MODEL = Market(seed=0)
CLI = [sys.executable, "-m", "hyperlake.cli", "funding"]

#: (time, funding_hour, fundingRate, premium) of one stored row, times in epoch ms.
Row = tuple[int, int, float, float]
#: (time, fundingRate, premium) of one row of the API.
ApiRow = tuple[int, float, float]


def ms(text: str) -> int:
    return parse_instant(text, "test")


def iso(at_ms: int) -> str:
    return format_instant(at_ms)


# -- emulators ----------------------------------------------------------------------------


@contextlib.contextmanager
def fast_emulator(**overrides: Any) -> Iterator[Emulator]:
    """An emulator (clock frozen at NOW_MS) whose weight budget never binds."""
    config = frozen_config(NOW_MS, **{"info_weight_per_minute": FAST_WEIGHT, **overrides})
    with Emulator(config) as emu:
        yield emu


def plain_client() -> httpx.Client:
    """A client for the emulator's cleartext port (no CA bundle to load: ~5 ms, not ~100)."""
    return httpx.Client(timeout=30, verify=False)


def stat(emu: Emulator, name: str) -> int:
    return int(emu.stats().get(name, 0))


def info_requests(emu: Emulator) -> int:
    return stat(emu, "info_requests")


def warm_universe(emu: Emulator) -> None:
    """Cache the market names the command would fetch, so a run makes only
    ``fundingHistory`` requests (and injected faults cannot hit ``meta``)."""
    with plain_client() as client:
        load_universe(emu.urls.hyperliquid, cache_folder(), client)


def client_budget(emu: Emulator, per_minute: float, folder: Path) -> SharedWeightBudget:
    """The client-side bucket ``hyperlake funding`` pays from against ``emu``."""
    host = emu.urls.hyperliquid.split("://", 1)[1]
    return SharedWeightBudget(f"hyperliquid@{host}", per_minute, folder=folder)


# -- running the command ------------------------------------------------------------------


def funding_env(emu: Emulator, weight: float = FAST_WEIGHT, **overrides: str) -> dict[str, str]:
    """The HYPERLAKE_* variables of a run against ``emu`` (client clock pinned to the
    emulator's, fast retries)."""
    return {
        "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
        "HYPERLAKE_NOW": NOW_ISO,
        "HYPERLAKE_HYPERLIQUID_WEIGHT": str(weight),
        "HYPERLAKE_BACKOFF_BASE": "0.01",
        **overrides,
    }


def funding_args(coins: str, start_ms: int, end_ms: int, lake: Location, *extra: str) -> list[str]:
    return ["--coins", coins, "--start", iso(start_ms), "--end", iso(end_ms),
            "--lake", str(lake), "--json", *extra]


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary line."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no summary on stdout (exit {self.code}); stderr: {self.stderr}"
        summary: dict[str, Any] = orjson.loads(lines[-1])
        return summary


def run_funding(args: list[str], env: Mapping[str, str]) -> CliRun:
    """``hyperlake funding ARGS`` in this process with ``env`` set; its exit status and
    output. (The per-test HYPERLAKE_PACING_DIR of conftest stays unless ``env`` sets one.)"""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HYPERLAKE_LAKE", raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["funding", *args])
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
    return CliRun(code, out.getvalue(), err.getvalue())


def extract(args: list[str], env: Mapping[str, str], expect: int = 0) -> dict[str, Any]:
    """Run to completion, check the exit status, return the summary."""
    run = run_funding(args, env)
    assert run.code == expect, (run.code, run.stdout, run.stderr)
    return run.summary()


def start_cli(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """The command as a real process in its own session (its group can be killed)."""
    full_env = {**os.environ, **env}
    full_env.pop("HYPERLAKE_LAKE", None)
    return subprocess.Popen([*CLI, *args], env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the command's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def wait_until_extracting(lake: Path, process: subprocess.Popen[str],
                          timeout: float = 60.0) -> None:
    """Until ``process`` holds the lake's writer lock (it has started the job)."""
    lock = on_disk(LakePaths(lake).lock_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if lock.read_text().startswith(f"pid {process.pid}:"):
                return
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("the run did not take the lake's lock in time")


def record_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The bodies of the ``fundingHistory`` requests in-process runs send, in order."""
    log: list[dict[str, Any]] = []
    original = httpx.Client.post

    def post(self: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
        content = kwargs.get("content")
        if isinstance(content, bytes):
            body = orjson.loads(content)
            if isinstance(body, dict) and body.get("type") == "fundingHistory":
                log.append(body)
        return original(self, url, **kwargs)

    monkeypatch.setattr(httpx.Client, "post", post)
    return log


def requested_spans(log: list[dict[str, Any]], coin: str) -> list[Span]:
    """[startTime, endTime + 1) of each request for ``coin`` (its bounds are inclusive)."""
    return [Span(b["startTime"], b["endTime"] + 1) for b in log if b["coin"] == coin]


# -- reading the lake ---------------------------------------------------------------------


def series_of(lake: Location, coin: str) -> Series:
    return Series(LakePaths(lake), SeriesKey("funding", "hyperliquid", coin, "1h"))


def table_rows(table: pa.Table) -> list[Row]:
    times = table.column("time").cast(pa.int64()).to_pylist()
    hours = table.column("funding_hour").cast(pa.int64()).to_pylist()
    rates = table.column("fundingRate").to_pylist()
    premiums = table.column("premium").to_pylist()
    return list(zip(times, hours, rates, premiums, strict=True))


def part_rows(lake: Location, coin: str) -> list[tuple[Span, list[Row]]]:
    """Every part file of the coin's series with the rows it holds."""
    series = series_of(lake, coin)
    return [(span, table_rows(pq.read_table(series.store.parquet(path).source)))
            for span, path in series.parts()]


def lake_rows(lake: Location, coin: str) -> list[Row]:
    """Every stored row of the coin, in time order, duplicates kept."""
    return sorted(row for _, rows in part_rows(lake, coin) for row in rows)


def gap_spans(lake: Location, coin: str) -> list[Span]:
    return [gap.span for gap in series_of(lake, coin).gaps()]


def comparable(rows: list[ApiRow]) -> list[tuple[int, float | str, float | str]]:
    """Rows with NaN spelled "NaN", so that == compares them (NaN != NaN)."""
    def fix(x: float) -> float | str:
        return "NaN" if math.isnan(x) else x
    return [(t, fix(rate), fix(premium)) for t, rate, premium in rows]


def values(rows: list[Row]) -> list[ApiRow]:
    """(time, fundingRate, premium) of stored rows."""
    return [(t, rate, premium) for t, _, rate, premium in rows]


def assert_complete(lake: Location, coin: str, start_ms: int, end_ms: int) -> None:
    series = series_of(lake, coin)
    assert series.gaps() == [], f"{coin}: gap ledger not empty"
    assert series.missing(Span(start_ms, end_ms)) == RangeSet(), f"{coin}: not done"


def tmp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".tmp-*")) if folder.exists() else []


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- the ground truth ---------------------------------------------------------------------


def fetch_page(client: httpx.Client, emu: Emulator, coin: str, start_ms: int,
               last_ms: int) -> list[dict[str, Any]]:
    response = client.post(f"{emu.urls.hyperliquid}/info", json={
        "type": "fundingHistory", "coin": coin, "startTime": start_ms, "endTime": last_ms})
    assert response.status_code == 200, (coin, response.status_code, response.text)
    page: list[dict[str, Any]] = response.json()
    return page


def api_rows(emu: Emulator, coin: str, start_ms: int, end_ms: int) -> list[ApiRow]:
    """What ``POST /info fundingHistory`` answers for [start, end), asked directly and
    paged by 500 (its bounds are inclusive: ask start .. end - 1, then last time + 1)."""
    out: list[ApiRow] = []
    cursor = start_ms
    with plain_client() as client:
        while True:
            page = fetch_page(client, emu, coin, cursor, end_ms - 1)
            out += [(r["time"], float(r["fundingRate"]), float(r["premium"])) for r in page]
            if len(page) < PAGE_ROWS:
                return out
            cursor = page[-1]["time"] + 1


def model_rows(coin: str, hours: list[int]) -> list[ApiRow]:
    """The market model's funding events of ``coin`` at ``hours``."""
    events = MODEL.funding(MODEL.instrument(coin), hours)
    return [(f.time_ms, float(f.rate), float(f.premium)) for f in events]


def model_hours(start_ms: int, end_ms: int) -> list[int]:
    """Funding hours in [start, end): 8-hourly before 2023-06-08, hourly from it."""
    switch = ms("2023-06-08T00:00:00Z")
    return [h for h in range(start_ms, end_ms, HOUR_MS) if h >= switch or h % (8 * HOUR_MS) == 0]


# -- the helpers, checked -----------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with fast_emulator() as emulator:
        yield emulator


def test_api_rows_pages_without_holes_or_repeats(emu: Emulator) -> None:
    start, end = ms("2026-02-01T00:00:00Z"), ms("2026-03-01T00:00:00Z")  # 672 rows: 2 pages
    rows = api_rows(emu, "ETH", start, end)
    halves = api_rows(emu, "ETH", start, start + 14 * DAY_MS) + \
        api_rows(emu, "ETH", start + 14 * DAY_MS, end)
    assert rows == halves
    assert [t // HOUR_MS * HOUR_MS for t, _, _ in rows] == list(range(start, end, HOUR_MS))


def test_api_rows_are_the_market_models_events(emu: Emulator) -> None:
    start, end = ms("2023-06-01T00:00:00Z"), ms("2023-06-12T00:00:00Z")  # the cadence switch
    hours = model_hours(start, end)
    assert api_rows(emu, "SOL", start, end) == model_rows("SOL", hours)
    assert 0 < sum(h < ms("2023-06-08T00:00:00Z") for h in hours) < len(hours)


def test_run_funding_reports_exit_status_and_summary(emu: Emulator, tmp_path: Path) -> None:
    start = NOW_MS - DAY_MS
    run = run_funding(funding_args("BTC", start, NOW_MS, tmp_path), funding_env(emu))
    assert run.code == 0 and run.summary()["rows"] == 24, run
    assert values(lake_rows(tmp_path, "BTC")) == api_rows(emu, "BTC", start, NOW_MS)
    bad = run_funding(funding_args("BTC", NOW_MS, start, tmp_path), funding_env(emu))
    assert bad.code == 2 and bad.stdout == ""
