"""``--output`` of ``hyperlake sql`` and ``hyperlake export csv`` (one helper): regular
files are replaced atomically; devices, FIFOs and ``-`` are written through and stay
what they are; symlinks are followed, never replaced; bad targets are one line, exit 2,
with nothing written."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hyperlake.cli import main
from tests.query.test_catalog_support import odd_names_lake

COMMANDS = {
    "sql": ["sql", "SELECT market, interval, count(*) AS n FROM candles GROUP BY ALL "
            "ORDER BY ALL", "--format", "csv"],
    "export": ["export", "csv", "--market", "BTC", "--interval", "1m"],
}
FIRST_LINE = {"sql": '"market","interval","n"', "export": "s,i,t,T,o,h,l,c,v,q,n,x"}
Run = Callable[[str, str], tuple[int, str, str]]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    odd_names_lake(root)
    return root


@pytest.fixture
def run(lake: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)  # a regression writing "-" as a file writes it here

    def run_one(command: str, output: str) -> tuple[int, str, str]:
        code = main([*COMMANDS[command], "--lake", str(lake), "--output", output])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return run_one


both = pytest.mark.parametrize("command", sorted(COMMANDS))


def one_line_error(err: str, *needles: str) -> bool:
    return err.count("\n") == 1 and "error: --output: " in err and all(n in err for n in needles)


# -- special files -----------------------------------------------------------------------

def char_device(folder: Path, name: str, major: int, minor: int) -> Path:
    """A character device to write to. Root gets its own node in ``folder``: were the
    code to regress and rename over it, the machine's /dev/<name> must not be what goes.
    Anyone else gets /dev/<name> itself, which they cannot replace."""
    if os.geteuid() != 0:
        return Path("/dev") / name
    node = folder / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    try:
        open(node, "wb").close()
    except OSError:
        pytest.skip("device nodes cannot be opened in this folder (nodev)")
    return node


@both
def test_a_full_device_is_an_error_and_stays_a_device(run: Run, command: str,
                                                      tmp_path: Path) -> None:
    full = char_device(tmp_path, "full", 1, 7)
    code, _, err = run(command, str(full))
    assert code == 2 and one_line_error(err, str(full), "No space left on device")
    assert stat.S_ISCHR(os.stat(full).st_mode)


@both
def test_dev_null_is_written_through(run: Run, command: str, tmp_path: Path) -> None:
    null = char_device(tmp_path, "null", 1, 3)
    code, _, _ = run(command, str(null))
    assert code == 0 and stat.S_ISCHR(os.stat(null).st_mode)


@both
def test_a_fifo_gets_the_rows_and_stays_a_fifo(run: Run, command: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, _ = run(command, str(fifo))
    reader.join(timeout=30)
    assert not reader.is_alive(), "nothing was written to the FIFO"
    assert code == 0 and received[0].decode().splitlines()[0] == FIRST_LINE[command]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@both
def test_dash_is_standard_output(run: Run, command: str) -> None:
    code, out, err = run(command, "-")
    assert code == 0 and out.splitlines()[0] == FIRST_LINE[command]
    assert "exported" not in out and "wrote" not in out  # the summary goes to stderr
    assert "exported 180 candles" in err if command == "export" else err == ""


# -- symlinks ----------------------------------------------------------------------------

@both
def test_a_symlink_is_followed_not_replaced(run: Run, command: str, tmp_path: Path) -> None:
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old\n")
    link.symlink_to(real)
    code, _, err = run(command, str(link))
    assert code == 0 and link.is_symlink() and link.readlink() == real
    assert real.read_text().splitlines()[0] == FIRST_LINE[command]
    assert f"{link} is a symlink; writing its target {real}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


@both
def test_a_symlink_to_a_device_writes_the_device(run: Run, command: str,
                                                 tmp_path: Path) -> None:
    null, link = char_device(tmp_path, "null", 1, 3), tmp_path / "link"
    link.symlink_to(null)
    code, _, _ = run(command, str(link))
    assert code == 0 and link.is_symlink() and stat.S_ISCHR(os.stat(null).st_mode)


@both
def test_a_dangling_symlink_gets_its_target(run: Run, command: str, tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "new.csv")
    code, _, err = run(command, str(link))
    assert code == 0 and link.is_symlink() and "is a symlink" in err
    assert (tmp_path / "new.csv").read_text().splitlines()[0] == FIRST_LINE[command]


# -- refused targets ---------------------------------------------------------------------

def block_device(folder: Path) -> Path:
    node = folder / "block"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(0, 0))
    except OSError:
        pytest.skip("cannot make a block device node here")
    return node


def under_a_file(folder: Path) -> Path:
    (folder / "file").write_text("x")
    return folder / "file" / "out.csv"


def symlink_loop(folder: Path) -> Path:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a folder": (lambda folder: folder, "is a folder"),
    "a missing folder": (lambda folder: folder / "nowhere" / "out.csv", "does not exist"),
    "under a file": (under_a_file, "Not a directory"),
    "a symlink loop": (symlink_loop, "Too many levels of symbolic links"),
    "a name too long": (lambda folder: folder / ("x" * 300), "File name too long"),
    "a block device": (block_device, "is a block device"),
}


@both
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_targets_are_refused_before_any_work(run: Run, command: str, case: str,
                                                 tmp_path: Path) -> None:
    make, needle = REFUSED[case]
    target = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run(command, str(target))
    assert code == 2 and out == "" and one_line_error(err, needle), err
    assert sorted(tmp_path.rglob("*")) == before


def unwritable_folder(tmp: Path) -> Path:
    """A folder where no file can be made: read-only for a user; /sys for root."""
    mine = tmp / "read-only"
    mine.mkdir(mode=0o500)
    for folder in (mine, Path("/sys")):
        try:
            (folder / ".probe").touch()
        except OSError:
            return folder
        (folder / ".probe").unlink()
    pytest.skip("no unwritable folder here")


@both
def test_an_unwritable_folder_is_one_line(run: Run, command: str, tmp_path: Path) -> None:
    target = unwritable_folder(tmp_path) / "out.csv"
    code, _, err = run(command, str(target))
    assert code == 2 and one_line_error(err, str(target), "nothing was written")
    assert not target.exists()


@both
def test_an_empty_name_is_refused(run: Run, command: str) -> None:
    code, _, err = run(command, "")
    assert code == 2 and one_line_error(err, "empty")
