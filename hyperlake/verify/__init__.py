"""Verification: does the lake hold what its own files say it holds?

Extraction and compaction each check their step, but a lake is also copied,
restored, edited by hand, or left by a run killed at an unlucky instant. So verify
trusts no summary: it re-derives every finding from files — partition rows on one
side; checkpoint parts, coverage markers (``_state/coverage``) and the gap ledger on
the other — per (dataset, market, interval), and per source where the state is kept
per source (coverage, ledger; rows carry a ``source`` column and are counted by it).

What is found, and how much it weighs:

violation (exit 1)  two rows with one key; rows outside their partition's date; rows
                    failing sanity (candles: l <= min(o, c), max(o, c) <= h, v >= 0,
                    n >= 0, t on the bucket grid, t_close = next bucket - 1; funding:
                    funding_hour = time floored to the hour); failed buckets in the
                    gap ledger; never-fetched holes inside the covered extent; two
                    funding rows in one hour; partition files that cannot be read.
warning             funding hours missing between the series' first and last row;
                    off-hour funding rows; rows that no coverage accounts for.
info                buckets the source confirmed empty (covered, no row); buckets
                    whose rows still sit in checkpoints, awaiting ``hyperlake compact``;
                    provisional buckets near the head of a source's data (answered
                    empty or not closed yet: ``pipelines.head``), asked again next run.

Funding cadence findings are warnings, not violations, because they describe the
exchange rather than a defect of the lake: the real 2023 history has a missing hour
(2023-07-02T20:00Z) and rows 5 s and 23 min after their hour. The cadence is one
row per hour from 2023-06-08 (``HOURLY_FUNDING_FROM_MS``) and one per 8 hours
before; a row more than ``OFF_HOUR_TOLERANCE_MS`` after its hour, or on a non-8-hour
boundary before 2023-06-08, is off-hour. Covered funding hours before the first row
or after the last one (before a listing, after a delisting) are only "empty".

No lock is taken: every file verify reads is replaced atomically, and a series'
parts are listed before its coverage markers (compaction writes markers before it
deletes parts), so a concurrent compaction cannot hide covered spans. Findings can
be a moment stale while another run writes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from hyperlake.schemas.vocabulary import VERIFIED, Dataset
from hyperlake.verify.discover import discover, select
from hyperlake.verify.report import LakeReport, SeriesId, SeriesReport
from hyperlake.verify.scan import SeriesCheck

__all__ = ["LakeReport", "SeriesId", "verify_changed", "verify_lake", "verify_series"]


def verify_lake(root: Location, datasets: Iterable[Dataset] = VERIFIED,
                market: str | None = None, interval: str | None = None) -> LakeReport:
    """Verify every selected series, one at a time. An empty lake gives an empty report
    (whatever the filters); a filter naming nothing the lake has is a UserError."""
    paths = LakePaths(root)
    found = discover(paths, datasets)
    if not found:
        return LakeReport(root, [])
    chosen = select(found, market, interval, root)
    return LakeReport(root, [SeriesCheck(paths, sid, sorted(found[sid])).run()
                             for sid in chosen])


def verify_series(root: Location, sid: SeriesId,
                  days: Collection[int] | None = None) -> SeriesReport:
    """Verify one series: its state files, and the rows of ``days`` (UTC day numbers;
    None: every day). One task of a cluster's whole-lake verify."""
    paths = LakePaths(root)
    sources = sorted({key.source for key in paths.state_keys(sid.dataset)
                      if (key.market, key.interval) == (sid.market, sid.interval)})
    return SeriesCheck(paths, sid, sources, days).run()


def verify_changed(root: Location, changed: Mapping[SeriesId, Collection[int]]) -> LakeReport:
    """Verify only what a run changed: each series' state (ledgers, coverage: cheap,
    from file names) and the rows of the given UTC days (day numbers) only, so a
    run at the head of a year-long lake reads a few partitions, not all."""
    paths = LakePaths(root)
    sources: dict[SeriesId, set[str]] = {}
    for dataset in sorted({sid.dataset for sid in changed if sid.dataset in VERIFIED}):
        for key in paths.state_keys(dataset):
            sources.setdefault(SeriesId(dataset, key.market, key.interval), set()).add(
                key.source)
    return LakeReport(root, [SeriesCheck(paths, sid, sorted(sources.get(sid, ())), days).run()
                             for sid, days in sorted(changed.items())
                             if sid.dataset in VERIFIED])
