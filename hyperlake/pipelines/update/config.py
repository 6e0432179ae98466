"""``hyperlake.toml``: what ``hyperlake update`` keeps current, validated before anything.

A TOML file (the standard library's ``tomllib``) read once, checked whole, and turned
into an ``UpdateConfig``; every mistake is one ``UserError`` line naming the file, the
line and the key (``hyperlake.toml:14: candles.dwellir.intervals: '1h' …``), raised
before any request is sent or any file written. The environment and the command's
flags override the file (``effective``); keys are never in the file, only the names
of the environment variables that hold them.

The example ``hyperlake init`` writes (``EXAMPLE``) documents every key.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from hyperlake.errors import UserError
from hyperlake.pipelines.candles.registry import MAX_RATE, MIN_RATE, REGISTRY
from hyperlake.schemas.exchange import HISTORY_FROM_MS
from hyperlake.schemas.intervals import bucket_start, is_interval
from hyperlake.schemas.times import format_instant, parse_duration, parse_instant
from hyperlake.schemas.vocabulary import SOURCES, Source, is_source

DEFAULT_FILE = "hyperlake.toml"
#: A lookback longer than this is a typo (the exchange is younger).
MAX_LOOKBACK_MS = 20 * 366 * 86_400_000
Selection = Literal["list", "all", "top"]
SELECTIONS: tuple[Selection, ...] = ("list", "all", "top")
CtxScope = Literal["configured", "all"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Start:
    """Where history starts: a fixed instant, or a lookback from "now"."""

    text: str  # as written, for --print-config
    at_ms: int | None = None
    lookback_ms: int | None = None

    def resolve(self, now_ms: int, interval: str) -> int:
        """The first bucket of ``interval`` to keep, as of ``now_ms``: never before the
        exchange's first data (a plan, or a gap ledger, reaching back to 1970 would
        only ask for nothing)."""
        at = self.at_ms if self.at_ms is not None else now_ms - (self.lookback_ms or 0)
        return bucket_start(max(HISTORY_FROM_MS, at), interval)


#: Where history starts when the file does not say.
DEFAULT_START = Start("30d", lookback_ms=30 * 86_400_000)


@dataclass(frozen=True)
class SourceConfig:
    name: Source
    url: str | None = None
    key_env: str | None = None  # the variable holding the key (default: the registry's)
    weight_per_minute: float | None = None
    plan: str | None = None  # dwellir
    rate: float | None = None  # dwellir, requests per second
    key_name: str | None = None  # dwellir: which key the dwellir CLI should hand over


@dataclass(frozen=True)
class CandleConfig:
    source: Source
    intervals: tuple[str, ...]
    start: Start


@dataclass(frozen=True)
class MarketsConfig:
    select: Selection = "list"
    names: tuple[str, ...] = ("BTC", "ETH")
    top: int | None = None
    spot: bool = False
    hip3: bool = False
    delisted: bool = False


@dataclass(frozen=True)
class UpdateConfig:
    path: Path | None  # None: no file, the defaults
    lake: str | None = None
    ping_url: str | None = None
    sources: Mapping[Source, SourceConfig] = field(default_factory=dict)
    markets: MarketsConfig = field(default_factory=MarketsConfig)
    candles: tuple[CandleConfig, ...] = ()
    deep_sources: tuple[Source, ...] = ()
    funding: bool = True
    funding_start: Start = DEFAULT_START
    asset_ctxs: bool = True
    asset_ctxs_scope: CtxScope = "configured"
    compact: bool = True
    verify: bool = True

    def source(self, name: Source) -> SourceConfig:
        return self.sources.get(name) or SourceConfig(name)

    def key_env(self, name: Source) -> str | None:
        """The environment variable that holds ``name``'s key (None: it needs none)."""
        return self.source(name).key_env or REGISTRY[name].key_env

    def used_sources(self) -> tuple[Source, ...]:
        """Every source a run may ask: the candle sources, the deep ones, and Hyperliquid
        itself (the universe, funding, asset contexts), in the registry's order."""
        used = {c.source for c in self.candles} | set(self.deep_sources) | {"hyperliquid"}
        return tuple(s for s in SOURCES if s in used)


# -- where each key sits in the file ------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return tuple(p.strip("\"'") for p in parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line number of each table header and key (1-based), by dotted path. Keys inside
    multi-line values are not tracked; an error there names the key's own line."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_dotted(key.group(1))), number)
    return lines


class _Reader:
    """Typed access to the parsed file; every error names the file, line and key."""

    def __init__(self, data: dict[str, Any], lines: dict[tuple[str, ...], int],
                 name: str) -> None:
        self.data = data
        self.lines = lines
        self.name = name

    def error(self, path: tuple[str, ...], message: str) -> UserError:
        line = None
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                break
        where = f"{self.name}:{line}" if line is not None else self.name
        return UserError(f"{where}: {'.'.join(path)}: {message}")

    def get(self, path: tuple[str, ...]) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def table(self, path: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        value = self.get(path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.error((*path, key), f"unknown key; expected one of "
                                 f"{', '.join(allowed)}")
        return value

    def string(self, path: tuple[str, ...]) -> str | None:
        value = self.get(path)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.error(path, f"must be a non-empty string, got {_shown(value)}")
        return None if value is None else value.strip()

    def boolean(self, path: tuple[str, ...], default: bool) -> bool:
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {_shown(value)}")
        return value

    def number(self, path: tuple[str, ...], low: float, high: float) -> float | None:
        value = self.get(path)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high:  # NaN fails both comparisons
            raise self.error(path, f"must be a number from {low:g} to {high:,g}, got "
                             f"{_shown(value)}")
        return float(value)

    def strings(self, path: tuple[str, ...]) -> tuple[str, ...] | None:
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) and v.strip() for v in value):
            raise self.error(path, f"must be a non-empty list of strings, got {_shown(value)}")
        names = tuple(v.strip() for v in value)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise self.error(path, f"{twice[0]!r} is listed twice")
        return names

    def start(self, path: tuple[str, ...], now_ms: int) -> Start | None:
        """A date (``2026-01-01``, TOML or quoted), an ISO instant with an offset, or a
        lookback (``90d``, ``12h``, ``2w``)."""
        value = self.get(path)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise self.error(path, f"{value.isoformat()} has no timezone; write "
                                 f"{value.isoformat()}Z")
            value = value.isoformat()
        if isinstance(value, dt.date):
            value = value.isoformat()
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"must be a date (2026-01-01), an ISO time or a lookback "
                             f"(90d), got {_shown(value)}")
        return self._start_text(path, value.strip(), now_ms)

    def _start_text(self, path: tuple[str, ...], text: str, now_ms: int) -> Start:
        if re.fullmatch(r"\d+(?:\.\d+)?[a-z]+", text):
            try:
                ms = parse_duration(text, "lookback", most_ms=MAX_LOOKBACK_MS)
            except UserError as exc:
                raise self.error(path, str(exc).removeprefix("lookback: ")) from None
            if ms <= 0:
                raise self.error(path, f"lookback {text!r} must be longer than zero")
            return Start(text, lookback_ms=ms)
        iso = f"{text}T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else text
        try:
            at = parse_instant(iso, "start")
        except UserError as exc:
            raise self.error(path, str(exc).removeprefix("start: ") + "; or give a "
                             "lookback such as 90d") from None
        if at >= now_ms:
            raise self.error(path, f"{text} is in the future (now is {format_instant(now_ms)})")
        return Start(text, at_ms=at)


def _kind(value: object) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the file's shape ----------------------------------------------------------------------

TOP_KEYS = ("lake", "ping_url", "sources", "markets", "candles", "funding", "asset_ctxs",
            "after")
SOURCE_KEYS = ("url", "key_env", "weight_per_minute", "plan", "rate", "key_name")
MARKET_KEYS = ("select", "list", "top", "spot", "hip3", "delisted")
CANDLE_KEYS = ("start", "deep_sources", *SOURCES)
CANDLE_SOURCE_KEYS = ("intervals", "start")


def load_config(path: Path | None, now_ms: int, *, required: bool = False) -> UpdateConfig:
    """The configuration at ``path`` (default ``./hyperlake.toml``, which may be absent
    unless ``required``), validated whole."""
    explicit = path is not None
    path = path or Path(DEFAULT_FILE)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit or required:
            raise UserError(f"--config {path}: no such file (hyperlake init writes an "
                            "example)") from None
        raise UserError(f"no {DEFAULT_FILE} here: give --config FILE, or run hyperlake init "
                        "to write an example") from None
    except IsADirectoryError:
        raise UserError(f"--config {path}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, key_lines(text), path, now_ms)


def parse_config(data: dict[str, Any], lines: dict[tuple[str, ...], int], path: Path,
                 now_ms: int) -> UpdateConfig:
    r = _Reader(data, lines, str(path))
    for key in data:
        if key not in TOP_KEYS:
            raise r.error((key,), f"unknown key; expected one of {', '.join(TOP_KEYS)}")
    sources = _sources(r)
    candles, deep = _candles(r, sources, now_ms)
    funding = r.table(("funding",), ("enabled", "start"))
    ctxs = r.table(("asset_ctxs",), ("enabled", "markets"))
    r.table(("after",), ("compact", "verify"))
    scope = r.string(("asset_ctxs", "markets")) or "configured"
    if not _is_scope(scope):
        raise r.error(("asset_ctxs", "markets"), f"{scope!r}: expected configured or all")
    ping = r.string(("ping_url",))
    if ping is not None:
        _check_url(r, ("ping_url",), ping)
    defaults = UpdateConfig(None)
    return UpdateConfig(
        path=path, lake=r.string(("lake",)), ping_url=ping, sources=sources,
        markets=_markets(r), candles=candles, deep_sources=deep,
        funding=r.boolean(("funding", "enabled"), bool(funding) or defaults.funding),
        funding_start=r.start(("funding", "start"), now_ms) or defaults.funding_start,
        asset_ctxs=r.boolean(("asset_ctxs", "enabled"), bool(ctxs) or defaults.asset_ctxs),
        asset_ctxs_scope=scope,
        compact=r.boolean(("after", "compact"), True),
        verify=r.boolean(("after", "verify"), True))


def _is_scope(text: str) -> TypeGuard[CtxScope]:
    return text in ("configured", "all")


def _is_selection(text: str) -> TypeGuard[Selection]:
    return text in SELECTIONS


def _check_url(r: _Reader, path: tuple[str, ...], text: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise r.error(path, f"{text!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.error(path, f"{text!r} is not an http(s) URL with a host")


def _sources(r: _Reader) -> dict[Source, SourceConfig]:
    out: dict[Source, SourceConfig] = {}
    for name in r.table(("sources",), SOURCES):
        assert is_source(name)
        path = ("sources", name)
        r.table(path, SOURCE_KEYS)
        registered = REGISTRY[name]
        url = r.string((*path, "url"))
        if url is not None:
            _check_url(r, (*path, "url"), url)
        key_env = r.string((*path, "key_env"))
        if key_env is not None:
            if registered.key_env is None:
                raise r.error((*path, "key_env"), f"{name} needs no API key")
            if not _ENV_NAME.fullmatch(key_env):
                raise r.error((*path, "key_env"), f"{key_env!r} is not an environment "
                              "variable name (letters, digits, _)")
        weight = r.number((*path, "weight_per_minute"), 1, 10**9)
        if weight is not None and registered.plans is not None:
            raise r.error((*path, "weight_per_minute"), f"{name} is paced by plan or rate, "
                          "not weight")
        plan, rate = r.string((*path, "plan")), r.number((*path, "rate"), MIN_RATE, MAX_RATE)
        for key, value in (("plan", plan), ("rate", rate)):
            if value is not None and registered.plans is None:
                raise r.error((*path, key), f"{name} is paced by its weight budget; "
                              "only dwellir takes plan or rate")
        if plan is not None and rate is not None:
            raise r.error((*path, "rate"), "give plan or rate, not both")
        if plan is not None and plan not in (registered.plans or {}):
            raise r.error((*path, "plan"), f"{plan!r}: expected one of "
                          f"{', '.join(registered.plans or {})}")
        key_name = r.string((*path, "key_name"))
        if key_name is not None and name != "dwellir":
            raise r.error((*path, "key_name"), "only dwellir keys are discovered by name")
        out[name] = SourceConfig(name, url, key_env, weight, plan, rate, key_name)
    return out


def _candles(r: _Reader, sources: Mapping[Source, SourceConfig],
             now_ms: int) -> tuple[tuple[CandleConfig, ...], tuple[Source, ...]]:
    r.table(("candles",), CANDLE_KEYS)
    default_start = r.start(("candles", "start"), now_ms) or DEFAULT_START
    out = []
    for name in SOURCES:
        path = ("candles", name)
        if r.get(path) is None:
            continue
        r.table(path, CANDLE_SOURCE_KEYS)
        registered = REGISTRY[name]
        intervals = r.strings((*path, "intervals"))
        if intervals is None:
            raise r.error(path, "give intervals = [...], e.g. [\"1m\", \"1h\"]")
        for interval in intervals:
            if not is_interval(interval):
                raise r.error((*path, "intervals"), f"{interval!r} is not an interval "
                              "(1s 1m 3m 5m 15m 30m 1h 2h 4h 8h 12h 1d 3d 1w 1M)")
            if interval not in registered.intervals:
                raise r.error((*path, "intervals"), f"{interval!r}: {name} serves "
                              f"{', '.join(registered.intervals)}")
        start = r.start((*path, "start"), now_ms) or default_start
        if registered.floor_ms is not None and start.at_ms is not None \
                and start.at_ms < registered.floor_ms:
            raise r.error((*path, "start"), f"{start.text} is before {name}'s archive floor "
                          f"{format_instant(registered.floor_ms)}")
        out.append(CandleConfig(name, intervals, start))
    deep = _deep_sources(r, sources, out)
    return tuple(out), deep


def _deep_sources(r: _Reader, sources: Mapping[Source, SourceConfig],
                  candles: list[CandleConfig]) -> tuple[Source, ...]:
    """Where holes older than a source's horizon are taken from: ``candles.deep_sources``
    in the order given, else every configured source without a horizon."""
    path = ("candles", "deep_sources")
    names = r.strings(path)
    configured = set(sources) | {c.source for c in candles}
    if names is None:
        return tuple(s for s in SOURCES if s in configured and REGISTRY[s].horizon is None)
    for name in names:
        if not is_source(name):
            raise r.error(path, f"{name!r}: expected one of {', '.join(SOURCES)}")
        if REGISTRY[name].horizon is not None:
            raise r.error(path, f"{name!r} keeps only its most recent "
                          f"{REGISTRY[name].horizon} candles: it is no deeper source")
    return tuple(n for n in names if is_source(n))


def _markets(r: _Reader) -> MarketsConfig:
    path = ("markets",)
    if r.get(path) is None:
        raise r.error(path, 'missing: give [markets] with list = ["BTC", ...], or select = '
                      '"all" or "top"')
    r.table(path, MARKET_KEYS)
    select = r.string((*path, "select")) or "list"
    if not _is_selection(select):
        raise r.error((*path, "select"), f"{select!r}: expected one of {', '.join(SELECTIONS)}")
    names = r.strings((*path, "list"))
    top = r.get((*path, "top"))
    if select == "list" and names is None:
        raise r.error((*path, "select"), "select = \"list\" needs list = [\"BTC\", ...]")
    if select != "list" and names is not None:
        raise r.error((*path, "list"), f"a list goes with select = \"list\", not {select!r}")
    if select == "top":
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 10_000:
            raise r.error((*path, "top"), f"select = \"top\" needs top = N, a whole number "
                          f"from 1 to 10000, got {_shown(top)}")
    elif top is not None:
        raise r.error((*path, "top"), "top goes with select = \"top\"")
    flags = {k: r.boolean((*path, k), False) for k in ("spot", "hip3", "delisted")}
    if select == "list" and any(flags.values()):
        key = next(k for k, v in flags.items() if v)
        raise r.error((*path, key), "goes with select = \"all\" or \"top\" (a list names "
                      "its markets)")
    return MarketsConfig(select, names or (), top if select == "top" else None, **flags)


# -- the file, the environment and the flags ----------------------------------------------

_URL_ENV = {"hyperliquid": "HYPERLAKE_HYPERLIQUID_URL", "hydromancer": "HYPERLAKE_HYDROMANCER_URL",
            "dwellir": "HYPERLAKE_DWELLIR_URL"}
_WEIGHT_ENV = {"hyperliquid": "HYPERLAKE_HYPERLIQUID_WEIGHT",
               "hydromancer": "HYPERLAKE_HYDROMANCER_WEIGHT"}


def environment(config: UpdateConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ``SourceSettings.from_env`` reads, with the file's values where the
    environment sets none (the environment overrides the file), and each key read from
    the variable the file names for it."""
    env = dict(environ)
    for name, source in config.sources.items():
        if source.url is not None:
            env.setdefault(_URL_ENV[name], source.url)
        if source.weight_per_minute is not None and name in _WEIGHT_ENV:
            env.setdefault(_WEIGHT_ENV[name], f"{source.weight_per_minute:g}")
        standard = REGISTRY[name].key_env
        if standard and source.key_env and not environ.get(standard) \
                and environ.get(source.key_env):
            env[standard] = environ[source.key_env]
    return env
