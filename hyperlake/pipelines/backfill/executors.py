"""Where a backfill's tasks run: in this process, or on a Dask cluster (``cluster``).

Both run the same task objects through the same ``run`` and report each task's end
the same way, so the driver neither knows nor cares which one it has. A task that
fails is reported with its error; the tasks that need its result are not run (they
fail with it), everything else goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hyperlake.errors import HyperlakeError
from hyperlake.pipelines.backfill.budgets import BudgetFacts
from hyperlake.pipelines.backfill.tasks import Task, TaskContext, progress_of


@dataclass(frozen=True)
class Failed:
    """A task's error (its own, or that of a task it needed)."""

    message: str


#: ``on_done(task, result)``: a task ended, with its result or ``Failed``.
OnDone = Callable[[Task, object], None]
#: ``on_progress(task, units done)``: progress inside a task (where it can be seen).
OnProgress = Callable[[Task, int], None]


class Executor(Protocol):
    #: Where the tasks run, for the summary: "in-process" or the scheduler's address.
    where: str
    #: The Dask dashboard's link, when there is one to show.
    dashboard: str | None

    def threads(self) -> int:
        """How many tasks can run at once."""
        ...

    def publish(self, facts: Mapping[str, BudgetFacts], run_id: str) -> str | None:
        """Share the sources' budgets among the tasks (``budgets``); the name tasks find
        them under, or None where tasks pace as every command does."""
        ...

    def unpublish(self) -> None: ...

    def run(self, tasks: Sequence[Task], ctx: TaskContext, on_done: OnDone,
            on_progress: OnProgress) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """The tasks one after another in this process, in the plan's order (each after the
    tasks it needs), reporting progress inside extracts as they fetch."""

    where = "in-process"
    dashboard: str | None = None

    def threads(self) -> int:
        return 1

    def publish(self, facts: Mapping[str, BudgetFacts], run_id: str) -> str | None:
        return None  # one task at a time: the machine's pacing holds

    def unpublish(self) -> None:
        pass

    def run(self, tasks: Sequence[Task], ctx: TaskContext, on_done: OnDone,
            on_progress: OnProgress) -> None:
        results: dict[str, object] = {}
        for task in tasks:
            inputs = [results[name] for name in task.deps]
            failed = next((r for r in inputs if isinstance(r, Failed)), None)
            if failed is not None:
                result: object = failed
            else:
                try:
                    result = task.run(ctx, inputs, progress_of(on_progress, task))
                except HyperlakeError as exc:  # reported like a cluster's failed task
                    result = Failed(f"{task.name}: {exc}")
            results[task.name] = result
            on_done(task, result)

    def close(self) -> None:
        pass
