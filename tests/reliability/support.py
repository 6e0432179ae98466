"""Plumbing of the reliability suite, shared by its tests and by the battery
(``scripts/reliability.py``).

Every check is a *round*: a function that takes a seeded ``random.Random``, a way to
start emulators and a folder of its own, runs the real ``hyperlake`` commands against
the emulator on loopback, and returns a ``Tally`` of what it measured (kills that
landed, rows lost or duplicated, compactions compared byte for byte, inputs tried,
tracebacks, key bytes found) and of every invariant it saw broken. A test runs a round
or two with a fixed seed and asserts the tally is clean; the battery runs many rounds
with fresh seeds and prints one table. One implementation, two doses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hyperlake.cli import main
from hyperlake.emulator.config import EmulatorConfig, FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.atomic import TMP_PREFIX
from hyperlake.lake.paths import LakePaths
from tests.conftest import DWELLIR_KEY, NOW_MS, on_disk
from tests.pipelines.test_candles_support import cli_env, group_members

#: Starts an emulator (``make_emulator`` in tests, ``EmulatorPool.start`` in the battery).
StartEmulator = Callable[..., Emulator]
#: What every traceback Python prints starts with.
TRACEBACK = "Traceback (most recent call last)"
EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_BUSY, EXIT_GAPS = 0, 1, 2, 3, 4
SECOND_MS, MINUTE_MS, HOUR_MS, DAY_MS = 1000, 60_000, 3_600_000, 86_400_000


# -- what a round measured ------------------------------------------------------------


@dataclass
class Tally:
    """What rounds of one check measured, and what they saw broken (``problems``)."""

    runs: int = 0
    kills: int = 0  # kill -9s that landed while the process was still running
    survived: int = 0  # of those, the ones after which every invariant held
    rows_lost: int = 0
    rows_duplicated: int = 0
    compactions: int = 0  # compactions compared byte for byte with an uninterrupted one
    identical: int = 0
    inputs: int = 0  # command lines, statements or outputs tried
    tracebacks: int = 0
    key_bytes: int = 0  # occurrences of an API key found in any output or file
    problems: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # what else was seen, counted

    def note(self, what: str, count: int = 1) -> None:
        self.notes[what] += count

    def expect(self, ok: bool, problem: str) -> bool:
        """Record ``problem`` unless ``ok``; returns ``ok``."""
        if not ok:
            self.problems.append(problem)
        return ok

    def scan(self, *texts: str | bytes) -> None:
        """Count the tracebacks printed in ``texts`` (stdout, stderr, logs)."""
        for text in texts:
            found = (text.count(TRACEBACK.encode()) if isinstance(text, bytes)
                     else text.count(TRACEBACK))
            self.tracebacks += found
            if found:
                shown = text.decode(errors="replace") if isinstance(text, bytes) else text
                self.problems.append(f"traceback: {shown[-600:]}")

    def merge(self, other: Tally) -> None:
        for f in fields(self):
            if f.name == "problems":
                self.problems += other.problems
            elif f.name == "notes":
                self.notes.update(other.notes)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def clean(self) -> bool:
        return (not self.problems and self.rows_lost == 0 and self.rows_duplicated == 0
                and self.tracebacks == 0 and self.key_bytes == 0
                and self.identical == self.compactions and self.survived == self.kills)

    def report(self) -> str:
        counts = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("problems", "notes")}
        return "\n".join([str(counts), str(dict(self.notes)), *self.problems[:20]])


Tallies = dict[str, Tally]


def merge_into(total: Tallies, found: Tallies) -> None:
    for name, tally in found.items():
        total.setdefault(name, Tally()).merge(tally)


# -- rows -------------------------------------------------------------------------------


def count_rows(tally: Tally, label: str, got: Sequence[tuple[Any, ...]],
               want: Sequence[tuple[Any, ...]]) -> None:
    """Rows lost (in ``want``, not in ``got``), duplicated (a key, the first field, more
    than once in ``got``) and rows the model does not have (a problem)."""
    keys = Counter(row[0] for row in got)
    tally.rows_duplicated += sum(n - 1 for n in keys.values())
    have, expected = set(got), set(want)
    tally.rows_lost += len(expected - have)
    strange = sorted(have - expected, key=repr)
    tally.expect(not strange, f"{label}: {len(strange)} rows the source never served, "
                              f"e.g. {strange[:1]}")


# -- the lake as files ------------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path, skip: Iterable[str] = ()) -> dict[str, tuple[str, int, int]]:
    """Every path under ``root`` (but those under ``skip``, relative): its content hash
    (a folder: ``dir``, a link: its target), mtime and inode — any write shows."""
    skipped = tuple(skip)
    out: dict[str, tuple[str, int, int]] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith(skipped) and skipped:
            continue
        info = path.lstat()
        if path.is_symlink():
            what = f"link:{os.readlink(path)}"
        elif path.is_dir():
            what = "dir"
        elif path.is_file():
            what = digest(path)
        else:
            what = "special"
        out[relative] = (what, info.st_mtime_ns, info.st_ino)
    return out


def tree_changes(before: dict[str, tuple[str, int, int]],
                 after: dict[str, tuple[str, int, int]]) -> list[str]:
    """What differs between two ``tree`` snapshots, one line each."""
    changed = [f"changed {p}" for p in sorted(before.keys() & after.keys())
               if before[p] != after[p]]
    return ([f"new {p}" for p in sorted(after.keys() - before.keys())]
            + [f"gone {p}" for p in sorted(before.keys() - after.keys())] + changed)


def lake_hashes(lake: Path) -> dict[str, str]:
    """sha256 of every file under the lake's datasets (what a query reads)."""
    return {str(p.relative_to(lake)): digest(p)
            for dataset in ("candles", "funding", "trades")
            for p in sorted((lake / dataset).rglob("*")) if p.is_file()}


def coverage_markers(lake: Path) -> list[str]:
    root = on_disk(LakePaths(lake).state / "coverage")
    return sorted(str(p.relative_to(root)) for p in root.rglob("covered-*")) \
        if root.exists() else []


def lock_is_free(lock_file: Path) -> bool:
    """Whether nobody holds the flock of ``lock_file`` (a missing file is free)."""
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def leftovers(lake: Path, *, compacted: bool = False) -> list[str]:
    """What an interrupted run may not leave behind once the next run is done:
    temporaries, a lock nobody can take, and (after compaction) any checkpoint file."""
    found = [f"temporary {p.relative_to(lake)}" for p in lake.rglob(f"{TMP_PREFIX}*")]
    state = on_disk(LakePaths(lake).state)
    if state.exists():
        found += [f"stale lock {p.relative_to(lake)}" for p in state.glob("*.lock")
                  if not lock_is_free(p)]
    if compacted:
        checkpoints = lake / "_checkpoints"
        if checkpoints.exists():
            found += [f"orphan checkpoint {p.relative_to(lake)}"
                      for p in checkpoints.rglob("*") if p.is_file()]
    return found


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()]


# -- secrets ----------------------------------------------------------------------------


def key_occurrences(core: str, texts: Iterable[str | bytes], roots: Iterable[Path]
                    ) -> list[str]:
    """Where ``core`` (a key's distinctive middle, unchanged by URL encoding) occurs:
    in ``texts`` or in any file name or file byte under ``roots``."""
    needle = core.encode()
    hits = []
    for index, text in enumerate(texts):
        data = text if isinstance(text, bytes) else text.encode(errors="surrogateescape")
        hits += [f"output #{index}"] * data.count(needle)
    for root in roots:
        paths = sorted(root.rglob("*")) if root.exists() else []
        hits += [f"name {path}" for path in paths if core in path.name]
    for path in files_under(*roots):
        with contextlib.suppress(OSError):
            hits += [f"file {path}"] * path.read_bytes().count(needle)
    return hits


# -- commands -------------------------------------------------------------------------


def hyperlake(*args: str) -> list[str]:
    return [sys.executable, "-m", "hyperlake.cli", *args]


def env_for(emu: Emulator, **overrides: str | None) -> dict[str, str]:
    """A command's environment against ``emu``: client clock pinned to the emulator's,
    weights that never bind, quick retries."""
    base: dict[str, str | None] = {"HYPERLAKE_BACKOFF_BASE": "0.01", **overrides}
    return cli_env(emu, **base)


def run(argv: list[str], env: dict[str, str], timeout: float = 180.0,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False, cwd=cwd)


def kill_and_reap(process: subprocess.Popen[str]) -> str:
    """SIGKILL the command's whole process group, wait for every member to go; what
    it had printed on stderr."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return stderr or ""


def call_main(argv: list[str]) -> tuple[int, str, str]:
    """``hyperlake ARGV`` in this process: exit status, stdout, stderr. Standard output is
    a strict UTF-8 stream with a binary buffer, as a terminal's or a pipe's is; an
    exception that leaves ``main`` (a traceback for the user) goes up."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            with contextlib.suppress(ValueError, UnicodeError):
                out.flush()
            err.flush()
    stdout = out.buffer.getvalue().decode(errors="replace")
    stderr = err.buffer.getvalue().decode(errors="replace")
    return code, stdout, stderr


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                              float]:
    started = time.monotonic()
    done = run(argv, env)
    return done, time.monotonic() - started


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def one_line_error(tally: Tally, label: str, done: subprocess.CompletedProcess[str],
                   code: int, *needles: str) -> None:
    """``done`` exited ``code`` with one error line naming ``needles``."""
    tally.scan(done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    tally.expect(done.returncode == code,
                 f"{label}: exit {done.returncode}, not {code}: {done.stderr[-300:]}")
    tally.expect(len(errors) == 1 and all(n in errors[0] for n in needles),
                 f"{label}: not one error line naming {needles}: {done.stderr[-300:]}")


# -- emulators ------------------------------------------------------------------------


def fast_config(*faults: FaultRule, **overrides: Any) -> EmulatorConfig:
    """The clock frozen at NOW_MS, budgets that never bind, the test key unthrottled."""
    settings: dict[str, Any] = {"info_weight_per_minute": 10**9,
                                "hydromancer_weight_per_minute": 10**9,
                                "dwellir_rate_overrides": {DWELLIR_KEY: 10**6},
                                "faults": faults, **overrides}
    return frozen_config(NOW_MS, **settings)


class EmulatorPool:
    """Emulators started for a round, all stopped by ``stop_all`` (the battery's
    ``make_emulator``)."""

    def __init__(self) -> None:
        self.started: list[Emulator] = []

    def start(self, config: EmulatorConfig | None = None, **kwargs: Any) -> Emulator:
        emu = Emulator(config or frozen_config(NOW_MS), **kwargs).start()
        self.started.append(emu)
        return emu

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


@contextlib.contextmanager
def emulator_pool() -> Iterator[StartEmulator]:
    pool = EmulatorPool()
    try:
        yield pool.start
    finally:
        pool.stop_all()


# -- a small file system, for disk-full rounds ------------------------------------------


def mount_problem() -> str | None:
    """Why a tmpfs cannot be mounted here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting a small file system needs root"
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder],
                                  capture_output=True, text=True, timeout=30, check=False)
        except OSError as exc:
            return f"mount cannot run: {exc}"
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.strip()}"
        subprocess.run(["umount", folder], capture_output=True, timeout=30, check=False)
    return None


@contextlib.contextmanager
def small_filesystem(folder: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted on ``folder`` (created), unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield folder
    finally:
        done = subprocess.run(["umount", str(folder)], capture_output=True, timeout=30,
                              check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30,
                           check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` until about ``leave_bytes`` stay free."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler
