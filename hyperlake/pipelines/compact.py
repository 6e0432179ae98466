"""The compaction stage: every checkpoint series into the Hive-partitioned lake."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from hyperlake.errors import UserError
from hyperlake.lake.checkpoints import Series
from hyperlake.lake.compaction import (
    CompactionStats,
    compact_group,
    quarantine_broken_partitions,
    remove_empty_jobs,
)
from hyperlake.lake.paths import LakePaths
from hyperlake.lake.store import Location
from hyperlake.schemas.datasets import DATASET_SPECS
from hyperlake.schemas.vocabulary import DATASETS, SOURCES, Dataset


@dataclass(frozen=True, kw_only=True)
class CompactJob:
    lake: Location
    datasets: tuple[Dataset, ...] = DATASETS
    precedence: tuple[str, ...] = ()  # preferred sources first; empty: latest fetch wins
    #: Only these (dataset, market, interval) groups (what a run touched); None: all.
    groups: frozenset[tuple[Dataset, str, str]] | None = None

    def wants(self, group: tuple[Dataset, str, str]) -> bool:
        return self.groups is None or group in self.groups


def validate_precedence(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise UserError(f"--prefer: unknown source {unknown[0]!r}; sources are "
                        f"{', '.join(SOURCES)}")
    return names


def discover_series(paths: LakePaths, dataset: Dataset) -> list[Series]:
    """Every (source, market, interval) with a checkpoint folder, from folder names."""
    return [Series(paths, key) for key in paths.checkpoint_keys(dataset)]


def _series_of(paths: LakePaths, job: CompactJob, dataset: Dataset) -> list[Series]:
    """The checkpoint series of ``dataset`` the job compacts."""
    return [s for s in discover_series(paths, dataset)
            if job.wants((dataset, s.key.market, s.key.interval))]


def run_compact(job: CompactJob) -> tuple[CompactionStats, float]:
    """Compact the job's groups under the lake's writer lock (the caller's, when this
    process already holds it)."""
    paths = LakePaths(job.lake)
    started = time.monotonic()
    stats = CompactionStats()
    with paths.writer_lock():  # re-entrant: update compacts under its own hold
        for dataset in job.datasets:
            if job.groups is not None and not any(g[0] == dataset for g in job.groups):
                continue
            paths.store.sweep(paths.coverages(dataset))  # a run killed mid-marker
            spec = DATASET_SPECS[dataset]
            for folder in _folders_to_sweep(paths, job, dataset):
                paths.store.sweep(folder)
            quarantine_broken_partitions(paths, dataset, stats, job.wants)
            groups: dict[tuple[str, str], list[Series]] = defaultdict(list)
            for series in _series_of(paths, job, dataset):
                paths.store.sweep(series.folder)
                remove_empty_jobs(paths.store, series.folder)
                groups[(series.key.market, series.key.interval)].append(series)
            for (market, interval), series_list in sorted(groups.items()):
                group = (dataset, market, interval)
                if compact_group(paths, group, series_list, spec, job.precedence, stats):
                    stats.groups.append(f"{dataset} {market} {interval}")
    return stats, time.monotonic() - started


def _folders_to_sweep(paths: LakePaths, job: CompactJob, dataset: Dataset) -> list[Location]:
    """Where interrupted partition swaps may have left temporaries: the whole dataset,
    or only the groups the job compacts (a walk of a year-long lake costs seconds)."""
    if job.groups is None:
        return [paths.dataset(dataset)]
    return [paths.series_folder(*group) for group in sorted(job.groups)
            if group[0] == dataset]
