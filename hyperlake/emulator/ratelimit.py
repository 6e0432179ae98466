"""Budgets the emulated services enforce: Hyperliquid-style weight per minute and
Dwellir-style requests per second (token buckets on the monotonic clock), and the
websocket's per-IP ceilings on what a client holds at once (connections, subscriptions)."""

from __future__ import annotations

from collections import Counter

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


class HeldPerIp:
    """How many of something each client IP holds at once, against one ceiling."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    def try_take(self, ip: str) -> bool:
        """Take one for ``ip``; False (and nothing taken) when it holds the limit."""
        if self._held[ip] >= self.limit:
            return False
        self._held[ip] += 1
        return True

    def give_back(self, ip: str, count: int = 1) -> None:
        self._held[ip] -= count
        if self._held[ip] <= 0:
            del self._held[ip]

    def held(self, ip: str) -> int:
        return self._held[ip]


def client_ip(address: str) -> str:
    """``127.0.0.1:53211`` -> ``127.0.0.1``; ``[::1]:80`` -> ``::1``."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    return host.strip("[]")
