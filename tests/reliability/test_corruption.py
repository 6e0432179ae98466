"""One truncated file never wedges the lake: verify names it, compaction quarantines it
and loses no other row, the next extract runs fetch it again
(``tests/reliability/corruption.py``; the battery cuts files at random bytes)."""

from __future__ import annotations

import random
from pathlib import Path

from hyperlake.lake.paths import LAKE_FILE, LakePaths
from tests.conftest import on_disk
from tests.query.test_catalog_support import odd_names_lake
from tests.reliability.corruption import corruption_round
from tests.reliability.support import StartEmulator, call_main


def test_a_truncated_partition_is_named_quarantined_and_fetched_again(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    tally = corruption_round(make_emulator, tmp_path, random.Random(4),
                             kind="partitions")["corrupted files"]
    assert tally.clean(), tally.report()


def test_compact_quarantines_a_truncated_partition_with_nothing_to_merge(
        tmp_path: Path) -> None:
    """Found by the corruption round: compaction checked only the partitions it merged
    new parts into, so a truncated partition of a series with nothing new stayed, its
    day claimed as covered: every extract run called it complete."""
    odd_names_lake(tmp_path)
    broken = on_disk(LakePaths(tmp_path).partition("funding", "BTC", "1h", "2025-01-01")
                     / LAKE_FILE)
    broken.write_bytes(broken.read_bytes()[:100])
    code, _, err = call_main(["compact", "--lake", str(tmp_path)])
    assert code == 0
    [line] = err.splitlines()
    assert line.startswith("hyperlake compact: quarantined funding/market=BTC/interval=1h/"
                           "date=2025-01-01/part-0.parquet")
    assert not broken.exists()
    assert list((tmp_path / "_quarantine").rglob("part-0.parquet.*"))
    code, out, _ = call_main(["sql", "SELECT count(*) AS n FROM funding", "--lake",
                              str(tmp_path), "--format", "csv"])
    assert code == 0 and out.splitlines()[1] == str(48 + 30 - 24)  # BTC's first day gone
