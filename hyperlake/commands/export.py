"""``hyperlake export csv``: one candle series in the vendors' public CSV schema.

Why this shape: ``s,i,t,T,o,h,l,c,v,q,n,x`` is what the vendor guide publishes and
what downstream tools written against the vendors already read. Times are epoch
milliseconds; prices and volumes are plain decimals, the shortest text that reads
back as the same float64 and never an exponent (``0.00001``, ``66000``), as the
vendors' wire sends them; ``q`` is empty where the source had no quote volume; ``x``
is ``true``/``false``.

The lake is read one partition (one UTC day) at a time, so memory stays at a day of
rows whatever the range; partitions come in date order and each is sorted by ``t``,
so the file is sorted by ``t``. It is written beside the target and renamed over it:
a failed export leaves no partial file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from hyperlake.errors import UserError
from hyperlake.lake.atomic import atomic_path
from hyperlake.lake.catalog import existing_lake
from hyperlake.lake.loaders import TimeRange, candle_files, resolve_interval, resolve_market
from hyperlake.schemas.times import parse_instant

CSV_HEADER = ("s", "i", "t", "T", "o", "h", "l", "c", "v", "q", "n", "x")
LAKE_COLUMNS = ["t", "t_close", "o", "h", "l", "c", "v", "q", "n", "x"]


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
        "unknown), n trades, x closed (true/false). Sorted by t; written atomically.",
    )
    c.add_argument("--market", required=True, help="market as in the lake (any case: btc)")
    c.add_argument("--interval", required=True, help="interval, case-sensitive (1m is not 1M)")
    c.add_argument("--start", help="ISO-8601 UTC, inclusive (default: the first candle)")
    c.add_argument("--end", help="ISO-8601 UTC, exclusive (default: after the last candle)")
    c.add_argument("--output", required=True, metavar="FILE", help="the CSV file to write")
    c.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    c.set_defaults(run=run_csv)


def vendor_columns(market: str, interval: str) -> list[pl.Expr]:
    return [
        pl.lit(market, pl.String).alias("s"),
        pl.lit(interval, pl.String).alias("i"),
        pl.col("t").dt.epoch("ms").alias("t"),
        pl.col("t_close").dt.epoch("ms").alias("T"),
        *(pl.col(name) for name in ("o", "h", "l", "c", "v", "q", "n", "x")),
    ]


def write_partition(path: Path, span: TimeRange, columns: list[pl.Expr],
                    sink: BinaryIO) -> int:
    """Append one partition's rows inside ``span`` to ``sink``, sorted by ``t``."""
    frame = (pl.read_parquet(path, columns=LAKE_COLUMNS, hive_partitioning=False)
             .filter(span.filter("t")).sort("t").select(columns))
    frame.write_csv(sink, include_header=False, float_scientific=False, null_value="")
    return frame.height


def export_csv(files: list[Path], span: TimeRange, columns: list[pl.Expr],
               output: Path) -> int:
    """Write the header and every partition's rows to ``output`` atomically."""
    rows = 0
    with atomic_path(output) as tmp, open(tmp, "wb") as sink:
        sink.write((",".join(CSV_HEADER) + "\n").encode())
        for path in files:
            rows += write_partition(path, span, columns, sink)
    return rows


def _output_path(text: str) -> Path:
    output = Path(text).expanduser()
    if output.is_dir():
        raise UserError(f"--output: {output} is a folder; name a file")
    return output


def _instant(text: str | None, field: str) -> int | None:
    return None if text is None else parse_instant(text, field)


def run_csv(args: argparse.Namespace) -> int:
    root = existing_lake(args.lake)
    span = TimeRange.parse(_instant(args.start, "--start"), _instant(args.end, "--end"))
    output = _output_path(args.output)
    market = resolve_market(root, "candles", args.market)
    interval = resolve_interval(root, market, args.interval)
    files = candle_files(root, market, interval, span.start_ms, span.end_ms)
    rows = export_csv(files, span, vendor_columns(market, interval), output)
    if rows == 0:
        print(f"hyperlake export: note: no candles of {market} {interval} in the range; "
              f"{output} holds the header only", file=sys.stderr)
    else:
        print(f"exported {rows} candles of {market} {interval} to {output}")
    return 0
