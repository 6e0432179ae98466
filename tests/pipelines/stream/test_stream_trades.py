"""Parsing WebSocket frames: the recorded real frames, the greeting, malformed frames,
and the exactness of prices and sizes (the float a decimal string is, the integer
units a size is)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlake.pipelines.stream.trades import (
    FLOAT_SIZE_LIMIT,
    GREETING,
    PLAIN_SUM_LIMIT,
    SIZE_SCALE,
    CandleUpdate,
    Greeting,
    MalformedFrame,
    OtherChannel,
    Pong,
    ServerError,
    SubscriptionAck,
    Trade,
    TradeBatch,
    exact_units,
    parse_frame,
    size_units,
)
from hyperlake.schemas.records import InvalidRecord

pytestmark = pytest.mark.usefixtures("frame_reader")  # conftest: both readers

FIXTURE = Path(__file__).parents[2] / "fixtures" / "ws_messages_real.jsonl"


def recorded_frames() -> list[str]:
    lines = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    return [line["raw"] for line in lines if line["direction"] == "server->client"]


def trade(**fields: Any) -> dict[str, Any]:
    base = {"coin": "BTC", "side": "A", "px": "84143.0", "sz": "0.00036",
            "time": 1790232216193, "hash": "0x7a", "tid": 1045359869404765,
            "users": ["0x9a", "0x82"]}
    return base | fields


def frame(*trades: dict[str, Any]) -> str:
    return orjson.dumps({"channel": "trades", "data": list(trades)}).decode()


def test_every_recorded_server_frame_parses_to_its_kind() -> None:
    kinds = [type(parse_frame(raw)).__name__ for raw in recorded_frames()]
    assert kinds.count("TradeBatch") == 2
    assert kinds.count("SubscriptionAck") == 8
    assert kinds.count("CandleUpdate") == 2
    assert kinds.count("Pong") == 1
    assert kinds.count("ServerError") == 2
    assert set(kinds) <= {"TradeBatch", "SubscriptionAck", "CandleUpdate", "Pong",
                          "ServerError", "OtherChannel"}


def test_recorded_trades_frame_becomes_columns() -> None:
    raw = next(r for r in recorded_frames() if '"coin":"BTC","side"' in r)
    batch = parse_frame(raw)
    assert isinstance(batch, TradeBatch)
    assert batch.coin == "BTC" and len(batch) == 1 and batch.ordered
    assert batch.times == [1790232216193]
    assert batch.tids == [1045359869404765]
    assert batch.px == [84143.0]
    assert batch.sz == [0.00036]
    assert batch.units is None
    record = batch.records[0]
    assert record.side == "A"
    assert record.hash == "0x7ab608dad75f7ce37c2f044516391f02023a00c072529bb51e7eb42d965356ce"


def test_recorded_control_frames_say_what_they_are() -> None:
    frames = [parse_frame(raw) for raw in recorded_frames()]
    acks = [f for f in frames if isinstance(f, SubscriptionAck)]
    assert acks[0] == SubscriptionAck("subscribe", {"type": "trades", "coin": "HYPE"})
    assert any(a.method == "unsubscribe" for a in acks)
    errors = [f for f in frames if isinstance(f, ServerError)]
    assert errors[0].message.startswith("Already subscribed: ")
    candle = next(f for f in frames if isinstance(f, CandleUpdate) and f.interval == "1m")
    assert (candle.t, candle.t_close, candle.coin) == (1790232180000, 1790232239999, "BTC")
    assert (candle.o, candle.h, candle.l, candle.c, candle.v, candle.n) == (
        84143.0, 84144.0, 84143.0, 84143.0, 14.27847, 114)
    assert Pong() in frames
    assert OtherChannel("l2Book") in frames and OtherChannel("activeAssetCtx") in frames


@pytest.mark.parametrize("text", [GREETING, GREETING.encode()])
def test_the_greeting_is_no_error(text: str | bytes) -> None:
    assert parse_frame(text) == Greeting()


def test_bytes_and_text_parse_alike() -> None:
    text = frame(trade(), trade(tid=7, time=1790232216194))
    assert parse_frame(text) == parse_frame(text.encode())


@pytest.mark.parametrize("raw", [
    "Websocket connection failed.",
    "[]",
    "{}",
    '{"channel":"trades"}',
    '{"channel":"trades","data":{}}',
    frame({k: v for k, v in trade().items() if k != "tid"}),
    frame(trade(px="abc")),
    frame(trade(px="-1.5")),
    frame(trade(px="0")),
    frame(trade(px="nan")),
    frame(trade(px="inf")),
    frame(trade(sz="")),
    frame(trade(side="X")),
    frame(trade(time=-1)),
    frame(trade(time=1.5)),
    frame(trade(tid=None)),
    frame(trade(coin=7)),
    frame(trade(), trade(coin="ETH", tid=8)),
    '{"channel":"pong","data":',
    '{"channel":"error","data":{"not":"text"}}',
    '{"channel":"subscriptionResponse","data":"subscribed"}',
    '{"channel":"candle","data":{"t":1}}',
    '{"channel":7}',
])
def test_malformed_frames_raise_one_clear_error(raw: str) -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(raw)
    assert isinstance(caught.value, InvalidRecord)
    assert "frame" in str(caught.value)


def test_malformed_error_quotes_a_bounded_snippet() -> None:
    raw = frame(*[trade(tid=i) for i in range(50)], trade(px="x"))
    with pytest.raises(MalformedFrame) as caught:
        parse_frame(raw)
    assert len(str(caught.value)) < 400 and '"px":"x"' not in str(caught.value)


def test_an_empty_trades_frame_is_an_empty_batch() -> None:
    batch = parse_frame('{"channel":"trades","data":[]}')
    assert isinstance(batch, TradeBatch) and len(batch) == 0


def test_users_and_unknown_fields_are_ignored() -> None:
    batch = parse_frame(frame(trade(users=None, extra={"nested": [1, 2]})))
    assert isinstance(batch, TradeBatch) and batch.tids == [1045359869404765]


def test_out_of_order_frames_say_so() -> None:
    batch = parse_frame(frame(trade(time=5, tid=1), trade(time=4, tid=2)))
    assert isinstance(batch, TradeBatch)
    assert not batch.ordered and (batch.earliest, batch.latest) == (4, 5)


def test_sizes_beyond_the_float_limit_are_read_from_their_text() -> None:
    big = "123456789.12345678"
    batch = parse_frame(frame(trade(sz=big), trade(sz="0.00000001", tid=2)))
    assert isinstance(batch, TradeBatch)
    assert batch.units == [12345678912345678, 1]
    assert batch.select([1]).units == [1]


def test_a_size_with_more_than_8_decimals_is_refused_on_the_exact_path() -> None:
    with pytest.raises(MalformedFrame):
        parse_frame(frame(trade(sz="100000000.123456789")))


@pytest.mark.parametrize(("text", "units"), [
    ("0", 0), ("1", SIZE_SCALE), ("1.0", SIZE_SCALE), ("0.00000001", 1),
    ("12.5", 1_250_000_000), ("99999999999.99999999", 9_999_999_999_999_999_999),
])
def test_exact_units(text: str, units: int) -> None:
    assert exact_units(text) == units


@pytest.mark.parametrize("text", ["1e5", "-1", "1.123456789", ".", "abc", " 1", "1.-5"])
def test_exact_units_refuses_what_is_no_plain_decimal(text: str) -> None:
    with pytest.raises(MalformedFrame):
        exact_units(text)


def test_batch_of_refuses_sizes_it_cannot_make_exact() -> None:
    record = Trade("BTC", "B", 1.0, FLOAT_SIZE_LIMIT, 1, "0x0", 1)
    with pytest.raises(ValueError, match="decimal text"):
        TradeBatch.of([record])


# -- exactness ------------------------------------------------------------------------

decimals = st.integers(min_value=0, max_value=8)


@st.composite
def decimal_text(draw: st.DrawFn, max_whole: int) -> str:
    places = draw(decimals)
    whole = draw(st.integers(min_value=0, max_value=max_whole))
    if not places:
        return str(max(whole, 1))
    fraction = draw(st.integers(min_value=0 if whole else 1, max_value=10**places - 1))
    return f"{whole}.{fraction:0{places}d}"


@given(st.lists(decimal_text(10**9), min_size=1, max_size=40))
def test_decoded_prices_are_the_floats_python_reads(texts: list[str]) -> None:
    raw = frame(*[trade(px=t, tid=i) for i, t in enumerate(texts)])
    batch = parse_frame(raw)
    assert isinstance(batch, TradeBatch)
    assert batch.px == [float(t) for t in texts]


@given(st.lists(decimal_text(10**7 // 2), min_size=1, max_size=100))
def test_size_units_is_the_exact_decimal_sum(texts: list[str]) -> None:
    exact = sum(Decimal(t) for t in texts) * SIZE_SCALE
    assert size_units([float(t) for t in texts]) == int(exact)


@given(st.lists(decimal_text(2**23 - 1), min_size=1, max_size=100))
def test_size_units_stays_exact_when_the_total_passes_the_limit(texts: list[str]) -> None:
    sizes = [float(t) for t in texts if float(t) < FLOAT_SIZE_LIMIT]
    exact = sum(Decimal(t) for t in texts if float(t) < FLOAT_SIZE_LIMIT) * SIZE_SCALE
    assert size_units(sizes) == int(exact)


@st.composite
def plain_sum_sizes(draw: st.DrawFn) -> list[str]:
    """Up to 100 sizes whose plain float sum lies just inside PLAIN_SUM_LIMIT / (n + 2)."""
    count = draw(st.integers(min_value=1, max_value=100))
    ceiling = int(PLAIN_SUM_LIMIT / (count + 2) / count * SIZE_SCALE)  # units per size
    units = draw(st.lists(st.integers(min_value=1, max_value=ceiling), min_size=count,
                          max_size=count))
    return [f"{u // SIZE_SCALE}.{u % SIZE_SCALE:08d}" for u in units]


@given(plain_sum_sizes())
def test_the_plain_sum_path_is_exact_up_to_its_limit(texts: list[str]) -> None:
    sizes = [float(t) for t in texts]
    assert sum(sizes) * (len(sizes) + 2) < PLAIN_SUM_LIMIT * (1 + 1e-12)
    assert size_units(sizes) == int(sum(Decimal(t) for t in texts) * SIZE_SCALE)


@given(st.lists(decimal_text(10**12), min_size=1, max_size=20))
def test_any_frame_volume_is_exact(texts: list[str]) -> None:
    batch = parse_frame(frame(*[trade(sz=t, tid=i) for i, t in enumerate(texts)]))
    assert isinstance(batch, TradeBatch)
    units = sum(batch.units) if batch.units is not None else size_units(batch.sz)
    total = sum(Decimal(t) for t in texts)
    assert units == int(total * SIZE_SCALE)
    assert units / SIZE_SCALE == float(total)  # the exchange's v, read as a float
