"""``hyperlake backfill``: a large job as small, idempotent tasks, on a Dask cluster or
in this process.

- ``plan``: the tasks, from the configuration ``update`` reads and the lake's files;
- ``tasks``: what each task does, through the lake's own APIs, under the run's grant;
- ``budgets``: the sources' limits, shared by the tasks of a cluster;
- ``executors`` / ``cluster``: where the tasks run (this process, or ``distributed``);
- ``run``: the driver, which holds the lake's writer lock for the whole job.
"""

#: The stages of a backfill, in the order they run.
STAGES = ("extract", "compact", "verify")
