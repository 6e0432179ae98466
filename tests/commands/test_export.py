"""``hyperlake export csv``: the vendors' schema, exact decimals, sorted, atomic."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from hyperlake.cli import main
from hyperlake.lake.store import Location
from hyperlake.query.export_csv import CSV_HEADER
from hyperlake.schemas.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from tests.conftest import LAKE_KINDS
from tests.query.test_catalog_support import (
    T0,
    Bars,
    make_bars,
    module_lake,
    odd_names_lake,
    write_bars,
)

HEADER = "s,i,t,T,o,h,l,c,v,q,n,x"


@pytest.fixture(scope="module", params=LAKE_KINDS)
def lake(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Location, list[Bars]]:
    root = module_lake(request, tmp_path_factory, "lake")
    bars, _ = odd_names_lake(root)
    return root, bars


def export(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["export", "csv", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def bars_of(bars: list[Bars], market: str, interval: str) -> Bars:
    return next(b for b in bars if (b.market, b.interval) == (market, interval))


def test_header_and_every_field(lake: tuple[Location, list[Bars]], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    root, bars = lake
    output = tmp_path / "btc.csv"
    code, out, _ = export(capsys, "--market", "BTC", "--interval", "1m", "--output",
                          str(output), "--lake", str(root))
    assert code == 0 and "exported 180 candles of BTC 1m" in out
    assert output.read_text().splitlines()[0] == HEADER == ",".join(CSV_HEADER)
    rows = read_rows(output)
    btc = bars_of(bars, "BTC", "1m")
    assert [int(r["t"]) for r in rows] == btc.t
    assert [int(r["T"]) for r in rows] == [t + MINUTE_MS - 1 for t in btc.t]
    assert {r["s"] for r in rows} == {"BTC"} and {r["i"] for r in rows} == {"1m"}
    for row, i in zip(rows, range(len(btc.t)), strict=True):
        for name, values in (("o", btc.o), ("h", btc.h), ("l", btc.low), ("c", btc.c),
                             ("v", btc.v)):
            assert float(row[name]) == values[i]  # the exact float64 back
        assert row["q"] == ("" if btc.q[i] is None else row["q"])
        assert btc.q[i] is None or float(row["q"]) == btc.q[i]
        assert int(row["n"]) == btc.n[i]
        assert row["x"] == ("true" if btc.x[i] else "false")
    assert rows[-1]["x"] == "false"


def test_decimals_are_plain_and_shortest(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    prices = [0.00001234, 66000.0, 1e-07, 0.1 + 0.2, 123456.789]
    one = make_bars("kPEPE", "1h", [T0 + i * HOUR_MS for i in range(len(prices))])
    one.o = one.h = one.low = one.c = prices
    one.v = [1e-08, 2.0, 3.5, 1e16, 0.0]
    one.q = [None, 1e21, 0.5, None, 7.0]
    write_bars(lake, one)
    output = tmp_path / "k.csv"
    assert export(capsys, "--market", "kpepe", "--interval", "1h", "--output", str(output),
                  "--lake", str(lake))[0] == 0
    rows = read_rows(output)
    assert [r["o"] for r in rows] == ["0.00001234", "66000", "0.0000001",
                                      "0.30000000000000004", "123456.789"]
    assert [r["v"] for r in rows] == ["0.00000001", "2", "3.5", "10000000000000000", "0"]
    assert [r["q"] for r in rows] == ["", "1000000000000000000000", "0.5", "", "7"]
    assert {r["s"] for r in rows} == {"kPEPE"}
    text = output.read_text()
    assert "e" not in text.replace("true", "").replace("false", "").split("\n", 1)[1]


def test_rows_sorted_across_days_and_unsorted_files(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    opens = [T0 + DAY_MS + 5 * HOUR_MS, T0 + DAY_MS + HOUR_MS, T0 + 3 * HOUR_MS, T0]
    write_bars(tmp_path, make_bars("@107", "1h", opens), keep_order=True)
    output = tmp_path / "out.csv"
    assert export(capsys, "--market", "@107", "--interval", "1h", "--output", str(output),
                  "--lake", str(tmp_path))[0] == 0
    assert [int(r["t"]) for r in read_rows(output)] == sorted(opens)


def test_start_inclusive_end_exclusive(lake: tuple[Location, list[Bars]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = lake[0]
    output = tmp_path / "x.csv"
    code, _, _ = export(capsys, "--market", "xyz:XYZ100", "--interval", "1h",
                        "--start", "2025-01-01T05:00:00Z", "--end", "2025-01-01T08:00:00Z",
                        "--output", str(output), "--lake", str(root))
    assert code == 0
    rows = read_rows(output)
    assert [int(r["t"]) for r in rows] == [T0 + h * HOUR_MS for h in (5, 6, 7)]
    assert {r["s"] for r in rows} == {"xyz:XYZ100"}


def test_case_distinct_intervals(lake: tuple[Location, list[Bars]], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = lake
    months, minutes = tmp_path / "M.csv", tmp_path / "m.csv"
    assert export(capsys, "--market", "kPEPE", "--interval", "1M", "--output", str(months),
                  "--lake", str(root))[0] == 0
    assert export(capsys, "--market", "kPEPE", "--interval", "1m", "--output", str(minutes),
                  "--lake", str(root))[0] == 0
    assert [r["i"] for r in read_rows(months)] == ["1M"] * 3
    assert len(read_rows(minutes)) == 180
    assert read_rows(months)[0]["T"] == "1738367999999"  # the end of January


def test_empty_range_writes_the_header_and_a_note(lake: tuple[Location, list[Bars]],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "none.csv"
    code, _, err = export(capsys, "--market", "BTC", "--interval", "1m", "--start",
                          "2030-01-01T00:00:00Z", "--output", str(output),
                          "--lake", str(lake[0]))
    assert code == 0 and output.read_text() == HEADER + "\n"
    assert "header only" in err


@pytest.mark.parametrize("argv, needle", [
    (["--market", "ETH", "--interval", "1m"], "market: 'ETH' is not in"),
    (["--market", "kPEPE", "--interval", "5m"], "interval: '5m' is not in the lake for "
                                                "kPEPE (it has 1M, 1m"),
    (["--market", "BTC", "--interval", "1m", "--start", "2025-01-01"], "--start: "),
    (["--market", "BTC", "--interval", "1m", "--start", "2025-01-02T00:00:00Z",
      "--end", "2025-01-01T00:00:00Z"], "is not after start"),
])
def test_bad_input_leaves_the_old_file(lake: tuple[Location, list[Bars]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], argv: list[str],
                                       needle: str) -> None:
    output = tmp_path / "keep.csv"
    output.write_text("precious\n")
    code, _, err = export(capsys, *argv, "--output", str(output), "--lake", str(lake[0]))
    assert code == 2 and needle in err and err.count("\n") == 1
    assert output.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.csv"]


def test_unknown_market_lists_the_lake(lake: tuple[Location, list[Bars]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = export(capsys, "--market", "DOGE", "--interval", "1m", "--output",
                          str(tmp_path / "d.csv"), "--lake", str(lake[0]))
    assert code == 2 and "@107, BTC, kPEPE, xyz:XYZ100" in err
