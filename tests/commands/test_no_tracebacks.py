"""Bad input and a hostile environment get one line naming the thing and what to do,
with the documented exit status — never a traceback, never a file or a request.

Each case below was a traceback once (the second adversarial run's list)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from hyperlake.cli import main

OK_CANDLES = ["candles", "--source", "dwellir", "--market", "BTC", "--interval", "1m",
              "--start", "2026-03-30T00:00:00Z", "--end", "2026-03-30T01:00:00Z"]
OK_FUNDING = ["funding", "--coins", "BTC", "--start", "2026-03-30T00:00:00Z",
              "--end", "2026-03-30T01:00:00Z"]


def replace(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def run(argv: list[str], env: dict[str, str], lake: Path | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYPERLAKE_NOW", "2026-03-31T00:00:00Z")
        mp.setenv("HYPERLAKE_DWELLIR_KEY", "dw-test-key")
        for name, value in env.items():
            mp.setenv(name, value)
        args = [*argv, "--lake", str(lake)] if lake is not None else argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code: int, err: str, want: int, needle: str) -> None:
    assert code == want, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hyperlake ") and ": error: " in lines[0]
    assert needle in lines[0], lines[0]


CASES: list[tuple[str, list[str], dict[str, str], int, str]] = [
    ("end beyond the years", replace(OK_CANDLES, "--end", "9999-12-31T23:59:59Z"), {}, 2,
     "outside the years"),
    ("rate nan", [*OK_CANDLES, "--rate", "nan"], {}, 2, "--rate nan"),
    ("rate inf", [*OK_CANDLES, "--rate", "inf"], {}, 2, "--rate inf"),
    ("rate tiny", [*OK_CANDLES, "--rate", "1e-300"], {}, 2, "--rate 1e-300"),
    ("plan empty", [*OK_CANDLES, "--plan", ""], {}, 2, "--plan ''"),
    ("workers absurd", [*OK_CANDLES, "--workers", "99999999999999999999999"], {}, 2,
     "--workers"),
    ("attempts half", OK_CANDLES, {"HYPERLAKE_MAX_ATTEMPTS": "0.5"}, 2,
     "HYPERLAKE_MAX_ATTEMPTS"),
    ("attempts nan", OK_FUNDING, {"HYPERLAKE_MAX_ATTEMPTS": "nan"}, 2, "HYPERLAKE_MAX_ATTEMPTS"),
    ("attempts inf", OK_FUNDING, {"HYPERLAKE_MAX_ATTEMPTS": "inf"}, 2, "HYPERLAKE_MAX_ATTEMPTS"),
    ("weight tiny", OK_FUNDING, {"HYPERLAKE_HYPERLIQUID_WEIGHT": "1e-300"}, 2,
     "HYPERLAKE_HYPERLIQUID_WEIGHT"),
    ("weight nan", OK_FUNDING, {"HYPERLAKE_HYPERLIQUID_WEIGHT": "nan"}, 2,
     "HYPERLAKE_HYPERLIQUID_WEIGHT"),
    ("backoff inf", OK_FUNDING, {"HYPERLAKE_BACKOFF_BASE": "inf"}, 2, "HYPERLAKE_BACKOFF_BASE"),
    ("settle negative", OK_FUNDING, {"HYPERLAKE_SETTLE": "-1"}, 2, "HYPERLAKE_SETTLE"),
    ("url bad ipv6", OK_FUNDING, {"HYPERLAKE_HYPERLIQUID_URL": "http://[::1"}, 2,
     "HYPERLAKE_HYPERLIQUID_URL"),
    ("dwellir url not a url", OK_CANDLES, {"HYPERLAKE_DWELLIR_URL": "not a url"}, 2,
     "HYPERLAKE_DWELLIR_URL"),
    ("hydromancer url ftp", OK_CANDLES, {"HYPERLAKE_HYDROMANCER_URL": "ftp://x"}, 2,
     "HYPERLAKE_HYDROMANCER_URL"),
]


@pytest.mark.parametrize(("name", "argv", "env", "code", "needle"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_values_are_one_line(tmp_path: Path, name: str, argv: list[str],
                                 env: dict[str, str], code: int, needle: str) -> None:
    lake = tmp_path / "lake"
    got, _, err = run(argv, env, lake)
    assert_one_line(got, err, code, needle)
    assert not lake.exists(), "a rejected run created the lake"


def test_a_ca_bundle_that_is_missing_or_no_certificate(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    code, _, err = run(OK_FUNDING, {"HYPERLAKE_CA_BUNDLE": str(missing)}, tmp_path / "lake")
    assert_one_line(code, err, 2, "does not exist")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    code, _, err = run(OK_FUNDING, {"HYPERLAKE_CA_BUNDLE": str(junk)}, tmp_path / "lake")
    assert_one_line(code, err, 2, "HYPERLAKE_CA_BUNDLE")


def test_a_pacing_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "pacing"
    blocker.write_text("a file")
    code, _, err = run(OK_FUNDING, {"HYPERLAKE_PACING_DIR": str(blocker),
                                    "HYPERLAKE_HYPERLIQUID_URL": "http://127.0.0.1:9"},
                       tmp_path / "lake")
    assert_one_line(code, err, 2, "HYPERLAKE_PACING_DIR")


@pytest.mark.parametrize("kind", ["under a file", "symlink loop", "name too long"])
def test_a_lake_that_cannot_be(tmp_path: Path, kind: str) -> None:
    if kind == "under a file":
        (tmp_path / "f").write_text("x")
        lake = tmp_path / "f" / "lake"
    elif kind == "symlink loop":
        lake = tmp_path / "loop"
        os.symlink(lake, lake)
    else:
        lake = tmp_path / ("x" * 300)
    for argv in (OK_CANDLES, ["verify"], ["compact"]):
        code, _, err = run(argv, {}, lake)
        assert code in (1, 2), (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("argv", "needle"), [
    (["emulator", "--port", "99999"], "--port 99999"),
    (["emulator", "--tls-port", "0"], "--tls-port 0"),
    (["emulator", "--host", "not-a-host"], "--host"),
    (["emulator", "--cpu", "99"], "--cpu 99"),
    (["emulator", "--clock-rate", "inf"], "--clock-rate"),
])
def test_emulator_options_that_cannot_be_served(argv: list[str], needle: str) -> None:
    code, _, err = run(argv, {}, None)
    assert_one_line(code, err, 2, needle)


def test_a_start_before_the_exchange_existed_is_clamped_with_a_note(tmp_path: Path) -> None:
    """funding --start 1970 once planned a 56-year job; now it starts at the exchange's
    first data and says so (the end here is bad, so nothing runs)."""
    argv = replace(replace(OK_FUNDING, "--start", "1970-01-01T00:00:00Z"), "--end",
                   "1970-01-02T00:00:00Z")
    code, _, err = run(argv, {}, tmp_path / "lake")
    lines = err.strip().splitlines()
    assert lines[0].startswith("hyperlake funding: note: --start 1970-01-01T00:00:00Z is "
                               "before the exchange's first data (2023-03-01T00:00:00Z)")
    assert code == 2 and "--start must be before --end" in lines[1]


def test_an_empty_market_is_refused_before_the_network(tmp_path: Path) -> None:
    code, _, err = run(replace(OK_CANDLES, "--market", "  "),
                       {"HYPERLAKE_HYPERLIQUID_URL": "http://127.0.0.1:9"}, tmp_path / "lake")
    assert_one_line(code, err, 2, "--market is empty")
