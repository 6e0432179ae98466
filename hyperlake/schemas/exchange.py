"""Facts about the exchange and its vendors: dates, depths, limits and weights.

They describe the world, not our code, so they live in one place that the pipelines,
verification and the bundled emulator all read (the emulator must behave like the
exchange, the product must expect what the exchange does). Sources: the exchange's
and the vendors' documentation and the recorded answers in ``tests/fixtures``.
"""

from __future__ import annotations

#: The exchange's first listings (2023-03-01T00:00:00Z): no candle, trade or funding
#: exists before. A span starting earlier is clamped here (with a one-line notice).
HISTORY_FROM_MS = 1_677_628_800_000
#: Funding has been paid every hour since 2023-06-08T00:00:00Z, every 8 hours before.
HOURLY_FUNDING_FROM_MS = 1_686_182_400_000
#: ``fundingHistory`` answers at most this many rows; page on with the last time + 1.
FUNDING_PAGE_ROWS = 500

#: ``candleSnapshot`` answers at most this many candles, and only the most recent this
#: many of an interval exist on Hyperliquid itself (Hydromancer keeps deeper history).
SNAPSHOT_MAX_CANDLES = 5000
NATIVE_HORIZON = SNAPSHOT_MAX_CANDLES

#: Hyperliquid's weight budget per IP and minute, and what an /info request weighs:
#: a base, plus one per so many candles or funding rows answered.
HYPERLIQUID_WEIGHT_PER_MINUTE = 1200
INFO_BASE_WEIGHT = 20
CANDLES_PER_WEIGHT = 60
FUNDING_ROWS_PER_WEIGHT = 20
#: Hydromancer charges a flat weight per request against its own budget per key.
HYDROMANCER_WEIGHT = 20
HYDROMANCER_WEIGHT_PER_MINUTE = 1200

#: Dwellir's archive begins here (2025-07-27T08:00:00Z); earlier buckets answer 400.
DWELLIR_FLOOR_MS = 1_753_603_200_000
#: Dwellir plan ceilings in requests per second (404s count), in ``--plan``'s order.
DWELLIR_PLANS: dict[str, int] = {"free": 20, "developer": 100, "growth": 500, "scale": 5000}
