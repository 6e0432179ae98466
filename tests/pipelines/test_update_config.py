"""``hyperlake.toml``: the example validates; every kind of mistake is one line naming
the file, the line and the key (exit 2), before any request and without any file; the
environment overrides the file; --print-config masks keys."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from hyperlake.cli import main
from hyperlake.emulator.server import Emulator
from hyperlake.pipelines.update.config import environment, key_lines, load_config
from hyperlake.pipelines.update.example import EXAMPLE
from hyperlake.schemas.exchange import HISTORY_FROM_MS
from tests.conftest import NOW_MS

OK = '''\
[markets]
list = ["BTC"]
[candles.hyperliquid]
intervals = ["1h"]
'''
DWELLIR = '''\
[markets]
list = ["BTC"]
[candles.dwellir]
intervals = ["1m"]
'''

MARKETS = '\n[markets]\nlist = ["BTC"]\n'
#: (name, file text, what the line must say, the line it must name or None)
BAD: list[tuple[str, str, str, int | None]] = [
    ("unknown top key", 'lakes = "x"\n', "lakes: unknown key", 1),
    ("lake not a string", "lake = 3\n", "lake: must be a non-empty string", 1),
    ("toml syntax", "lake = \n", "not valid TOML", None),
    ("duplicate key", 'lake = "a"\nlake = "b"\n', "not valid TOML", None),
    ("unknown source", "[sources.binance]\n", "sources.binance: unknown key", 1),
    ("url scheme", '[sources.hyperliquid]\nurl = "ftp://x"\n', "is not an http(s) URL", 2),
    ("url without host", '[sources.hyperliquid]\nurl = "http://"\n', "with a host", 2),
    ("url bad port", '[sources.hyperliquid]\nurl = "http://h:99999"\n', "is not a URL", 2),
    ("key for hyperliquid", '[sources.hyperliquid]\nkey_env = "K"\n', "needs no API key", 2),
    ("key_env not a name", '[sources.dwellir]\nkey_env = "MY-KEY"\n',
     "not an environment variable name", 2),
    ("unknown plan", '[sources.dwellir]\nplan = "gold"\n', "'gold': expected one of", 2),
    ("rate nan", "[sources.dwellir]\nrate = nan\n", "must be a number from", 2),
    ("rate huge", "[sources.dwellir]\nrate = 1e9\n", "must be a number from", 2),
    ("plan and rate", '[sources.dwellir]\nplan = "free"\nrate = 5\n', "not both", 3),
    ("rate for hyperliquid", "[sources.hyperliquid]\nrate = 5\n", "only dwellir", 2),
    ("negative weight", "[sources.hyperliquid]\nweight_per_minute = -5\n",
     "must be a number from", 2),
    ("weight for dwellir", "[sources.dwellir]\nweight_per_minute = 100\n",
     "paced by plan or rate", 2),
    ("key_name for hydromancer", '[sources.hydromancer]\nkey_name = "a"\n',
     "only dwellir keys", 2),
    ("unknown source key", '[sources.hydromancer]\ntoken = "x"\n', "token: unknown key", 2),
    ("unknown selection", '[markets]\nselect = "some"\n', "'some': expected one of", 2),
    ("list selection without list", '[markets]\nselect = "list"\n', "needs list", 2),
    ("empty list", "[markets]\nlist = []\n", "non-empty list of strings", 2),
    ("market twice", '[markets]\nlist = ["BTC", "BTC"]\n', "'BTC' is listed twice", 2),
    ("market not a string", "[markets]\nlist = [1]\n", "non-empty list of strings", 2),
    ("top with a list", '[markets]\nlist = ["BTC"]\ntop = 3\n', "top goes with", 3),
    ("top zero", '[markets]\nselect = "top"\ntop = 0\n', "whole number from 1", 3),
    ("spot not a boolean", '[markets]\nselect = "all"\nspot = "yes"\n', "true or false", 3),
    ("spot with a list", '[markets]\nlist = ["BTC"]\nspot = true\n', "goes with select", 3),
    ("not an interval", '[candles.hyperliquid]\nintervals = ["2m"]\n', "is not an interval", 2),
    ("1s from hyperliquid", '[candles.hyperliquid]\nintervals = ["1s"]\n',
     "hyperliquid serves", 2),
    ("1h from dwellir", '[candles.dwellir]\nintervals = ["1h"]\n', "dwellir serves", 2),
    ("interval twice", '[candles.hyperliquid]\nintervals = ["1m", "1m"]\n', "listed twice", 2),
    ("no intervals", '[candles.hyperliquid]\nstart = "1d"\n', "give intervals", 1),
    ("candles not a table", '[candles]\nhyperliquid = "1m"\n', "must be a table", 2),
    ("start not a time", '[candles]\nstart = "yesterday"\n', "not an ISO-8601 time", 2),
    ("bad lookback unit", '[candles]\nstart = "90x"\n', "not a duration", 2),
    ("zero lookback", '[candles]\nstart = "0d"\n', "longer than zero", 2),
    ("start in the future", '[candles]\nstart = "2999-01-01"\n', "in the future", 2),
    ("start without zone", "[candles]\nstart = 2026-01-01T00:00:00\n", "no timezone", 2),
    ("before dwellir's floor", '[candles.dwellir]\nintervals = ["1m"]\nstart = "2025-01-01"\n',
     "archive floor", 3),
    ("native deep source", '[candles]\ndeep_sources = ["hyperliquid"]\n',
     "is no deeper source", 2),
    ("unknown deep source", '[candles]\ndeep_sources = ["binance"]\n', "'binance'", 2),
    ("funding flag", '[funding]\nenabled = "yes"\n', "true or false", 2),
    ("funding start a number", "[funding]\nstart = 5\n", "must be a date", 2),
    ("context scope", '[asset_ctxs]\nmarkets = "some"\n', "expected configured or all", 2),
    ("compact flag", "[after]\ncompact = 1\n", "true or false", 2),
    ("unknown after key", "[after]\nvacuum = true\n", "vacuum: unknown key", 2),
    ("ping url", 'ping_url = "not a url"\n', "is not an http(s) URL", 1),
    ("no markets", '[candles.hyperliquid]\nintervals = ["1m"]\n', "give [markets]", None),
    ("dwellir without a key", DWELLIR, "dwellir is configured but no key is set", None),
    ("key_env not set", DWELLIR + '[sources.dwellir]\nkey_env = "NOT_SET_ANYWHERE"\n',
     "$NOT_SET_ANYWHERE", None),
]


def requests_seen(emu: Emulator) -> int:
    return sum(v for k, v in emu.stats().items() if k.endswith("_requests"))


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("HYPERLAKE_DWELLIR_KEY", raising=False)
        mp.setenv("PATH", "/usr/bin:/bin")  # no dwellir CLI to ask
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_there_are_thirty_kinds_of_mistakes_or_more() -> None:
    assert len(BAD) >= 30
    assert len({name for name, *_ in BAD}) == len(BAD)


@pytest.mark.parametrize(("name", "text", "needle", "line"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_config_is_one_line_and_touches_nothing(
        emulator: Emulator, tmp_path: Path, name: str, text: str, needle: str,
        line: int | None) -> None:
    config = tmp_path / "hyperlake.toml"
    markets = "" if "[markets]" in text or name == "no markets" else MARKETS
    config.write_text(text + markets)  # after the mistake: its line stays where it is
    before = requests_seen(emulator)
    env = {"HYPERLAKE_HYPERLIQUID_URL": emulator.urls.hyperliquid,
           "HYPERLAKE_DWELLIR_URL": emulator.urls.dwellir,
           "HYPERLAKE_NOW": "2026-03-31T00:00:00Z"}
    code, out, err = run(["update", "--config", str(config), "--lake", str(tmp_path / "lake")],
                         env)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hyperlake update: error: ") and needle in lines[0], lines[0]
    if line is not None:
        assert f"{config}:{line}:" in lines[0], lines[0]
    assert out == ""
    assert requests_seen(emulator) == before, "a bad config sent a request"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hyperlake.toml"], "a file was made"


@pytest.mark.parametrize(("setup", "needle"), [
    ("missing", "no such file"), ("directory", "is a directory"), ("binary", "not UTF-8"),
])
def test_an_unreadable_config_file_is_one_line(tmp_path: Path, setup: str,
                                               needle: str) -> None:
    config = tmp_path / "hyperlake.toml"
    if setup == "directory":
        config.mkdir()
    elif setup == "binary":
        config.write_bytes(b"lake = \"\xff\xfe\"\n")
    code, _, err = run(["update", "--config", str(config)], {})
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_the_example_init_writes_is_valid_and_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "hyperlake.toml"
    code, out, _ = run(["init", str(path)], {})
    assert code == 0 and "wrote" in out
    assert path.read_text() == EXAMPLE
    config = load_config(path, NOW_MS)
    assert config.markets.names == ("BTC", "ETH", "SOL")
    assert [c.source for c in config.candles] == ["hyperliquid"]
    assert config.funding and config.asset_ctxs and config.compact and config.verify
    code, _, err = run(["init", str(path)], {})
    assert code == 2 and "exists" in err


def test_key_lines_name_tables_and_dotted_keys() -> None:
    lines = key_lines('lake = "x"\n\n[sources.dwellir]  # c\nkey_env = "A"\n'
                      '[candles]\nhyperliquid.intervals = ["1m"]\n')
    assert lines[("lake",)] == 1
    assert lines[("sources", "dwellir")] == 3
    assert lines[("sources", "dwellir", "key_env")] == 4
    assert lines[("candles", "hyperliquid", "intervals")] == 6


def test_the_environment_overrides_the_file_and_keys_come_from_named_variables(
        tmp_path: Path) -> None:
    path = tmp_path / "hyperlake.toml"
    path.write_text(OK + '[sources.hyperliquid]\nurl = "http://file:1"\n'
                    'weight_per_minute = 600\n'
                    '[sources.dwellir]\nkey_env = "MY_DWELLIR"\n')
    config = load_config(path, NOW_MS)
    env = environment(config, {"MY_DWELLIR": "secret-1"})
    assert env["HYPERLAKE_HYPERLIQUID_URL"] == "http://file:1"
    assert env["HYPERLAKE_HYPERLIQUID_WEIGHT"] == "600"
    assert env["HYPERLAKE_DWELLIR_KEY"] == "secret-1"
    env = environment(config, {"HYPERLAKE_HYPERLIQUID_URL": "http://env:2",
                               "HYPERLAKE_DWELLIR_KEY": "secret-2", "MY_DWELLIR": "secret-1"})
    assert env["HYPERLAKE_HYPERLIQUID_URL"] == "http://env:2"
    assert env["HYPERLAKE_DWELLIR_KEY"] == "secret-2"


def test_a_start_before_the_exchanges_first_data_plans_from_it(tmp_path: Path) -> None:
    path = tmp_path / "hyperlake.toml"
    path.write_text('[markets]\nlist = ["BTC"]\n[candles]\nstart = "2001-01-01"\n'
                    '[candles.hyperliquid]\nintervals = ["1h"]\n'
                    '[funding]\nstart = "2001-01-01"\n')
    config = load_config(path, NOW_MS)
    assert config.funding_start.resolve(NOW_MS, "1h") == HISTORY_FROM_MS
    assert config.candles[0].start.resolve(NOW_MS, "1d") == HISTORY_FROM_MS  # a day's start


def test_print_config_shows_the_effective_values_with_keys_masked(tmp_path: Path) -> None:
    path = tmp_path / "hyperlake.toml"
    path.write_text('ping_url = "https://hc.example/0f3a-secret-uuid"\n' + DWELLIR +
                    '[sources.dwellir]\nkey_env = "MY_DWELLIR"\nplan = "growth"\n')
    env = {"MY_DWELLIR": "dw-very-secret", "HYPERLAKE_LAKE": str(tmp_path / "elsewhere")}
    code, out, err = run(["update", "--config", str(path), "--print-config"], env)
    assert code == 0, err
    assert "dw-very-secret" not in out and "0f3a-secret-uuid" not in out
    assert 'key = "set (masked)"  # from $MY_DWELLIR' in out
    assert f'lake = "{tmp_path / "elsewhere"}"' in out  # the environment beat the default
    assert "rate = 500" in out and 'list = ["BTC"]' in out
    assert not (tmp_path / "elsewhere").exists()
    assert os.environ.get("MY_DWELLIR") is None
