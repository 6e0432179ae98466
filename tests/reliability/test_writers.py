"""Eight writers at once: one works, seven exit 3 in one line, and no byte of the lake
changes under the refused ones (``tests/reliability/writers.py``)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.support import StartEmulator
from tests.reliability.writers import writers_round


def test_one_of_eight_writers_works_and_the_others_touch_nothing(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    tally = writers_round(make_emulator, tmp_path, random.Random(3))["8 concurrent writers"]
    assert tally.clean(), tally.report()
    assert tally.notes["race rounds"] == 1 and tally.inputs == 16
