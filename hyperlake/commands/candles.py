"""``hyperlake candles``: extract OHLCV candles into the lake's checkpoints."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from hyperlake.pipelines.candles.registry import DWELLIR, REGISTRY

if TYPE_CHECKING:
    from hyperlake.pipelines.candles.job import CandleJob, JobSummary
    from hyperlake.pipelines.settings import SourceSettings

EXIT_GAPS = 4
EPILOG = """\
environment:
  HYPERLAKE_HYPERLIQUID_URL, HYPERLAKE_HYDROMANCER_URL (+ _KEY), HYPERLAKE_DWELLIR_URL (+ _KEY),
  HYPERLAKE_CA_BUNDLE, HYPERLAKE_LAKE. Keys are read from the environment only.

exit status: 0 done; 2 bad input; 3 another run holds the lake; 4 done, but some
buckets failed and sit in the gap ledger (the next run retries them); 1 other errors.

Re-running the same command resumes: only buckets the checkpoints do not cover are
fetched, and a finished job makes no request at all.
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "candles",
        help="extract candles from hyperliquid, hydromancer or dwellir into checkpoints",
        description="Extract OHLCV candles for one market and interval over [--start, --end) "
        "into crash-safe Parquet checkpoints under LAKE/_checkpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", required=True, choices=tuple(REGISTRY))
    p.add_argument("--market", required=True, help="e.g. BTC, kPEPE, xyz:XYZ100, @107, HYPE/USDC "
                   "(any case)")
    p.add_argument("--interval", required=True, help="e.g. 1m (dwellir: 1s 1m 5m; "
                   "hydromancer adds 1s to hyperliquid's 14)")
    p.add_argument("--start", required=True, help="ISO-8601 UTC, inclusive, aligned to the "
                   "interval, e.g. 2026-03-01T00:00:00Z (earlier than the exchange's first "
                   "data, 2023-03-01, is clamped there with a note)")
    p.add_argument("--end", required=True, help="ISO-8601 UTC, exclusive, aligned")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for dwellir (default: 1 per 8000 req/s of --rate)")
    p.add_argument("--rate", type=float, help="dwellir requests per second, all workers")
    plans = DWELLIR.plans or {}
    p.add_argument("--plan", help="dwellir plan ceiling: " + ", ".join(
        f"{name} {rate}" for name, rate in plans.items()) + f" req/s (default "
        f"{DWELLIR.default_plan}); one of {', '.join(plans)}")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.set_defaults(run=run)


def max_workers() -> int:
    """More worker processes than this only contend for the cores."""
    return 4 * (os.cpu_count() or 1)


def build_job(args: argparse.Namespace, settings: SourceSettings) -> CandleJob:
    """The job the arguments ask for: checked, market names resolved (from the
    per-user cache or the exchange); nothing is written into the lake here."""
    import httpx

    from hyperlake.lake.paths import lake_root
    from hyperlake.pipelines.candles.job import CandleJob
    from hyperlake.pipelines.candles.registry import source
    from hyperlake.pipelines.universe import cache_folder, load_universe
    from hyperlake.schemas.exchange import HISTORY_FROM_MS
    from hyperlake.schemas.times import clamp_to_history, parse_instant

    if not args.market.strip():
        from hyperlake.errors import UserError

        raise UserError("--market is empty; give a name such as BTC or HYPE/USDC")
    chosen = source(args.source)
    start = clamp_to_history(parse_instant(args.start, "--start"), "--start",
                             HISTORY_FROM_MS, _notice)
    end = parse_instant(args.end, "--end")
    chosen.check(args.interval, start, end, settings.now_ms())
    rate = chosen.rate(args.rate, args.plan)
    if args.workers is not None and not 1 <= args.workers <= max_workers():
        from hyperlake.errors import UserError

        raise UserError(f"--workers {args.workers}: give 1 to {max_workers()} (4 per core "
                        "of this machine)")
    workers = args.workers or max(1, int(-(-(rate or 1) // 8000)))
    root = lake_root(args.lake)
    if chosen.key_env is not None:
        settings.require(chosen.key_env, settings.key(chosen.key_env))
    with httpx.Client(timeout=30, verify=settings.verify()) as client:
        universe = load_universe(settings.hyperliquid_url, cache_folder(), client,
                                 budget=settings.hyperliquid_budget())
    market = universe.resolve(args.market)
    return CandleJob(source=chosen.name, market=market.name, interval=args.interval,
                     start_ms=start, end_ms=end, lake=root, workers=workers, rate=rate)


def run(args: argparse.Namespace) -> int:
    from hyperlake.commands.output import ProgressBar
    from hyperlake.net.redact import Redactor
    from hyperlake.pipelines.candles.job import run_job
    from hyperlake.pipelines.settings import SourceSettings

    settings = SourceSettings.from_env()
    redactor = Redactor(settings.secrets())
    job = build_job(args, settings)
    progress = ProgressBar(f"{job.source} {job.market} {job.interval}")
    try:
        summary = run_job(job, settings, progress)
    except Exception as exc:  # noqa: BLE001 - re-raised, scrubbed of secrets
        raise redactor.scrub_exception(exc) from None
    finally:
        progress.close()
    _report(summary, args.json)
    return EXIT_GAPS if summary.gaps else 0


def _report(summary: JobSummary, as_json: bool) -> None:
    from hyperlake.commands.output import head_notes, summary_line

    for line in summary.quarantined:
        print(f"hyperlake candles: {line}", file=sys.stderr)
    if as_json:
        print(summary_line(**summary.as_dict()))
        return
    c = summary.counters
    if summary.planned == 0:
        print(f"{summary.source} {summary.market} {summary.interval} {summary.start} → "
              f"{summary.end}: already complete ({summary.buckets} buckets), nothing fetched")
        return
    print(f"{summary.source} {summary.market} {summary.interval} {summary.start} → {summary.end}:"
          f" {summary.planned} of {summary.buckets} buckets fetched in {summary.seconds:.1f}s "
          f"({summary.requests_per_s:,.0f} req/s): {c.fetched} candles, {c.empty} empty, "
          f"{c.retried} retried, {c.failed} failed")
    for note in head_notes(summary.provisional, "buckets", c.clock_skew_ms, summary.source):
        print(note, file=sys.stderr)
    if summary.gaps:
        print(f"  {summary.gaps} buckets failed and are in the gap ledger; run the same "
              "command again to retry them", file=sys.stderr)


def _notice(text: str) -> None:
    print(f"hyperlake candles: note: {text}", file=sys.stderr)
