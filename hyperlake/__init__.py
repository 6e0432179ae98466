"""hyperlake: a crash-safe Parquet data lake of Hyperliquid market data.

The query API is re-exported here: ``hyperlake.connect`` (DuckDB views over the
lake), ``hyperlake.scan_candles``, ``hyperlake.scan_funding``,
``hyperlake.load_candles`` and ``hyperlake.features`` (polars), and the series behind
``hyperlake plot``'s charts: ``hyperlake.funding_series``, ``hyperlake.heatmap_series``,
``hyperlake.candle_series`` (polars, no matplotlib). They are imported on first use, so
``import hyperlake`` (and every CLI command) does not pay for DuckDB and polars
(~0.35 s) unless it queries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlake.query.catalog import connect
    from hyperlake.query.loaders import features, load_candles, scan_candles, scan_funding
    from hyperlake.query.plot_series import candle_series, funding_series, heatmap_series

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "connect": "hyperlake.query.catalog",
    "scan_candles": "hyperlake.query.loaders",
    "scan_funding": "hyperlake.query.loaders",
    "load_candles": "hyperlake.query.loaders",
    "features": "hyperlake.query.loaders",
    "funding_series": "hyperlake.query.plot_series",
    "heatmap_series": "hyperlake.query.plot_series",
    "candle_series": "hyperlake.query.plot_series",
}

__all__ = ["__version__", "candle_series", "connect", "features", "funding_series",
           "heatmap_series", "load_candles", "scan_candles", "scan_funding"]


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hyperlake' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
