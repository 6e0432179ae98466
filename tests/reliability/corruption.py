"""One truncated file — a compacted partition or a checkpoint part, cut at a random
byte — never wedges the lake: ``verify`` names it (exit 1); the other dataset still
answers ``sql``; ``compact`` moves it to ``_quarantine/`` in one line (exit 0) and loses
no other row; the same extract commands run again fetch what it held, and after one
more compaction the lake is the model's again and ``verify`` passes.

The lake: Hydromancer ETH 1s and funding BTC compacted; Dwellir BTC 1s and funding ETH
still in checkpoints.
"""

from __future__ import annotations

import random
from pathlib import Path

from hyperlake.lake.paths import LAKE_FILE, decode_value
from tests.pipelines.test_candles_support import seed_universe
from tests.reliability.kills import Stage, candle_stage, compacted_rows, funding_stage
from tests.reliability.support import (
    EXIT_OK,
    StartEmulator,
    Tallies,
    Tally,
    count_rows,
    env_for,
    fast_config,
    hyperlake,
    leftovers,
    run,
)

COMPACTED = (
    candle_stage("hydromancer", "ETH", "1s", "2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z"),
    funding_stage(("BTC",), "2026-03-20T00:00:00Z", "2026-03-25T00:00:00Z"),
)
CHECKPOINTS = (
    candle_stage("dwellir", "BTC", "1s", "2026-03-30T12:00:00Z", "2026-03-30T12:10:00Z",
                 "--rate", "8000"),
    funding_stage(("ETH",), "2026-03-20T00:00:00Z", "2026-03-25T00:00:00Z"),
)
STAGES: tuple[Stage, ...] = (*COMPACTED, *CHECKPOINTS)


def victims(lake: Path, kind: str | None = None) -> list[Path]:
    partitions = sorted(lake.glob(f"*/market=*/interval=*/date=*/{LAKE_FILE}"))
    parts = sorted((lake / "_checkpoints").rglob("part-*.parquet"))
    return {"partitions": partitions, "checkpoint parts": parts}.get(kind or "",
                                                                     partitions + parts)


def group_of(relative: Path) -> tuple[str, str, str]:
    """(dataset, market, interval) of a partition's or a checkpoint part's path."""
    parts = relative.parts
    values = dict(part.split("=", 1) for part in parts if "=" in part)
    dataset = parts[1] if parts[0] == "_checkpoints" else parts[0]
    return dataset, decode_value(values["market"]), decode_value(values["interval"])


def truncate(path: Path, rng: random.Random) -> int:
    data = path.read_bytes()
    cut = rng.randrange(0, len(data))
    path.write_bytes(data[:cut])
    return cut


def extract_all(tally: Tally, lake: Path, env: dict[str, str], stages: tuple[Stage, ...]
                ) -> None:
    for stage in stages:
        done = run(stage.argv(lake), env)
        tally.scan(done.stdout, done.stderr)
        tally.expect(done.returncode == EXIT_OK,
                     f"{stage.name} exited {done.returncode}: {done.stderr[-300:]}")


def corruption_round(start: StartEmulator, folder: Path, rng: random.Random,
                     kind: str | None = None) -> Tallies:
    """One victim drawn among the partitions and checkpoint parts (``kind``:
    ``partitions`` or ``checkpoint parts`` only)."""
    tally = Tally(runs=1)
    emu = start(fast_config(), gateway=False)
    seed_universe(emu)
    env = env_for(emu)
    lake = folder / "lake"
    extract_all(tally, lake, env, COMPACTED)
    run(hyperlake("compact", "--lake", str(lake)), env)
    extract_all(tally, lake, env, CHECKPOINTS)

    victim = rng.choice(victims(lake, kind))
    relative = victim.relative_to(lake)
    cut = truncate(victim, rng)
    tally.note("checkpoint parts" if relative.parts[0] == "_checkpoints" else "partitions")
    shown = f"{relative} cut at byte {cut}"

    checked = run(hyperlake("verify", "--lake", str(lake)), env)
    tally.scan(checked.stdout, checked.stderr)
    named = victim.name if victim.name != LAKE_FILE else relative.parent.name
    tally.expect(checked.returncode == 1 and named in checked.stdout,
                 f"verify did not name {shown}: exit {checked.returncode}, "
                 f"{checked.stdout[-800:]}")
    if relative.parts[0] in ("candles", "funding"):
        other = "funding" if relative.parts[0] == "candles" else "candles"
        asked = run(hyperlake("sql", f"SELECT count(*) FROM {other}", "--lake", str(lake)),
                    env)
        tally.scan(asked.stdout, asked.stderr)
        tally.expect(asked.returncode == EXIT_OK, f"{shown}: sql on {other} exited "
                     f"{asked.returncode}: {asked.stderr[-300:]}")

    done = run(hyperlake("compact", "--lake", str(lake)), env)
    tally.scan(done.stdout, done.stderr)
    quarantined = [line for line in done.stderr.splitlines() if " quarantined " in line]
    tally.expect(done.returncode == EXIT_OK and len(quarantined) == 1
                 and str(relative) in quarantined[0],
                 f"compact did not quarantine {shown}: exit {done.returncode}, "
                 f"{done.stderr[-400:]}")
    tally.expect(not victim.exists() or victim.stat().st_size != cut,
                 f"{shown} is still in the lake")
    rows = compacted_rows(lake)
    for stage in STAGES:
        for group, want in stage.expected().items():
            have = rows.get(group, [])
            if group == group_of(relative):
                strange = set(have) - set(want)  # the victim's series: a subset for now
                tally.expect(not strange, f"{group}: rows the source never served")
            else:
                count_rows(tally, f"{group} beside the quarantined {shown}", have, want)

    extract_all(tally, lake, env, STAGES)
    done = run(hyperlake("compact", "--lake", str(lake)), env)
    tally.expect(done.returncode == EXIT_OK, f"the last compact exited {done.returncode}")
    rows = compacted_rows(lake)
    for stage in STAGES:
        for group, want in stage.expected().items():
            count_rows(tally, f"{group} after the refetch of {shown}", rows.get(group, []), want)
    checked = run(hyperlake("verify", "--lake", str(lake)), env)
    tally.expect(checked.returncode == EXIT_OK,
                 f"verify after the repair of {shown}: {checked.stdout[-600:]}")
    tally.problems += leftovers(lake, compacted=True)
    return {"corrupted files": tally}
