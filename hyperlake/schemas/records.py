"""What every dataset's records share: the timestamp type, the error a malformed
record raises, and the one way validated rows become an Arrow table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

#: Every time in the lake: epoch milliseconds, UTC.
TS = pa.timestamp("ms", tz="UTC")


class InvalidRecord(ValueError):
    """A record the source sent does not have the documented shape."""


def decimal_string(value: Any, name: str) -> float:
    """The exchange's decimal string ``value`` (e.g. ``"0.0000125"``) as a float. NaN is
    kept (the exchange sent it); anything else that is not a finite number is refused."""
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} is not a decimal string: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidRecord(f"{name} is not a number: {value!r}") from None
    if math.isinf(number):
        raise InvalidRecord(f"{name} is infinite: {value!r}")
    return number


def rows_table(schema: pa.Schema, fields: Sequence[str], rows: Sequence[tuple[Any, ...]],
               **constants: str) -> pa.Table:
    """``rows`` (tuples of ``fields``, in the order given) as a table of ``schema``;
    each of ``constants`` (e.g. ``market="BTC"``) fills a column of its own."""
    count = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(fields)
    data = {name: pa.array([value] * count, schema.field(name).type)
            for name, value in constants.items()}
    for name, values in zip(fields, columns, strict=True):
        data[name] = pa.array(values, schema.field(name).type)
    return pa.table(data, schema=schema)
