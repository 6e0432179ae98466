"""The emulator's Hyperliquid websocket: frame shapes against the recorded real frames,
request handling, the trade and candle streams against the market model, idle close
and faults.

End-to-end tests talk to a real granian server (RSGI) in a subprocess over loopback;
fault and counter tests drive ``serve_websocket`` in process with a fake transport.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import websockets
from granian._granian import RSGIProtocolClosed

from hyperlake.emulator.config import ClockConfig, EmulatorConfig, FaultRule
from hyperlake.emulator.market import Market
from hyperlake.emulator.server import granian_app
from hyperlake.emulator.state import EmulatorState
from hyperlake.emulator.ws import (
    MAX_TRADES_PER_FRAME,
    InvalidRequest,
    candle_dict,
    parse_request,
    serve_websocket,
    trade_dict,
    trades_frames,
)

T = TypeVar("T")
START_MS = 1_771_200_000_000  # 2026-02-16T00:00:00Z
RATE = 20.0
IDLE_S = 2.0
FIXTURE = Path(__file__).parents[1] / "fixtures" / "ws_messages_real.jsonl"
HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-f]{40}$")
SUB_TRADES = {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}
SUB_CANDLE = {"method": "subscribe",
              "subscription": {"type": "candle", "coin": "BTC", "interval": "1m"}}

APP = f"""
from hyperlake.emulator.config import ClockConfig, EmulatorConfig
from hyperlake.emulator.state import EmulatorState
from hyperlake.emulator.ws import serve_websocket

STATE = EmulatorState(EmulatorConfig(
    seed=1, clock=ClockConfig.running_from({START_MS}, rate={RATE}), ws_idle_timeout_s={IDLE_S}))


async def app(scope, proto):
    if scope.proto == "ws":
        await serve_websocket(proto, STATE)
        return
    proto.response_str(404, [], "not found")
"""


# -- fixture frames -----------------------------------------------------------------


def _real_frames() -> list[dict[str, Any]]:
    lines = FIXTURE.read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [json.loads(r["raw"]) for r in rows if r["direction"] == "server->client"]


def _real(channel: str, sub_type: str | None = None) -> dict[str, Any]:
    for frame in _real_frames():
        if frame["channel"] != channel:
            continue
        if sub_type is None or frame["data"]["subscription"]["type"] == sub_type:
            return frame
    raise LookupError(channel)


def shape(value: Any) -> Any:
    """Key order and JSON types of a value, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list", shape(value[0]) if value else None]
    return type(value).__name__


# -- the server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("wsapp")
    (workdir / "wsapp.py").write_text(APP)
    with granian_app(workdir, "wsapp:app") as port:
        yield f"ws://127.0.0.1:{port}/ws"


async def _connect(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url)
    assert await asyncio.wait_for(ws.recv(), 5) == "Websocket connection established."
    return ws


async def _ask(ws: websockets.ClientConnection, request: Any) -> Any:
    await ws.send(request if isinstance(request, str) else json.dumps(request))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# -- requests -----------------------------------------------------------------------


def test_subscribe_acks_have_the_real_shapes(ws_url: str) -> None:
    async def go() -> None:
        async with await _connect(ws_url) as ws:
            trades_ack = await _ask(ws, SUB_TRADES)  # then the replay of recent trades
            await ws.send(json.dumps(SUB_CANDLE))
            candle_ack = await _next_non_data(ws)
            # Data frames may now arrive; the unsubscribe acks are among them.
            await ws.send(json.dumps({**SUB_TRADES, "method": "unsubscribe"}))
            await ws.send(json.dumps({**SUB_CANDLE, "method": "unsubscribe"}))
            unsubs: list[Any] = []
            while len(unsubs) < 2:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if frame["channel"] == "subscriptionResponse":
                    unsubs.append(frame)
        assert trades_ack == {"channel": "subscriptionResponse", "data": {
            "method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}}
        assert shape(trades_ack) == shape(_real("subscriptionResponse", "trades"))
        assert shape(candle_ack) == shape(_real("subscriptionResponse", "candle"))
        assert list(candle_ack["data"]["subscription"]) == ["type", "interval", "coin"]
        assert candle_ack["data"]["subscription"] == {"type": "candle", "interval": "1m",
                                                      "coin": "BTC"}
        assert [u["data"]["method"] for u in unsubs] == ["unsubscribe", "unsubscribe"]
        assert [u["data"]["subscription"]["type"] for u in unsubs] == ["trades", "candle"]

    _run(go())


def test_ping_errors_and_parse_errors(ws_url: str) -> None:
    async def go() -> None:
        async with await _connect(ws_url) as ws:
            assert await _ask(ws, {"method": "ping"}) == {"channel": "pong"}
            sub = {"method": "subscribe", "subscription": {"type": "trades", "coin": "ETH"}}
            await _ask(ws, sub)
            await ws.send(json.dumps(sub))
            # Let trade frames through: the error is the next non-data frame.
            dup = await _next_non_data(ws)
            assert dup == {"channel": "error",
                           "data": 'Already subscribed: {"type":"trades","coin":"ETH"}'}
            unsub = {"method": "unsubscribe",
                     "subscription": {"type": "candle", "coin": "ETH", "interval": "5m"}}
            await ws.send(json.dumps(unsub))
            assert await _next_non_data(ws) == {
                "channel": "error",
                "data": 'Already unsubscribed: {"type":"candle","interval":"5m","coin":"ETH"}'}
            for bad in ("garbage",
                        '{"method":"subscribe","subscription":{"type":"bbo","coin":["BTC","ETH"]}}',
                        '{"method":"subscribe","subscription":{"type":"trades","coin":7}}',
                        '{"method":"subscribe","subscription":{"type":"candle","coin":"BTC",'
                        '"interval":"7m"}}',
                        '{"method":"subscribe"}'):
                await ws.send(bad)
                frame = await _next_non_data(ws)
                assert frame == {"channel": "error", "data":
                                 "Error parsing JSON into valid websocket request: " + bad}
        real = _real("error")
        assert shape(frame) == shape(real)

    _run(go())


async def _next_non_data(ws: websockets.ClientConnection) -> Any:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["channel"] not in ("trades", "candle"):
            return frame


def test_unknown_coin_closes_the_socket(ws_url: str) -> None:
    async def go() -> None:
        async with await _connect(ws_url) as ws:
            await ws.send(json.dumps({"method": "subscribe",
                                      "subscription": {"type": "trades", "coin": "NOPE"}}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)

    _run(go())


def test_idle_connection_is_closed(ws_url: str) -> None:
    async def go() -> float:
        async with await _connect(ws_url) as ws:
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 6)
            return time.monotonic() - t0

    elapsed = _run(go())
    assert IDLE_S - 0.3 <= elapsed <= IDLE_S + 1.5


# -- streams ------------------------------------------------------------------------


async def _collect(url: str, seconds: float) -> tuple[list[dict[str, Any]],
                                                      list[dict[str, Any]]]:
    """Trades and candle frames of BTC over ``seconds`` of wall time, pinging twice a
    second (the idle timeout is 2 s)."""
    trades: list[dict[str, Any]] = []
    candles: list[dict[str, Any]] = []
    async with await _connect(url) as ws:
        for request in (SUB_TRADES, SUB_CANDLE):
            await ws.send(json.dumps(request))
        end = time.monotonic() + seconds
        next_ping = time.monotonic() + 0.5
        while time.monotonic() < end:
            if time.monotonic() >= next_ping:
                await ws.send('{"method":"ping"}')
                next_ping += 0.5
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.1)
            except TimeoutError:
                continue
            frame = orjson.loads(raw)
            if frame["channel"] == "trades":
                assert 1 <= len(frame["data"]) <= MAX_TRADES_PER_FRAME
                trades.extend(frame["data"])
                assert shape(frame) == shape(_real("trades"))
            elif frame["channel"] == "candle":
                candles.append(frame["data"])
                assert shape(frame) == shape(_real("candle"))
    return trades, candles


@pytest.fixture(scope="module")
def stream(ws_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # 7 s of wall time at rate 20 spans 140 s of market: at least two 1m candles close.
    return _run(_collect(ws_url, 7.0))


def test_trades_stream_agrees_with_the_market(stream: tuple[list[Any], list[Any]]) -> None:
    trades, _ = stream
    assert len(trades) >= 5
    for t in trades:
        assert list(t) == ["coin", "side", "px", "sz", "time", "hash", "tid", "users"]
        assert t["coin"] == "BTC" and t["side"] in ("A", "B")
        assert HASH_RE.match(t["hash"])
        assert len(t["users"]) == 2 and all(ADDRESS_RE.match(u) for u in t["users"])
    tids = [t["tid"] for t in trades]
    assert tids == sorted(set(tids)), "tids strictly increasing and unique"
    times = [t["time"] for t in trades]
    assert times == sorted(times)
    # The replay of the 30 trades before the subscription, then live ones.
    assert times[0] < START_MS + 3_600_000
    market = Market(seed=1)
    inst = market.instrument("BTC")
    model = market.trades("BTC", times[0], times[-1] + 1)
    assert trades == [trade_dict("BTC", inst, m) for m in model]
    assert all(t["px"].endswith(".0") for t in trades)  # BTC has no price decimals


def test_candle_stream_agrees_with_the_market(stream: tuple[list[Any], list[Any]]) -> None:
    _, candles = stream
    market = Market(seed=1)
    inst = market.instrument("BTC")
    opens = sorted({c["t"] for c in candles})
    assert len(opens) >= 2, "the stream crossed a minute"
    for c in candles:
        assert c["T"] == c["t"] + 59_999 and c["s"] == "BTC" and c["i"] == "1m"
        # The frame is the candle as seen right after its n-th trade.
        minute = market.trades("BTC", c["t"], c["t"] + 60_000)
        now = minute[c["n"] - 1].time_ms
        model = market.candle("BTC", "1m", c["t"], now)
        assert model is not None
        assert c == candle_dict("BTC", "1m", inst, model)
    # When t advances, the last frame of the previous minute is its final candle.
    for prev_t in opens[:-1]:
        last = [c for c in candles if c["t"] == prev_t][-1]
        closed = market.candle("BTC", "1m", prev_t, prev_t + 10 * 60_000)
        assert closed is not None and closed.closed
        assert last == candle_dict("BTC", "1m", inst, closed)
    # Updates only when something changed.
    for a, b in itertools.pairwise(candles):
        assert a != b


# -- pure helpers -------------------------------------------------------------------


def test_parse_request() -> None:
    assert parse_request('{"method":"ping"}').method == "ping"
    req = parse_request('{"subscription":{"interval":"1h","coin":"ETH","type":"candle"},'
                        '"method":"unsubscribe"}')
    assert req.method == "unsubscribe"
    assert list(req.subscription or {}) == ["type", "interval", "coin"]
    for bad in ("", "[]", "null", '{"method":1}', '{"method":"post","id":1}',
                '{"method":"subscribe","subscription":{"type":"allMids"}}',
                '{"method":"subscribe","subscription":{"type":"candle","coin":"BTC",'
                '"interval":"1s"}}'):
        with pytest.raises(InvalidRequest):
            parse_request(bad)


def test_large_batches_are_split() -> None:
    market = Market(seed=1)
    inst = market.instrument("BTC")
    trades = market.trades("BTC", START_MS, START_MS + 4 * 3_600_000)
    assert len(trades) > 2 * MAX_TRADES_PER_FRAME
    frames = [orjson.loads(f) for f in trades_frames("BTC", inst, trades)]
    assert [len(f["data"]) for f in frames[:-1]] == [MAX_TRADES_PER_FRAME] * (len(frames) - 1)
    assert [t["tid"] for f in frames for t in f["data"]] == [t.tid for t in trades]


# -- in process: faults and counters ------------------------------------------------


@dataclass
class FakeMessage:
    kind: int
    data: str | bytes


class FakeTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[FakeMessage] = asyncio.Queue()
        self.sent: list[str] = []
        self.gone = False

    async def receive(self) -> FakeMessage:
        return await self.inbox.get()

    async def send_str(self, text: str) -> None:
        if self.gone:
            raise RSGIProtocolClosed("gone")
        self.sent.append(text)

    def say(self, text: str) -> None:
        self.inbox.put_nowait(FakeMessage(2, text))


class FakeProto:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.closed: list[int | None] = []

    async def accept(self) -> FakeTransport:
        return self.transport

    def close(self, status: int | None = None) -> None:
        self.closed.append(status)


def _state(rate: float, *faults: FaultRule, idle: float = 30.0, start_ms: int = START_MS,
           **config: Any) -> EmulatorState:
    clock = ClockConfig.running_from(start_ms, rate) if rate else ClockConfig(start_ms)
    return EmulatorState(EmulatorConfig(seed=1, clock=clock, ws_idle_timeout_s=idle,
                                        faults=faults, **config))


def _sent(proto: FakeProto, channel: str) -> list[Any]:
    """The data of every frame of ``channel`` sent so far."""
    frames = [orjson.loads(f) for f in proto.transport.sent[1:]]
    return [f["data"] for f in frames if f["channel"] == channel]


def test_disconnect_fault_closes_after_a_second() -> None:
    async def go() -> None:
        state = _state(0.0, FaultRule("ws", "ws_disconnect", 1.0))
        proto = FakeProto()
        t0 = time.monotonic()
        await asyncio.wait_for(serve_websocket(proto, state), 5)
        assert 0.9 <= time.monotonic() - t0 <= 2.0
        assert proto.closed == [1000]
        assert proto.transport.sent == ["Websocket connection established."]
        assert state.stats["ws_connections"] == 1 and state.stats["ws_frames_out"] == 1

    _run(go())


def test_stall_fault_goes_silent_but_stays_open() -> None:
    async def go() -> None:
        state = _state(RATE, FaultRule("*", "ws_stall", 1.0))
        proto = FakeProto()
        task = asyncio.create_task(serve_websocket(proto, state))
        proto.transport.say(json.dumps(SUB_TRADES))
        await asyncio.sleep(1.3)  # the stall is drawn at 1 s
        sent = len(proto.transport.sent)
        assert sent >= 3  # greeting, ack, trades
        proto.transport.say('{"method":"ping"}')
        await asyncio.sleep(0.8)
        assert len(proto.transport.sent) == sent, "no data and no answers once stalled"
        assert not task.done()
        proto.transport.inbox.put_nowait(FakeMessage(0, b""))  # the client closes
        await asyncio.wait_for(task, 2)
        assert proto.closed == [1000]
        stats = state.stats
        assert stats["ws_messages_in"] == 2 and stats["ws_frames_out"] == sent
        trades_sent = sum(len(orjson.loads(f)["data"]) for f in proto.transport.sent
                          if f.startswith('{"channel":"trades"'))
        assert stats["ws_trades_replayed"] == 30
        assert stats["ws_trades_out"] + 30 == trades_sent > 30

    _run(go())


def test_frozen_clock_sends_nothing_new_and_bytes_are_read() -> None:
    async def go() -> None:
        state = _state(0.0)
        proto = FakeProto()
        task = asyncio.create_task(serve_websocket(proto, state))
        proto.transport.say(json.dumps(SUB_TRADES))
        proto.transport.inbox.put_nowait(FakeMessage(1, json.dumps(SUB_CANDLE).encode()))
        await asyncio.sleep(0.6)
        channels = [orjson.loads(f)["channel"] for f in proto.transport.sent[1:]]
        assert channels == ["subscriptionResponse", "trades", "subscriptionResponse"]
        proto.transport.gone = True  # the client vanished: the next send fails
        proto.transport.say('{"method":"ping"}')
        await asyncio.wait_for(task, 2)
        assert proto.closed == [1000]

    _run(go())


def test_without_replay_a_subscribe_sends_only_its_ack() -> None:
    async def go() -> None:
        state = _state(0.0, ws_replay_trades=0)
        proto = FakeProto()
        task = asyncio.create_task(serve_websocket(proto, state))
        proto.transport.say(json.dumps(SUB_TRADES))
        await asyncio.sleep(0.3)
        assert _sent(proto, "trades") == [] and len(_sent(proto, "subscriptionResponse")) == 1
        proto.transport.inbox.put_nowait(FakeMessage(0, b""))
        await asyncio.wait_for(task, 2)

    _run(go())


def test_clock_jumps_neither_skip_nor_repeat_a_trade() -> None:
    """Subscribed at 23:00:00.000 minus 1 ms, the clock jumps over midnight to 00:59:59.999
    (a range on whole seconds across two days), back half an hour (a pause), ahead a
    minute (streamed), then 8 hours ahead (the connection closes)."""
    hour = 3_600_000

    async def go() -> None:
        state = _state(0.0, start_ms=START_MS - hour - 1, ws_replay_trades=0)
        proto = FakeProto()
        task = asyncio.create_task(serve_websocket(proto, state))
        proto.transport.say(json.dumps(SUB_TRADES))
        for now in (START_MS + hour - 1, START_MS + hour // 2, START_MS + hour + 60_000):
            await asyncio.sleep(0.25)
            state.set_clock(ClockConfig(now))
        await asyncio.sleep(0.25)
        streamed = [t["tid"] for data in _sent(proto, "trades") for t in data]
        model = Market(seed=1).trades("BTC", START_MS - hour, START_MS + hour + 60_001)
        assert streamed == [t.tid for t in model]
        assert model[0].time_ms < START_MS <= model[-1].time_ms
        state.set_clock(ClockConfig(START_MS + 9 * hour))
        await asyncio.wait_for(task, 2)
        assert state.stats["ws_catchup_closes"] == 1 and proto.closed == [1000]

    _run(go())


def test_a_fast_clock_sends_the_final_state_of_every_closed_candle() -> None:
    async def go() -> None:
        state = _state(6000.0)  # ten minutes of market a tick
        proto = FakeProto()
        task = asyncio.create_task(serve_websocket(proto, state))
        proto.transport.say(json.dumps(SUB_CANDLE))
        await asyncio.sleep(0.7)
        candles = _sent(proto, "candle")
        proto.transport.inbox.put_nowait(FakeMessage(0, b""))
        await asyncio.wait_for(task, 2)
        market = Market(seed=1)
        inst = market.instrument("BTC")
        opens = sorted({c["t"] for c in candles})
        closed = market.candles("BTC", "1m", opens[0] + 60_000, opens[-1] - 1, opens[-1],
                                limit=1000)
        assert len(closed) >= 30
        for candle in closed:  # every bucket with a trade, its last frame final
            last = [c for c in candles if c["t"] == candle.open_ms][-1]
            assert last == candle_dict("BTC", "1m", inst, candle)

    _run(go())
