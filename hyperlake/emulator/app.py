"""The emulator's RSGI application (served by granian).

Routes:
  POST /info                               Hyperliquid
  POST /hydromancer/info                   Hydromancer (``Authorization: Bearer KEY``)
  GET  /dwellir/{KEY}/v1/candles?...       Dwellir index
  WS   /ws                                 Hyperliquid WebSocket
  GET  /_emulator/health | /_emulator/stats
  POST /_emulator/clock | /_emulator/faults | /_emulator/reset-stats

Faults are drawn before budgets: an injected failure costs the client no weight.
The stream-level faults (timeout, truncated, stream_reset) write RESET_MARKER into the
body; the fault gateway in front of the server turns it into RST_STREAM (h2c) or a TCP
RST (HTTP/1.1). Without the gateway the client gets a body cut short of its declared
Content-Length, ending in the marker.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any

import orjson

from hyperlake.emulator.config import RESET_MARKER, ClockConfig, EmulatorConfig, FaultRule
from hyperlake.emulator.dwellir import DwellirIndex
from hyperlake.emulator.info_api import HydromancerInfo, HyperliquidInfo, parse_body
from hyperlake.emulator.ratelimit import WeightLimiter, client_ip
from hyperlake.emulator.replies import (
    JSON,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    NULL_500,
    TEXT,
    UNSUPPORTED_MEDIA,
    Reply,
    json_reply,
)
from hyperlake.emulator.state import EmulatorState
from hyperlake.emulator.ws import serve_websocket
from hyperlake.net.pacing import TokenBucket
from hyperlake.schemas.exchange import HYDROMANCER_WEIGHT, INFO_BASE_WEIGHT

CONFIG_ENV = "HYPERLAKE_EMULATOR_CONFIG"
DWELLIR_PREFIX = "/dwellir/"
DWELLIR_SUFFIX = "/v1/candles"
_BAD_GATEWAY = Reply(502, b"<html><head><title>502 Bad Gateway</title></head><body>"
                          b"<center><h1>502 Bad Gateway</h1></center></body></html>",
                     "text/html")
_UNAVAILABLE = Reply(503, b"Service Unavailable", TEXT)

#: A service handler: ``(scope, proto, charge)``; ``charge=False`` answers without
#: touching the client's budget (used when a fault replaces the answer).
Handler = Callable[[Any, Any, bool], Awaitable[Reply]]


async def send_reset(proto: Any, status: int, headers: list[tuple[str, str]],
                     prefix: bytes, declared: int) -> None:
    """Stream a response whose body is ``prefix`` then RESET_MARKER, for the gateway to
    reset at the marker. The declared Content-Length is at least one byte more than what
    is sent: granian cuts an HTTP/1.1 body at its declared length (the marker must fit),
    and a response short of its length fails a client even with no gateway in front."""
    declared = max(declared, len(prefix) + len(RESET_MARKER) + 1)
    transport = proto.response_stream(status, [*headers, ("content-length", str(declared))])
    if prefix:
        await transport.send_bytes(prefix)
    await transport.send_bytes(RESET_MARKER)


def load_recorded_funding() -> dict[str, list[dict[str, Any]]]:
    text = resources.files("hyperlake.emulator").joinpath(
        "data", "fundingHistory_BTC_2023_noEndTime_1038rows.json").read_text()
    rows: list[dict[str, Any]] = json.loads(text)
    return {"BTC": rows}


class EmulatorApp:
    def __init__(self, config: EmulatorConfig) -> None:
        self.state = EmulatorState(config)
        self._date = HttpDate()
        market = self.state.market
        self.info = HyperliquidInfo(market, load_recorded_funding(), config.funding_nan_every)
        self.hydromancer = HydromancerInfo(market)
        self.dwellir = DwellirIndex(market)
        self.info_weights = WeightLimiter(config.info_weight_per_minute)
        self.hydromancer_weights = WeightLimiter(config.hydromancer_weight_per_minute)
        self.dwellir_buckets: dict[str, TokenBucket] = {}
        self._next_backend = 0

    async def __call__(self, scope: Any, proto: Any) -> None:
        if scope.proto == "ws":
            self.state.stats["ws_requests"] += 1
            await serve_websocket(proto, self.state, client_ip(scope.client))
            return
        path: str = scope.path
        if path.startswith(DWELLIR_PREFIX):
            await self._respond(proto, "dwellir", scope, self._dwellir)
        elif path == "/info":
            await self._respond(proto, "info", scope, self._info)
        elif path == "/hydromancer/info":
            await self._respond(proto, "hydromancer", scope, self._hydromancer)
        elif path.startswith("/_emulator/"):
            self._send(proto, await self._control(scope, proto))
        else:
            self._send(proto, NOT_FOUND)

    # -- plumbing ---------------------------------------------------------------------

    async def _respond(self, proto: Any, endpoint: str, scope: Any, handler: Handler) -> None:
        stats = self.state.stats
        stats[f"{endpoint}_requests"] += 1
        rule = self.state.faults.pick(endpoint)
        if rule is None:
            reply: Reply | None = await handler(scope, proto, True)
        else:
            stats[f"fault_{rule.kind}"] += 1
            reply = await self._fault_reply(rule, endpoint, proto,
                                            lambda charge: handler(scope, proto, charge))
        if reply is not None:
            stats[f"{endpoint}_status_{reply.status}"] += 1
            self._send(proto, reply)

    def _send(self, proto: Any, reply: Reply) -> None:
        headers = reply.header_list()
        headers.append(("date", self._date.header(self.state.now_ms())))
        proto.response_bytes(reply.status, headers, reply.body)

    async def _fault_reply(self, rule: FaultRule, endpoint: str, proto: Any,
                           normal: Callable[[bool], Awaitable[Reply]]) -> Reply | None:
        """The answer that replaces the normal one, or None when the fault has streamed
        a response to be reset itself. ``normal(charge)`` computes the normal answer."""
        kind = rule.kind
        canned = self._canned_fault(kind, endpoint)
        if canned is not None:
            return canned
        if kind == "slow":  # a late answer, but a real one: it costs what it costs
            await asyncio.sleep(rule.delay)
            return await normal(True)
        if kind == "timeout":
            await asyncio.sleep(rule.delay)
            await send_reset(proto, 200, [("content-type", JSON)], b"", 0)
            return None
        if kind not in ("malformed", "truncated", "stream_reset"):
            return await normal(True)  # a `*` websocket rule: nothing to do over HTTP
        reply = await normal(False)
        body = reply.body
        if kind == "malformed":
            return Reply(200, body[: max(1, len(body) // 2)], JSON)
        # truncated: half the body, then the reset; stream_reset: the headers only.
        prefix = body[: len(body) // 2] if kind == "truncated" else b""
        await send_reset(proto, reply.status, reply.header_list(), prefix, len(body))
        return None

    @staticmethod
    def _canned_fault(kind: str, endpoint: str) -> Reply | None:
        if kind in ("429", "429_retry_after"):
            body = b"null" if endpoint == "info" else b'{"error":"rate limit exceeded"}'
            headers = (("retry-after", "1"),) if kind == "429_retry_after" else ()
            return Reply(429, body, JSON, headers)
        if kind == "500":
            return NULL_500 if endpoint == "info" else json_reply({"error": "internal"}, 500)
        if kind == "502":
            return _BAD_GATEWAY
        if kind == "503":
            return _UNAVAILABLE
        return None

    # -- services -----------------------------------------------------------------------

    async def _info(self, scope: Any, proto: Any, charge: bool) -> Reply:
        if scope.method != "POST":
            return METHOD_NOT_ALLOWED
        if not (scope.headers.get("content-type") or "").startswith("application/json"):
            return UNSUPPORTED_MEDIA
        parsed = parse_body(await proto())
        if isinstance(parsed, Reply):
            return parsed
        if not charge:
            return self.info.handle(parsed, self.state.now_ms())
        bucket = self.info_weights.bucket(client_ip(scope.client))
        if not bucket.try_take(INFO_BASE_WEIGHT):
            return Reply(429, b"null", JSON)
        reply = self.info.handle(parsed, self.state.now_ms())
        bucket.charge(reply.weight)
        self.state.stats["info_weight"] += INFO_BASE_WEIGHT + reply.weight
        return reply

    async def _hydromancer(self, scope: Any, proto: Any, charge: bool) -> Reply:
        if scope.method != "POST":
            return METHOD_NOT_ALLOWED
        key = bearer_token(scope.headers.get("authorization") or "")
        if key is None or key not in self.state.config.hydromancer_keys:
            return json_reply({"error": "Unauthorized: missing or invalid API key"}, 401)
        parsed = parse_body(await proto())
        if isinstance(parsed, Reply):
            return parsed
        bucket = self.hydromancer_weights.bucket(key)
        if charge and not bucket.try_take(HYDROMANCER_WEIGHT):
            return json_reply({"error": "rate limit exceeded"}, 429)
        return self.hydromancer.handle(parsed, self.state.now_ms())

    async def _dwellir(self, scope: Any, proto: Any, charge: bool) -> Reply:
        path: str = scope.path
        if scope.method != "GET" or not path.endswith(DWELLIR_SUFFIX):
            return NOT_FOUND
        key = path[len(DWELLIR_PREFIX): -len(DWELLIR_SUFFIX)]
        rate = self.state.config.dwellir_rate(key)
        if rate is None:
            return json_reply({"error": "invalid API key"}, 401)
        backend, fresh = self._backend(cookie_header(scope.headers))
        self.state.stats[f"dwellir_backend_{backend}"] += 1
        headers: tuple[tuple[str, str], ...] = (("x-dwellir-backend", backend),)
        if fresh:
            headers += (("set-cookie", f"DWSESSION={backend}; Path=/; HttpOnly"),)
        bucket = self.dwellir_buckets.get(key)
        if bucket is None:
            bucket = self.dwellir_buckets[key] = TokenBucket(rate, rate)
        if charge and not bucket.try_take(1):
            return Reply(429, b'{"error":"rate limit exceeded"}', JSON, headers)
        reply = self.dwellir.candle(scope.query_string, self.state.now_ms())
        return Reply(reply.status, reply.body, reply.content_type, headers)

    def _backend(self, cookie_header: str | None) -> tuple[str, bool]:
        """The backend a DWSESSION cookie pins to, or a new one (round robin)."""
        if cookie_header and "DWSESSION=" in cookie_header:
            cookie: SimpleCookie = SimpleCookie(cookie_header)
            morsel = cookie.get("DWSESSION")
            names = {f"dw-{i}" for i in range(self.state.config.dwellir_backends)}
            if morsel is not None and morsel.value in names:
                return morsel.value, False
        backend = f"dw-{self._next_backend % self.state.config.dwellir_backends}"
        self._next_backend += 1
        return backend, True

    # -- control --------------------------------------------------------------------------

    async def _control(self, scope: Any, proto: Any) -> Reply:
        action = scope.path.removeprefix("/_emulator/")
        state = self.state
        if action == "health":
            return json_reply({"ok": True, "now_ms": state.now_ms(), "pid": os.getpid()})
        if action == "stats":
            return json_reply(dict(state.stats))
        if scope.method != "POST":
            return METHOD_NOT_ALLOWED
        body = orjson.loads(await proto() or b"{}")
        if action == "reset-stats":
            state.stats.clear()
            return json_reply({"ok": True})
        if action == "clock":
            state.set_clock(ClockConfig.running_from(int(body["start_ms"]),
                                                     float(body.get("rate", 0.0))))
            return json_reply({"ok": True, "now_ms": state.now_ms()})
        if action == "faults":
            rules = tuple(FaultRule(**f) for f in body.get("faults", []))
            state.set_faults(rules, int(body.get("seed", 0)))
            return json_reply({"ok": True})
        return NOT_FOUND


def bearer_token(authorization: str) -> str | None:
    """The token of ``Authorization: Bearer TOKEN`` (scheme name case-insensitive, as
    RFC 9110 section 11.1 has it), or None for any other scheme or a bare token."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class HttpDate:
    """The ``Date`` header of the emulated clock (real servers send their own clock's),
    formatted once per emulated second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def header(self, now_ms: int) -> str:
        second = now_ms // 1000
        if second != self._second:
            self._second = second
            self._text = email.utils.formatdate(second, usegmt=True)
        return self._text


def cookie_header(headers: Any) -> str | None:
    """Every ``cookie`` field of the request joined with "; ": an HTTP/2 client may split
    its cookies over several fields (RFC 9113 section 8.2.3)."""
    if headers.get("cookie") is None:  # the common case costs one lookup
        return None
    return "; ".join(value for name, value in headers.items() if name.lower() == "cookie")


def create_app() -> EmulatorApp:
    """granian factory: the configuration comes from the environment (JSON)."""
    raw = os.environ.get(CONFIG_ENV)
    config = EmulatorConfig.from_json(raw) if raw else EmulatorConfig()
    return EmulatorApp(config)
