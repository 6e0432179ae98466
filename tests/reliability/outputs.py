"""``--output`` onto special files, for ``sql`` (every format) and ``export csv``: a FIFO
gets the bytes and stays a FIFO; a symlink is followed and stays a link (to a file, a
FIFO, a device, or nowhere yet); a character device made in a temporary folder with
``mknod`` (root only: /dev/null's and /dev/full's numbers — the machine's own /dev is
never a target) stays a device, the full one failing in one line; a folder or a symlink
loop is refused in one line. What arrives is byte for byte what a regular file gets.
(The rules: ``query/output_target.py``, ``tests/commands/test_output_target.py``.)
"""

from __future__ import annotations

import contextlib
import os
import random
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from tests.query.test_catalog_support import odd_names_lake
from tests.reliability.support import Tallies, Tally, call_main

FORMATS = ("table", "csv", "json", "parquet")
QUERY = "SELECT market, interval, count(*) AS n, max(c) FROM candles GROUP BY ALL ORDER BY ALL"
NULL, FULL = (1, 3), (1, 7)
KINDS = ("regular", "fifo", "link to file", "link to fifo", "dangling link", "null", "full",
         "link to null", "folder", "link loop")


def argv(command: str, fmt: str, lake: Path, output: Path) -> list[str]:
    if command == "sql":
        return ["sql", QUERY, "--format", fmt, "--lake", str(lake), "--output", str(output)]
    return ["export", "csv", "--market", "kPEPE", "--interval", "1m", "--lake", str(lake),
            "--output", str(output)]


def device(folder: Path, name: str, numbers: tuple[int, int]) -> Path | None:
    """A character device node in ``folder`` (None when this process may not make one
    or the folder's file system will not open it)."""
    if os.geteuid() != 0:
        return None
    node = folder / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(*numbers))
    try:
        with open(node, "wb"):
            pass
    except OSError:
        node.unlink()
        return None
    return node


def make_target(folder: Path, kind: str) -> tuple[Path, Path, Callable[[Path], bool]] | None:
    """(the --output path, what it finally points at, the check that it stayed what it
    was), or None when this kind cannot be made here."""
    folder.mkdir(parents=True)
    target = folder / "out"
    if kind == "regular":
        return target, target, lambda p: p.is_file() and not p.is_symlink()
    if kind in ("fifo", "link to fifo"):
        fifo = folder / "fifo"
        os.mkfifo(fifo)
        if kind == "fifo":
            return fifo, fifo, lambda p: stat.S_ISFIFO(os.lstat(p).st_mode)
        os.symlink(fifo, target)
        return target, fifo, lambda p: p.is_symlink() and stat.S_ISFIFO(os.stat(p).st_mode)
    if kind in ("link to file", "dangling link"):
        real = folder / "real.txt"
        if kind == "link to file":
            real.write_text("old content\n")
        os.symlink(real, target)
        return target, real, lambda p: p.is_symlink() and os.readlink(p) == str(real)
    if kind in ("null", "full", "link to null"):
        node = device(folder, "full" if kind == "full" else "null",
                      FULL if kind == "full" else NULL)
        if node is None:
            return None
        if kind == "link to null":
            os.symlink(node, target)
            return target, node, lambda p: p.is_symlink() and stat.S_ISCHR(os.stat(p).st_mode)
        return node, node, lambda p: stat.S_ISCHR(os.lstat(p).st_mode)
    if kind == "folder":
        target.mkdir()
        return target, target, lambda p: p.is_dir()
    os.symlink(target, target)  # a link loop
    return target, target, lambda p: p.is_symlink()


def drain(fifo: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as f:
            into.append(f.read())
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def release(fifo: Path) -> None:
    """Open and close ``fifo`` for writing if a reader still waits to open it (an EOF for
    it). Non-blocking: a reader that has just finished must not leave this open waiting
    for a reader that never comes (a blocking open after an ``is_alive`` check hung)."""
    with contextlib.suppress(OSError):  # ENXIO: no reader has it open, nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def outputs_round(folder: Path, rng: random.Random, tries: int = 20) -> Tallies:
    tally = Tally(runs=1)
    lake = folder / "lake"
    odd_names_lake(lake)
    reference: dict[tuple[str, str], bytes] = {}
    for index in range(tries):
        command = rng.choice(("sql", "export"))
        fmt = rng.choice(FORMATS) if command == "sql" else "csv"
        kind = rng.choice(KINDS)
        made = make_target(folder / f"try-{index}", kind)
        if made is None:
            tally.note(f"{kind}: cannot be made here")
            continue
        output, final, stayed = made
        label = f"{command} --format {fmt} --output <{kind}>"
        if (command, fmt) not in reference:
            regular = folder / f"reference-{command}-{fmt}"
            code, _, err = call_main(argv(command, fmt, lake, regular))
            tally.expect(code == 0, f"{label}: the reference run failed: {err}")
            reference[(command, fmt)] = regular.read_bytes() if regular.exists() else b""
        received: list[bytes] = []
        reader = drain(final, received) if "fifo" in kind else None
        try:
            code, out, err = call_main(argv(command, fmt, lake, output))
        except Exception as exc:  # noqa: BLE001 - a traceback for the user
            tally.tracebacks += 1
            tally.problems.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        finally:
            if reader is not None:
                release(final)  # the run never opened the FIFO: let the reader go
                reader.join(timeout=30)
        tally.inputs += 1
        tally.note(kind)
        tally.scan(out, err)
        tally.expect(stayed(output), f"{label}: the target did not stay what it was")
        if kind in ("folder", "link loop", "full"):
            tally.expect(code == 2 and len(err.splitlines()) == 1
                         and "error: --output: " in err, f"{label}: exit {code}, {err!r}")
            continue
        tally.expect(code == 0, f"{label}: exit {code}, {err!r}")
        if "fifo" in kind:
            got = received[0] if received else b""
        elif kind in ("null", "link to null"):
            continue
        else:
            got = final.read_bytes()
        tally.expect(got == reference[(command, fmt)], f"{label}: other bytes than a file gets")
    return {"special-file outputs": tally}
