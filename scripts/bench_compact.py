"""Compaction throughput and memory, and what querying the compacted lake costs.

    python scripts/bench_compact.py [--dir DIR] [--year-days 365] [--month-days 30] [--keep]

Synthetic 1s candles of one market (BTC, every second present, a random walk on a
0.01 tick), generated with numpy and committed as checkpoints the way the Dwellir
extractor commits them: ``ShardWriter`` parts of 50,000 buckets, two shards per job.
Hourly funding for the same period is committed like the funding extractor does
(336-hour windows). Then, in one run:

1. ``run_compact`` of a month of 1s candles in a fresh interpreter (best of 2, each on
   a fresh copy of the checkpoints), rows/s from its own timer, against a bare
   ``pq.write_table(table, path)`` (default options) of the same rows already in
   memory as one table (best of 3). Target: ratio >= 0.5.
2. Peak RSS compacting the month (target <= 300 MiB) and a year (target: within
   1.2x of the month): ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by a small
   launcher interpreter that starts the compaction. Not read here directly: Linux
   carries ``ru_maxrss`` across ``exec`` from the process that forked, so a child of
   this (large) process would report at least this process's own peak.
3. The as-of join ``candles_with_funding`` of ``hyperlake.query.catalog.connect`` over
   the month's lake, against the same view SQL over in-memory DuckDB tables holding
   the same rows (best of 5 each, same thread count). Target: <= 1.5x.
4. Files a one-day query opens over the year's lake, from DuckDB's ``EXPLAIN
   ANALYZE`` ("Total Files Read", summed over every scan): of ``candles`` (target
   <= 2) and of ``candles_with_funding``, whose as-of lookback is bounded (target <= 3).

Needs ~4 GB of free disk in --dir (default: a temporary folder, removed at the end)
and a few minutes; results only mean something on an idle machine (``uptime``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.compaction import LAKE_WRITE_OPTIONS
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.funding import FundingRow, funding_table
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, SECOND_MS
from hyperlake.schemas.records import TS

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MARKET, INTERVAL = "BTC", "1s"
PART_BUCKETS = 50_000  # the Dwellir extractor's flush_buckets
FUNDING_WINDOW_HOURS = 336  # the funding extractor's hours_per_window
TARGET_RATIO, TARGET_RSS_MIB, TARGET_FLAT = 0.5, 300.0, 1.2
TARGET_JOIN, TARGET_FILES, TARGET_JOIN_FILES = 1.5, 2, 3
HIVE = "hive_partitioning = true, hive_types = {'market': 'VARCHAR', 'interval': 'VARCHAR', " \
       "'date': 'DATE'}"
CHILD = """
import json, sys
from pathlib import Path
from hyperlake.pipelines.compact import CompactJob, run_compact
stats, seconds = run_compact(CompactJob(lake=Path(sys.argv[1]), datasets=("candles",)))
print(json.dumps({"rows_in": stats.rows_in, "rows_out": stats.rows_out,
                  "parts": stats.parts_consumed, "partitions": stats.partitions_written,
                  "seconds": seconds}))
"""
LAUNCHER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


# -- synthetic checkpoints ---------------------------------------------------------------

def second_candles(start: int, end: int, rng: np.random.Generator, fetched: int,
                   market: str = MARKET) -> pa.Table:
    """1s candles of ``market`` from ``start`` to ``end``: a random walk (also
    ``bench_scale``'s)."""
    t = np.arange(start, end, SECOND_MS, dtype=np.int64)
    count = len(t)
    close = np.round(90_000 + np.cumsum(rng.integers(-300, 301, count)) / 100, 2)
    o = np.round(close + rng.integers(-50, 51, count) / 100, 2)
    wick = rng.integers(0, 40, count) / 100
    return pa.table({
        "market": pa.repeat(pa.scalar(market), count),
        "interval": pa.repeat(pa.scalar(INTERVAL), count),
        "t": pa.array(t, TS), "t_close": pa.array(t + SECOND_MS - 1, TS),
        "o": o, "h": np.maximum(o, close) + wick, "l": np.minimum(o, close) - wick, "c": close,
        "v": np.round(rng.exponential(0.3, count), 5),
        "q": np.round(rng.exponential(27_000, count), 2),
        "n": rng.integers(1, 60, count), "x": np.ones(count, dtype=bool),
        "source": pa.repeat(pa.scalar("dwellir"), count),
        "fetched_at": pa.array(np.full(count, fetched), TS),
    }, schema=CANDLE_SCHEMA)


def make_checkpoints(lake: Path, days: int, seed: int) -> int:
    """``days`` of 1s candles and hourly funding as checkpoint parts; returns candle rows."""
    paths = LakePaths(lake)
    rng = np.random.default_rng(seed)
    job = Span(START, START + days * DAY_MS)
    fetched = job.end + HOUR_MS
    series = Series(paths, SeriesKey("candles", "dwellir", MARKET, INTERVAL))
    half = START + (days // 2) * DAY_MS if days > 1 else job.end
    rows = 0
    for shard, (a, b) in enumerate(((job.start, half), (half, job.end))):
        writer = ShardWriter(series, series.job_folder(job) / f"shard-{shard:03d}")
        for start in range(a, b, PART_BUCKETS * SECOND_MS):
            span = Span(start, min(start + PART_BUCKETS * SECOND_MS, b))
            table = second_candles(span.start, span.end, rng, fetched)
            writer.commit(span, table, [])
            rows += table.num_rows
    funding = Series(paths, SeriesKey("funding", "hyperliquid", MARKET, "1h"))
    writer = ShardWriter(funding, funding.job_folder(job) / "coin")
    for start in range(job.start, job.end, FUNDING_WINDOW_HOURS * HOUR_MS):
        span = Span(start, min(start + FUNDING_WINDOW_HOURS * HOUR_MS, job.end))
        hours = range(span.start, span.end, HOUR_MS)
        writer.commit(span, funding_table(MARKET, "hyperliquid", [
            FundingRow(h + 4, h, float(rng.normal(1.25e-5, 1e-5)), float(rng.normal(0, 3e-4)),
                       fetched)
            for h in hours]), [])
    return rows


def checkpoint_rows(lake: Path) -> pa.Table:
    parts = sorted((lake / "_checkpoints/candles").rglob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]).combine_chunks()


# -- measurements ----------------------------------------------------------------------

@dataclass(frozen=True)
class ChildRun:
    rows_out: int
    parts: int
    seconds: float  # run_compact's own timer
    peak_mib: float


def compact_in_child(lake: Path) -> ChildRun:
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", CHILD,
                           str(lake)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"compaction of {lake} failed: {done.stderr[-2000:]}")
    summary, peak_kib = done.stdout.strip().splitlines()
    stats = json.loads(summary)
    return ChildRun(stats["rows_out"], stats["parts"], stats["seconds"], int(peak_kib) / 1024)


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def bare_write_rate(table: pa.Table, path: Path, **options: object) -> float:
    """Rows/s of ``pq.write_table`` (default options unless given), best of 3."""
    rows: int = table.num_rows
    return rows / best_of(3, lambda: pq.write_table(table, path, **options))


def files_read(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    profile = "\n".join(str(cell) for row in con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()
                        for cell in row)
    counts = re.findall(r"Total Files Read: ([\d,]+)", profile)
    if not counts:
        raise SystemExit("EXPLAIN ANALYZE shows no 'Total Files Read': DuckDB's format changed")
    return sum(int(c.replace(",", "")) for c in counts)


JOIN_QUERY = ("SELECT count(*), count(funding_rate), sum(funding_rate * c), max(funding_hour) "
              "FROM candles_with_funding")
# Used only when hyperlake.query.catalog is missing (an older checkout): the join inline.
INLINE_VIEW = """
CREATE VIEW candles_with_funding AS
WITH hourly AS (
    SELECT market, funding_hour, arg_max(fundingRate, time) AS funding_rate,
           arg_max(premium, time) AS premium
    FROM funding GROUP BY market, funding_hour
)
SELECT c.*, f.funding_hour, f.funding_rate, f.funding_rate * 8760 AS funding_apr, f.premium
FROM candles AS c
ASOF LEFT JOIN hourly AS f ON c.market = f.market AND c.t >= f.funding_hour
"""


def same_answer(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Equal, but for the last bits of float sums (a parallel sum's order varies)."""
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-12) if isinstance(x, float) and isinstance(y, float)
        else x == y for x, y in zip(a, b, strict=True))


def lake_sources(lake: Path) -> dict[str, str]:
    return {name: f"read_parquet('{lake / name}/market=*/interval=*/date=*/part-*.parquet', "
                  f"{HIVE})" for name in ("candles", "funding")}


def connect_lake(lake: Path) -> tuple[duckdb.DuckDBPyConnection, str, str]:
    """(connection with the lake views, the view SQL it uses, where that came from)."""
    try:
        from hyperlake.query import catalog
    except ImportError:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for name, source in lake_sources(lake).items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")
        con.execute(INLINE_VIEW)
        return con, INLINE_VIEW, "inline SQL"
    return catalog.connect(lake), catalog.candles_with_funding_sql(lake), "catalog.connect"


def in_memory(lake: Path, view_sql: str, threads: int) -> duckdb.DuckDBPyConnection:
    """The same rows as tables in an in-memory database, and the same view over them."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {threads}")
    for name, source in lake_sources(lake).items():
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {source}")
    con.execute(view_sql)
    return con


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- main ------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--month-days", type=int, default=30)
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (its lakes) and print where it is")
    args = parser.parse_args()
    print(f"load average at start: {loadavg()} ({os.cpu_count()} CPUs)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-compact-", dir=args.dir))
    try:
        return run(work, args.month_days, args.year_days)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, month_days: int, year_days: int) -> int:
    rows: list[tuple[str, str, str, str]] = []  # name, value, target, verdict

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    # 1. throughput against a bare write of the same rows
    started = time.monotonic()
    month_src = work / "month-checkpoints"
    month_rows = make_checkpoints(month_src, month_days, seed=1)
    print(f"month: {month_rows:,} rows of checkpoints in {time.monotonic() - started:.1f}s",
          flush=True)
    month_runs = []
    for attempt in range(2):
        lake = work / f"month-lake-{attempt}"
        shutil.copytree(month_src, lake)
        month_runs.append(compact_in_child(lake))
        assert month_runs[-1].rows_out == month_rows
    month = min(month_runs, key=lambda r: r.seconds)
    compact_rate = month.rows_out / month.seconds
    table = checkpoint_rows(month_src)
    bare_rate = bare_write_rate(table, work / "bare.parquet")
    lake_options_rate = bare_write_rate(table, work / "bare-lake-options.parquet",
                                        **LAKE_WRITE_OPTIONS)
    table = table.slice(0, 0)
    ratio = compact_rate / bare_rate
    what = f"{month_days} days of 1s, {month_rows / 1e6:.2f} M rows, {month.parts} parts"
    rows.append((f"compaction rows/s ({what})", f"{compact_rate:,.0f}", "", ""))
    rows.append(("bare pq.write_table rows/s (same rows, one table)", f"{bare_rate:,.0f}", "",
                 ""))
    rows.append(("  ratio compaction / bare write", f"{ratio:.2f}", f">= {TARGET_RATIO}",
                 verdict(ratio >= TARGET_RATIO)))
    rows.append(("  (info) pq.write_table with the lake's options",
                 f"{lake_options_rate:,.0f}", "", ""))

    # 2. peak memory: a month, then a year
    month_peak = max(r.peak_mib for r in month_runs)
    rows.append((f"peak RSS compacting {month_days} days of 1s", f"{month_peak:.0f} MiB",
                 f"<= {TARGET_RSS_MIB:.0f} MiB", verdict(month_peak <= TARGET_RSS_MIB)))
    started = time.monotonic()
    year_lake = work / "year-lake"
    year_rows = make_checkpoints(year_lake, year_days, seed=2)
    print(f"year: {year_rows:,} rows of checkpoints in {time.monotonic() - started:.1f}s",
          flush=True)
    year = compact_in_child(year_lake)
    assert year.rows_out == year_rows
    print(f"year: compacted in {year.seconds:.1f}s ({year.rows_out / year.seconds:,.0f} rows/s)",
          flush=True)
    run_compact(CompactJob(lake=year_lake, datasets=("funding",)))
    flat = year.peak_mib / month_peak
    rows.append((f"peak RSS compacting {year_days} days of 1s ({year_rows / 1e6:.1f} M rows)",
                 f"{year.peak_mib:.0f} MiB", f"<= {TARGET_FLAT}x month",
                 verdict(flat <= TARGET_FLAT)))
    rows.append(("  year / month", f"{flat:.2f}x", "", ""))

    # 3. the as-of join over the month's lake against in-memory tables
    month_lake = work / "month-lake-0"
    run_compact(CompactJob(lake=month_lake, datasets=("funding",)))
    lake_con, view_sql, origin = connect_lake(month_lake)
    threads = int(lake_con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    mem_con = in_memory(month_lake, view_sql, threads)
    answers = [con.execute(JOIN_QUERY).fetchall() for con in (lake_con, mem_con)]
    if not same_answer(answers[0][0], answers[1][0]):
        raise SystemExit(f"the lake and in-memory joins disagree: {answers}")
    lake_join = best_of(5, lambda: lake_con.execute(JOIN_QUERY).fetchall())
    mem_join = best_of(5, lambda: mem_con.execute(JOIN_QUERY).fetchall())
    join_ratio = lake_join / mem_join
    rows.append((f"as-of join over the lake, {answers[0][0][0] / 1e6:.2f} M bars ({origin})",
                 f"{lake_join * 1000:.0f} ms", "", ""))
    rows.append((f"same join over in-memory DuckDB tables ({threads} threads)",
                 f"{mem_join * 1000:.0f} ms", "", ""))
    rows.append(("  ratio lake / in-memory", f"{join_ratio:.2f}x", f"<= {TARGET_JOIN}x",
                 verdict(join_ratio <= TARGET_JOIN)))

    # 4. files opened by a one-day query over the year's lake
    year_con, _, _ = connect_lake(year_lake)
    day = (dt.date(2026, 1, 1) + dt.timedelta(days=year_days // 2)).isoformat()
    where = f"market = '{MARKET}' AND interval = '{INTERVAL}' AND date = DATE '{day}'"
    one_day = files_read(year_con, f"SELECT count(*), avg(c) FROM candles WHERE {where}")
    rows.append((f"files read, one-day query of candles ({day}, {year_days}-day lake)",
                 f"{one_day}", f"<= {TARGET_FILES}", verdict(one_day <= TARGET_FILES)))
    join_day = files_read(year_con, "SELECT count(*), avg(funding_rate) FROM "
                          f"candles_with_funding WHERE {where}")
    rows.append(("files read, same day of candles_with_funding", f"{join_day}",
                 f"<= {TARGET_JOIN_FILES}", verdict(join_day <= TARGET_JOIN_FILES)))

    print(f"\n{'measure':66} {'value':>13} {'target':>15}  result")
    for name, value, target, result in rows:
        print(f"{name:66} {value:>13} {target:>15}  {result}")
    print(f"\nload average at end: {loadavg()} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
