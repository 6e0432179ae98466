"""Hyperliquid ``POST /info`` against the real recorded responses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hyperlake.emulator.market import Market
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS, bucket_start, shift_buckets
from tests.conftest import DWELLIR_KEY, HYDROMANCER_KEY, NOW_MS, load_fixture


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def info(client: httpx.Client, emu: Emulator, body: Any) -> httpx.Response:
    return client.post(f"{emu.urls.hyperliquid}/info", json=body)


def snapshot(client: httpx.Client, emu: Emulator, coin: str, interval: str, start: int,
             end: int) -> list[dict[str, Any]]:
    response = info(client, emu, {"type": "candleSnapshot", "req": {
        "coin": coin, "interval": interval, "startTime": start, "endTime": end}})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


# -- shapes against the recordings --------------------------------------------------------


def test_candle_shape_matches_the_recorded_response(emulator: Emulator,
                                                    client: httpx.Client) -> None:
    recorded = load_fixture("candleSnapshot_spot-at107-HYPE_1d_2025-01.json")[0]
    served = snapshot(client, emulator, "@107", "1d", NOW_MS - 3 * DAY_MS, NOW_MS)[0]
    assert list(served) == list(recorded)  # t,T,s,i,o,c,h,l,v,n
    assert {k: type(v) for k, v in served.items()} == {k: type(v) for k, v in recorded.items()}
    assert served["T"] == served["t"] + DAY_MS - 1 and served["s"] == "@107"


def test_kpepe_style_names_and_field_set_match_the_2023_recording(
        emulator: Emulator, client: httpx.Client) -> None:
    recorded = load_fixture("candleSnapshot_kPEPE_1h_2023-05.json")
    served = snapshot(client, emulator, "kPEPE", "1h", NOW_MS - 5 * HOUR_MS, NOW_MS)
    assert set(served[0]) == set(recorded[0])
    assert all(c["s"] == "kPEPE" and c["i"] == "1h" for c in served)
    assert all("." in c["o"] and "." in c["v"] for c in served)  # "0.001604", "520665683.0"


def test_candles_overlap_the_requested_range_like_the_recording(
        emulator: Emulator, client: httpx.Client) -> None:
    # The recording asked from 20:46:47 and got the candle opening at 20:00.
    start = NOW_MS - 10 * HOUR_MS + 46 * MINUTE_MS + 47_000
    end = start + 23 * HOUR_MS
    served = snapshot(client, emulator, "BTC", "1h", start, min(end, NOW_MS))
    assert served[0]["t"] == bucket_start(start, "1h")
    assert served[-1]["t"] == bucket_start(NOW_MS - 1, "1h")


def test_funding_rows_match_the_recorded_shape_and_history(emulator: Emulator,
                                                           client: httpx.Client) -> None:
    recorded = load_fixture("fundingHistory_BTC_2023_noEndTime_1038rows.json")
    start = recorded[0]["time"]
    pages: list[dict[str, Any]] = []
    while True:
        page = info(client, emulator, {"type": "fundingHistory", "coin": "BTC",
                                       "startTime": start, "endTime": recorded[-1]["time"]})
        assert page.status_code == 200
        rows = page.json()
        assert len(rows) <= 500
        pages.extend(rows)
        if len(rows) < 500:
            break
        start = rows[-1]["time"] + 1
    assert pages == recorded  # served verbatim inside the recording's span
    assert list(pages[0]) == ["coin", "fundingRate", "premium", "time"]


def test_synthetic_funding_has_the_recorded_types(emulator: Emulator,
                                                  client: httpx.Client) -> None:
    rows = info(client, emulator, {"type": "fundingHistory", "coin": "ETH",
                                   "startTime": NOW_MS - DAY_MS}).json()
    assert len(rows) == 24
    for row in rows:
        assert list(row) == ["coin", "fundingRate", "premium", "time"]
        assert isinstance(row["fundingRate"], str) and isinstance(row["time"], int)
        assert 0 < row["time"] % HOUR_MS < 1000


def test_funding_pages_hold_500_rows_with_inclusive_bounds(emulator: Emulator,
                                                           client: httpx.Client) -> None:
    first = info(client, emulator, {"type": "fundingHistory", "coin": "SOL",
                                    "startTime": NOW_MS - 40 * DAY_MS}).json()
    assert len(first) == 500
    exact = info(client, emulator, {"type": "fundingHistory", "coin": "SOL",
                                    "startTime": first[3]["time"],
                                    "endTime": first[5]["time"]}).json()
    assert exact == first[3:6]


def test_meta_is_shaped_like_the_recordings(emulator: Emulator, client: httpx.Client) -> None:
    recorded = load_fixture("meta_2025-08.json")
    meta = info(client, emulator, {"type": "meta"}).json()
    assert set(recorded) <= set(meta)
    names = [a["name"] for a in meta["universe"]]
    assert "kPEPE" in names and "BTC" in names
    assert any(a.get("isDelisted") is True for a in meta["universe"])
    assert all("isDelisted" not in a or a["isDelisted"] is True for a in meta["universe"])
    hip3 = info(client, emulator, {"type": "meta", "dex": "xyz"}).json()
    assert all(a["name"].startswith("xyz:") for a in hip3["universe"])
    spot = info(client, emulator, {"type": "spotMeta"}).json()
    assert any(p["name"] == "@107" for p in spot["universe"])


def test_asset_contexts_keep_the_recorded_key_order(emulator: Emulator,
                                                    client: httpx.Client) -> None:
    _, recorded_ctxs = load_fixture("metaAndAssetCtxs_2026-02.json")
    meta, ctxs = info(client, emulator, {"type": "metaAndAssetCtxs"}).json()
    assert len(ctxs) == len(meta["universe"]) == len(recorded_ctxs)
    assert list(ctxs[0]) == list(recorded_ctxs[0])
    delisted = [c for a, c in zip(meta["universe"], ctxs, strict=True) if a.get("isDelisted")]
    assert delisted and all(c["midPx"] is None for c in delisted)


# -- errors as recorded ------------------------------------------------------------------

CATALOG = {str(e["request"]): e for e in load_fixture("error_responses_catalog.json")}


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"type": "nope"}, 422, "Failed to deserialize the JSON body into the target type"),
        ({"type": "fundingHistory", "coin": "BTC"}, 422,
         "Failed to deserialize the JSON body into the target type"),
        ({"type": "fundingHistory", "coin": "NOPE", "startTime": 0}, 500, "null"),
        ({"type": "candleSnapshot", "req": {"coin": "NOPE", "interval": "1h", "startTime": 0,
                                            "endTime": NOW_MS}}, 500, "null"),
        ({"type": "metaAndAssetCtxs", "dex": "nope"}, 500, "null"),
        ({"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "2m", "startTime": 0,
                                            "endTime": NOW_MS}}, 422,
         "Failed to deserialize the JSON body into the target type"),
        ({"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1w", "startTime": -5,
                                            "endTime": NOW_MS}}, 422,
         "Failed to deserialize the JSON body into the target type"),
        ({"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1s", "startTime": 0,
                                            "endTime": NOW_MS}}, 422,
         "Failed to deserialize the JSON body into the target type"),
    ],
)
def test_error_answers_match_the_catalog(emulator: Emulator, client: httpx.Client, body: Any,
                                         status: int, text: str) -> None:
    response = info(client, emulator, body)
    assert (response.status_code, response.text) == (status, text)
    expected_type = "application/json" if status == 500 else "text/plain"
    assert response.headers["content-type"].startswith(expected_type)


def test_transport_level_errors(emulator: Emulator, client: httpx.Client) -> None:
    url = f"{emulator.urls.hyperliquid}/info"
    bad_json = client.post(url, content=b'{"type":', headers={"content-type": "application/json"})
    assert (bad_json.status_code, bad_json.text) == (400, CATALOG[
        "raw body '{\"type\":' (invalid JSON)"]["body"])
    wrong_type = client.post(url, content=b'{"type":"meta"}',
                             headers={"content-type": "text/plain"})
    assert (wrong_type.status_code, wrong_type.text) == (415, CATALOG[
        "valid JSON but header Content-Type: text/plain"]["body"])
    get = client.get(url)
    assert (get.status_code, get.text) == (405, "")


def test_future_start_and_inverted_ranges_are_empty(emulator: Emulator,
                                                    client: httpx.Client) -> None:
    future = info(client, emulator, {"type": "fundingHistory", "coin": "BTC",
                                     "startTime": NOW_MS + DAY_MS})
    assert (future.status_code, future.json()) == (200, [])
    assert snapshot(client, emulator, "BTC", "1h", NOW_MS, NOW_MS - DAY_MS) == []


# -- the 5000 horizon, the open candle, determinism, agreement --------------------------


def test_only_the_most_recent_5000_candles_exist(emulator: Emulator,
                                                 client: httpx.Client) -> None:
    served = snapshot(client, emulator, "BTC", "1m", 0, NOW_MS)
    horizon = shift_buckets(bucket_start(NOW_MS, "1m"), "1m", -4999)
    assert 0 < len(served) <= 5000
    # (the bucket opening exactly at NOW holds no trade yet)
    assert served[0]["t"] >= horizon and served[-1]["t"] == NOW_MS - MINUTE_MS
    older = snapshot(client, emulator, "BTC", "1m", horizon - 10 * MINUTE_MS, horizon - 1)
    assert older == []


def test_last_candle_is_open_and_grows_with_the_clock(make_emulator: Any) -> None:
    now = NOW_MS - 20 * MINUTE_MS + 30_000
    emu = make_emulator(frozen_config(now))
    market = Market(0)
    with httpx.Client() as client:
        first = snapshot(client, emu, "BTC", "1h", now - 2 * HOUR_MS, now)[-1]
        emu.set_clock(now + 10 * MINUTE_MS)
        later = snapshot(client, emu, "BTC", "1h", now - 2 * HOUR_MS, now)[-1]
    assert first["t"] == later["t"] == bucket_start(now, "1h")
    assert first["T"] > now
    assert first["n"] == market.candle("BTC", "1h", first["t"], now).trades  # type: ignore[union-attr]
    assert later["n"] > first["n"]


def test_same_seed_same_bytes_other_seed_other_bytes(make_emulator: Any) -> None:
    body = {"type": "candleSnapshot", "req": {"coin": "ETH", "interval": "15m",
                                              "startTime": NOW_MS - DAY_MS, "endTime": NOW_MS}}
    a = make_emulator(frozen_config(NOW_MS, seed=4))
    b = make_emulator(frozen_config(NOW_MS, seed=4))
    c = make_emulator(frozen_config(NOW_MS, seed=5))
    with httpx.Client() as client:
        raw = [client.post(f"{e.urls.hyperliquid}/info", json=body).content for e in (a, b, c)]
    assert raw[0] == raw[1] and raw[0] != raw[2]


def test_sources_agree_candle_for_candle(emulator: Emulator, client: httpx.Client) -> None:
    start = NOW_MS - 2 * HOUR_MS
    native = snapshot(client, emulator, "BTC", "1m", start, NOW_MS - MINUTE_MS)
    hydro = client.post(f"{emulator.urls.hydromancer}/info",
                        headers={"authorization": f"Bearer {HYDROMANCER_KEY}"},
                        json={"type": "candleSnapshot", "req": {
                            "coin": "BTC", "interval": "1m", "startTime": start,
                            "endTime": NOW_MS}}).json()
    assert len(native) > 100
    by_t = {c["t"]: c for c in hydro}
    for candle in native[:40]:
        dwellir = client.get(f"{emulator.urls.dwellir}/{DWELLIR_KEY}/v1/candles", params={
            "market": "BTC", "interval": "1m",
            "time": _iso(candle["t"])}).json()
        for source in (by_t[candle["t"]], dwellir):
            assert [float(source[k]) for k in "ohlcv"] == [float(candle[k]) for k in "ohlcv"]
            assert source["n"] == candle["n"]


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- weight budget -------------------------------------------------------------------------


def test_weight_budget_answers_429_and_counts_response_size(make_emulator: Any) -> None:
    emu = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=200))
    with httpx.Client() as client:
        big = snapshot(client, emu, "BTC", "1m", NOW_MS - 3000 * MINUTE_MS, NOW_MS)
        statuses = [info(client, emu, {"type": "meta"}).status_code for _ in range(10)]
    # 20 + len/60 for the big one, then 20 a request, out of 200.
    allowed = (200 - 20 - len(big) // 60) // 20  # (+1 if the bucket refilled meanwhile)
    assert statuses.count(200) in (allowed, allowed + 1)
    assert statuses[-1] == 429
    stats = emu.stats()
    assert stats["info_status_429"] == statuses.count(429)
    assert stats["info_weight"] == 20 + len(big) // 60 + 20 * statuses.count(200)
