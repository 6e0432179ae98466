"""Hydromancer's ``candleSnapshot``, ``POST {hydromancer}/info`` with a Bearer key, on a
real emulator over loopback: auth, 1s candles against the market model, ``x`` and
``q``, ``limit``, the exclusive ``endTime``, deep history and paging, errors and the
weight budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from hyperlake.emulator.market import Candle, Market
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.emulator.universe import load_universe
from hyperlake.schemas.intervals import DAY_MS, FIXED_STEP_MS, MINUTE_MS, SECOND_MS
from tests.conftest import HYDROMANCER_KEY, NOW_MS

MODEL = Market(seed=0)
KEYS = ["s", "i", "t", "T", "o", "h", "l", "c", "v", "q", "n", "x"]
AUTH = {"Authorization": f"Bearer {HYDROMANCER_KEY}"}
QUOTE_FROM_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
PAGE = 5000

Rows = list[dict[str, Any]]


def snapshot_body(**req: Any) -> dict[str, Any]:
    return {"type": "candleSnapshot", "req": req}


def post(client: httpx.Client, emu: Emulator, body: Any,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(f"{emu.urls.hydromancer}/info", json=body,
                       headers=AUTH if headers is None else headers)


def candles(client: httpx.Client, emu: Emulator, coin: str, interval: str, start: int,
            end: int, limit: int | None = None) -> Rows:
    req: dict[str, Any] = {"coin": coin, "interval": interval, "startTime": start,
                           "endTime": end}
    if limit is not None:
        req["limit"] = limit
    response = post(client, emu, snapshot_body(**req))
    assert response.status_code == 200, response.text
    rows: Rows = response.json()
    return rows


def model_candles(coin: str, interval: str, start: int, end: int, now_ms: int) -> list[Candle]:
    """The model's non-empty candles opening in [start, end) (start aligned)."""
    step = FIXED_STEP_MS[interval]
    found = (MODEL.candle(coin, interval, t, now_ms) for t in range(start, end, step))
    return [c for c in found if c is not None]


def exact_quote(coin: str, open_ms: int, end_ms: int) -> float:
    """Sum of price * size over the model's trades in [open_ms, end_ms)."""
    inst = load_universe().get(coin)
    assert inst is not None
    price_unit, size_unit = 10.0**-inst.px_decimals, 10.0**-inst.sz_decimals
    return sum((t.ticks * price_unit * t.lots * size_unit
                for t in MODEL.trades(coin, open_ms, end_ms)), 0.0)


def assert_matches_model(row: dict[str, Any], model: Candle, coin: str, interval: str) -> None:
    inst = load_universe().get(coin)
    assert inst is not None
    px, sz = inst.px_decimals, inst.sz_decimals
    assert list(row) == KEYS
    assert (row["s"], row["i"], row["t"]) == (coin, interval, model.open_ms)
    assert row["T"] == model.open_ms + FIXED_STEP_MS[interval] - 1
    assert [float(row[k]) for k in "ohlc"] == [
        units / 10**px for units in (model.o, model.h, model.low, model.c)]
    assert float(row["v"]) == model.volume_lots / 10**sz
    assert type(row["n"]) is int and row["n"] == model.trades
    assert row["x"] is model.closed


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


# -- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": "Bearer"},
    {"Authorization": f"Basic {HYDROMANCER_KEY}"},
], ids=["no-header", "wrong-key", "scheme-only", "basic-scheme"])
def test_missing_or_wrong_key_is_401(emulator: Emulator, client: httpx.Client,
                                     headers: dict[str, str]) -> None:
    body = snapshot_body(coin="BTC", interval="1m", startTime=NOW_MS - 5 * MINUTE_MS,
                         endTime=NOW_MS)

    response = post(client, emulator, body, headers)

    assert response.status_code == 401
    assert "error" in response.json()
    assert "wrong-key" not in response.text


def test_a_bare_key_without_the_bearer_scheme_is_401(emulator: Emulator,
                                                     client: httpx.Client) -> None:
    body = snapshot_body(coin="BTC", interval="1m", startTime=NOW_MS - 5 * MINUTE_MS,
                         endTime=NOW_MS)

    response = post(client, emulator, body, {"Authorization": HYDROMANCER_KEY})

    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_bearer_scheme_name_is_case_insensitive(emulator: Emulator, client: httpx.Client,
                                                    scheme: str) -> None:
    body = snapshot_body(coin="BTC", interval="1m", startTime=NOW_MS - 5 * MINUTE_MS,
                         endTime=NOW_MS)

    response = post(client, emulator, body, {"Authorization": f"{scheme} {HYDROMANCER_KEY}"})

    assert response.status_code == 200


# -- candles against the model ----------------------------------------------------------


def test_1s_candles_are_exactly_the_models_non_empty_buckets(emulator: Emulator,
                                                             client: httpx.Client) -> None:
    start, end = NOW_MS - 120 * SECOND_MS, NOW_MS - 20 * SECOND_MS

    rows = candles(client, emulator, "BTC", "1s", start, end)
    expected = model_candles("BTC", "1s", start, end, NOW_MS)

    assert 0 < len(rows) < 100  # sparse: some seconds have no trade
    assert [r["t"] for r in rows] == [c.open_ms for c in expected]
    for row, model in zip(rows, expected, strict=True):
        assert_matches_model(row, model, "BTC", "1s")
        assert row["x"] is True


@pytest.mark.parametrize("coin", ["BTC", "ETH"])
def test_q_is_the_exact_quote_volume_as_a_string(emulator: Emulator, client: httpx.Client,
                                                 coin: str) -> None:
    start = NOW_MS - DAY_MS
    rows = candles(client, emulator, coin, "1s", start, start + 60 * SECOND_MS)
    rows += candles(client, emulator, coin, "1m", start, start + 10 * MINUTE_MS)

    assert rows
    for row in rows:
        step = FIXED_STEP_MS[row["i"]]
        assert isinstance(row["q"], str)
        assert float(row["q"]) == pytest.approx(exact_quote(coin, row["t"], row["t"] + step),
                                                rel=1e-9)


def test_q_is_null_before_2024_and_a_string_from_2024(emulator: Emulator,
                                                      client: httpx.Client) -> None:
    rows = candles(client, emulator, "BTC", "1m", QUOTE_FROM_MS - 15 * MINUTE_MS,
                   QUOTE_FROM_MS + 15 * MINUTE_MS)

    before = [r for r in rows if r["t"] < QUOTE_FROM_MS]
    since = [r for r in rows if r["t"] >= QUOTE_FROM_MS]
    assert before and since
    assert all(r["q"] is None for r in before)
    assert "q" in before[0] and list(before[0]) == KEYS
    for row in since:
        assert float(row["q"]) == pytest.approx(
            exact_quote("BTC", row["t"], row["t"] + MINUTE_MS), rel=1e-9)


def open_second(near_ms: int) -> int:
    """An instant 500 ms into a 1s bucket that has a trade in its first half."""
    for k in range(600):
        open_ms = near_ms + k * SECOND_MS
        if MODEL.candle("BTC", "1s", open_ms, open_ms + 500) is not None:
            return open_ms + 500
    raise AssertionError("no such second")


@pytest.mark.parametrize("interval", ["1s", "1m"])
def test_x_is_false_only_for_the_candle_containing_now(
        make_emulator: Callable[..., Emulator], client: httpx.Client, interval: str) -> None:
    now = open_second(NOW_MS - 2 * DAY_MS + 17 * MINUTE_MS + 30 * SECOND_MS)
    emu = make_emulator(frozen_config(now))
    step = FIXED_STEP_MS[interval]
    start = now // step * step - 40 * step

    rows = candles(client, emu, "BTC", interval, start, now + 10 * step)

    assert [r["x"] for r in rows] == [True] * (len(rows) - 1) + [False]
    current = rows[-1]
    assert current["t"] <= now < current["T"]
    model = MODEL.candle("BTC", interval, current["t"], now)
    assert model is not None and not model.closed
    assert_matches_model(current, model, "BTC", interval)
    # the open candle aggregates trades up to now, not the whole bucket
    assert float(current["q"]) == pytest.approx(exact_quote("BTC", current["t"], now + 1),
                                                rel=1e-9)


def test_x_flips_when_a_running_clock_passes_the_bucket_end(
        make_emulator: Callable[..., Emulator], client: httpx.Client) -> None:
    now = open_second(NOW_MS - 3 * DAY_MS)
    emu = make_emulator(frozen_config(now))
    start = now - now % SECOND_MS

    emu.set_clock(now, rate=1.0)  # 500 ms into the bucket, running in real time
    before = candles(client, emu, "BTC", "1s", start, start + SECOND_MS)
    time.sleep(0.6)
    after = candles(client, emu, "BTC", "1s", start, start + SECOND_MS)

    assert [r["x"] for r in before] == [False]
    assert [r["x"] for r in after] == [True]
    closed = MODEL.candle("BTC", "1s", start, start + SECOND_MS)
    assert closed is not None
    assert_matches_model(after[0], closed, "BTC", "1s")


# -- limit, endTime, deep history -------------------------------------------------------


def test_limit_caps_the_count_and_keeps_the_earliest(emulator: Emulator,
                                                     client: httpx.Client) -> None:
    start, end = NOW_MS - 60 * MINUTE_MS, NOW_MS

    full = candles(client, emulator, "BTC", "1m", start, end)
    capped = candles(client, emulator, "BTC", "1m", start, end, limit=7)

    assert len(full) > 7
    assert capped == full[:7]


def test_end_time_is_exclusive(emulator: Emulator, client: httpx.Client) -> None:
    opens = [c.open_ms for c in model_candles("BTC", "1m", NOW_MS - 60 * MINUTE_MS,
                                              NOW_MS - 30 * MINUTE_MS, NOW_MS)]
    # a bucket with a candle right after another one with a candle
    edge = next(t for t, prev in zip(opens[1:], opens, strict=False) if t - prev == MINUTE_MS)
    start = edge - 5 * MINUTE_MS

    at_edge = candles(client, emulator, "BTC", "1m", start, edge)
    past_edge = candles(client, emulator, "BTC", "1m", start, edge + 1)

    assert at_edge[-1]["t"] == edge - MINUTE_MS
    assert past_edge[-1]["t"] == edge
    assert past_edge[:-1] == at_edge


def test_a_1m_request_30_days_back_returns_candles(emulator: Emulator,
                                                   client: httpx.Client) -> None:
    start = NOW_MS - 30 * DAY_MS  # 43,200 1m buckets back: far beyond the last 5000
    rows = candles(client, emulator, "BTC", "1m", start, start + 30 * MINUTE_MS)

    assert len(rows) >= 20
    assert rows[0]["t"] >= start and rows[-1]["t"] < start + 30 * MINUTE_MS
    model = MODEL.candle("BTC", "1m", rows[0]["t"], NOW_MS)
    assert model is not None
    assert_matches_model(rows[0], model, "BTC", "1m")


def fetch_pages(client: httpx.Client, emu: Emulator, interval: str, start: int,
                end: int) -> tuple[Rows, int]:
    """Every candle of [start, end), paging by PAGE with startTime = last t + 1 step."""
    rows: Rows = []
    pages = 0
    while start < end:
        page = candles(client, emu, "BTC", interval, start, end, limit=PAGE)
        pages += 1
        assert len(page) <= PAGE
        if not page:
            break
        rows += page
        start = page[-1]["t"] + FIXED_STEP_MS[interval]
    return rows, pages


def test_paging_deep_history_has_no_duplicate_and_no_hole(emulator: Emulator,
                                                          client: httpx.Client) -> None:
    start = NOW_MS - 30 * DAY_MS
    end = start + 12_000 * MINUTE_MS

    rows, pages = fetch_pages(client, emulator, "1m", start, end)
    expected = [c.open_ms for c in model_candles("BTC", "1m", start, end, NOW_MS)]

    assert pages >= 3
    opens = [r["t"] for r in rows]
    assert len(opens) == len(set(opens))
    assert opens == expected
    assert all(r["x"] for r in rows)


# -- errors -----------------------------------------------------------------------------


GOOD_REQ: dict[str, Any] = {"coin": "BTC", "interval": "1m",
                            "startTime": NOW_MS - 10 * MINUTE_MS, "endTime": NOW_MS}


@pytest.mark.parametrize(("changes", "mentions"), [
    ({"interval": "2s"}, "Invalid interval"),
    ({"interval": "1S"}, "Invalid interval"),
    ({"endTime": GOOD_REQ["startTime"]}, "endTime"),
    ({"endTime": GOOD_REQ["startTime"] - 1}, "endTime"),
    ({"coin": None}, "Missing required field: coin"),
    ({"interval": None}, "Missing required field: interval"),
    ({"startTime": None}, "Missing required field: startTime"),
    ({"limit": 0}, "limit"),
    ({"limit": 5001}, "limit"),
    ({"limit": -1}, "limit"),
    ({"startTime": "yesterday"}, "startTime"),
], ids=["2s", "1S", "end-equals-start", "end-before-start", "no-coin", "no-interval",
        "no-start", "limit-0", "limit-5001", "limit-negative", "string-start"])
def test_bad_requests_are_400_with_a_message(emulator: Emulator, client: httpx.Client,
                                             changes: dict[str, Any], mentions: str) -> None:
    req = {**GOOD_REQ, **changes}
    req = {k: v for k, v in req.items() if v is not None}

    response = post(client, emulator, snapshot_body(**req))

    assert response.status_code == 400, response.text
    assert mentions in response.json()["error"]


def test_limit_bounds_are_inclusive(emulator: Emulator, client: httpx.Client) -> None:
    one = candles(client, emulator, "BTC", "1m", NOW_MS - 10 * MINUTE_MS, NOW_MS, limit=1)
    most = candles(client, emulator, "BTC", "1m", NOW_MS - 10 * MINUTE_MS, NOW_MS, limit=5000)
    assert len(one) == 1 and len(most) > 1


def test_unknown_coin_is_an_error(emulator: Emulator, client: httpx.Client) -> None:
    response = post(client, emulator, snapshot_body(**{**GOOD_REQ, "coin": "NOPE"}))
    assert response.status_code == 404
    assert "NOPE" in response.json()["error"]


# -- weight budget ----------------------------------------------------------------------


def test_the_sixth_request_of_a_burst_exceeds_a_100_weight_budget(
        make_emulator: Callable[..., Emulator], client: httpx.Client) -> None:
    emu = make_emulator(frozen_config(NOW_MS, hydromancer_weight_per_minute=100))

    statuses = [post(client, emu, snapshot_body(**GOOD_REQ)).status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]
    assert emu.stats()["hydromancer_status_429"] == 1
