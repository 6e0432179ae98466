"""``hyperlake verify`` on small lakes built file by file: each finding, its weight
(violation → exit 1, warning or info → exit 0), the key it names, the JSON shape.

Lakes are made the way the pipelines make them (``ShardWriter`` commits, then
``run_compact``), then damaged in place with pyarrow, or written by hand (coverage
markers, ledger files, partitions) where the test is about the file layout itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyperlake.cli import main
from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.ledger import Failure
from hyperlake.lake.paths import LAKE_FILE, LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span, buckets_in
from hyperlake.lake.store import Location
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.schemas.candles import CandleRow, candle_table
from hyperlake.schemas.funding import FundingRow, funding_table
from hyperlake.schemas.intervals import HOUR_MS, MINUTE_MS, next_bucket
from hyperlake.schemas.times import parse_instant
from hyperlake.schemas.vocabulary import Dataset
from hyperlake.verify.buckets import opens_in
from tests.conftest import on_disk

FETCHED = parse_instant("2026-03-31T00:00:00Z", "test")


def ms(text: str) -> int:
    return parse_instant(text, "test")


D0 = ms("2026-03-30T00:00:00Z")


# -- building lakes ---------------------------------------------------------------------


def candle_rows(start: int, end: int, interval: str = "1m",
                skip: tuple[int, ...] = ()) -> list[CandleRow]:
    """A sane closed candle for every bucket of [start, end) but ``skip``."""
    rows: list[CandleRow] = []
    t = start
    while t < end:
        if t not in skip:
            price = 100.0 + (t // MINUTE_MS) % 7
            rows.append(CandleRow(t, next_bucket(t, interval) - 1, price, price + 2, price - 1,
                                  price + 1, 3.0, 300.0, 4, True, FETCHED))
        t = next_bucket(t, interval)
    return rows


def series(lake: Location, dataset: Dataset, market: str, interval: str,
           source: str = "dwellir") -> Series:
    return Series(LakePaths(lake), SeriesKey(dataset, source, market, interval))


def commit(s: Series, span: Span, table: pa.Table, failures: tuple[Span, ...] = ()) -> None:
    writer = ShardWriter(s, s.job_folder(span) / "shard-0")
    writer.commit(span, table, [Failure(f, "http 500") for f in failures])


def commit_candles(lake: Location, start: int, end: int, *, market: str = "BTC",
                   interval: str = "1m", source: str = "dwellir", skip: tuple[int, ...] = (),
                   failures: tuple[Span, ...] = ()) -> None:
    rows = candle_rows(start, end, interval, skip + tuple(f.start for f in failures))
    commit(series(lake, "candles", market, interval, source), Span(start, end),
           candle_table(market, interval, source, rows), failures)


def compact(lake: Location) -> None:
    run_compact(CompactJob(lake=lake))


def clean_lake(lake: Location) -> Location:
    """BTC 1m over two hours of 2026-03-30, compacted."""
    commit_candles(lake, D0, D0 + 2 * HOUR_MS)
    compact(lake)
    return lake


def partition_file(lake: Location, dataset: Dataset, market: str, interval: str,
                   date: str) -> Path:
    return on_disk(LakePaths(lake).partition(dataset, market, interval, date) / LAKE_FILE)


def rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def set_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index),
                            pa.array(values, table.schema.field(index).type))


def hourly_funding(start: int, end: int, skip: tuple[int, ...] = (),
                   late: dict[int, int] | None = None) -> list[FundingRow]:
    """One funding row per funding hour (8-hourly before 2023-06-08), 100 ms after it;
    ``late`` moves chosen hours' rows further into the hour."""
    rows: list[FundingRow] = []
    for hour in range(start, end, HOUR_MS):
        if hour in skip or (hour < ms("2023-06-08T00:00:00Z") and hour % (8 * HOUR_MS)):
            continue
        time = hour + (late or {}).get(hour, 100)
        rows.append(FundingRow(time, hour, 0.0000125, 0.0001, FETCHED))
    return rows


def commit_funding(lake: Location, start: int, end: int, rows: list[FundingRow],
                   market: str = "BTC") -> None:
    commit(series(lake, "funding", market, "1h", "hyperliquid"), Span(start, end),
           funding_table(market, "hyperliquid", rows))


# -- running the command ----------------------------------------------------------------


def verify(capsys: pytest.CaptureFixture[str], lake: Location,
           *args: str) -> tuple[int, str, str]:
    code = main(["verify", "--lake", str(lake), *args])
    out, err = capsys.readouterr()
    return code, out, err


def verify_json(capsys: pytest.CaptureFixture[str], lake: Location,
                *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = verify(capsys, lake, "--json", *args)
    assert err == ""
    assert len(out.strip().splitlines()) == 1, "one JSON object on one line"
    report: dict[str, Any] = orjson.loads(out)
    return code, report


def findings(report: dict[str, Any], index: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = report["series"][index]["findings"]
    return found


def counts(report: dict[str, Any], index: int = 0) -> dict[str, int]:
    return {name: f["count"] for name, f in findings(report, index).items() if f["count"]}


# -- a clean lake -----------------------------------------------------------------------


def test_a_clean_lake_passes(lake_root: Location, capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(lake_root)
    code, report = verify_json(capsys, lake)
    assert code == 0
    assert report["ok"] is True and report["violations"] == 0 and report["warnings"] == 0
    [one] = report["series"]
    assert (one["dataset"], one["market"], one["interval"]) == ("candles", "BTC", "1m")
    assert one["rows"] == 120 and one["partitions"] == 1
    assert one["rows_by_source"] == {"dwellir": 120}
    assert one["coverage"] == {"first": "2026-03-30T00:00:00Z", "last": "2026-03-30T01:59:00Z",
                               "buckets": 120, "spans": 1}
    assert one["sources"]["dwellir"]["pending"] == 0
    assert counts(report) == {}
    assert set(findings(report)) >= {"empty", "failed", "holes", "duplicates", "misplaced",
                                     "bad_rows", "uncovered_rows", "pending"}


def test_the_table_names_every_check(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = verify(capsys, clean_lake(tmp_path))
    assert code == 0
    assert "candles BTC 1m: ok (0 violations, 0 warnings)" in out
    assert "2026-03-30T00:00:00Z → 2026-03-30T01:59:00Z, 120 buckets in 1 span" in out
    for label in ("rows sharing a key", "rows failing OHLC sanity", "gap ledger",
                  "never fetched", "confirmed by the source"):
        assert label in out
    assert out.rstrip().endswith(": ok")


def test_a_lake_that_does_not_exist_is_an_error_not_a_clean_bill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(capsys, tmp_path / "nowhere")
    assert code == 2 and out == ""
    assert "does not exist" in err and "nowhere" in err


def test_an_empty_lake_has_nothing_to_verify(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = verify(capsys, tmp_path)
    assert (code, out.strip()) == (0, f"nothing to verify: no candles or funding in "
                                      f"{tmp_path}")
    code, report = verify_json(capsys, tmp_path)
    assert code == 0 and report["series"] == [] and report["message"] == "nothing to verify"


# -- gaps -------------------------------------------------------------------------------


def test_buckets_confirmed_empty_do_not_fail(lake_root: Location,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    quiet = (D0 + 5 * MINUTE_MS, D0 + 6 * MINUTE_MS, D0 + 90 * MINUTE_MS)
    commit_candles(lake_root, D0, D0 + 2 * HOUR_MS, skip=quiet)
    compact(lake_root)
    code, report = verify_json(capsys, lake_root)
    assert code == 0
    assert counts(report) == {"empty": 3}
    assert findings(report)["empty"]["first"] == ["2026-03-30T00:05:00Z",
                                                  "2026-03-30T00:06:00Z",
                                                  "2026-03-30T01:30:00Z"]
    assert findings(report)["empty"]["severity"] == "info"


def test_a_ledger_entry_fails_naming_the_span(lake_root: Location,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    failed = Span(D0 + 10 * MINUTE_MS, D0 + 13 * MINUTE_MS)
    commit_candles(lake_root, D0, D0 + HOUR_MS, failures=(failed,))
    compact(lake_root)
    code, report = verify_json(capsys, lake_root)
    assert code == 1
    assert counts(report) == {"failed": 3}, "failed buckets are not also counted empty"
    failed_finding = findings(report)["failed"]
    assert failed_finding["first"] == ["2026-03-30T00:10:00Z/2026-03-30T00:13:00Z"]
    assert failed_finding["detail"] == {"dwellir": 3}
    assert report["series"][0]["sources"]["dwellir"]["failed"] == 3


def test_a_never_fetched_hole_fails(lake_root: Location,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    commit_candles(lake_root, D0, D0 + HOUR_MS)
    commit_candles(lake_root, D0 + 2 * HOUR_MS, D0 + 3 * HOUR_MS)
    compact(lake_root)
    code, report = verify_json(capsys, lake_root)
    assert code == 1
    assert counts(report) == {"holes": 60}
    assert findings(report)["holes"]["first"] == ["2026-03-30T01:00:00Z/2026-03-30T02:00:00Z"]
    assert report["series"][0]["coverage"]["spans"] == 2


def test_a_hole_filled_by_another_source_is_no_hole(lake_root: Location,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    commit_candles(lake_root, D0, D0 + HOUR_MS)
    commit_candles(lake_root, D0 + HOUR_MS, D0 + 2 * HOUR_MS, source="hydromancer")
    commit_candles(lake_root, D0 + 2 * HOUR_MS, D0 + 3 * HOUR_MS)
    compact(lake_root)
    code, report = verify_json(capsys, lake_root)
    assert code == 0, counts(report)
    one = report["series"][0]
    assert one["coverage"]["buckets"] == 180
    assert one["sources"]["dwellir"]["spans"] == 2
    assert one["rows_by_source"] == {"dwellir": 120, "hydromancer": 60}


def test_hand_written_markers_and_ledger_are_read(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The layout without the pipelines: a partition, coverage markers, a ledger file."""
    paths = LakePaths(tmp_path)
    table = candle_table("kPEPE", "1h", "hyperliquid", candle_rows(D0, D0 + 6 * HOUR_MS, "1h"))
    folder = on_disk(paths.partition("candles", "kPEPE", "1h", "2026-03-30"))
    folder.mkdir(parents=True)
    pq.write_table(table.drop_columns(["market", "interval"]), folder / LAKE_FILE)
    coverage = on_disk(paths.coverage(SeriesKey("candles", "hyperliquid", "kPEPE", "1h")))
    coverage.mkdir(parents=True)
    (coverage / f"covered-{D0}-{D0 + 3 * HOUR_MS}").touch()
    (coverage / f"covered-{D0 + 4 * HOUR_MS}-{D0 + 8 * HOUR_MS}").touch()
    ledger = on_disk(paths.gap_ledger(SeriesKey("candles", "hyperliquid", "kPEPE", "1h")))
    ledger.mkdir(parents=True)
    (ledger / f"gap-{D0 + 7 * HOUR_MS}-{D0 + 8 * HOUR_MS}.json").write_bytes(b"{}")
    code, report = verify_json(capsys, tmp_path, "--market", "kpepe")
    assert code == 1
    assert report["series"][0]["market"] == "kPEPE"
    assert counts(report) == {"holes": 1, "failed": 1, "uncovered_rows": 1, "empty": 1}
    assert findings(report)["holes"]["first"] == ["2026-03-30T03:00:00Z/2026-03-30T04:00:00Z"]
    assert findings(report)["uncovered_rows"]["first"] == ["2026-03-30T03:00:00Z"]


def test_uncompacted_checkpoints_are_pending_not_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_candles(tmp_path, D0, D0 + HOUR_MS)
    compact(tmp_path)
    commit_candles(tmp_path, D0 + HOUR_MS, D0 + 2 * HOUR_MS)
    code, report = verify_json(capsys, tmp_path)
    assert code == 0
    assert counts(report) == {"pending": 60}
    assert report["series"][0]["rows"] == 60


# -- rows -------------------------------------------------------------------------------


def test_an_injected_duplicate_fails_naming_its_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(tmp_path)
    path = partition_file(lake, "candles", "BTC", "1m", "2026-03-30")
    rewrite(path, lambda t: pa.concat_tables([t, t.slice(42, 1)]))
    code, report = verify_json(capsys, lake)
    assert code == 1
    assert counts(report) == {"duplicates": 1}
    assert findings(report)["duplicates"]["first"] == ["2026-03-30T00:42:00Z"]
    _, out, _ = verify(capsys, lake)
    assert "FAIL" in out and "2026-03-30T00:42:00Z" in out


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("l", 1000.0, "l > min(o, c)"),
    ("h", 1.0, "h < max(o, c)"),
    ("v", -1.0, "v < 0"),
    ("n", -3, "n < 0"),
    ("o", float("nan"), "l > min(o, c)"),
    ("t_close", D0 + 7 * MINUTE_MS, "t_close != next bucket - 1"),
])
def test_a_bad_ohlc_row_fails_naming_its_key(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], column: str,
                                             value: Any, reason: str) -> None:
    lake = clean_lake(tmp_path)
    path = partition_file(lake, "candles", "BTC", "1m", "2026-03-30")
    rewrite(path, lambda t: set_value(t, column, 7, value))
    code, report = verify_json(capsys, lake)
    assert code == 1
    assert counts(report) == {"bad_rows": 1}
    assert findings(report)["bad_rows"]["first"] == ["2026-03-30T00:07:00Z"]
    assert reason in findings(report)["bad_rows"]["detail"]


def test_an_off_grid_open_time_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(tmp_path)
    path = partition_file(lake, "candles", "BTC", "1m", "2026-03-30")
    odd = D0 + 200 * MINUTE_MS + 30_000
    rewrite(path, lambda t: set_value(set_value(t, "t", 119, odd), "t_close", 119,
                                      odd + MINUTE_MS - 1))
    code, report = verify_json(capsys, lake)
    assert code == 1
    assert findings(report)["bad_rows"]["detail"] == {"t not on the bucket grid": 1}
    assert findings(report)["uncovered_rows"]["first"] == ["2026-03-30T03:20:30Z"]


def test_a_row_outside_its_date_fails_and_its_twin_is_a_duplicate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_candles(tmp_path, D0 - HOUR_MS, D0 + HOUR_MS)  # two dates
    compact(tmp_path)
    path = partition_file(tmp_path, "candles", "BTC", "1m", "2026-03-29")
    today = pq.read_table(partition_file(tmp_path, "candles", "BTC", "1m", "2026-03-30"))
    rewrite(path, lambda t: pa.concat_tables([t, today.slice(3, 1)]))
    code, report = verify_json(capsys, tmp_path)
    assert code == 1
    assert counts(report) == {"misplaced": 1, "duplicates": 1}
    assert findings(report)["misplaced"]["first"] == ["2026-03-30T00:03:00Z"]
    assert findings(report)["duplicates"]["first"] == ["2026-03-30T00:03:00Z"]
    assert report["series"][0]["partitions"] == 2


def test_an_unreadable_partition_fails(lake_root: Location,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(lake_root)
    paths = LakePaths(lake)
    paths.store.put(paths.partition("candles", "BTC", "1m", "2026-03-30") / LAKE_FILE,
                    b"not parquet")
    code, report = verify_json(capsys, lake)
    assert code == 1
    assert counts(report) == {"unreadable": 1}, "its buckets are not reported empty"
    assert findings(report)["unreadable"]["first"][0].startswith("date=2026-03-30")


def test_a_folder_that_is_no_interval_fails(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(tmp_path)
    stray = on_disk(LakePaths(lake).partition("candles", "BTC", "7m", "2026-03-30"))
    stray.mkdir(parents=True)
    (stray / LAKE_FILE).write_bytes(partition_file(lake, "candles", "BTC", "1m",
                                                   "2026-03-30").read_bytes())
    code, report = verify_json(capsys, lake)
    assert code == 1
    assert [s["interval"] for s in report["series"]] == ["1m", "7m"]
    assert counts(report, 0) == {}
    assert findings(report, 1)["unreadable"]["first"] == ["interval=7m: not an interval"]


# -- funding ----------------------------------------------------------------------------


def test_a_missing_funding_hour_is_a_warning(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    start, end = ms("2026-03-28T20:00:00Z"), ms("2026-03-30T00:00:00Z")
    first_row = ms("2026-03-29T00:00:00Z")  # covered before the first row: not "missing"
    rows = hourly_funding(first_row, end, skip=(ms("2026-03-29T05:00:00Z"),))
    commit_funding(tmp_path, start, end, rows)
    compact(tmp_path)
    code, report = verify_json(capsys, tmp_path, "--dataset", "funding")
    assert code == 0
    assert report["warnings"] == 1
    assert counts(report) == {"missing_hours": 1, "empty": 4}
    assert findings(report)["missing_hours"]["first"] == ["2026-03-29T05:00:00Z"]
    assert findings(report)["missing_hours"]["severity"] == "warning"
    _, out, _ = verify(capsys, tmp_path, "--dataset", "funding")
    assert "funding BTC 1h: ok (0 violations, 1 warning)" in out and "WARN" in out


def test_eight_hourly_funding_before_june_2023_is_on_cadence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start, end = ms("2023-06-06T00:00:00Z"), ms("2023-06-10T00:00:00Z")
    commit_funding(tmp_path, start, end, hourly_funding(start, end))
    compact(tmp_path)
    code, report = verify_json(capsys, tmp_path)
    assert code == 0
    assert counts(report) == {}
    assert report["series"][0]["rows"] == 2 * 3 + 2 * 24


def test_off_hour_funding_rows_are_warnings(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    start, end = ms("2023-05-23T00:00:00Z"), ms("2023-05-24T00:00:00Z")
    late = {ms("2023-05-23T08:00:00Z"): 23 * MINUTE_MS + 53_040}  # as in the real history
    rows = hourly_funding(start, end, late=late)
    rows.append(FundingRow(ms("2023-05-23T13:00:00.050Z"), ms("2023-05-23T13:00:00Z"), 0.0,
                           0.0, FETCHED))
    commit_funding(tmp_path, start, end, rows)
    compact(tmp_path)
    code, report = verify_json(capsys, tmp_path)
    assert code == 0
    assert counts(report) == {"off_hour": 2}
    off = findings(report)["off_hour"]
    assert off["first"] == ["2023-05-23T08:23:53.040Z", "2023-05-23T13:00:00.050Z"]
    assert off["detail"] == {"more than 5 s after the hour": 1,
                             "not on an 8-hour boundary before 2023-06-08": 1}


def test_two_funding_rows_in_one_hour_fail(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    start, end = ms("2026-03-29T00:00:00Z"), ms("2026-03-30T00:00:00Z")
    rows = hourly_funding(start, end)
    rows.append(FundingRow(ms("2026-03-29T10:00:00.900Z"), ms("2026-03-29T10:00:00Z"), 0.0,
                           0.0, FETCHED))
    commit_funding(tmp_path, start, end, rows)
    compact(tmp_path)
    code, report = verify_json(capsys, tmp_path)
    assert code == 1
    assert counts(report) == {"duplicate_hours": 1}
    assert findings(report)["duplicate_hours"]["first"] == ["2026-03-29T10:00:00Z"]


# -- selection and bad input ------------------------------------------------------------


def test_filters_select_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit_candles(tmp_path, D0, D0 + HOUR_MS)
    commit_candles(tmp_path, D0, D0 + HOUR_MS, market="ETH", interval="5m")
    commit_funding(tmp_path, D0, D0 + 4 * HOUR_MS, hourly_funding(D0, D0 + 4 * HOUR_MS))
    compact(tmp_path)
    _, everything = verify_json(capsys, tmp_path)
    assert [(s["dataset"], s["market"], s["interval"]) for s in everything["series"]] == [
        ("candles", "BTC", "1m"), ("candles", "ETH", "5m"), ("funding", "BTC", "1h")]
    _, btc = verify_json(capsys, tmp_path, "--market", "BTC")
    assert [s["dataset"] for s in btc["series"]] == ["candles", "funding"]
    _, five = verify_json(capsys, tmp_path, "--interval", "5m")
    assert [s["market"] for s in five["series"]] == ["ETH"]
    assert five["series"][0]["coverage"]["buckets"] == 12


def test_an_unknown_market_exits_2_listing_the_lake(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(tmp_path)
    code, out, err = verify(capsys, lake, "--market", "DOGE")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "--market 'DOGE': not in the lake" in err and "it has BTC" in err


def test_an_unknown_interval_exits_2_listing_the_lake(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = clean_lake(tmp_path)
    code, _, err = verify(capsys, lake, "--market", "BTC", "--interval", "1M")
    assert code == 2
    assert "--interval '1M': not in the lake" in err and "it has 1m" in err


# -- bucket arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "start", "end", "want"), [
    ("1s", "2026-03-30T00:00:00Z", "2026-03-31T00:00:00Z", 86_400),
    ("1m", "2026-03-30T00:00:30Z", "2026-03-30T00:03:00Z", 2),
    ("1w", "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z", 5),  # Mondays 2, 9, 16, 23, 30
    ("1M", "2026-01-15T00:00:00Z", "2026-04-01T00:00:00Z", 2),
    ("3d", "2026-03-30T00:00:00Z", "2026-03-30T00:00:00Z", 0),
])
def test_bucket_count_matches_the_opens(interval: str, start: str, end: str,
                                        want: int) -> None:
    span = RangeSet([Span(ms(start), ms(end))])
    assert buckets_in(span, interval) == want
    assert len(opens_in(ms(start), ms(end), interval)) == want
