"""What verification finds, and how much each finding weighs.

A ``Finding`` is one check's result for one series: a count, the earliest offending
keys and an optional breakdown; its severity decides whether it fails the lake
(violation), is worth a look (warning) or is plain information. ``SeriesReport`` and
``LakeReport`` add them up and give the JSON shape of ``hyperlake verify --json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import Dataset, Severity
from hyperlake.verify.buckets import I64, distinct, extent_dict, union

#: Offending keys kept per finding (the earliest ones).
FIRST_KEYS = 5

VIOLATION: Severity = "violation"
WARNING: Severity = "warning"
INFO: Severity = "info"


class SeriesId(NamedTuple):
    dataset: Dataset
    market: str
    interval: str

    def describe(self) -> str:
        return f"{self.dataset} {self.market} {self.interval}"


# -- findings ---------------------------------------------------------------------------


@dataclass
class Finding:
    """One check's result: a count, the earliest offenders, optional breakdown."""

    severity: Severity
    label: str
    unit: str
    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)  # (sort key, text)
    detail: Counter[str] = field(default_factory=Counter)

    def add(self, count: int, examples: Iterable[tuple[int, str]] = ()) -> None:
        self.count += count
        self.first = sorted({*self.first, *examples})[:FIRST_KEYS]

    def add_keys(self, keys: I64) -> None:
        """Offending rows (or buckets) named by their key."""
        head = distinct(keys)[:FIRST_KEYS].tolist()
        self.add(len(keys), ((k, format_instant(k)) for k in head))

    def add_spans(self, spans: RangeSet, interval: str) -> None:
        head = list(spans)[:FIRST_KEYS]
        self.add(buckets_in(spans, interval), ((s.start, _span_text(s)) for s in head))

    @property
    def weight(self) -> int:
        """What the finding adds to the violations (or warnings) of its series."""
        return self.count if self.severity != INFO else 0

    def to_dict(self) -> dict[str, object]:
        return {"severity": self.severity, "count": self.count, "unit": self.unit,
                "first": [text for _, text in self.first], "detail": dict(self.detail)}


def findings_for(dataset: Dataset) -> dict[str, Finding]:
    bucket = "hours" if dataset == "funding" else "buckets"
    sanity = ("rows whose funding_hour is not time floored" if dataset == "funding"
              else "rows failing OHLC sanity")
    found = {
        "empty": Finding(INFO, "empty, confirmed by the source", bucket),
        "pending": Finding(INFO, "in checkpoints, not compacted yet", bucket),
        "provisional": Finding(INFO, "provisional near the head, re-checked next run",
                               bucket),
        "failed": Finding(VIOLATION, "failed, in the gap ledger", bucket),
        "holes": Finding(VIOLATION, "never fetched, inside the extent", bucket),
        "duplicates": Finding(VIOLATION, "rows sharing a key", "rows"),
        "misplaced": Finding(VIOLATION, "rows outside their partition's date", "rows"),
        "bad_rows": Finding(VIOLATION, sanity, "rows"),
        "unreadable": Finding(VIOLATION, "partitions that cannot be read", "partitions"),
        "unreadable_parts": Finding(VIOLATION, "checkpoint parts that cannot be read",
                                    "parts"),
        "uncovered_rows": Finding(WARNING, "rows outside any recorded coverage", "rows"),
    }
    if dataset == "funding":
        found["missing_hours"] = Finding(WARNING, "funding hours missing between rows", "hours")
        found["off_hour"] = Finding(WARNING, "off-hour funding rows", "rows")
        found["duplicate_hours"] = Finding(VIOLATION, "funding hours with several rows",
                                           "hours")
    return found


# -- reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceState:
    """What one source's files say about a series."""

    source: str
    covered: RangeSet  # checkpoint parts and coverage markers
    pending: RangeSet  # parts that no marker covers yet: rows not in the lake yet
    failed: RangeSet  # the gap ledger
    confirmed: RangeSet  # compacted, not failed, settled: rows, or confirmed emptiness
    provisional: RangeSet  # answered near the head, not settled yet (re-checked next run)

    @classmethod
    def read(cls, series: Series) -> SourceState:
        parts = RangeSet(span for span, _ in series.parts())  # before the markers
        compacted = series.compacted()
        failed = series.ledger.spans()
        provisional = series.provisional.spans()
        return cls(series.key.source, parts.union(compacted), parts.subtract(compacted),
                   failed, compacted.subtract(failed).subtract(provisional), provisional)


@dataclass
class SeriesReport:
    sid: SeriesId
    sources: list[SourceState]
    findings: dict[str, Finding]
    rows: int = 0
    partitions: int = 0
    rows_by_source: Counter[str] = field(default_factory=Counter)

    @property
    def covered(self) -> RangeSet:
        return union(s.covered for s in self.sources)

    @property
    def violations(self) -> int:
        return sum(f.weight for f in self.findings.values() if f.severity == VIOLATION)

    @property
    def warnings(self) -> int:
        return sum(f.weight for f in self.findings.values() if f.severity == WARNING)

    def to_dict(self) -> dict[str, object]:
        interval = self.sid.interval
        return {
            "dataset": self.sid.dataset, "market": self.sid.market, "interval": interval,
            "ok": self.violations == 0, "violations": self.violations,
            "warnings": self.warnings, "rows": self.rows, "partitions": self.partitions,
            "rows_by_source": dict(sorted(self.rows_by_source.items())),
            "coverage": extent_dict(self.covered, interval),
            "sources": {s.source: {**extent_dict(s.covered, interval),
                                   "pending": buckets_in(s.pending, interval),
                                   "provisional": buckets_in(s.provisional, interval),
                                   "failed": buckets_in(s.failed, interval)}
                        for s in self.sources},
            "findings": {name: f.to_dict() for name, f in self.findings.items()},
        }


@dataclass
class LakeReport:
    lake: Location
    series: list[SeriesReport]

    @property
    def violations(self) -> int:
        return sum(s.violations for s in self.series)

    @property
    def warnings(self) -> int:
        return sum(s.warnings for s in self.series)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"lake": str(self.lake), "ok": self.violations == 0,
                                  "violations": self.violations, "warnings": self.warnings,
                                  "series": [s.to_dict() for s in self.series]}
        if not self.series:
            out["message"] = "nothing to verify"
        return out


def _span_text(span: Span) -> str:
    return f"{format_instant(span.start)}/{format_instant(span.end)}"
