"""How close ``hyperlake funding`` runs to the limit its weight budget sets.

    python scripts/bench_funding.py [--coins 40] [--days 60] [--weight 6000]
                                    [--hours-per-window 120] [--warm-universe] [--runs 1]

One emulator (clock frozen at 2026-03-31T00:00:00Z) allows --weight per minute per
client IP, like Hyperliquid's 1200 but raised so the run is short. Then

    hyperlake funding --coins <the first --coins perpetuals of the universe>
        --start <end - --days days> --end 2026-03-31T00:00:00Z --hours-per-window H --json

runs as a real process with HYPERLAKE_HYPERLIQUID_WEIGHT=--weight, a fresh lake and a
fresh HYPERLAKE_PACING_DIR. A full bucket of W weight is there at the start (the
server's and the client's alike), then W/60 a second, so a job that spends `weight`
cannot finish sooner than

    bound = max(0, weight - W) / (W / 60) seconds.

Prints, per run: coins, days, requests, weight (the run's own count, the --json
``weight``), the bound, the wall time of the process (interpreter start included) and
of the job alone (``seconds`` of the summary), efficiency = bound / wall (target
≥ 0.95) and the 429s the emulator answered (target 0).

--hours-per-window defaults to 120 (12 requests a coin over 60 days, ~12,500 weight):
with the command's default of 336 the defaults make a ~7 s bound, too short for
start-up not to dominate. --warm-universe saves the universe snapshot into the lake
first (and lets the server's bucket refill), so the run's only requests are
``fundingHistory``: the difference shows what the unpaced universe fetch costs.
Results only mean something on an otherwise idle machine: check ``uptime``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from hyperlake.emulator.market import Market
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.pipelines.universe import load_universe

NOW = "2026-03-31T00:00:00Z"
NOW_MS = 1_774_915_200_000
DAY_MS = 86_400_000
TARGET_EFFICIENCY = 0.95


@dataclass(frozen=True)
class Result:
    coins: int
    days: int
    hours_per_window: int
    requests: int
    weight: float  # as the run counted it (its --json summary)
    server_weight: int  # as the emulator charged it (the universe fetch included)
    wall_s: float  # the process, interpreter start included
    run_s: float  # the job alone, as the run measured it
    status_429: int
    rows: int
    per_minute: float

    @property
    def bound_s(self) -> float:
        return max(0.0, self.weight - self.per_minute) / (self.per_minute / 60.0)

    @property
    def efficiency(self) -> float | None:
        """bound / wall; None when the job never had to wait on the budget."""
        return self.bound_s / self.wall_s if self.bound_s > 0 else None

    @property
    def run_efficiency(self) -> float | None:
        return self.bound_s / self.run_s if self.bound_s > 0 else None


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def met(results: list[Result]) -> bool:
    return all(r.efficiency is not None and r.efficiency >= TARGET_EFFICIENCY
               and r.status_429 == 0 for r in results)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def coin_names(count: int) -> list[str]:
    """The first ``count`` listed perpetuals, read from the emulator's own universe (no
    request, so no weight spent before the timed run)."""
    perps = [i.name for i in Market(seed=0).universe.perps(include_delisted=False)]
    if count > len(perps):
        raise SystemExit(f"--coins {count}: the universe has {len(perps)} listed perpetuals")
    return perps[:count]


def run_once(emu: Emulator, args: argparse.Namespace, folder: Path) -> Result:
    lake, pacing, cache = folder / "lake", folder / "pacing", folder / "cache"
    pacing.mkdir(parents=True)
    per_minute = float(args.weight)
    if args.warm_universe:
        with httpx.Client(timeout=30, verify=False) as client:
            load_universe(emu.urls.hyperliquid, cache, client)
        spent = int(emu.stats().get("info_weight", 0))
        time.sleep(spent / (per_minute / 60.0) + 0.5)  # the server's bucket is full again
    emu.reset_stats()
    coins = coin_names(args.coins)
    start_ms = NOW_MS - args.days * DAY_MS
    env = {**os.environ, "HYPERLAKE_HYPERLIQUID_URL": emu.urls.hyperliquid,
           "HYPERLAKE_NOW": NOW, "HYPERLAKE_HYPERLIQUID_WEIGHT": str(args.weight),
           "HYPERLAKE_PACING_DIR": str(pacing), "HYPERLAKE_CACHE_DIR": str(cache)}
    env.pop("HYPERLAKE_LAKE", None)
    argv = [sys.executable, "-m", "hyperlake.cli", "funding", "--coins", ",".join(coins),
            "--start", iso(start_ms), "--end", NOW, "--hours-per-window",
            str(args.hours_per_window), "--lake", str(lake), "--json"]
    began = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"hyperlake funding exited {done.returncode}: {done.stderr.strip()}")
    summary: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    stats = emu.stats()
    want_rows = args.coins * args.days * 24
    if summary["rows"] != want_rows or summary["gaps"]:
        raise SystemExit(f"incomplete run: {summary['rows']} rows of {want_rows}, "
                         f"{summary['gaps']} gaps")
    return Result(args.coins, args.days, args.hours_per_window, int(summary["requests"]),
                  float(summary["weight"]), int(stats.get("info_weight", 0)), wall,
                  float(summary["seconds"]), int(stats.get("info_status_429", 0)),
                  int(summary["rows"]), per_minute)


def print_table(results: list[Result], load_before: float, warm: bool) -> None:
    head = (f"{'coins':>5} {'days':>4} {'h/win':>5} {'requests':>8} {'weight':>8} "
            f"{'srv wt':>8} {'bound s':>8} {'wall s':>7} {'run s':>7} {'eff':>6} "
            f"{'eff run':>7} {'429s':>4}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.coins:>5} {r.days:>4} {r.hours_per_window:>5} {r.requests:>8,} "
              f"{r.weight:>8,.0f} {r.server_weight:>8,} {r.bound_s:>8.2f} {r.wall_s:>7.2f} "
              f"{r.run_s:>7.2f} "
              f"{percent(r.efficiency):>6} {percent(r.run_efficiency):>7} {r.status_429:>4}")
    print(f"targets: efficiency (bound / wall) ≥ {TARGET_EFFICIENCY:.0%} and zero 429s → "
          f"{'met' if met(results) else 'NOT met'}")
    if any(r.bound_s == 0 for r in results):
        print("  a run never waited on the budget (weight ≤ one minute's burst): "
              "raise --coins or --days, or lower --weight")
    print("  weight: the run's own count (a 429 counts 20); srv wt: what the emulator "
          "charged (the universe fetch, 4 x 20, included; a 429 costs nothing)"
          + ("; universe snapshot pre-saved (--warm-universe)" if warm else ""))
    print(f"  wall includes the interpreter start; 'run s' is the job alone. Load average "
          f"before: {load_before:.2f}, now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coins", type=int, default=40, help="coins (default 40)")
    parser.add_argument("--days", type=int, default=60, help="days up to the end (default 60)")
    parser.add_argument("--weight", type=int, default=6000,
                        help="weight per minute, emulator and client (default 6000)")
    parser.add_argument("--hours-per-window", type=int, default=120,
                        help="the command's --hours-per-window (default 120)")
    parser.add_argument("--warm-universe", action="store_true",
                        help="save the universe snapshot before the timed run")
    parser.add_argument("--runs", type=int, default=1, help="repetitions (default 1)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    results = []
    config = frozen_config(NOW_MS, info_weight_per_minute=args.weight)
    for _ in range(args.runs):
        with Emulator(config) as emu, tempfile.TemporaryDirectory(prefix="bench-funding-") as tmp:
            print(f"funding: {args.coins} coins x {args.days} days, {args.weight}/min ...",
                  file=sys.stderr)
            results.append(run_once(emu, args, Path(tmp)))
    print_table(results, load_before, args.warm_universe)
    return 0 if met(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
