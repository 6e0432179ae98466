"""Market names resolved against the emulator's real meta/spotMeta, and the snapshot cache."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hyperlake.emulator.server import Emulator
from hyperlake.errors import HyperlakeError, UserError
from hyperlake.pipelines.universe import (
    ExchangeUnreachable,
    Market,
    Universe,
    fetch_universe,
    load_universe,
    public_url,
    snapshot_path,
)

CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens, connect is refused
T0 = 1_800_000_000.0


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def universe(emulator: Emulator) -> Universe:
    with httpx.Client(timeout=10) as c:
        return fetch_universe(emulator.urls.hyperliquid, c)


def info_requests(emu: Emulator) -> int:
    return emu.stats().get("info_requests", 0)


def clock(at: float) -> Callable[[], float]:
    return lambda: at


# -- resolving against the emulator -----------------------------------------------------


@pytest.mark.parametrize(("typed", "canonical"), [
    ("BTC", "BTC"), ("btc", "BTC"), (" btc ", "BTC"),
    ("kpepe", "kPEPE"), ("KPEPE", "kPEPE"),
    ("XYZ:xyz100", "xyz:XYZ100"), ("xyz:XYZ100", "xyz:XYZ100"),
    ("@107", "@107"), ("hype/usdc", "@107"), ("HYPE/USDC", "@107"),
    ("PURR/USDC", "PURR/USDC"), ("purr/usdc", "PURR/USDC"), ("@0", "PURR/USDC"),
])
def test_resolve_returns_the_exchange_spelling(universe: Universe, typed: str,
                                               canonical: str) -> None:
    assert universe.resolve(typed).name == canonical


def test_markets_carry_kind_and_size_decimals(universe: Universe) -> None:
    assert universe.resolve("btc") == Market("BTC", "perp", False, 5)
    assert universe.resolve("xyz:xyz100") == Market("xyz:XYZ100", "hip3", False, 4)
    hype = universe.resolve("@107")
    assert (hype.kind, hype.sz_decimals, hype.aliases) == ("spot", 2, ("HYPE/USDC",))


def test_delisted_flag_comes_from_meta(universe: Universe) -> None:
    assert universe.resolve("matic").delisted
    assert not universe.resolve("BTC").delisted


def test_perps_exclude_delisted_by_default_and_include_hip3(universe: Universe) -> None:
    names = [m.name for m in universe.perps()]
    assert "BTC" in names and "kPEPE" in names and "xyz:XYZ100" in names
    assert "MATIC" not in names
    assert all(m.kind in ("perp", "hip3") and not m.delisted for m in universe.perps())
    everything = [m.name for m in universe.perps(include_delisted=True)]
    assert "MATIC" in everything and "@107" not in everything
    assert len(everything) > len(names)


def test_unknown_market_suggests_close_names(universe: Universe) -> None:
    with pytest.raises(UserError) as err:
        universe.resolve("BTCC")
    message = str(err.value)
    assert message.startswith("unknown market 'BTCC': did you mean ")
    assert "BTC" in message.split("did you mean ")[1].split(", ")
    assert err.value.exit_code == 2


def test_suggestions_use_the_canonical_spelling(universe: Universe) -> None:
    with pytest.raises(UserError, match=r"did you mean .*kPEPE"):
        universe.resolve("kpepee")


def test_garbage_says_where_to_look(universe: Universe) -> None:
    with pytest.raises(UserError) as err:
        universe.resolve("qq!!zz")
    assert "did you mean" not in str(err.value)
    assert "'qq!!zz'" in str(err.value) and "see the exchange's meta" in str(err.value)


def test_empty_name_is_a_user_error(universe: Universe) -> None:
    with pytest.raises(UserError, match="empty"):
        universe.resolve("  ")


def test_resolve_many_keeps_order_and_drops_duplicates(universe: Universe) -> None:
    markets = universe.resolve_many(["eth", "btc", "BTC", "hype/usdc", "@107", "ETH"])
    assert [m.name for m in markets] == ["ETH", "BTC", "@107"]


def test_resolve_many_fails_on_the_first_unknown_name(universe: Universe) -> None:
    with pytest.raises(UserError, match="'nope!!'"):
        universe.resolve_many(["btc", "nope!!"])


# -- hand-made universes -----------------------------------------------------------------


def test_two_case_insensitive_matches_without_an_exact_one_are_ambiguous() -> None:
    u = Universe((Market("kPEPE", "perp", False, 0), Market("KPEPE", "perp", False, 0)))
    with pytest.raises(UserError) as err:
        u.resolve("kpepe")
    assert "ambiguous" in str(err.value)
    assert "kPEPE" in str(err.value) and "KPEPE" in str(err.value)
    assert u.resolve("KPEPE").name == "KPEPE"  # an exact spelling still wins
    assert u.resolve("kPEPE").name == "kPEPE"


def test_an_alias_shared_by_two_markets_is_ambiguous() -> None:
    u = Universe((Market("@1", "spot", False, 2, ("FOO/USDC",)),
                  Market("@2", "spot", False, 2, ("FOO/USDC",))))
    with pytest.raises(UserError, match=r"ambiguous: it matches @1, @2"):
        u.resolve("foo/usdc")


def test_a_canonical_name_beats_another_markets_alias() -> None:
    u = Universe((Market("@1", "spot", False, 2, ("ABC",)), Market("ABC", "perp", False, 3)))
    assert u.resolve("ABC").name == "ABC"


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        Universe((Market("BTC", "perp", False, 5), Market("BTC", "perp", False, 5)))


# -- fetching: shapes and addresses ------------------------------------------------------


def mock_client(answers: dict[str, Any]) -> httpx.Client:
    """A client whose /info answers by request type (``meta:xyz`` for a dex)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        key = body["type"] + (f":{body['dex']}" if "dex" in body else "")
        return httpx.Response(200, content=orjson.dumps(answers[key]))

    return httpx.Client(transport=httpx.MockTransport(handler))


GOOD = {
    "meta": {"universe": [{"name": "BTC", "szDecimals": 5}]},
    "perpDexs": [None],
    "spotMeta": {"universe": [], "tokens": []},
}


def test_fetch_sends_json_posts_to_info(emulator: Emulator, client: httpx.Client) -> None:
    before = info_requests(emulator)
    fetch_universe(emulator.urls.hyperliquid + "/", client)
    assert info_requests(emulator) - before == 4  # meta, perpDexs, meta xyz, spotMeta


@pytest.mark.parametrize(("answers", "detail"), [
    ({**GOOD, "meta": {"assets": []}}, "unexpected meta answer .*has no 'universe'"),
    ({**GOOD, "meta": {"universe": [{"name": "BTC", "szDecimals": "5"}]}},
     r"unexpected meta answer .*universe\[0\]\.szDecimals"),
    ({**GOOD, "meta": {"universe": [{"name": "BTC", "szDecimals": 5, "isDelisted": 1}]}},
     "isDelisted is not a boolean"),
    ({**GOOD, "perpDexs": {"dexes": []}}, "unexpected perpDexs answer"),
    ({**GOOD, "perpDexs": [None, {"name": "abc"}],
      "meta:abc": {"universe": [{"name": "ETH", "szDecimals": 4}]}},
     r"unexpected meta \(dex abc\) answer .*'abc:'"),
    ({**GOOD, "spotMeta": {"universe": [{"name": "@1", "index": 1, "tokens": [7, 0]}],
                           "tokens": [{"name": "USDC", "index": 0, "szDecimals": 8}]}},
     "unexpected spotMeta answer .*known token"),
    ({**GOOD, "spotMeta": {"universe": [{"name": "BTC", "index": 1, "tokens": [0, 0]}],
                           "tokens": [{"name": "USDC", "index": 0, "szDecimals": 8}]}},
     "listed twice"),
])
def test_unexpected_shapes_are_clear_errors(answers: dict[str, Any], detail: str) -> None:
    with mock_client(answers) as c, pytest.raises(HyperlakeError, match=detail) as err:
        fetch_universe("https://user:pw@exchange.test:8443/SECRETKEY/v1", c)
    assert not isinstance(err.value, UserError)
    assert "exchange.test:8443" in str(err.value)
    assert "SECRETKEY" not in str(err.value) and "pw" not in str(err.value)


def test_a_good_mock_answer_parses() -> None:
    answers = {**GOOD, "spotMeta": {
        "universe": [{"name": "@3", "index": 3, "tokens": [5, 0], "isCanonical": False}],
        "tokens": [{"name": "USDC", "index": 0, "szDecimals": 8},
                   {"name": "Foo", "index": 5, "szDecimals": 1}]}}
    with mock_client(answers) as c:
        u = fetch_universe("https://exchange.test", c)
    assert u.resolve("FOO/usdc") == Market("@3", "spot", False, 1, ("Foo/USDC",))


def test_http_errors_and_non_json_are_hyperlake_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=b"null")

    with httpx.Client(transport=httpx.MockTransport(handler)) as c, \
            pytest.raises(HyperlakeError, match=r"unexpected meta answer .*http 500"):
        fetch_universe("https://exchange.test", c)

    def text(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    with httpx.Client(transport=httpx.MockTransport(text)) as c, \
            pytest.raises(HyperlakeError, match="not JSON"):
        fetch_universe("https://exchange.test", c)


def test_unreachable_exchange_is_its_own_error(client: httpx.Client) -> None:
    with pytest.raises(ExchangeUnreachable, match="could not be reached"):
        fetch_universe(CLOSED, client)


def test_public_url_and_snapshot_key_drop_secrets(tmp_path: Path) -> None:
    assert public_url("https://u:p@api.example.xyz/KEY/x?k=1") == "https://api.example.xyz"
    assert snapshot_path(tmp_path, "https://API.example.xyz/KEY") == (
        tmp_path / "universe" / "api.example.xyz_443.json")
    assert snapshot_path(tmp_path, "http://127.0.0.1:9").name == "127.0.0.1_9.json"
    with pytest.raises(UserError, match="no scheme or host"):
        snapshot_path(tmp_path, "api.example.xyz")


# -- the snapshot cache ------------------------------------------------------------------


def test_snapshot_is_written_then_reused_within_max_age(
        emulator: Emulator, client: httpx.Client, tmp_path: Path) -> None:
    url = emulator.urls.hyperliquid
    first = load_universe(url, tmp_path, client, now=clock(T0))
    path = snapshot_path(tmp_path, url)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporaries left
    saved = orjson.loads(path.read_bytes())
    assert saved["fetched_at"] == T0 and saved["source"] == public_url(url)

    before = info_requests(emulator)
    again = load_universe(url, tmp_path, client, now=clock(T0 + 3599))
    assert info_requests(emulator) == before
    assert again == first
    assert again.resolve("hype/usdc").name == "@107"


def test_snapshot_is_refreshed_after_max_age(
        emulator: Emulator, client: httpx.Client, tmp_path: Path) -> None:
    url = emulator.urls.hyperliquid
    load_universe(url, tmp_path, client, now=clock(T0), max_age_s=60)
    before = info_requests(emulator)
    load_universe(url, tmp_path, client, now=clock(T0 + 61), max_age_s=60)
    assert info_requests(emulator) == before + 4
    assert orjson.loads(snapshot_path(tmp_path, url).read_bytes())["fetched_at"] == T0 + 61


def test_a_damaged_snapshot_is_fetched_again(
        emulator: Emulator, client: httpx.Client, tmp_path: Path) -> None:
    url = emulator.urls.hyperliquid
    path = snapshot_path(tmp_path, url)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"version": 1, "fetched_at": ')
    before = info_requests(emulator)
    assert load_universe(url, tmp_path, client, now=clock(T0)).resolve("btc").name == "BTC"
    assert info_requests(emulator) == before + 4
    assert orjson.loads(path.read_bytes())["fetched_at"] == T0


def test_an_old_snapshot_is_used_when_the_exchange_is_unreachable(
        emulator: Emulator, client: httpx.Client, tmp_path: Path) -> None:
    fetched = load_universe(emulator.urls.hyperliquid, tmp_path, client, now=clock(T0))
    offline = snapshot_path(tmp_path, CLOSED)
    shutil.copy(snapshot_path(tmp_path, emulator.urls.hyperliquid), offline)
    u = load_universe(CLOSED, tmp_path, client, now=clock(T0 + 30 * 86_400))
    assert u == fetched
    assert u.resolve("kpepe").name == "kPEPE"


def test_no_snapshot_and_unreachable_is_an_error(client: httpx.Client, tmp_path: Path) -> None:
    with pytest.raises(HyperlakeError) as err:
        load_universe(CLOSED, tmp_path, client)
    message = str(err.value)
    assert not isinstance(err.value, UserError)
    assert "could not be reached" in message and "no universe snapshot" in message
    assert not (tmp_path / "universe").exists() or not any((tmp_path / "universe").iterdir())


@pytest.mark.parametrize(("kind", "gateway"), [("malformed", False), ("truncated", True),
                                               ("reset", True), ("503", False)])
def test_market_lists_are_retried_through_transient_faults(make_emulator: Any, tmp_path: Path,
                                                           kind: str, gateway: bool) -> None:
    """A garbled, cut or refused answer to a market-list request is retried like any
    data request (it once failed the whole command at the first malformed body)."""
    from hyperlake.emulator.config import FaultRule
    from hyperlake.emulator.server import frozen_config
    from tests.conftest import NOW_MS

    rule = FaultRule("info", kind, 0.3)
    emu = make_emulator(frozen_config(NOW_MS, faults=(rule,)), gateway=gateway)
    with httpx.Client(timeout=10) as c:
        universe = load_universe(emu.urls.hyperliquid, tmp_path, c)
    assert universe.resolve("btc").name == "BTC"
    assert emu.stats()["info_requests"] > 4, "no fault hit: nothing was retried"
