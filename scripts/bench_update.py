"""``hyperlake update`` and ``hyperlake status``, measured side by side in one run.

1. A no-op update of an up-to-date lake of 50 markets x 3 intervals (1m, 1h, 1d; with
   funding and the asset-context snapshot): wall time of the whole process, and the
   requests it sent (target <= 2 s, at most one request per market x interval; ideally
   none beyond the market list: the snapshot is the one request a run always makes).
2. An incremental hour (the clock moved on by one hour): requests and weight the
   emulator counted, beside the lower bound the missing buckets require (one request
   per series with a missing bucket and 5000 buckets, plus the snapshot's; weight 20
   a request, the rows' own weight on top). Target <= 1.05x.
3. Whole-process CPU (user + system, the process and its children) of a 10-bucket
   Dwellir job over TLS: ``hyperlake candles`` (a spawned worker) beside ``hyperlake
   update`` (in-process). Target <= 0.3 s.
4. ``hyperlake status`` on a synthetic lake of 200 markets x 3 intervals x 1 year
   (219,000 partition files, coverage markers, row indexes, some ledger entries):
   wall time of the whole process and of ``lake_status`` itself. Target <= 1 s.

The emulator's clock is frozen (runs 1-3) so that every run sees the same "now". The
commands run with bytecode caches, as an installed package does (an environment with
PYTHONDONTWRITEBYTECODE=1 would recompile every module at each start: ~60 ms of CPU).
Run it on a quiet machine: ``python scripts/bench_update.py``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.emulator.universe import load_universe
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import Span
from hyperlake.query.status import lake_status
from hyperlake.schemas.exchange import INFO_BASE_WEIGHT, SNAPSHOT_MAX_CANDLES
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS
from hyperlake.schemas.times import format_instant, parse_instant

NOW = parse_instant("2026-03-31T00:00:00Z", "NOW")
KEY = "dw-bench-key"
INTERVALS = ("1m", "1h", "1d")
SERVER_CPU = 0
CONFIG = '''\
lake = "{lake}"
[markets]
list = {markets}
[candles]
start = "2026-03-29T00:00:00Z"
[candles.hyperliquid]
intervals = ["1m", "1h", "1d"]
[funding]
start = "2026-03-29T00:00:00Z"
'''
DWELLIR_CONFIG = '''\
lake = "{lake}"
[markets]
list = ["BTC"]
[candles.dwellir]
intervals = ["1m"]
start = "{start}"
[funding]
enabled = false
[asset_ctxs]
enabled = false
'''


def hyperlake() -> str:
    return str(Path(sys.executable).with_name("hyperlake"))


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its children, stdout) of one command."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 4):
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def last_json(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads([x for x in text.splitlines() if x.startswith("{")][-1])
    return value


def info(emu: Emulator) -> tuple[int, float]:
    stats = emu.stats()
    return stats.get("info_requests", 0), float(stats.get("info_weight", 0))


def update_env(emu: Emulator, tmp: Path, now_ms: int) -> dict[str, str]:
    return {**os.environ, "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
            "HYPERLAKE_NOW": format_instant(now_ms), "HYPERLAKE_PACING_DIR": str(tmp / "pacing"),
            "HYPERLAKE_HYPERLIQUID_WEIGHT": "10000000"}


def lower_bound(plan: dict[str, Any]) -> tuple[int, float]:
    """Requests and weight the missing buckets of a dry-run plan require at least: one
    request per series and 5000 buckets, each weighing the base 20 (the rows' weight
    on top depends on how many buckets hold a row), and the asset-context snapshot."""
    requests = 1 + sum(-(-item["buckets"] // SNAPSHOT_MAX_CANDLES) for item in plan["plan"])
    return requests, float(requests * INFO_BASE_WEIGHT)


def update_runs(tmp: Path, emu: Emulator, markets: list[str]) -> dict[str, Any]:
    lake = tmp / "lake"
    config = tmp / "hyperlake.toml"
    config.write_text(CONFIG.format(lake=lake, markets=orjson.dumps(markets).decode()))
    argv = [hyperlake(), "update", "--config", str(config), "--json"]
    env = update_env(emu, tmp, NOW)
    timed(argv, env)  # the backfill of two days
    noops = []
    for _ in range(3):
        before = info(emu)
        wall, _, out = timed(argv, env)
        noops.append((wall, info(emu)[0] - before[0], last_json(out)))
    emu.set_clock(NOW + HOUR_MS, 0.0)
    later = update_env(emu, tmp, NOW + HOUR_MS)
    plan = last_json(timed([*argv, "--dry-run"], later)[2])
    before = info(emu)
    wall, _, out = timed(argv, later)
    after = info(emu)
    emu.set_clock(NOW, 0.0)
    bound = lower_bound(plan)
    return {"noop_wall": statistics.median(w for w, _, _ in noops),
            "noop_requests": max(r for _, r, _ in noops),
            "noop_candle_requests": max(s["requests"] - 1 for _, _, s in noops),
            "series": len(markets) * len(INTERVALS),
            "hour_requests": after[0] - before[0], "hour_weight": after[1] - before[1],
            "hour_bound": bound, "hour_wall": wall, "hour_summary": last_json(out)}


def dwellir_cpu(tmp: Path, emu: Emulator, repeat: int) -> tuple[float, float]:
    """Median whole-process CPU of a 10-bucket 1m Dwellir job over TLS: candles, update."""
    assert emu.urls.tls_dwellir and emu.urls.ca_pem and emu.urls.tls_hyperliquid
    start = NOW - 20 * 60_000
    env = {**update_env(emu, tmp, NOW), "HYPERLAKE_DWELLIR_URL": emu.urls.tls_dwellir,
           "HYPERLAKE_DWELLIR_KEY": KEY, "HYPERLAKE_CA_BUNDLE": emu.urls.ca_pem}
    seed = tmp / "seed"
    timed([hyperlake(), "candles", "--source", "hyperliquid", "--market", "BTC", "--interval",
           "1d", "--start", "2026-03-29T00:00:00Z", "--end", "2026-03-30T00:00:00Z", "--lake",
           str(seed)], env)  # the market list, once (a cache every run reuses)
    universe = next((seed / "_state" / "universe").iterdir())
    candles, update = [], []
    for i in range(repeat):
        lakes = [tmp / f"dw-candles-{i}", tmp / f"dw-update-{i}"]
        for lake in lakes:
            target = lake / "_state" / "universe" / universe.name
            target.parent.mkdir(parents=True)
            target.write_bytes(universe.read_bytes())
        candles.append(timed([hyperlake(), "candles", "--source", "dwellir", "--market", "BTC",
                              "--interval", "1m", "--start", format_instant(start), "--end",
                              format_instant(start + 10 * 60_000), "--lake", str(lakes[0]),
                              "--rate", "1000"], env)[1])
        config = tmp / f"dwellir-{i}.toml"
        config.write_text(DWELLIR_CONFIG.format(lake=lakes[1], start=format_instant(start)))
        env_update = {**env, "HYPERLAKE_NOW": format_instant(start + 10 * 60_000)}
        config.write_text(config.read_text() + '[sources.dwellir]\nrate = 1000\n')
        update.append(timed([hyperlake(), "update", "--config", str(config), "--no-compact",
                             "--no-verify"], env_update)[1])
    return statistics.median(candles), statistics.median(update)


def synthetic_lake(root: Path, markets: int = 200, days: int = 365) -> None:
    """Names and state files only: status reads nothing else."""
    paths = LakePaths(root)
    first = NOW - days * DAY_MS
    for m in range(markets):
        market = f"M{m:03d}"
        for interval, step in (("1m", 60_000), ("1h", HOUR_MS), ("1d", DAY_MS)):
            series = Series(paths, SeriesKey("candles", "hyperliquid", market, interval))
            series.record_coverage([Span(first, NOW - step)])
            if m % 20 == 0:
                series.ledger.record(Failure(Span(NOW - 3 * step, NOW - 2 * step), "http 500"))
            index = {}
            for d in range(days):
                date = format_instant(first + d * DAY_MS)[:10]
                folder = paths.partition("candles", market, interval, date)
                assert isinstance(folder, Path)  # a local lake: plain files, fast
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "part-0.parquet").touch()
                index[date] = [DAY_MS // step, first + d * DAY_MS, first + (d + 1) * DAY_MS - step]
            paths.store.put(paths.row_index("candles", market, interval), orjson.dumps(index))


def status_times(tmp: Path, repeat: int) -> tuple[float, float]:
    root = tmp / "synthetic"
    print("building the synthetic lake (219,000 partition files) ...", file=sys.stderr)
    synthetic_lake(root)
    env = {**os.environ, "HYPERLAKE_NOW": format_instant(NOW)}
    timed([hyperlake(), "status", "--lake", str(root), "--json"], env)  # a warm disk cache
    process = statistics.median(
        timed([hyperlake(), "status", "--lake", str(root), "--json"], env)[0]
        for _ in range(repeat))
    inner = []
    for _ in range(repeat):
        started = time.perf_counter()
        lake_status(root, NOW)
        inner.append(time.perf_counter() - started)
    return process, statistics.median(inner)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    markets = [i.name for i in load_universe().perps(include_delisted=False)
               if i.kind == "perp"][:50]
    config = frozen_config(NOW, info_weight_per_minute=10**9, dwellir_keys={KEY: "scale"},
                           dwellir_rate_overrides={KEY: 10**9})
    with tempfile.TemporaryDirectory(prefix="bench-update-") as name:
        tmp = Path(name)
        with Emulator(config, cpu=SERVER_CPU) as emu:  # its clock moves: no TLS port
            print("update: backfill, no-op runs, an incremental hour ...", file=sys.stderr)
            runs = update_runs(tmp, emu, markets)
        with Emulator(config, tls=True, cpu=SERVER_CPU) as emu:
            print("dwellir: 10 buckets over TLS ...", file=sys.stderr)
            candles_cpu, update_cpu = dwellir_cpu(tmp, emu, args.repeat)
        status_wall, status_inner = status_times(tmp, args.repeat)
    report(runs, candles_cpu, update_cpu, status_wall, status_inner)
    return 0


def report(runs: dict[str, Any], candles_cpu: float, update_cpu: float, status_wall: float,
           status_inner: float) -> None:
    series = runs["series"]
    bound_requests, bound_weight = runs["hour_bound"]
    rows = [
        ("no-op update, 50 markets x 3 intervals: wall (whole process)",
         f"{runs['noop_wall']:.2f} s", "<= 2 s"),
        ("no-op update: requests (candles and funding / asset contexts)",
         f"{runs['noop_requests']} ({runs['noop_candle_requests']} / 1) for {series} series",
         f"<= {series}, ideally 0 beyond the market list"),
        ("incremental hour: requests vs lower bound",
         f"{runs['hour_requests']} vs {bound_requests} = "
         f"{runs['hour_requests'] / bound_requests:.3f}x", "<= 1.05x"),
        ("incremental hour: weight vs lower bound (20 a request)",
         f"{runs['hour_weight']:.0f} vs {bound_weight:.0f} = "
         f"{runs['hour_weight'] / bound_weight:.3f}x", "<= 1.05x"),
        ("incremental hour: wall (whole process)", f"{runs['hour_wall']:.2f} s", ""),
        ("Dwellir 10 buckets over TLS, CPU: hyperlake candles (a worker)",
         f"{candles_cpu:.2f} s", ""),
        ("Dwellir 10 buckets over TLS, CPU: hyperlake update (in-process)",
         f"{update_cpu:.2f} s ({candles_cpu / update_cpu:.1f}x less)", "<= 0.3 s"),
        ("status, 200 markets x 3 intervals x 1 year: wall (whole process)",
         f"{status_wall:.2f} s", "<= 1 s"),
        ("status: lake_status itself", f"{status_inner:.2f} s", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'hyperlake':<44}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<44}  {target}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average {load}; the hour's summary: requests "
          f"{runs['hour_summary']['requests']}, weight {runs['hour_summary']['weight']:.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
