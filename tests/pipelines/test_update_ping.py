"""``--ping-url``, healthchecks.io style, against a loopback server the test runs:
``/start`` then success, or ``/fail`` (gaps left, or an error), with the JSON summary
as the body; nothing for a busy lake or a bad configuration; an unreachable ping
server costs one warning line, never the run."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from hyperlake.cli import main
from hyperlake.emulator.server import Emulator
from hyperlake.lake.paths import LakePaths
from tests.conftest import HYDROMANCER_KEY, NOWHERE, on_disk
from tests.lake.lock_support import held_elsewhere

Ping = tuple[str, bytes]

CONFIG = '''\
{deep}
[markets]
list = ["BTC"]
[candles]
start = "{start}"
[candles.hyperliquid]
intervals = ["{interval}"]
[funding]
enabled = false
'''


@pytest.fixture
def pings() -> Iterator[tuple[str, list[Ping]]]:
    """A loopback ping server: its base URL and the (path, body) of every ping."""
    seen: list[Ping] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            seen.append((self.path, self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/0f3a-check", seen
    server.shutdown()
    server.server_close()


def update(tmp_path: Path, emu: Emulator, *, start: str = "2026-03-30T00:00:00Z",
           interval: str = "1h", deep: str = "", argv: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> tuple[int, str, str]:
    config = tmp_path / "hyperlake.toml"
    config.write_text(CONFIG.format(start=start, interval=interval, deep=deep))
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPERLAKE_HYPERLIQUID_URL", emu.urls.hyperliquid)
        mp.setenv("HYPERLAKE_HYDROMANCER_URL", emu.urls.hydromancer)
        mp.setenv("HYPERLAKE_HYDROMANCER_KEY", HYDROMANCER_KEY)
        mp.setenv("HYPERLAKE_NOW", "2026-03-31T00:00:00Z")
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["update", "--config", str(config), "--lake", str(tmp_path / "lake"),
                         "--json", *argv])
    return code, out.getvalue(), err.getvalue()


def test_a_good_run_pings_start_then_success_with_its_summary(
        emulator: Emulator, tmp_path: Path, pings: tuple[str, list[Ping]]) -> None:
    url, seen = pings
    code, out, err = update(tmp_path, emulator, argv=("--ping-url", url))
    assert code == 0, err
    assert [path for path, _ in seen] == ["/ping/0f3a-check/start", "/ping/0f3a-check"]
    body = orjson.loads(seen[1][1])
    assert body["result"] == "ok" and body == orjson.loads(out.strip().splitlines()[-1])


def test_gaps_left_ping_fail(emulator: Emulator, tmp_path: Path,
                             pings: tuple[str, list[Ping]]) -> None:
    url, seen = pings  # 1m beyond the native horizon, no deeper source: gaps
    code, _, err = update(tmp_path, emulator, start="2026-03-25T00:00:00Z", interval="1m",
                          env={"HYPERLAKE_PING_URL": url})
    assert code == 4, err
    assert [path for path, _ in seen] == ["/ping/0f3a-check/start", "/ping/0f3a-check/fail"]
    assert orjson.loads(seen[1][1])["result"] == "gaps"


def test_a_failing_source_pings_fail(emulator: Emulator, tmp_path: Path,
                                     pings: tuple[str, list[Ping]]) -> None:
    url, seen = pings  # hydromancer refuses the key: the deep part fails for good
    code, _, err = update(tmp_path, emulator, start="2026-03-25T00:00:00Z", interval="1m",
                          deep="[sources.hydromancer]", argv=("--ping-url", url),
                          env={"HYPERLAKE_HYDROMANCER_KEY": "wrong-key"})
    assert code == 1, err
    assert "wrong-key" not in err
    assert [path for path, _ in seen] == ["/ping/0f3a-check/start", "/ping/0f3a-check/fail"]
    assert orjson.loads(seen[1][1])["result"] == "error"


def test_a_busy_lake_or_a_bad_config_pings_nothing(
        emulator: Emulator, tmp_path: Path, pings: tuple[str, list[Ping]]) -> None:
    url, seen = pings
    with held_elsewhere(on_disk(LakePaths(tmp_path / "lake").lock_file)):
        code, out, err = update(tmp_path, emulator, argv=("--ping-url", url))
    assert code == 0 and orjson.loads(out)["result"] == "busy"
    assert len(err.strip().splitlines()) == 1 and "another hyperlake run" in err
    code, _, _ = update(tmp_path, emulator, start="tomorrow", argv=("--ping-url", url))
    assert code == 2
    assert seen == []


def test_an_unreachable_ping_server_is_one_warning_not_a_failure(
        emulator: Emulator, tmp_path: Path) -> None:
    code, _, err = update(tmp_path, emulator, argv=("--ping-url", f"{NOWHERE}/secret-id"))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "ping" in line]
    assert len(warnings) == 2 and all("failed" in w for w in warnings)  # start, success
    assert "secret-id" not in err
