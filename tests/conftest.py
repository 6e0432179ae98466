"""Shared fixtures: real emulator servers on loopback, the recorded fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hyperlake.emulator.config import EmulatorConfig
from hyperlake.emulator.server import Emulator, frozen_config
from hyperlake.lake.store import Location

if TYPE_CHECKING:
    from tests.s3_support import S3Server

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


# -- the lake on local disk and on object storage ----------------------------------------

#: The kinds of lake root a test parametrized over ``lake_root`` runs on.
LAKE_KINDS = ("local", "s3")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API on loopback, one a session (started only when a test asks): the
    environment points the lake's store (and every subprocess) at it."""
    pytest.importorskip("obstore")
    pytest.importorskip("moto")
    from tests.s3_support import start_s3

    server = start_s3()
    yield server
    server.stop()


@pytest.fixture(params=LAKE_KINDS)
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh lake root: a folder (``local``), or a prefix of its own in a bucket of the
    loopback S3 server (``s3``). The same test body runs on both."""
    if request.param == "local":
        return tmp_path / "lake"
    server: S3Server = request.getfixturevalue("s3_server")
    return server.lake(request.node.name[:40].replace("[", "-").replace("]", ""))


def lake_tree(root: Location) -> dict[str, tuple[object, ...]]:
    """Every file or object under ``root`` with its version: (mtime, size) on disk,
    (size, ETag, time) on a store. Equal trees: nothing was written or removed."""
    if isinstance(root, Path):
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    from hyperlake.lake.paths import LakePaths
    from hyperlake.lake.s3 import ObjectStore

    store = LakePaths(root).store
    assert isinstance(store, ObjectStore)
    return {key: tuple(rest) for key, *rest in store.list_entries(root.key)}
