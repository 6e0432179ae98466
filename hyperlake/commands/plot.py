"""``hyperlake plot funding|heatmap|candles``: charts of the lake as PNG or SVG files.

This module declares the arguments and runs the charts; the series are
``hyperlake.query.plot_series``, the drawing ``hyperlake.query.plots`` and one chart end
to end ``hyperlake.query.plot_jobs``, all imported only when the command runs (matplotlib
and polars cost ~0.5 s to import; ``hyperlake --help`` must not pay it).

Several markets (``--market A,B`` or ``--all``) make a batch: one file per market, drawn
by a pool of worker processes (``concurrent.futures``; spawned, not forked, since polars'
thread pool does not survive a fork), with a progress bar on a terminal. A market
without data in the span is skipped with a line on standard error; the batch fails
(exit 2) only when every market was skipped.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hyperlake.errors import UserError
from hyperlake.schemas.vocabulary import PLOT_FORMATS, Dataset

if TYPE_CHECKING:
    from hyperlake.commands.output import ItemProgress
    from hyperlake.query.loaders import TimeRange
    from hyperlake.query.plot_jobs import CandleChart, FundingChart, Outcome, Target

MA_DEFAULT = "24h"

FUNDING_HELP = """\
top panel: the funding rate per hour (left axis, a fraction) and its APR (right axis,
percent = rate x 24 x 365 x 100; the two axes are locked, one line reads on both), the
moving average dashed, a zero line; bottom panel: the premium with its moving average.
Moving averages are trailing time windows over the hours present (a missing hour is
neither zero nor interpolated); lines break at missing hours.

examples:
  hyperlake plot funding --market BTC
  hyperlake plot funding --market BTC --start 2025-01-01T00:00:00Z --ma 7d --format svg
  hyperlake plot funding --all --output charts/       # one file per market, in parallel
"""

HEATMAP_HELP = """\
Rows are markets, ordered by their mean APR over the span (highest on top); columns are
UTC days; each cell is the mean APR of the day's hourly rates on a diverging scale
centred on zero (grey: no funding that day).

examples:
  hyperlake plot heatmap --start 2026-01-01T00:00:00Z
  hyperlake plot heatmap --market BTC,ETH,SOL,HYPE
"""

CANDLES_HELP = """\
Candlesticks (a close line over the high-low range beyond 300 bars; beyond 10,000 bars
neighbouring bars are merged, as the title says), a volume panel, and with --funding the
funding APR in force at each bar's open (no lookahead: the latest funding hour at or
before the bar, none inside a missing funding hour). Missing buckets stay gaps.

examples:
  hyperlake plot candles --market BTC --interval 1h --funding
  hyperlake plot candles --market BTC --interval 1m --start 2026-03-30T00:00:00Z
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "plot",
        help="draw funding and candle charts from the lake (PNG or SVG, offline)",
        description="Draw charts of the lake's funding and candles into PNG (150 dpi) or "
        "SVG files, headless and offline. Files are written atomically into --output.",
    )
    charts = p.add_subparsers(dest="chart", metavar="CHART", required=True)
    f = _chart(charts, "funding", "funding rate, APR and premium of one or more markets",
               FUNDING_HELP)
    _market_choice(f, "funding")
    _span(f)
    f.add_argument("--ma", default=MA_DEFAULT, metavar="WINDOW",
                   help=f"moving-average window: a number and m, h, d or w (default "
                   f"{MA_DEFAULT}), or none")
    _batch(f)
    _target(f)
    f.set_defaults(run=run_funding)

    h = _chart(charts, "heatmap", "funding APR per market x day, diverging around zero",
               HEATMAP_HELP)
    h.add_argument("--market", action="append", metavar="NAMES",
                   help="markets to show, comma-separated or repeated (default: every "
                   "market with funding in the lake)")
    _span(h)
    _target(h)
    h.set_defaults(run=run_heatmap)

    c = _chart(charts, "candles", "OHLC, volume and optionally funding APR of a market",
               CANDLES_HELP)
    _market_choice(c, "candles of --interval")
    c.add_argument("--interval", required=True, help="interval, case-sensitive (1m is not 1M)")
    _span(c)
    c.add_argument("--funding", action="store_true",
                   help="add a panel with the funding APR in force at each bar's open")
    _batch(c)
    _target(c)
    c.set_defaults(run=run_candles)


def _chart(charts: Any, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = charts.add_parser(
        name, help=summary, description=f"Draw the {summary}.", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _market_choice(p: argparse.ArgumentParser, what: str) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--market", action="append", metavar="NAMES",
                       help="market as in the lake (any case: btc); several, comma-"
                       "separated or repeated, make a batch with one file each")
    which.add_argument("--all", action="store_true",
                       help=f"every market with {what} in the lake, one file each")


def _span(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="ISO-8601 UTC, inclusive (default: the first row)")
    p.add_argument("--end", help="ISO-8601 UTC, exclusive (default: after the last row)")


def _batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes drawing a batch (default: one per core)")


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default=".", metavar="DIR",
                   help="folder to write the charts into (default: the current folder)")
    p.add_argument("--format", default="png", choices=PLOT_FORMATS,
                   help="png (150 dpi, the default) or svg")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")


# --- arguments to charts ----------------------------------------------------------------


def _names(values: Sequence[str]) -> list[str]:
    """``["BTC,eth", "SOL"]`` → ``["BTC", "eth", "SOL"]`` (blanks refused)."""
    names = [name.strip() for value in values for name in value.split(",")]
    if not names or any(not name for name in names):
        raise UserError(f"--market: {','.join(values)!r} has an empty name")
    return names


def _span_of(args: argparse.Namespace) -> TimeRange:
    from hyperlake.query.loaders import TimeRange
    from hyperlake.schemas.times import parse_instant

    start = None if args.start is None else parse_instant(args.start, "--start")
    end = None if args.end is None else parse_instant(args.end, "--end")
    return TimeRange.parse(start, end)


def _target_of(args: argparse.Namespace) -> Target:
    from pathlib import Path

    from hyperlake.query.plot_jobs import Target
    from hyperlake.schemas.vocabulary import is_plot_format

    folder = Path(args.output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output: {folder} is a file; name a folder to write charts into")
    if not is_plot_format(args.format):
        raise UserError(f"--format: {args.format!r} is not one of {', '.join(PLOT_FORMATS)}")
    return Target(folder, args.format)


def _markets(args: argparse.Namespace, dataset: Dataset, *,
             interval: str | None = None) -> list[str]:
    """The lake's spelling of every market asked for (all, for ``--all``), each once;
    a name the lake does not hold is an error before anything is drawn."""
    from hyperlake.lake.paths import LakePaths, existing_lake
    from hyperlake.query.loaders import resolve_market

    root = existing_lake(args.lake)
    if args.all:
        names = (LakePaths(root).markets(dataset) if interval is None else
                 [m for m, i in LakePaths(root).lake_series(dataset) if i == interval])
        if not names:
            held = dataset if interval is None else f"{interval} {dataset}"
            raise UserError(f"--all: {root} holds no {held} yet")
        return names
    return list(dict.fromkeys(resolve_market(root, dataset, m) for m in _names(args.market)))


def _workers(args: argparse.Namespace, jobs: int) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: {args.workers} is not a positive number")
    wanted = args.workers if args.workers is not None else (os.cpu_count() or 1)
    return max(1, min(wanted, jobs))


# --- running ----------------------------------------------------------------------------


def run_funding(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake
    from hyperlake.query.plot_jobs import FundingChart
    from hyperlake.query.plot_series import parse_window

    root = existing_lake(args.lake)
    span, target = _span_of(args), _target_of(args)
    ma = parse_window(args.ma, "--ma")
    charts = [FundingChart(root, name, span, target, ma) for name in _markets(args, "funding")]
    return _draw(charts, args, what="funding")


def run_candles(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake
    from hyperlake.query.plot_jobs import CandleChart

    root = existing_lake(args.lake)
    span, target = _span_of(args), _target_of(args)
    names = _markets(args, "candles", interval=args.interval if args.all else None)
    charts = [CandleChart(root, name, args.interval, span, target, args.funding)
              for name in names]
    return _draw(charts, args, what=f"{args.interval} candles")


def run_heatmap(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake
    from hyperlake.query.plot_jobs import HeatmapChart

    root = existing_lake(args.lake)
    markets = tuple(_names(args.market)) if args.market else ()
    done = HeatmapChart(root, markets, _span_of(args), _target_of(args)).render()
    print(f"wrote {done.path} ({done.detail})")
    return 0


def _draw(charts: Sequence[FundingChart | CandleChart], args: argparse.Namespace, *,
          what: str) -> int:
    """One chart: drawn here, no data is an error. Several: a batch, see the module."""
    from hyperlake.commands.output import ItemProgress
    from hyperlake.query.plot_jobs import Rendered

    if len(charts) == 1 and not args.all:
        done = charts[0].render()
        print(f"wrote {done.path} ({done.detail})")
        return 0
    with ItemProgress(f"plot {args.chart}", len(charts)) as bar:
        outcomes = _run_batch(charts, _workers(args, len(charts)), bar)
    written = sum(isinstance(outcome, Rendered) for outcome in outcomes)
    if written == 0:
        raise UserError(f"no chart written: none of the {len(charts)} markets has {what} "
                        "in the span")
    return 0


def _run_batch(charts: Sequence[FundingChart | CandleChart], workers: int,
               bar: ItemProgress) -> list[Outcome]:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from hyperlake.query.plot_jobs import render_or_skip

    outcomes: list[Outcome] = []
    if workers == 1:
        for chart in charts:
            outcomes.append(_report(render_or_skip(chart), bar))
        return outcomes
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(render_or_skip, chart) for chart in charts]
        for future in as_completed(futures):
            outcomes.append(_report(future.result(), bar))
    return outcomes


def _report(outcome: Outcome, bar: ItemProgress) -> Outcome:
    from hyperlake.query.plot_jobs import Rendered

    if isinstance(outcome, Rendered):
        bar.line(f"wrote {outcome.path} ({outcome.detail})")
    else:
        bar.line(f"skip {outcome.market}: {outcome.reason}", err=True)
    bar.advance()
    return outcome
