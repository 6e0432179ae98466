"""Canonical market names, so every command accepts what users type.

Users write ``btc``, ``kpepe``, ``XYZ:xyz100`` or ``hype/usdc``; the exchange only
knows ``BTC``, ``kPEPE``, ``xyz:XYZ100`` and ``@107``, and answers an unknown coin with
a bare HTTP 500. Resolving every name against the exchange's own lists (``meta`` of
the main dex and of each HIP-3 dex, ``spotMeta``) before any request turns a typo
into a one-line ``UserError`` with suggestions, and gives the lake one spelling per
market.

The lists change rarely, so they are kept as a snapshot and reused for an hour; when
the exchange cannot be reached an older snapshot still lets commands that only need
names (and offline work against a lake) go on. The snapshots describe the exchange,
not a lake, so they live in a per-user cache folder (``cache_folder``), outside every
lake: a command refused by a lake's lock, or by a bad market name, has written nothing
into the lake. A cache that cannot be written is no error: the names were fetched.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar, get_args
from urllib.parse import urlsplit

import orjson

from hyperlake.errors import HyperlakeError, UserError
from hyperlake.lake.atomic import write_bytes_atomic
from hyperlake.net.info import ConnectionFailed, InfoClient, InfoEndpoint
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.retry import Backoff, TransientError
from hyperlake.schemas.exchange import INFO_BASE_WEIGHT
from hyperlake.schemas.names import Ambiguous, NameIndex, NoMatch

Kind = Literal["perp", "hip3", "spot"]
KINDS: tuple[Kind, ...] = get_args(Kind)
SNAPSHOT_VERSION = 1
SNAPSHOT_FOLDER = "universe"
#: Moves the per-user cache of market lists (e.g. to share it in a container).
CACHE_ENV = "HYPERLAKE_CACHE_DIR"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_T = TypeVar("_T")

if TYPE_CHECKING:
    import httpx


class ExchangeUnreachable(HyperlakeError):
    """A network failure (connect, timeout, reset): the exchange gave no answer."""


@dataclass(frozen=True)
class Market:
    """One tradable market. ``name`` is spelled as the exchange spells it;
    ``aliases`` are other exact spellings that mean it (``HYPE/USDC`` for ``@107``)."""

    name: str
    kind: Kind
    delisted: bool
    sz_decimals: int
    aliases: tuple[str, ...] = ()

    @property
    def has_funding(self) -> bool:
        return self.kind != "spot"


@dataclass(frozen=True)
class Universe:
    """Every market of one exchange, in the exchange's order."""

    markets: tuple[Market, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for market in self.markets:
            if market.kind not in KINDS:
                raise ValueError(f"market {market.name!r}: kind {market.kind!r} not in {KINDS}")
            if market.name in seen:
                raise ValueError(f"market {market.name!r} is listed twice")
            seen.add(market.name)

    @cached_property
    def _index(self) -> NameIndex:
        return NameIndex((m.name for m in self.markets),
                         {m.name: m.aliases for m in self.markets})

    @cached_property
    def _by_name(self) -> dict[str, Market]:
        return {m.name: m for m in self.markets}

    def resolve(self, text: str) -> Market:
        """The market ``text`` names: exact spelling first, then any case."""
        key = text.strip()
        if not key:
            raise UserError("market name is empty; give a name such as BTC or HYPE/USDC")
        try:
            return self._by_name[self._index.match(key)]
        except Ambiguous as exc:
            raise UserError(f"market {text!r} is ambiguous: it matches {', '.join(exc.names)}; "
                            "type one of them exactly as shown") from None
        except NoMatch as exc:
            if exc.close:
                raise UserError(f"unknown market {text!r}: did you mean "
                                f"{', '.join(exc.close)}?") from None
            raise UserError(f"unknown market {text!r}: no similar name; see the exchange's "
                            "meta (POST /info {\"type\": \"meta\"} or {\"type\": \"spotMeta\"}) "
                            "for the names") from None

    def resolve_many(self, texts: Iterable[str]) -> list[Market]:
        """Resolve each name; order kept, later duplicates (after resolution) dropped."""
        out: dict[str, Market] = {}
        for text in texts:
            market = self.resolve(text)
            out.setdefault(market.name, market)
        return list(out.values())

    def perps(self, include_delisted: bool = False) -> list[Market]:
        """Main-dex and HIP-3 perpetuals: every market that pays funding."""
        return [m for m in self.markets
                if m.has_funding and (include_delisted or not m.delisted)]


# -- fetching ------------------------------------------------------------------------


class _BadShape(Exception):
    """An answer is valid JSON but not the documented shape (the detail says where)."""


def public_url(base_url: str) -> str:
    """``scheme://host[:port]`` of ``base_url``: no credentials, path or query, which
    may carry API keys, so it is safe in messages and snapshots."""
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        raise UserError(f"base URL {base_url!r} has no scheme or host; "
                        "expected e.g. https://api.hyperliquid.xyz")
    return f"{parts.scheme}://{host}"


#: Market lists are small and rare: a few quick retries before giving up.
UNIVERSE_BACKOFF = Backoff(base=0.2, cap=5.0, max_attempts=5)


def _post(client: InfoClient, body: dict[str, str], what: str) -> Any:
    """One /info metadata request through the shared client: transient failures are
    retried; what still fails names the answer and its source."""
    source = public_url(client.endpoint.url)
    try:
        return client.call(body, what=what, decode=lambda answer: answer)
    except ConnectionFailed as exc:
        raise ExchangeUnreachable(
            f"the exchange at {source} could not be reached ({exc.reason}, after "
            f"{UNIVERSE_BACKOFF.max_attempts} attempts)") from None
    except TransientError as exc:
        raise HyperlakeError(f"unexpected {what} answer from {source}: {exc.reason} (after "
                             f"{UNIVERSE_BACKOFF.max_attempts} attempts)") from None


def _key(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _BadShape(f"{where} is not an object")
    if key not in obj:
        raise _BadShape(f"{where} has no {key!r}")
    return obj[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _BadShape(f"{where} is not a list")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _BadShape(f"{where} is not a non-empty string")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadShape(f"{where} is not a non-negative integer")
    return value


def _flag(obj: dict[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise _BadShape(f"{where}.{key} is not a boolean")
    return value


def _perp_markets(answer: Any, dex: str | None) -> list[Market]:
    out = []
    for i, asset in enumerate(_list(_key(answer, "universe", "the answer"), "universe")):
        where = f"universe[{i}]"
        name = _text(_key(asset, "name", where), f"{where}.name")
        if dex is not None and not name.startswith(f"{dex}:"):
            raise _BadShape(f"{where}.name {name!r} does not start with '{dex}:'")
        sz = _count(_key(asset, "szDecimals", where), f"{where}.szDecimals")
        delisted = _flag(asset, "isDelisted", where)
        out.append(Market(name, "perp" if dex is None else "hip3", delisted, sz))
    return out


def _dex_names(answer: Any) -> list[str]:
    names = []
    for i, dex in enumerate(_list(answer, "the answer")):
        if dex is not None:  # null is the main dex
            names.append(_text(_key(dex, "name", f"[{i}]"), f"[{i}].name"))
    return names


def _spot_tokens(answer: Any) -> dict[int, tuple[str, int]]:
    tokens = {}
    for i, token in enumerate(_list(_key(answer, "tokens", "the answer"), "tokens")):
        where = f"tokens[{i}]"
        index = _count(_key(token, "index", where), f"{where}.index")
        name = _text(_key(token, "name", where), f"{where}.name")
        tokens[index] = (name, _count(_key(token, "szDecimals", where), f"{where}.szDecimals"))
    return tokens


def _spot_markets(answer: Any) -> list[Market]:
    tokens = _spot_tokens(answer)
    out = []
    for i, pair in enumerate(_list(_key(answer, "universe", "the answer"), "universe")):
        where = f"universe[{i}]"
        name = _text(_key(pair, "name", where), f"{where}.name")
        index = _count(_key(pair, "index", where), f"{where}.index")
        ids = _list(_key(pair, "tokens", where), f"{where}.tokens")
        if len(ids) != 2 or any(_count(t, f"{where}.tokens") not in tokens for t in ids):
            raise _BadShape(f"{where}.tokens is not two known token indexes")
        (base, sz), (quote, _) = tokens[ids[0]], tokens[ids[1]]
        aliases = tuple(a for a in dict.fromkeys((f"{base}/{quote}", f"@{index}")) if a != name)
        out.append(Market(name, "spot", _flag(pair, "isDelisted", where), sz, aliases))
    return out


def _parsed(parse: Callable[[Any], _T], answer: Any, what: str, base_url: str) -> _T:
    try:
        return parse(answer)
    except _BadShape as exc:
        raise HyperlakeError(
            f"unexpected {what} answer from {public_url(base_url)}: {exc}") from exc


def fetch_universe(base_url: str, client: httpx.Client,
                   budget: SharedWeightBudget | None = None) -> Universe:
    """Ask the exchange for every market: ``meta``, ``perpDexs``, ``meta`` of each
    HIP-3 dex, ``spotMeta``, each paid from ``budget`` (the weight all hyperlake
    processes share) when given. Raises ``ExchangeUnreachable`` on a network failure
    and ``HyperlakeError`` on any answer that is not the documented shape."""
    endpoint = InfoEndpoint(f"{base_url.rstrip('/')}/info", budget=budget,
                            base_weight=INFO_BASE_WEIGHT)
    post = partial(_post, InfoClient(endpoint, client, UNIVERSE_BACKOFF))
    markets = _parsed(partial(_perp_markets, dex=None), post({"type": "meta"}, "meta"), "meta",
                      base_url)
    dexes = _parsed(_dex_names, post({"type": "perpDexs"}, "perpDexs"), "perpDexs", base_url)
    for dex in dexes:
        answer = post({"type": "meta", "dex": dex}, f"meta (dex {dex})")
        markets += _parsed(partial(_perp_markets, dex=dex), answer, f"meta (dex {dex})", base_url)
    markets += _parsed(_spot_markets, post({"type": "spotMeta"}, "spotMeta"), "spotMeta",
                       base_url)
    try:
        return Universe(tuple(markets))
    except ValueError as exc:
        raise HyperlakeError(f"unexpected meta answer from {public_url(base_url)}: {exc}") from exc


# -- snapshot ------------------------------------------------------------------------


def cache_folder() -> Path:
    """``$HYPERLAKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/hyperlake``, else
    ``~/.cache/hyperlake``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "hyperlake"


def snapshot_path(state_dir: Path, base_url: str) -> Path:
    """``state_dir/universe/<host>_<port>.json``: one snapshot per exchange host."""
    parts = urlsplit(public_url(base_url))
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError as exc:
        raise UserError(f"base URL {base_url!r}: {exc}") from exc
    key = re.sub(r"[^A-Za-z0-9.-]", "_", f"{parts.hostname}:{port}")
    return state_dir / SNAPSHOT_FOLDER / f"{key}.json"


def _encode_snapshot(universe: Universe, fetched_at: float, source: str) -> bytes:
    return orjson.dumps({
        "version": SNAPSHOT_VERSION,
        "source": source,
        "fetched_at": fetched_at,
        "markets": [{"name": m.name, "kind": m.kind, "delisted": m.delisted,
                     "sz_decimals": m.sz_decimals, "aliases": list(m.aliases)}
                    for m in universe.markets],
    }, option=orjson.OPT_INDENT_2)


def _decode_market(row: Any, where: str) -> Market:
    aliases = _list(_key(row, "aliases", where), f"{where}.aliases")
    delisted = _key(row, "delisted", where)
    if not isinstance(delisted, bool):
        raise _BadShape(f"{where}.delisted is not a boolean")
    kind = _key(row, "kind", where)
    if not _is_kind(kind):
        raise _BadShape(f"{where}.kind is not one of {', '.join(KINDS)}")
    return Market(_text(_key(row, "name", where), f"{where}.name"), kind, delisted,
                  _count(_key(row, "sz_decimals", where), f"{where}.sz_decimals"),
                  tuple(_text(a, f"{where}.aliases") for a in aliases))


def _is_kind(value: object) -> TypeGuard[Kind]:
    return value in KINDS


def _decode_snapshot(data: bytes) -> tuple[float, Universe]:
    snapshot = orjson.loads(data)
    if _key(snapshot, "version", "snapshot") != SNAPSHOT_VERSION:
        raise _BadShape("unknown snapshot version")
    fetched_at = _key(snapshot, "fetched_at", "snapshot")
    if isinstance(fetched_at, bool) or not isinstance(fetched_at, int | float):
        raise _BadShape("fetched_at is not a number")
    rows = _list(_key(snapshot, "markets", "snapshot"), "markets")
    markets = tuple(_decode_market(row, f"markets[{i}]") for i, row in enumerate(rows))
    return float(fetched_at), Universe(markets)


def _read_snapshot(path: Path) -> tuple[float, Universe] | None:
    """The snapshot at ``path``, or None if it is missing or unusable (a cache: a
    damaged one is simply fetched again and replaced)."""
    try:
        return _decode_snapshot(path.read_bytes())
    except (OSError, orjson.JSONDecodeError, _BadShape, ValueError):
        return None


def _save_snapshot(path: Path, universe: Universe, fetched_at: float, source: str) -> None:
    """Keep the snapshot for the next run; a cache that cannot be written (a read-only
    home under a service manager, say) only means the next run asks again."""
    with contextlib.suppress(OSError):
        write_bytes_atomic(path, _encode_snapshot(universe, fetched_at, source))


def cached_universe(base_url: str, state_dir: Path, *, max_age_s: float = 3600,
                    now: Callable[[], float] = time.time) -> Universe | None:
    """The snapshot when it is younger than ``max_age_s``; None when it must be fetched
    (a caller can then skip making a client at all)."""
    cached = _read_snapshot(snapshot_path(state_dir, base_url))
    if cached is not None and 0 <= now() - cached[0] < max_age_s:
        return cached[1]
    return None


def load_universe(base_url: str, state_dir: Path, client: httpx.Client, *,
                  max_age_s: float = 3600, now: Callable[[], float] = time.time,
                  budget: SharedWeightBudget | None = None) -> Universe:
    """The snapshot if younger than ``max_age_s``, else a fresh fetch (saved as the new
    snapshot); if the exchange cannot be reached, a snapshot of any age."""
    path = snapshot_path(state_dir, base_url)
    fresh = cached_universe(base_url, state_dir, max_age_s=max_age_s, now=now)
    if fresh is not None:
        return fresh
    cached = _read_snapshot(path)
    try:
        universe = fetch_universe(base_url, client, budget)
    except ExchangeUnreachable as exc:
        if cached is not None:
            return cached[1]
        raise ExchangeUnreachable(f"{exc}, and there is no universe snapshot at {path} "
                                  "to fall back on; connect once to create it") from exc
    _save_snapshot(path, universe, now(), public_url(base_url))
    return universe
