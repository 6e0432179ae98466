"""The emulator's websocket as a live-trades client relies on it, on real emulators over
loopback with a real websocket client: the replay of recent trades after each
subscribe, the ``ws_drop`` fault (a TCP reset through the fault gateway), the per-IP
connection and subscription limits, and an accelerated clock whose trade stream
aggregates to exactly the REST candles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
import websockets

from hyperlake.emulator.config import ClockConfig, EmulatorConfig, FaultRule
from hyperlake.emulator.market import Market
from hyperlake.emulator.server import Emulator, EmulatorError, frozen_config
from hyperlake.emulator.ws import trade_dict
from hyperlake.schemas.intervals import MINUTE_MS
from tests.conftest import NOW_MS

T = TypeVar("T")
Starter = Callable[..., Emulator]
JsonDict = dict[str, Any]
GREETING = "Websocket connection established."


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _subscribe(coin: str, method: str = "subscribe") -> str:
    return json.dumps({"method": method, "subscription": {"type": "trades", "coin": coin}})


async def _connect(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url)
    assert await asyncio.wait_for(ws.recv(), 5) == GREETING
    return ws


async def _frame(ws: websockets.ClientConnection, timeout: float = 5) -> JsonDict:
    frame: JsonDict = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def _until(ws: websockets.ClientConnection, channel: str,
                 seen: list[JsonDict] | None = None) -> JsonDict:
    """The next frame of ``channel``; the trades of frames before it go to ``seen``."""
    while True:
        frame = await _frame(ws)
        if frame["channel"] == channel:
            return frame
        if seen is not None and frame["channel"] == "trades":
            seen.extend(frame["data"])


async def _subscribe_with_replay(ws: websockets.ClientConnection, coin: str,
                                 seen: list[JsonDict] | None = None) -> list[JsonDict]:
    """Subscribe to ``coin``'s trades; the replay that follows the acknowledgement."""
    await ws.send(_subscribe(coin))
    ack = await _until(ws, "subscriptionResponse", seen)
    assert ack["data"] == {"method": "subscribe",
                           "subscription": {"type": "trades", "coin": coin}}
    replay = await _frame(ws)
    assert replay["channel"] == "trades"
    trades: list[JsonDict] = replay["data"]
    return trades


def _rest_candles(emu: Emulator, coin: str, start_ms: int, end_ms: int) -> list[JsonDict]:
    body = {"type": "candleSnapshot",
            "req": {"coin": coin, "interval": "1m", "startTime": start_ms, "endTime": end_ms}}
    response = httpx.post(f"{emu.urls.hyperliquid}/info", json=body, timeout=10)
    response.raise_for_status()
    candles: list[JsonDict] = response.json()
    return candles


# -- replay -----------------------------------------------------------------------------


def test_a_subscribe_replays_the_30_most_recent_model_trades(emulator: Emulator) -> None:
    async def go() -> list[JsonDict]:
        async with await _connect(emulator.urls.ws) as ws:
            return await _subscribe_with_replay(ws, "BTC")

    replay = _run(go())
    market = Market(seed=0)
    model = market.trades("BTC", replay[0]["time"], NOW_MS + 1)
    assert replay == [trade_dict("BTC", market.instrument("BTC"), t) for t in model]
    assert len(replay) == 30 and replay[-1]["time"] <= NOW_MS
    # The same trades the REST candles aggregate: nothing traded after the last one.
    last = replay[-1]
    minute = last["time"] // MINUTE_MS * MINUTE_MS
    (candle,) = _rest_candles(emulator, "BTC", minute, minute)
    assert Decimal(candle["c"]) == Decimal(last["px"])
    assert candle["n"] >= sum(1 for t in replay if t["time"] >= minute)


def test_every_resubscribe_overlaps_what_the_client_saw(make_emulator: Starter) -> None:
    emu = make_emulator(EmulatorConfig(clock=ClockConfig.running_from(NOW_MS, 10.0)))

    async def go() -> tuple[list[JsonDict], list[JsonDict], list[JsonDict]]:
        seen: list[JsonDict] = []
        async with await _connect(emu.urls.ws) as ws:
            seen += await _subscribe_with_replay(ws, "BTC")
            await asyncio.sleep(1.0)
            await ws.send(_subscribe("BTC", "unsubscribe"))
            await _until(ws, "subscriptionResponse", seen)
            again = await _subscribe_with_replay(ws, "BTC")
        async with await _connect(emu.urls.ws) as ws:  # a reconnect
            reconnected = await _subscribe_with_replay(ws, "BTC")
        return seen, again, reconnected

    seen, again, reconnected = _run(go())
    seen_tids = {t["tid"] for t in seen}
    assert len(seen) > 30, "live trades followed the first replay"
    for replay in (again, reconnected):
        assert len(replay) == 30
        tids = [t["tid"] for t in replay]
        assert tids == sorted(tids)
        assert tids[0] in seen_tids, "the replay reaches back into what was seen"


# -- ws_drop ----------------------------------------------------------------------------


async def _end_of(url: str) -> websockets.ConnectionClosed:
    """Subscribe and read until the connection ends; how it ended."""
    ws = await _connect(url)
    await ws.send(_subscribe("BTC"))
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as closed:
        return closed
    finally:
        await ws.close()


def test_ws_drop_resets_the_connection_without_a_close_frame(make_emulator: Starter) -> None:
    emu = make_emulator(frozen_config(NOW_MS, faults=(FaultRule("ws", "ws_drop", 1.0),)))
    assert emu.urls.ws != f"ws://127.0.0.1:{emu.port}/ws", "the gateway is in front of /ws"

    closed = _run(_end_of(emu.urls.ws))
    assert isinstance(closed, websockets.ConnectionClosedError)
    assert closed.rcvd is None, "no close frame: the socket died"
    assert isinstance(closed.__cause__, ConnectionResetError)
    assert emu.stats()["ws_drops"] == 1


def test_ws_disconnect_through_the_gateway_is_still_a_close_frame(
        make_emulator: Starter) -> None:
    emu = make_emulator(frozen_config(NOW_MS, faults=(FaultRule("ws", "ws_disconnect", 1.0),)))

    closed = _run(_end_of(emu.urls.ws))
    assert closed.rcvd is not None and not isinstance(closed.__cause__, ConnectionResetError)
    assert emu.stats()["ws_disconnects"] == 1


def test_ws_drop_needs_the_gateway(make_emulator: Starter) -> None:
    rule = FaultRule("*", "ws_drop", 0.1)
    with pytest.raises(EmulatorError, match="ws_drop"):
        Emulator(frozen_config(NOW_MS, faults=(rule,)), gateway=False)
    with pytest.raises(EmulatorError, match="ws_drop"):
        make_emulator().set_faults([rule])


def test_ws_drop_set_at_run_time_through_the_gateway(make_emulator: Starter) -> None:
    emu = make_emulator(gateway=True)
    emu.set_faults([FaultRule("ws", "ws_drop", 1.0)], seed=3)

    closed = _run(_end_of(emu.urls.ws))
    assert closed.rcvd is None and isinstance(closed.__cause__, ConnectionResetError)


# -- per-IP limits ------------------------------------------------------------------------


async def _refused(url: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url)
    status: int = refused.value.response.status_code
    return status


async def _eventually_connect(url: str) -> websockets.ClientConnection:
    """Connect once the server has let go of a closed connection (it notices at once,
    but asynchronously)."""
    for _ in range(50):
        try:
            return await _connect(url)
        except websockets.InvalidStatus:
            await asyncio.sleep(0.1)
    raise AssertionError("the connection was never given back")


def test_connections_over_the_per_ip_limit_are_refused(make_emulator: Starter) -> None:
    emu = make_emulator(frozen_config(NOW_MS, ws_max_connections=2))

    async def go() -> None:
        first, second = await _connect(emu.urls.ws), await _connect(emu.urls.ws)
        assert await _refused(emu.urls.ws) == 429
        await first.close()
        third = await _eventually_connect(emu.urls.ws)
        assert await _refused(emu.urls.ws) == 429
        await second.close()
        await third.close()

    _run(go())
    assert emu.stats()["ws_connections_refused"] == 2


async def _subscribe_answer(ws: websockets.ClientConnection, coin: str) -> JsonDict:
    await ws.send(_subscribe(coin))
    return await _next_answer(ws)


async def _next_answer(ws: websockets.ClientConnection) -> JsonDict:
    """The next frame that answers a request (not data)."""
    while True:
        frame = await _frame(ws)
        if frame["channel"] != "trades":
            return frame


def test_subscriptions_over_the_per_ip_limit_get_an_error_frame(
        make_emulator: Starter) -> None:
    emu = make_emulator(frozen_config(NOW_MS, ws_max_subscriptions=3))
    over = {"channel": "error", "data": "Cannot subscribe to more than 3 channels."}

    async def go() -> None:
        a, b = await _connect(emu.urls.ws), await _connect(emu.urls.ws)
        for ws, coin in ((a, "BTC"), (a, "ETH"), (b, "SOL")):
            assert (await _subscribe_answer(ws, coin))["channel"] == "subscriptionResponse"
        assert await _subscribe_answer(b, "HYPE") == over  # counted over both connections
        await b.send('{"method":"ping"}')
        assert await _next_answer(b) == {"channel": "pong"}, "the socket stays open"
        await a.send(_subscribe("ETH", "unsubscribe"))
        assert (await _next_answer(a))["data"]["method"] == "unsubscribe"
        assert (await _subscribe_answer(b, "HYPE"))["channel"] == "subscriptionResponse"
        assert await _subscribe_answer(b, "kPEPE") == over
        await a.close()  # its BTC subscription is given back
        for _ in range(50):
            answer = await _subscribe_answer(b, "kPEPE")
            if answer != over:
                break
            await asyncio.sleep(0.1)
        assert answer["channel"] == "subscriptionResponse"
        await b.close()

    _run(go())
    assert emu.stats()["ws_subscriptions_refused"] >= 2


# -- accelerated clock --------------------------------------------------------------------

START_MS = NOW_MS - 5 * 60 * MINUTE_MS  # a minute boundary
SPAN_MINUTES = 30
COINS = ("BTC", "ETH")


async def _stream_until(url: str, emu: Emulator, end_ms: int) -> tuple[list[JsonDict],
                                                                         list[int]]:
    """Subscribe to COINS at the frozen START_MS, run the clock at 600x and collect
    trades until every coin has a trade past ``end_ms``; the trades and frame sizes."""
    trades: list[JsonDict] = []
    sizes: list[int] = []
    async with await _connect(url) as ws:
        for coin in COINS:
            trades += await _subscribe_with_replay(ws, coin)
        emu.set_clock(START_MS, rate=600.0)
        behind = set(COINS)
        while behind:
            frame = await _frame(ws)
            assert frame["channel"] == "trades"
            sizes.append(len(frame["data"]))
            trades += frame["data"]
            behind -= {t["coin"] for t in frame["data"] if t["time"] > end_ms}
    return trades, sizes


def _aggregate(trades: Iterable[JsonDict]) -> dict[int, tuple[Decimal, ...]]:
    """1m candles (o, h, l, c, v, n) of trades given in time order, by open time."""
    bars: dict[int, list[JsonDict]] = {}
    for t in trades:
        bars.setdefault(t["time"] // MINUTE_MS * MINUTE_MS, []).append(t)
    out: dict[int, tuple[Decimal, ...]] = {}
    for minute, group in bars.items():
        px = [Decimal(t["px"]) for t in group]
        out[minute] = (px[0], max(px), min(px), px[-1],
                       sum((Decimal(t["sz"]) for t in group), Decimal(0)), Decimal(len(group)))
    return out


@pytest.mark.parametrize("gateway", [False, True], ids=["direct", "gateway"])
def test_an_accelerated_stream_aggregates_to_the_rest_candles(make_emulator: Starter,
                                                              gateway: bool) -> None:
    emu = make_emulator(frozen_config(START_MS), gateway=gateway)
    end_ms = START_MS + SPAN_MINUTES * MINUTE_MS - 1

    trades, sizes = _run(_stream_until(emu.urls.ws, emu, end_ms))
    assert max(sizes) > 1, "a fast clock sends trades in batches"
    tids = [t["tid"] for t in trades]
    assert len(tids) == len(set(tids)), "nothing sent twice (the replay predates the stream)"
    for coin in COINS:
        mine = [t for t in trades if t["coin"] == coin]
        assert [t["tid"] for t in mine] == sorted(t["tid"] for t in mine), "in time order"
        rest = {c["t"]: (Decimal(c["o"]), Decimal(c["h"]), Decimal(c["l"]), Decimal(c["c"]),
                         Decimal(c["v"]), Decimal(c["n"]))
                for c in _rest_candles(emu, coin, START_MS, end_ms)}
        streamed = _aggregate(t for t in mine if START_MS <= t["time"] <= end_ms)
        assert len(rest) >= SPAN_MINUTES - 2
        assert streamed == rest


# -- command line -----------------------------------------------------------------------


def test_the_command_line_sets_the_websocket_knobs() -> None:
    from hyperlake.cli import build_parser
    from hyperlake.commands.emulator import EPILOG, config_from_args
    from hyperlake.errors import UserError

    argv = ["emulator", "--clock", "2026-03-31T00:00:00Z", "--clock-rate", "600",
            "--ws-replay-trades", "5", "--ws-max-connections", "3",
            "--ws-max-subscriptions", "7", "--fault", "ws:ws_drop:0.1"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.ws_replay_trades, config.ws_max_connections,
            config.ws_max_subscriptions) == (5, 3, 7)
    assert config.clock.rate == 600 and config.faults == (FaultRule("ws", "ws_drop", 0.1),)
    assert "ws_drop" in EPILOG
    with pytest.raises(UserError, match="ws_max_connections"):
        config_from_args(build_parser().parse_args([*argv, "--ws-max-connections", "0"]))
