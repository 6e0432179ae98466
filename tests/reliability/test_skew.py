"""A source whose clock is behind ours: provisional buckets, then filled by the next run
once it has caught up (``tests/reliability/skew.py``; the battery draws the source, the
interval and the lag)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.skew import skew_round
from tests.reliability.support import StartEmulator


def test_a_lagging_source_loses_nothing(make_emulator: StartEmulator, tmp_path: Path) -> None:
    tally = skew_round(make_emulator, tmp_path, random.Random(2))["clock skew"]
    assert tally.clean(), tally.report()
    assert tally.notes["provisional buckets"] > 0, tally.notes
