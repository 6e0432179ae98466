"""Checkpoints: the contract between extract stages and compaction.

A series is one (dataset, source, market, interval). Its checkpoint jobs live in
``_checkpoints/<dataset>/<source>/market=…/interval=…/job-<start>-<end>/``; each
shard of a job writes part files named for the buckets they cover,
``part-<start>-<end>.parquet`` ([start, end) in epoch ms): every bucket in that span
is either a row of the file or confirmed empty by the source — unless the gap
ledger lists it as failed, or the provisional ledger as not settled yet (see
``lake.ledger``). So what is done, and what is missing, is computed from file names;
there is no cursor that could disagree with the data.

Order of a commit (each step atomic):
  1. ledger entries for the buckets that failed, or are provisional, in the span,
  2. the part file,
  3. removal of older ledger entries the span has now settled.
A crash between steps only makes the next run fetch something again.

Compaction consumes parts; before it deletes them it records their spans as
coverage markers (``_state/coverage/…/covered-<a>-<b>``, empty files named for the
span), so what was covered stays known after the parts are gone.

On an object store each of these files is one PUT (atomic), in the same order. A part
is a plain PUT, not a create-only one: a later run that fetches a provisional span
again may write a part of the very same name, and the newer rows must win, as
``os.replace`` makes them win on disk. What keeps a second writer out is the lease
(checked before every write, ``lake.lease``), not the part's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hyperlake.lake.ledger import Failure, Gap, SpanLedger
from hyperlake.lake.paths import COVERED, GAP, JOB, PART, PROVISIONAL, LakePaths, SeriesKey
from hyperlake.lake.quarantine import Quarantined, quarantine
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1}


class Series:
    """Files of one series: parts in every job, the gap ledger, compacted coverage."""

    def __init__(self, paths: LakePaths, key: SeriesKey) -> None:
        self.paths = paths
        self.key = key
        self.folder = paths.checkpoint_series(key)
        self.store = paths.store
        self.ledger = SpanLedger(paths.store, paths.gap_ledger(key), GAP, key.describe())
        self.provisional = SpanLedger(paths.store, paths.provisional(key), PROVISIONAL,
                                      key.describe())
        self.coverage_folder = paths.coverage(key)

    def job_folder(self, want: Span) -> Location:
        return self.folder / JOB.spell(want)

    def parts(self) -> list[tuple[Span, Location]]:
        found = []
        for path in self.store.files(self.folder,
                                     f"{JOB.prefix}*/*/{PART.prefix}*{PART.suffix}"):
            span = PART.parse(path.name)
            if span is not None:
                found.append((span, path))
        return sorted(found, key=lambda item: (item[0], str(item[1])))

    def compacted(self) -> RangeSet:
        return RangeSet(span for path in self.store.files(self.coverage_folder, "*")
                        if (span := COVERED.parse(path.name)) is not None)

    def gaps(self) -> list[Gap]:
        return self.ledger.entries()

    def covered(self) -> RangeSet:
        return RangeSet(span for span, _ in self.parts()).union(self.compacted())

    def done(self) -> RangeSet:
        """Buckets whose rows (or confirmed emptiness) are durable and settled."""
        return self.covered().subtract(self.ledger.spans()).subtract(self.provisional.spans())

    def missing(self, want: Span) -> RangeSet:
        return RangeSet([want]).subtract(self.done())

    def record_coverage(self, spans: Iterable[Span]) -> None:
        """Fold ``spans`` into the coverage markers (names state the spans)."""
        self._write_coverage(self.compacted().union(RangeSet(spans)))

    def drop_coverage(self, span: Span) -> None:
        """Claim ``span`` no more (its rows were lost: the next run fetches it again)."""
        compacted = self.compacted()
        if compacted.intersect(RangeSet([span])):
            self._write_coverage(compacted.subtract(RangeSet([span])))

    def _write_coverage(self, merged: RangeSet) -> None:
        """New markers first, then the superseded ones go: a crash in between leaves
        overlapping markers, which claim the same."""
        folder = self.coverage_folder
        old = [p for p in self.store.files(folder, "*") if COVERED.parse(p.name) is not None]
        wanted = {COVERED.spell(s) for s in merged}
        for name in sorted(wanted - {p.name for p in old}):
            self.store.put(folder / name, b"")
        self.store.delete([p for p in old if p.name not in wanted])

    def quarantine_broken_parts(self) -> list[Quarantined]:
        """Move aside every part that is not a whole Parquet file (its name no longer
        claims its span, so the span is fetched again); nothing listed where the store
        cannot tear a file."""
        moved: list[Quarantined] = []
        if not self.store.can_tear:
            return moved
        for _, path in self.parts():
            problem = self.store.torn_parquet(path)
            if problem is not None:
                moved.append(quarantine(self.paths, path, problem))
        return moved

    def read_parts(self, schema: pa.Schema) -> pa.Table:
        """Every row of every part, as written (duplicates included)."""
        tables = [pq.read_table(self.store.parquet(path).source) for _, path in self.parts()]
        return pa.concat_tables(tables) if tables else schema.empty_table()


class ShardWriter:
    """Commits a shard's contiguous progress: one part file per commit."""

    def __init__(self, series: Series, folder: Location) -> None:
        self.series = series
        self.folder = folder

    def commit(self, span: Span, table: pa.Table, failures: Sequence[Failure],
               provisional: Sequence[Failure] = ()) -> Location:
        """``span``'s rows; ``failures`` could not be had, ``provisional`` are not final
        (see ``lake.ledger``). A writer under a run grant checks it first."""
        self.series.paths.check_grant()
        ledgers = ((self.series.ledger, failures), (self.series.provisional, provisional))
        for ledger, entries in ledgers:
            for entry in entries:
                ledger.record(entry)
        part = self.folder / PART.spell(span)
        self.series.store.put_parquet(part, table, PARQUET_OPTIONS)
        for ledger, entries in ledgers:
            ledger.clear(span, {e.span for e in entries})
        return part
