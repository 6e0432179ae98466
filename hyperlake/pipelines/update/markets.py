"""Which markets a run keeps: an explicit list, every perpetual (optionally spot, HIP-3
dexes, delisted ones), or the top N of those by 24 h notional volume."""

from __future__ import annotations

from hyperlake.pipelines.universe import Market, Universe
from hyperlake.pipelines.update.config import MarketsConfig


def candidates(universe: Universe, config: MarketsConfig) -> list[Market]:
    """Every market ``all`` (or ``top`` before ranking) stands for."""
    kinds = {"perp"} | ({"hip3"} if config.hip3 else set()) | ({"spot"} if config.spot else set())
    return [m for m in universe.markets
            if m.kind in kinds and (config.delisted or not m.delisted)]


def hip3_dexes(markets: list[Market]) -> list[str]:
    """The HIP-3 dexes (``xyz`` of ``xyz:XYZ100``) among ``markets``, in order."""
    return list(dict.fromkeys(m.name.split(":", 1)[0] for m in markets if m.kind == "hip3"))


def select(universe: Universe, config: MarketsConfig,
           volume: dict[str, float] | None = None) -> list[Market]:
    """The markets of the configuration, in the exchange's order (``top``: by volume,
    highest first, ``volume`` being each market's day notional volume)."""
    if config.select == "list":
        return universe.resolve_many(config.names)
    pool = candidates(universe, config)
    if config.select == "all":
        return pool
    assert volume is not None and config.top is not None
    ranked = sorted(pool, key=lambda m: -volume.get(m.name, 0.0))
    return ranked[:config.top]
