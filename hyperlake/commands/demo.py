"""``hyperlake demo``: the whole pipeline, offline, against the bundled emulator.

Starts the emulator on loopback (clock frozen, so the output is reproducible),
extracts candles from all three sources and funding into a lake, compacts it, and
prints an as-of join of candles with funding — then shows the three sources agree.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlake.emulator.config import EmulatorConfig
    from hyperlake.lake.store import Location
    from hyperlake.pipelines.settings import SourceSettings

DEFAULT_CLOCK = "2026-03-31T00:00:00Z"
HYDROMANCER_KEY = "hm-demo"
DWELLIR_KEY = "dw-demo"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the whole pipeline offline against the bundled emulator",
        description="Start the bundled emulator on 127.0.0.1, extract candles (hyperliquid, "
        "hydromancer, dwellir) and funding into a lake, compact it, and query it with an "
        "as-of join. Needs no network.",
    )
    p.add_argument("--lake", help="lake root to fill (default: a temporary folder, removed "
                   "afterwards)")
    p.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    p.add_argument("--clock", default=DEFAULT_CLOCK,
                   help=f"the emulator's frozen 'now' (default {DEFAULT_CLOCK})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hyperlake.emulator.server import frozen_config
    from hyperlake.lake.paths import lake_root
    from hyperlake.schemas.times import parse_instant

    now = parse_instant(args.clock, "--clock")
    config = frozen_config(now, seed=args.seed, hydromancer_keys=(HYDROMANCER_KEY,),
                           dwellir_keys={DWELLIR_KEY: "scale"})
    if args.lake:
        return _demo(config, lake_root(args.lake), now)
    with tempfile.TemporaryDirectory(prefix="hyperlake-demo-") as tmp:
        return _demo(config, Path(tmp), now)


def _demo(config: EmulatorConfig, lake: Location, now: int) -> int:
    from hyperlake.emulator.server import Emulator
    from hyperlake.pipelines.compact import CompactJob, run_compact
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.schemas.times import format_instant

    with Emulator(config) as emu:
        print(f"emulator: {emu.urls.hyperliquid} (seed {config.seed}, clock frozen at "
              f"{format_instant(now)})\nlake: {lake}\n")
        settings = SourceSettings(
            hyperliquid_url=emu.urls.hyperliquid, hydromancer_url=emu.urls.hydromancer,
            hydromancer_key=HYDROMANCER_KEY, dwellir_url=emu.urls.dwellir,
            dwellir_key=DWELLIR_KEY, pinned_now_ms=now)
        _extract(settings, lake, now)
    stats, seconds = run_compact(CompactJob(lake=lake))
    print(f"\ncompact: {stats.parts_consumed} checkpoint parts → {stats.partitions_written} "
          f"partitions, {stats.rows_out} rows ({seconds:.1f}s)")
    _query(lake)
    print("\ndemo finished: extracted, compacted and queried offline.")
    return 0


def _extract(settings: SourceSettings, lake: Location, now: int) -> None:
    from hyperlake.pipelines.candles.job import CandleJob, run_job
    from hyperlake.pipelines.funding import FundingJob, run_funding
    from hyperlake.schemas.intervals import DAY_MS, HOUR_MS

    day = now - DAY_MS
    jobs = [
        CandleJob(source="hyperliquid", market="BTC", interval="1h", start_ms=now - 3 * DAY_MS,
                  end_ms=now, lake=lake),
        CandleJob(source="hyperliquid", market="ETH", interval="1h", start_ms=now - 3 * DAY_MS,
                  end_ms=now, lake=lake),
        CandleJob(source="hydromancer", market="BTC", interval="1s", start_ms=now - HOUR_MS,
                  end_ms=now, lake=lake),
        CandleJob(source="dwellir", market="BTC", interval="1m", start_ms=day, end_ms=now,
                  lake=lake, workers=1, rate=2000.0),
    ]
    for job in jobs:
        summary = run_job(job, settings)
        c = summary.counters
        print(f"candles {job.source:11} {job.market:4} {job.interval:3} "
              f"{summary.buckets:6} buckets: {c.fetched:6} candles, {c.empty:5} empty, "
              f"{c.requests:5} requests")
    funding = run_funding(FundingJob(markets=("BTC", "ETH"), start_ms=now - 3 * DAY_MS,
                                     end_ms=now, lake=lake), settings)
    rows = sum(o.rows for o in funding.outcomes)
    print(f"funding {len(funding.outcomes)} coins: {rows} hourly rows, "
          f"{funding.counters.requests} requests")


def _query(lake: Location) -> None:
    from hyperlake.query.catalog import connect

    con = connect(lake)
    sql = ("SELECT t, market, c AS close, funding_hour, funding_rate, funding_apr "
           "FROM candles_with_funding WHERE interval = '1h' ORDER BY t DESC, market LIMIT 6")
    print(f"\nhyperlake sql \"{sql}\"")
    rows = con.execute(sql).fetchall()
    print(f"  {'t':20} {'market':6} {'close':>9} {'funding_hour':20} {'rate':>13} {'APR':>9}")
    for t, market, close, hour, rate, apr in rows:
        print(f"  {t:%Y-%m-%dT%H:%MZ}    {market:6} {close:>9.1f} {hour:%Y-%m-%dT%H:%MZ}    "
              f"{rate:>13.10f} {apr:>8.2%}")
    agree = con.execute(
        "SELECT count(*) FROM (SELECT date_trunc('minute', s.t) AS m, sum(s.n) AS n "
        "FROM candles s WHERE s.market = 'BTC' AND s.interval = '1s' GROUP BY 1) one "
        "JOIN candles m ON m.market = 'BTC' AND m.interval = '1m' AND m.t = one.m "
        "WHERE m.n <> one.n").fetchone()
    checked = con.execute("SELECT count(DISTINCT date_trunc('minute', t)) FROM candles "
                      "WHERE market = 'BTC' AND interval = '1s'").fetchone()
    mismatches = agree[0] if agree else -1
    minutes = checked[0] if checked else 0
    print(f"\nreconciled: Hydromancer 1s bars summed per minute vs Dwellir 1m bars over "
          f"{minutes} minutes: {'identical' if mismatches == 0 else f'{mismatches} differ'}")
    if mismatches != 0:
        raise SystemExit(1)
