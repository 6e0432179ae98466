"""A reader that stops early (``| head``) is not an error of hyperlake's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_output_to_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "hyperlake.cli", "sql", "SELECT * FROM range(300000)",
         "--lake", str(lake), "--format", "csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before hyperlake writes a byte
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
