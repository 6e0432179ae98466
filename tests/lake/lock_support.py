"""Another process holding a lake's writer lock (the lock is re-entrant within a
process, so a test's own hold would be shared, not refused)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HOLDER = """
import sys
from pathlib import Path
from hyperlake.lake.lock import LakeLock
LakeLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def held_elsewhere(lock_file: Path) -> Iterator[subprocess.Popen[str]]:
    """``lock_file`` locked by a child process until the block ends (or it is killed)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()
