"""Fuzzed command lines and environments: no traceback, ever; a rejected input (exit 2)
or a refused one (exit 3) writes no file and sends no request
(``tests/reliability/fuzzing.py``; the battery draws hundreds, some as real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.fuzzing import fuzz, fuzz_world
from tests.reliability.support import StartEmulator, Tally, call_main


def test_fuzzed_command_lines_never_trace_back_and_rejected_ones_touch_nothing(
        make_emulator: StartEmulator, tmp_path: Path) -> None:
    tally = Tally()
    with fuzz_world(make_emulator, tmp_path) as world:
        fuzz(world, tally, examples=150, draw_seed=2026)
    assert tally.clean(), tally.report()
    assert tally.inputs == 150
    assert tally.notes["exit 2"] > 0 and tally.notes["exit 3"] > 0, tally.notes


@pytest.mark.parametrize(("name", "shown"), [
    ("new\nline", "new\\nline"), ("vertical\x0btab", "vertical\\x0btab"),
    ("line\u2028separator", "line\\u2028separator"), ("bell\x07", "bell\\x07"),
])
def test_an_error_quoting_a_control_character_stays_one_line(tmp_path: Path, name: str,
                                                             shown: str) -> None:
    """Found by the fuzzing: a path with a newline printed a two-line error."""
    code, out, err = call_main(["sql", "SELECT 1", "--lake", str(tmp_path / name)])
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert f"{tmp_path / shown} does not exist" in err


def test_undecodable_bytes_in_an_argument_are_one_line_too(tmp_path: Path) -> None:
    lake = bytes(tmp_path) + b"/\xff\xfe\n"
    done = subprocess.run([sys.executable.encode(), b"-m", b"hyperlake.cli", b"verify",
                           b"--lake", lake], capture_output=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and b"Traceback" not in done.stderr
    assert b"\\udcff\\udcfe\\n does not exist" in done.stderr
