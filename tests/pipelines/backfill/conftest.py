"""A Dask cluster on loopback for the backfill tests: two worker processes, one thread
each, as the issue's benchmark has them (started once for the session). It starts after
the loopback S3 server, so every worker (and every nanny, which starts a killed worker
again) has the server's endpoint and keys in its environment: none can ask AWS."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import distributed
import pytest

from tests.s3_support import S3Server


@pytest.fixture(scope="session")
def cluster(s3_server: S3Server) -> Iterator[distributed.LocalCluster]:
    import dask

    # A dead worker's source lease returns within seconds (the scheduler reads these
    # as it starts; the backfill itself lowers the lease timeout of what it creates).
    with dask.config.set({"distributed.scheduler.locks.lease-validation-interval": "1s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=":0",
                                     silence_logs=logging.CRITICAL) as local:
        yield local


@pytest.fixture
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
