"""Client CPU and requests/s of the Dwellir extractor, beside a plain httpx loop.

    python scripts/bench_candles.py [--hours 12] [--httpx-buckets 20000]

One emulator serves on core 0 (clock frozen at 2026-03-31T00:00:00Z, a Dwellir key
with no rate ceiling). On core 1, one after the other:

* ``hyperlake candles --source dwellir --market BTC --interval 1s --workers 1 --json``
  over [--start, --start + --hours): fetch, parse and Parquet checkpoints, end to end;
* a child process running ``httpx.AsyncClient(http2=True)`` (h2c, prior knowledge)
  with --httpx-concurrency requests in flight over the first --httpx-buckets of the
  same buckets, parsing each 200 body with orjson and nothing more.

A useful request is one whose bucket got answered: a 200 candle or a 404 empty
bucket. Prints requests/s and client CPU µs per useful request for both and their
ratio, checks both runs saw the same candles over the buckets they share (exit 1
if not), and whether hyperlake meets its targets (≤ 60 µs/req, ≥ 10,000 req/s).
Results only mean something on an otherwise idle machine (two cores are enough);
the table says how busy the CPUs were just before the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa

from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.pipelines.candles.dwellir import iso_second
from hyperlake.schemas.candles import CANDLE_SCHEMA
from hyperlake.schemas.times import parse_instant

NOW = "2026-03-31T00:00:00Z"
KEY = "bench"
MARKET, INTERVAL, STEP_MS = "BTC", "1s", 1000
SERVER_CPU, CLIENT_CPU = 0, 1
TARGET_CPU_US, TARGET_RATE = 60.0, 10_000.0
DAY_MS = 86_400_000
TIMES = "\N{MULTIPLICATION SIGN}"
BUSY_PERCENT = 10.0  # other work on the CPUs above which the numbers mean little


@dataclass(frozen=True)
class Result:
    name: str
    useful: int  # buckets answered: 200 or 404
    candles: int  # the 200s among them
    other: int  # retries and failures
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.useful / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_s / self.useful if self.useful else float("inf")


# -- the httpx baseline (runs in a child process pinned to the client core) ---------------


async def _httpx_loop(prefix: str, start_ms: int, count: int,
                      concurrency: int) -> dict[str, Any]:
    status = bytearray(count)  # 1: candle, 2: empty bucket, 3: anything else
    async with httpx.AsyncClient(http1=False, http2=True, timeout=30.0) as client:
        # One request first: the connection and httpx's lazy imports are start-up.
        first = await client.get(prefix + iso_second(start_ms))
        if first.status_code not in (200, 404):
            raise SystemExit(f"the emulator answered {first.status_code}: {first.text[:200]}")
        buckets = iter(range(count))

        async def worker() -> None:
            for i in buckets:
                response = await client.get(prefix + iso_second(start_ms + i * STEP_MS))
                if response.status_code == 200:
                    orjson.loads(response.content)
                    status[i] = 1
                elif response.status_code == 404:
                    status[i] = 2
                else:
                    status[i] = 3

        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu_s, seconds = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {"candles": [i for i in range(count) if status[i] == 1],
            "empty": status.count(2), "other": count - status.count(1) - status.count(2),
            "seconds": seconds, "cpu_s": cpu_s}


def httpx_child(args: argparse.Namespace) -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {CLIENT_CPU})
    result = asyncio.run(_httpx_loop(args.httpx_child, args.start_ms, args.count,
                                     args.httpx_concurrency))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 0


def run_httpx(prefix: str, start_ms: int, count: int, concurrency: int) -> tuple[Result, set[int]]:
    argv = ["taskset", "-c", str(CLIENT_CPU), sys.executable, __file__, "--httpx-child", prefix,
            "--start-ms", str(start_ms), "--count", str(count),
            "--httpx-concurrency", str(concurrency)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the httpx child exited with {done.returncode}:\n{done.stderr[-3000:]}")
    data = orjson.loads(done.stdout.splitlines()[-1])
    candles = {start_ms + i * STEP_MS for i in data["candles"]}
    result = Result(f"httpx.AsyncClient(http2=True), {concurrency} in flight, parse only",
                    len(candles) + data["empty"], len(candles), data["other"], data["seconds"],
                    data["cpu_s"])
    return result, candles


# -- hyperlake ------------------------------------------------------------------------------


def hyperlake_cli() -> str:
    """The CLI of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "hyperlake"
    return str(beside) if beside.exists() else shutil.which("hyperlake") or "hyperlake"


def run_hyperlake(env: dict[str, str], lake: Path, start: str, end: str) -> Result:
    argv = ["taskset", "-c", str(CLIENT_CPU), hyperlake_cli(), "candles", "--source", "dwellir",
            "--market", MARKET, "--interval", INTERVAL, "--start", start, "--end", end,
            "--rate", "100000", "--workers", "1", "--lake", str(lake), "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hyperlake candles exited with {done.returncode}:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    useful = summary["fetched"] + summary["empty"]
    # CPU per request sent (lane warm-ups and retries included), back to CPU in all.
    cpu_us = summary["client_cpu_us_per_request"] or 0.0
    return Result("hyperlake (pycurl h2c, parse, Parquet checkpoint)", useful,
                  summary["fetched"], summary["retried"] + summary["failed"],
                  summary["seconds"], cpu_us * summary["requests"] / 1e6)


def hyperlake_candles(lake: Path, start_ms: int, end_ms: int) -> set[int]:
    series = Series(LakePaths(lake), SeriesKey("candles", "dwellir", MARKET, INTERVAL))
    opens = series.read_parts(CANDLE_SCHEMA).column("t").cast(pa.int64()).to_pylist()  # ms
    return {t for t in opens if start_ms <= t < end_ms}


def warm_up(prefix: str, start_ms: int, end_ms: int) -> None:
    """One request per day of the range, so the emulator builds its day tapes untimed."""
    with httpx.Client(timeout=60.0) as client:
        for day_ms in range(start_ms - start_ms % DAY_MS, end_ms, DAY_MS):
            client.get(prefix + iso_second(max(day_ms, start_ms)))


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


def machine_busy(seconds: float = 2.0) -> float:
    """Percent of CPU time not idle over ``seconds`` (the load average lags by minutes)."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


# -- the table ------------------------------------------------------------------------------


def print_table(ours: Result, theirs: Result, httpx_prefix_note: str,
                busy_before: tuple[float, tuple[float, float, float]]) -> bool:
    head = "client (one process on 1 core, emulator on the other)"
    print(f"\n{head:64} {'useful req':>10} {'req/s':>9} {'CPU µs/req':>11}")
    for r in (ours, theirs):
        print(f"{r.name:64} {r.useful:>10,} {r.rate:>9,.0f} {r.cpu_us:>11,.1f}")
    print(f"{'ratio (httpx / hyperlake)':64} {'':>10} {theirs.rate / ours.rate:>8.2f}{TIMES} "
          f"{theirs.cpu_us / ours.cpu_us:>10.1f}{TIMES}")
    met = ours.cpu_us <= TARGET_CPU_US and ours.rate >= TARGET_RATE
    print(f"targets: hyperlake ≤ {TARGET_CPU_US:.0f} µs/req and ≥ {TARGET_RATE:,.0f} req/s  →  "
          f"{'met' if met else 'NOT met'}")
    print(f"  {httpx_prefix_note}\n  hyperlake's req/s counts the whole job (lock, worker "
          "spawn, final commit); httpx's only its request loop.")
    busy, load = busy_before
    after = machine_busy()
    print(f"  CPUs busy over 2 s before the runs {busy:.0f}%, after {after:.0f}%; load average "
          f"before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (BUSY MACHINE: numbers are not meaningful)"
             if max(busy, after) > BUSY_PERCENT else ""))
    for r in (ours, theirs):
        if r.other:
            print(f"  {r.name}: {r.other:,} requests were retried or failed")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="2026-03-29T00:00:00Z")
    parser.add_argument("--hours", type=float, default=12.0, help="hyperlake's range")
    parser.add_argument("--repeat", type=int, default=3,
                        help="hyperlake runs (a fresh lake each); the table shows the fastest")
    parser.add_argument("--httpx-buckets", type=int, default=20_000,
                        help="httpx takes this prefix of the buckets (it is slow)")
    parser.add_argument("--httpx-concurrency", type=int, default=64)
    parser.add_argument("--httpx-child", metavar="URL_PREFIX", help=argparse.SUPPRESS)
    parser.add_argument("--start-ms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.httpx_child:
        return httpx_child(args)
    if shutil.which("taskset") is None or shutil.which(hyperlake_cli()) is None:
        raise SystemExit("needs taskset (util-linux) and the hyperlake CLI (pip install -e .)")
    busy_before = machine_busy(), os.getloadavg()
    start_ms = parse_instant(args.start, "--start")
    end_ms = start_ms + int(args.hours * 3600) * STEP_MS
    end = iso_second(end_ms)
    buckets = (end_ms - start_ms) // STEP_MS
    httpx_count = min(args.httpx_buckets, buckets)
    config = frozen_config(parse_instant(NOW, "NOW"), dwellir_keys={KEY: "scale"},
                           dwellir_rate_overrides={KEY: 10**9})
    with tempfile.TemporaryDirectory(prefix="bench-candles-") as tmp, \
            Emulator(config, cpu=SERVER_CPU) as emu:
        env = {**os.environ, "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
               "HYPERLAKE_DWELLIR_URL": emu.urls.dwellir, "HYPERLAKE_DWELLIR_KEY": KEY,
               "HYPERLAKE_NOW": NOW, "HYPERLAKE_PACING_DIR": str(Path(tmp) / "pacing")}
        prefix = (f"{emu.urls.dwellir}/{KEY}/v1/candles?market={MARKET}&interval={INTERVAL}"
                  "&time=")
        warm_up(prefix, start_ms, end_ms)
        print(f"hyperlake: {buckets:,} buckets {args.start} → {end} ...",
              file=sys.stderr)
        lakes = [Path(tmp) / f"lake-{i}" for i in range(max(1, args.repeat))]
        runs = [run_hyperlake(env, lake, args.start, end) for lake in lakes]  # fresh lakes
        ours = max(runs, key=lambda run: run.rate)
        print(f"httpx: the first {httpx_count:,} of them ...", file=sys.stderr)
        theirs, httpx_set = run_httpx(prefix, start_ms, httpx_count, args.httpx_concurrency)
        common_end = start_ms + httpx_count * STEP_MS
        lake_sets = [hyperlake_candles(lake, start_ms, common_end) for lake in lakes]
    note = (f"httpx ran over the first {httpx_count:,} of hyperlake's "
            f"{buckets:,} buckets ({args.start} → {iso_second(common_end)})")
    if len(runs) > 1:
        note += (f"\n  hyperlake: the fastest of {len(runs)} runs; all: "
                 + ", ".join(f"{r.rate:,.0f} req/s {r.cpu_us:.1f} µs" for r in runs))
    print_table(ours, theirs, note, busy_before)
    if any(run.useful != buckets for run in runs):
        print(f"hyperlake answered {[run.useful for run in runs]} of {buckets:,} buckets",
              file=sys.stderr)
        return 1
    for lake_set in lake_sets:
        if lake_set != httpx_set or theirs.useful != httpx_count:
            print(f"MISMATCH over the common {httpx_count:,} buckets: hyperlake has "
                  f"{len(lake_set):,} candles, httpx {len(httpx_set):,} "
                  f"({len(lake_set ^ httpx_set):,} differ; httpx answered {theirs.useful:,})",
                  file=sys.stderr)
            return 1
    print(f"  same answers: {len(httpx_set):,} candles (200) and "
          f"{httpx_count - len(httpx_set):,} empty buckets (404) in the common buckets, "
          "every run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
