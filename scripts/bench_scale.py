"""Whole-lake compaction: one process against a Dask cluster of two worker processes;
and the overhead of an s3:// lake root against local disk.

    python scripts/bench_scale.py [--markets 4] [--days 365] [--rounds 3] [--dir DIR]
    python scripts/bench_scale.py --days 30 --rounds 2      # a quick run
    python scripts/bench_scale.py --only s3 [--s3-days 30]  # the object-store rows only

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

**The object store** (``--s3-days``, default 30; ``--only s3`` runs just this part):
the same compaction and a one-day query on an ``s3://`` root against a local-disk root,
side by side. The store is moto's S3 server on loopback, in a process of its own (as a
store would be: its CPU is not this process's), so the ratios show what the lake's S3
path costs on top of the same work on disk — requests, no page cache, whole-object
PUTs — not what a real S3 or MinIO would cost (their round trips are 10-100x a
loopback one). ``s3-days`` days of 1s bars of one market are made once as checkpoint
parts, uploaded before each s3:// round and copied before each local one (not timed),
then ``hyperlake compact`` runs in a fresh interpreter on each (best of the rounds).
The one-day query is the ``candles`` view (``hyperlake.connect``, a new connection
each time: what ``hyperlake sql`` pays) and ``load_candles`` (polars), best of 5, on
the compacted lakes. No target: report the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_compact import second_candles  # scripts/: the same synthetic 1s candles

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import Location, ObjectPath
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
        with paths.writer_lock() as lock:
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
    parser.add_argument("--s3-days", type=int, default=30)
    parser.add_argument("--only", choices=("cluster", "s3"), help="run one part only")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        if args.only != "s3":
            run(work, args.markets, args.days, args.rounds)
        if args.only != "cluster":
            run_s3(work, args.s3_days, args.rounds)
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



# -- the object store --------------------------------------------------------------------


class MotoProcess:
    """moto's S3 server on a free loopback port, in a process of its own."""

    def __init__(self, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", "0"],
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:  # a server that did not come up, or refused the bucket, is not left running
            self.endpoint = self._endpoint(log)
            self.env = {**os.environ, "HYPERLAKE_S3_ENDPOINT": self.endpoint,
                        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}
            os.environ.update(self.env)
            import boto3

            boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench",
                         ).create_bucket(Bucket="bench")
        except BaseException:
            self.close()
            raise

    def _endpoint(self, log: Path) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log.read_text())
            if found:
                return found[1]
            time.sleep(0.1)
        raise SystemExit("bench_scale: moto_server did not start (pip install 'moto[s3]' "
                         "flask flask-cors)")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def upload(source: Path, root: Location) -> None:
    """Every file under ``source`` as an object under ``root`` (same relative names)."""
    store = LakePaths(root).store
    for path in sorted(source.rglob("*")):
        if path.is_file():
            store.put(root / path.relative_to(source).as_posix(), path.read_bytes())


def compact_cli(lake: Location, env: dict[str, str]) -> Measured:
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "hyperlake.cli", "compact", "--lake",
                           str(lake), "--json"], capture_output=True, text=True, check=True,
                          env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(result["seconds"], cpu, load, result["partitions_written"])


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def one_day_queries(lake: Location, day: str) -> dict[str, float]:
    from hyperlake.query.catalog import connect
    from hyperlake.query.loaders import load_candles

    sql = ("SELECT count(*), avg(c), max(h) FROM candles WHERE market = 'BTC' AND "
           f"interval = '1s' AND date = DATE '{day}'")

    def duckdb_view() -> None:
        con = connect(lake)
        [(rows, _, _)] = con.sql(sql).fetchall()
        assert rows == 86_400, rows
        con.close()

    def polars_loader() -> None:
        frame = load_candles(lake, "BTC", "1s", f"{day}T00:00:00Z", f"{day}T23:59:59Z")
        assert len(frame) == 86_399, len(frame)

    return {"one-day query, DuckDB view (connect + query)": best_of(5, duckdb_view),
            "one-day query, polars load_candles": best_of(5, polars_loader)}


def requests_logged(log: Path, since: int) -> tuple[int, dict[str, int]]:
    """moto's access log after byte ``since``: (its end, requests by method)."""
    time.sleep(0.5)  # the server's last lines
    text = log.read_bytes()
    counts: dict[str, int] = {}
    plain = re.sub(rb"\x1b\[[0-9;]*m", b"", text[since:])  # coloured: 206, 4xx
    for method in re.findall(rb'"(GET|PUT|POST|HEAD|DELETE) ', plain):
        counts[method.decode()] = counts.get(method.decode(), 0) + 1
    return len(text), counts


def client_rows(moto: MotoProcess, log: Path, objects: int = 300) -> list[str]:
    """obstore (what the lake uses) against pyarrow's S3 filesystem (already installed):
    small PUTs and GETs, the requests each makes (from moto's log), conditional writes."""
    import obstore
    import pyarrow.fs as pafs
    from obstore.store import S3Store

    body = os.urandom(10 * 1024)
    store = S3Store("bench", endpoint=moto.endpoint, region="us-east-1",
                    access_key_id="bench", secret_access_key="bench",
                    client_options={"allow_http": True})
    host = moto.endpoint.removeprefix("http://")
    clients: dict[str, Any] = {
        "obstore": None,
        "pyarrow S3FileSystem": pafs.S3FileSystem(
            endpoint_override=host, scheme="http", access_key="bench", secret_key="bench",
            region="us-east-1"),
        "pyarrow, allow_delayed_open": pafs.S3FileSystem(
            endpoint_override=host, scheme="http", access_key="bench", secret_key="bench",
            region="us-east-1", allow_delayed_open=True),
    }
    rows: list[str] = []
    for name, fs in clients.items():
        prefix = f"clients/{name.split()[0]}-{len(rows)}"

        def put(i: int, fs: Any = fs, prefix: str = prefix) -> None:
            if fs is None:
                obstore.put(store, f"{prefix}/{i}", body, use_multipart=False)
            else:
                with fs.open_output_stream(f"bench/{prefix}/{i}") as out:
                    out.write(body)

        def get(i: int, fs: Any = fs, prefix: str = prefix) -> None:
            if fs is None:
                obstore.get(store, f"{prefix}/{i}").bytes()
            else:
                with fs.open_input_file(f"bench/{prefix}/{i}") as f:
                    f.read()

        mark, _ = requests_logged(log, 0)
        started = time.perf_counter()
        for i in range(objects):
            put(i)
        put_ms = (time.perf_counter() - started) / objects * 1000
        mark, puts = requests_logged(log, mark)
        started = time.perf_counter()
        for i in range(objects):
            get(i)
        get_ms = (time.perf_counter() - started) / objects * 1000
        _, gets = requests_logged(log, mark)
        conditional = "If-None-Match / If-Match, typed errors" if fs is None else "none"
        rows.append(f"| {name} | {put_ms:.1f} | {sum(puts.values()) / objects:.1f} "
                    f"({'+'.join(sorted(puts))}) | {get_ms:.1f} | "
                    f"{sum(gets.values()) / objects:.1f} ({'+'.join(sorted(gets))}) | "
                    f"{conditional} |")
    return rows


def run_s3(work: Path, days: int, rounds: int) -> None:
    source = work / "s3-parts"
    # --dir keeps the parts for the next run (of the same size)
    rows = days * 86_400 if source.exists() else make_parts(source, 1, days)
    print(f"\nobject store: 1 market x {days} days of 1s bars, {rows:,} rows", flush=True)
    moto = MotoProcess(work / "moto.log")
    local = work / "s3-local"
    compaction: dict[str, list[Measured]] = {"local disk": [], "s3:// (moto)": []}
    try:
        for round_ in range(rounds):
            fresh_copy(source, local)
            remote = ObjectPath("bench", f"lake-{round_}")
            upload(source, remote)
            for name, lake in (("local disk", local), ("s3:// (moto)", remote)):
                measured = compact_cli(lake, moto.env)
                compaction[name].append(measured)
                print(f"round {round_ + 1} compact {name:<13} wall {measured.wall:6.2f}s  "
                      f"cpu {measured.cpu:6.2f}s  load {measured.load:4.1f}  "
                      f"{measured.partitions} partitions", flush=True)
        day = "2025-01-15" if days > 15 else "2025-01-01"
        queries = {"local disk": one_day_queries(local, day),
                   "s3:// (moto)": one_day_queries(ObjectPath("bench", f"lake-{rounds - 1}"),
                                                   day)}
        clients = client_rows(moto, work / "moto.log")
    finally:
        moto.close()
    best = {name: min(found, key=lambda m: m.wall).wall for name, found in compaction.items()}
    print()
    print("| measure | local disk | s3:// (moto, loopback) | s3 / local |")
    print("|---|---:|---:|---:|")
    lo, hi = best["local disk"], best["s3:// (moto)"]
    print(f"| compaction, {days} days of 1s bars ({rows / 1e6:.1f} M rows), best wall | "
          f"{lo:.2f} s | {hi:.2f} s | {hi / lo:.2f}x |")
    for label in queries["local disk"]:
        lo, hi = queries["local disk"][label], queries["s3:// (moto)"][label]
        print(f"| {label}, best of 5 | {lo * 1000:.0f} ms | {hi * 1000:.0f} ms | "
              f"{hi / lo:.2f}x |")
    print()
    print("| client (10 KiB objects, one at a time) | PUT ms | requests a PUT | GET ms | "
          "requests a GET | conditional writes |")
    print("|---|---:|---:|---:|---:|---|")
    for row in clients:
        print(row)
    print(f"\n{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
