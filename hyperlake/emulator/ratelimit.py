"""Budgets the emulated services enforce: Hyperliquid-style weight per minute and
Dwellir-style requests per second. Both are token buckets on the monotonic clock."""

from __future__ import annotations

from hyperlake.net.pacing import TokenBucket


class WeightLimiter:
    """Per-client weight budget (Hyperliquid: 1200 per minute per IP)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, client: str) -> TokenBucket:
        found = self._buckets.get(client)
        if found is None:
            found = self._buckets[client] = TokenBucket(self.per_minute / 60, self.per_minute)
        return found


def client_ip(address: str) -> str:
    """``127.0.0.1:53211`` -> ``127.0.0.1``; ``[::1]:80`` -> ``::1``."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    return host.strip("[]")
