"""Budgets the emulated services enforce: Hyperliquid-style weight per minute and
Dwellir-style requests per second. Both are token buckets on the monotonic clock."""

from __future__ import annotations

import time


class TokenBucket:
    """``capacity`` tokens, refilled at ``per_second``. A request needs ``cost``
    tokens available; charges after the fact may drive the balance negative,
    as Hyperliquid charges response-size weight after answering."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def try_take(self, cost: float) -> bool:
        self._refill()
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def charge(self, cost: float) -> None:
        self.tokens -= cost


class WeightLimiter:
    """Per-client weight budget (Hyperliquid: 1200 per minute per IP)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, client: str) -> TokenBucket:
        found = self._buckets.get(client)
        if found is None:
            found = self._buckets[client] = TokenBucket(self.per_minute, self.per_minute / 60)
        return found


def client_ip(address: str) -> str:
    """``127.0.0.1:53211`` -> ``127.0.0.1``; ``[::1]:80`` -> ``::1``."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    return host.strip("[]")
