"""One corrupted file never wedges the lake: compaction and extraction move what they
cannot read aside (``_quarantine/``), say so in one line, carry on with the rest, and
claim its coverage no more, so the next run fetches it again; verify names it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hyperlake.cli import main
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LAKE_FILE, LakePaths, SeriesKey
from hyperlake.lake.quarantine import parquet_looks_whole
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.pipelines.runner import ExtractRun
from hyperlake.schemas.intervals import DAY_MS
from tests.conftest import on_disk
from tests.lake.test_compaction import T0, commit, compact, minutes

KEY = SeriesKey("candles", "dwellir", "BTC", "1m")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def two_days(lake: Path) -> tuple[Path, Path]:
    first = commit(lake, "dwellir", Span(T0, T0 + DAY_MS), minutes(T0, T0 + DAY_MS))
    second = commit(lake, "dwellir", Span(T0 + DAY_MS, T0 + 2 * DAY_MS),
                    minutes(T0 + DAY_MS, T0 + 2 * DAY_MS))
    return on_disk(first), on_disk(second)


def test_the_cheap_test_tells_a_whole_file_from_a_truncated_one(tmp_path: Path) -> None:
    part, _ = two_days(tmp_path)
    assert parquet_looks_whole(part) is None
    truncate(part)
    assert "truncated" in (parquet_looks_whole(part) or "")
    (tmp_path / "empty.parquet").write_bytes(b"")
    assert "too short" in (parquet_looks_whole(tmp_path / "empty.parquet") or "")


def test_compaction_quarantines_a_truncated_part_and_compacts_the_rest(tmp_path: Path) -> None:
    broken, _ = two_days(tmp_path)
    truncate(broken)
    stats = compact(tmp_path)
    [moved] = stats.quarantined
    assert moved.original == broken and on_disk(moved.moved_to).exists()
    assert on_disk(moved.moved_to).is_relative_to(tmp_path / "_quarantine")
    series = Series(LakePaths(tmp_path), KEY)
    assert series.compacted() == RangeSet([Span(T0 + DAY_MS, T0 + 2 * DAY_MS)])
    assert series.missing(Span(T0, T0 + 2 * DAY_MS)) == RangeSet([Span(T0, T0 + DAY_MS)])
    day2 = LakePaths(tmp_path).partition("candles", "BTC", "1m", "2026-03-02") / LAKE_FILE
    assert pq.read_metadata(day2).num_rows == 1440
    assert compact(tmp_path).quarantined == []  # nothing left to trip on


def test_compact_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    broken, _ = two_days(tmp_path)
    truncate(broken)
    code, _, err = cli("compact", "--lake", str(tmp_path))
    assert code == 0
    [line] = err.splitlines()
    assert line.startswith("hyperlake compact: quarantined _checkpoints/candles/dwellir/")
    assert "will be fetched again" in line and "Traceback" not in err


def test_a_truncated_partition_is_moved_aside_and_its_day_is_claimed_no_more(
        tmp_path: Path) -> None:
    two_days(tmp_path)
    compact(tmp_path)
    partition = on_disk(LakePaths(tmp_path).partition("candles", "BTC", "1m", "2026-03-01")
                        / LAKE_FILE)
    truncate(partition)
    # half of day 1 is fetched again (by another source, even): compaction merges it
    commit(tmp_path, "hyperliquid", Span(T0, T0 + DAY_MS // 2), minutes(T0, T0 + DAY_MS // 2))
    stats = compact(tmp_path)
    assert [q.original for q in stats.quarantined] == [partition]
    assert pq.read_metadata(partition).num_rows == 720
    dwellir = Series(LakePaths(tmp_path), KEY)
    assert dwellir.missing(Span(T0, T0 + 2 * DAY_MS)) == RangeSet([Span(T0, T0 + DAY_MS)])
    hyperliquid = Series(LakePaths(tmp_path), SeriesKey("candles", "hyperliquid", "BTC", "1m"))
    assert hyperliquid.compacted() == RangeSet([Span(T0, T0 + DAY_MS // 2)])


def test_extraction_planning_quarantines_a_truncated_part(tmp_path: Path) -> None:
    broken, _ = two_days(tmp_path)
    truncate(broken)
    with ExtractRun(tmp_path) as run:
        [work] = run.plan([(KEY, Span(T0, T0 + 2 * DAY_MS))])
    assert work.missing == RangeSet([Span(T0, T0 + DAY_MS)])  # not "already complete"
    assert [q.original for q in run.quarantined] == [broken]
    assert not broken.exists()


def test_verify_names_an_unreadable_checkpoint_part(tmp_path: Path) -> None:
    broken, _ = two_days(tmp_path)
    truncate(broken)
    code, out, _ = cli("verify", "--lake", str(tmp_path))
    assert code == 1
    assert "checkpoint parts that cannot be read" in out
    assert broken.name in out


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path: Path, kind: str) -> None:
    lock = on_disk(LakePaths(tmp_path).lock_file)
    if kind == "directory":
        lock.mkdir(parents=True)
    else:
        lock.parent.parent.mkdir(parents=True, exist_ok=True)
        lock.parent.write_text("a file where _state should be")
    two_days(tmp_path / "other")  # a lake elsewhere, untouched
    code, _, err = cli("compact", "--lake", str(tmp_path))
    assert code == 1
    assert err.count("\n") == 1 and "lock file" in err and "Traceback" not in err
