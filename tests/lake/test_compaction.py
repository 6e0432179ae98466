"""Compaction (``hyperlake.lake.compaction`` through ``run_compact``): the merge rules,
merging into what a partition already holds, idempotence, coverage, odd names.

Checkpoints are made the way extractors make them: ``ShardWriter.commit`` of synthetic
rows into shard folders of job folders, several sources with overlapping spans. The
expected lake is computed by ``winners`` below, a plain-Python model of the contract.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlake.lake.checkpoints import Series, ShardWriter
from hyperlake.lake.compaction import CompactionStats, deduplicate
from hyperlake.lake.paths import LAKE_FILE, LakePaths, SeriesKey
from hyperlake.lake.ranges import RangeSet, Span
from hyperlake.lake.store import Location, relative
from hyperlake.pipelines.compact import CompactJob, discover_series, run_compact
from hyperlake.schemas.candles import CandleRow, candle_table
from hyperlake.schemas.datasets import CANDLES
from hyperlake.schemas.funding import FundingRow, funding_table
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS, next_bucket
from tests.conftest import on_disk

#: 2026-03-01T00:00:00Z
T0 = 1_772_323_200_000
FETCH = T0 + 40 * DAY_MS
LAKE_COLUMNS = ["t", "t_close", "o", "h", "l", "c", "v", "q", "n", "x", "source", "fetched_at"]
FUNDING_COLUMNS = ["time", "funding_hour", "fundingRate", "premium", "source", "fetched_at"]
Sourced = tuple[str, CandleRow]  # (source, row)


# -- making checkpoints ----------------------------------------------------------------

def candle(t: int, price: float = 100.0, *, closed: bool = True, fetched: int = FETCH,
           interval: str = "1m") -> CandleRow:
    return CandleRow(t, next_bucket(t, interval) - 1, price, price + 1.0, price - 1.0,
                     price + 0.5, 2.0, None, 7, closed, fetched)


def minutes(start: int, end: int, price: float = 100.0, *, fetched: int = FETCH,
            closed: bool = True) -> list[CandleRow]:
    return [candle(t, price + (t - start) / MINUTE_MS / 1000, closed=closed, fetched=fetched)
            for t in range(start, end, MINUTE_MS)]


def commit(lake: Location, source: str, span: Span, rows: Sequence[CandleRow], *,
           market: str = "BTC", interval: str = "1m", job: Span | None = None,
           shard: str = "shard-000") -> Location:
    """One checkpoint part, as an extractor's shard commits it."""
    series = Series(LakePaths(lake), SeriesKey("candles", source, market, interval))
    writer = ShardWriter(series, series.job_folder(job or span) / shard)
    return writer.commit(span, candle_table(market, interval, source, list(rows)), [])


def commit_funding(lake: Location, span: Span, rows: Sequence[FundingRow], *,
                   market: str = "BTC") -> Location:
    series = Series(LakePaths(lake), SeriesKey("funding", "hyperliquid", market, "1h"))
    writer = ShardWriter(series, series.job_folder(span) / "coin")
    return writer.commit(span, funding_table(market, "hyperliquid", list(rows)), [])


def funding_rows(start: int, end: int, rate: float, fetched: int) -> list[FundingRow]:
    return [FundingRow(h + 17, h, rate + h / HOUR_MS * 1e-9, 0.0001, fetched)
            for h in range(start, end, HOUR_MS)]


def compact(lake: Location, precedence: tuple[str, ...] = ()) -> CompactionStats:
    stats, _ = run_compact(CompactJob(lake=lake, precedence=precedence))
    return stats


# -- the model and reading the lake ----------------------------------------------------

def winners(rows: Iterable[Sourced], precedence: tuple[str, ...] = ()) -> list[Sourced]:
    """The contract: one row per t; closed beats open, then the preferred source, then
    the later fetch (then the source name, so the choice is total). Sorted by t."""
    rank = {name: i for i, name in enumerate(precedence)}
    best: dict[int, tuple[tuple[bool, int, int, str], Sourced]] = {}
    for source, row in rows:
        order = (not row[9], rank.get(source, len(rank)), -row[10], source)
        if row[0] not in best or order < best[row[0]][0]:
            best[row[0]] = (order, (source, row))
    return [best[t][1] for t in sorted(best)]


def sourced(source: str, rows: Iterable[CandleRow]) -> list[Sourced]:
    return [(source, row) for row in rows]


def as_sourced(table: pa.Table) -> list[Sourced]:
    """Lake rows back into (source, CandleRow), timestamps as epoch ms."""
    ms = {name: table.column(name).cast(pa.int64()).to_pylist()
          for name in ("t", "t_close", "fetched_at")}
    cols = {name: table.column(name).to_pylist() for name in ("o", "h", "l", "c", "v", "q",
                                                               "n", "x", "source")}
    return [(cols["source"][i], CandleRow(ms["t"][i], ms["t_close"][i], cols["o"][i],
                                          cols["h"][i], cols["l"][i], cols["c"][i],
                                          cols["v"][i], cols["q"][i], cols["n"][i],
                                          cols["x"][i], ms["fetched_at"][i]))
            for i in range(table.num_rows)]


def partition_files(lake: Location, dataset: str = "candles") -> list[Location]:
    paths = LakePaths(lake)
    return paths.store.files(paths.root / dataset, f"market=*/interval=*/date=*/{LAKE_FILE}")


def read_file(lake: Location, file: Location) -> pa.Table:
    return pq.read_table(LakePaths(lake).store.parquet(file).source)


def lake_rows(lake: Location, market: str = "BTC", interval: str = "1m") -> list[Sourced]:
    """The rows of one (market, interval), file by file in date order (as stored)."""
    paths = LakePaths(lake)
    folder = paths.partition("candles", market, interval, "x").parent
    out: list[Sourced] = []
    for path in paths.store.files(folder, f"date=*/{LAKE_FILE}"):
        out += as_sourced(read_file(lake, path))
    return out


def tree_digest(root: Location) -> dict[str, tuple[str, object]]:
    """Relative path → (sha256, identity) of every file under ``root``: the inode on
    disk (a replaced file is a new inode), the ETag on a store."""
    if isinstance(root, Path):
        return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                           p.stat().st_ino)
                for p in sorted(root.rglob("*")) if p.is_file()}
    store = LakePaths(root).store
    found: dict[str, tuple[str, object]] = {}
    for depth in range(1, 6):
        for p in store.files(root, "/".join(["*"] * depth)):
            entry = store.stat(p)
            found[relative(p, root)] = (hashlib.sha256(store.read(p)).hexdigest(),
                                        entry.version if entry else None)
    return found


def checkpoint_parts(lake: Location) -> list[Location]:
    paths = LakePaths(lake)
    return paths.store.files(paths.root / "_checkpoints", "*/*/*/*/*/*/part-*.parquet")


# -- merge rules -----------------------------------------------------------------------

def test_one_row_per_key_sorted_by_t_with_each_rows_source(lake_root: Location) -> None:
    start = T0 + DAY_MS - 2 * HOUR_MS  # the data crosses midnight: two partitions
    job = Span(start, start + 3 * HOUR_MS)
    dwellir_a = minutes(start, start + 90 * MINUTE_MS, 100.0, fetched=FETCH + 1000)
    dwellir_b = minutes(start + 90 * MINUTE_MS, job.end, 100.0, fetched=FETCH + 1000)
    hydro = minutes(start + HOUR_MS, start + 4 * HOUR_MS, 200.0, fetched=FETCH + 2000)
    liquid = minutes(start + 150 * MINUTE_MS, start + 5 * HOUR_MS, 300.0, fetched=FETCH)
    # rows in a part need not be sorted: commit some in reverse order
    commit(lake_root, "dwellir", Span(start, start + 90 * MINUTE_MS), dwellir_a[::-1], job=job)
    commit(lake_root, "dwellir", Span(start + 90 * MINUTE_MS, job.end), dwellir_b, job=job,
           shard="shard-001")
    commit(lake_root, "hydromancer", Span(start + HOUR_MS, start + 4 * HOUR_MS), hydro[::-1])
    commit(lake_root, "hyperliquid", Span(start + 150 * MINUTE_MS, start + 5 * HOUR_MS), liquid)

    stats = compact(lake_root)

    got = lake_rows(lake_root)
    everything = sourced("dwellir", dwellir_a + dwellir_b) + sourced("hydromancer", hydro) \
        + sourced("hyperliquid", liquid)
    assert got == winners(everything)
    keys = [row[0] for _, row in got]
    assert keys == sorted(set(keys)) and len(keys) == 5 * 60
    assert {source for source, _ in got} == {"dwellir", "hydromancer", "hyperliquid"}
    # each date's file holds exactly that date's keys, sorted
    files = partition_files(lake_root)
    assert [p.parent.name for p in files] == ["date=2026-03-01", "date=2026-03-02"]
    for day, path in enumerate(files):
        t = [row[0] for _, row in as_sourced(read_file(lake_root, path))]
        assert t == sorted(t) and all(T0 + day * DAY_MS <= k < T0 + (day + 1) * DAY_MS
                                      for k in t)
    assert stats.partitions_written == 2 and stats.parts_consumed == 4
    assert checkpoint_parts(lake_root) == []


@pytest.mark.parametrize("precedence", [(), ("hyperliquid", "hydromancer", "dwellir")])
@pytest.mark.parametrize("order", ["same run", "closed first", "open first"])
def test_a_closed_candle_beats_an_open_one_whatever_the_fetch_time(
        tmp_path: Path, order: str, precedence: tuple[str, ...]) -> None:
    t = T0 + 5 * MINUTE_MS
    closed = candle(t, 100.0, closed=True, fetched=FETCH)
    is_open = candle(t, 999.0, closed=False, fetched=FETCH + 10 * HOUR_MS)  # fetched later
    span = Span(t, t + MINUTE_MS)
    first, second = (("dwellir", closed), ("hyperliquid", is_open))
    if order == "open first":
        first, second = second, first
    commit(tmp_path, first[0], span, [first[1]])
    if order != "same run":
        compact(tmp_path, precedence)
    commit(tmp_path, second[0], span, [second[1]])
    compact(tmp_path, precedence)
    assert lake_rows(tmp_path) == [("dwellir", closed)]


@pytest.mark.parametrize("later", ["dwellir", "hydromancer"])
@pytest.mark.parametrize("together", [True, False])
def test_the_later_fetch_beats_an_earlier_one(tmp_path: Path, later: str,
                                              together: bool) -> None:
    earlier = "hydromancer" if later == "dwellir" else "dwellir"
    span = Span(T0, T0 + 10 * MINUTE_MS)
    new = minutes(span.start, span.end, 200.0, fetched=FETCH + 1)
    old = minutes(span.start, span.end, 100.0, fetched=FETCH)
    commit(tmp_path, later, span, new)
    if not together:
        compact(tmp_path)
    commit(tmp_path, earlier, span, old)
    compact(tmp_path)
    assert lake_rows(tmp_path) == sourced(later, new)


def test_precedence_beats_fetch_time_but_not_the_closed_flag(tmp_path: Path) -> None:
    span = Span(T0, T0 + 10 * MINUTE_MS)
    dwellir = minutes(span.start, span.end, 100.0, fetched=FETCH)
    hydro = minutes(span.start, span.end, 200.0, fetched=FETCH + HOUR_MS)
    liquid = minutes(span.start, span.end, 300.0, fetched=FETCH + 2 * HOUR_MS)
    # the one candle dwellir only has open, hydromancer closed: closed still wins
    dwellir[3] = candle(dwellir[3][0], 100.0, closed=False, fetched=FETCH)
    for name, rows in (("dwellir", dwellir), ("hydromancer", hydro), ("hyperliquid", liquid)):
        commit(tmp_path, name, span, rows)
    saved = tmp_path.parent / f"{tmp_path.name}-saved"
    shutil.copytree(tmp_path / "_checkpoints", saved)
    everything = sourced("dwellir", dwellir) + sourced("hydromancer", hydro) \
        + sourced("hyperliquid", liquid)

    prefer = ("dwellir", "hydromancer", "hyperliquid")
    compact(tmp_path, prefer)
    got = lake_rows(tmp_path)
    assert got == winners(everything, prefer)
    assert [s for s, _ in got] == ["dwellir"] * 3 + ["hydromancer"] + ["dwellir"] * 6

    # without precedence the latest fetch wins; with ("hydromancer",) hydromancer wins
    # over both the later hyperliquid and the unlisted dwellir
    for precedence, expected in (((), "hyperliquid"), (("hydromancer",), "hydromancer")):
        shutil.rmtree(tmp_path / "candles")
        shutil.rmtree(tmp_path / "_state")
        shutil.copytree(saved, tmp_path / "_checkpoints", dirs_exist_ok=True)
        compact(tmp_path, precedence)
        got = lake_rows(tmp_path)
        assert got == winners(everything, precedence)
        assert {s for s, _ in got} == {expected}


def test_lake_files_have_no_market_or_interval_column_but_readers_see_them(
        tmp_path: Path) -> None:
    commit(tmp_path, "dwellir", Span(T0, T0 + DAY_MS + HOUR_MS),
           minutes(T0, T0 + DAY_MS + HOUR_MS), market="ETH")
    commit(tmp_path, "dwellir", Span(T0, T0 + HOUR_MS), minutes(T0, T0 + HOUR_MS))
    compact(tmp_path)
    files = partition_files(tmp_path)
    assert len(files) == 3
    for path in files:
        assert pq.read_schema(path).names == LAKE_COLUMNS

    glob = f"{tmp_path}/candles/*/*/*/*.parquet"
    counts = duckdb.connect().execute(
        f"SELECT market, interval, CAST(date AS VARCHAR), count(*) FROM read_parquet('{glob}',"
        " hive_partitioning=true, hive_types={'market':'VARCHAR','interval':'VARCHAR',"
        "'date':'DATE'}) GROUP BY ALL ORDER BY ALL").fetchall()
    assert counts == [("BTC", "1m", "2026-03-01", 60), ("ETH", "1m", "2026-03-01", 1440),
                      ("ETH", "1m", "2026-03-02", 60)]
    table = ds.dataset(tmp_path / "candles", format="parquet", partitioning="hive").to_table()
    assert sorted(set(zip(table.column("market").to_pylist(),
                          table.column("interval").to_pylist(), strict=True))) == [
        ("BTC", "1m"), ("ETH", "1m")]
    frame = pl.scan_parquet(f"{tmp_path}/candles/**/*.parquet", hive_partitioning=True)
    assert frame.filter(pl.col("market") == "ETH").select(pl.len()).collect().item() == 1500


# -- merging with what a partition already holds ---------------------------------------

def test_merging_new_checkpoints_into_existing_partitions(lake_root: Location) -> None:
    committed: list[Sourced] = []

    def add(source: str, span: Span, rows: list[CandleRow], job: Span | None = None) -> None:
        commit(lake_root, source, span, rows, job=job)
        committed.extend(sourced(source, rows))

    first = minutes(T0, T0 + 3 * DAY_MS, 100.0, fetched=FETCH)
    for day in range(3):
        span = Span(T0 + day * DAY_MS, T0 + (day + 1) * DAY_MS)
        add("dwellir", span, first[day * 1440:(day + 1) * 1440], job=Span(T0, T0 + 3 * DAY_MS))
    compact(lake_root)
    assert lake_rows(lake_root) == winners(committed)
    untouched = lake_root / "candles/market=BTC/interval=1m/date=2026-03-01" / LAKE_FILE
    before = tree_digest(untouched.parent)

    # a later fetch over the end of day 2 and beyond: it replaces, and adds keys
    add("hydromancer", Span(T0 + 2 * DAY_MS - HOUR_MS, T0 + 4 * DAY_MS),
        minutes(T0 + 2 * DAY_MS - HOUR_MS, T0 + 4 * DAY_MS, 200.0, fetched=FETCH + 1))
    # an older fetch of an hour of day 2: it loses
    add("dwellir", Span(T0 + DAY_MS + 10 * HOUR_MS, T0 + DAY_MS + 11 * HOUR_MS),
        minutes(T0 + DAY_MS + 10 * HOUR_MS, T0 + DAY_MS + 11 * HOUR_MS, 50.0,
                fetched=FETCH - 1))
    # an open candle fetched last over a closed one: it loses too
    add("hyperliquid", Span(T0 + 2 * DAY_MS, T0 + 2 * DAY_MS + MINUTE_MS),
        [candle(T0 + 2 * DAY_MS, 7.0, closed=False, fetched=FETCH + DAY_MS)])
    stats = compact(lake_root)

    got = lake_rows(lake_root)
    assert got == winners(committed)
    assert len(got) == 4 * 1440
    assert got[2 * 1440] == ("hydromancer", candle(T0 + 2 * DAY_MS, 200.06, fetched=FETCH + 1))
    assert {s for s, _ in got[1440:2 * 1440]} == {"dwellir", "hydromancer"}
    assert tree_digest(untouched.parent) == before  # no checkpoint touched day 1
    assert stats.partitions_written == 3  # days 2, 3 and 4


# -- idempotence -----------------------------------------------------------------------

def build_mixed_lake(lake: Location) -> None:
    for market in ("BTC", "ETH"):
        commit(lake, "dwellir", Span(T0, T0 + 2 * DAY_MS), minutes(T0, T0 + 2 * DAY_MS),
               market=market)
        commit(lake, "hydromancer", Span(T0 + DAY_MS, T0 + 3 * DAY_MS),
               minutes(T0 + DAY_MS, T0 + 3 * DAY_MS, 200.0, fetched=FETCH + 1), market=market)
        commit(lake, "hyperliquid", Span(T0 + 3 * DAY_MS - MINUTE_MS, T0 + 3 * DAY_MS),
               [candle(T0 + 3 * DAY_MS - MINUTE_MS, 5.0, closed=False, fetched=FETCH + 9)],
               market=market)
        commit_funding(lake, Span(T0, T0 + 3 * DAY_MS),
                       funding_rows(T0, T0 + 3 * DAY_MS, 1e-5, FETCH), market=market)
        commit_funding(lake, Span(T0 + DAY_MS, T0 + 2 * DAY_MS),
                       funding_rows(T0 + DAY_MS, T0 + 2 * DAY_MS, 2e-5, FETCH + 1),
                       market=market)


def data_digest(lake: Location) -> dict[str, tuple[str, object]]:
    return {**{f"candles/{k}": v for k, v in tree_digest(lake / "candles").items()},
            **{f"funding/{k}": v for k, v in tree_digest(lake / "funding").items()}}


def test_compacting_twice_changes_no_byte(lake_root: Location) -> None:
    build_mixed_lake(lake_root)
    compact(lake_root)
    before = data_digest(lake_root)
    assert len(before) == 12  # 2 markets x 3 dates x (candles, funding)
    stats = compact(lake_root)
    assert data_digest(lake_root) == before
    assert stats.partitions_written == 0 and stats.parts_consumed == 0


def test_re_merging_the_same_parts_changes_no_byte(tmp_path: Path) -> None:
    build_mixed_lake(tmp_path)
    aside = tmp_path.parent / f"{tmp_path.name}-aside"
    shutil.copytree(tmp_path / "_checkpoints", aside)
    parts = len(checkpoint_parts(tmp_path))
    compact(tmp_path)
    before = data_digest(tmp_path)
    coverage = tree_digest(tmp_path / "_state/coverage")
    assert checkpoint_parts(tmp_path) == []

    shutil.copytree(aside, tmp_path / "_checkpoints", dirs_exist_ok=True)
    assert len(checkpoint_parts(tmp_path)) == parts
    stats = compact(tmp_path)

    assert data_digest(tmp_path) == before  # same bytes, and no file was even replaced
    assert {k: v[0] for k, v in tree_digest(tmp_path / "_state/coverage").items()} == {
        k: v[0] for k, v in coverage.items()}
    assert stats.partitions_written == 0 and stats.partitions_unchanged == 12
    assert stats.parts_consumed == parts and checkpoint_parts(tmp_path) == []


def test_re_merging_funding_with_a_nan_premium_leaves_the_partition_alone(
        tmp_path: Path) -> None:
    rows = [FundingRow(h + 17, h, 1e-5, float("nan") if h == T0 + 3 * HOUR_MS else 1e-4, FETCH)
            for h in range(T0, T0 + DAY_MS, HOUR_MS)]
    commit_funding(tmp_path, Span(T0, T0 + DAY_MS), rows)
    aside = tmp_path.parent / f"{tmp_path.name}-aside"
    shutil.copytree(tmp_path / "_checkpoints", aside)
    compact(tmp_path)
    before = tree_digest(tmp_path / "funding")
    shutil.copytree(aside, tmp_path / "_checkpoints", dirs_exist_ok=True)
    stats = compact(tmp_path)
    assert {k: v[0] for k, v in tree_digest(tmp_path / "funding").items()} == {
        k: v[0] for k, v in before.items()}  # the bytes are the same either way
    assert (stats.partitions_written, stats.partitions_unchanged) == (0, 1)
    assert tree_digest(tmp_path / "funding") == before  # same inode: not replaced


# -- funding ---------------------------------------------------------------------------

def test_funding_is_keyed_by_time_and_the_later_fetch_wins(lake_root: Location) -> None:
    old = funding_rows(T0, T0 + 2 * DAY_MS, 1e-5, FETCH)
    new = funding_rows(T0 + 20 * HOUR_MS, T0 + 30 * HOUR_MS, 9e-5, FETCH + 1)
    commit_funding(lake_root, Span(T0 + 20 * HOUR_MS, T0 + 30 * HOUR_MS), new[::-1])
    commit_funding(lake_root, Span(T0, T0 + 2 * DAY_MS), old)
    compact(lake_root)
    files = partition_files(lake_root, "funding")
    assert [relative(p, lake_root) for p in files] == [
        f"funding/market=BTC/interval=1h/date=2026-03-0{d}/{LAKE_FILE}" for d in (1, 2)]
    table = pa.concat_tables([read_file(lake_root, p) for p in files])
    assert table.column_names == FUNDING_COLUMNS
    times = table.column("time").cast(pa.int64()).to_pylist()
    assert times == sorted(set(times)) and len(times) == 48
    by_time = dict(zip(times, table.column("fundingRate").to_pylist(), strict=True))
    expected = {row[0]: row[2] for row in old} | {row[0]: row[2] for row in new}
    assert by_time == expected


# -- coverage --------------------------------------------------------------------------

def covered_names(lake: Location, source: str, market: str = "BTC",
                  interval: str = "1m") -> list[str]:
    paths = LakePaths(lake)
    folder = paths.coverage(SeriesKey("candles", source, market, interval))
    return sorted(p.name for p in paths.store.files(folder, "*"))


def test_coverage_markers_state_exactly_the_committed_spans(lake_root: Location) -> None:
    a, b, c = (Span(T0, T0 + HOUR_MS), Span(T0 + HOUR_MS, T0 + 3 * HOUR_MS),
               Span(T0 + 5 * HOUR_MS, T0 + 6 * HOUR_MS))
    for span in (a, b, c):
        commit(lake_root, "dwellir", span, minutes(span.start, span.end))
    empty = Span(T0 + 7 * HOUR_MS, T0 + 8 * HOUR_MS)  # the source confirmed it empty
    commit(lake_root, "dwellir", empty, [])
    series = Series(LakePaths(lake_root), SeriesKey("candles", "dwellir", "BTC", "1m"))
    done = series.done()
    compact(lake_root)
    assert covered_names(lake_root, "dwellir") == sorted(
        f"covered-{s.start}-{s.end}" for s in (Span(a.start, b.end), c, empty))
    assert series.parts() == [] and series.done() == done  # nothing to fetch again
    assert series.compacted() == RangeSet([a, b, c, empty])
    assert len(lake_rows(lake_root)) == 4 * 60

    # a later part adjacent to both markers folds them into one
    commit(lake_root, "dwellir", Span(c.end, empty.start), minutes(c.end, empty.start))
    compact(lake_root)
    assert covered_names(lake_root, "dwellir") == [
        f"covered-{a.start}-{b.end}", f"covered-{c.start}-{empty.end}"]


# -- odd names -------------------------------------------------------------------------

ODD_MARKETS = ("kPEPE", "KPEPE", "xyz:XYZ100", "XYZ:XYZ100", "@107", "BTC")


def assert_distinct_folders(root: Path) -> None:
    """market=… folders, and interval=… folders in each, differ by more than case."""
    markets = [p.name for p in root.iterdir()]
    assert len(markets) == len(ODD_MARKETS)
    assert len({name.casefold() for name in markets}) == len(markets), markets
    for market in root.iterdir():
        intervals = [p.name for p in market.iterdir()]
        assert len({name.casefold() for name in intervals}) == len(intervals) == 2, intervals


def test_odd_market_and_interval_names_get_distinct_folders(tmp_path: Path) -> None:
    month = T0  # 2026-03-01: a 1M candle opens there
    for price, market in enumerate(ODD_MARKETS, start=1):
        commit(tmp_path, "hyperliquid", Span(T0, T0 + HOUR_MS),
               minutes(T0, T0 + HOUR_MS, float(price)), market=market)
        commit(tmp_path, "hyperliquid", Span(month, next_bucket(month, "1M")),
               [candle(month, 1000.0 + price, interval="1M")], market=market, interval="1M")
    paths = LakePaths(tmp_path)
    found = {(s.key.market, s.key.interval) for s in discover_series(paths, "candles")}
    assert found == {(m, i) for m in ODD_MARKETS for i in ("1m", "1M")}
    assert_distinct_folders(tmp_path / "_checkpoints/candles/hyperliquid")
    compact(tmp_path)
    assert_distinct_folders(tmp_path / "candles")
    assert_distinct_folders(tmp_path / "_state/coverage/candles/hyperliquid")
    assert checkpoint_parts(tmp_path) == []

    glob = f"{tmp_path}/candles/*/*/*/*.parquet"
    rows = duckdb.connect().execute(
        f"SELECT market, interval, count(*), min(c) FROM read_parquet('{glob}',"
        " hive_partitioning=true, hive_types={'market':'VARCHAR','interval':'VARCHAR',"
        "'date':'DATE'}) GROUP BY ALL ORDER BY ALL").fetchall()
    expected = []
    for price, market in enumerate(ODD_MARKETS, start=1):
        expected += [(market, "1M", 1, 1000.0 + price + 0.5), (market, "1m", 60, price + 0.5)]
    assert rows == sorted(expected)
    table = ds.dataset(tmp_path / "candles", format="parquet", partitioning="hive").to_table()
    assert set(zip(table.column("market").to_pylist(), table.column("interval").to_pylist(),
                   strict=True)) == {(m, i) for m in ODD_MARKETS for i in ("1m", "1M")}


# -- deduplicate against the model -----------------------------------------------------

SOURCES = ("dwellir", "hydromancer", "hyperliquid")
row_strategy = st.tuples(st.integers(0, 20), st.sampled_from(SOURCES), st.booleans(),
                         st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(st.lists(row_strategy, min_size=1, max_size=60, unique_by=lambda r: (r[0], r[1])),
       st.permutations(SOURCES), st.integers(0, 3), st.randoms(use_true_random=False))
def test_deduplicate_matches_the_model_whatever_the_input_order(
        spec: list[tuple[int, str, bool, int]], order: Sequence[str], listed: int,
        shuffle: random.Random) -> None:
    precedence = tuple(order[:listed])
    rows = [(source, candle(T0 + k * MINUTE_MS, 100.0 + i, closed=closed, fetched=FETCH + f))
            for i, (k, source, closed, f) in enumerate(spec)]
    shuffle.shuffle(rows)
    table = pa.concat_tables([candle_table("BTC", "1m", s, [r]) for s, r in rows])
    table = table.drop_columns(["market", "interval"]).select(LAKE_COLUMNS)
    got = as_sourced(deduplicate(table, CANDLES, precedence))
    assert got == winners(rows, precedence)


def test_a_part_written_while_compaction_runs_is_left_for_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts are listed once: one that appears mid-run (a streamer writes beside
    compaction) is neither merged nor deleted unread; the next compaction takes it."""
    from hyperlake.lake import compaction

    commit(tmp_path, "dwellir", Span(T0, T0 + DAY_MS), minutes(T0, T0 + DAY_MS))
    original = compaction.merge_partition
    late: list[Location] = []

    def merge_and_meanwhile_commit(*args: Any, **kwargs: Any) -> tuple[bool, int]:
        if not late:
            late.append(commit(tmp_path, "dwellir", Span(T0 + DAY_MS, T0 + 2 * DAY_MS),
                               minutes(T0 + DAY_MS, T0 + 2 * DAY_MS), job=Span(0, 1)))
        return original(*args, **kwargs)

    monkeypatch.setattr(compaction, "merge_partition", merge_and_meanwhile_commit)
    first = compact(tmp_path)
    assert first.parts_consumed == 1 and on_disk(late[0]).exists()
    monkeypatch.setattr(compaction, "merge_partition", original)
    second = compact(tmp_path)
    assert second.parts_consumed == 1 and not on_disk(late[0]).exists()
    assert len(partition_files(tmp_path)) == 2
