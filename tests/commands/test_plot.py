"""``hyperlake plot`` as a user runs it (through ``main``, in-process): single charts,
batches over several markets in worker processes, and bad inputs (one line, exit 2,
no file)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from hyperlake.cli import main
from hyperlake.commands.output import ItemProgress
from hyperlake.emulator.server import Emulator
from hyperlake.lake.store import Location
from hyperlake.query.plots import FUNDING_SIZE, heatmap_size, pixel_size
from tests.conftest import LAKE_KINDS
from tests.query.test_catalog_support import module_lake
from tests.query.test_plots_support import FIRST_DAY, assert_drawn, emulator_lake


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(scope="module", params=LAKE_KINDS)
def lake(request: pytest.FixtureRequest, emulator: Emulator,
         tmp_path_factory: pytest.TempPathFactory) -> Location:
    return emulator_lake(emulator, module_lake(request, tmp_path_factory, "lake"),
                         tmp_path_factory.mktemp("pacing"))


@pytest.fixture
def plot(lake: Location, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    monkeypatch.delenv("HYPERLAKE_LAKE", raising=False)

    def run(*argv: str, lake_arg: Location | None = lake) -> Run:
        extra = [] if lake_arg is None else ["--lake", str(lake_arg)]
        code = main(["plot", *argv, *extra])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_one_funding_chart(plot: Callable[..., Run], tmp_path: Path) -> None:
    run = plot("funding", "--market", "btc", "--output", str(tmp_path))
    assert run.code == 0, run.err
    assert run.out == f"wrote {tmp_path / 'funding-BTC.png'} (72 funding hours)\n"
    assert_drawn(tmp_path / "funding-BTC.png", pixel_size(FUNDING_SIZE))


def test_a_batch_in_worker_processes_skips_markets_without_data(
        plot: Callable[..., Run], tmp_path: Path) -> None:
    run = plot("funding", "--all", "--start", FIRST_DAY[0], "--end", FIRST_DAY[1],
               "--workers", "2", "--output", str(tmp_path))
    assert run.code == 0, run.err
    assert files(tmp_path) == ["funding-BTC.png", "funding-ETH.png"]
    assert sorted(run.out.splitlines()) == [
        f"wrote {tmp_path / 'funding-BTC.png'} (24 funding hours)",
        f"wrote {tmp_path / 'funding-ETH.png'} (24 funding hours)"]
    assert run.err.splitlines() == [
        "skip kPEPE: no funding in [2026-03-28T00:00:00Z, 2026-03-29T00:00:00Z) (its "
        "partitions run 2026-03-30 to 2026-03-30)"]
    for name in files(tmp_path):
        assert_drawn(tmp_path / name, pixel_size(FUNDING_SIZE))


def test_several_markets_named_make_a_batch(plot: Callable[..., Run], tmp_path: Path) -> None:
    run = plot("funding", "--market", "BTC,eth", "--market", "kpepe", "--ma", "6h",
               "--workers", "1", "--format", "svg", "--output", str(tmp_path))
    assert run.code == 0, run.err
    assert files(tmp_path) == ["funding-BTC.svg", "funding-ETH.svg", "funding-kPEPE.svg"]
    assert run.err == ""


def test_a_batch_where_every_market_is_skipped_fails(plot: Callable[..., Run],
                                                     tmp_path: Path) -> None:
    run = plot("candles", "--all", "--interval", "1h", "--start", "2025-01-01T00:00:00Z",
               "--end", "2025-02-01T00:00:00Z", "--output", str(tmp_path))
    assert run.code == 2
    skips, last = run.err.splitlines()[:-1], run.err.splitlines()[-1]
    assert sorted(line.split(":")[0] for line in skips) == ["skip BTC", "skip ETH"]
    assert last == ("hyperlake plot: error: no chart written: none of the 2 markets has 1h "
                    "candles in the span")
    assert files(tmp_path) == []


def test_candles_for_every_market_with_funding(plot: Callable[..., Run],
                                               tmp_path: Path) -> None:
    run = plot("candles", "--all", "--interval", "1h", "--funding", "--output", str(tmp_path))
    assert run.code == 0, run.err
    assert files(tmp_path) == ["candles-BTC-1h.png", "candles-ETH-1h.png"]
    assert "(72 bars of 1h)" in run.out


def test_heatmap(plot: Callable[..., Run], tmp_path: Path) -> None:
    run = plot("heatmap", "--output", str(tmp_path))
    assert run.code == 0, run.err
    assert run.out == f"wrote {tmp_path / 'funding-heatmap.png'} (3 markets, 3 days)\n"
    assert_drawn(tmp_path / "funding-heatmap.png", pixel_size(heatmap_size(3)))
    two = plot("heatmap", "--market", "eth,BTC", "--start", FIRST_DAY[0], "--output",
               str(tmp_path / "two"))
    assert two.out.endswith("(2 markets, 3 days)\n")


BAD_INPUTS = [
    (["funding", "--market", "DOGE"], "market: 'DOGE' is not in "),
    (["funding", "--market", "BTC", "--start", "yesterday"],
     "--start: 'yesterday' is not an ISO-8601 time"),
    (["funding", "--market", "BTC", "--start", "2026-03-29T00:00:00"],
     "--start: '2026-03-29T00:00:00' has no timezone"),
    (["funding", "--market", "BTC", "--start", "2026-03-30T00:00:00Z", "--end",
      "2026-03-29T00:00:00Z"], "end: 2026-03-29T00:00:00+00:00 is not after start"),
    (["funding", "--market", "BTC", "--ma", "24x"], "--ma: '24x' is not a window"),
    (["funding", "--market", "BTC", "--start", "2020-01-01T00:00:00Z", "--end",
      "2020-01-02T00:00:00Z"], "BTC: no funding in [2020-01-01T00:00:00Z, "
     "2020-01-02T00:00:00Z) (its partitions run 2026-03-28 to 2026-03-30)"),
    (["funding", "--market", "BTC,,ETH"], "--market: 'BTC,,ETH' has an empty name"),
    (["funding", "--all", "--workers", "0"], "--workers: 0 is not a positive number"),
    (["candles", "--market", "BTC", "--interval", "1M"], "interval: '1M' is not in the lake"),
    (["candles", "--market", "kPEPE", "--interval", "1h"], "market: 'kPEPE' is not in "),
    (["candles", "--all", "--interval", "1d"], "--all: "),
    (["heatmap", "--market", "DOGE"], "market: 'DOGE' is not in "),
    (["heatmap", "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-02T00:00:00Z"],
     "no market has funding in [2020-01-01T00:00:00Z, 2020-01-02T00:00:00Z)"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_file(plot: Callable[..., Run], tmp_path: Path,
                                                  argv: list[str], message: str) -> None:
    output = tmp_path / "charts"
    run = plot(*argv, "--output", str(output))
    assert run.code == 2
    assert run.err.startswith("hyperlake plot: error: ") and message in run.err
    assert run.err.count("\n") == 1 and run.out == ""
    assert files(output) == []


def test_output_that_is_a_file_and_a_missing_lake(plot: Callable[..., Run],
                                                  tmp_path: Path) -> None:
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    run = plot("funding", "--market", "BTC", "--output", str(taken))
    assert run.code == 2 and "--output: " in run.err and "is a file" in run.err
    assert taken.read_bytes() == b"mine"
    missing = plot("heatmap", "--output", str(tmp_path), lake_arg=tmp_path / "nowhere")
    assert missing.code == 2 and "does not exist" in missing.err


@pytest.mark.parametrize("argv", [
    ["funding", "--market", "BTC", "--format", "gif"],
    ["funding", "--market", "BTC", "--all"],
    ["funding"],
    ["candles", "--market", "BTC"],
])
def test_argument_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["plot", *argv])
    assert stop.value.code == 2
    assert "usage: hyperlake plot" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "text"), [
    (["plot", "--help"], "funding"),
    (["plot", "funding", "--help"], "APR"),
    (["plot", "heatmap", "--help"], "diverging"),
    (["plot", "candles", "--help"], "no lookahead"),
])
def test_help_everywhere(argv: list[str], text: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert text in capsys.readouterr().out


def test_the_progress_bar_counts_charts_and_prints_lines_above_it() -> None:
    stream = io.StringIO()
    with ItemProgress("plot funding", 2, stream=stream, enabled=True) as bar:
        bar.line("skip ETH: no funding", err=True)
        bar.advance()
        bar.advance()
    drawn = stream.getvalue()
    assert "skip ETH: no funding" in drawn
    assert "plot funding" in drawn and "2/2" in drawn
