"""``kill -9`` at random instants of every writing stage, then resume: the same lake as
an uninterrupted run (rows; compaction byte for byte), nothing left behind
(``tests/reliability/kills.py``, ``stream_kills.py``; the battery runs dozens)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.kills import STAGES, stages_round
from tests.reliability.stream_kills import stream_round
from tests.reliability.support import StartEmulator


def test_every_stage_killed_at_random_instants_resumes_to_the_same_lake(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    tallies = stages_round(make_emulator, tmp_path, random.Random(20260331))
    for name, tally in tallies.items():
        assert tally.clean(), f"{name}: {tally.report()}"
    extract_kills = sum(tallies[f"kill -9: {stage.name}"].kills for stage in STAGES)
    assert extract_kills >= 2, "the kills did not land inside the runs: nothing was tested"
    compaction = tallies["kill -9: compaction"]
    assert compaction.kills >= 1 and compaction.identical == 1, compaction.report()
    assert tallies["same lake across stages"].rows_lost == 0


def test_the_stream_killed_at_random_instants_loses_and_duplicates_nothing(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    tally = stream_round(make_emulator, tmp_path, random.Random(7))["kill -9: stream"]
    assert tally.clean(), tally.report()
    assert tally.kills >= 1
