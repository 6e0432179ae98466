"""The lake's writer lock: one holder at a time, across processes, released by the
kernel however the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlake.lake.lock import GrantRevoked, LakeBusy, LakeLock, RunGrant, holder_id
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


def test_each_hold_names_a_fresh_holder_that_its_grant_checks(lock_file: Path) -> None:
    with LakeLock(lock_file) as first:
        grant = first.grant()
        grant.check()  # the holder is this run
        assert grant.holder in lock_file.read_text()
        assert lock_file.read_text().startswith(f"pid {os.getpid()}:")
    with pytest.raises(GrantRevoked, match="no run holds it now"):
        grant.check()  # released: the run's tasks stop
    with LakeLock(lock_file) as second:
        assert second.holder != grant.holder
        with pytest.raises(GrantRevoked) as revoked:
            grant.check()
        second.grant().check()
    assert revoked.value.exit_code == 3
    assert "held by another run" in str(revoked.value)
    assert len(str(revoked.value).splitlines()) == 1


def test_a_grant_outlives_a_killed_holder_until_the_next_run_takes_the_lake(
        lock_file: Path) -> None:
    with held_elsewhere(lock_file) as process:
        grant = RunGrant(lock_file, holder_id(lock_file) or "")
        grant.check()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        grant.check()  # the file still names the dead run: its tasks may still commit
        with LakeLock(lock_file), pytest.raises(GrantRevoked):
            grant.check()


def test_a_busy_lake_is_named_in_one_line(lock_file: Path,
                                          holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LakeBusy) as busy:
        LakeLock(lock_file).acquire()
    assert len(str(busy.value).splitlines()) == 1
