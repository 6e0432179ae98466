"""``hyperlake sql``: every format, files written whole, errors on one line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from hyperlake.cli import main
from tests.query.test_catalog_support import T0, make_bars, odd_names_lake, write_bars

PER_SERIES = ("SELECT market, interval, count(*) AS bars, min(t) AS first FROM candles "
              "GROUP BY ALL ORDER BY market, interval")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    odd_names_lake(root)
    return root


def sql(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sql", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_is_aligned_with_a_row_count(lake: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, PER_SERIES, "--lake", str(lake))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["market", "interval", "bars", "first"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["@107", "1d", "3", "2025-01-01", "00:00:00Z"]
    assert [line.split()[:2] for line in lines[2:7]] == [
        ["@107", "1d"], ["BTC", "1m"], ["kPEPE", "1M"], ["kPEPE", "1m"], ["xyz:XYZ100", "1h"]]
    assert lines[-1] == "(5 rows)"
    bars_column = lines[0].index("bars") + len("bars")
    assert all(line[bars_column - 1].isdigit() for line in lines[2:7])  # right-aligned


def test_table_shows_null_and_nan(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, "SELECT NULL AS a, 'NaN'::DOUBLE AS b, true AS c",
                       "--lake", str(lake))
    assert code == 0 and out.splitlines()[2].split() == ["NULL", "NaN", "true"]


def test_csv_has_a_header_and_every_row(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, "SELECT market, interval, t, q FROM candles WHERE "
                       "market = 'kPEPE' ORDER BY interval, t", "--lake", str(lake),
                       "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 183 and list(rows[0]) == ["market", "interval", "t", "q"]
    assert rows[0]["interval"] == "1M" and rows[0]["q"] == ""  # NULL is empty
    assert rows[0]["t"].startswith("2025-01-01 00:00:00")


def test_json_lines(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, "SELECT t, funding_rate, premium, date FROM "
                       "candles_with_funding WHERE market = 'BTC' ORDER BY t LIMIT 3",
                       "--lake", str(lake), "--format", "json")
    assert code == 0
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    assert rows[0]["t"] == "2025-01-01T22:30:00Z" and rows[0]["date"] == "2025-01-01"
    assert isinstance(rows[0]["funding_rate"], float)
    assert any(row["premium"] is None for row in rows) or all(
        isinstance(row["premium"], float) for row in rows)


def test_json_keeps_sums_integral_and_refuses_twin_names(
        lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, "SELECT sum(n) AS trades, 0.25 AS quarter FROM candles",
                       "--lake", str(lake), "--format", "json")
    row = orjson.loads(out)
    assert code == 0 and isinstance(row["trades"], int) and row["quarter"] == 0.25
    code, out, err = sql(capsys, "SELECT 1 AS a, 2 AS a", "--lake", str(lake),
                         "--format", "json")
    assert code == 2 and out == "" and "more than one column is named a" in err


def test_parquet_needs_and_writes_an_output(lake: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sql(capsys, PER_SERIES, "--lake", str(lake), "--format", "parquet")
    assert code == 2 and "--output" in err
    target = tmp_path / "out" / "series.parquet"
    code, _, err = sql(capsys, PER_SERIES, "--lake", str(lake), "--format", "parquet",
                       "--output", str(target))
    assert code == 2 and f"{target.parent} does not exist" in err  # no folder made up
    assert not target.parent.exists()
    target.parent.mkdir()
    code, out, err = sql(capsys, PER_SERIES, "--lake", str(lake), "--format", "parquet",
                         "--output", str(target))
    assert code == 0 and out == "" and "wrote 5 rows" in err
    table = pq.read_table(target)
    assert table.column("bars").to_pylist() == [3, 180, 3, 180, 30]
    assert sorted(p.name for p in target.parent.iterdir()) == ["series.parquet"]


def test_output_file_replaced_whole(lake: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "series.csv"
    target.write_text("old contents\n")
    code, _, _ = sql(capsys, PER_SERIES, "--lake", str(lake), "--format", "csv",
                     "--output", str(target))
    assert code == 0 and target.read_text().startswith('"market","interval","bars"')
    code, _, _ = sql(capsys, "SELECT nope FROM candles", "--lake", str(lake),
                     "--format", "csv", "--output", str(target))
    assert code == 2 and target.read_text().startswith('"market","interval","bars"')
    assert [p.name for p in tmp_path.iterdir()] == ["series.csv"]


@pytest.mark.parametrize("query, needle", [
    ("SELECT * FROM nowhere", "Table with name nowhere does not exist"),
    ("SELEC 1", 'syntax error at or near "SELEC"'),
    ("SELECT 'abc'::INTEGER", "Could not convert string 'abc'"),
    ("SELECT tt FROM candles", 'column "tt"'),
    ("   ", "query: empty"),
])
def test_sql_errors_are_one_line(lake: Path, capsys: pytest.CaptureFixture[str], query: str,
                                 needle: str) -> None:
    code, out, err = sql(capsys, query, "--lake", str(lake))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("hyperlake sql: error: query: ")
    assert needle in err and "Traceback" not in err


def test_missing_lake_is_a_user_error(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sql(capsys, "SELECT 1", "--lake", str(tmp_path / "typo"))
    assert code == 2 and "--lake:" in err and "does not exist" in err


def test_lake_without_funding_still_answers(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_bars(tmp_path, make_bars("BTC", "1h", [T0]))
    code, out, _ = sql(capsys, "SELECT count(*) AS n, count(funding_rate) AS f FROM "
                       "candles_with_funding", "--lake", str(tmp_path), "--format", "json")
    assert code == 0 and orjson.loads(out) == {"n": 1, "f": 0}


def test_help_documents_the_views(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sql", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for needle in ("candles_with_funding", "funding_apr", "No lookahead", "JSON lines",
                   "fundingRate", "t_close"):
        assert needle in out
