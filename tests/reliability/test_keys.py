"""API keys never leave the process: not in any output, file or command line, under
faults or when refused (``tests/reliability/keys.py``)."""

from __future__ import annotations

import random
import urllib.parse
from pathlib import Path

import pytest

from tests.reliability.keys import CASES, DWELLIR, Case, keys_round
from tests.reliability.support import StartEmulator, key_occurrences


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5]], ids=lambda c: c.name)
def test_a_key_never_leaves_the_process(make_emulator: StartEmulator, tmp_path: Path,
                                        case: Case) -> None:
    tally = keys_round(make_emulator, tmp_path, random.Random(9), cases=(case,))["secrets"]
    assert tally.clean(), tally.report()
    assert tally.key_bytes == 0 and tally.inputs == 1


def test_a_leaked_key_would_be_found_in_any_spelling(tmp_path: Path) -> None:
    key, core = DWELLIR
    (tmp_path / "a").write_text(f"GET /dwellir/{urllib.parse.quote(key, safe='')}/v1")
    (tmp_path / f"x{core}").mkdir()
    hits = key_occurrences(core, [f"Bearer {key}", "nothing"], [tmp_path])
    assert sorted(hits) == sorted(["output #0", f"file {tmp_path / 'a'}",
                                   f"name {tmp_path / ('x' + core)}"])
