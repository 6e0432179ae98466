"""The read side never ends in a traceback: one damaged partition does not wedge
``hyperlake sql`` or ``hyperlake export`` (only what must read it fails, naming it and
pointing at ``hyperlake verify``, and nothing in the lake moves), and a ``--lake``
that cannot be used is one line."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hyperlake.cli import main
from hyperlake.lake.paths import dataset_files_glob
from hyperlake.schemas.vocabulary import Dataset
from tests.query.test_catalog_support import odd_names_lake


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    odd_names_lake(root)
    return root


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def first_file(root: Path, dataset: Dataset) -> Path:
    """The file DuckDB would meet first in the dataset (the view used to open it to
    learn its columns, on every query)."""
    return sorted((root / dataset).glob(dataset_files_glob(dataset)))[0]


@pytest.fixture
def damaged(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the lake whose first candle file (@107 1d, 2025-01-01) is cut in half."""
    root = tmp_path / "lake"
    shutil.copytree(pristine, root)
    bad = first_file(root, "candles")
    assert "market=%40107" in str(bad)
    truncate(bad)
    return root, bad


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# -- one damaged partition ---------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "SELECT count(*) AS n FROM funding",
    "SELECT count(*) AS n FROM candles WHERE market = 'kPEPE'",
    "SELECT count(funding_rate) AS n FROM candles_with_funding WHERE market = 'kPEPE'",
    "SELECT count(*) AS n FROM candles WHERE market = '@107' AND date = DATE '2025-01-02'",
])
def test_what_does_not_read_the_damaged_file_still_answers(
        damaged: tuple[Path, Path], query: str, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = damaged
    code, out, err = cli(capsys, "sql", query, "--lake", str(root), "--format", "csv")
    assert code == 0 and err == "" and int(out.splitlines()[1]) > 0


def test_a_query_that_reads_it_names_it(damaged: tuple[Path, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = damaged
    before = snapshot(root)
    code, out, err = cli(capsys, "sql", "SELECT count(*) FROM candles", "--lake", str(root))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"cannot read lake file {bad}" in err and "hyperlake verify" in err
    assert snapshot(root) == before  # the read side moves nothing


def test_an_export_that_reads_it_names_it_and_keeps_the_old_file(
        damaged: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = damaged
    output = tmp_path / "out" / "btc.csv"
    output.parent.mkdir()
    output.write_text("precious\n")
    code, _, err = cli(capsys, "export", "csv", "--market", "@107", "--interval", "1d",
                       "--output", str(output), "--lake", str(root))
    assert code == 1 and err.count("\n") == 1
    assert f"cannot read lake file {bad}" in err and "hyperlake verify" in err
    assert output.read_text() == "precious\n" and list(output.parent.iterdir()) == [output]
    code, out, _ = cli(capsys, "export", "csv", "--market", "kPEPE", "--interval", "1m",
                       "--output", str(output), "--lake", str(root))
    assert code == 0 and "exported 180 candles" in out


def test_a_damaged_funding_file_leaves_candles_alone(pristine: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lake"
    shutil.copytree(pristine, root)
    bad = first_file(root, "funding")
    bad.write_bytes(b"")
    code, out, _ = cli(capsys, "sql", "SELECT count(*) AS n FROM candles", "--lake", str(root),
                       "--format", "csv")
    assert code == 0 and out.splitlines()[1] == "396"
    code, _, err = cli(capsys, "sql", "SELECT count(funding_rate) FROM candles_with_funding",
                       "--lake", str(root))
    assert code == 1 and f"cannot read lake file {bad}" in err


# -- a --lake that cannot be used --------------------------------------------------------

def under_a_file(folder: Path) -> Path:
    (folder / "file").write_text("x")
    return folder / "file" / "lake"


def symlink_loop(folder: Path) -> Path:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


def a_file(folder: Path) -> Path:
    (folder / "file").write_text("x")
    return folder / "file"


BAD_LAKES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda folder: folder / "typo", "does not exist"),
    "under a file": (under_a_file, "Not a directory"),
    "a symlink loop": (symlink_loop, "Too many levels of symbolic links"),
    "too long": (lambda folder: folder / ("x" * 300), "File name too long"),
    "a file": (a_file, "is not a directory"),
}
READERS = {
    "sql": ["sql", "SELECT 1"],
    "export": ["export", "csv", "--market", "BTC", "--interval", "1m", "--output", "{out}"],
}


@pytest.mark.parametrize("command", sorted(READERS))
@pytest.mark.parametrize("case", sorted(BAD_LAKES))
def test_an_unusable_lake_is_one_line(command: str, case: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    make, needle = BAD_LAKES[case]
    lake = make(tmp_path)
    argv = [a.replace("{out}", str(tmp_path / "out.csv")) for a in READERS[command]]
    code, out, err = cli(capsys, *argv, "--lake", str(lake))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "error: --lake: " in err and needle in err, err
    assert not (tmp_path / "out.csv").exists()


def test_a_lake_that_is_no_lake_reads_as_empty(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """/proc/self is a folder without datasets: the views are empty, an export says
    the market is not there."""
    code, out, _ = cli(capsys, "sql", "SELECT count(*) AS n FROM candles_with_funding",
                       "--lake", "/proc/self", "--format", "csv")
    assert code == 0 and out.splitlines() == ['"n"', "0"]
    code, _, err = cli(capsys, "export", "csv", "--market", "BTC", "--interval", "1m",
                       "--output", str(tmp_path / "o.csv"), "--lake", "/proc/self")
    assert code == 2 and "is not in /proc/self/candles" in err
