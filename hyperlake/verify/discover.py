"""Which series the lake holds, and which of them the user asked to verify."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from hyperlake.errors import UserError
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from hyperlake.schemas.intervals import ALL_INTERVALS
from hyperlake.schemas.names import NameIndex
from hyperlake.schemas.vocabulary import Dataset
from hyperlake.verify.report import SeriesId


def discover(paths: LakePaths, datasets: Iterable[Dataset]) -> dict[SeriesId, set[str]]:
    """Every series with partitions, checkpoint parts, coverage or ledger entries, and
    the sources whose state files mention it."""
    found: dict[SeriesId, set[str]] = defaultdict(set)
    for dataset in datasets:
        for market, interval in paths.lake_series(dataset):
            if paths.partitions(dataset, market, interval):
                found.setdefault(SeriesId(dataset, market, interval), set())
        for key in paths.state_keys(dataset):
            series = Series(paths, key)
            if series.covered() or series.gaps():
                found[SeriesId(dataset, key.market, key.interval)].add(key.source)
    return dict(found)


def _listing(names: Iterable[str], limit: int = 20) -> str:
    ordered = list(names)
    shown = ", ".join(ordered[:limit])
    return shown if len(ordered) <= limit else f"{shown}, … ({len(ordered)} in all)"


def _resolve_market(text: str, markets: set[str], lake: Location) -> str:
    """Exact name first, then a unique case-insensitive match (``btc`` → ``BTC``)."""
    try:
        return NameIndex(sorted(markets)).match(text)
    except LookupError:
        raise UserError(f"--market {text!r}: not in the lake {lake}; it has "
                        f"{_listing(sorted(markets))}") from None


def _interval_order(name: str) -> tuple[int, str]:
    return (ALL_INTERVALS.index(name) if name in ALL_INTERVALS else len(ALL_INTERVALS), name)


def select(ids: Iterable[SeriesId], market: str | None, interval: str | None,
           lake: Location) -> list[SeriesId]:
    """The series ``--market`` and ``--interval`` ask for; UserError when the lake has
    none, listing what it has."""
    chosen = sorted(ids, key=lambda s: (s.dataset, s.market, _interval_order(s.interval)))
    if market is not None:
        name = _resolve_market(market, {s.market for s in chosen}, lake)
        chosen = [s for s in chosen if s.market == name]
    if interval is not None:
        have = sorted({s.interval for s in chosen}, key=_interval_order)
        if interval not in have:
            where = f" for {chosen[0].market}" if market is not None else ""
            raise UserError(f"--interval {interval!r}: not in the lake {lake}{where}; it has "
                            f"{_listing(have)}")
        chosen = [s for s in chosen if s.interval == interval]
    return chosen
