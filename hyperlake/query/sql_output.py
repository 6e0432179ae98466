"""The result of a ``hyperlake sql`` query, checked and written in one format.

``run_query`` runs the statements of a query on a connection from
``hyperlake.query.catalog``, after ``hyperlake.query.read_only`` has checked that each
only reads, and collects the last one's whole result as an Arrow table, turning
DuckDB's errors into one line (``UserError``, or ``UnreadableLakeFile`` when a lake
file is damaged); ``render`` turns it into an aligned table, CSV, JSON lines or
Parquet, and ``hyperlake.query.output_target`` writes that where ``--output`` says.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import re
from collections.abc import Callable
from typing import BinaryIO

import duckdb
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hyperlake.errors import UserError
from hyperlake.lake.store import REPLACED, Location, Replaced
from hyperlake.query.output_target import OutputTarget, write_output
from hyperlake.query.read_errors import from_duckdb, one_line
from hyperlake.query.read_only import read_statements

# --- running the query ------------------------------------------------------------------

EMPTY = "query: empty; give a SQL statement, e.g. \"SELECT * FROM candles LIMIT 5\""


def _run(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    statements = read_statements(con, query)
    if not statements:
        raise UserError(EMPTY)
    for statement in statements[:-1]:  # run for their errors; only the last one answers
        con.execute(statement)
        con.complete()
    relation: duckdb.DuckDBPyRelation | None = con.sql(statements[-1])
    if relation is None:
        return pa.table({})
    table: pa.Table = relation.to_arrow_table()
    return table


def run_query(con: duckdb.DuckDBPyConnection, query: str, lake: Location) -> pa.Table:
    """The result of ``query``'s last statement; every statement must only read. On an
    object store, a partition a compaction replaced while the query read it makes the
    query run once more (its views list the lake afresh); twice in a row is one line,
    exit 3."""
    if not query.strip():
        raise UserError(EMPTY)
    for attempt in (1, 2):
        try:
            return _run(con, query)
        except duckdb.Error as exc:
            replaced = _replaced(exc)
            if replaced is None:
                raise (from_duckdb(exc, lake) or UserError(f"query: {one_line(exc)}")) \
                    from None
            if attempt == 2:
                raise Replaced(f"query: {replaced} again when run once more; run it again "
                               "once the compaction is done") from None
        except pa.ArrowException as exc:
            raise UserError(f"query: {one_line(exc)}") from None
    raise AssertionError("unreachable")


_REPLACED_OBJECT = re.compile(rf"(\S+) {re.escape(REPLACED)}")


def _replaced(error: duckdb.Error) -> str | None:
    """``<url> was replaced …`` when the error is a partition read at a version that a
    compaction has replaced since the listing (``lake.objectfs``)."""
    found = _REPLACED_OBJECT.search(str(error))
    return None if found is None else found[0]


# --- formats ----------------------------------------------------------------------------

def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace("nan", "NaN")
    if isinstance(value, dt.datetime) and value.utcoffset() == dt.timedelta(0):
        return value.replace(tzinfo=None).isoformat(sep=" ") + "Z"
    return str(value)


def _is_numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_decimal(kind))


def render_table(table: pa.Table) -> str:
    """Aligned columns (numbers to the right), a rule under the header, a row count."""
    names = table.column_names
    columns = [[_cell(v) for v in table.column(i).to_pylist()] for i in range(len(names))]
    widths = [max([len(name), *map(len, cells)]) for name, cells in zip(names, columns,
                                                                        strict=True)]
    right = [_is_numeric(field.type) for field in table.schema]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    lines = [line(list(names)), line(["-" * w for w in widths])]
    lines += [line([col[i] for col in columns]) for i in range(table.num_rows)]
    lines.append(f"({table.num_rows} row{'' if table.num_rows == 1 else 's'})")
    return "\n".join(lines) + "\n"


def write_table(table: pa.Table, sink: BinaryIO) -> None:
    sink.write(render_table(table).encode())


def write_csv(table: pa.Table, sink: BinaryIO) -> None:
    try:
        pacsv.write_csv(table, sink)
    except pa.ArrowException as exc:
        raise UserError(f"--format csv: {exc}; use --format json or parquet "
                        "for nested values") from None


INT64_LIMIT = 2**63


def _json_decimal(value: decimal.Decimal) -> object:
    """sum() of BIGINT is a HUGEINT (an Arrow decimal): integers stay integers, as long
    as JSON readers take them; other decimals become floats."""
    if value != value.to_integral_value():
        return float(value)
    return int(value) if abs(value) < INT64_LIMIT else str(value)


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return _json_decimal(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):  # e.g. an INTERVAL as (months, days, nanoseconds)
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def write_json_lines(table: pa.Table, sink: BinaryIO) -> None:
    names = table.column_names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(f"--format json: more than one column is named {', '.join(twice)}; "
                        "give them distinct names with AS")
    options = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
    for batch in table.to_batches():
        for row in batch.to_pylist():
            sink.write(orjson.dumps(row, default=_json_default, option=options))


def write_parquet(table: pa.Table, sink: BinaryIO) -> None:
    pq.write_table(table, sink, compression="zstd")


WRITERS: dict[str, Callable[[pa.Table, BinaryIO], None]] = {
    "table": write_table, "csv": write_csv, "json": write_json_lines, "parquet": write_parquet,
}


def render(table: pa.Table, fmt: str) -> bytes:
    buffer = io.BytesIO()
    WRITERS[fmt](table, buffer)
    return buffer.getvalue()


def write_result(table: pa.Table, fmt: str, target: OutputTarget) -> None:
    write_output(target, [render(table, fmt)])
