"""Compaction memory is bounded by a day of rows: 25 days peak about as high as 5.

Each compaction runs in a fresh interpreter started by a small launcher interpreter
that reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. The launcher matters: Linux
carries a process's ``ru_maxrss`` across ``exec`` from the image it was forked from,
so a compaction spawned straight from this (large) pytest process would report at
least pytest's own peak, and 5 and 25 days would look alike whatever they cost.
Why 5 and not 1-3 days: Arrow's default allocator (mimalloc) keeps freed memory, so
the peak still creeps up over the first days (~165 MiB at 1 day, ~220 at 3) before
it levels off (~250 from 5-10 days on, also for a year); 3 vs 15 days measured
1.13-1.27 here, too close to the bound to be a stable test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.intervals import DAY_MS, SECOND_MS
from hyperlake.schemas.records import TS

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
PART_ROWS = 50_000  # what the Dwellir extractor commits at a time
CHILD = """
import sys
from pathlib import Path
from hyperlake.pipelines.compact import CompactJob, run_compact
stats, _ = run_compact(CompactJob(lake=Path(sys.argv[1]), datasets=("candles",)))
print(stats.rows_out, stats.parts_consumed)
"""
LAUNCHER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def second_candles(start: int, end: int, seed: int) -> pa.Table:
    """1s candles over [start, end), vectorised: a random walk on a 0.01 tick."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, end, SECOND_MS, dtype=np.int64)
    count = len(t)
    close = np.round(50_000 + np.cumsum(rng.normal(0, 2, count)), 2)
    spread = np.round(rng.random(count), 2)
    return pa.table({
        "market": pa.array(np.full(count, "BTC")), "interval": pa.array(np.full(count, "1s")),
        "t": pa.array(t, TS), "t_close": pa.array(t + SECOND_MS - 1, TS),
        "o": close - spread / 2, "h": close + spread, "l": close - spread, "c": close,
        "v": np.round(rng.random(count), 4), "q": np.round(rng.random(count) * 50_000, 2),
        "n": rng.integers(0, 40, count), "x": np.ones(count, dtype=bool),
        "source": pa.array(np.full(count, "dwellir")),
        "fetched_at": pa.array(np.full(count, end + DAY_MS), TS),
    }, schema=CANDLE_SCHEMA)


def make_checkpoints(lake: Path, days: int) -> int:
    series = Series(LakePaths(lake), SeriesKey("candles", "dwellir", "BTC", "1s"))
    job = Span(T0, T0 + days * DAY_MS)
    writer = ShardWriter(series, series.job_folder(job) / "shard-000")
    parts = 0
    for start in range(job.start, job.end, PART_ROWS * SECOND_MS):
        span = Span(start, min(start + PART_ROWS * SECOND_MS, job.end))
        writer.commit(span, second_candles(span.start, span.end, seed=parts), [])
        parts += 1
    return parts


def compact_peak_kib(lake: Path) -> tuple[list[int], int]:
    """Compact ``lake`` in a child; (its printed stats, its peak RSS in KiB)."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", CHILD,
                           str(lake)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *stats, peak = done.stdout.split()
    return [int(v) for v in stats], int(peak)


def test_peak_memory_of_25_days_is_about_that_of_5(tmp_path: Path) -> None:
    peaks = {}
    for days in (5, 25):
        lake = tmp_path / f"lake-{days}"
        parts = make_checkpoints(lake, days)
        stats, peaks[days] = compact_peak_kib(lake)
        assert stats == [days * 86_400, parts]
    assert peaks[25] / peaks[5] < 1.3, f"peak RSS KiB: {peaks}"
