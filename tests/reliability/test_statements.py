"""``hyperlake sql`` refuses every writing or attaching statement however it is dressed,
runs every read, and leaves the lake's bytes as they were
(``tests/reliability/statements.py``)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.reliability.statements import READS, WRITES, statement_round


def test_writing_statements_are_refused_in_any_dress(tmp_path: Path) -> None:
    tally = statement_round(tmp_path, random.Random(11), examples=40)["sql statement classes"]
    assert tally.clean(), tally.report()
    assert tally.inputs == len(WRITES) + len(READS) + 40
    assert tally.notes["refused"] == len(WRITES) + 40
