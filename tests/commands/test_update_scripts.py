"""The shipped crontab line and systemd units run a command the CLI accepts."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from hyperlake.cli import build_parser

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def hyperlake_argv(command: str) -> list[str]:
    """The arguments after the ``hyperlake`` executable in a shell command line."""
    words = shlex.split(command.split("&&")[-1])
    return words[[w.endswith("/hyperlake") or w == "hyperlake" for w in words].index(True) + 1:]


def test_the_crontab_line_is_a_valid_update() -> None:
    lines = [line for line in (SCRIPTS / "cron" / "hyperlake.crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert fields[0] == "*/5" and len(fields) == 6
    args = build_parser().parse_args(hyperlake_argv(fields[5]))
    assert args.command == "update" and args.quiet


def test_the_systemd_service_and_timer_fit_together() -> None:
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(SCRIPTS / "systemd" / "hyperlake-update.service")
    assert service["Service"]["Type"] == "oneshot"
    args = build_parser().parse_args(hyperlake_argv(service["Service"]["ExecStart"]))
    assert args.command == "update"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(SCRIPTS / "systemd" / "hyperlake-update.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
