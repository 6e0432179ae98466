"""The project's words, typed: datasets, sources, severities and option values.

Plain ``Literal`` aliases and their tuples, no imports beyond ``typing``, so that
``hyperlake.cli`` can declare every command's choices without importing pyarrow,
httpx or the pipelines. A value that is not one of these words is a bug caught by
``mypy``, not a folder with a typo in its name.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

#: What the lake stores, one top-level folder each.
Dataset = Literal["candles", "funding", "trades", "asset_ctxs"]
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
#: The datasets whose partitions have no interval level (``<dataset>/market=…/date=…``).
WITHOUT_INTERVAL: frozenset[Dataset] = frozenset({"trades", "asset_ctxs"})
#: The datasets ``hyperlake verify`` checks (bars and funding).
VERIFIED: tuple[Dataset, ...] = ("candles", "funding")

#: Where rows come from: the exchange itself and the vendors that index it.
Source = Literal["hyperliquid", "hydromancer", "dwellir"]
SOURCES: tuple[Source, ...] = get_args(Source)

#: How much a verification finding weighs.
Severity = Literal["violation", "warning", "info"]

#: What a funding window that keeps answering HTTP 500 becomes (``--on-500``).
On500 = Literal["empty", "split", "skip-coin"]
ON_500_MODES: tuple[On500, ...] = get_args(On500)


def is_source(name: str) -> TypeGuard[Source]:
    return name in SOURCES


def is_dataset(name: str) -> TypeGuard[Dataset]:
    return name in DATASETS

#: The file formats ``hyperlake plot`` writes.
PlotFormat = Literal["png", "svg"]
PLOT_FORMATS: tuple[PlotFormat, ...] = get_args(PlotFormat)


def is_plot_format(name: str) -> TypeGuard[PlotFormat]:
    return name in PLOT_FORMATS
