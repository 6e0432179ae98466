"""``hyperlake compact``: checkpoints into the Hive-partitioned lake."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hyperlake.schemas.vocabulary import DATASETS


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "compact",
        help="merge checkpoints into candles/ and funding/ (market/interval/date partitions)",
        description="Merge every checkpoint into LAKE/candles and LAKE/funding, one partition "
        "per market/interval/UTC date: one row per key (a closed candle beats an open one, "
        "then --prefer's order, then the later fetch), sorted, zstd. Crash-safe: each "
        "partition is swapped atomically and checkpoints are deleted only after. Running it "
        "again changes nothing.",
    )
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--dataset", choices=DATASETS,
                   help="only this dataset (default both)")
    p.add_argument("--prefer", metavar="SOURCES",
                   help="source precedence for the same candle, e.g. dwellir,hydromancer,"
                   "hyperliquid (default: the later fetch wins)")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hyperlake.commands.output import summary_line
    from hyperlake.lake.paths import lake_root
    from hyperlake.pipelines.compact import CompactJob, run_compact, validate_precedence

    datasets = (args.dataset,) if args.dataset else DATASETS
    job = CompactJob(lake=lake_root(args.lake), datasets=datasets,
                     precedence=validate_precedence(args.prefer))
    stats, seconds = run_compact(job)
    for moved in stats.quarantined:
        print(f"hyperlake compact: {moved.line(job.lake)}", file=sys.stderr)
    fields = {"series_groups": len(stats.groups), "parts_consumed": stats.parts_consumed,
              "rows_in": stats.rows_in, "partitions_written": stats.partitions_written,
              "partitions_unchanged": stats.partitions_unchanged, "rows_out": stats.rows_out,
              "quarantined": [str(q.original) for q in stats.quarantined],
              "seconds": round(seconds, 3)}
    if args.json:
        print(summary_line(**fields))
    elif stats.parts_consumed == 0:
        print("nothing to compact: no checkpoints")
    else:
        print(f"compacted {stats.parts_consumed} checkpoint parts ({stats.rows_in} rows) of "
              f"{len(stats.groups)} series into {stats.partitions_written} partitions "
              f"({stats.partitions_unchanged} unchanged) in {seconds:.1f}s")
    return 0
