"""``hyperlake funding``: extract hourly funding history into the lake's checkpoints."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from hyperlake.errors import UserError
from hyperlake.schemas.vocabulary import ON_500_MODES

if TYPE_CHECKING:
    from hyperlake.pipelines.funding import FundingJob, FundingSummary
    from hyperlake.pipelines.settings import SourceSettings

EXIT_GAPS = 4
MAX_THREADS = 64  # coins in flight: more only wait on the shared weight budget
MAX_HOURS_PER_WINDOW = 24 * 366
EPILOG = """\
--on-500 (a window that keeps answering HTTP 500):
  empty      count the window as empty and record it in the gap ledger (retried next run)
  split      halve the window recursively down to one hour, then behave like empty
  skip-coin  record the window, abandon the coin and report it

exit status: 0 done; 2 bad input; 3 another run holds the lake; 4 done with windows
in the gap ledger or coins skipped (the next run retries them); 1 other errors.
Re-running the same command resumes from what the checkpoints hold.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "funding",
        help="extract hourly funding history from hyperliquid into checkpoints",
        description="Extract funding (rate, premium) for the given coins over [--start, --end) "
        "into crash-safe Parquet checkpoints under LAKE/_checkpoints/funding.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--coins", help="comma-separated, any case: BTC,eth,kPEPE,xyz:XYZ100")
    which.add_argument("--all", action="store_true", help="every perpetual of the universe")
    p.add_argument("--include-delisted", action="store_true",
                   help="with --all: delisted perpetuals too")
    p.add_argument("--start", required=True, help="ISO-8601 UTC on the hour, inclusive "
                   "(earlier than the exchange's first data, 2023-03-01, is clamped there "
                   "with a note)")
    p.add_argument("--end", required=True, help="ISO-8601 UTC on the hour, exclusive")
    p.add_argument("--hours-per-window", type=int, default=336,
                   help="hours per request window (default 336 = 14 days)")
    p.add_argument("--on-500", default="empty", choices=ON_500_MODES,
                   help="what a window that keeps failing with 500 becomes (default empty)")
    p.add_argument("--threads", type=int, default=8, help="coins in flight (default 8)")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.set_defaults(run=run)


def build_job(args: argparse.Namespace, settings: SourceSettings) -> FundingJob:
    """The job the arguments ask for: checked, market names resolved (from the
    per-user cache or the exchange); nothing is written into the lake here."""
    import httpx

    from hyperlake.lake.paths import lake_root
    from hyperlake.pipelines.funding import FundingJob, validate_funding
    from hyperlake.pipelines.universe import cache_folder, load_universe
    from hyperlake.schemas.exchange import HISTORY_FROM_MS
    from hyperlake.schemas.times import clamp_to_history, parse_instant

    start = clamp_to_history(parse_instant(args.start, "--start"), "--start",
                             HISTORY_FROM_MS, _notice)
    end = parse_instant(args.end, "--end")
    validate_funding(start, end, settings.now_ms(), args.hours_per_window, args.on_500)
    if args.include_delisted and not args.all:
        raise UserError("--include-delisted goes with --all")
    if not 1 <= args.threads <= MAX_THREADS:
        raise UserError(f"--threads must be 1 to {MAX_THREADS}")
    if args.hours_per_window > MAX_HOURS_PER_WINDOW:
        raise UserError(f"--hours-per-window: at most {MAX_HOURS_PER_WINDOW} (a year)")
    coins = [] if args.all else [c for c in (t.strip() for t in args.coins.split(",")) if c]
    if not args.all and not coins:
        raise UserError("--coins: give at least one coin, e.g. --coins BTC,ETH")
    root = lake_root(args.lake)
    with httpx.Client(timeout=30, verify=settings.verify()) as client:
        universe = load_universe(settings.hyperliquid_url, cache_folder(), client,
                                 budget=settings.hyperliquid_budget())
    if args.all:
        markets = universe.perps(include_delisted=args.include_delisted)
    else:
        markets = universe.resolve_many(coins)
        spot = [m.name for m in markets if not m.has_funding]
        if spot:
            raise UserError(f"--coins: {', '.join(spot)} is a spot market and has no funding")
    return FundingJob(markets=tuple(m.name for m in markets), start_ms=start, end_ms=end,
                      lake=root, hours_per_window=args.hours_per_window, on_500=args.on_500,
                      threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from hyperlake.commands.output import ProgressBar
    from hyperlake.pipelines.funding import run_funding
    from hyperlake.pipelines.settings import SourceSettings

    settings = SourceSettings.from_env()
    job = build_job(args, settings)
    progress = ProgressBar(f"funding {len(job.markets)} coins")
    try:
        summary = run_funding(job, settings, on_progress=progress)
    finally:
        progress.close()
    _report(summary, args.json)
    skipped = any(o.skipped for o in summary.outcomes)
    return EXIT_GAPS if summary.gaps or skipped else 0


def _report(summary: FundingSummary, as_json: bool) -> None:
    from hyperlake.commands.output import head_notes, summary_line

    data = summary.as_dict()
    for line in summary.quarantined:
        print(f"hyperlake funding: {line}", file=sys.stderr)
    if as_json:
        print(summary_line(**data))
        return
    print(f"funding {data['coins']} coins {summary.start} → {summary.end}: {data['rows']} rows "
          f"in {data['windows']} windows, {data['requests']} requests, weight "
          f"{summary.weight_spent:.0f}, {summary.seconds:.1f}s")
    for note in head_notes(summary.provisional, "hours", summary.counters.clock_skew_ms,
                           "hyperliquid"):
        print(note, file=sys.stderr)
    skipped = data["skipped_coins"]
    if isinstance(skipped, dict) and skipped:
        for market, reason in skipped.items():
            print(f"  skipped {market}: {reason}", file=sys.stderr)
    if summary.gaps:
        print(f"  {summary.gaps} windows are in the gap ledger; run the same command again "
              "to retry them", file=sys.stderr)


def _notice(text: str) -> None:
    print(f"hyperlake funding: note: {text}", file=sys.stderr)
