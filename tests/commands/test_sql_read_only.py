"""``hyperlake sql`` only reads: every statement that writes, attaches, loads or
changes a setting is refused before anything runs, with its type named, and not a
byte of the lake (or of anywhere else) changes. ``hyperlake.connect()`` stays the
power tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlake.cli import main
from hyperlake.query.catalog import connect
from tests.query.test_catalog_support import odd_names_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    odd_names_lake(root)
    (root / "_state").mkdir()
    (root / "_state" / "writer.lock").write_bytes(b"")
    return root


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def sql(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sql", *argv])
    out, err = capsys.readouterr()
    return code, out, err


PARTITION = "candles/market=BTC/interval=1m/date=2025-01-01/part-0.parquet"


def writes(lake: Path, elsewhere: Path) -> list[tuple[str, str]]:
    """(statement, the type the refusal must name)."""
    part, lock, out = lake / PARTITION, lake / "_state/writer.lock", elsewhere
    return [
        (f"COPY (SELECT 1 AS a) TO '{part}' (FORMAT parquet)", "COPY"),
        (f"COPY (SELECT 1 AS a) TO '{lock}'", "COPY"),
        (f"COPY (SELECT * FROM candles) TO '{lake / 'candles'}' (FORMAT parquet, "
         "PARTITION_BY (market), OVERWRITE_OR_IGNORE)", "COPY"),
        (f"EXPORT DATABASE '{out / 'export'}'", "EXPORT"),
        (f"ATTACH '{out / 'x.duckdb'}' AS x", "ATTACH"),
        (f"ATTACH '{out / 'y.duckdb'}' AS y; CREATE TABLE y.t AS SELECT 1 AS a", "ATTACH"),
        ("CREATE TABLE t AS SELECT * FROM candles", "CREATE"),
        ("CREATE OR REPLACE VIEW candles AS SELECT 1 AS a", "CREATE"),
        ("CREATE MACRO m() AS 1", "CREATE"),
        ("INSERT INTO candles SELECT * FROM candles", "INSERT"),
        ("DELETE FROM candles", "DELETE"),
        ("DROP VIEW candles", "DROP"),
        ("SET threads = 1", "SET"),
        ("RESET threads", "SET"),
        ("SET VARIABLE v = 1", "SET"),
        ("USE memory", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA enable_profiling"),
        (f"PRAGMA import_database('{out}')", "PRAGMA import_database"),
        (f"INSTALL '{out / 'none.duckdb_extension'}'", "LOAD"),  # a path: no network
        ("LOAD parquet", "LOAD"),
        ("CALL pragma_version()", "CALL"),
        ("CHECKPOINT", "CALL"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("EXECUTE p", "EXECUTE"),
        ("BEGIN TRANSACTION", "TRANSACTION"),
        ("VACUUM", "VACUUM"),
        ("DETACH memory", "DETACH"),
        ("UPDATE EXTENSIONS", "cannot name"),
        ("CREATE TABLE p AS PIVOT (SELECT 1 AS a) ON a", "MULTI"),
        (f"SELECT 1; COPY (SELECT 2 AS b) TO '{out / 'second.csv'}'", "COPY"),
        (f"EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{part}'", "EXPLAIN of COPY"),
        (f"/* hidden */ EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1 AS a) TO '{part}'",
         "EXPLAIN of COPY"),
    ]


def test_every_writing_statement_is_refused(lake: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(lake)
    for statement, kind in writes(lake, tmp_path):
        code, out, err = sql(capsys, statement, "--lake", str(lake))
        assert code == 2 and out == "", statement
        assert err.count("\n") == 1 and "Traceback" not in err, statement
        assert err.startswith("hyperlake sql: error: query: refused "), err
        assert kind in err and "only reads" in err, (statement, err)
    assert snapshot(lake) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("statement", [
    "SELECT count(*) AS n FROM candles",
    "WITH b AS (SELECT * FROM candles) SELECT count(*) FROM b",
    "FROM funding SELECT max(time)",
    "VALUES (1), (2)",
    "DESCRIBE candles_with_funding",
    "SUMMARIZE SELECT o FROM candles",
    "SHOW TABLES",
    "EXPLAIN SELECT * FROM candles",
    "EXPLAIN ANALYZE SELECT count(*) FROM candles_with_funding",
    "PIVOT (SELECT market, interval FROM candles) ON interval",
    "PRAGMA table_info('funding')",
    "PRAGMA version",
    "-- a comment first\nSELECT 1 AS one; SELECT 2 AS two",
])
def test_reads_run(lake: Path, statement: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sql(capsys, statement, "--lake", str(lake))
    assert code == 0 and err == "" and out.rstrip().endswith("row)" if "1 row" in out
                                                             else "rows)")


def test_several_reads_give_the_last_result(lake: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, "SELECT 1 AS one; SELECT 2 AS two", "--lake", str(lake),
                       "--format", "csv")
    assert code == 0 and out.splitlines() == ['"two"', "2"]


def test_settings_and_extensions_are_locked(lake: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A SELECT cannot switch file logging on, and no extension is installed or loaded
    on demand (so no download either)."""
    logs = tmp_path / "logs"
    code, _, err = sql(capsys, "SELECT * FROM enable_logging(storage = 'file', "
                       f"storage_path = '{logs}')", "--lake", str(lake))
    assert code == 2 and "locked" in err and not logs.exists()
    code, out, _ = sql(capsys, "SELECT current_setting('autoinstall_known_extensions') AS i, "
                       "current_setting('autoload_known_extensions') AS l, "
                       "current_setting('lock_configuration') AS c", "--lake", str(lake),
                       "--format", "csv")
    assert code == 0 and out.splitlines()[1] == "false,false,true"


def test_connect_stays_the_power_tool(lake: Path, tmp_path: Path) -> None:
    con = connect(lake)
    con.execute(f"COPY (SELECT count(*) AS n FROM candles) TO '{tmp_path / 'n.csv'}'")
    con.execute("SET threads = 1")
    assert (tmp_path / "n.csv").read_text().splitlines() == ["n", "396"]
