"""Faults at 1 %, 10 % and 30 % on each endpoint: exit 0, or exit 4 with every missing
bucket in the gap ledger; one more run with a healthy source fills it, and the lake is
the model's (``tests/reliability/faults.py``; the battery tries every kind and rate)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.reliability.faults import fault_round
from tests.reliability.support import StartEmulator


@pytest.mark.parametrize(("endpoint", "kind", "rate"), [
    ("info", "malformed", 0.3),  # funding and Hyperliquid candles
    ("hydromancer", "reset", 0.1),  # through the fault gateway
    ("dwellir", "truncated", 0.3),
])
def test_faults_end_in_the_ledger_and_one_more_run_fills_it(
        make_emulator: StartEmulator, tmp_path: Path, endpoint: str, kind: str,
        rate: float) -> None:
    tally = fault_round(make_emulator, tmp_path, random.Random(5), endpoint, kind,
                        rate)[f"faults on {endpoint}"]
    assert tally.clean(), tally.report()
    if rate == 0.3:  # two attempts each: some requests fail twice, and are ledgered
        assert tally.notes["runs ended 4"] >= 1, tally.notes
