"""Helpers of the backfill tests: the command in a subprocess, the lake compared."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hyperlake.emulator.server import Emulator
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location, ObjectPath, relative
from tests.conftest import NOW_MS, lake_tree
from tests.pipelines.update_support import summary, update_env

BACKFILL = [sys.executable, "-m", "hyperlake.cli", "backfill"]


def backfill_env(emu: Emulator, **extra: str | None) -> dict[str, str]:
    return update_env(emu, NOW_MS, 0.0, None, **extra)


def run_backfill(config: Path, lake: Location, env: dict[str, str], *extra: str,
                 timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BACKFILL, "--config", str(config), "--lake", str(lake), "--json",
                           *extra], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def start_backfill(config: Path, lake: Location, env: dict[str, str],
                   *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*BACKFILL, "--config", str(config), "--lake", str(lake), "--json",
                             *extra], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return summary(result)


def lake_files(lake: Location, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file (or object) of the lake by relative name, with a hash of its bytes
    (the writer lock's or lease's content names its run: left out)."""
    store = LakePaths(lake).store
    names = ([str(p.relative_to(lake)) for p in sorted(lake.rglob("*")) if p.is_file()]
             if isinstance(lake, Path) else
             [relative(ObjectPath(lake.bucket, key), lake) for key in sorted(lake_tree(lake))])
    return {name: hashlib.sha256(store.read(lake / name)).hexdigest() for name in names
            if name.rpartition("/")[2] not in ("writer.lock", "writer.lease")
            and not name.startswith(skip)}


def parts(lake: Location) -> set[str]:
    """The checkpoint parts of every series of the lake, by name."""
    paths = LakePaths(lake)
    return {str(path) for dataset in ("candles", "funding") for key in
            paths.checkpoint_keys(dataset) for _, path in Series(paths, key).parts()}


def wait_until(condition: Any, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class RateMeter:
    """Requests the emulator counted, sampled every ``every`` s in a thread: the most
    any window of ``window`` s saw, per second."""

    def __init__(self, emu: Emulator, counter: str, every: float = 0.1) -> None:
        self.emu = emu
        self.counter = counter
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.emu.stats().get(self.counter, 0)))
            self._stop.wait(self.every)

    @contextmanager
    def running(self) -> Iterator[RateMeter]:
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def peak(self, window: float) -> float:
        """The highest request rate over any stretch of at least ``window`` seconds."""
        best = 0.0
        for i, (t0, n0) in enumerate(self.samples):
            for t1, n1 in self.samples[i + 1:]:
                if t1 - t0 >= window:
                    best = max(best, (n1 - n0) / (t1 - t0))
                    break
        return best
