"""``hyperlake sql``: one DuckDB query over the lake's views, printed or saved.

Why a command and not "open duckdb yourself": the views (decoded Hive keys, typed
partitions, the no-lookahead funding join) are set up the same way every time, and
the answer comes back in a format a shell pipeline or a notebook can take. The
query's result is collected in memory, then written in one go: a query that fails
half-way prints nothing and leaves no file behind. The command only reads: every
statement is classified before any runs (``hyperlake.query.read_only``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hyperlake.errors import UserError
from hyperlake.query.output_target import HELP as OUTPUT_HELP

FORMATS = ("table", "csv", "json", "parquet")

EPILOG = """\
views (timestamps are UTC, TIMESTAMP WITH TIME ZONE; the session time zone is UTC):
  candles               market, interval, t, t_close, o, h, l, c, v, q, n, x, source,
                        fetched_at, date  -- one row per (market, interval, t); t is the
                        bar's open, x whether it was closed, q NULL where unknown
  funding               market, time, funding_hour, fundingRate, premium, source,
                        fetched_at, date  -- funding_hour = time floored to the hour
  candles_with_funding  every candles column, then funding_hour, funding_rate,
                        funding_apr (= rate * 24 * 365), premium
  candles_live          the candles columns, compacted or not yet (a streamer's fresh
                        bars, a run not compacted yet): one row per key

  No lookahead: each bar gets the funding of the latest funding_hour at or before its
  open time t, never a later one (NULL when the market has none that early); when an
  hour holds several funding rows, the earliest time stands for it.
  Filter market, interval and date to skip files: WHERE market = 'BTC' AND
  interval = '1h' AND date = DATE '2026-03-30' reads one file of candles, and of
  candles_with_funding also at most two funding files (the day's and the latest one
  before it: the funding lookback is bounded). A filter on t alone still opens every
  file's footer. Views are unordered: say ORDER BY.

formats:
  table    aligned text on stdout, every row, then the row count (the default)
  csv      a header line, then one line per row; NULL is an empty field
  json     JSON lines: one object per row; timestamps ISO-8601 with Z, NaN as null,
           sums of integers as integers
  parquet  needs --output (a file, or - for a pipe)

read-only: only statements that read run (SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW,
  PIVOT, EXPLAIN [ANALYZE] of a read, reporting PRAGMAs such as table_info); COPY,
  EXPORT, ATTACH, CREATE, INSERT, SET, INSTALL/LOAD, CALL, ... are refused before
  anything runs, naming the statement, and extensions are never loaded on demand.
  Results leave only through --output. In Python, hyperlake.connect() is a plain
  DuckDB connection that can do everything (the power tool).

exit status: 0 done; 1 a lake file cannot be read (damaged: the message names it; run
  hyperlake verify); 2 bad input, a refused statement, or --output cannot be written
  (nothing is left half-written).

examples:
  hyperlake sql "SELECT market, interval, count(*) AS bars FROM candles GROUP BY ALL"
  hyperlake sql "SELECT t, c, funding_apr FROM candles_with_funding WHERE market = 'BTC'
      AND interval = '1h' AND date >= DATE '2026-03-01' ORDER BY t" --format csv
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "sql",
        help="run a DuckDB SQL query over the lake (views candles, funding, "
        "candles_with_funding)",
        description="Run one DuckDB SQL query against an in-memory database whose views "
        "read the lake's Parquet partitions, and print or save the result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("query", help="the SQL text (quote it for the shell)")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--format", default="table", choices=FORMATS,
                   help="output format (default table)")
    p.add_argument("--output", metavar="FILE", help=f"instead of stdout, {OUTPUT_HELP}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake, open_store
    from hyperlake.query.catalog import connect
    from hyperlake.query.output_target import STDOUT, output_target
    from hyperlake.query.read_only import lock_down
    from hyperlake.query.sql_output import run_query, write_result

    if args.format == "parquet" and args.output is None:
        raise UserError("--output: --format parquet needs a file to write to "
                        "(or --output - for a pipe)")
    found = existing_lake(args.lake)
    root = open_store(found).absolute(found)
    target = output_target(STDOUT if args.output is None else args.output)
    con = connect(root)
    try:
        lock_down(con)
        table = run_query(con, args.query, root)
    finally:
        con.close()
    if target.note is not None:
        print(f"hyperlake sql: note: {target.note}", file=sys.stderr)
    write_result(table, args.format, target)
    if not target.is_stdout:
        print(f"wrote {table.num_rows} rows to {target.shown}", file=sys.stderr)
    return 0
