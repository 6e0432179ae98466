"""Dwellir's candle index, ``GET {dwellir}/{KEY}/v1/candles?market&interval&time``, on a
real emulator over loopback: the candle against the market model, sparse 1s buckets,
errors, the DWSESSION backend pinning, the per-key plan ceiling and HTTP/2 over TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from hyperlake.emulator.market import Candle, Market
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.emulator.universe import load_universe
from hyperlake.schemas.exchange import DWELLIR_FLOOR_MS as DWELLIR_ARCHIVE_FLOOR_MS
from hyperlake.schemas.intervals import FIXED_STEP_MS, MINUTE_MS, SECOND_MS
from tests.conftest import DWELLIR_KEY, NOW_MS

MODEL = Market(seed=0)
KEYS = ["s", "i", "t", "T", "o", "h", "l", "c", "v", "q", "n", "x"]
#: 2026-03-30T23:00:00Z, an hour before the frozen clock.
HOUR_AGO_MS = NOW_MS - 60 * MINUTE_MS
FREE_KEY = "free-key"
FREE_PLAN_RATE = 20


def iso(ms: int) -> str:
    """``2026-03-30T23:00:00Z`` (milliseconds only when there are some)."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def candles_url(emu: Emulator, key: str = DWELLIR_KEY, tls: bool = False) -> str:
    base = emu.urls.tls_dwellir if tls else emu.urls.dwellir
    return f"{base}/{key}/v1/candles"


def params(open_ms: int, interval: str = "1m", market: str = "BTC") -> dict[str, str]:
    return {"market": market, "interval": interval, "time": iso(open_ms)}


def fetch(client: httpx.Client, emu: Emulator, open_ms: int, interval: str = "1m",
          market: str = "BTC", key: str = DWELLIR_KEY) -> httpx.Response:
    return client.get(candles_url(emu, key), params=params(open_ms, interval, market))


def first_second(predicate: Callable[[Candle | None], bool], start_ms: int = HOUR_AGO_MS,
                 coin: str = "BTC") -> int:
    """Open time of the first 1s bucket from ``start_ms`` whose model candle satisfies
    ``predicate`` (as seen at the frozen NOW_MS)."""
    for k in range(3600):
        open_ms = start_ms + k * SECOND_MS
        if predicate(MODEL.candle(coin, "1s", open_ms, NOW_MS)):
            return open_ms
    raise AssertionError("no such 1s bucket within an hour")


def as_decimal(units: int, decimals: int) -> Decimal:
    return Decimal(units).scaleb(-decimals)


def assert_matches_model(served: dict[str, Any], model: Candle, coin: str,
                         interval: str) -> None:
    inst = load_universe().get(coin)
    assert inst is not None
    px, sz = inst.px_decimals, inst.sz_decimals
    assert served["s"] == coin and served["i"] == interval
    assert served["t"] == model.open_ms
    assert served["T"] == model.open_ms + FIXED_STEP_MS[interval] - 1
    for field, units in (("o", model.o), ("h", model.h), ("l", model.low), ("c", model.c)):
        assert Decimal(served[field]) == as_decimal(units, px), field
        assert float(served[field]) == units / 10**px, field
    assert Decimal(served["v"]) == as_decimal(model.volume_lots, sz)
    assert float(served["v"]) == model.volume_lots / 10**sz
    assert Decimal(served["q"]) == as_decimal(model.quote_units, px + sz)
    assert served["n"] == model.trades
    assert served["x"] is model.closed


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# -- the candle -------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "coin"), [("1s", "BTC"), ("1m", "BTC"), ("5m", "BTC"),
                                                ("1m", "ETH")])
def test_candle_shape_and_values_match_the_model(emulator: Emulator, client: httpx.Client,
                                                 interval: str, coin: str) -> None:
    open_ms = (first_second(lambda c: c is not None, coin=coin) if interval == "1s"
               else HOUR_AGO_MS)
    model = MODEL.candle(coin, interval, open_ms, NOW_MS)
    assert model is not None

    response = fetch(client, emulator, open_ms, interval, coin)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert list(served) == KEYS
    assert all(type(served[k]) is int for k in ("t", "T", "n"))
    assert all(type(served[k]) is str for k in ("s", "i", "o", "h", "l", "c", "v", "q"))
    assert type(served["x"]) is bool
    assert served["x"] is True  # an hour old: closed
    assert_matches_model(served, model, coin, interval)


def test_candle_is_served_at_the_documented_example_time(emulator: Emulator,
                                                         client: httpx.Client) -> None:
    response = client.get(candles_url(emulator), params={
        "market": "BTC", "interval": "1m", "time": "2026-03-30T23:00:00Z"})
    assert response.status_code == 200
    assert response.json()["t"] == HOUR_AGO_MS == 1_774_911_600_000


def test_an_empty_1s_bucket_is_a_404_not_a_fabricated_candle(emulator: Emulator,
                                                             client: httpx.Client) -> None:
    empty = first_second(lambda c: c is None)

    response = fetch(client, emulator, empty, "1s")

    assert response.status_code == 404
    assert "t" not in response.json()


def test_300_consecutive_1s_buckets_are_sparse_and_agree_with_the_model(
        emulator: Emulator, client: httpx.Client) -> None:
    start = HOUR_AGO_MS + 10 * MINUTE_MS
    statuses: list[int] = []
    for k in range(300):
        open_ms = start + k * SECOND_MS
        model = MODEL.candle("BTC", "1s", open_ms, NOW_MS)
        response = fetch(client, emulator, open_ms, "1s")
        statuses.append(response.status_code)
        if model is None:
            assert response.status_code == 404, iso(open_ms)
        else:
            assert response.status_code == 200, iso(open_ms)
            assert_matches_model(response.json(), model, "BTC", "1s")
    assert set(statuses) == {200, 404}
    assert statuses.count(404) / len(statuses) > 0.20


# -- errors -----------------------------------------------------------------------------


def test_unknown_key_is_401_without_echoing_the_key(emulator: Emulator,
                                                    client: httpx.Client) -> None:
    secret = "not-a-key-7f3a9c"

    response = fetch(client, emulator, HOUR_AGO_MS, key=secret)

    assert response.status_code == 401
    assert secret not in response.text
    assert "error" in response.json()


@pytest.mark.parametrize(("query", "mentions"), [
    ({"market": "BTC", "interval": "1m", "time": "2026-03-30T23:00:30Z"}, "aligned"),
    ({"market": "BTC", "interval": "5m", "time": "2026-03-30T23:01:00Z"}, "aligned"),
    ({"market": "BTC", "interval": "1s", "time": "2026-03-30T23:00:00.500Z"}, "aligned"),
    ({"market": "BTC", "interval": "1m", "time": "2025-07-27T07:59:00Z"}, "floor"),
    ({"market": "BTC", "interval": "1h", "time": "2026-03-30T23:00:00Z"}, "interval"),
    ({"market": "BTC", "time": "2026-03-30T23:00:00Z"}, "interval"),
    ({"interval": "1m", "time": "2026-03-30T23:00:00Z"}, "market"),
    ({"market": "", "interval": "1m", "time": "2026-03-30T23:00:00Z"}, "market"),
    ({"market": "NOPE", "interval": "1m", "time": "2026-03-30T23:00:00Z"}, "market"),
    ({"market": "BTC", "interval": "1m", "time": "yesterday"}, "time"),
    ({"market": "BTC", "interval": "1m", "time": "2026-03-30T23:00:00"}, "time"),
    ({"market": "BTC", "interval": "1m"}, "time"),
], ids=["1m-at-30s", "5m-at-1m", "1s-at-500ms", "before-floor", "1h", "no-interval",
        "no-market", "empty-market", "unknown-market", "not-a-time", "no-utc-offset",
        "no-time"])
def test_bad_requests_are_400_with_an_error_message(emulator: Emulator, client: httpx.Client,
                                                    query: dict[str, str],
                                                    mentions: str) -> None:
    response = client.get(candles_url(emulator), params=query)

    assert response.status_code == 400, response.text
    assert mentions in response.json()["error"]


def test_archive_floor_is_inclusive(emulator: Emulator, client: httpx.Client) -> None:
    at_floor = fetch(client, emulator, DWELLIR_ARCHIVE_FLOOR_MS, "1s")
    just_before = fetch(client, emulator, DWELLIR_ARCHIVE_FLOOR_MS - SECOND_MS, "1s")

    assert at_floor.status_code in (200, 404)
    assert (at_floor.status_code == 200) == (
        MODEL.candle("BTC", "1s", DWELLIR_ARCHIVE_FLOOR_MS, NOW_MS) is not None)
    assert just_before.status_code == 400


@pytest.mark.parametrize("interval", ["1s", "1m", "5m"])
def test_a_bucket_after_now_is_a_404(emulator: Emulator, client: httpx.Client,
                                     interval: str) -> None:
    later = NOW_MS + 10 * FIXED_STEP_MS[interval]

    response = fetch(client, emulator, later, interval)

    assert response.status_code == 404
    assert fetch(client, emulator, NOW_MS - FIXED_STEP_MS["5m"], interval).status_code in (
        200, 404)


# -- DWSESSION --------------------------------------------------------------------------


def backend_counters(emu: Emulator) -> Counter[str]:
    return Counter({k: v for k, v in emu.stats().items() if k.startswith("dwellir_backend_")})


def test_first_answer_sets_a_dwsession_cookie_naming_its_backend(emulator: Emulator) -> None:
    with httpx.Client(timeout=10) as fresh:
        response = fetch(fresh, emulator, HOUR_AGO_MS)

    backend = response.headers["x-dwellir-backend"]
    assert backend
    assert response.cookies["DWSESSION"] == backend
    assert f"DWSESSION={backend}" in response.headers["set-cookie"]


def test_a_client_sending_its_cookie_back_stays_on_its_backend(emulator: Emulator) -> None:
    with httpx.Client(timeout=10) as session:
        first = fetch(session, emulator, HOUR_AGO_MS)
        pinned = first.headers["x-dwellir-backend"]
        before = backend_counters(emulator)
        later = [fetch(session, emulator, HOUR_AGO_MS + k * MINUTE_MS) for k in range(20)]
        after = backend_counters(emulator)

    assert [r.headers["x-dwellir-backend"] for r in later] == [pinned] * 20
    assert all("set-cookie" not in r.headers for r in later)
    assert after - before == Counter({f"dwellir_backend_{pinned}": 20})


def test_fresh_clients_are_spread_over_several_backends(emulator: Emulator) -> None:
    before = backend_counters(emulator)
    seen: list[str] = []
    for _ in range(8):
        with httpx.Client(timeout=10) as fresh:
            response = fetch(fresh, emulator, HOUR_AGO_MS)
        assert "set-cookie" in response.headers
        seen.append(response.headers["x-dwellir-backend"])
    delta = backend_counters(emulator) - before

    assert len(set(seen)) >= 3
    assert delta == Counter(f"dwellir_backend_{name}" for name in seen)


def test_a_cookie_naming_no_backend_gets_a_new_session(emulator: Emulator,
                                                       client: httpx.Client) -> None:
    response = client.get(candles_url(emulator), params=params(HOUR_AGO_MS),
                          headers={"cookie": "DWSESSION=dw-999"})

    backend = response.headers["x-dwellir-backend"]
    assert backend != "dw-999"
    assert f"DWSESSION={backend}" in response.headers["set-cookie"]


def h2c_response_headers(port: int, path: str,
                         extra: list[tuple[str, str]]) -> dict[str, str]:
    """One h2c request with exactly the header fields given (HTTP/2 lets a client split
    its cookies into several ``cookie`` fields: RFC 9113, section 8.2.3)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                              (":authority", f"127.0.0.1:{port}"), *extra], end_stream=True)
        sock.sendall(conn.data_to_send())
        headers: dict[str, str] = {}
        while data := sock.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {str(k): str(v) for k, v in event.headers}
                if isinstance(event, h2.events.StreamEnded):
                    return headers
            sock.sendall(conn.data_to_send())
    raise AssertionError("the stream did not end")


def dwellir_path(open_ms: int) -> str:
    return (f"/dwellir/{DWELLIR_KEY}/v1/candles?market=BTC&interval=1m&time="
            f"{iso(open_ms)}")


def test_h2c_cookie_in_a_single_field_pins_the_backend(emulator: Emulator) -> None:
    headers = h2c_response_headers(emulator.port, dwellir_path(HOUR_AGO_MS),
                                   [("cookie", "theme=dark; DWSESSION=dw-2")])
    assert headers["x-dwellir-backend"] == "dw-2"
    assert "set-cookie" not in headers


def test_h2c_cookie_split_over_several_fields_pins_the_backend(emulator: Emulator) -> None:
    headers = h2c_response_headers(emulator.port, dwellir_path(HOUR_AGO_MS),
                                   [("cookie", "theme=dark"), ("cookie", "DWSESSION=dw-2")])
    assert headers["x-dwellir-backend"] == "dw-2"
    assert "set-cookie" not in headers


# -- plan ceiling -----------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    statuses: list[int]
    started: float  # time.monotonic()
    finished: float

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


async def _burst(url: str, queries: list[dict[str, str]], http2: bool) -> Burst:
    async with httpx.AsyncClient(http1=not http2, http2=http2, timeout=10) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get(url, params=q) for q in queries))
        return Burst([r.status_code for r in responses], started, time.monotonic())


def burst(url: str, queries: list[dict[str, str]], http2: bool = True) -> Burst:
    """Fire every query at once on one client."""
    return asyncio.run(_burst(url, queries, http2))


@pytest.fixture
def free_plan(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(frozen_config(NOW_MS, dwellir_keys={FREE_KEY: "free"}))


def assert_within_free_ceiling(result: Burst) -> None:
    statuses, elapsed = result.statuses, result.elapsed
    answered = sum(1 for s in statuses if s in (200, 404))
    assert elapsed < 0.9, "the burst was too slow to test a per-second ceiling"
    assert statuses.count(429) > 0
    assert answered + statuses.count(429) == len(statuses)
    # a full one-second bucket, plus what refills while the burst runs
    assert FREE_PLAN_RATE <= answered <= FREE_PLAN_RATE + FREE_PLAN_RATE * elapsed + 1
    assert answered <= 25


@pytest.mark.parametrize("http2", [True, False], ids=["h2c", "http1"])
def test_free_plan_burst_of_60_is_capped_near_20(free_plan: Emulator, http2: bool) -> None:
    queries = [params(HOUR_AGO_MS + k * SECOND_MS, "1s") for k in range(60)]
    result = burst(candles_url(free_plan, FREE_KEY), queries, http2)

    assert_within_free_ceiling(result)
    assert 404 in result.statuses and 200 in result.statuses  # a mix of full and empty buckets


def test_404s_count_against_the_plan_ceiling(free_plan: Emulator) -> None:
    empty = first_second(lambda c: c is None)
    queries = [params(empty, "1s")] * 60
    result = burst(candles_url(free_plan, FREE_KEY), queries)

    assert 200 not in result.statuses
    assert_within_free_ceiling(result)


def test_the_ceiling_is_per_key_and_refills(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(frozen_config(NOW_MS, dwellir_keys={FREE_KEY: "free",
                                                            "other-key": "free"}))
    queries = [params(HOUR_AGO_MS)] * 40
    first = burst(candles_url(emu, FREE_KEY), queries)
    other = burst(candles_url(emu, "other-key"), queries[:15])
    time.sleep(0.5)  # ~10 tokens back
    refilled = burst(candles_url(emu, FREE_KEY), queries)

    assert 429 in first.statuses
    assert other.statuses == [200] * 15
    earned_at_least = FREE_PLAN_RATE * (refilled.started - first.finished)
    earned_at_most = FREE_PLAN_RATE * (refilled.finished - first.started)
    assert earned_at_least - 1 <= refilled.statuses.count(200) <= earned_at_most + 1
    assert 429 in refilled.statuses


# -- TLS --------------------------------------------------------------------------------


def test_tls_endpoint_speaks_http2_and_serves_the_same_candle(
        make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(frozen_config(NOW_MS), tls=True)
    assert emu.urls.tls_dwellir is not None and emu.urls.tls_dwellir.startswith("https://")

    trust = ssl.create_default_context(cafile=emu.urls.ca_pem)
    with httpx.Client(http2=True, verify=trust, timeout=10) as tls_client:
        over_tls = tls_client.get(candles_url(emu, tls=True), params=params(HOUR_AGO_MS))
    with httpx.Client(timeout=10) as plain_client:
        plain = fetch(plain_client, emu, HOUR_AGO_MS)

    assert over_tls.http_version == "HTTP/2"
    assert over_tls.status_code == 200
    assert over_tls.json() == plain.json()
