"""The shared weight budget: token arithmetic on a fake clock, two budgets on one
file sharing tokens, two real processes really sharing one rate, corrupt files."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from hyperlake.net.pacing import SharedWeightBudget, safe_file_stem


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def budget(tmp_path: Path, clock: FakeClock, **kwargs: Any) -> SharedWeightBudget:
    kwargs.setdefault("per_minute", 1200.0)  # 20 per second
    return SharedWeightBudget("hyperliquid@127.0.0.1:8080", folder=tmp_path, clock=clock,
                              **kwargs)


def test_a_new_bucket_is_full_and_reserve_takes(tmp_path: Path) -> None:
    b = budget(tmp_path, FakeClock())
    assert b.capacity == 1200.0
    assert b.reserve(200) == 0.0
    assert b.available() == 1000.0


def test_reserve_refuses_without_taking_and_says_how_long(tmp_path: Path) -> None:
    clock = FakeClock()
    b = budget(tmp_path, clock, capacity=100.0)
    assert b.reserve(90) == 0.0
    assert b.reserve(30) == pytest.approx(1.0)  # 20 missing at 20/s
    assert b.available() == pytest.approx(10.0)  # nothing was taken
    clock.now += 1.0
    assert b.reserve(30) == 0.0
    assert b.available() == pytest.approx(0.0)


def test_refill_stops_at_capacity(tmp_path: Path) -> None:
    clock = FakeClock()
    b = budget(tmp_path, clock, capacity=100.0)
    b.charge(100)
    clock.now += 2.5
    assert b.available() == pytest.approx(50.0)
    clock.now += 3600
    assert b.available() == pytest.approx(100.0)


def test_refund_gives_back_but_never_above_capacity(tmp_path: Path) -> None:
    b = budget(tmp_path, FakeClock(), capacity=100.0)
    assert b.reserve(60) == 0.0
    b.refund(45)  # the response turned out to cost 15
    assert b.available() == pytest.approx(85.0)
    b.refund(1000)
    assert b.available() == pytest.approx(100.0)


def test_charge_can_go_negative_and_later_callers_wait(tmp_path: Path) -> None:
    b = budget(tmp_path, FakeClock(), capacity=100.0)
    b.charge(150)
    assert b.available() == pytest.approx(-50.0)
    assert b.reserve(10) == pytest.approx(3.0)  # 60 missing at 20/s


def test_a_clock_stepping_back_refills_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    b = budget(tmp_path, clock, capacity=100.0)
    b.charge(100)
    clock.now -= 50
    assert b.available() == pytest.approx(0.0)
    clock.now += 1
    assert b.available() == pytest.approx(20.0)


def test_acquire_sleeps_until_granted(tmp_path: Path) -> None:
    clock = FakeClock()
    b = budget(tmp_path, clock, capacity=100.0)
    assert b.acquire(100, sleep=clock.sleep) == 0.0
    assert b.acquire(40, sleep=clock.sleep) == pytest.approx(2.0)
    assert clock.now == pytest.approx(1_002.0)


def test_weight_above_capacity_needs_a_full_bucket_and_terminates(tmp_path: Path) -> None:
    clock = FakeClock()
    b = budget(tmp_path, clock, capacity=100.0)
    b.charge(50)
    assert b.acquire(250, sleep=clock.sleep) == pytest.approx(2.5)  # refill to full
    assert b.available() == pytest.approx(-150.0)  # the real cost is still paid
    assert b.reserve(10) == pytest.approx(8.0)


def test_two_budgets_on_one_file_share_tokens(tmp_path: Path) -> None:
    clock = FakeClock()
    first = budget(tmp_path, clock, capacity=100.0)
    second = budget(tmp_path, clock, capacity=100.0)
    assert first.path == second.path
    assert first.reserve(70) == 0.0
    assert second.reserve(70) > 0.0
    assert second.reserve(30) == 0.0
    assert first.available() == pytest.approx(0.0)
    second.refund(30)
    assert first.available() == pytest.approx(30.0)


def test_different_names_do_not_share(tmp_path: Path) -> None:
    clock = FakeClock()
    a = SharedWeightBudget("host:80", 60, folder=tmp_path, clock=clock)
    b = SharedWeightBudget("host_80", 60, folder=tmp_path, clock=clock)
    assert a.path != b.path
    a.charge(60)
    assert b.available() == 60.0


@pytest.mark.parametrize("content", [
    b"", b"garbage", b"1.0", b"nan 5.0", b"1 2 3", b"\xff\xfe", b"inf 1000.0"])
def test_a_corrupt_file_means_a_full_bucket(tmp_path: Path, content: bytes) -> None:
    b = budget(tmp_path, FakeClock(), capacity=100.0)
    b.path.write_bytes(content)
    assert b.available() == 100.0
    assert b.reserve(100) == 0.0
    assert b.available() == 0.0  # and the file is valid again


def test_file_name_is_sanitized(tmp_path: Path) -> None:
    stem = safe_file_stem("hyperliquid@127.0.0.1:8080/../x")
    assert "/" not in stem and ":" not in stem and "@" not in stem
    assert stem.startswith("hyperliquid_127.0.0.1_8080_.._x-")
    b = budget(tmp_path, FakeClock())
    assert b.path.parent == tmp_path
    assert b.path.name.endswith(".bucket")


def test_default_folder_is_private_per_user(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERLAKE_PACING_DIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    b = SharedWeightBudget("x", 60)
    folder = tmp_path / f"hyperlake-pacing-{os.getuid()}"
    assert b.path.parent == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_env_var_moves_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLAKE_PACING_DIR", str(tmp_path / "shared"))
    assert SharedWeightBudget("x", 60).path.parent == tmp_path / "shared"


def _acquire_many(folder: str, per_minute: float, capacity: float, count: int,
                  barrier: Any, grants: Any) -> None:
    """Child process: wait for the sibling, then acquire ``count`` times."""
    shared = SharedWeightBudget("shared-test", per_minute, folder=Path(folder),
                                capacity=capacity)
    barrier.wait()
    start = time.time()
    stamps = []
    for _ in range(count):
        shared.acquire(1)
        stamps.append(time.time())
    grants.put((start, stamps))


@pytest.mark.timeout(60)
def test_two_processes_share_one_rate(tmp_path: Path) -> None:
    per_second, capacity, count = 100.0, 5.0, 100  # 200 grants at 100/s: ~2 s
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    grants = ctx.Queue()
    workers = [ctx.Process(target=_acquire_many,
                           args=(str(tmp_path), per_second * 60, capacity, count,
                                 barrier, grants))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [grants.get(timeout=50) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    start = min(started for started, _ in results)
    stamps = sorted(stamp for _, worker_stamps in results for stamp in worker_stamps)
    elapsed = stamps[-1] - start
    allowed = capacity + per_second * elapsed * 1.10
    assert len(stamps) == 2 * count
    # Were the budget per process, 200 grants would take ~1 s, twice the allowed rate.
    assert len(stamps) <= allowed, f"{len(stamps)} grants in {elapsed:.2f}s"
    assert elapsed >= (2 * count - capacity) / per_second * 0.9
