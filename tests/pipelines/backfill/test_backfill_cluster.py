"""``hyperlake backfill`` on a real ``distributed.LocalCluster`` (two worker processes)
against the emulator on loopback: the cluster lands what one process lands, a second
submission asks nothing, a worker killed mid-task changes nothing, orphans of a dead
driver stop once a new run holds the lake, and the sources' ceilings hold for the sum
of the tasks."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import distributed

from hyperlake.emulator.config import FaultRule
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from tests.conftest import DWELLIR_KEY, NOW_MS, on_disk
from tests.pipelines.backfill.support import (
    RateMeter,
    backfill_env,
    lake_files,
    ok,
    parts,
    run_backfill,
    start_backfill,
    wait_until,
)
from tests.pipelines.test_candles_support import seed_universe
from tests.pipelines.update_support import lake_values, write_config
from tests.s3_support import S3Server

StartEmulator = Callable[..., Emulator]

MARKETS = '''\
[markets]
list = ["BTC", "ETH", "kPEPE"]
[candles]
start = "2026-02-22"
[candles.hydromancer]
intervals = ["1h", "15m"]
[candles.hyperliquid]
intervals = ["4h"]
[funding]
start = "2026-03-01"
'''


def generous(make_emulator: StartEmulator, **extra: object) -> Emulator:
    emu = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=10**7,
                                      hydromancer_weight_per_minute=10**7, **extra))
    seed_universe(emu)
    return emu


def assert_same_lake(spread: dict[str, Any], there: Location, alone: dict[str, Any],
                     here: Location, rows_at_least: int) -> None:
    """The cluster's run (``spread`` into ``there``) landed what one process landed
    (``alone`` into ``here``): no violation or gap, the same requests and rows. Funding
    rows carry the wall-clock time of their fetch; every other file (candle partitions
    fetched under the pinned clock, coverage, row index, ledgers) is the same, byte for
    byte, and no run left a temporary behind."""
    assert spread["violations"] == alone["violations"] == 0 and spread["gaps"] == 0
    assert spread["requests"] == alone["requests"]
    for dataset in ("candles", "funding"):
        mine, theirs = lake_values(there, dataset), lake_values(here, dataset)
        assert mine == theirs and len(mine) > rows_at_least
    assert lake_files(there, skip=("funding/",)) == lake_files(here, skip=("funding/",))
    assert lake_files(there).keys() == lake_files(here).keys()


def test_the_cluster_lands_what_one_process_lands_and_a_second_run_asks_nothing(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        tmp_path: Path) -> None:
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, MARKETS)
    here, there = tmp_path / "here", tmp_path / "there"

    alone = ok(run_backfill(config, here, env))
    spread = ok(run_backfill(config, there, env, "--scheduler", cluster.scheduler_address))

    assert alone["where"] == "in-process" and spread["where"] == cluster.scheduler_address
    assert spread["tasks"]["extract"] == 21 and spread["tasks"]["compact"] >= 12
    assert_same_lake(spread, there, alone, here, rows_at_least=1000)

    before = emu.stats()
    again = ok(run_backfill(config, there, env, "--scheduler", cluster.scheduler_address))
    assert again["tasks"]["extract"] == 0 and again["requests"] == 0
    after = emu.stats()
    assert {k: after.get(k, 0) - v for k, v in before.items() if k.endswith("_requests")} \
        == {k: 0 for k in before if k.endswith("_requests")}


def test_compaction_on_the_cluster_is_byte_identical_to_one_process(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        tmp_path: Path) -> None:
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, MARKETS)
    spread, alone = tmp_path / "spread", tmp_path / "alone"
    ok(run_backfill(config, spread, env, "--stages", "extract",
                    "--scheduler", cluster.scheduler_address))
    shutil.copytree(spread, alone)

    one = ok(run_backfill(config, alone, env, "--stages", "compact,verify"))
    many = ok(run_backfill(config, spread, env, "--stages", "compact,verify",
                           "--scheduler", cluster.scheduler_address))

    assert many["requests"] == one["requests"] == 0
    assert many["partitions_written"] == one["partitions_written"] > 100
    assert many["compacted_groups"] == one["compacted_groups"] == 12
    assert lake_files(spread) == lake_files(alone)
    assert not parts(spread)


ON_S3 = '''\
[markets]
list = ["BTC", "kPEPE"]
[candles]
start = "2026-03-10"
[candles.hydromancer]
intervals = ["1h", "15m"]
[candles.hyperliquid]
intervals = ["4h"]
[funding]
start = "2026-03-15"
'''


def test_a_cluster_on_an_s3_lake_lands_what_one_process_lands_on_disk(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        client: distributed.Client, s3_server: S3Server, tmp_path: Path) -> None:
    """The tasks go through the lake's own APIs only: on an s3:// lake (the driver
    holding the lease, tasks committing under its grant) the cluster lands the rows of
    one process on a local disk, every non-funding file byte for byte, and a second
    submission asks nothing."""
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, ON_S3)
    here, there = tmp_path / "here", s3_server.lake("backfill")

    alone = ok(run_backfill(config, here, env))
    spread = ok(run_backfill(config, there, env, "--scheduler", cluster.scheduler_address))

    assert spread["where"] == cluster.scheduler_address
    assert_same_lake(spread, there, alone, here, rows_at_least=500)
    again = ok(run_backfill(config, there, env, "--scheduler", cluster.scheduler_address))
    assert again["tasks"]["extract"] == 0 and again["requests"] == 0


KILLED = '''\
[markets]
list = ["BTC"]
[candles]
start = "2026-02-01"
[candles.hydromancer]
intervals = ["1m"]
[funding]
enabled = false
'''


def test_a_worker_killed_mid_task_leaves_the_lake_one_run_leaves(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        client: distributed.Client, s3_server: S3Server, tmp_path: Path) -> None:
    """On an s3:// lake (the issue's setting: the loopback S3 server): a worker SIGKILLed
    mid-task, Dask runs its task again elsewhere, and the lake ends byte for byte what
    one uninterrupted process lands on a local disk."""
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, KILLED)
    baseline, lake = tmp_path / "baseline", s3_server.lake("worker-killed")
    ok(run_backfill(config, baseline, env))
    emu.set_faults([FaultRule("hydromancer", "slow", 1.0, 0.4)])

    driver = start_backfill(config, lake, env, "--scheduler", cluster.scheduler_address)
    wait_until(lambda: parts(lake), what="the first part")
    busy = [addr for addr, keys in client.processing().items()
            if any(str(k).startswith("extract") for k in keys)]
    assert busy, "no extract task running"
    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
    os.kill(pid, signal.SIGKILL)
    _, err = driver.communicate(timeout=180)

    assert driver.returncode == 0, err[-3000:]
    assert lake_files(lake) == lake_files(baseline)
    wait_until(lambda: len(client.nthreads()) == 2, what="the nanny to restart the worker")


def test_orphans_of_a_killed_driver_stop_before_committing_once_a_new_run_holds_the_lake(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        tmp_path: Path) -> None:
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, KILLED)
    lake = tmp_path / "lake"
    emu.set_faults([FaultRule("hydromancer", "slow", 1.0, 0.3)])
    driver = start_backfill(config, lake, env, "--scheduler", cluster.scheduler_address)
    wait_until(lambda: parts(lake), what="the first part")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=30)
    wait_until(lambda: len(parts(lake)) >= 4, what="the orphans to go on committing")

    with LakePaths(lake).writer_lock():  # a new run: its own holder id
        wait_until(lambda: _settled(emu), timeout=10, what="the orphans to stop asking")
        committed = parts(lake)
        requests = emu.stats()["hydromancer_requests"]
        for _ in range(3):
            _pause(1.0)
            assert parts(lake) == committed, "an orphan committed under a new run's lock"
        assert emu.stats()["hydromancer_requests"] == requests
    assert len(committed) < 2 * 9, "the orphans ran to the end instead of stopping"


def _settled(emu: Emulator) -> bool:
    """No request came in over the last second."""
    first = emu.stats().get("hydromancer_requests", 0)
    _pause(1.0)
    return emu.stats().get("hydromancer_requests", 0) == first


def _pause(seconds: float) -> None:
    import time

    time.sleep(seconds)


DWELLIR_CEILING = '''\
[markets]
list = ["BTC", "ETH"]
[sources.dwellir]
rate = {rate}
[candles.dwellir]
intervals = ["5m"]
start = "2026-03-29"
[funding]
enabled = false
'''
HYDROMANCER_CEILING = '''\
[markets]
list = ["BTC", "ETH", "SOL"]
[candles.hydromancer]
intervals = ["1m"]
start = "2026-03-24"
[funding]
enabled = false
'''
DWELLIR_RATE = 300
HYDROMANCER_WEIGHT = 3000  # per minute: 2.5 requests a second (20 each)


def test_plan_ceilings_hold_for_the_sum_of_the_tasks(
        make_emulator: StartEmulator, cluster: distributed.LocalCluster,
        client: distributed.Client, s3_server: S3Server, tmp_path: Path) -> None:
    """On an s3:// lake, as the cluster would run: requests counted per second at the
    emulator never pass a Dwellir plan's ceiling or Hydromancer's weight budget."""
    lake = s3_server.lake("ceilings")
    emu = make_emulator(frozen_config(NOW_MS, info_weight_per_minute=10**7,
                                      hydromancer_weight_per_minute=HYDROMANCER_WEIGHT,
                                      dwellir_rate_overrides={DWELLIR_KEY: DWELLIR_RATE}))
    seed_universe(emu)
    env = backfill_env(emu, HYPERLAKE_HYDROMANCER_WEIGHT=str(HYDROMANCER_WEIGHT))
    dwellir = RateMeter(emu, "dwellir_requests")
    with dwellir.running():
        rated = ok(run_backfill(write_config(tmp_path, DWELLIR_CEILING.format(
            rate=DWELLIR_RATE)), lake, env, "--stages", "extract",
            "--scheduler", cluster.scheduler_address))
    hydromancer = RateMeter(emu, "hydromancer_requests")
    with hydromancer.running():
        weighed = ok(run_backfill(write_config(tmp_path, HYDROMANCER_CEILING, "h.toml"),
                                  lake, env, "--stages", "extract",
                                  "--scheduler", cluster.scheduler_address))

    stats = emu.stats()
    assert stats.get("dwellir_status_429", 0) == 0 and stats.get("hydromancer_status_429", 0) == 0
    assert rated["failed"] == weighed["failed"] == 0
    assert rated["requests"] > 1000 and weighed["requests"] == 3 * 3
    # The plan's ceiling, for the two tasks' leases together; and both were busy at
    # once (one lease alone paces at half of it).
    assert DWELLIR_RATE * 0.6 < dwellir.peak(1.0) <= DWELLIR_RATE * 1.1
    # Hydromancer's weight per minute, over any 3 s (a weight share starts empty, so
    # not even the first seconds burst beyond it).
    assert hydromancer.peak(3.0) <= HYDROMANCER_WEIGHT / 20 / 60 * 1.25


TRUNCATED = '''\
[markets]
list = ["BTC"]
[candles]
start = "2026-03-20"
[candles.hydromancer]
intervals = ["1h"]
[funding]
enabled = false
'''


def test_a_truncated_partition_with_nothing_new_is_fetched_again_in_the_same_run(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    """A compaction task sees only the days it has parts for: the driver moves broken
    partitions of the job's groups aside before planning, so their days come back."""
    emu = generous(make_emulator)
    env = backfill_env(emu)
    config = write_config(tmp_path, TRUNCATED)
    lake = tmp_path / "lake"
    ok(run_backfill(config, lake, env))
    whole = lake_values(lake, "candles")
    broken = on_disk(LakePaths(lake).partition("candles", "BTC", "1h", "2026-03-25")
                     / "part-0.parquet")
    broken.write_bytes(broken.read_bytes()[:100])

    again = run_backfill(config, lake, env)

    summary = ok(again)
    assert summary["tasks"]["extract"] == 1 and summary["requests"] >= 1
    assert "quarantined candles/market=BTC/interval=1h/date=2026-03-25" in again.stderr
    assert lake_values(lake, "candles") == whole
    assert not parts(lake)
