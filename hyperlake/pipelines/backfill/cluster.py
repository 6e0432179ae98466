"""The tasks on a ``dask.distributed`` cluster (the ``dask`` extra: ``distributed``).

Every task is submitted at once with its inputs as futures, so the scheduler runs
each as soon as what it needs is done, on whichever worker is free; results come
back in the order they finish (``as_completed``). A worker that dies mid-task is the
scheduler's to handle: the task runs again elsewhere (up to Dask's
``distributed.scheduler.allowed-failures``, then the task fails with
``KilledWorker``). The tasks are idempotent (``tasks``), so a rerun lands what one
run lands.

Keys are the tasks' names, which carry the run's id: a new run never adopts a task
of an orphaned run that some worker is still finishing. On a stop (Ctrl-C), the
futures are cancelled; a task already running finishes its current request and stops
at its next commit once the driver has released the lake (``lake.lock.RunGrant``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hyperlake.errors import UserError
from hyperlake.pipelines.backfill.budgets import BudgetFacts, Published
from hyperlake.pipelines.backfill.executors import Failed, OnDone, OnProgress
from hyperlake.pipelines.backfill.tasks import Task, TaskContext, run_task

if TYPE_CHECKING:
    from distributed import Client

EXTRA = "pip install 'hyperlake[dask]'"


def configured_scheduler() -> str | None:
    """Dask's own setting (``scheduler-address``, e.g. from ``$DASK_SCHEDULER_ADDRESS``
    or a Dask config file), when the extra is installed; else None."""
    if importlib.util.find_spec("dask") is None:
        return None
    import dask.config

    address = dask.config.get("scheduler-address", None)
    return str(address) if address else None


def connect(address: str) -> Client:
    """A client of the scheduler at ``address``; one line (exit 2) when the extra is
    missing or the scheduler cannot be reached (within Dask's connect timeout,
    ``distributed.comm.timeouts.connect``)."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler {address}: running on a Dask cluster needs the dask "
                        f"extra: {EXTRA}") from None
    try:
        return Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--scheduler {address}: cannot reach the Dask scheduler ({reason}); "
                        "start it (dask scheduler) or give its address") from None
    except ValueError as exc:  # a malformed address
        raise UserError(f"--scheduler {address}: {exc}") from None


class DaskExecutor:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.where = str(client.scheduler_info().get("address", "the scheduler"))
        link = client.dashboard_link if importlib.util.find_spec("bokeh") else None
        self.dashboard: str | None = str(link) if link else None
        self._published: Published | None = None

    def threads(self) -> int:
        nthreads: dict[str, int] = self.client.nthreads()
        return max(1, sum(nthreads.values()))

    def publish(self, facts: Mapping[str, BudgetFacts], run_id: str) -> str | None:
        self._published = Published(self.client, facts, run_id)
        return self._published.name

    def unpublish(self) -> None:
        if self._published is not None:
            self._published.close()
            self._published = None

    def run(self, tasks: Sequence[Task], ctx: TaskContext, on_done: OnDone,
            on_progress: OnProgress) -> None:
        from distributed import as_completed

        futures: dict[str, Any] = {}
        for task in tasks:
            futures[task.name] = self.client.submit(
                run_task, task, ctx, *[futures[name] for name in task.deps],
                key=task.name, pure=False, retries=0)
        by_key = {task.name: task for task in tasks}
        finished = False
        try:
            for future in as_completed(list(futures.values()), loop=self.client.loop):
                task = by_key[future.key]
                if future.status == "finished":
                    on_done(task, future.result())
                else:
                    on_done(task, Failed(f"{task.name}: {_reason(future)}"))
            finished = True
        finally:
            if not finished:
                self.client.cancel(list(futures.values()))

    def close(self) -> None:
        self.unpublish()
        self.client.close()


def _reason(future: Any) -> str:
    """One line for a failed (or cancelled) future: its exception's type and message."""
    if future.status == "cancelled":
        return "cancelled"
    exc = future.exception()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
