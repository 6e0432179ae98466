"""Whole-lake compaction: one process against a Dask cluster of two worker processes.

    python scripts/bench_scale.py [--markets 4] [--days 365] [--rounds 3] [--dir DIR]
    python scripts/bench_scale.py --days 30 --rounds 2      # a quick run

A year of 1s bars for 4 markets (126 M rows at the defaults) is synthesised straight
into checkpoint parts through the lake's writer API (``ShardWriter``, 50,000 buckets a
part, as the Dwellir extractor commits them; no emulator), once. Then, alternating
which side goes first, each round compacts a fresh copy of those parts (hard links:
compaction never changes a part, it only deletes it):

- **one process**: ``hyperlake compact`` (``run_compact``, pyarrow's default threads)
  in a fresh interpreter; wall time from its own timer, CPU seconds from
  ``getrusage(RUSAGE_CHILDREN)``;
- **cluster**: ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` (started once, as a cluster that is already there), and the same
  job as ``hyperlake backfill --stages compact`` runs it: one task per group and
  month, a finish per group (``pipelines.backfill``), under the writer lock's grant;
  wall time from submitting the tasks to the last result, CPU seconds of the two
  workers (psutil) plus this process (the driver, and the LocalCluster's scheduler).

Best of the rounds for each side; the speedup is their ratio (target >= 1.7x on this
2-core machine). The load average before each run and the CPU seconds are printed
beside the wall times: other processes on the machine take cores, and memory-bound
work costs more CPU when both cores are busy, so read the numbers with them.

Local disk only; the object-store rows come with the S3 filesystem layer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_compact import second_candles  # scripts/: the same synthetic 1s candles

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.lock import LakeLock
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.pipelines.backfill.cluster import DaskExecutor
from hyperlake.pipelines.backfill.executors import Failed
from hyperlake.pipelines.backfill.plan import lake_compaction
from hyperlake.pipelines.backfill.tasks import DaysCompacted, GroupCompacted, Task, TaskContext
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.intervals import DAY_MS, SECOND_MS

START = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MARKETS = ("BTC", "ETH", "SOL", "HYPE", "kPEPE", "DOGE", "AVAX", "LINK")
PART_BUCKETS = 50_000
TARGET = 1.7


# -- the parts --------------------------------------------------------------------------


def make_parts(lake: Path, markets: int, days: int) -> int:
    """``days`` of 1s candles of each market as checkpoint parts; returns the rows."""
    paths = LakePaths(lake)
    job = Span(START, START + days * DAY_MS)
    rows = 0
    for index, market in enumerate(MARKETS[:markets]):
        rng = np.random.default_rng(index)
        series = Series(paths, SeriesKey("candles", "dwellir", market, "1s"))
        writer = ShardWriter(series, series.job_folder(job) / "shard-000")
        for start in range(job.start, job.end, PART_BUCKETS * SECOND_MS):
            span = Span(start, min(start + PART_BUCKETS * SECOND_MS, job.end))
            table = second_candles(span.start, span.end, rng, job.end, market)
            writer.commit(span, table, [])
            rows += table.num_rows
    return rows


def fresh_copy(source: Path, target: Path) -> None:
    """The parts, hard-linked (compaction only ever deletes a part)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=os.link)


# -- the two sides ----------------------------------------------------------------------


@dataclass
class Measured:
    wall: float
    cpu: float
    load: float  # 1-minute load average as the run started
    partitions: int


def one_process(lake: Path) -> Measured:
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "hyperlake.cli", "compact", "--lake",
                           str(lake), "--json"], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(result["seconds"], cpu, load, result["partitions_written"])


class Cluster:
    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0", silence_logs=40)
        self.client = Client(self.local, set_as_default=False)
        self.executor = DaskExecutor(self.client)

    def worker_cpu(self) -> float:
        def cpu() -> float:
            import psutil

            times = psutil.Process().cpu_times()
            return float(times.user + times.system)

        return float(sum(self.client.run(cpu).values()))

    def compact(self, lake: Path) -> Measured:
        load = os.getloadavg()[0]
        workers, mine = self.worker_cpu(), time.process_time()
        started = time.monotonic()
        paths = LakePaths(lake.absolute())
        written = 0
        with LakeLock(paths.lock_file) as lock:
            tasks = lake_compaction(paths, lock.holder)
            ctx = TaskContext(lake.absolute(), lock.grant(), SourceSettings())

            def on_done(task: Task, result: object) -> None:
                nonlocal written
                if isinstance(result, Failed):
                    raise SystemExit(f"bench_scale: {result.message}")
                if isinstance(result, DaysCompacted | GroupCompacted):
                    written += result.stats.partitions_written

            self.executor.run(tasks, ctx, on_done, lambda task, done: None)
        wall = time.monotonic() - started
        cpu = self.worker_cpu() - workers + time.process_time() - mine
        return Measured(wall, cpu, load, written)

    def close(self) -> None:
        self.client.close()
        self.local.close()


# -- the run ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", type=int, default=4)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        run(work, args.markets, args.days, args.rounds)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, markets: int, days: int, rounds: int) -> None:
    source, lake = work / "parts", work / "lake"
    started = time.monotonic()
    # --dir keeps the parts for the next run (of the same size)
    rows = markets * days * 86_400 if source.exists() else make_parts(source, markets, days)
    print(f"{markets} markets x {days} days of 1s bars: {rows:,} rows in checkpoint parts "
          f"({time.monotonic() - started:.0f}s to make)", flush=True)
    cluster = Cluster()
    sides = {"one process": one_process, "cluster 2x1": cluster.compact}
    results: dict[str, list[Measured]] = {name: [] for name in sides}
    try:
        for round_ in range(rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                fresh_copy(source, lake)
                measured = sides[name](lake)
                results[name].append(measured)
                print(f"round {round_ + 1} {name:<12} wall {measured.wall:7.1f}s  cpu "
                      f"{measured.cpu:7.1f}s  load {measured.load:4.1f}  "
                      f"{measured.partitions} partitions  "
                      f"{rows / measured.wall / 1e6:5.2f} M rows/s", flush=True)
    finally:
        cluster.close()
        shutil.rmtree(lake, ignore_errors=True)
    best = {name: min(found, key=lambda m: m.wall) for name, found in results.items()}
    one, two = best["one process"], best["cluster 2x1"]
    speedup = one.wall / two.wall
    print()
    print("| side | best wall (s) | CPU (s) | load avg at start | M rows/s |")
    print("|---|---|---|---|---|")
    for name, m in best.items():
        print(f"| {name} | {m.wall:.1f} | {m.cpu:.1f} | {m.load:.1f} | {rows / m.wall / 1e6:.2f} |")
    print(f"\nspeedup {speedup:.2f}x (target >= {TARGET}x): "
          f"{'met' if speedup >= TARGET else 'NOT met'}; CPU of the cluster side / one "
          f"process {two.cpu / one.cpu:.2f}x; {os.cpu_count()} CPUs, load average now "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
