"""Seeded fault decisions: which request gets which injected failure."""

from __future__ import annotations

import random

from hyperlake.emulator.config import GATEWAY_FAULT_KINDS, WS_FAULT_KINDS, FaultRule


class FaultPlan:
    """Draws, per request, whether a fault rule fires. One seeded RNG per server
    process, so a sequential client sees the same faults on every run."""

    def __init__(self, rules: tuple[FaultRule, ...], seed: int) -> None:
        self.rules = tuple(r for r in rules if r.kind not in GATEWAY_FAULT_KINDS)
        self._http_rules = tuple(r for r in self.rules if r.kind not in WS_FAULT_KINDS)
        self._rng = random.Random(seed)

    def pick(self, endpoint: str) -> FaultRule | None:
        """An HTTP fault for this request of ``endpoint``, or None."""
        for rule in self._http_rules:
            if rule.endpoint in (endpoint, "*") and self._rng.random() < rule.rate:
                return rule
        return None

    def pick_ws(self, kind: str) -> FaultRule | None:
        """A websocket fault of ``kind`` that fires now (checked once a second)."""
        for rule in self.rules:
            if rule.kind == kind and rule.endpoint in ("ws", "*") and (
                self._rng.random() < rule.rate
            ):
                return rule
        return None
