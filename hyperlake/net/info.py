"""The one ``POST /info`` client: paid, classified, retried, decoded.

Hyperliquid and Hydromancer answer every kind of request (candles, funding, market
lists) at one JSON endpoint, and every request is paid for from a weight budget
that all hyperlake processes on the machine share (``net.pacing``). So one client
owns the walk each request takes:

1. reserve the most the answer can weigh from the budget;
2. POST the JSON body;
3. turn what came back into a decision: a transport failure or 429/5xx is a
   ``TransientError`` (worth waiting for), another 4xx a ``TerminalError``;
4. give back what the answer did not cost (an error answer costs the base weight);
5. decode the JSON and hand it to the caller's ``decode``, which raises
   ``TransientError`` for an answer that is valid JSON but not the documented shape
   (a truncated or garbled answer is worth asking for again);
6. retry transient failures through ``retry_call`` (full jitter, Retry-After as a
   floor); the last one is re-raised when the attempts run out.

Callers decide what an exhausted retry means (a ledger entry, an empty window, a
failed command); they never see httpx. Nothing in a message carries a URL path or
an API key: requests are named by ``what`` and transport errors by their type.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.redact import Redactor
from hyperlake.net.retry import (
    Backoff,
    TerminalError,
    TransientError,
    error_for_status,
    http_date_ms,
    retry_call,
)

if TYPE_CHECKING:  # httpx is imported when a request is sent: a run that needs none
    import httpx  # (a cached market list, a Dwellir-only job) does not pay for it

T = TypeVar("T")


class ConnectionFailed(TransientError):
    """The server gave no answer at all (refused, reset, timed out)."""


@dataclass(frozen=True)
class InfoEndpoint:
    """Where an /info endpoint is, how to authenticate, and whose budget pays."""

    url: str  # the full URL of the endpoint, e.g. https://api.hyperliquid.xyz/info
    headers: Mapping[str, str] = field(default_factory=dict)
    budget: SharedWeightBudget | None = None
    base_weight: float = 0.0  # what any answer costs, an error answer included
    secrets: tuple[str, ...] = ()


@dataclass
class InfoStats:
    """Requests sent, retries slept, weight spent; safe to share between threads."""

    requests: int = 0
    retried: int = 0
    weight: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int = 0, retried: int = 0, weight: float = 0.0) -> None:
        with self._lock:
            self.requests += requests
            self.retried += retried
            self.weight += weight


def _no_weight(_: object) -> float:
    return 0.0


class InfoClient:
    def __init__(self, endpoint: InfoEndpoint, http: httpx.Client, backoff: Backoff, *,
                 stats: InfoStats | None = None, rng: random.Random | None = None) -> None:
        self.endpoint = endpoint
        self.http = http
        self.backoff = backoff
        self.stats = stats if stats is not None else InfoStats()
        self.rng = rng if rng is not None else random.Random()
        self._redact = Redactor(endpoint.secrets)
        self._headers = {"content-type": "application/json", **endpoint.headers}

    def call(self, body: Mapping[str, Any], *, what: str, decode: Callable[[Any], T],
             reserve: float | None = None,
             weigh: Callable[[T], float] = _no_weight) -> T:
        """``decode(answer)`` of the POST of ``body``, retried while transient.

        ``reserve`` is taken from the budget before each attempt (default: the base
        weight); once the answer is decoded, what ``base_weight + weigh(result)`` did
        not use is refunded. Raises the last ``TransientError`` when the attempts run
        out (``ConnectionFailed`` when the server never answered), or ``TerminalError``.
        """
        return self.call_dated(body, what=what, decode=decode, reserve=reserve,
                               weigh=weigh)[0]

    def call_dated(self, body: Mapping[str, Any], *, what: str, decode: Callable[[Any], T],
                   reserve: float | None = None,
                   weigh: Callable[[T], float] = _no_weight) -> tuple[T, int | None]:
        """``call``, and the server's clock when it answered (its ``Date`` header, epoch
        ms; None when it sent none): what a caller needs to judge answers near the head
        of the server's data (``pipelines.head``)."""
        def attempt() -> tuple[T, int | None]:
            return self._once(body, what, decode, reserve, weigh)

        def count_retry(_attempts: int, _error: TransientError, _pause: float) -> None:
            self.stats.add(retried=1)

        return retry_call(attempt, self.backoff, rng=self.rng, on_retry=count_retry)

    def _once(self, body: Mapping[str, Any], what: str, decode: Callable[[Any], T],
              reserve: float | None, weigh: Callable[[T], float]) -> tuple[T, int | None]:
        base = self.endpoint.base_weight
        reserved = base if reserve is None else reserve
        budget = self.endpoint.budget
        if budget is not None:
            budget.acquire(reserved)
        self.stats.add(requests=1)
        import httpx

        try:
            response = self.http.post(self.endpoint.url, headers=self._headers,
                                      content=orjson.dumps(body))
        except httpx.TimeoutException:
            self.stats.add(weight=reserved)
            raise ConnectionFailed("timeout", what=what) from None
        except httpx.TransportError as exc:
            self.stats.add(weight=reserved)
            raise ConnectionFailed(self._redact(type(exc).__name__), what=what) from None
        status = response.status_code
        error = error_for_status(status, response.headers.get("retry-after"), what)
        if status == 404:  # /info has no missing pages: the URL is wrong
            error = TerminalError(f"{what}: http 404: no /info endpoint there; check the "
                                  "configured base URL", status=404)
        if error is not None:
            self._settle(reserved, base)
            raise error
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            self._settle(reserved, base)
            raise TransientError("malformed answer: not JSON", what=what) from None
        try:
            result = decode(answer)
        except TransientError:
            self._settle(reserved, base)
            raise
        self._settle(reserved, base + weigh(result))
        return result, http_date_ms(response.headers.get("date"))

    def _settle(self, reserved: float, spent: float) -> None:
        """Give back what was reserved but not spent; count what was."""
        budget = self.endpoint.budget
        if budget is not None and reserved > spent:
            budget.refund(reserved - spent)
        self.stats.add(weight=spent)


def malformed(detail: str) -> TransientError:
    """The error a ``decode`` raises for valid JSON of the wrong shape."""
    return TransientError(f"malformed answer: {detail}")
