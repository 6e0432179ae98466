"""The WebSocket side of the streamer: connections that stay up, or say they did not.

Each connection carries a share of the coins (the exchange allows 100 connections and
1000 subscriptions per IP; ``COINS_PER_CONNECTION`` keeps one connection's failure from
stalling the rest). A connection subscribes its coins, sends ``{"method":"ping"}``
well inside the server's 60 s idle timeout, and is declared stale when no frame at
all (a pong included) arrives within ``stale_s``. Whatever ends it — a close, a reset,
staleness, a refused handshake — is reported to the session (``lost``), and it
reconnects after a backoff with full jitter, subscribing everything again. The frames
themselves are handed to the session as they come; this module decides nothing about
trades.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from hyperlake.net.retry import Backoff
from hyperlake.pipelines.stream.trades import (
    Frame,
    MalformedFrame,
    ServerError,
    SubscriptionAck,
    TradeBatch,
    parse_frame,
)

#: Coins per connection: well under the exchange's 1000 subscriptions per IP.
COINS_PER_CONNECTION = 50
PING = orjson.dumps({"method": "ping"}).decode()
#: Reconnects back off up to 30 s, with full jitter, and never give up.
RECONNECT_BACKOFF = Backoff(base=0.5, cap=30.0, max_attempts=1_000_000)


@dataclass(frozen=True)
class FeedSettings:
    url: str
    ping_s: float = 20.0  # the server drops a connection idle for 60 s
    stale_s: float = 45.0  # no frame for this long: the connection is dead
    open_timeout_s: float = 10.0
    backoff: Backoff = RECONNECT_BACKOFF


class FeedEvents(Protocol):
    """What the session hears from the connections (called on the event loop)."""

    def subscribed(self, coin: str) -> None: ...
    def trades(self, batch: TradeBatch, replay_of: str | None) -> None: ...
    def frame_seen(self, connection: int) -> None: ...
    def lost(self, connection: int, coins: Sequence[str], reason: str) -> None: ...
    def connected(self, connection: int, coins: Sequence[str]) -> None: ...
    def server_error(self, connection: int, text: str) -> None: ...


def shares(coins: Sequence[str], per_connection: int = COINS_PER_CONNECTION
           ) -> list[list[str]]:
    """The coins of each connection."""
    return [list(coins[i:i + per_connection]) for i in range(0, len(coins), per_connection)]


def subscribe_message(coin: str) -> str:
    return orjson.dumps({"method": "subscribe",
                         "subscription": {"type": "trades", "coin": coin}}).decode()


class Connection:
    """One WebSocket connection carrying ``coins``, for as long as ``stop`` is unset."""

    def __init__(self, index: int, coins: Sequence[str], settings: FeedSettings,
                 events: FeedEvents, rng: random.Random | None = None) -> None:
        self.index = index
        self.coins = list(coins)
        self.settings = settings
        self.events = events
        self.rng = rng or random.Random()
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            reason = await self._session(stop)
            if stop.is_set():
                return
            self.events.lost(self.index, self.coins, reason)
            self.reconnects += 1
            failures += 1
            pause = self.settings.backoff.delay(min(failures, 16) - 1, None, self.rng)
            try:
                await asyncio.wait_for(stop.wait(), timeout=pause)
            except TimeoutError:
                continue

    async def _session(self, stop: asyncio.Event) -> str:
        """One connection's life; the reason it ended."""
        try:
            async with connect(self.settings.url, ping_interval=None, close_timeout=1,
                               open_timeout=self.settings.open_timeout_s,
                               max_size=2**24, max_queue=None) as ws:
                for coin in self.coins:
                    await ws.send(subscribe_message(coin))
                self.events.connected(self.index, self.coins)
                return await self._pump(ws, stop)
        except websockets.exceptions.InvalidStatus as exc:
            return f"handshake refused (HTTP {exc.response.status_code})"
        except websockets.exceptions.ConnectionClosed as exc:
            return _closed_reason(exc)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            return f"{type(exc).__name__}: {exc}".strip().rstrip(":")

    async def _pump(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        loop = asyncio.get_running_loop()
        last_frame = loop.time()
        next_ping = last_frame + self.settings.ping_s
        replay_of: str | None = None  # the coin whose subscription was acknowledged last
        while not stop.is_set():
            now = loop.time()
            if now - last_frame >= self.settings.stale_s:
                return f"stale: no frame for {self.settings.stale_s:g} s"
            if now >= next_ping:
                await ws.send(PING)
                next_ping = now + self.settings.ping_s
            wait = min(next_ping, last_frame + self.settings.stale_s) - now
            try:
                message = await asyncio.wait_for(ws.recv(decode=False),
                                                 timeout=max(wait, 0.001))
            except TimeoutError:
                continue
            last_frame = loop.time()
            self.events.frame_seen(self.index)
            replay_of = self._handle(message, replay_of)
        await ws.close()
        return "stopped"

    def _handle(self, message: bytes | str, replay_of: str | None) -> str | None:
        """Dispatch one frame. The server sends a subscription's replay right after its
        acknowledgement, before anything else: so the frame after an ack (returned
        here) is that coin's replay if it is a trades frame of the coin, and no other
        frame is."""
        try:
            frame: Frame = parse_frame(message)
        except MalformedFrame as exc:
            self.events.server_error(self.index, str(exc))
            return None
        if isinstance(frame, TradeBatch):
            coin = frame.coin or replay_of  # an empty replay names no coin
            if coin is not None:
                self.events.trades(frame, replay_of if coin == replay_of else None)
        elif isinstance(frame, SubscriptionAck):
            coin = frame.subscription.get("coin")
            if frame.method == "subscribe" and isinstance(coin, str):
                self.events.subscribed(coin)
                return coin
        elif isinstance(frame, ServerError):
            self.events.server_error(self.index, frame.message)
        return None


def _closed_reason(exc: websockets.exceptions.ConnectionClosed) -> str:
    if exc.rcvd is None:
        return "connection dropped (no close frame)"
    reason = f" {exc.rcvd.reason}" if exc.rcvd.reason else ""
    return f"closed by the server ({exc.rcvd.code}{reason})"
