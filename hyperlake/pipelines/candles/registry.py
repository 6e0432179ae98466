"""The candle sources, registered in one place.

Each source declares what it is, once: its name, the intervals it serves, how deep
its history goes (a floor, or a horizon of the most recent N candles), whether it
serves the still-open bucket, the environment variable holding its API key, what
paces it, and the module that fetches from it. Everything that differs between
sources is read from here — validation, the rate options, the key check, which fetch
runs — so no other module asks ``if source == …``. Adding a source is a module with a
``fetch`` factory and one entry below.

This module stays light (no HTTP or Arrow import): the CLI reads it for its choices.
The fetch module is imported only when a job runs (``job.run_job``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hyperlake.errors import UserError
from hyperlake.schemas.exchange import (
    CANDLES_PER_WEIGHT,
    DWELLIR_FLOOR_MS,
    DWELLIR_PLANS,
    HYDROMANCER_WEIGHT,
    INFO_BASE_WEIGHT,
    NATIVE_HORIZON,
)
from hyperlake.schemas.intervals import (
    DWELLIR_INTERVALS,
    HYDROMANCER_INTERVALS,
    HYPERLIQUID_INTERVALS,
    bucket_start,
    is_aligned,
    next_bucket,
    shift_buckets,
)
from hyperlake.schemas.times import format_instant
from hyperlake.schemas.vocabulary import SOURCES, Source, is_source

#: The slowest pace worth running, and the fastest any contract or process reaches
#: (an enterprise key may exceed the public plans; one process tops out near 20k/s):
#: beyond these a rate is a typo, not a plan.
MIN_RATE = 0.1
MAX_RATE = 100_000


@dataclass(frozen=True, kw_only=True)
class CandleSource:
    name: Source
    intervals: tuple[str, ...]
    depth: str  # how far back it serves, in words, for messages
    fetch_module: str  # a module with ``fetch(job, settings) -> Fetch``
    key_env: str | None = None  # the environment variable holding its API key
    floor_ms: int | None = None  # the first bucket it can serve
    horizon: int | None = None  # it keeps only the most recent N candles of an interval
    serves_open_bucket: bool = True  # False: the still-open bucket is refused, not served
    plans: Mapping[str, int] | None = None  # request-rate ceilings by plan (--plan)
    default_plan: str | None = None
    #: What a request weighs in the source's budget (None: paced by rate, one candle a
    #: request), and one more per so many candles answered (None: a flat weight).
    request_weight: int | None = None
    candles_per_weight: int | None = None

    def answer_weight(self, candles: int) -> float:
        """What one request answering ``candles`` candles weighs (for plans)."""
        extra = candles // self.candles_per_weight if self.candles_per_weight else 0
        return float((self.request_weight or 0) + extra)

    def check(self, interval: str, start_ms: int, end_ms: int, now_ms: int) -> None:
        """Every rule that needs no network; one line naming the field when broken."""
        if interval not in self.intervals:
            raise UserError(f"--interval {interval!r}: {self.name} serves "
                            f"{', '.join(self.intervals)}")
        if start_ms >= end_ms:
            raise UserError("--start must be before --end")
        for name, value in (("--start", start_ms), ("--end", end_ms)):
            if not is_aligned(value, interval):
                earlier = bucket_start(value, interval)
                raise UserError(f"{name} {format_instant(value)} is not aligned to {interval}: "
                                f"use {format_instant(earlier)} or "
                                f"{format_instant(next_bucket(earlier, interval))}")
        if self.floor_ms is not None and start_ms < self.floor_ms:
            raise UserError(f"--start {format_instant(start_ms)} is before {self.title}'s "
                            f"archive floor {format_instant(self.floor_ms)}")
        if not self.serves_open_bucket:
            self._check_closed(interval, end_ms, now_ms)
        if end_ms > now_ms:
            raise UserError(f"--end {format_instant(end_ms)} is in the future (now is "
                            f"{format_instant(now_ms)})")
        if self.horizon is not None:
            self._check_horizon(interval, start_ms, now_ms)

    def _check_closed(self, interval: str, end_ms: int, now_ms: int) -> None:
        open_bucket = bucket_start(now_ms, interval)
        if end_ms > open_bucket:
            raise UserError(f"--end {format_instant(end_ms)} reaches the open {interval} bucket "
                            f"(it opened at {format_instant(open_bucket)}; now is "
                            f"{format_instant(now_ms)}): end at {format_instant(open_bucket)} "
                            "or earlier")

    def earliest(self, interval: str, now_ms: int) -> int | None:
        """The first bucket this source can serve now: its archive floor, or the oldest
        of the most recent ``horizon`` candles; None when it goes back to the start."""
        bounds = [] if self.floor_ms is None else [self.floor_ms]
        if self.horizon is not None:
            bounds.append(shift_buckets(bucket_start(now_ms, interval), interval,
                                        -(self.horizon - 1)))
        return max(bounds) if bounds else None

    def _check_horizon(self, interval: str, start_ms: int, now_ms: int) -> None:
        earliest = self.earliest(interval, now_ms)
        assert earliest is not None and self.horizon is not None
        if start_ms < earliest:
            deeper = " or ".join(f"{s.name} ({s.depth})" for s in REGISTRY.values()
                                 if s.horizon is None)
            raise UserError(
                f"--start {format_instant(start_ms)}: {self.name} keeps only the most recent "
                f"{self.horizon} {interval} candles, so the earliest it can serve now is "
                f"{format_instant(earliest)}; start there, or use --source {deeper}")

    def rate(self, rate: float | None, plan: str | None) -> float | None:
        """Requests per second from ``--rate`` or ``--plan`` (sources paced by a plan
        ceiling); None for sources paced by a shared weight budget."""
        if self.plans is None:
            return None
        if rate is not None and plan is not None:
            raise UserError("give --rate or --plan, not both")
        if rate is not None:
            if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
                raise UserError(f"--rate {rate:g}: give requests per second from {MIN_RATE:g} "
                                f"to {MAX_RATE:,} (plans: " + ", ".join(
                                    f"{name} {cap}" for name, cap in self.plans.items()) + ")")
            return rate
        chosen = (self.default_plan or "") if plan is None else plan
        if chosen not in self.plans:
            raise UserError(f"--plan {chosen!r}: expected one of {', '.join(self.plans)}")
        return float(self.plans[chosen])

    @property
    def title(self) -> str:
        return self.name.capitalize()


HYPERLIQUID = CandleSource(
    name="hyperliquid", intervals=HYPERLIQUID_INTERVALS, depth="the most recent 5000",
    horizon=NATIVE_HORIZON, fetch_module="hyperlake.pipelines.candles.hyperliquid",
    request_weight=INFO_BASE_WEIGHT, candles_per_weight=CANDLES_PER_WEIGHT)
HYDROMANCER = CandleSource(
    name="hydromancer", intervals=HYDROMANCER_INTERVALS, depth="deep history",
    key_env="HYPERLAKE_HYDROMANCER_KEY", fetch_module="hyperlake.pipelines.candles.hydromancer",
    request_weight=HYDROMANCER_WEIGHT)
DWELLIR = CandleSource(
    name="dwellir", intervals=DWELLIR_INTERVALS, depth="1s/1m/5m since 2025-07-27",
    key_env="HYPERLAKE_DWELLIR_KEY", floor_ms=DWELLIR_FLOOR_MS, serves_open_bucket=False,
    plans=DWELLIR_PLANS, default_plan="free", fetch_module="hyperlake.pipelines.candles.dwellir")

REGISTRY: dict[Source, CandleSource] = {s.name: s for s in (HYPERLIQUID, HYDROMANCER, DWELLIR)}
assert tuple(REGISTRY) == SOURCES, "every source is registered, in the vocabulary's order"


def source(name: str) -> CandleSource:
    """The registered source called ``name``; a one-line error for any other name."""
    if not is_source(name):
        raise UserError(f"--source {name!r}: expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]
