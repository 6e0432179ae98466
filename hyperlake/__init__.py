"""hyperlake: a crash-safe Parquet data lake of Hyperliquid market data."""

__version__ = "0.1.0"
