"""``hyperlake verify``: check the lake against its own state files, read-only.

A quant wants one command that says whether the data can be trusted before a
backtest: what is covered, what failed, what was never fetched, and whether any row
is duplicated, misplaced or nonsensical. The checks live in
``hyperlake.verify``; this module parses arguments, prints a table per series
(or one JSON object) and turns the verdict into the exit status.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from hyperlake.schemas.vocabulary import VERIFIED

if TYPE_CHECKING:
    from hyperlake.verify.report import Finding, LakeReport, SeriesReport

EXIT_VIOLATIONS = 1
SHOWN_KEYS = 3  # offending keys per check in the table (--json has more)
EPILOG = """\
violations (exit 1): duplicate keys, rows outside their partition's date, OHLC
sanity failures (l <= min(o, c), max(o, c) <= h, v >= 0, n >= 0, t_close = next
bucket - 1), failed buckets in the gap ledger, never-fetched holes between covered
spans, funding hours with several rows, unreadable partitions or checkpoint parts.
warnings (exit 0): funding hours missing between rows and off-hour funding rows (the
real 2023 history has both), rows outside any recorded coverage.
info: buckets confirmed empty by the source; buckets still awaiting `hyperlake compact`;
buckets near the head that are provisional (answered empty or not closed yet; the next
extract run asks again).

exit status: 0 no violation; 1 violations; 2 bad input (e.g. a market the lake lacks).
"""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="check coverage, gaps, duplicates, OHLC sanity and funding cadence",
        description="Verify the lake, one market/interval series at a time: coverage (per "
        "source), gaps (confirmed empty, failed, never fetched), duplicate and misplaced "
        "rows, OHLC sanity and funding cadence. Read-only; memory is bounded by one "
        "partition.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--lake", help="lake root (default $HYPERLAKE_LAKE or ./data)")
    p.add_argument("--market", help="only this market (as in the lake; case-insensitive if "
                   "unambiguous)")
    p.add_argument("--interval", help="only this interval, e.g. 1m")
    p.add_argument("--dataset", choices=VERIFIED,
                   help="only this dataset (default both)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: the series reports with counts and the "
                   "first offending keys")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hyperlake.commands.output import summary_line
    from hyperlake.lake.paths import existing_lake
    from hyperlake.verify import verify_lake

    datasets = (args.dataset,) if args.dataset else VERIFIED
    report = verify_lake(existing_lake(args.lake), datasets, args.market, args.interval)
    print(summary_line(**report.to_dict()) if args.json else render(report))
    return EXIT_VIOLATIONS if report.violations else 0


# -- the table ----------------------------------------------------------------------------


def render(report: LakeReport) -> str:
    if not report.series:
        return f"nothing to verify: no candles or funding in {report.lake}"
    blocks = ["\n".join(series_lines(s)) for s in report.series]
    verdict = "FAIL" if report.violations else "ok"
    blocks.append(f"verified {len(report.series)} series in {report.lake}: "
                  f"{_plural(report.violations, 'violation')}, "
                  f"{_plural(report.warnings, 'warning')}: {verdict}")
    return "\n\n".join(blocks)


def series_lines(s: SeriesReport) -> list[str]:
    from hyperlake.lake.ranges import buckets_in
    from hyperlake.verify.buckets import extent_dict

    interval = s.sid.interval
    verdict = "FAIL" if s.violations else "ok"
    lines = [f"{s.sid.describe()}: {verdict} ({_plural(s.violations, 'violation')}, "
             f"{_plural(s.warnings, 'warning')})",
             f"  coverage  {_extent(extent_dict(s.covered, interval))}; {s.rows} rows in "
             f"{_plural(s.partitions, 'partition')}"]
    for state in s.sources:
        lines.append(f"  source    {state.source:<12} "
                     f"{_extent(extent_dict(state.covered, interval))}; "
                     f"{buckets_in(state.pending, interval)} pending, "
                     f"{buckets_in(state.failed, interval)} failed")
    if s.rows_by_source:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s.rows_by_source.items()))
        lines.append(f"  rows      by source: {counts}")
    lines.append(f"  {'check':<44} {'count':>9}  {'status':<6}  first")
    lines += [_finding_line(f) for f in s.findings.values()]
    return lines


def _finding_line(f: Finding) -> str:
    status = "ok" if f.count == 0 else {"info": "info", "warning": "WARN"}.get(f.severity,
                                                                              "FAIL")
    keys = [text for _, text in f.first]
    shown = ", ".join(keys[:SHOWN_KEYS]) + (", …" if len(keys) > SHOWN_KEYS else "")
    label = f"{f.label} ({f.unit})"
    return f"  {label:<44} {f.count:>9}  {status:<6}  {shown}".rstrip()


def _extent(info: dict[str, Any]) -> str:
    if not info["buckets"]:
        return "nothing covered"
    return (f"{info['first']} → {info['last']}, {info['buckets']} buckets in "
            f"{_plural(info['spans'], 'span')}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
