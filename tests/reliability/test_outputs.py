"""``--output`` onto FIFOs, symlinks and device nodes made in a temporary folder: the
target stays what it was and gets what a regular file gets
(``tests/reliability/outputs.py``)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.outputs import outputs_round


def test_special_files_stay_what_they_are_and_get_the_bytes(tmp_path: Path) -> None:
    tally = outputs_round(tmp_path, random.Random(12), tries=30)["special-file outputs"]
    assert tally.clean(), tally.report()
    assert tally.notes["fifo"] + tally.notes["link to fifo"] > 0, tally.notes
