"""Dwellir's worker processes belong to their run: they die with their parent, never
commit once it is gone, keep the lake locked while they live, and a Ctrl-C or a
SIGTERM ends the run with one line, not one traceback per worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hyperlake.emulator.server import Emulator
from hyperlake.lake.paths import LakePaths
from hyperlake.pipelines.candles.dwellir import ShardRun, ShardSpec
from hyperlake.schemas.intervals import HOUR_MS
from tests.conftest import NOW_MS, on_disk
from tests.pipelines.test_candles_resume import wait_for
from tests.pipelines.test_candles_support import (
    candles_argv,
    cli_env,
    group_members,
    seed_universe,
    series_of,
    start_cli,
)

START = NOW_MS - 6 * HOUR_MS  # 21,600 1s buckets: enough to kill mid-run
ARGS = ("--workers", "2", "--rate", "4000")


def parts(lake: Path) -> list[str]:
    return sorted(str(p) for p in lake.glob("_checkpoints/**/part-*.parquet"))


def started(emu: Emulator, lake: Path) -> subprocess.Popen[str]:
    """A two-worker Dwellir run that has committed its first part."""
    seed_universe(emu)
    process = start_cli(candles_argv("dwellir", "1s", START, NOW_MS, lake, *ARGS), cli_env(emu))
    assert wait_for(lambda: bool(parts(lake))), process.communicate(timeout=30)
    assert len(group_members(process.pid)) >= 3  # the parent and its two workers
    return process


def test_workers_die_with_their_parent_and_commit_nothing_after(
        emulator: Emulator, tmp_path: Path) -> None:
    process = started(emulator, tmp_path)
    os.kill(process.pid, signal.SIGKILL)  # the parent only, not its group
    process.communicate(timeout=30)
    assert wait_for(lambda: not group_members(process.pid), timeout=2.0), \
        "workers outlived their parent"
    left = parts(tmp_path)
    time.sleep(1.5)
    assert parts(tmp_path) == left, "a worker committed after its parent died"


def test_an_orphan_never_commits(tmp_path: Path) -> None:
    """The check before every commit: a worker whose parent is not the one that
    started it stops before writing (here the 'parent' is a pid that is not ours)."""
    spec = ShardSpec(index=0, segments=(), base_url="http://127.0.0.1:9", api_key="k",
                     market="BTC", interval="1s", rate=1.0, lake_root=str(tmp_path),
                     job_folder=str(tmp_path / "job"), parent_pid=os.getppid() + 10**6)
    run = ShardRun(spec, None)
    with pytest.raises(SystemExit, match="parent process died"):
        run._check_parent()
    assert not on_disk(series_of(tmp_path, "dwellir", "1s").folder).exists()


@pytest.mark.parametrize(("sig", "whole_group", "status", "word"), [
    (signal.SIGINT, True, 130, "interrupted"),  # Ctrl-C reaches every process of the group
    (signal.SIGTERM, False, 143, "terminated"),  # a service manager stops the parent
])
def test_a_stop_from_outside_is_one_line_and_resumable(
        emulator: Emulator, tmp_path: Path, sig: int, whole_group: bool, status: int,
        word: str) -> None:
    process = started(emulator, tmp_path)
    if whole_group:
        os.killpg(process.pid, sig)
    else:
        os.kill(process.pid, sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == status
    assert len(stderr.splitlines()) == 1 and stderr.startswith(f"hyperlake candles: {word}")
    assert "Traceback" not in stderr and "leaked" not in stderr
    assert "run the same command again to resume" in stderr
    assert wait_for(lambda: not [m for m in group_members(process.pid).values() if m],
                    timeout=5.0)
    lock = on_disk(LakePaths(tmp_path).lock_file)
    assert lock.exists()  # released, not removed: the next run takes it
