"""Instants as users give them, and as the lake spells them: always explicit UTC.

One parser for every command-line option and every Python argument that names a
time: ISO-8601 text with an offset, an aware ``datetime``, or epoch milliseconds.
A naive time is refused (whose midnight would it be?), and so is an instant outside
the years the lake can name (before 1970 or after 2999), which would otherwise
surface later as an arithmetic overflow deep in a pipeline.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from hyperlake.errors import UserError

Instant = str | dt.datetime | int

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: The last instant the lake accepts (exclusive): 3000-01-01T00:00:00Z.
LATEST_MS = 32_503_680_000_000
_ONE_MS = dt.timedelta(milliseconds=1)


def parse_instant(text: str, field: str) -> int:
    """``2026-03-30T23:00:00Z`` (or any ISO-8601 with an offset) -> epoch ms."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{field}: {text!r} is not an ISO-8601 time (e.g. 2026-03-30T23:00:00Z)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        example = text.strip() + ("Z" if "T" in text else "T00:00:00Z")
        raise UserError(f"{field}: {text!r} has no timezone; say UTC explicitly, "
                        f"e.g. {example}")
    return _bounded(_datetime_ms(moment, field), field, text)


def to_epoch_ms(value: Instant, field: str) -> int:
    """ISO-8601 text with an offset, an aware datetime or epoch ms -> epoch ms (UTC)."""
    if isinstance(value, bool):
        raise UserError(f"{field}: {value!r} is not a time")
    if isinstance(value, int):
        return _bounded(value, field, str(value))
    if isinstance(value, str):
        return parse_instant(value, field)
    if not isinstance(value, dt.datetime):
        raise UserError(f"{field}: {type(value).__name__} is not a time; give an ISO-8601 "
                        "string, an aware datetime or epoch milliseconds")
    if value.tzinfo is None or value.utcoffset() is None:
        raise UserError(f"{field}: {value.isoformat()} has no timezone; say UTC explicitly")
    return _bounded(_datetime_ms(value, field), field, value.isoformat())


def _datetime_ms(moment: dt.datetime, field: str) -> int:
    try:
        return (moment - EPOCH) // _ONE_MS
    except OverflowError:
        raise UserError(f"{field}: {moment.isoformat()} is out of range") from None


def _bounded(ms: int, field: str, shown: str) -> int:
    if not 0 <= ms < LATEST_MS:
        raise UserError(f"{field}: {shown} is outside the years 1970 to 2999")
    return ms


def utc_datetime(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def format_instant(ms: int) -> str:
    """Epoch ms -> ``2026-03-30T23:00:00Z`` (milliseconds shown only when present)."""
    moment = utc_datetime(ms)
    if ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 604_800_000}


def parse_duration(text: str, field: str, *, most_ms: int = 366 * 86_400_000) -> int:
    """``500ms``, ``2s``, ``5m``, ``24h``, ``7d``, ``2w`` -> milliseconds (not above
    ``most_ms``): the one duration parser of every option that takes one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UserError(f"{field}: {text!r} is not a duration; give a number and a unit "
                        "ms, s, m, h, d or w (e.g. 2s, 5m, 24h)")
    ms = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if ms > most_ms:
        raise UserError(f"{field}: {text!r} is longer than {most_ms // 1000:,} s")
    return ms


def clamp_to_history(start_ms: int, field: str, first_ms: int,
                     notice: Callable[[str], None]) -> int:
    """``start_ms``, or ``first_ms`` when it is earlier (nothing exists before it: a
    job would only ask for nothing); ``notice`` says so in one line."""
    if start_ms >= first_ms:
        return start_ms
    notice(f"{field} {format_instant(start_ms)} is before the exchange's first data "
           f"({format_instant(first_ms)}); starting there")
    return first_ms
