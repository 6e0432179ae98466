"""The commented example configuration ``hyperlake init`` writes (it must validate:
``tests/pipelines/test_update_config.py`` loads it)."""

EXAMPLE = '''\
# hyperlake.toml: what `hyperlake update` keeps current (run it from cron or a timer).
# Environment variables override this file, and flags override both:
#   hyperlake update --print-config     shows the effective configuration (keys masked)
#   hyperlake update --dry-run          shows what the next run would fetch

# The lake root ($HYPERLAKE_LAKE and --lake override it).
lake = "data"

# A healthchecks.io-style URL: /start, success, /fail ($HYPERLAKE_PING_URL, --ping-url).
# ping_url = "https://hc-ping.com/your-check-uuid"

# Sources. Keys never go in this file: name the environment variable that holds each.
# Hyperliquid needs no key; its weight budget (1200/min per IP) is shared by every
# hyperlake process on the machine.
[sources.hyperliquid]
# url = "https://api.hyperliquid.xyz"        # $HYPERLAKE_HYPERLIQUID_URL overrides
# weight_per_minute = 1200

# Hydromancer: deep history (beyond Hyperliquid's most recent 5000 candles), 1s candles.
# [sources.hydromancer]
# key_env = "HYPERLAKE_HYDROMANCER_KEY"

# Dwellir: 1s/1m/5m since 2025-07-27. Without a key in the environment, a `dwellir`
# CLI on PATH is asked for one (key_name chooses when several are enabled).
# [sources.dwellir]
# key_env = "HYPERLAKE_DWELLIR_KEY"
# plan = "free"                               # free, developer, growth, scale (or rate = N)
# key_name = "my-key"

# Markets: select = "list" (the names below), "all" (every perpetual) or "top" (the top
# N by 24 h notional volume). spot, hip3 (HIP-3 dexes) and delisted widen all / top.
[markets]
select = "list"
list = ["BTC", "ETH", "SOL"]
# select = "top"
# top = 20
# spot = false
# hip3 = false
# delisted = false

# Candles: per source, the intervals to keep and where history starts (a date, an ISO
# time, or a lookback such as "90d"; default candles.start). A hole older than a
# source can serve is taken from deep_sources (default: every configured source
# without a horizon), or else left in the gap ledger.
[candles]
start = "30d"
# deep_sources = ["hydromancer", "dwellir"]

[candles.hyperliquid]
intervals = ["1m", "1h", "1d"]
# start = "2026-01-01"

# [candles.dwellir]
# intervals = ["1m"]
# start = "2025-08-01"

# Hourly funding of every selected perpetual.
[funding]
enabled = true
start = "90d"

# One snapshot of the exchange's asset contexts per run (mark, oracle, mid, open
# interest, funding, premium, impact prices, day volumes): markets = "configured"
# (the selected markets) or "all" (every market of the dexes asked).
[asset_ctxs]
enabled = true
markets = "configured"

# After fetching: compact what changed into the lake, then verify it.
[after]
compact = true
verify = true
'''
