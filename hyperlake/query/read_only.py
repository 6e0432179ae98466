"""``hyperlake sql`` only reads: statements are classified by DuckDB before any runs.

Why: users wire ``hyperlake sql`` into scripts, notebooks and agents and expect a query
command to leave the lake alone, yet DuckDB can write anywhere (``COPY … TO`` over a
partition or the writer lock, ``EXPORT DATABASE``, ``ATTACH`` then ``CREATE TABLE``).
So the text is split into statements by DuckDB's own parser (``extract_statements``),
every statement's type is checked against the ones that read, and only then do they
run, one by one, as parsed. One statement that is not a read refuses the whole text,
with the statement's type named. Results leave only through ``--output``.

Reads: SELECT (and WITH, FROM-first, VALUES, DESCRIBE, SUMMARIZE, SHOW, PIVOT and
UNPIVOT, which DuckDB parses as SELECT), EXPLAIN and EXPLAIN ANALYZE of a read, and a
few PRAGMAs that only report. Everything else is refused: COPY, EXPORT, ATTACH/DETACH,
CREATE, INSERT/UPDATE/DELETE/MERGE, SET/RESET/USE, PRAGMA that does something, CALL,
INSTALL/LOAD, PREPARE/EXECUTE, transactions, CHECKPOINT, VACUUM/ANALYZE.

The connection is locked as well (``lock_down``): no extension is installed or loaded
on demand (no network, no new functions), and the configuration cannot change, so a
SELECT cannot switch on file logging or profiling output either.

``hyperlake.connect()`` stays a normal DuckDB connection: the power tool, for Python.
"""

from __future__ import annotations

import re

import duckdb

from hyperlake.errors import UserError

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
#: ``EXPLAIN``, ``EXPLAIN ANALYZE`` or ``EXPLAIN (options)`` before the explained statement.
_EXPLAIN = re.compile(r"EXPLAIN(?:\s*\((?:[^()']|'[^']*')*\)|\s+ANALY[SZ]E\b)?\s*",
                      re.IGNORECASE)
_PRAGMA_NAME = re.compile(r"PRAGMA\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
#: How a read begins; DuckDB parses ``PIVOT … ON col`` without ``IN (…)`` as MULTI
#: (it creates an enum type in memory first), and so also ``CREATE TABLE … AS PIVOT``.
_READ_START = re.compile(r"(?:SELECT|WITH|FROM|PIVOT|UNPIVOT|VALUES|TABLE|\()",
                         re.IGNORECASE)
#: PRAGMAs that only report (the rest change settings, import or checkpoint).
REPORTING_PRAGMAS = frozenset({
    "table_info", "show", "show_tables", "show_tables_expanded", "show_databases",
    "database_list", "database_size", "version", "platform", "functions", "collations",
    "storage_info", "metadata_info", "user_agent",
})
READS = "SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW, PIVOT, EXPLAIN"


def _text(statement: duckdb.Statement) -> str:
    return _LEADING_COMMENTS.sub("", statement.query, count=1)


UNNAMED = "a statement of a type this DuckDB cannot name"


def _kind(statement: duckdb.Statement) -> str:
    try:
        return str(statement.type.name)
    except ValueError:  # e.g. UPDATE EXTENSIONS: the binding's enum lacks its type
        return UNNAMED


def _explained(con: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    match = _EXPLAIN.match(text)
    return [] if match is None else _parse(con, text[match.end():])


def _parse(con: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    try:
        return list(con.extract_statements(text))
    except (duckdb.Error, ValueError):
        return []  # not even parseable (or a type this duckdb cannot name): not a read


def refusal(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> str | None:
    """None when the statement only reads; else what it is, for the error message."""
    kind, text = _kind(statement), _text(statement)
    if kind == "SELECT":
        return None
    if kind == "MULTI" and _READ_START.match(text):
        return None
    if kind == "PRAGMA":
        name = _PRAGMA_NAME.match(text)
        if name is not None and name[1].lower() in REPORTING_PRAGMAS:
            return None
        return f"PRAGMA {name[1] if name else ''}".strip()
    if kind == "EXPLAIN":
        inner = _explained(con, text)
        if len(inner) != 1:
            return "EXPLAIN of a statement that is not a read"
        why = refusal(con, inner[0])
        return None if why is None else f"EXPLAIN of {why}"
    return kind


def read_statements(con: duckdb.DuckDBPyConnection, query: str) -> list[duckdb.Statement]:
    """The statements of ``query``, each checked to be a read; UserError otherwise
    (a syntax error is DuckDB's ``ParserException``)."""
    try:
        statements = list(con.extract_statements(query))  # a syntax error raises here
    except ValueError:  # a statement type the Python binding has no name for
        statements = []
        kinds = [UNNAMED]
    else:
        kinds = [why for statement in statements
                 if (why := refusal(con, statement)) is not None]
    if kinds:
        which = kinds[0] if len(kinds) == 1 else ", ".join(dict.fromkeys(kinds))
        raise UserError(f"query: refused {which}: `hyperlake sql` only reads ({READS}); "
                        "save results with --output FILE, or use hyperlake.connect() "
                        "in Python to write")
    return statements


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No extension installed or loaded on demand, and no setting changed from here on."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
