"""Where the sources are and how to authenticate: environment variables only.

Keys never go on a command line (they would show in ``ps`` and shell history).

| variable | default |
|---|---|
| HYPERLAKE_HYPERLIQUID_URL | https://api.hyperliquid.xyz |
| HYPERLAKE_HYDROMANCER_URL | https://api.hydromancer.xyz |
| HYPERLAKE_HYDROMANCER_KEY | (required for --source hydromancer) |
| HYPERLAKE_DWELLIR_URL | https://api-hyperliquid-index.n.dwellir.com |
| HYPERLAKE_DWELLIR_KEY | (required for --source dwellir) |
| HYPERLAKE_CA_BUNDLE | the system's CAs (set it to the emulator's CA for its TLS port) |
| HYPERLAKE_HYPERLIQUID_WEIGHT | 1200 (weight/minute per IP, shared by all hyperlake processes) |
| HYPERLAKE_HYDROMANCER_WEIGHT | 1200 (weight per minute for the key) |
| HYPERLAKE_WS_URL | wss://api.hyperliquid.xyz/ws (the live trade stream) |
| HYPERLAKE_WS_STALE | 45 (seconds without any frame before a connection is called dead; 2 to 600) |
| HYPERLAKE_NOW | wall clock; an ISO time pins "now" (to match a frozen emulator clock) |
| HYPERLAKE_CLOCK_RATE | 0; with HYPERLAKE_NOW, now runs from it this many times real time |
| HYPERLAKE_CLOCK_ANCHOR | process start: the wall time (epoch s) at which now was HYPERLAKE_NOW |
| HYPERLAKE_BACKOFF_BASE | 0.25 (seconds; retries wait up to base * 2^attempt, full jitter) |
| HYPERLAKE_MAX_ATTEMPTS | 6 (attempts per request before it goes to the gap ledger; 1 to 100) |
| HYPERLAKE_SETTLE | 300 (seconds an empty answer waits to be final: pipelines.head; 0 to 86400) |
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hyperlake.errors import UserError
from hyperlake.net.info import InfoEndpoint
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.retry import Backoff
from hyperlake.pipelines.head import Head
from hyperlake.schemas.exchange import (
    HYDROMANCER_WEIGHT,
    HYDROMANCER_WEIGHT_PER_MINUTE,
    HYPERLIQUID_WEIGHT_PER_MINUTE,
    INFO_BASE_WEIGHT,
)
from hyperlake.schemas.times import parse_instant

#: Attempts and backoff beyond these are not a setting but a typo.
MAX_ATTEMPTS_LIMIT = 100
MAX_BACKOFF_BASE_S = 60.0
MAX_SETTLE_S = 86_400.0
MAX_CLOCK_RATE = 100_000.0
#: When this process started: a running pinned clock counts from it unless anchored.
_STARTED_WALL = time.time()


@dataclass(frozen=True)
class SourceSettings:
    hyperliquid_url: str = "https://api.hyperliquid.xyz"
    hydromancer_url: str = "https://api.hydromancer.xyz"
    # repr=False: settings travel to cluster workers, whose logs show a failed task's
    # arguments; a key must never be among them
    hydromancer_key: str | None = field(default=None, repr=False)
    dwellir_url: str = "https://api-hyperliquid-index.n.dwellir.com"
    dwellir_key: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    hyperliquid_weight: float = float(HYPERLIQUID_WEIGHT_PER_MINUTE)
    hydromancer_weight: float = float(HYDROMANCER_WEIGHT_PER_MINUTE)
    pinned_now_ms: int | None = None
    clock_rate: float = 0.0  # with pinned_now_ms: now runs from it at this rate
    clock_anchor: float | None = None  # wall time (epoch s) of pinned_now_ms; None: start
    ws_url: str = "wss://api.hyperliquid.xyz/ws"
    ws_stale_s: float = 45.0
    backoff_base: float = 0.25
    max_attempts: int = 6
    settle_s: float = 300.0
    #: Appended to the weight budgets' names: a share of a budget paced on its own
    #: (a cluster task's lease of ``pipelines.backfill.budgets``); "" is the machine's.
    budget_scope: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SourceSettings:
        env = os.environ if env is None else env
        defaults = cls()
        now_text = env.get("HYPERLAKE_NOW")
        return cls(
            hyperliquid_url=_url(env, "HYPERLAKE_HYPERLIQUID_URL", defaults.hyperliquid_url),
            hydromancer_url=_url(env, "HYPERLAKE_HYDROMANCER_URL", defaults.hydromancer_url),
            hydromancer_key=env.get("HYPERLAKE_HYDROMANCER_KEY") or None,
            dwellir_url=_url(env, "HYPERLAKE_DWELLIR_URL", defaults.dwellir_url),
            dwellir_key=env.get("HYPERLAKE_DWELLIR_KEY") or None,
            ca_bundle=_ca_bundle(env.get("HYPERLAKE_CA_BUNDLE") or None),
            hyperliquid_weight=_number(env, "HYPERLAKE_HYPERLIQUID_WEIGHT",
                                       defaults.hyperliquid_weight, low=1.0),
            hydromancer_weight=_number(env, "HYPERLAKE_HYDROMANCER_WEIGHT",
                                       defaults.hydromancer_weight, low=1.0),
            pinned_now_ms=parse_instant(now_text, "HYPERLAKE_NOW") if now_text else None,
            clock_rate=_number(env, "HYPERLAKE_CLOCK_RATE", defaults.clock_rate, low=0.0,
                               high=MAX_CLOCK_RATE, zero=True),
            clock_anchor=_number(env, "HYPERLAKE_CLOCK_ANCHOR", _STARTED_WALL, low=0.0),
            ws_url=_url(env, "HYPERLAKE_WS_URL", defaults.ws_url, schemes=("ws", "wss")),
            ws_stale_s=_number(env, "HYPERLAKE_WS_STALE", defaults.ws_stale_s, low=2.0,
                               high=600.0),
            backoff_base=_number(env, "HYPERLAKE_BACKOFF_BASE", defaults.backoff_base,
                                 low=0.001, high=MAX_BACKOFF_BASE_S),
            max_attempts=_whole(env, "HYPERLAKE_MAX_ATTEMPTS", defaults.max_attempts,
                                high=MAX_ATTEMPTS_LIMIT),
            settle_s=_number(env, "HYPERLAKE_SETTLE", defaults.settle_s, low=0.0,
                             high=MAX_SETTLE_S, zero=True),
        )

    def hyperliquid_budget(self) -> SharedWeightBudget:
        """Hyperliquid's weight per IP, shared by every hyperlake process on the machine."""
        host = urlsplit(self.hyperliquid_url).netloc
        return SharedWeightBudget(f"hyperliquid@{host}{self.budget_scope}",
                                  self.hyperliquid_weight)

    def hydromancer_budget(self) -> SharedWeightBudget:
        host = urlsplit(self.hydromancer_url).netloc
        return SharedWeightBudget(f"hydromancer@{host}{self.budget_scope}",
                                  self.hydromancer_weight)

    def hyperliquid_info(self) -> InfoEndpoint:
        """Hyperliquid's /info: no key, paid from the weight budget of this IP."""
        return InfoEndpoint(f"{self.hyperliquid_url.rstrip('/')}/info",
                            budget=self.hyperliquid_budget(), base_weight=INFO_BASE_WEIGHT)

    def hydromancer_info(self) -> InfoEndpoint:
        """Hydromancer's /info: a Bearer key, a flat weight from the key's budget."""
        key = self.require("HYPERLAKE_HYDROMANCER_KEY", self.hydromancer_key)
        return InfoEndpoint(f"{self.hydromancer_url.rstrip('/')}/info",
                            headers={"authorization": f"Bearer {key}"},
                            budget=self.hydromancer_budget(), base_weight=HYDROMANCER_WEIGHT,
                            secrets=(key,))

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, max_attempts=self.max_attempts)

    def head(self, source_ms: int | None) -> Head:
        """The head an answer is judged against: our clock, the source's, the settle
        window (``pipelines.head``)."""
        return Head(self.now_ms(), source_ms, int(self.settle_s * 1000))

    def now_ms(self) -> int:
        """Our clock: the wall clock, or the pinned instant (running at ``clock_rate``
        from when this process started, when that is set)."""
        if self.pinned_now_ms is None:
            return int(time.time() * 1000)
        if not self.clock_rate:
            return self.pinned_now_ms
        anchor = _STARTED_WALL if self.clock_anchor is None else self.clock_anchor
        return self.pinned_now_ms + int((time.time() - anchor) * 1000 * self.clock_rate)

    def secrets(self) -> list[str]:
        return [k for k in (self.hydromancer_key, self.dwellir_key) if k]

    def key(self, env_name: str) -> str | None:
        """The API key held by the environment variable ``env_name``, if it is set."""
        return {"HYPERLAKE_HYDROMANCER_KEY": self.hydromancer_key,
                "HYPERLAKE_DWELLIR_KEY": self.dwellir_key}.get(env_name)

    def require(self, name: str, value: str | None) -> str:
        if not value:
            raise UserError(f"{name} is not set: export {name}=<your API key>")
        return value

    def verify(self) -> ssl.SSLContext:
        """httpx's ``verify``: the CA bundle when one is configured, else httpx's own
        (certifi's). One context per process: making one costs ~18 ms of CPU, which a
        run of many small series would pay per client."""
        return _tls_context(self.ca_bundle)


@functools.cache
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    import httpx

    return httpx.create_ssl_context()


def _number(env: Mapping[str, str], name: str, default: float, *, low: float,
            high: float = math.inf, zero: bool = False) -> float:
    """A finite number in [low, high]; NaN, infinities and the absurd are refused (a
    NaN budget would silently switch pacing off)."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        kind = "a number >= 0" if zero else "a positive number"
        raise UserError(f"{name}: must be {kind}, got {text!r}")
    if not low <= value <= high:
        limit = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise UserError(f"{name}: {text!r} is out of range; give a number {limit}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, high: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a whole number") from None
    if not 1 <= value <= high:
        raise UserError(f"{name}: {text!r} is out of range; give a whole number between 1 "
                        f"and {high}")
    return value


def _ca_bundle(path: str | None) -> str | None:
    """A readable file of PEM certificates, or None (the system's CAs)."""
    if path is None:
        return None
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UserError(f"HYPERLAKE_CA_BUNDLE: {path} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or "not a bundle of PEM certificates"
        raise UserError(f"HYPERLAKE_CA_BUNDLE: {path}: {reason}") from None
    return path


def _url(env: Mapping[str, str], name: str, default: str,
         schemes: tuple[str, ...] = ("http", "https")) -> str:
    """A base URL of one of ``schemes`` with a host (and a valid port, if any)."""
    text = env.get(name)
    if text is None:
        return default
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise UserError(f"{name}: {text!r} is not a URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise UserError(f"{name}: {text!r} is not a {'/'.join(schemes)} URL with a host, "
                        f"e.g. {default}")
    return text.strip()
