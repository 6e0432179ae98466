"""Checkpoints: the contract between extract stages and compaction.

A series is one (dataset, source, market, interval). Its checkpoint jobs live in
``_checkpoints/<dataset>/<source>/market=…/interval=…/job-<start>-<end>/``; each
shard of a job writes part files named for the buckets they cover,
``part-<start>-<end>.parquet`` ([start, end) in epoch ms): every bucket in that span
is either a row of the file or confirmed empty by the source — unless the gap
ledger lists it as failed. So what is done, and what is missing, is computed from
file names; there is no cursor that could disagree with the data.

Order of a commit (each step atomic):
  1. ledger entries for the buckets that failed in the span,
  2. the part file,
  3. removal of older ledger entries the span has now fetched.
A crash between steps only makes the next run fetch something again.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from hyperlake.lake.atomic import remove_durably, write_bytes_atomic, write_parquet_atomic
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.ranges import RangeSet, Span

PART_RE = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
GAP_RE = re.compile(r"^gap-(\d+)-(\d+)\.json$")
COVERED_RE = re.compile(r"^covered-(\d+)-(\d+)$")
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1}


@dataclass(frozen=True)
class SeriesKey:
    dataset: str  # "candles" | "funding"
    source: str
    market: str
    interval: str

    def describe(self) -> str:
        return f"{self.dataset} {self.source} {self.market} {self.interval}"


@dataclass(frozen=True)
class Gap:
    span: Span
    path: Path
    info: dict[str, Any]


class Series:
    """Files of one series: parts in every job, the gap ledger, compacted coverage."""

    def __init__(self, paths: LakePaths, key: SeriesKey) -> None:
        self.paths = paths
        self.key = key
        self.folder = paths.checkpoint_series(key.dataset, key.source, key.market, key.interval)
        self.ledger = paths.gap_ledger(key.dataset, key.source, key.market, key.interval)
        self.coverage_folder = paths.coverage(key.dataset, key.source, key.market, key.interval)

    def job_folder(self, want: Span) -> Path:
        return self.folder / f"job-{want.start}-{want.end}"

    def parts(self) -> list[tuple[Span, Path]]:
        found = []
        if self.folder.exists():
            for path in self.folder.glob("job-*/*/part-*.parquet"):
                match = PART_RE.match(path.name)
                if match:
                    found.append((Span(int(match[1]), int(match[2])), path))
        return sorted(found)

    def compacted(self) -> RangeSet:
        spans = []
        if self.coverage_folder.exists():
            for path in self.coverage_folder.iterdir():
                match = COVERED_RE.match(path.name)
                if match:
                    spans.append(Span(int(match[1]), int(match[2])))
        return RangeSet(spans)

    def gaps(self) -> list[Gap]:
        found = []
        if self.ledger.exists():
            for path in self.ledger.iterdir():
                match = GAP_RE.match(path.name)
                if match:
                    found.append(Gap(Span(int(match[1]), int(match[2])), path,
                                     _read_json(path)))
        return sorted(found, key=lambda g: g.span)

    def covered(self) -> RangeSet:
        return RangeSet(span for span, _ in self.parts()).union(self.compacted())

    def done(self) -> RangeSet:
        """Buckets whose rows (or confirmed emptiness) are durable."""
        return self.covered().subtract(RangeSet(g.span for g in self.gaps()))

    def missing(self, want: Span) -> RangeSet:
        return RangeSet([want]).subtract(self.done())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Failure:
    span: Span
    reason: str


class ShardWriter:
    """Commits a shard's contiguous progress: one part file per commit."""

    def __init__(self, series: Series, folder: Path) -> None:
        self.series = series
        self.folder = folder

    def commit(self, span: Span, table: pa.Table, failures: list[Failure]) -> Path:
        for failure in failures:
            self._record_failure(failure)
        part = self.folder / f"part-{span.start}-{span.end}.parquet"
        write_parquet_atomic(part, table, **PARQUET_OPTIONS)
        self._clear_fetched_gaps(span, {f.span for f in failures})
        return part

    def _record_failure(self, failure: Failure) -> None:
        path = self.series.ledger / f"gap-{failure.span.start}-{failure.span.end}.json"
        previous = _read_json(path) if path.exists() else {}
        now = int(time.time() * 1000)
        entry = {
            "series": self.series.key.describe(),
            "start": failure.span.start,
            "end": failure.span.end,
            "reason": failure.reason,
            "runs": int(previous.get("runs", 0)) + 1,
            "first_failed_at": previous.get("first_failed_at", now),
            "last_failed_at": now,
        }
        write_bytes_atomic(path, orjson.dumps(entry, option=orjson.OPT_INDENT_2))

    def _clear_fetched_gaps(self, span: Span, still_failed: set[Span]) -> None:
        stale = []
        for gap in self.series.gaps():
            if gap.span in still_failed or not gap.span.overlaps(span):
                continue
            for rest in RangeSet([gap.span]).subtract(RangeSet([span])):
                path = self.series.ledger / f"gap-{rest.start}-{rest.end}.json"
                write_bytes_atomic(path, orjson.dumps({**gap.info, "start": rest.start,
                                                       "end": rest.end}))
            stale.append(gap.path)
        remove_durably(stale)
