"""Dwellir key discovery through a ``dwellir`` CLI on PATH (a stand-in executable that
answers TOON as the vendor's does): the one enabled key and its Hyperliquid index
endpoint are used; several enabled keys need --dwellir-key-name; a CLI that fails is
one line; the key never reaches output or a file."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import toon_format

from hyperlake.cli import main
from hyperlake.emulator.server import Emulator
from tests.conftest import DWELLIR_KEY

CONFIG = '''\
[markets]
list = ["BTC"]
[candles.dwellir]
intervals = ["1m"]
start = "2026-03-30T23:50:00Z"
[funding]
enabled = false
[asset_ctxs]
enabled = false
'''
STAND_IN = '''#!{python}
import json, sys, pathlib
here = pathlib.Path(__file__).parent
with open(here / "calls.log", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
answers = json.loads((here / "answers.json").read_text())
if answers.get("fail"):
    print("Error: not authenticated; run dwellir auth login", file=sys.stderr)
    sys.exit(1)
if sys.argv[1:3] == ["keys", "list"]:
    print(answers["keys"], end="")
else:
    print(answers["endpoints"][sys.argv[sys.argv.index("--key") + 1]], end="")
'''


def envelope(data: Any, command: str) -> str:
    return str(toon_format.dumps({"ok": True, "data": data,
                                  "meta": {"command": command,
                                           "timestamp": "2026-03-31T00:00:00Z"}}))


def key(api_key: str, name: str, enabled: bool = True) -> dict[str, Any]:
    return {"api_key": api_key, "name": name, "enabled": enabled,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}


def endpoints(base: str, api_key: str) -> str:
    chain = {"id": 7, "name": "Hyperliquid", "ecosystem": "hyperliquid", "networks": [
        {"id": 1, "name": "Mainnet", "nodes": [
            {"id": 1, "https": f"https://api-hyperliquid-mainnet.n.dwellir.com/{api_key}",
             "wss": "", "node_type": {"name": "Full"}},
            {"id": 2, "https": f"{base}/{api_key}", "wss": "",
             "node_type": {"name": "HyperCore Index"}}]}]}
    return envelope([chain], "endpoints.search")


def install(tmp_path: Path, emu: Emulator, keys: list[dict[str, Any]],
            fail: bool = False) -> Path:
    """The stand-in ``dwellir`` in its own bin folder; returns the folder."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "dwellir"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    answers = {"fail": fail, "keys": envelope(keys, "keys.list"),
               "endpoints": {k["name"]: endpoints(emu.urls.dwellir, k["api_key"])
                             for k in keys}}
    (folder / "answers.json").write_text(orjson.dumps(answers).decode())
    return folder


def update(tmp_path: Path, emu: Emulator, folder: Path, *argv: str) -> tuple[int, str, str]:
    config = tmp_path / "hyperlake.toml"
    config.write_text(CONFIG)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{folder}:/usr/bin:/bin")
        mp.delenv("HYPERLAKE_DWELLIR_KEY", raising=False)
        mp.delenv("HYPERLAKE_DWELLIR_URL", raising=False)
        mp.setenv("HYPERLAKE_HYPERLIQUID_URL", emu.urls.hyperliquid)
        mp.setenv("HYPERLAKE_NOW", "2026-03-31T00:00:00Z")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["update", "--config", str(config), "--lake", str(tmp_path / "lake"),
                         *argv])
    return code, out.getvalue(), err.getvalue()


def calls(folder: Path) -> list[list[str]]:
    log = folder / "calls.log"
    return [orjson.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_never_written(tmp_path: Path, secret: str, *texts: str) -> None:
    assert all(secret not in text for text in texts)
    for path in (tmp_path / "lake").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_the_one_enabled_key_and_its_index_endpoint_are_used(
        emulator: Emulator, tmp_path: Path) -> None:
    folder = install(tmp_path, emulator, [key(DWELLIR_KEY, "prod"),
                                          key("old-secret", "old", enabled=False)])
    code, out, err = update(tmp_path, emulator, folder, "--json")
    assert code == 0, err
    result = orjson.loads(out.strip().splitlines()[-1])
    assert result["planned"] == 10 and result["fetched"] + result["empty"] == 10
    assert calls(folder) == [["keys", "list", "--toon"],
                             ["endpoints", "search", "hyperliquid", "--ecosystem", "hyperliquid",
                              "--network", "mainnet", "--key", "prod", "--toon"]]
    assert_never_written(tmp_path, DWELLIR_KEY, out, err)
    code, out, _ = update(tmp_path, emulator, folder, "--print-config")
    assert code == 0 and 'key = "set (masked)"' in out and DWELLIR_KEY not in out


def test_several_enabled_keys_need_a_name(emulator: Emulator, tmp_path: Path) -> None:
    folder = install(tmp_path, emulator, [key("other-secret", "staging"),
                                          key(DWELLIR_KEY, "prod")])
    code, out, err = update(tmp_path, emulator, folder)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "staging, prod" in err and "--dwellir-key-name" in err
    assert not (tmp_path / "lake").exists()
    assert_never_written(tmp_path, DWELLIR_KEY, out, err)
    assert_never_written(tmp_path, "other-secret", out, err)

    code, out, err = update(tmp_path, emulator, folder, "--dwellir-key-name", "prod")
    assert code == 0, err
    assert calls(folder)[-1][-2:] == ["prod", "--toon"]


def test_an_unknown_name_or_a_failing_cli_is_one_line(emulator: Emulator,
                                                      tmp_path: Path) -> None:
    folder = install(tmp_path, emulator, [key(DWELLIR_KEY, "prod")])
    code, _, err = update(tmp_path, emulator, folder, "--dwellir-key-name", "nope")
    assert code == 2 and "'nope': no such key; dwellir lists prod" in err

    (folder / "answers.json").write_text(orjson.dumps({"fail": True}).decode())
    code, _, err = update(tmp_path, emulator, folder)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "keys list failed: Error: not authenticated" in err and "dwellir auth" in err
