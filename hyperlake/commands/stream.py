"""``hyperlake stream``: live trades → exact OHLCV bars in the lake, until stopped."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.stream.session import StreamJob

EPILOG = """\
what "exact" means:
  Every trade is bucketed by its exchange time and counted once (duplicates by tid,
  the replay after each (re)subscribe included). A bar closes at its bucket's end plus
  --grace, by the clock, not when a next trade arrives; a trade for a closed bar is a
  late trade: the bar is written again, corrected. A bucket without trades has no bar.
  A bucket the stream did not see in full (across a disconnect, at start, after
  downtime) is never guessed: once settled it is fetched from REST (candleSnapshot;
  1s needs HYPERLAKE_HYDROMANCER_KEY) and written with that source; what no source
  serves goes to the gap ledger (hyperlake verify reports it).

where it goes:
  Bars are checkpoint parts of the series candles/stream/<market>/<interval>, written
  within a tick of their deadline: hyperlake compact, verify, sql and the loaders take
  them like any source's; the candles_live view shows them before compaction. Every
  --compact-every the stream compacts the lake itself when no other writer holds it.
  LAKE/_state/stream/status.json says how it is doing (updated every 5 s).

environment:
  HYPERLAKE_WS_URL (default wss://api.hyperliquid.xyz/ws); repairs use
  HYPERLAKE_HYPERLIQUID_URL and HYPERLAKE_HYDROMANCER_URL (+ _KEY); HYPERLAKE_SETTLE.

exit status: 0 stopped by SIGINT or SIGTERM (everything closed is written; the next
start repairs what was still open); 2 bad input; 3 another streamer holds the lake;
1 other errors. Run it under a supervisor that restarts it
(scripts/hyperlake-stream.service).
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "stream",
        help="stream live trades into exact OHLCV bars in the lake, until stopped",
        description="Subscribe to the exchange's live trades and write exact OHLCV bars of "
        "the given intervals into the lake as they close, repairing from REST whatever the "
        "stream could not see in full. Runs in the foreground until SIGINT or SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--coins", help="comma-separated, any case: BTC,eth,kPEPE,xyz:XYZ100")
    which.add_argument("--all", action="store_true",
                       help="every listed perpetual (HIP-3 dexes included)")
    p.add_argument("--include-spot", action="store_true", help="with --all: spot pairs too")
    p.add_argument("--intervals", default="1m",
                   help="comma-separated bar intervals, e.g. 1s,1m,5m,1h (default 1m)")
    p.add_argument("--grace", default="2s",
                   help="how long after a bucket ends its bar waits for late trades before "
                   "it is written (default 2s; 0s to 5m)")
    p.add_argument("--csv-dir", metavar="DIR",
                   help="also append closed bars to DIR/<market>_<interval>.csv "
                   "(Datetime,Open,High,Low,Close,Volume; whole rows only)")
    p.add_argument("--compact-every", default="5m", metavar="DURATION",
                   help="compact the lake this often while streaming (default 5m; 0 never)")
    p.add_argument("--keep-trades", action="store_true",
                   help="also keep the raw trades (px, sz, side, time, tid, hash; one row per "
                   "tid) as the dataset trades/market=…/date=…, to rebuild or audit bars")
    p.add_argument("--json-log", action="store_true",
                   help="one JSON object per event on stderr (connected, lost, repaired, …)")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.set_defaults(run=run)


def build_job(args: argparse.Namespace, settings: SourceSettings) -> StreamJob:
    from pathlib import Path

    import httpx

    from hyperlake.errors import UserError
    from hyperlake.lake.paths import lake_root
    from hyperlake.pipelines.stream.session import StreamJob
    from hyperlake.pipelines.universe import cache_folder, load_universe
    from hyperlake.schemas.intervals import is_interval
    from hyperlake.schemas.times import parse_duration

    intervals = tuple(dict.fromkeys(i.strip() for i in args.intervals.split(",") if i.strip()))
    unknown = [i for i in intervals if not is_interval(i)]
    if unknown or not intervals:
        raise UserError(f"--intervals {args.intervals!r}: {', '.join(unknown) or 'none'} is "
                        "no candle interval (1s 1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d 3d 1w 1M)")
    grace = parse_duration(args.grace, "--grace", most_ms=300_000)
    compact_every = 0 if args.compact_every.strip() == "0" else parse_duration(
        args.compact_every, "--compact-every")
    if args.include_spot and not args.all:
        raise UserError("--include-spot goes with --all")
    coins = [] if args.all else [c for c in (t.strip() for t in args.coins.split(",")) if c]
    if not args.all and not coins:
        raise UserError("--coins: give at least one coin, e.g. --coins BTC,ETH")
    csv_dir = Path(args.csv_dir).expanduser() if args.csv_dir else None
    if csv_dir is not None and not csv_dir.is_dir():
        raise UserError(f"--csv-dir: {csv_dir} is not a folder")
    root = lake_root(args.lake)
    with httpx.Client(timeout=30, verify=settings.verify()) as client:
        universe = load_universe(settings.hyperliquid_url, cache_folder(), client,
                                 budget=settings.hyperliquid_budget())
    if args.all:
        markets = universe.perps() + ([m for m in universe.markets
                                       if m.kind == "spot" and not m.delisted]
                                      if args.include_spot else [])
    else:
        markets = universe.resolve_many(coins)
    return StreamJob(coins=tuple(m.name for m in markets), intervals=intervals, lake=root,
                     grace_ms=grace, csv_dir=csv_dir, compact_every_s=compact_every / 1000,
                     json_log=args.json_log, keep_trades=args.keep_trades)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import sys

    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.pipelines.stream.session import StreamSession, stream_lock

    settings = SourceSettings.from_env()
    job = build_job(args, settings)
    with stream_lock(job.lake):
        session = StreamSession(job, settings)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await session.run(stop)

        print(f"hyperlake stream: {len(job.coins)} coins x {', '.join(job.intervals)} into "
              f"{job.lake} (grace {job.grace_ms / 1000:g} s); SIGINT or SIGTERM stops it",
              file=sys.stderr, flush=True)
        asyncio.run(main())
    print(f"hyperlake stream: stopped; {session.counts['bars']} bars written, "
          f"{session.counts['repaired_bars']} repaired, {session.counts['reconnects']} "
          "reconnects", file=sys.stderr)
    return 0
