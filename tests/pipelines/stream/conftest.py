"""The two ways a frame is read: one test body runs over both (the native scanner,
where it is built, and msgspec alone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hyperlake.pipelines.stream import trades


@pytest.fixture(scope="module", params=["native scanner", "msgspec"])
def frame_reader(request: pytest.FixtureRequest) -> Iterator[str]:
    """``parse_frame`` as the native scanner runs it, then as msgspec alone does."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "msgspec":
            patch.setattr(trades, "_scan_trades", None)
        elif not trades.NATIVE_SCANNER:
            pytest.skip("the native scanner is not built (test_stream_scan.py fails for it)")
        yield request.param
