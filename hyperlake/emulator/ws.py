"""Hyperliquid's ``wss://api.hyperliquid.xyz/ws``: trades and candle subscriptions.

One coroutine per connection, run by granian's RSGI interface. A reader task answers
client requests (subscribe, unsubscribe, ping) and a pump task wakes every 100 ms of
wall time, reads the emulator clock and sends what the market model traded since the
last wake, so the stream agrees exactly with ``Market.trades`` and ``Market.candle``
(and with the REST answers built from them). The pump also closes idle connections
and draws the ``ws_stall`` / ``ws_disconnect`` / ``ws_drop`` faults once a second.

What a client can rely on:

* ``trades``: the ``subscriptionResponse``, then (as real clients observe) the coin's
  ``ws_replay_trades`` most recent trades (time <= now; one frame for up to 100), then
  every later trade exactly once, in time order, in frames of at most
  MAX_TRADES_PER_FRAME. So every (re)subscribe overlaps what the client saw before;
  ``tid`` is unique across coins. At any clock rate nothing is skipped or repeated on a
  live subscription: each wake sends the trades in (last sent instant, now].
* Clock changes (``POST /_emulator/clock``): a jump back pauses the streams until the
  clock passes what they already sent; a jump ahead is streamed in full, unless it
  exceeds MAX_CATCHUP_MS, which closes the connection (a gap the client can see).
* ``candle``: the open candle whenever it changes, and the final state of every candle
  that closed since the last wake (several at a fast clock).
* Per-IP limits (``ws_max_connections``, ``ws_max_subscriptions``): a connection over
  the limit is refused at the handshake with HTTP 429; a subscribe over it gets
  ``{"channel":"error","data":"Cannot subscribe to more than N channels."}`` (the
  message real clients report) and the socket stays open.
* ``ws_drop`` writes WS_DROP_FRAME, which the fault gateway in front turns into a TCP
  RST (no close frame); without the gateway the client receives that odd text frame,
  then a close frame.

Frame shapes (key order, strings vs numbers) follow the real frames recorded in
``tests/fixtures/ws_messages_real.jsonl``.

granian (2.8) notes: a second ``receive`` while one is pending raises
``RSGIProtocolError``, so one reader task owns it for the connection's life; sends go
through one lock (granian's transport guards its sink with a lock of its own, try-locked
in some versions), which also keeps a subscription's ack ahead of its data;
``proto.close(status)`` returns None and ignores the status once the socket was accepted:
the client always sees a close frame without a code (1005), so a ``ws_disconnect`` fault
is a bare close, and a TCP reset (``ws_drop``) needs the fault gateway; ``close(status)``
before ``accept`` refuses the handshake with that HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from granian._granian import RSGIProtocolClosed, RSGIProtocolError

from hyperlake.emulator.config import RESET_MARKER
from hyperlake.emulator.market import Candle, Trade, format_decimal
from hyperlake.emulator.state import EmulatorState
from hyperlake.emulator.universe import Instrument
from hyperlake.schemas.intervals import HOUR_MS, HYPERLIQUID_INTERVALS, bucket_start

GREETING = "Websocket connection established."
PARSE_ERROR = "Error parsing JSON into valid websocket request: "
TICK_S = 0.1
TICKS_PER_FAULT_CHECK = 10  # faults are drawn once a second
MAX_TRADES_PER_FRAME = 100
#: More emulated time than this between two wakes (a clock jump, or a very fast clock
#: with a stalled loop) closes the connection instead of streaming the gap.
MAX_CATCHUP_MS = 6 * HOUR_MS
CLOSE_NORMAL = 1000
#: HTTP status of a handshake refused for the per-IP connection limit.
REFUSED_STATUS = 429
KIND_CLOSE = 0  # granian.rsgi.WebsocketMessageType.close
_TRANSPORT_ERRORS = (RSGIProtocolClosed, RSGIProtocolError)  # granian.rsgi re-exports

JsonDict = dict[str, Any]


class InvalidRequest(ValueError):
    """The text is not a websocket request the server understands."""


@dataclass(frozen=True)
class Request:
    method: str  # "ping" | "subscribe" | "unsubscribe"
    subscription: dict[str, str] | None = None  # canonical key order

    @property
    def key(self) -> str:
        return compact(self.subscription)


@dataclass
class TradesSub:
    coin: str
    inst: Instrument
    seen_ms: int  # every trade with time <= seen_ms was sent (or replayed at subscribe)


@dataclass
class CandleSub:
    coin: str
    interval: str
    inst: Instrument
    open_ms: int  # open time of the candle last looked at
    sent: tuple[int, ...] | None  # values of the candle last sent (or current at subscribe)
    seen_ms: int  # the clock when last looked at


Subscription = TradesSub | CandleSub


def compact(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- requests -----------------------------------------------------------------------


def _field(obj: JsonDict, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(name)
    return value


def _subscription(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidRequest("subscription")
    kind = _field(raw, "type")
    if kind == "trades":
        return {"type": "trades", "coin": _field(raw, "coin")}
    if kind == "candle":
        interval = _field(raw, "interval")
        if interval not in HYPERLIQUID_INTERVALS:
            raise InvalidRequest("interval")
        return {"type": "candle", "interval": interval, "coin": _field(raw, "coin")}
    raise InvalidRequest(f"subscription type {kind!r}")


def parse_request(text: str) -> Request:
    """The request in ``text``; InvalidRequest when the real server would answer
    with its parse error (bad JSON, missing or mistyped fields, unknown types)."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("json") from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("not an object")
    method = _field(raw, "method")
    if method == "ping":
        return Request("ping")
    if method in ("subscribe", "unsubscribe"):
        return Request(method, _subscription(raw.get("subscription")))
    raise InvalidRequest(f"method {method!r}")


# -- frames -------------------------------------------------------------------------


def error_frame(message: str) -> str:
    return compact({"channel": "error", "data": message})


def too_many_subscriptions(limit: int) -> str:
    return error_frame(f"Cannot subscribe to more than {limit} channels.")


def ack_frame(request: Request) -> str:
    return compact({"channel": "subscriptionResponse",
                    "data": {"method": request.method, "subscription": request.subscription}})


PONG_FRAME = compact({"channel": "pong"})


def _digest_hex(text: str, size: int) -> str:
    return "0x" + hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def trade_hash(tid: int) -> str:
    """A deterministic transaction hash for a trade id: 0x and 64 hex digits."""
    return _digest_hex(f"hash/{tid}", 32)


def trade_users(tid: int) -> list[str]:
    """Deterministic [buyer, seller] addresses for a trade id: 0x and 40 hex digits."""
    return [_digest_hex(f"buyer/{tid}", 20), _digest_hex(f"seller/{tid}", 20)]


def trade_dict(coin: str, inst: Instrument, trade: Trade) -> JsonDict:
    return {
        "coin": coin,
        "side": "B" if trade.is_buy else "A",
        "px": format_decimal(trade.ticks, inst.px_decimals, ".0"),
        "sz": format_decimal(trade.lots, inst.sz_decimals, ".0"),
        "time": trade.time_ms,
        "hash": trade_hash(trade.tid),
        "tid": trade.tid,
        "users": trade_users(trade.tid),
    }


def trades_frames(coin: str, inst: Instrument, trades: list[Trade]) -> list[str]:
    """``trades`` frames of at most MAX_TRADES_PER_FRAME trades each."""
    return [
        compact({"channel": "trades",
                 "data": [trade_dict(coin, inst, t)
                          for t in trades[i:i + MAX_TRADES_PER_FRAME]]})
        for i in range(0, len(trades), MAX_TRADES_PER_FRAME)
    ]


def candle_dict(coin: str, interval: str, inst: Instrument, candle: Candle) -> JsonDict:
    px = inst.px_decimals
    return {
        "t": candle.open_ms,
        "T": candle.close_ms,
        "s": coin,
        "i": interval,
        "o": format_decimal(candle.o, px, ".0"),
        "c": format_decimal(candle.c, px, ".0"),
        "h": format_decimal(candle.h, px, ".0"),
        "l": format_decimal(candle.low, px, ".0"),
        "v": format_decimal(candle.volume_lots, inst.sz_decimals, ".0"),
        "n": candle.trades,
    }


def candle_frame(coin: str, interval: str, inst: Instrument, candle: Candle) -> str:
    return compact({"channel": "candle", "data": candle_dict(coin, interval, inst, candle)})


def _candle_values(candle: Candle) -> tuple[int, ...]:
    return (candle.open_ms, candle.o, candle.h, candle.low, candle.c, candle.volume_lots,
            candle.trades)


# -- connection ---------------------------------------------------------------------


class Connection:
    """One accepted websocket: its subscriptions and the two tasks that serve it."""

    def __init__(self, transport: Any, state: EmulatorState, client: str) -> None:
        self.transport = transport
        self.state = state
        self.client = client  # the client's IP, which the per-IP limits count against
        self.subs: dict[str, Subscription] = {}
        self.send_lock = asyncio.Lock()
        self.last_in = time.monotonic()
        self.stalled = False

    async def send(self, text: str) -> bool:
        """Send one text frame; False when the client is gone."""
        async with self.send_lock:
            return await self._send_locked(text)

    async def _send_locked(self, text: str) -> bool:
        try:
            await self.transport.send_str(text)
        except _TRANSPORT_ERRORS:
            return False
        self.state.stats["ws_frames_out"] += 1
        return True

    # -- reading --------------------------------------------------------------------

    async def read_loop(self) -> None:
        """Answer client messages until the client leaves or asks for something that
        makes the real server drop the connection."""
        while True:
            try:
                message = await self.transport.receive()
            except _TRANSPORT_ERRORS:
                return
            if message.kind == KIND_CLOSE:
                return
            data = message.data
            text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
            self.last_in = time.monotonic()
            self.state.stats["ws_messages_in"] += 1
            if not await self.handle(text):
                return

    async def handle(self, text: str) -> bool:
        """Answer one client message; False when the connection must close."""
        if self.stalled:
            return True
        try:
            request = parse_request(text)
        except InvalidRequest:
            return await self.send(error_frame(PARSE_ERROR + text))
        if request.method == "ping":
            return await self.send(PONG_FRAME)
        if request.method == "subscribe":
            return await self.subscribe(request)
        return await self.unsubscribe(request)

    async def subscribe(self, request: Request) -> bool:
        if request.key in self.subs:
            return await self.send(error_frame(f"Already subscribed: {request.key}"))
        sub = self.new_subscription(request)
        if sub is None:
            return False  # unknown coin: the real server closes the socket
        quota = self.state.ws_subscriptions
        async with self.send_lock:  # the ack and the replay go out before any live data
            if not quota.try_take(self.client):
                self.state.stats["ws_subscriptions_refused"] += 1
                return await self._send_locked(too_many_subscriptions(quota.limit))
            self.subs[request.key] = sub
            for frame in (ack_frame(request), *self.replay(sub)):
                if not await self._send_locked(frame):
                    return False
            return True

    async def unsubscribe(self, request: Request) -> bool:
        if request.key not in self.subs:
            return await self.send(error_frame(f"Already unsubscribed: {request.key}"))
        async with self.send_lock:
            del self.subs[request.key]
            self.state.ws_subscriptions.give_back(self.client)
            return await self._send_locked(ack_frame(request))

    def release(self) -> None:
        """Give back what this connection holds of the per-IP subscription limit."""
        if self.subs:
            self.state.ws_subscriptions.give_back(self.client, len(self.subs))
            self.subs.clear()

    def replay(self, sub: Subscription) -> list[str]:
        """The recent trades a ``trades`` subscription starts with (those up to the
        instant it was made); nothing for a candle subscription."""
        count = self.state.config.ws_replay_trades
        if not isinstance(sub, TradesSub) or count == 0:
            return []
        trades = self.state.market.recent_trades(sub.coin, sub.seen_ms, count)
        self.state.stats["ws_trades_replayed"] += len(trades)
        return trades_frames(sub.coin, sub.inst, trades)

    def new_subscription(self, request: Request) -> Subscription | None:
        spec = request.subscription
        assert spec is not None
        coin = spec["coin"]
        try:
            inst = self.state.market.instrument(coin)
        except KeyError:
            return None
        now = self.state.now_ms()
        if spec["type"] == "trades":
            return TradesSub(coin, inst, now)
        interval = spec["interval"]
        open_ms = bucket_start(now, interval)
        current = self.state.market.candle(coin, interval, open_ms, now)
        return CandleSub(coin, interval, inst, open_ms,
                         None if current is None else _candle_values(current), now)

    # -- streaming ------------------------------------------------------------------

    async def pump(self) -> None:
        """Every tick: close when idle or on a disconnect fault, else stream."""
        idle_timeout = self.state.config.ws_idle_timeout_s
        tick = 0
        while True:
            await asyncio.sleep(TICK_S)
            tick += 1
            if time.monotonic() - self.last_in >= idle_timeout:
                return
            if tick % TICKS_PER_FAULT_CHECK == 0 and await self.draw_faults():
                return
            if not self.stalled and not await self.stream(self.state.now_ms()):
                return

    async def draw_faults(self) -> bool:
        """Draw this second's faults; True when the socket must be dropped."""
        faults = self.state.faults
        stats = self.state.stats
        if not self.stalled and faults.pick_ws("ws_stall") is not None:
            self.stalled = True
            stats["ws_stalls"] += 1
        if faults.pick_ws("ws_disconnect") is not None:
            stats["ws_disconnects"] += 1
            return True
        if faults.pick_ws("ws_drop") is not None:
            stats["ws_drops"] += 1
            await self.send(RESET_MARKER.decode())  # the gateway resets the TCP here
            return True
        return False

    async def stream(self, now_ms: int) -> bool:
        """Send every subscription's news up to ``now_ms``; False when the connection
        must end (the client is gone, or the clock jumped too far ahead)."""
        async with self.send_lock:
            for sub in list(self.subs.values()):
                if now_ms - sub.seen_ms > MAX_CATCHUP_MS:
                    self.state.stats["ws_catchup_closes"] += 1
                    return False
                if isinstance(sub, TradesSub):
                    frames = self.trade_news(sub, now_ms)
                else:
                    frames = self.candle_news(sub, now_ms)
                for frame in frames:
                    if not await self._send_locked(frame):
                        return False
        return True

    def trade_news(self, sub: TradesSub, now_ms: int) -> list[str]:
        """Every trade in (seen_ms, now_ms]; nothing while the clock is frozen or behind
        what was already sent (a jump back)."""
        if now_ms <= sub.seen_ms:
            return []
        trades = self.state.market.trades(sub.coin, sub.seen_ms + 1, now_ms + 1)
        sub.seen_ms = now_ms
        self.state.stats["ws_trades_out"] += len(trades)
        return trades_frames(sub.coin, sub.inst, trades)

    def candle_news(self, sub: CandleSub, now_ms: int) -> list[str]:
        """The final state of every candle that closed since the last wake (unless it
        was sent as it is), then the open candle (if it changed)."""
        if now_ms <= sub.seen_ms:
            return []
        market = self.state.market
        open_ms = bucket_start(now_ms, sub.interval)
        candles = []
        if sub.open_ms < open_ms:
            candles = market.candles(sub.coin, sub.interval, sub.open_ms, open_ms - 1, now_ms,
                                     limit=1 << 30)
        current = market.candle(sub.coin, sub.interval, open_ms, now_ms)
        frames = []
        for candle in (*candles, current):
            if candle is None or _candle_values(candle) == sub.sent:
                continue
            sub.sent = _candle_values(candle)
            frames.append(candle_frame(sub.coin, sub.interval, sub.inst, candle))
        sub.open_ms, sub.seen_ms = open_ms, now_ms
        return frames


async def serve_websocket(proto: Any, state: EmulatorState, client: str = "127.0.0.1") -> None:
    """Serve one RSGI websocket (``scope.proto == "ws"``) of the client at IP ``client``
    until either side ends it; refuse the handshake (HTTP 429) when that IP already
    holds ``ws_max_connections``."""
    if not state.ws_connections.try_take(client):
        state.stats["ws_connections_refused"] += 1
        proto.close(REFUSED_STATUS)
        return
    try:
        await _serve_accepted(proto, state, client)
    finally:
        state.ws_connections.give_back(client)


async def _serve_accepted(proto: Any, state: EmulatorState, client: str) -> None:
    try:
        transport = await proto.accept()
    except _TRANSPORT_ERRORS:
        return
    state.stats["ws_connections"] += 1
    conn = Connection(transport, state, client)
    if not await conn.send(GREETING):
        proto.close(CLOSE_NORMAL)
        return
    tasks = [asyncio.create_task(conn.read_loop()), asyncio.create_task(conn.pump())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn.release()
        proto.close(CLOSE_NORMAL)
