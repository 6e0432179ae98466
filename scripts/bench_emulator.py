"""How many requests/s the emulator serves on one core (h2load on the other core).

    python scripts/bench_emulator.py [--requests 200000]

Prints one row per workload, beside the trivial-handler ceiling of granian itself,
so the ratio shows what the emulator's Python handlers cost. Needs h2load
(Debian: nghttp2-client).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from hyperlake.emulator.server import Emulator, frozen_config, granian_app

NOW = 1_774_915_200_000  # 2026-03-31T00:00:00Z
KEY = "bench"
SERVER_CPU, CLIENT_CPU = 0, 1
TRIVIAL_APP = '''
async def app(scope, proto):
    proto.response_bytes(200, [("content-type", "application/json")], b'{"ok":true}')
'''


def h2load(uri_file: Path, requests: int) -> float:
    args = ["taskset", "-c", str(CLIENT_CPU), "h2load", "-n", str(requests), "-c", "2", "-m",
            "64", "-i", str(uri_file)]
    # Warm-up over every URI once, so day tapes are built before the timed run.
    warm = max(1000, len(uri_file.read_text().splitlines()))
    subprocess.run([*args[:4], "-n", str(warm), *args[6:]], capture_output=True, check=True)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, "
                       r"\d+ failed, (\d+) errored, (\d+) timeout", out)
    # h2load counts 4xx (Dwellir's 404 empty buckets) as "failed": what matters is
    # that every request got an answer — none errored or timed out.
    if match is None or counts is None or counts[1] != counts[2] or counts[3] != "0" \
            or counts[4] != "0":
        summary = counts.group(0) if counts else out[-400:]
        raise SystemExit(f"h2load did not get every answer: {summary}")
    return float(match.group(1))


def dwellir_uris(base: str, interval: str, step_ms: int, count: int) -> list[str]:
    start = NOW - count * step_ms
    return [
        f"{base}/{KEY}/v1/candles?market=BTC&interval={interval}&time="
        + dt.datetime.fromtimestamp((start + i * step_ms) / 1000, tz=dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        for i in range(count)
    ]


def trivial_ceiling(folder: Path, requests: int) -> float:
    (folder / "trivial.py").write_text(TRIVIAL_APP)
    with granian_app(folder, "trivial:app", cpu=SERVER_CPU) as port:
        uri = folder / "trivial.txt"
        uri.write_text(f"http://127.0.0.1:{port}/\n")
        return h2load(uri, requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    config = frozen_config(NOW, dwellir_keys={KEY: "scale"},
                           dwellir_rate_overrides={KEY: 10**9})
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows.append(("granian, trivial handler (ceiling)", trivial_ceiling(folder, args.requests)))
        with Emulator(config, cpu=SERVER_CPU) as emu:
            for interval, step in (("1s", 1000), ("1m", 60_000)):
                uris = folder / f"{interval}.txt"
                uris.write_text("\n".join(dwellir_uris(emu.urls.dwellir, interval, step,
                                                       20_000)) + "\n")
                rows.append((f"emulator, Dwellir {interval} candles (sparse: 200s and 404s)",
                             h2load(uris, args.requests)))
            info = folder / "info.txt"
            info.write_text(f"{emu.urls.hyperliquid}/_emulator/health\n")
            rows.append(("emulator, control /health (routing only)", h2load(info, args.requests)))
    ceiling = rows[0][1]
    print(f"\n{'workload (server on 1 core, h2load h2c 2x64 on the other)':62} "
          f"{'req/s':>9} {'vs ceiling':>10}")
    for name, rate in rows:
        print(f"{name:62} {rate:>9,.0f} {rate / ceiling:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
