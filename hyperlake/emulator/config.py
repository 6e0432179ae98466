"""Emulator configuration: one JSON-serialisable value handed to the server process.

Everything that makes a run reproducible lives here: the market seed, the clock,
rate-limit budgets, API keys and the fault plan.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from hyperlake.schemas.exchange import DWELLIR_PLANS

#: Dwellir plan ceilings, requests per second (404s count too).
#: Where the emulator's Dwellir archive begins.

#: Fault kinds and what they do. The stream-level ones (timeout, truncated, stream_reset)
#: need the fault gateway in front of the server to become real resets (see RESET_MARKER).
HTTP_FAULT_KINDS: dict[str, str] = {
    "429": "answer 429 without Retry-After",
    "429_retry_after": "answer 429 with Retry-After: 1",
    "500": "answer 500 (body null on /info)",
    "502": "answer 502 Bad Gateway (an HTML body, as a proxy would)",
    "503": "answer 503 Service Unavailable",
    "slow": "delay the answer by `delay` seconds, then answer normally",
    "timeout": "hold the request for `delay` seconds (default 2), then reset it after the "
               "response headers (h2c: RST_STREAM; HTTP/1.1: TCP RST)",
    "truncated": "declare the full Content-Length, send half the body, then reset the stream "
                 "(h2c: RST_STREAM; HTTP/1.1: TCP RST)",
    "malformed": "answer 200 with a body that is not valid JSON",
    "stream_reset": "send the response headers, then reset the stream before any body byte "
                    "(h2c: RST_STREAM; HTTP/1.1: TCP RST)",
    "reset": "TCP RST on the connection mid-response (through the fault gateway)",
    "goaway": "HTTP/2 GOAWAY then close (through the fault gateway; h2c only)",
}
WS_FAULT_KINDS: dict[str, str] = {
    "ws_stall": "stop sending data frames on the socket (it stays open)",
    "ws_disconnect": "close the socket with a close frame (no status code: 1005)",
    "ws_drop": "drop the TCP connection abruptly: a TCP RST, no close frame (through the "
               "fault gateway)",
}
ENDPOINTS: tuple[str, ...] = ("info", "hydromancer", "dwellir", "ws", "*")
GATEWAY_FAULT_KINDS = ("reset", "goaway")
#: Kinds the gateway must be there for: its own, and ``ws_drop`` (drawn by the server,
#: which marks the place of the reset in the stream, like the HTTP stream faults).
NEEDS_GATEWAY = (*GATEWAY_FAULT_KINDS, "ws_drop")
#: Written by the app into a response body where the stream must be reset. granian cannot
#: reset an HTTP/2 stream on request (an exception after ``response_stream`` ends it
#: cleanly), so the fault gateway does it: it forwards the bytes before the marker, then
#: sends RST_STREAM (h2c) or aborts the connection with a TCP RST (HTTP/1.1). JSON bodies
#: never contain a NUL byte, so the marker cannot occur in a normal answer. Without the
#: gateway the marker reaches the client as garbage inside a body cut short of its
#: declared Content-Length.
RESET_MARKER = b"\x00hyperlake-emulator-reset\x00"
#: What the websocket writes where the fault gateway must reset the TCP connection
#: (``ws_drop``): an unmasked text frame (FIN, opcode 1, 26-byte payload) carrying
#: RESET_MARKER, so the gateway can cut the byte stream before the frame starts. No
#: frame of the real stream is text with a NUL byte, so it cannot occur otherwise.
WS_DROP_FRAME = bytes((0x81, len(RESET_MARKER))) + RESET_MARKER


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class FaultRule:
    endpoint: str  # one of ENDPOINTS
    kind: str  # one of HTTP_FAULT_KINDS or WS_FAULT_KINDS
    rate: float  # probability per request (per second of stream for ws faults)
    delay: float = 2.0  # seconds, for slow/timeout

    def validate(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ConfigError(f"fault endpoint {self.endpoint!r}: expected one of {ENDPOINTS}")
        if self.kind not in HTTP_FAULT_KINDS and self.kind not in WS_FAULT_KINDS:
            kinds = sorted({*HTTP_FAULT_KINDS, *WS_FAULT_KINDS})
            raise ConfigError(f"fault kind {self.kind!r}: expected one of {kinds}")
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"fault rate {self.rate}: must be within [0, 1]")
        if self.delay < 0:
            raise ConfigError(f"fault delay {self.delay}: must be >= 0")

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """``endpoint:kind:rate[:delay]``, e.g. ``dwellir:429:0.05`` or ``*:slow:0.1:3``."""
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise ConfigError(f"--fault {text!r}: expected endpoint:kind:rate[:delay]")
        try:
            rule = cls(parts[0], parts[1], float(parts[2]),
                       float(parts[3]) if len(parts) == 4 else 2.0)
        except ValueError as exc:
            raise ConfigError(f"--fault {text!r}: rate and delay must be numbers") from exc
        rule.validate()
        return rule


@dataclass(frozen=True)
class ClockConfig:
    """``now = start_ms + rate * (wall seconds since the anchor) * 1000``.
    rate 0 freezes the clock; rate 1 runs it in real time; 60 runs a minute a second."""

    start_ms: int
    rate: float = 0.0
    anchor_wall: float = 0.0  # time.time() at which now == start_ms

    def now_ms(self, wall: float | None = None) -> int:
        if self.rate == 0:
            return self.start_ms
        elapsed = (time.time() if wall is None else wall) - self.anchor_wall
        return self.start_ms + int(self.rate * elapsed * 1000)

    @classmethod
    def running_from(cls, start_ms: int, rate: float) -> ClockConfig:
        return cls(start_ms, rate, time.time())


@dataclass(frozen=True)
class EmulatorConfig:
    seed: int = 0
    clock: ClockConfig = field(default_factory=lambda: ClockConfig(int(time.time() * 1000), 1.0,
                                                                   time.time()))
    info_weight_per_minute: int = 1200
    hydromancer_weight_per_minute: int = 6000
    hydromancer_keys: tuple[str, ...] = ("hm-test-key",)
    dwellir_keys: dict[str, str] = field(
        default_factory=lambda: {"dw-test-key": "scale"})  # key -> plan
    dwellir_rate_overrides: dict[str, int] = field(default_factory=dict)  # key -> req/s
    dwellir_backends: int = 4
    ws_idle_timeout_s: float = 60.0
    ws_replay_trades: int = 30  # recent trades sent after a `trades` subscribe
    ws_max_connections: int = 100  # websocket connections per client IP
    ws_max_subscriptions: int = 1000  # subscriptions per client IP, over its connections
    faults: tuple[FaultRule, ...] = ()
    fault_seed: int = 0
    funding_nan_every: int = 0  # every Nth synthetic funding row has premium "NaN"; 0 = never

    def validate(self) -> None:
        for rule in self.faults:
            rule.validate()
        for key, plan in self.dwellir_keys.items():
            if plan not in DWELLIR_PLANS:
                raise ConfigError(f"dwellir plan {plan!r} of a key: expected {list(DWELLIR_PLANS)}")
            if "/" in key or not key:
                raise ConfigError("dwellir keys must be non-empty and contain no '/'")
        if self.info_weight_per_minute <= 0 or self.hydromancer_weight_per_minute <= 0:
            raise ConfigError("weight budgets must be positive")
        if self.ws_replay_trades < 0:
            raise ConfigError("ws_replay_trades must be >= 0")
        if self.ws_max_connections < 1 or self.ws_max_subscriptions < 1:
            raise ConfigError("ws_max_connections and ws_max_subscriptions must be >= 1")

    def dwellir_rate(self, key: str) -> int | None:
        if key in self.dwellir_rate_overrides:
            return self.dwellir_rate_overrides[key]
        plan = self.dwellir_keys.get(key)
        return None if plan is None else DWELLIR_PLANS[plan]

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> EmulatorConfig:
        data: dict[str, Any] = orjson.loads(raw)
        data["clock"] = ClockConfig(**data["clock"])
        data["faults"] = tuple(FaultRule(**f) for f in data["faults"])
        data["hydromancer_keys"] = tuple(data["hydromancer_keys"])
        return cls(**data)
