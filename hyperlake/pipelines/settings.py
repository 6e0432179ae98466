"""Where the sources are and how to authenticate: environment variables only.

Keys never go on a command line (they would show in ``ps`` and shell history).

| variable | default |
|---|---|
| HYPERLAKE_HYPERLIQUID_URL | https://api.hyperliquid.xyz |
| HYPERLAKE_HYDROMANCER_URL | https://api.hydromancer.xyz |
| HYPERLAKE_HYDROMANCER_KEY | (required for --source hydromancer) |
| HYPERLAKE_DWELLIR_URL | https://api-hyperliquid-index.n.dwellir.com |
| HYPERLAKE_DWELLIR_KEY | (required for --source dwellir) |
| HYPERLAKE_CA_BUNDLE | the system's CAs (set it to the emulator's CA for its TLS port) |
| HYPERLAKE_HYPERLIQUID_WEIGHT | 1200 (weight/minute per IP, shared by all hyperlake processes) |
| HYPERLAKE_HYDROMANCER_WEIGHT | 1200 (weight per minute for the key) |
| HYPERLAKE_NOW | wall clock; an ISO time pins "now" (to match a frozen emulator clock) |
| HYPERLAKE_BACKOFF_BASE | 0.25 (seconds; retries wait up to base * 2^attempt, full jitter) |
| HYPERLAKE_MAX_ATTEMPTS | 6 (attempts per request before it goes to the gap ledger) |
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from hyperlake.errors import UserError
from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.net.retry import Backoff
from hyperlake.schemas.times import parse_instant


@dataclass(frozen=True)
class SourceSettings:
    hyperliquid_url: str = "https://api.hyperliquid.xyz"
    hydromancer_url: str = "https://api.hydromancer.xyz"
    hydromancer_key: str | None = None
    dwellir_url: str = "https://api-hyperliquid-index.n.dwellir.com"
    dwellir_key: str | None = None
    ca_bundle: str | None = None
    hyperliquid_weight: float = 1200.0
    hydromancer_weight: float = 1200.0
    pinned_now_ms: int | None = None
    backoff_base: float = 0.25
    max_attempts: int = 6

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SourceSettings:
        env = os.environ if env is None else env
        defaults = cls()
        now_text = env.get("HYPERLAKE_NOW")
        return cls(
            hyperliquid_url=env.get("HYPERLAKE_HYPERLIQUID_URL", defaults.hyperliquid_url),
            hydromancer_url=env.get("HYPERLAKE_HYDROMANCER_URL", defaults.hydromancer_url),
            hydromancer_key=env.get("HYPERLAKE_HYDROMANCER_KEY") or None,
            dwellir_url=env.get("HYPERLAKE_DWELLIR_URL", defaults.dwellir_url),
            dwellir_key=env.get("HYPERLAKE_DWELLIR_KEY") or None,
            ca_bundle=env.get("HYPERLAKE_CA_BUNDLE") or None,
            hyperliquid_weight=_positive(env, "HYPERLAKE_HYPERLIQUID_WEIGHT",
                                         defaults.hyperliquid_weight),
            hydromancer_weight=_positive(env, "HYPERLAKE_HYDROMANCER_WEIGHT",
                                         defaults.hydromancer_weight),
            pinned_now_ms=parse_instant(now_text, "HYPERLAKE_NOW") if now_text else None,
            backoff_base=_positive(env, "HYPERLAKE_BACKOFF_BASE", defaults.backoff_base),
            max_attempts=int(_positive(env, "HYPERLAKE_MAX_ATTEMPTS", defaults.max_attempts)),
        )

    def hyperliquid_budget(self) -> SharedWeightBudget:
        """Hyperliquid's weight per IP, shared by every hyperlake process on the machine."""
        host = urlsplit(self.hyperliquid_url).netloc
        return SharedWeightBudget(f"hyperliquid@{host}", self.hyperliquid_weight)

    def hydromancer_budget(self) -> SharedWeightBudget:
        host = urlsplit(self.hydromancer_url).netloc
        return SharedWeightBudget(f"hydromancer@{host}", self.hydromancer_weight)

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, max_attempts=self.max_attempts)

    def now_ms(self) -> int:
        return self.pinned_now_ms if self.pinned_now_ms is not None else int(time.time() * 1000)

    def secrets(self) -> list[str]:
        return [k for k in (self.hydromancer_key, self.dwellir_key) if k]

    def require(self, name: str, value: str | None) -> str:
        if not value:
            raise UserError(f"{name} is not set: export {name}=<your API key>")
        return value

    def verify(self) -> str | bool:
        """httpx's ``verify``: the CA bundle when one is configured."""
        return self.ca_bundle or True


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name}: {text!r} is not a number") from None
    if value <= 0:
        raise UserError(f"{name}: must be positive")
    return value
