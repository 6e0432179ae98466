"""The query side after the real pipeline: extract candles and funding from the
emulator, compact, then ``hyperlake sql``, ``hyperlake export csv`` and
``hyperlake.features`` over the lake (commands through ``main``, in-process)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from hyperlake.cli import main
from hyperlake.emulator.server import Emulator
from hyperlake.query.loaders import features

NOW_ISO = "2026-03-31T00:00:00Z"
START, END = "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"


@pytest.fixture
def hyperlake(emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    monkeypatch.setenv("HYPERLAKE_HYPERLIQUID_URL", emulator.urls.hyperliquid)
    monkeypatch.setenv("HYPERLAKE_NOW", NOW_ISO)
    monkeypatch.setenv("HYPERLAKE_HYPERLIQUID_WEIGHT", "1000000")
    monkeypatch.delenv("HYPERLAKE_LAKE", raising=False)

    def run(*argv: str) -> str:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert code == 0, (argv, out, err)
        return out

    return run


def test_extract_compact_then_query(hyperlake: Callable[..., str], tmp_path: Path) -> None:
    lake = str(tmp_path)
    for market in ("BTC", "kPEPE"):
        hyperlake("candles", "--source", "hyperliquid", "--market", market,
                  "--interval", "1h", "--start", START, "--end", END, "--lake", lake)
    hyperlake("funding", "--coins", "BTC,kPEPE", "--start", START, "--end", END,
              "--lake", lake)
    hyperlake("compact", "--lake", lake)

    out = hyperlake("sql", "SELECT market, count(*) AS bars, count(funding_rate) AS "
                    "funded, bool_and(funding_hour <= t) AS no_lookahead FROM "
                    "candles_with_funding GROUP BY market ORDER BY market", "--lake", lake,
                    "--format", "json")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert rows == [{"market": "BTC", "bars": 72, "funded": 72, "no_lookahead": True},
                    {"market": "kPEPE", "bars": 72, "funded": 72, "no_lookahead": True}]

    output = tmp_path / "kpepe.csv"
    hyperlake("export", "csv", "--market", "kpepe", "--interval", "1h", "--output",
              str(output), "--lake", lake)
    exported = list(csv.DictReader(io.StringIO(output.read_text())))
    frame = features(tmp_path, "kPEPE", "1h", START, END)
    assert len(exported) == 72 == frame.height
    assert [float(r["c"]) for r in exported] == frame["c"].to_list()
    assert [int(r["t"]) for r in exported] == [round(t.timestamp() * 1000)
                                               for t in frame["t"]]
    assert frame["funding_rate"].null_count() == 0
    assert frame["log_return"].null_count() == 1
