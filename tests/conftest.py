"""Shared fixtures: real emulator servers on loopback, the recorded fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperlake.emulator.config import EmulatorConfig
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.store import Location

FIXTURES = Path(__file__).parent / "fixtures"
#: The instant tests freeze the emulator's clock at: 2026-03-31T00:00:00Z.
NOW_MS = 1_774_915_200_000
HYDROMANCER_KEY = "hm-test-key"
DWELLIR_KEY = "dw-test-key"


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One shared emulator, clock frozen at NOW_MS. Tests that change its clock,
    faults or budgets must use ``make_emulator`` instead."""
    with Emulator(frozen_config(NOW_MS, dwellir_rate_overrides={DWELLIR_KEY: 1_000_000})) as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with their own configuration; all are stopped afterwards."""
    started: list[Emulator] = []

    def start(config: EmulatorConfig | None = None, **kwargs: Any) -> Emulator:
        emu = Emulator(config or frozen_config(NOW_MS), **kwargs).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


#: A closed port on loopback: where sources point unless a test names the emulator.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def private_pacing(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Weight budgets are shared machine-wide through files: give each test its own.
    Market lists are cached per user: share one cache for the session (keyed by each
    emulator's port), never the user's own. And no test may reach a real host: every
    source defaults to a closed loopback port (the product's defaults are the real
    exchanges)."""
    monkeypatch.setenv("HYPERLAKE_PACING_DIR", str(tmp_path_factory.mktemp("pacing")))
    monkeypatch.setenv("HYPERLAKE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    for name in ("HYPERLAKE_HYPERLIQUID_URL", "HYPERLAKE_HYDROMANCER_URL",
                 "HYPERLAKE_DWELLIR_URL"):
        monkeypatch.setenv(name, NOWHERE)


def on_disk(location: Location) -> Path:
    """A lake location of a local lake (the test writes or inspects it as a file)."""
    assert isinstance(location, Path), f"{location} is not on this machine's disk"
    return location
