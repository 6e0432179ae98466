"""The native trades-frame scanner (_scan.c) against msgspec's general path: for every
frame it reads, the very batch the general path makes (columns, exact volume,
records) plus a summary equal to the aggregator's own; for every frame it must not
read (malformed, or of a shape it leaves to msgspec), None. Over the recorded
frames, generated ones in every shape the wire allows, and randomly damaged ones."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hyperlake.pipelines.stream.bars import _summarise
from hyperlake.pipelines.stream.trades import (
    FLOAT_SIZE_LIMIT,
    PLAIN_SUM_LIMIT,
    MalformedFrame,
    TradeBatch,
    parse_frame,
    parse_frame_general,
    size_units,
)

FIXTURE = Path(__file__).parents[2] / "fixtures" / "ws_messages_real.jsonl"


# (test_stream_native.py fails where it is not built)
scan = pytest.importorskip("hyperlake.pipelines.stream._scan")


def agrees(text: str | bytes) -> bool:
    """The scanner's answer for ``text`` is the general path's; True if it read it."""
    columns = scan.scan_trades(text)
    try:
        general = parse_frame_general(text)
    except MalformedFrame as refused:
        # declined; or read, when only the exact sizes' text is wrong (read after it)
        assert columns is None or columns[6] >= FLOAT_SIZE_LIMIT, text
        with pytest.raises(MalformedFrame) as caught:
            parse_frame(text)
        assert str(caught.value) == str(refused)
        return False
    if columns is None:
        return False
    assert isinstance(general, TradeBatch), text
    coin, times, tids, px, sz, ordered, total, distinct, summary = columns
    assert (coin, times, tids, px, sz, ordered) == (
        general.coin, general.times, general.tids, general.px, general.sz, general.ordered)
    assert [type(v) for v in times + tids + px + sz] == [
        type(v) for v in general.times + general.tids + general.px + general.sz]
    if general.units is None:  # (else parse_frame reads units from the text, as below)
        assert size_units(sz, total) == size_units(general.sz, general.total)
    assert distinct == (len(set(tids)) == len(tids))
    plain = total * (len(sz) + 2) < PLAIN_SUM_LIMIT
    if ordered and plain:
        expected = _summarise(general, 0, len(times))
        assert summary == expected
        assert [type(v) for v in summary] == [type(v) for v in expected]
    else:
        assert summary is None
    batch = parse_frame(text)
    assert isinstance(batch, TradeBatch)
    assert batch == general and batch.summary == summary
    assert batch.records == general.records  # decoded from the frame when asked
    return True


def test_recorded_trades_frames_are_scanned_alike() -> None:
    lines = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    raws = [line["raw"] for line in lines if line["direction"] == "server->client"]
    read = [agrees(raw) for raw in raws] + [agrees(raw.encode()) for raw in raws]
    assert sum(read) == 4  # the two trades frames, as text and as bytes; none other


# -- generated frames ----------------------------------------------------------------

SPACE = st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n"])


@st.composite
def decimal(draw: st.DrawFn, odd: int, wholes: int, places: int) -> str:
    """Decimals as the wire sends them (up to ``wholes``, ``places`` decimals), and now
    and then (``odd`` in 100) one it should not."""
    whole = draw(st.one_of(st.integers(0, 99), st.integers(0, 10**6), st.integers(0, wholes)))
    places = draw(st.integers(0, places))
    fraction = draw(st.integers(0, 10**places - 1)) if places else 0
    if not whole and not fraction:
        whole = 1  # zero is no price or size: an odd one below
    text = f"{whole}.{fraction:0{places}d}" if places else str(whole)
    if not chance(draw, odd):
        return text
    return draw(st.sampled_from(["0", "0.000", "01.5", "1.", ".5", "1e3", "-1.5", "+2", " 3",
                                 "1_0", "\u0661", "nan", "1.123456789", "123456789.123456789",
                                 "1" + "0" * 45, "0." + "0" * 44 + "1"]))


def chance(draw: st.DrawFn, percent: int) -> bool:
    return draw(st.integers(0, 99)) < percent


def number_value(draw: st.DrawFn, text: str, odd: int) -> str:
    """A decimal as a JSON string, or (now and then) as a JSON number."""
    if chance(draw, odd) and text.replace(".", "", 1).isdigit():
        return text
    return json.dumps(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12)


def json_text(draw: st.DrawFn) -> str:
    return json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))


@st.composite
def trade_members(draw: st.DrawFn, coin: str, tid: int, time: int,
                  odd: int) -> list[tuple[str, str]]:
    """One trade's members as (key, value) JSON texts, in the wire's order or not; a
    value or key is unusual or wrong with chance ``odd`` in 100."""
    members = [
        ("coin", json.dumps(coin)),
        ("side", json.dumps(draw(st.sampled_from(["C", "a", "AB"])) if chance(draw, odd)
                            else draw(st.sampled_from(["A", "B"])))),
        ("px", number_value(draw, draw(decimal(odd, 10**12, 24)), odd)),
        ("sz", number_value(draw, draw(decimal(odd, 10**9, 8)), odd)),
        ("time", draw(st.sampled_from([json.dumps(str(time)), "-1", f"{time}.0", f"{time}e0",
                                       "1e3"])) if chance(draw, odd) else str(time)),
        ("hash", json.dumps(draw(st.text(st.characters(codec="utf-8"), max_size=70)),
                            ensure_ascii=draw(st.booleans()))
         if chance(draw, odd) else json.dumps("0x" + "ab" * 32)),
        ("tid", draw(st.sampled_from(["-3", "1.5", "01", str(2**64), json.dumps(str(tid)),
                                      "null"])) if chance(draw, odd) else str(tid)),
        ("users", json.dumps(["0x" + "cd" * 20, "0x" + "ef" * 20])),
    ]
    if chance(draw, 4):
        members.append((draw(st.sampled_from(["extra", "coins", "tid2", "px ", "Coin"])),
                        json_text(draw)))
    if chance(draw, odd):
        members.pop(draw(st.integers(0, len(members) - 1)))  # a key missing
    if chance(draw, odd):
        members.append(members[draw(st.integers(0, len(members) - 1))])  # a key twice
    if chance(draw, 25):
        members = draw(st.permutations(members))
    return members


def obj(draw: st.DrawFn, members: list[tuple[str, str]]) -> str:
    parts = [f"{draw(SPACE)}{json.dumps(k)}{draw(SPACE)}:{draw(SPACE)}{v}{draw(SPACE)}"
             for k, v in members]
    return "{" + ",".join(parts) + "}"


@st.composite
def frames(draw: st.DrawFn) -> str:
    coin = draw(st.sampled_from(["BTC", "kPEPE", "@107", "xyz:XYZ100", ""]))
    count = draw(st.integers(0, 30))
    odd = draw(st.sampled_from([0, 0, 1, 5, 30]))  # how often a trade has something odd
    tid = draw(st.integers(0, 2**50))
    time = draw(st.integers(0, 2**45))
    data = []
    for _ in range(count):
        tid += draw(st.integers(-3, 1000))  # now and then one twice, or out of order
        time += draw(st.sampled_from([0, 0, 0, 1, 7, 40, -5]))
        name = "ETH" if chance(draw, odd // 5) else coin
        data.append(obj(draw, draw(trade_members(name, max(tid, 0), max(time, 0), odd))))
    members = [("channel", json.dumps("trade" if chance(draw, odd) else "trades")),
               ("data", "[" + ",".join(data) + "]")]
    if draw(st.integers(0, 4)) == 0:
        members.append(("note", json_text(draw)))
    if draw(st.integers(0, 3)) == 0:
        members = draw(st.permutations(members))
    return draw(SPACE) + obj(draw, members) + draw(SPACE)


@settings(max_examples=200, deadline=None)
@given(frames(), st.booleans())
def test_any_generated_frame_is_read_alike(text: str, as_bytes: bool) -> None:
    event("scanned" if agrees(text.encode() if as_bytes else text) else "declined")


def test_the_usual_frames_are_all_scanned() -> None:
    rng = random.Random(5)
    for _ in range(300):
        time, tid = rng.randrange(2**41), rng.randrange(2**50)
        data = []
        for _ in range(rng.randrange(1, 101)):
            time += rng.choice([0, 0, 3])
            tid += rng.randrange(1, 99)
            data.append({"coin": "SOL", "side": rng.choice("AB"),
                         "px": f"{rng.uniform(1, 300):.{rng.randrange(0, 7)}f}",
                         "sz": f"{rng.uniform(0.01, 5e3):.{rng.randrange(0, 9)}f}",
                         "time": time, "hash": "0x" + "12" * 32, "tid": tid,
                         "users": ["0x" + "34" * 20, "0x" + "56" * 20]})
        assert agrees(orjson.dumps({"channel": "trades", "data": data}).decode())


# -- damaged frames --------------------------------------------------------------------

BYTES = b'"\\{}[],:0.e-+ \x00\x1f\x7f\xc3\xa9x9'


def damaged(rng: random.Random, text: bytes) -> bytes:
    data = bytearray(text)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(data) + 1)
        match rng.randrange(4):
            case 0:
                del data[at:at + rng.randrange(1, 4)]
            case 1:
                data[at:at] = bytes([rng.choice(BYTES)])
            case 2:
                data[at:at + 1] = bytes([rng.choice(BYTES)])
            case _:
                del data[at:]
    return bytes(data)


def test_damaged_frames_are_declined_or_read_alike() -> None:
    rng = random.Random(11)
    base = [orjson.dumps({"channel": "trades", "data": [
        {"coin": "BTC", "side": "B", "px": "84143.5", "sz": "0.0012", "time": 1790232216193 + i,
         "hash": "0x7ab6", "tid": 1045359869404765 + i, "users": ["0x9a", "0x82"]}
        for i in range(n)]}) for n in (1, 2, 5)]
    read = 0
    for _ in range(6000):
        text = damaged(rng, rng.choice(base))
        read += agrees(text)
        with contextlib.suppress(UnicodeDecodeError):
            agrees(text.decode())
    assert 0 < read < 6000  # some damage leaves a valid frame, most does not


@pytest.mark.parametrize("text", [
    '{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"1","sz":"1","time":1,'
    '"hash":"0x\\u0041","tid":1}]}',  # an escape: msgspec reads it, the scanner declines
    '{"channel":"trades","data":[{"coin":"BTC","side":"B","px":1.5,"sz":"1","time":1,'
    '"hash":"0x","tid":1}]}',  # a price as a JSON number
    '{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"1","sz":"1","time":1,'
    '"hash":"0x","tid":1,"users":' + "[" * 40 + "]" * 40 + "}]}",  # deep nesting
    '{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"1","sz":"1","time":1,'
    '"hash":"0x","tid":1,"users":["é"]}]}',  # not ASCII
])
def test_unusual_but_valid_frames_go_to_msgspec(text: str) -> None:
    assert scan.scan_trades(text) is None
    batch = parse_frame(text)
    assert isinstance(batch, TradeBatch) and len(batch) == 1 and batch.summary is None


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"channel":"trades","data":[]}',
                                  '{"channel":"trades","data":[]} x', b"\xff\xfe", 7])
def test_the_scanner_declines_what_is_no_usual_trades_frame(text: Any) -> None:
    assert scan.scan_trades(text) is None


def test_big_sizes_keep_their_exact_units_and_no_summary() -> None:
    text = ('{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"1",'
            '"sz":"123456789.12345678","time":1,"hash":"0x","tid":1}]}')
    batch = parse_frame(text)
    assert isinstance(batch, TradeBatch)
    assert batch.units == [12345678912345678] and batch.summary is None


def test_a_selection_has_no_summary_and_its_own_records() -> None:
    text = orjson.dumps({"channel": "trades", "data": [
        {"coin": "ETH", "side": "AB"[i % 2], "px": f"{3000 + i}.5", "sz": "0.1", "time": 5,
         "hash": f"0x{i}", "tid": 10 + i} for i in range(4)]}).decode()
    batch = parse_frame(text)
    assert isinstance(batch, TradeBatch) and batch.summary is not None and batch.distinct
    part = batch.select([3, 1])
    assert part.summary is None and part.tids == [13, 11]
    assert [r.hash for r in part.records] == ["0x3", "0x1"]
    assert [r.side for r in part.select([1]).records] == ["B"]
