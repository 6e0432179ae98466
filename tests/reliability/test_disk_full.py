"""A full disk: one clear line, the lake as it was, and the next run with space
completes the job (``tests/reliability/disk_full.py``; needs root to mount a tmpfs)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hyperlake.net.redact import Redactor
from tests.reliability.disk_full import TOO_BIG, disk_full_round
from tests.reliability.support import StartEmulator, mount_problem


@pytest.mark.parametrize("index", [1], ids=["dwellir workers"])
def test_extraction_and_compaction_into_a_full_disk(make_emulator: StartEmulator,
                                                    tmp_path: Path, index: int) -> None:
    why = mount_problem()
    if why is not None:
        pytest.skip(why)
    tally = disk_full_round(make_emulator, tmp_path, random.Random(8),
                            stage=TOO_BIG[index])["disk full"]
    assert tally.clean(), tally.report()
    assert tally.compactions == tally.identical == 1


def test_an_os_error_scrubbed_of_secrets_keeps_what_the_cli_needs() -> None:
    """Found by the disk-full round: a Hydromancer run that hit ENOSPC said "[Errno 28]
    ..." without the advice, because scrubbing the error of secrets dropped its errno."""
    scrubbed = Redactor(["s3cret"]).scrub_exception(
        OSError(28, "No space left on device", "/lake/s3cret/part.parquet"))
    assert isinstance(scrubbed, OSError)
    assert (scrubbed.errno, scrubbed.strerror) == (28, "No space left on device")
    assert scrubbed.filename == "/lake/***/part.parquet"
