"""The lake's writer lock: one holder at a time, across processes, released by the
kernel however the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlake.lake.lock import LakeBusy, LakeLock
from tests.lake.lock_support import held_elsewhere


@pytest.fixture
def lock_file(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "_state" / "writer.lock"


@pytest.fixture
def holder(lock_file: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock."""
    with held_elsewhere(lock_file) as process:
        yield process


def test_a_second_process_is_refused_with_exit_code_3(lock_file: Path,
                                                      holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LakeBusy) as busy:
        LakeLock(lock_file).acquire()

    assert busy.value.exit_code == 3
    assert f"pid {holder.pid}" in str(busy.value)
    assert str(lock_file.parent.parent) in str(busy.value)


def test_the_lock_is_free_once_the_holder_is_killed(lock_file: Path,
                                                    holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LakeBusy):
        LakeLock(lock_file).acquire()

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)

    with LakeLock(lock_file):
        assert f"pid {os.getpid()}" in lock_file.read_text()


def test_release_lets_the_next_writer_in(lock_file: Path) -> None:
    with LakeLock(lock_file) as outer:
        inner = LakeLock(lock_file)
        inner.acquire()  # a stage inside a run that holds the lake shares the hold
        assert inner.fileno() == outer.fileno()
        inner.release()
        assert LakeLock.held(lock_file) is outer  # the outer hold stays
    assert LakeLock.held(lock_file) is None
    second = LakeLock(lock_file)
    second.acquire()
    second.release()
    second.release()  # idempotent
