"""``hyperlake sql`` statement classes: every statement that writes, attaches, loads,
imports or changes a setting is refused (exit 2, one line, nothing run), however it is
dressed — lower case, behind comments, after a read, under EXPLAIN, with a trailing
semicolon — and whatever it targets (a partition of the lake, the writer lock, a new
file in the lake, a file elsewhere); every read runs. After each, not a byte of the
lake has changed and nothing has appeared elsewhere.

The classes here extend ``tests/commands/test_sql_read_only.py`` (which names the
refusal of each basic class): COPY FROM, COPY FROM DATABASE, IMPORT DATABASE, MERGE,
TRUNCATE, UPDATE, ALTER, COMMENT ON, CREATE SECRET/TEMP/SEQUENCE/TYPE/SCHEMA/INDEX,
SET GLOBAL/VARIABLE, PRAGMA settings, FORCE INSTALL, CHECKPOINT, ANALYZE, DEALLOCATE,
ABORT, a write smuggled through ``query()``; hypothesis composes them with targets and
dressings.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.query.test_catalog_support import odd_names_lake
from tests.reliability.support import TRACEBACK, Tallies, Tally, call_main, tree, tree_changes

#: Statements that must be refused; {target} is a path, {lake} the lake's root.
WRITES = (
    "COPY (SELECT 1 AS a) TO '{target}'",
    "COPY (SELECT * FROM candles) TO '{target}' (FORMAT parquet)",
    "COPY candles FROM '{target}'",
    "COPY FROM DATABASE memory TO memory",
    "EXPORT DATABASE '{target}'",
    "EXPORT DATABASE '{target}' (FORMAT parquet)",
    "IMPORT DATABASE '{lake}'",
    "ATTACH '{target}' AS x",
    "ATTACH '{target}' AS x (READ_ONLY)",
    "ATTACH IF NOT EXISTS ':memory:' AS m",
    "DETACH DATABASE IF EXISTS x",
    "CREATE TABLE t AS SELECT * FROM candles",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW candles AS SELECT 1 AS a",
    "CREATE SECRET s (TYPE s3)",
    "CREATE SEQUENCE s",
    "CREATE TYPE e AS ENUM ('a')",
    "CREATE SCHEMA s",
    "CREATE MACRO m() AS 1",
    "INSERT INTO candles SELECT * FROM candles",
    "WITH x AS (SELECT 1) INSERT INTO candles SELECT * FROM candles",
    "UPDATE candles SET o = 0",
    "DELETE FROM candles",
    "TRUNCATE candles",
    "MERGE INTO candles USING candles AS c ON false WHEN NOT MATCHED THEN INSERT *",
    "ALTER VIEW candles RENAME TO c2",
    "COMMENT ON VIEW candles IS 'x'",
    "DROP VIEW candles",
    "SET threads = 1",
    "SET GLOBAL threads = 1",
    "SET VARIABLE v = 1",
    "RESET threads",
    "USE memory",
    "PRAGMA threads = 1",
    "PRAGMA memory_limit = '1GB'",
    "PRAGMA enable_profiling",
    "PRAGMA import_database('{lake}')",
    "INSTALL '{target}'",
    "FORCE INSTALL '{target}'",
    "LOAD parquet",
    "CALL pragma_table_info('candles')",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DEALLOCATE p",
    "BEGIN TRANSACTION",
    "ABORT",
    "SELECT * FROM query('COPY (SELECT 1 AS a) TO ''{target}''')",
    "SELECT * FROM enable_logging(storage = 'file', storage_path = '{target}')",
)
#: Statements that must run.
READS = (
    "SELECT count(*) AS n FROM candles",
    "FROM funding SELECT max(time)",
    "SUMMARIZE candles",
    "SELECT * FROM query_table('funding') LIMIT 2",
    "SELECT * FROM read_parquet('{lake}/candles/*/*/*/*.parquet') LIMIT 1",
    "PRAGMA database_size",
    "EXPLAIN SELECT * FROM candles_with_funding",
    "SHOW TABLES",
)
#: How a statement may be dressed ({s} is the statement).
DRESSES = ("{s}", "{s};", "{s} ;  ", "  \n{s}", "-- note\n{s}", "/* c */ {s}", "SELECT 1; {s}",
           "{s}; SELECT 1", "EXPLAIN {s}", "EXPLAIN ANALYZE {s}", "{lower}", "{upper}")


def targets(lake: Path, elsewhere: Path) -> tuple[str, ...]:
    return (str(lake / "candles/market=BTC/interval=1m/date=2025-01-01/part-0.parquet"),
            str(lake / "_state/writer.lock"), str(lake / "candles/new.parquet"),
            str(lake / "candles"), str(elsewhere / "out.csv"), str(elsewhere / "db.duckdb"))


def dress(text: str, how: str) -> str:
    return how.format(s=text, lower=text.lower(), upper=text.upper())


def sql(statement: str, lake: Path) -> tuple[int, str, str]:
    return call_main(["sql", statement, "--lake", str(lake), "--format", "json"])


def try_one(tally: Tally, lake: Path, elsewhere: Path, statement: str, writes: bool) -> None:
    before = tree(lake)
    try:
        code, out, err = sql(statement, lake)
    except Exception as exc:  # noqa: BLE001 - a traceback for the user
        tally.tracebacks += 1
        tally.problems.append(f"{statement!r}: {type(exc).__name__}: {exc}")
        return
    tally.inputs += 1
    tally.scan(out, err)
    shown = repr(statement)[:200]
    if writes:
        tally.expect(code == 2 and out == "" and err.count("\n") == 1,
                     f"{shown} was not refused: exit {code}, {err[-200:]}")
        tally.note("refused")
    else:
        tally.expect(code == 0 and err == "" and TRACEBACK not in out,
                     f"{shown} did not run: exit {code}, {err[-200:]}")
    changes = tree_changes(before, tree(lake))
    tally.expect(not changes, f"{shown} changed the lake: {changes[:3]}")
    strays = sorted(p.name for p in elsewhere.iterdir())
    tally.expect(not strays, f"{shown} wrote {strays}")


def statement_round(folder: Path, rng: random.Random, examples: int = 100) -> Tallies:
    """Every class in every dressing once (dressing drawn per class), then
    ``examples`` more drawn combinations."""
    tally = Tally(runs=1)
    lake, elsewhere = folder / "lake", folder / "elsewhere"
    odd_names_lake(lake)
    (lake / "_state").mkdir()
    (lake / "_state/writer.lock").write_bytes(b"")
    elsewhere.mkdir()
    aims = targets(lake, elsewhere)

    def fill(template: str, target: str) -> str:
        return template.replace("{target}", target).replace("{lake}", str(lake))

    for template in WRITES:
        try_one(tally, lake, elsewhere, dress(fill(template, rng.choice(aims)),
                                              rng.choice(DRESSES)), True)
    for template in READS:
        try_one(tally, lake, elsewhere, fill(template, ""), False)

    @seed(rng.randrange(2**31))
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(template=st.sampled_from(WRITES), target=st.sampled_from(aims),
           how=st.lists(st.sampled_from(DRESSES), min_size=1, max_size=2))
    def drawn(template: str, target: str, how: list[str]) -> None:
        statement = fill(template, target)
        for one in how:
            statement = dress(statement, one)
        try_one(tally, lake, elsewhere, statement, True)

    drawn()
    return {"sql statement classes": tally}
