"""``hyperlake status``: one screen per lake, read-only and fast."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlake.query.status import LakeStatus

#: Columns a table written to a file or a pipe gets (a terminal gets its own width).
PIPED_WIDTH = 160


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status", help="where each series stands: first/last bar, lag, missing, gaps, the "
        "last update run, the streamer",
        description="Per dataset, market and interval: first and last bar, lag behind now, "
        "buckets missing / confirmed empty / in the gap ledger / provisional, checkpoint "
        "parts awaiting compaction; the last `hyperlake update` run and a streamer's health. "
        "Read-only, from file names and small state files (no Parquet file is opened).")
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--market", help="only this market (exact name)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hyperlake.lake.paths import existing_lake
    from hyperlake.pipelines.settings import SourceSettings
    from hyperlake.query.status import lake_status

    root = existing_lake(args.lake)
    status = lake_status(root, SourceSettings.from_env().now_ms(), args.market)
    if args.json:
        from hyperlake.commands.output import summary_line

        print(summary_line(**status.as_dict()))
    else:
        _print(status)
    return 0


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


def _count(value: int | None, known: bool = True) -> str:
    if not known:
        return "-"
    return "?" if value is None else f"{value:,}" if value else "·"


def _print(status: LakeStatus) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from hyperlake.schemas.times import format_instant

    def instant(ms: int | None) -> str:
        if ms is None:
            return "-"
        text = format_instant(ms).replace("T", " ").removesuffix("Z")
        return text.removesuffix(":00") if ms % 60_000 == 0 else text

    console = Console(highlight=False, soft_wrap=False,
                      width=None if sys.stdout.isatty() else PIPED_WIDTH)
    table = Table(title=f"lake {status.root} at {format_instant(status.now_ms)}",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (("dataset", "left"), ("market", "left"), ("interval", "left"),
                          ("first", "left"), ("last", "left"), ("lag", "right"),
                          ("missing", "right"), ("empty", "right"), ("gaps", "right"),
                          ("provisional", "right"), ("pending", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in status.series:
        style = "red" if s.gaps else None
        bucketed = s.missing is not None
        table.add_row(s.dataset, s.market, s.interval or "-", instant(s.first_ms),
                      instant(s.last_ms), _age(s.lag_ms), _count(s.missing, bucketed),
                      _count(s.empty, bucketed), _count(s.gaps), _count(s.provisional),
                      _count(s.pending_parts), style=style)
    if status.series:
        console.print(table)
    else:
        console.print(f"lake {status.root}: no series yet")
    run = status.last_run
    if run is None:
        console.print("last update: none recorded")
    else:
        console.print(f"last update: {run.get('finished')} ({run.get('result')}, exit "
                      f"{run.get('exit')}), {run.get('seconds')}s, {run.get('requests')} "
                      f"requests, {run.get('gaps')} buckets in the gap ledger"
                      + (f"; errors: {'; '.join(run['errors'])}" if run.get("errors") else ""))
    stream = status.stream
    if stream is not None:
        state = "running" if stream["alive"] else "NOT RUNNING"
        console.print(f"stream: {state}, status written {stream['status_age_s']}s ago, last "
                      f"frame {stream.get('last_frame')}, {stream.get('connections')} "
                      f"connections, {stream.get('reconnects')} reconnects, awaiting repair "
                      f"{stream.get('awaiting_repair') or 'nothing'}")
