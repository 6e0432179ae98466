"""The retry decision: which statuses retry, Retry-After parsing, full jitter, and
retry_call giving up, not retrying terminal errors and reporting each retry."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from hyperlake.errors import HyperlakeError
from hyperlake.net.retry import (
    Backoff,
    TerminalError,
    TransientError,
    error_for_status,
    parse_retry_after,
    retry_call,
)

NOW = 1_774_915_200.0  # 2026-03-31T00:00:00Z


@pytest.mark.parametrize(("status", "kind"), [
    (200, None), (204, None), (299, None), (404, None),
    (408, TransientError), (429, TransientError), (500, TransientError),
    (502, TransientError), (503, TransientError), (504, TransientError),
    (501, TerminalError), (505, TerminalError),
    (400, TerminalError), (401, TerminalError), (403, TerminalError),
    (405, TerminalError), (409, TerminalError), (422, TerminalError),
    (301, TerminalError),
])
def test_status_classification(status: int, kind: type[HyperlakeError] | None) -> None:
    err = error_for_status(status, None, "candles BTC 1m")
    if kind is None:
        assert err is None
    else:
        assert type(err) is kind


def test_transient_status_carries_reason_and_retry_after() -> None:
    err = error_for_status(429, "7", "candles BTC 1m")
    assert isinstance(err, TransientError)
    assert err.reason == "http 429"
    assert err.retry_after == 7.0
    assert str(err) == "candles BTC 1m: http 429"


@pytest.mark.parametrize(("status", "hint"), [
    (401, "API key"), (403, "API key"), (422, "parameters"), (400, "parameters")])
def test_terminal_status_message_says_what_to_do(status: int, hint: str) -> None:
    err = error_for_status(status, None, "candles BTC 1m")
    assert isinstance(err, TerminalError)
    assert err.status == status
    assert str(err).startswith(f"candles BTC 1m: http {status}: ")
    assert hint in str(err)
    assert err.exit_code == 1


@pytest.mark.parametrize(("header", "seconds"), [
    ("0", 0.0), ("5", 5.0), (" 12 ", 12.0), ("1.5", 1.5), ("-3", 0.0),
    ("100000", 300.0), (None, None), ("", None), ("soon", None), ("nan", None),
    ("inf", None),
])
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=lambda: NOW) == seconds


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=UTC), usegmt=True)


@pytest.mark.parametrize(("offset", "seconds"), [
    (30, 30.0), (0, 0.0), (-60, 0.0), (3600, 300.0)])
def test_retry_after_http_date(offset: float, seconds: float) -> None:
    header = _http_date(offset)
    assert header.endswith(" GMT")
    assert parse_retry_after(header, now=lambda: NOW) == pytest.approx(seconds)


def test_retry_after_obsolete_date_formats() -> None:
    # RFC 9110 asks recipients to accept the obsolete RFC 850 and asctime forms.
    assert parse_retry_after("Tuesday, 31-Mar-26 00:00:20 GMT", now=lambda: NOW) == 20.0
    assert parse_retry_after("Tue Mar 31 00:00:20 2026", now=lambda: NOW) == 20.0


def test_full_jitter_stays_within_bounds_and_varies() -> None:
    backoff = Backoff(base=0.25, cap=3.0)
    rng = random.Random(42)
    for attempt in range(10):
        ceiling = min(3.0, 0.25 * 2**attempt)
        delays = [backoff.delay(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
        assert max(delays) > ceiling / 2  # full jitter reaches up to the ceiling
        assert min(delays) < ceiling / 2  # ... and down towards zero


def test_huge_attempt_numbers_are_capped() -> None:
    assert 0.0 <= Backoff(cap=30.0).delay(10_000, None, random.Random(1)) <= 30.0


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base=0.25, cap=30.0)
    rng = random.Random(7)
    assert all(backoff.delay(0, 5.0, rng) == 5.0 for _ in range(50))
    delays = [backoff.delay(8, 1.0, rng) for _ in range(200)]
    assert all(1.0 <= d <= 30.0 for d in delays)
    assert max(delays) > 1.0  # the jitter still wins when it is larger


def test_exhausted() -> None:
    backoff = Backoff(max_attempts=3)
    assert [backoff.exhausted(n) for n in range(5)] == [False, False, False, True, True]


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"base": 0.0}, {"cap": -1.0}])
def test_backoff_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)  # type: ignore[arg-type]


class Flaky:
    """Raises the given errors in order, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_call_succeeds_after_transient_errors() -> None:
    slept: list[float] = []
    fn = Flaky(TransientError("timeout"), TransientError("http 503"))
    assert retry_call(fn, Backoff(), rng=random.Random(0), sleep=slept.append) == "ok"
    assert fn.calls == 3
    assert len(slept) == 2


def test_retry_call_gives_up_with_the_last_error() -> None:
    slept: list[float] = []
    errors = [TransientError(f"http 50{i}") for i in range(10)]
    fn = Flaky(*errors)
    with pytest.raises(TransientError) as caught:
        retry_call(fn, Backoff(max_attempts=4), rng=random.Random(0), sleep=slept.append)
    assert fn.calls == 4
    assert caught.value is errors[3]
    assert len(slept) == 3


def test_retry_call_does_not_retry_terminal_errors() -> None:
    slept: list[float] = []
    fn = Flaky(TerminalError("check the API key", status=401))
    with pytest.raises(TerminalError):
        retry_call(fn, Backoff(), sleep=slept.append)
    assert fn.calls == 1
    assert slept == []


def test_retry_call_does_not_retry_other_exceptions() -> None:
    fn = Flaky(KeyError("boom"))
    with pytest.raises(KeyError):
        retry_call(fn, Backoff(), sleep=lambda _: pytest.fail("slept"))
    assert fn.calls == 1


def test_retry_call_reports_each_retry() -> None:
    slept: list[float] = []
    seen: list[tuple[int, str, float]] = []
    fn = Flaky(*(TransientError(f"try {i}", retry_after=0.5 * i) for i in range(3)))

    def on_retry(attempt: int, err: TransientError, pause: float) -> None:
        seen.append((attempt, err.reason, pause))

    result = retry_call(fn, Backoff(), rng=random.Random(3), sleep=slept.append,
                        on_retry=on_retry)
    assert result == "ok"
    assert [attempt for attempt, _, _ in seen] == [1, 2, 3]
    assert [reason for _, reason, _ in seen] == ["try 0", "try 1", "try 2"]
    assert [pause for _, _, pause in seen] == slept
    assert slept[1] >= 0.5 and slept[2] >= 1.0  # Retry-After honoured as a floor
