"""``parse_funding`` and ``funding_table``: the shape of a ``fundingHistory`` row and of
the stored funding columns."""

from __future__ import annotations

import io
import math
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlake.schemas.funding import FUNDING_SCHEMA, FundingRow, funding_table, parse_funding
from hyperlake.schemas.intervals import HOUR_MS
from hyperlake.schemas.records import InvalidRecord
from tests.conftest import load_fixture

FETCHED = 1_774_915_200_123
RECORDED = load_fixture("fundingHistory_BTC_2023_noEndTime_1038rows.json")


def record(**changes: Any) -> dict[str, Any]:
    row = {"coin": "BTC", "fundingRate": "0.0000125", "premium": "-0.00031334",
           "time": 1_689_152_401_669}
    row.update(changes)
    return row


# -- parse_funding --------------------------------------------------------------------------


def test_a_recorded_row_parses_to_time_hour_floats_and_fetch_time() -> None:
    assert parse_funding(record(), "BTC", FETCHED) == (
        1_689_152_401_669, 1_689_152_400_000, 0.0000125, -0.00031334, FETCHED)


def test_every_recorded_row_parses() -> None:
    rows = [parse_funding(r, "BTC", FETCHED) for r in RECORDED]
    assert [r[0] for r in rows] == [r["time"] for r in RECORDED]
    assert [(r[2], r[3]) for r in rows] == [
        (float(r["fundingRate"]), float(r["premium"])) for r in RECORDED]
    # The recording's off-hour event (2023-05-23T08:23:53.040Z) belongs to 08:00.
    assert (1_684_830_233_040, 1_684_828_800_000) in {(r[0], r[1]) for r in rows}


@pytest.mark.parametrize("field", ["premium", "fundingRate"])
def test_nan_is_kept_as_float_nan(field: str) -> None:
    parsed = parse_funding(record(**{field: "NaN"}), "BTC", FETCHED)
    nan, other = (parsed[3], parsed[2]) if field == "premium" else (parsed[2], parsed[3])
    assert isinstance(nan, float) and math.isnan(nan)
    assert not math.isnan(other)


@pytest.mark.parametrize("changes", [
    {"coin": "ETH"},  # another coin's row
    {"coin": "btc"},  # the exchange's spelling only
    {"time": "1689152401669"},
    {"time": 1_689_152_401_669.0},
    {"time": 1.5},
    {"time": True},
    {"time": None},
    {"time": -1},
    {"fundingRate": 0.0000125},  # the API sends decimal strings
    {"premium": None},
    {"fundingRate": "abc"},
    {"premium": ""},
    {"fundingRate": "inf"},
    {"premium": "-Infinity"},
], ids=repr)
def test_a_bad_value_is_an_invalid_record(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord):
        parse_funding(record(**changes), "BTC", FETCHED)


@pytest.mark.parametrize("missing", ["coin", "time", "fundingRate", "premium"])
def test_a_missing_field_is_an_invalid_record_naming_it(missing: str) -> None:
    row = record()
    del row[missing]
    with pytest.raises(InvalidRecord, match=missing):
        parse_funding(row, "BTC", FETCHED)


@pytest.mark.parametrize("value", [None, [], "row", 7, ["BTC", "0.1", "0.1", 1]])
def test_a_row_that_is_not_an_object_is_an_invalid_record(value: Any) -> None:
    with pytest.raises(InvalidRecord):
        parse_funding(value, "BTC", FETCHED)


def test_a_wrong_coin_is_named_in_the_message() -> None:
    with pytest.raises(InvalidRecord, match=r"'ETH'.*'BTC'"):
        parse_funding(record(coin="ETH"), "BTC", FETCHED)


def test_hip3_and_prefixed_names_match_exactly() -> None:
    assert parse_funding(record(coin="xyz:XYZ100"), "xyz:XYZ100", FETCHED)[0] > 0
    with pytest.raises(InvalidRecord):
        parse_funding(record(coin="XYZ100"), "xyz:XYZ100", FETCHED)


@given(st.integers(min_value=0, max_value=2**53))
def test_funding_hour_floors_time_to_the_hour(time_ms: int) -> None:
    _, hour, _, _, _ = parse_funding(record(time=time_ms), "BTC", FETCHED)
    assert hour % HOUR_MS == 0 and hour <= time_ms < hour + HOUR_MS


@given(st.decimals(allow_nan=False, allow_infinity=False, places=10,
                   min_value=-1, max_value=1))
def test_rates_are_the_decimal_strings_as_floats(value: Any) -> None:
    text = str(value)
    _, _, rate, premium, _ = parse_funding(record(fundingRate=text, premium=text), "BTC",
                                           FETCHED)
    assert rate == premium == float(text)


# -- funding_table --------------------------------------------------------------------------


def test_the_schema_is_the_documented_one() -> None:
    ts = pa.timestamp("ms", tz="UTC")
    assert [(f.name, f.type, f.nullable) for f in FUNDING_SCHEMA] == [
        ("market", pa.string(), False),
        ("time", ts, False),
        ("funding_hour", ts, False),
        ("fundingRate", pa.float64(), False),
        ("premium", pa.float64(), False),
        ("source", pa.string(), False),
        ("fetched_at", ts, False),
    ]


def test_a_table_holds_the_rows_and_survives_parquet() -> None:
    rows: list[FundingRow] = [parse_funding(r, "BTC", FETCHED) for r in RECORDED[:5]]
    rows.append(parse_funding(record(time=RECORDED[5]["time"], premium="NaN"), "BTC", FETCHED))
    table = funding_table("BTC", "hyperliquid", rows)
    assert table.schema == FUNDING_SCHEMA and table.num_rows == 6
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    back = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert back.schema.equals(FUNDING_SCHEMA)
    assert back.column("market").to_pylist() == ["BTC"] * 6
    assert back.column("source").to_pylist() == ["hyperliquid"] * 6
    times = [back.column(c).cast(pa.int64()).to_pylist()
             for c in ("time", "funding_hour", "fetched_at")]
    rates, premiums = back.column("fundingRate").to_pylist(), back.column("premium").to_pylist()
    assert list(zip(times[0], times[1], rates, times[2], strict=True)) == [
        (r[0], r[1], r[2], r[4]) for r in rows]
    assert premiums[:5] == [r[3] for r in rows[:5]]
    assert math.isnan(premiums[5]) and back.column("premium").null_count == 0


def test_an_empty_table_has_the_schema() -> None:
    table = funding_table("ETH", "hyperliquid", [])
    assert table.num_rows == 0 and table.schema == FUNDING_SCHEMA
