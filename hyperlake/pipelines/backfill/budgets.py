"""Source limits that hold for the sum of a cluster's tasks.

A source's limit is per IP (Hyperliquid's weight), or per key (a Dwellir plan's
requests per second, Hydromancer's weight per minute) — never per process. So on a
cluster each budget is cut into ``K`` equal shares, one per lease of a named
``distributed.Semaphore`` with ``K`` leases: a task takes a lease for as long as it
fetches and paces itself at ``budget / K`` with the same pacing every fetch already
uses (a ``TokenBucket`` for a rate, a ``SharedWeightBudget`` for weight). The sum of
the shares being paced at any instant is at most the budget, by construction: no
central token server, no round trip to the scheduler per request. The facts (budget,
``K``, the semaphore's name) are published once by the driver in a
``distributed.Variable`` that tasks read.

A weight share starts **empty**: the lease's previous holder may have spent its
share's burst a moment ago, and the server's bucket has not refilled it yet; a share
that starts empty can never take more than the server has refilled. (A rate share
keeps its small burst: 5 % of a second, as every Dwellir worker's.)

A worker that dies keeps its lease until the scheduler notices that it stopped
refreshing it: ``LEASE_TIMEOUT`` (lowered from Dask's 30 s) plus the scheduler's
``distributed.scheduler.locks.lease-validation-interval``. Meanwhile the budget is
under-used, the safe direction. More machines behind one egress IP do not buy more
Hyperliquid weight: the semaphore is global to the scheduler.

Without a cluster (``budgets`` None) nothing here applies: tasks run one at a time
in the backfill's own process and pace as every command does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hyperlake.net.pacing import SharedWeightBudget
from hyperlake.pipelines.candles.registry import REGISTRY
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.vocabulary import is_source

if TYPE_CHECKING:
    from distributed import Client

#: How long a lease outlives its last refresh (its holder refreshes every fifth of it).
LEASE_TIMEOUT = "5s"
LEASE_TIMEOUT_KEY = "distributed.scheduler.locks.lease-timeout"
Kind = Literal["weight", "rate"]

#: The budgets paid in weight, and the setting each one's size is kept in.
WEIGHT_SETTINGS: dict[str, str] = {"hyperliquid": "hyperliquid_weight",
                                   "hydromancer": "hydromancer_weight"}
_WEIGHT_BUDGET: dict[str, Callable[[SourceSettings], SharedWeightBudget]] = {
    "hyperliquid": SourceSettings.hyperliquid_budget,
    "hydromancer": SourceSettings.hydromancer_budget,
}


@dataclass(frozen=True)
class BudgetFacts:
    """One budget of the run: whose, how large, in how many shares, under which name."""

    payer: str  # the source whose budget pays (funding is paid from hyperliquid's)
    kind: Kind  # weight per minute, or requests per second
    amount: float
    leases: int  # K
    semaphore: str

    def share(self) -> float:
        return self.amount / self.leases

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def budget_facts(settings: SourceSettings, rates: Mapping[str, float],
                 tasks_by_payer: Mapping[str, int], threads: int,
                 run_id: str) -> dict[str, BudgetFacts]:
    """The run's budgets: one per payer that has tasks, each in ``K`` shares, ``K`` the
    smaller of the cluster's threads and the payer's tasks (a share nobody can hold
    would only be wasted). ``rates``: requests per second of the rate-paced sources."""
    facts = {}
    for payer, count in sorted(tasks_by_payer.items()):
        leases = max(1, min(threads, count))
        if payer in WEIGHT_SETTINGS:
            amount = float(getattr(settings, WEIGHT_SETTINGS[payer]))
            facts[payer] = BudgetFacts(payer, "weight", amount, leases,
                                       _semaphore_name(payer, settings, run_id))
        else:
            facts[payer] = BudgetFacts(payer, "rate", rates[payer], leases,
                                       _semaphore_name(payer, settings, run_id))
    return facts


def _semaphore_name(payer: str, settings: SourceSettings, run_id: str) -> str:
    """Named for the budget (the key's hash for a keyed source, never the key) and
    the run, so a new run's shares never count an orphaned run's leases as its own."""
    env = REGISTRY[payer].key_env if is_source(payer) else None
    key = settings.key(env) if env else None
    owner = hashlib.sha256(key.encode()).hexdigest()[:12] if key else "ip"
    return f"hyperlake-{payer}-{owner}-{run_id[:12]}"


def variable_name(run_id: str) -> str:
    return f"hyperlake-budgets-{run_id}"


class Published:
    """The run's budgets on the cluster: the semaphores registered (with the short lease
    timeout) and the facts in a Variable; ``close`` removes both."""

    def __init__(self, client: Client, facts: Mapping[str, BudgetFacts], run_id: str) -> None:
        import dask
        from distributed import Semaphore, Variable

        self.name = variable_name(run_id)
        self._semaphores = []
        with dask.config.set({LEASE_TIMEOUT_KEY: LEASE_TIMEOUT}):
            for fact in facts.values():
                semaphore = Semaphore(max_leases=fact.leases, name=fact.semaphore,
                                      scheduler_rpc=client.scheduler, loop=client.loop)
                semaphore.register()
                self._semaphores.append(semaphore)
        self._variable = Variable(self.name, client=client)
        self._variable.set({payer: fact.as_dict() for payer, fact in facts.items()})

    def close(self) -> None:
        for semaphore in self._semaphores:
            with contextlib.suppress(OSError, TimeoutError):  # the cluster may be gone
                semaphore.close()
        with contextlib.suppress(OSError, TimeoutError):
            self._variable.delete()


_FACTS: dict[str, dict[str, BudgetFacts]] = {}  # read once per worker process and run


def _facts(name: str) -> dict[str, BudgetFacts]:
    found = _FACTS.get(name)
    if found is None:
        from distributed import Variable

        raw = Variable(name).get(timeout=60)
        found = _FACTS[name] = {payer: BudgetFacts(**fact) for payer, fact in raw.items()}
    return found


@contextlib.contextmanager
def paced(settings: SourceSettings, budgets: str | None, payer: str,
          rate: float | None) -> Iterator[tuple[SourceSettings, float | None]]:
    """The settings and rate a task fetches with: as given without a cluster; on a
    cluster, one lease of the payer's budget held for the block, and its share."""
    if budgets is None:
        yield settings, rate
        return
    import dask
    from distributed import Semaphore

    facts = _facts(budgets)[payer]
    with dask.config.set({LEASE_TIMEOUT_KEY: LEASE_TIMEOUT}):  # refreshed often enough
        semaphore = Semaphore(max_leases=facts.leases, name=facts.semaphore)
    with semaphore:
        if facts.kind == "rate":
            yield settings, facts.share()
            return
        with _weight_share(settings, facts) as shared:
            yield shared, rate


@contextlib.contextmanager
def _weight_share(settings: SourceSettings, facts: BudgetFacts) -> Iterator[SourceSettings]:
    """Settings whose budget of ``facts.payer`` is this lease's share, paced on its own
    and starting empty (see the module's docstring); its file goes with the lease."""
    size: dict[str, Any] = {WEIGHT_SETTINGS[facts.payer]: facts.share()}
    shared = dataclasses.replace(settings, budget_scope=f"#lease-{uuid.uuid4().hex}", **size)
    budget = _WEIGHT_BUDGET[facts.payer](shared)
    budget.charge(budget.capacity)
    try:
        yield shared
    finally:
        budget.path.unlink(missing_ok=True)
