"""The retry decision lives in the error type.

Every client in hyperlake turns a failed request into one of two errors:
``TransientError`` (waiting and asking again may help: 429, 5xx, timeouts, resets,
truncated or malformed bodies) or ``TerminalError`` (asking again cannot help; the
message says what the user must do). ``retry_call`` then needs no knowledge of HTTP:
it retries exactly the transient ones, with full-jitter exponential backoff that
honours the server's Retry-After as a floor.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

from hyperlake.errors import HyperlakeError

T = TypeVar("T")

#: Longest Retry-After we honour, in seconds; a server asking for more is clamped.
MAX_RETRY_AFTER = 300.0

#: 5xx statuses that say the server will never do this, so retrying is pointless.
_PERMANENT_5XX = frozenset({501, 505})

#: What to do after a terminal status, by status; other 4xx use the generic advice.
_TERMINAL_ADVICE = {
    400: "the server rejected the request as malformed; check the parameters, "
    "and report it if they look right",
    401: "authentication failed; check the API key",
    403: "access denied; check that the API key is allowed to use this endpoint",
    422: "the server rejected the parameters; check the market, interval and time range",
}
_GENERIC_ADVICE = "the server refused the request; retrying will not help"


class TransientError(HyperlakeError):
    """A failure worth retrying: the same request may succeed later."""

    def __init__(self, reason: str, *, what: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{what}: {reason}" if what else reason)
        #: Short cause, e.g. "http 429", "timeout", "malformed json".
        self.reason = reason
        #: Seconds the server asked us to wait (Retry-After), if it said.
        self.retry_after = retry_after


class TerminalError(HyperlakeError):
    """A failure retrying cannot fix; the message says what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status that caused it, when there was one.
        self.status = status


def _is_success(status: int) -> bool:
    return 200 <= status < 300


def _is_transient_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status < 600 and status not in _PERMANENT_5XX)


def _terminal_message(status: int, what: str) -> str:
    if 300 <= status < 400:
        advice = "unexpected redirect; check the configured base URL"
    else:
        advice = _TERMINAL_ADVICE.get(status, _GENERIC_ADVICE)
    return f"{what}: http {status}: {advice}"


def error_for_status(status: int, retry_after_header: str | None,
                     what: str) -> TransientError | TerminalError | None:
    """The error an HTTP status means, or None for 2xx and 404.

    404 is left to the caller (a missing day is often just "no data"). ``what`` names
    the request in the message, e.g. "candles BTC 1m"; never pass a URL, it may hold a
    key.
    """
    if _is_success(status) or status == 404:
        return None
    if _is_transient_status(status):
        return TransientError(f"http {status}", what=what,
                              retry_after=parse_retry_after(retry_after_header))
    return TerminalError(_terminal_message(status, what), status=status)


def _clamp_retry_after(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _parse_delay_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return _clamp_retry_after(seconds) if math.isfinite(seconds) else None


def _http_date_seconds(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown local zone
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _parse_http_date(value: str, now: float) -> float | None:
    when = _http_date_seconds(value)
    return None if when is None else _clamp_retry_after(when - now)


def http_date_ms(value: str | bytes | None) -> int | None:
    """An HTTP-date (a ``Date`` header: the server's clock) as epoch ms; None when
    absent or unparseable."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not value or not value.strip():
        return None
    seconds = _http_date_seconds(value.strip())
    return None if seconds is None else int(seconds * 1000)


def parse_retry_after(value: str | None, *,
                      now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3).

    Accepts delay-seconds (int or float) or an HTTP-date; the result is clamped to
    [0, 300]. None when the header is absent or unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds = _parse_delay_seconds(text)
    return seconds if seconds is not None else _parse_http_date(text, now())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, and how many attempts are allowed."""

    base: float = 0.25
    cap: float = 30.0
    max_attempts: int = 6

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < 0:
            raise ValueError("Backoff needs base > 0 and cap >= 0")
        if self.max_attempts < 1:
            raise ValueError("Backoff needs max_attempts >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest jittered delay before retry number ``attempt`` (from 0)."""
        exponent = min(max(attempt, 0), 64)  # 2**64 * base is past any cap
        return min(self.cap, self.base * 2.0**exponent)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to sleep before retry number ``attempt`` (from 0).

        Full jitter: uniform in [0, min(cap, base * 2**attempt)]; a server's
        Retry-After is a floor.
        """
        jittered = rng.uniform(0.0, self.ceiling(attempt))
        return jittered if retry_after is None else max(retry_after, jittered)

    def exhausted(self, attempt: int) -> bool:
        """True once ``attempt`` calls have been made and no more are allowed."""
        return attempt >= self.max_attempts


def retry_call(fn: Callable[[], T], backoff: Backoff, *,
               rng: random.Random | None = None,
               sleep: Callable[[float], None] = time.sleep,
               on_retry: Callable[[int, TransientError, float], None] | None = None) -> T:
    """Call ``fn``, retrying on ``TransientError`` until ``backoff`` is exhausted.

    After the last allowed attempt the last ``TransientError`` is re-raised.
    ``TerminalError`` and every other exception propagate at once. ``on_retry`` gets
    (failed attempts so far, from 1; the error; the delay about to be slept).
    """
    rng = rng if rng is not None else random.Random()
    attempts = 0
    while True:
        try:
            return fn()
        except TransientError as err:
            attempts += 1
            if backoff.exhausted(attempts):
                raise
            pause = backoff.delay(attempts - 1, err.retry_after, rng)
            if on_retry is not None:
                on_retry(attempts, err, pause)
            sleep(pause)
