"""Parsing of user-supplied instants: always explicit UTC, never naive."""

from __future__ import annotations

import datetime as dt

from hyperlake.errors import UserError


def parse_instant(text: str, field: str) -> int:
    """``2026-03-30T23:00:00Z`` (or any ISO-8601 with an offset) -> epoch ms.

    A naive time is refused: whose midnight would it be?"""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{field}: {text!r} is not an ISO-8601 time (e.g. 2026-03-30T23:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        example = text.strip() + ("Z" if "T" in text else "T00:00:00Z")
        raise UserError(f"{field}: {text!r} has no timezone; say UTC explicitly, "
                        f"e.g. {example}")
    return int(moment.timestamp() * 1000)


def format_instant(ms: int) -> str:
    """Epoch ms -> ``2026-03-30T23:00:00Z`` (milliseconds shown only when present)."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    if ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
