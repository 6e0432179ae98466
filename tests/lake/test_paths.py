"""Partition and checkpoint folder names: injective even on a case-insensitive disk,
URL-decodable back to the exact market and interval."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlake.lake.paths import (
    LakePaths,
    SeriesKey,
    decode_value,
    encode_interval,
    encode_market,
)
from tests.conftest import on_disk

#: Examples are microseconds of work; a loaded CI machine must not fail them on time.
NO_DEADLINE = settings(deadline=None)

Encoder = Callable[[str], str]
#: Any text a name could hold (surrogates cannot be encoded to UTF-8).
names = st.text(st.characters(codec="utf-8"), max_size=12)
#: Names made of what market names are made of, so collisions are likely to be tried.
tickers = st.text(st.sampled_from("aAbBkKmMxXyYzZ:/@%0189._-"), max_size=6)
EXAMPLES = ["BTC", "kPEPE", "KPEPE", "xyz:XYZ100", "XYZ:xyz100", "@107", "HYPE/USDC",
            "PURR/USDC", "1m", "1M", "%41", "A"]


@pytest.mark.parametrize("encode", [encode_market, encode_interval])
@NO_DEADLINE
@given(a=st.one_of(names, tickers), b=st.one_of(names, tickers))
def test_encodings_are_injective_under_case_folding(encode: Encoder, a: str, b: str) -> None:
    if a != b:
        assert encode(a).casefold() != encode(b).casefold()


@pytest.mark.parametrize("encode", [encode_market, encode_interval])
@NO_DEADLINE
@given(value=st.one_of(names, tickers))
def test_encodings_round_trip_through_url_decoding(encode: Encoder, value: str) -> None:
    encoded = encode(value)
    assert unquote(encoded) == value
    assert decode_value(encoded) == value
    assert re.fullmatch(r"[A-Za-z0-9._%-]*", encoded), "a folder name must be plain ASCII"
    assert "/" not in encoded


@NO_DEADLINE
@given(value=st.one_of(names, tickers))
def test_market_folders_hold_no_lowercase_and_interval_folders_no_uppercase(value: str) -> None:
    assert not re.search(r"[a-z]", re.sub(r"%[0-9A-F]{2}", "", encode_market(value)))
    assert not re.search(r"[A-Z]", re.sub(r"%[0-9A-F]{2}", "", encode_interval(value)))


@pytest.mark.parametrize(("market", "folder"), [
    ("BTC", "BTC"), ("kPEPE", "%6BPEPE"), ("xyz:XYZ100", "%78%79%7A%3AXYZ100"),
    ("@107", "%40107"), ("HYPE/USDC", "HYPE%2FUSDC"),
])
def test_market_examples(market: str, folder: str) -> None:
    assert encode_market(market) == folder
    assert unquote(folder) == market


def test_one_minute_and_one_month_never_share_a_folder(tmp_path: Path) -> None:
    assert (encode_interval("1m"), encode_interval("1M")) == ("1m", "1%4D")
    paths = LakePaths(tmp_path)
    minute = paths.checkpoint_series(SeriesKey("candles", "hydromancer", "BTC", "1m"))
    month = paths.checkpoint_series(SeriesKey("candles", "hydromancer", "BTC", "1M"))
    assert str(minute).casefold() != str(month).casefold()
    partition_m = paths.partition("candles", "BTC", "1m", "2026-03-30")
    partition_mo = paths.partition("candles", "BTC", "1M", "2026-03-30")
    assert str(partition_m).casefold() != str(partition_mo).casefold()
    ledger_m = paths.gap_ledger(SeriesKey("candles", "hydromancer", "BTC", "1m"))
    ledger_mo = paths.gap_ledger(SeriesKey("candles", "hydromancer", "BTC", "1M"))
    assert str(ledger_m).casefold() != str(ledger_mo).casefold()


def test_examples_are_pairwise_distinct_when_case_folded() -> None:
    for encode in (encode_market, encode_interval):
        folded = [encode(name).casefold() for name in EXAMPLES]
        assert len(set(folded)) == len(EXAMPLES)


def test_query_engines_decode_the_partition_values(tmp_path: Path) -> None:
    paths = LakePaths(tmp_path)
    wanted = {("xyz:XYZ100", "1M"), ("kPEPE", "1m"), ("KPEPE", "1m"), ("@107", "1h"),
              ("HYPE/USDC", "1m")}
    for market, interval in wanted:
        folder = on_disk(paths.partition("candles", market, interval, "2026-03-30"))
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [1]}), folder / "part-0.parquet")
    root = paths.dataset("candles")

    by_arrow = ds.dataset(root, partitioning="hive").to_table(columns=["market", "interval"])
    relation = duckdb.sql(f"SELECT market, interval FROM read_parquet('{root}/*/*/*/*.parquet',"
                          " hive_partitioning = true)")
    assert relation is not None
    by_duckdb = relation.fetchall()
    by_polars = pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).select(
        "market", "interval").collect().rows()

    assert {(r["market"], r["interval"]) for r in by_arrow.to_pylist()} == wanted
    assert set(by_duckdb) == wanted
    assert set(by_polars) == wanted
