"""The mutable state of one emulator server process: clock, budgets, faults, counters."""

from __future__ import annotations

import dataclasses
from collections import Counter

from hyperlake.emulator.config import ClockConfig, EmulatorConfig, FaultRule
from hyperlake.emulator.faults import FaultPlan
from hyperlake.emulator.market import Market
from hyperlake.emulator.ratelimit import HeldPerIp


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        config.validate()
        self.config = config
        self.market = Market(config.seed)
        self.universe = self.market.universe
        self.clock = config.clock
        self.faults = FaultPlan(config.faults, config.fault_seed)
        self.stats: Counter[str] = Counter()
        self.ws_connections = HeldPerIp(config.ws_max_connections)
        self.ws_subscriptions = HeldPerIp(config.ws_max_subscriptions)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def set_clock(self, clock: ClockConfig) -> None:
        self.clock = clock

    def set_faults(self, rules: tuple[FaultRule, ...], seed: int) -> None:
        for rule in rules:
            rule.validate()
        self.config = dataclasses.replace(self.config, faults=rules, fault_seed=seed)
        self.faults = FaultPlan(rules, seed)
