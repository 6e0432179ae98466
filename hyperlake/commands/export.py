"""``hyperlake export csv``: one candle series in the vendors' public CSV schema.

This module declares the arguments and runs the command; the format itself (why
this shape, how the file is read and written) is ``hyperlake.query.export_csv``,
imported only when the command runs, so that ``hyperlake --help`` does not load
polars.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hyperlake.query.output_target import HELP as OUTPUT_HELP


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="write a series of the lake to a file in a vendor format",
        description="Write one series of the lake to a file in a format other tools read.",
    )
    formats = p.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    c: argparse.ArgumentParser = formats.add_parser(
        "csv",
        help="candles as s,i,t,T,o,h,l,c,v,q,n,x (the vendor guide's public schema)",
        description="Export the candles of one market and interval over [--start, --end) "
        "as CSV with the header s,i,t,T,o,h,l,c,v,q,n,x: s market, i interval, t open "
        "and T close time (epoch ms), o h l c v q as plain decimals (q empty when "
        "unknown), n trades, x closed (true/false). Sorted by t. Exit status: 0 done; 1 "
        "a lake file cannot be read (damaged: the message names it; run hyperlake "
        "verify); 2 bad input or --output cannot be written.",
    )
    c.add_argument("--market", required=True, help="market as in the lake (any case: btc)")
    c.add_argument("--interval", required=True, help="interval, case-sensitive (1m is not 1M)")
    c.add_argument("--start", help="ISO-8601 UTC, inclusive (default: the first candle)")
    c.add_argument("--end", help="ISO-8601 UTC, exclusive (default: after the last candle)")
    c.add_argument("--output", required=True, metavar="FILE", help=OUTPUT_HELP)
    c.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    c.set_defaults(run=run_csv)


def _instant(text: str | None, field: str) -> int | None:
    from hyperlake.schemas.times import parse_instant

    return None if text is None else parse_instant(text, field)


def run_csv(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake, open_store
    from hyperlake.query.export_csv import export_csv, vendor_columns
    from hyperlake.query.loaders import TimeRange, candle_files, resolve_interval, resolve_market
    from hyperlake.query.output_target import output_target

    root = existing_lake(args.lake)
    span = TimeRange.parse(_instant(args.start, "--start"), _instant(args.end, "--end"))
    target = output_target(args.output)
    market = resolve_market(root, "candles", args.market)
    interval = resolve_interval(root, market, args.interval)
    files = candle_files(root, market, interval, span.start_ms, span.end_ms)
    if target.note is not None:
        print(f"hyperlake export: note: {target.note}", file=sys.stderr)
    rows = export_csv(open_store(root), files, span, vendor_columns(market, interval),
                      target)
    # The summary goes to stderr when the CSV itself goes to stdout.
    summary = sys.stderr if target.is_stdout else sys.stdout
    if rows == 0:
        print(f"hyperlake export: note: no candles of {market} {interval} in the range; "
              f"{target.shown} holds the header only", file=sys.stderr)
    else:
        print(f"exported {rows} candles of {market} {interval} to {target.shown}",
              file=summary)
    return 0
