"""Candle extraction: ``registry`` declares every source once, ``job`` runs one market
and interval through the extract runner, one module fetches from each source
(``hyperliquid`` and ``hydromancer`` page ``candleSnapshot`` through ``snapshot``;
``dwellir`` shards one-candle requests over worker processes)."""
