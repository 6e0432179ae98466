"""Checkpoints: what is done and missing is computed from part-file names and the gap
ledger; a commit writes ledger entries, then the part, then clears what it fetched —
so a crash between steps only makes the next run fetch something again."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.schemas.candles import CandleRow, candle_table
from tests.conftest import on_disk

S = 1000  # one 1s bucket, in ms
JOB = Span(0, 100 * S)


def spans(*pairs: tuple[int, int]) -> RangeSet:
    """Spans given in seconds."""
    return RangeSet(Span(a * S, b * S) for a, b in pairs)


def row(second: int) -> CandleRow:
    t = second * S
    return CandleRow(t, t + S - 1, 1.0, 2.0, 0.5, 1.5, 3.0, 4.5, 2, True, 0)


def table(*seconds: int) -> pa.Table:
    return candle_table("BTC", "1s", "dwellir", [row(s) for s in seconds])


@pytest.fixture
def series(tmp_path: Path) -> Series:
    return Series(LakePaths(tmp_path), SeriesKey("candles", "dwellir", "BTC", "1s"))


def writer(series: Series, shard: int = 0, job: Span = JOB) -> ShardWriter:
    return ShardWriter(series, series.job_folder(job) / f"shard-{shard:03d}")


def failure(start: int, end: int, reason: str = "http 500") -> Failure:
    return Failure(Span(start * S, end * S), reason)


def gap_spans(series: Series) -> RangeSet:
    return RangeSet(g.span for g in series.gaps())


def test_a_commit_is_a_part_named_for_its_span(series: Series) -> None:
    part = writer(series).commit(Span(0, 10 * S), table(1, 4), [])
    assert part.name == f"part-0-{10 * S}.parquet"
    assert series.parts() == [(Span(0, 10 * S), part)]
    assert series.covered() == series.done() == spans((0, 10))
    assert series.missing(Span(0, 20 * S)) == spans((10, 20))


def test_a_failure_is_in_the_ledger_and_not_done(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(1), [failure(3, 5)])

    (gap,) = series.gaps()
    assert gap.span == Span(3 * S, 5 * S)
    assert gap.info["reason"] == "http 500"
    assert gap.info["runs"] == 1
    assert series.covered() == spans((0, 10))
    assert series.done() == spans((0, 3), (5, 10))
    assert series.missing(Span(0, 10 * S)) == spans((3, 5))


def test_failing_again_counts_the_runs(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(3, 5)])
    writer(series).commit(Span(3 * S, 5 * S), table(), [failure(3, 5, "timeout")])

    (gap,) = series.gaps()
    assert (gap.span, gap.info["runs"], gap.info["reason"]) == (Span(3 * S, 5 * S), 2,
                                                                   "timeout")
    assert gap.info["first_failed_at"] <= gap.info["last_failed_at"]
    assert series.missing(Span(0, 10 * S)) == spans((3, 5))


def test_a_later_commit_of_the_span_clears_the_ledger(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(1), [failure(3, 5)])
    writer(series, shard=1).commit(Span(3 * S, 5 * S), table(4), [])

    assert series.gaps() == []
    assert series.done() == spans((0, 10))
    assert series.missing(Span(0, 10 * S)) == RangeSet()


def test_a_partial_commit_leaves_the_remainder_in_the_ledger(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(3, 5, "truncated body")])
    writer(series, shard=1).commit(Span(4 * S, 10 * S), table(4), [])

    (gap,) = series.gaps()
    assert gap.span == Span(3 * S, 4 * S)
    assert gap.info["reason"] == "truncated body"
    assert (gap.info["start"], gap.info["end"]) == (3 * S, 4 * S)
    assert series.missing(Span(0, 10 * S)) == spans((3, 4))


def test_a_commit_inside_a_gap_leaves_both_sides(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(2, 8)])
    writer(series, shard=1).commit(Span(4 * S, 6 * S), table(5), [])

    assert gap_spans(series) == spans((2, 4), (6, 8))
    assert series.done() == spans((0, 2), (4, 6), (8, 10))


def test_a_commit_elsewhere_leaves_the_gap_alone(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(3, 5)])
    writer(series).commit(Span(10 * S, 20 * S), table(12), [])

    assert gap_spans(series) == spans((3, 5))
    assert series.done() == spans((0, 3), (5, 20))


def test_a_crash_before_the_part_is_written_leaves_the_span_missing(
        series: Series, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: object, **__: object) -> None:
        raise OSError("killed")

    monkeypatch.setattr(series.store, "put_parquet", crash)
    with pytest.raises(OSError, match="killed"):
        writer(series).commit(Span(0, 10 * S), table(1), [failure(3, 5)])

    assert gap_spans(series) == spans((3, 5)), "step 1, the ledger, was done"
    assert series.parts() == []
    assert series.missing(Span(0, 10 * S)) == spans((0, 10))


def test_a_crash_before_the_ledger_is_cleared_only_refetches(
        series: Series, monkeypatch: pytest.MonkeyPatch) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(3, 5)])

    def crash(_: object) -> None:
        raise OSError("killed")

    monkeypatch.setattr(series.store, "delete", crash)
    with pytest.raises(OSError, match="killed"):
        writer(series, shard=1).commit(Span(3 * S, 5 * S), table(4), [])

    assert len(series.parts()) == 2, "step 2, the part, was done"
    assert series.missing(Span(0, 10 * S)) == spans((3, 5)), "so the gap is fetched again"


def test_missing_counts_parts_of_every_job_and_compacted_coverage(series: Series) -> None:
    writer(series, job=Span(0, 50 * S)).commit(Span(0, 10 * S), table(), [])
    writer(series, shard=3, job=Span(20 * S, 30 * S)).commit(Span(20 * S, 30 * S), table(),
                                                            [failure(25, 26)])
    on_disk(series.coverage_folder).mkdir(parents=True)
    (on_disk(series.coverage_folder) / f"covered-{40 * S}-{45 * S}").touch()
    (on_disk(series.coverage_folder) / "not-a-coverage-file").touch()

    assert series.compacted() == spans((40, 45))
    assert series.missing(Span(0, 50 * S)) == spans((10, 20), (25, 26), (30, 40), (45, 50))
    assert series.missing(Span(20 * S, 25 * S)) == RangeSet()
    assert series.missing(Span(60 * S, 70 * S)) == spans((60, 70))


def test_temporaries_and_strangers_are_not_parts(series: Series) -> None:
    part = writer(series).commit(Span(0, 10 * S), table(), [])
    (on_disk(part.parent) / f".tmp-0123abcd-part-{10 * S}-{20 * S}.parquet").write_bytes(b"half")
    (on_disk(part.parent) / f"part-{20 * S}-{30 * S}.parquet.bak").write_bytes(b"")
    (on_disk(part.parent) / "part-x-y.parquet").write_bytes(b"")

    assert [span for span, _ in series.parts()] == [Span(0, 10 * S)]
    assert series.missing(Span(0, 30 * S)) == spans((10, 30))


def test_a_writer_under_a_revoked_grant_commits_nothing(tmp_path: Path) -> None:
    from hyperlake.lake.lock import GrantRevoked

    paths = LakePaths(tmp_path)
    with paths.writer_lock() as lock:
        granted = Series(LakePaths(tmp_path, lock.grant()),
                         SeriesKey("candles", "dwellir", "BTC", "1s"))
        writer(granted).commit(Span(0, 2 * S), table(0, 1), [])
    with paths.writer_lock(), pytest.raises(GrantRevoked):  # the next run
        writer(granted).commit(Span(2 * S, 4 * S), table(2, 3), [failure(3, 4)])
    assert granted.covered() == spans((0, 2))
    assert not gap_spans(granted), "a revoked writer wrote its ledger entry"


def test_ledger_entries_are_split_at_cuts_keeping_their_information(series: Series) -> None:
    writer(series).commit(Span(0, 10 * S), table(), [failure(2, 8, "timeout")])
    series.ledger.split_at([5 * S, 7 * S, 9 * S, 2 * S])
    entries = series.ledger.entries()
    assert [(g.span.start // S, g.span.end // S) for g in entries] == [(2, 5), (5, 7), (7, 8)]
    assert {g.info["reason"] for g in entries} == {"timeout"}
    writer(series, job=Span(5 * S, 10 * S)).commit(Span(5 * S, 7 * S), table(5), [])
    assert gap_spans(series) == spans((2, 5), (7, 8))
