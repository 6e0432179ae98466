"""A small lake for the chart tests, made by the real pipeline from the emulator, and
ways to look at a written image without a person.

The lake: three days of hourly funding for BTC and ETH and one day for kPEPE (so a span
on the first day has a market without funding), and three days of 1h candles for BTC
and ETH, extracted from the session emulator (clock frozen at 2026-03-31T00:00:00Z) and
compacted, as ``hyperlake demo`` does.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from hyperlake.emulator.server import Emulator
from hyperlake.lake.store import Location
from hyperlake.pipelines.candles.job import CandleJob, run_job
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.pipelines.funding import FundingJob, run_funding
from hyperlake.pipelines.settings import SourceSettings
from hyperlake.schemas.intervals import DAY_MS
from tests.conftest import NOW_MS

START_MS = NOW_MS - 3 * DAY_MS  # 2026-03-28T00:00:00Z
FIRST_DAY = ("2026-03-28T00:00:00Z", "2026-03-29T00:00:00Z")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def emulator_lake(emu: Emulator, root: Location, pacing: Path) -> Location:
    """Extract and compact the lake described above into ``root``."""
    settings = SourceSettings(hyperliquid_url=emu.urls.hyperliquid, pinned_now_ms=NOW_MS,
                              hyperliquid_weight=1_000_000.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYPERLAKE_PACING_DIR", str(pacing))
        for market in ("BTC", "ETH"):
            run_job(CandleJob(source="hyperliquid", market=market, interval="1h",
                              start_ms=START_MS, end_ms=NOW_MS, lake=root), settings)
        run_funding(FundingJob(markets=("BTC", "ETH"), start_ms=START_MS, end_ms=NOW_MS,
                               lake=root), settings)
        run_funding(FundingJob(markets=("kPEPE",), start_ms=NOW_MS - DAY_MS, end_ms=NOW_MS,
                               lake=root), settings)
    run_compact(CompactJob(lake=root))
    return root


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def assert_drawn(path: Path, size: tuple[int, int]) -> None:
    """A PNG of ``size`` pixels with a picture in it: many colours, and a good share of
    pixels that are not the white background."""
    assert png_size(path) == size
    rgb = (np.asarray(imread(path))[..., :3] * 255).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours = np.unique(packed)
    inked = float(np.mean(packed != 0xFFFFFF))
    assert len(colours) > 50, f"{path}: only {len(colours)} colours"
    assert inked > 0.02, f"{path}: {inked:.1%} of the pixels are drawn"
