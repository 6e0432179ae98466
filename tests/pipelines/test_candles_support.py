"""Shared helpers of the candle-extraction tests (the other ``test_candles_*`` modules
import them), and the checks that keep the helpers honest: the ground truth they
compute is what the emulator serves.

Everything runs the real ``hyperlake candles`` command in a subprocess, against a real
emulator on loopback, with the client's clock pinned to the emulator's frozen one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa

from hyperlake.emulator.info_api import HYDROMANCER_QUOTE_FROM_MS
from hyperlake.emulator.market import Market, format_decimal
from hyperlake.emulator.server import Emulator
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import deduplicate
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location
from hyperlake.pipelines.universe import cache_folder, load_universe, snapshot_path
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.datasets import CANDLES
from hyperlake.schemas.intervals import bucket_opens
from hyperlake.schemas.times import format_instant, parse_instant
from tests.conftest import DWELLIR_KEY, HYDROMANCER_KEY, NOW_MS

NOW_ISO = "2026-03-31T00:00:00Z"
MODEL = Market(seed=0)
CLI = [sys.executable, "-m", "hyperlake.cli", "candles"]
#: (t, o, h, l, c, v, q, n): the values a candle row must carry.
Row = tuple[int, float, float, float, float, float, float | None, int]
VALUE_COLUMNS = ("t", "o", "h", "l", "c", "v", "q", "n")
#: Requests each Dwellir worker may spend warming its DWSESSION lanes (2 lanes x 3 tries).
DWELLIR_WARMUP_MAX = 6


def ms(text: str) -> int:
    return parse_instant(text, "test")


def iso(at_ms: int) -> str:
    return format_instant(at_ms)


# -- running the command ---------------------------------------------------------------


def cli_env(emu: Emulator, **overrides: str | None) -> dict[str, str]:
    """The environment of a ``hyperlake candles`` run against ``emu``; an override of
    None removes the variable."""
    env = {
        **os.environ,
        "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
        "HYPERLAKE_HYDROMANCER_URL": emu.urls.hydromancer,
        "HYPERLAKE_HYDROMANCER_KEY": HYDROMANCER_KEY,
        "HYPERLAKE_DWELLIR_URL": emu.urls.dwellir,
        "HYPERLAKE_DWELLIR_KEY": DWELLIR_KEY,
        "HYPERLAKE_NOW": NOW_ISO,
        "HYPERLAKE_HYPERLIQUID_WEIGHT": "1000000",
        "HYPERLAKE_HYDROMANCER_WEIGHT": "1000000",
    }
    env.pop("HYPERLAKE_LAKE", None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def candles_argv(source: str, interval: str, start_ms: int, end_ms: int, lake: Location,
                 *extra: str, market: str = "BTC") -> list[str]:
    argv = [*CLI, "--source", source, "--market", market, "--interval", interval,
            "--start", iso(start_ms), "--end", iso(end_ms), "--lake", str(lake), "--json"]
    if source == "dwellir" and "--rate" not in extra and "--plan" not in extra:
        argv += ["--rate", "8000"]  # as fast as the emulator goes, with one worker
    return [*argv, *extra]


def run_cli(argv: list[str], env: dict[str, str],
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def start_cli(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """The command in its own session, so its whole process group can be killed."""
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@contextlib.contextmanager
def background_cli(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """The command running beside the test; killed (with its workers) if still running
    when the block ends."""
    process = start_cli(argv, env)
    try:
        yield process
    finally:
        if process.poll() is None:
            kill_group(process)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the command and every worker it spawned (one process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def group_members(pgid: int) -> dict[int, bytes]:
    """Live (not zombie) processes of a process group: pid -> command line."""
    found: dict[int, bytes] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
    return found


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` summary line of a run."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no summary on stdout; stderr: {result.stderr}"
    summary: dict[str, Any] = orjson.loads(lines[-1])
    return summary


def extract(emu: Emulator, source: str, interval: str, start_ms: int, end_ms: int,
            lake: Location, *extra: str, expect: int = 0, market: str = "BTC",
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one extraction to completion; check its exit status; its summary. The lake
    gets the emulator's market list first (fetched once a session: it costs weight
    from the one per-IP budget every test of the session shares)."""
    seed_universe(emu)
    result = run_cli(candles_argv(source, interval, start_ms, end_ms, lake, *extra,
                                  market=market),
                     env if env is not None else cli_env(emu))
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return summary_of(result)


def request_counts(stats: dict[str, int]) -> dict[str, int]:
    """The emulator's per-endpoint request counters that are not zero."""
    return {k: v for k, v in stats.items() if k.endswith("_requests") and v}


def warm_universe(emu: Emulator) -> None:
    """Fetch the market names a run of the command needs into the (per-user, here
    per-session) cache, so a run asks only for candles."""
    with httpx.Client(timeout=10) as client:
        load_universe(emu.urls.hyperliquid, cache_folder(), client)


def seed_universe(emu: Emulator) -> None:
    """``warm_universe``, unless this emulator's market list is in the cache already."""
    if not snapshot_path(cache_folder(), emu.urls.hyperliquid).exists():
        warm_universe(emu)


# -- reading the lake ------------------------------------------------------------------


def series_of(lake: Location, source: str, interval: str, market: str = "BTC") -> Series:
    return Series(LakePaths(lake), SeriesKey("candles", source, market, interval))


def rows_of(table: pa.Table) -> list[Row]:
    t = table.column("t").cast(pa.int64()).to_pylist()
    o, h, low, c, v, q, n = (table.column(name).to_pylist() for name in VALUE_COLUMNS[1:])
    return list(zip(t, o, h, low, c, v, q, n, strict=True))


def checkpoint_table(series: Series) -> pa.Table:
    return series.read_parts(CANDLE_SCHEMA)


def lake_rows(series: Series) -> list[Row]:
    """The series' rows, one per open time (as compaction would keep), in time order."""
    return rows_of(deduplicate(checkpoint_table(series), CANDLES, ()))


def raw_open_times(series: Series) -> list[int]:
    """Open times of every row of every part, duplicates included."""
    values: list[int] = checkpoint_table(series).column("t").cast(pa.int64()).to_pylist()
    return values


def assert_single_kind(series: Series, source: str, interval: str, market: str = "BTC") -> None:
    table = checkpoint_table(series)
    for name, want in (("source", source), ("interval", interval), ("market", market)):
        assert set(table.column(name).to_pylist()) <= {want}, name
    assert all(table.column("x").to_pylist()), "an open candle was stored"


def tmp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".tmp-*")) if folder.exists() else []


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def assert_parts_disjoint(series: Series) -> None:
    spans = [span for span, _ in series.parts()]
    for left, right in itertools.pairwise(spans):
        assert left.end <= right.start, f"parts overlap: {left} and {right}"


# -- the ground truth ------------------------------------------------------------------


@cache
def expected_rows(source: str, interval: str, start_ms: int, end_ms: int,
                  coin: str = "BTC") -> tuple[Row, ...]:
    """Every candle the market model has in [start, end), as the lake must hold it:
    no row for an empty bucket; ``q`` is absent from Hyperliquid's own candles, and
    from Hydromancer's before 2024."""
    inst = MODEL.instrument(coin)
    px, sz = inst.px_decimals, inst.sz_decimals
    rows: list[Row] = []
    for open_ms in bucket_opens(start_ms, end_ms, interval):
        candle = MODEL.candle(coin, interval, open_ms, NOW_MS)
        if candle is None:
            continue
        assert candle.closed, "the range must hold closed candles only"
        no_quote = source == "hyperliquid" or (
            source == "hydromancer" and open_ms < HYDROMANCER_QUOTE_FROM_MS)
        quote = None if no_quote else float(format_decimal(candle.quote_units, px + sz))
        rows.append((open_ms, float(format_decimal(candle.o, px)),
                     float(format_decimal(candle.h, px)), float(format_decimal(candle.low, px)),
                     float(format_decimal(candle.c, px)),
                     float(format_decimal(candle.volume_lots, sz)), quote, candle.trades))
    return tuple(rows)


def whole(*spans: tuple[int, int]) -> RangeSet:
    return RangeSet(Span(start, end) for start, end in spans)


def spans_total_buckets(spans: Iterable[Span], step_ms: int) -> int:
    return sum(len(span) // step_ms for span in spans)


# -- the helpers' own checks -----------------------------------------------------------


def test_expected_rows_are_what_dwellir_serves(emulator: Emulator) -> None:
    start = ms("2026-03-30T12:00:00Z")
    rows = expected_rows("dwellir", "1s", start, start + 20_000)
    assert 0 < len(rows) < 20, "20 one-second buckets: some traded, some did not"
    with httpx.Client(timeout=10) as client:
        for open_ms in range(start, start + 20_000, 1000):
            answer = client.get(f"{emulator.urls.dwellir}/{DWELLIR_KEY}/v1/candles",
                                params={"market": "BTC", "interval": "1s",
                                        "time": iso(open_ms)})
            want = [r for r in rows if r[0] == open_ms]
            if not want:
                assert answer.status_code == 404
                continue
            body = answer.json()
            got = (body["t"], *(float(body[k]) for k in "ohlcvq"), body["n"])
            assert got == want[0]


def test_expected_rows_of_hyperliquid_have_no_quote_volume() -> None:
    start = ms("2026-03-30T12:00:00Z")
    rows = expected_rows("hyperliquid", "1m", start, start + 600_000)
    assert rows and all(r[6] is None for r in rows)
    assert [r[1:6] for r in rows] == [r[1:6] for r in expected_rows(
        "hydromancer", "1m", start, start + 600_000)]
