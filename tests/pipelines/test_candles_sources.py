"""``hyperlake candles`` against each source: what lands in the lake is the market
model, exactly once; a finished job makes no request; overlapping jobs fetch only
what is missing; snapshot windows neither duplicate nor drop their edge candles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hyperlake.emulator.info_api import HYDROMANCER_QUOTE_FROM_MS
from hyperlake.emulator.server import Emulator
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location
from hyperlake.schemas.exchange import CANDLES_PER_WEIGHT, INFO_BASE_WEIGHT
from hyperlake.schemas.intervals import FIXED_STEP_MS
from tests.conftest import DWELLIR_KEY, HYDROMANCER_KEY, NOW_MS
from tests.pipelines.test_candles_support import (
    DWELLIR_WARMUP_MAX,
    Row,
    all_files,
    assert_parts_disjoint,
    assert_single_kind,
    expected_rows,
    extract,
    iso,
    lake_rows,
    ms,
    raw_open_times,
    request_counts,
    series_of,
)

#: Hyperliquid and Hydromancer answer at most this many candles a request.
SNAPSHOT_WINDOW = 5000
ENDPOINT = {"hyperliquid": "info", "hydromancer": "hydromancer", "dwellir": "dwellir"}


@dataclass(frozen=True)
class Case:
    source: str
    interval: str
    start: str
    end: str
    market: str = "BTC"  # the exchange's spelling
    typed: str = "BTC"  # what the user types
    flags: tuple[str, ...] = ()

    @property
    def span(self) -> Span:
        return Span(ms(self.start), ms(self.end))

    @property
    def step(self) -> int:
        return FIXED_STEP_MS[self.interval]

    @property
    def buckets(self) -> int:
        return len(self.span) // self.step

    def expected(self, span: Span | None = None) -> list[Row]:
        span = span or self.span
        return list(expected_rows(self.source, self.interval, span.start, span.end,
                                  self.market))

    def series(self, lake: Location) -> Series:
        return series_of(lake, self.source, self.interval, self.market)

    def extract(self, emu: Emulator, lake: Location, span: Span | None = None) -> dict[str, Any]:
        span = span or self.span
        return extract(emu, self.source, self.interval, span.start, span.end, lake,
                       *self.flags, market=self.typed)

    def __str__(self) -> str:
        return f"{self.source}-{self.interval}-{self.market}"


CASES = [
    # Ends at the frozen "now": the last bucket has just closed.
    Case("hyperliquid", "1m", "2026-03-30T21:00:00Z", "2026-03-31T00:00:00Z"),
    Case("hydromancer", "1m", "2026-03-29T00:00:00Z", "2026-03-29T03:00:00Z"),
    # 10,800 buckets: three windows; the buckets on both sides of each window edge
    # (08:27 + 5000 s and + 10000 s) traded, so a hole or a duplicate there shows.
    Case("hydromancer", "1s", "2026-03-30T08:27:00Z", "2026-03-30T11:27:00Z"),
    # Two workers, each committing its own shard of the range.
    Case("dwellir", "1s", "2026-03-30T06:00:00Z", "2026-03-30T06:20:00Z",
         flags=("--workers", "2")),
    # A HIP-3 market, typed in the wrong case: ':' travels URL-encoded.
    Case("dwellir", "1m", "2026-03-30T00:00:00Z", "2026-03-30T03:00:00Z", "xyz:XYZ100",
         "XYZ:xyz100"),
    # Hydromancer has no quote volume before 2024: q is null there, present after.
    Case("hydromancer", "1h", "2023-12-31T00:00:00Z", "2024-01-01T06:00:00Z", "kPEPE",
         "kpepe"),
]


def window_edges(case: Case) -> list[int]:
    """Open times where one snapshot window ends and the next begins."""
    if case.source == "dwellir":
        return []
    size = SNAPSHOT_WINDOW * case.step
    return list(range(case.span.start + size, case.span.end, size))


def part_files(series: Series) -> dict[str, object]:
    """Each part and its version: the file's mtime on disk, the object's ETag and time
    on a store (a part written again is a new version)."""
    return {str(path): (path.stat().st_mtime_ns if isinstance(path, Path)
                        else series.store.stat(path))
            for _, path in series.parts()}


def assert_lands_exactly_the_model(series: Series, case: Case, span: Span) -> None:
    raw = raw_open_times(series)
    assert len(raw) == len(set(raw)), "a candle was written twice"
    assert lake_rows(series) == case.expected(span)
    assert_single_kind(series, case.source, case.interval, case.market)
    assert series.done() == RangeSet([span])
    assert series.gaps() == []
    assert_parts_disjoint(series)


def assert_snapshot_windows(series: Series, case: Case) -> None:
    spans = [span for span, _ in series.parts()]
    assert len(spans) == -(-case.buckets // SNAPSHOT_WINDOW)
    assert all(len(span) // case.step <= SNAPSHOT_WINDOW for span in spans)
    raw = raw_open_times(series)
    traded = {row[0] for row in case.expected()}
    for edge in window_edges(case):
        assert {edge - case.step, edge} <= traded, "the range must trade at its window edges"
        assert raw.count(edge - case.step) == 1 and raw.count(edge) == 1, edge


@pytest.mark.parametrize("case", CASES, ids=str)
def test_extraction_lands_the_model_exactly_once(emulator: Emulator, tmp_path: Path,
                                                 case: Case) -> None:
    lake = tmp_path / "lake"
    expected = case.expected()
    if case.interval == "1s":
        assert len(expected) < case.buckets // 2, "1s candles are sparse: most buckets empty"
    if case.source == "hydromancer" and case.span.start < HYDROMANCER_QUOTE_FROM_MS:
        assert {row[6] is None for row in expected} == {True, False}, "q null, then not"

    summary = case.extract(emulator, lake)

    assert (summary["buckets"], summary["planned"]) == (case.buckets, case.buckets)
    assert summary["fetched"] == len(expected)
    assert summary["empty"] == case.buckets - len(expected)
    assert (summary["failed"], summary["gaps"]) == (0, 0)
    series = case.series(lake)
    assert_lands_exactly_the_model(series, case, case.span)
    if case.source != "dwellir":
        assert_snapshot_windows(series, case)
    if case.flags[:1] == ("--workers",):
        assert len({path.parent.name for _, path in series.parts()}) == int(case.flags[1])

    parts = part_files(series)
    emulator.reset_stats()
    again = case.extract(emulator, lake)
    assert (again["planned"], again["requests"]) == (0, 0)
    assert request_counts(emulator.stats()) == {}, "a finished job made a request"
    assert part_files(series) == parts
    assert_lands_exactly_the_model(series, case, case.span)
    for path in all_files(lake):
        content = path.read_bytes()
        assert DWELLIR_KEY.encode() not in content and HYDROMANCER_KEY.encode() not in content


OVERLAPS = [
    (Case("dwellir", "1s", "2026-03-30T07:00:00Z", "2026-03-30T07:05:00Z"),
     Span(ms("2026-03-30T06:58:00Z"), ms("2026-03-30T07:07:00Z"))),
    (Case("hydromancer", "1m", "2026-03-28T00:00:00Z", "2026-03-28T02:00:00Z"),
     Span(ms("2026-03-27T22:00:00Z"), ms("2026-03-28T04:00:00Z"))),
    (Case("hyperliquid", "1m", "2026-03-30T12:00:00Z", "2026-03-30T14:00:00Z"),
     Span(ms("2026-03-30T10:00:00Z"), ms("2026-03-30T16:00:00Z"))),
]


@pytest.mark.parametrize(("case", "wider"), OVERLAPS, ids=[str(c) for c, _ in OVERLAPS])
def test_a_wider_job_fetches_only_what_is_missing(emulator: Emulator, lake_root: Location,
                                                  case: Case, wider: Span) -> None:
    lake = lake_root
    case.extract(emulator, lake)
    series = case.series(lake)
    first_parts = part_files(series)
    missing = RangeSet([wider]).subtract(RangeSet([case.span]))
    missing_buckets = missing.total() // case.step
    assert len(list(missing)) == 2

    emulator.reset_stats()
    summary = case.extract(emulator, lake, wider)

    assert summary["buckets"] == len(wider) // case.step
    assert summary["planned"] == missing_buckets
    counts = request_counts(emulator.stats())
    assert set(counts) == {f"{ENDPOINT[case.source]}_requests"}, counts
    if case.source == "dwellir":
        # the summary counts the DWSESSION warm-up requests too: it matches the server
        assert summary["requests"] == counts["dwellir_requests"]
        assert 0 <= counts["dwellir_requests"] - missing_buckets <= DWELLIR_WARMUP_MAX
    else:  # a window on each side: one request when both fit in one and the settled
        # candles between them weigh less than a request of its own (a flat-priced
        # Hydromancer request always), else one each
        between = len(case.span) // case.step
        shared = len(wider) // case.step <= 5000 and (
            case.source == "hydromancer" or between // CANDLES_PER_WEIGHT < INFO_BASE_WEIGHT)
        assert summary["requests"] == counts[f"{ENDPOINT[case.source]}_requests"] == (
            1 if shared else 2)
    now = part_files(series)
    for path, version in first_parts.items():
        assert now[path] == version, "a part of the first job was rewritten"
    assert_lands_exactly_the_model(series, case, wider)


def test_hyperliquid_serves_back_to_the_horizon_it_names(emulator: Emulator,
                                                         tmp_path: Path) -> None:
    """The earliest start validation allows (the open bucket and 4999 before it) is the
    oldest candle Hyperliquid still has: it lands, nothing before it is asked for."""
    earliest = NOW_MS - (SNAPSHOT_WINDOW - 1) * FIXED_STEP_MS["1m"]
    case = Case("hyperliquid", "1m", iso(earliest), iso(earliest + 30 * FIXED_STEP_MS["1m"]))
    assert case.expected()[0][0] == earliest, "the model traded in the oldest bucket"

    summary = case.extract(emulator, tmp_path / "lake")

    assert (summary["planned"], summary["fetched"]) == (30, len(case.expected()))
    assert_lands_exactly_the_model(case.series(tmp_path / "lake"), case, case.span)
