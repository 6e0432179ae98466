"""``hyperlake init``: write a commented example ``hyperlake.toml``."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT = "hyperlake.toml"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "init", help="write a commented example hyperlake.toml (for hyperlake update)",
        description="Write a commented example configuration for hyperlake update. An "
        "existing file is never overwritten unless --force.")
    p.add_argument("path", nargs="?", default=DEFAULT, help=f"where (default ./{DEFAULT})")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hyperlake.errors import UserError
    from hyperlake.lake.atomic import write_bytes_atomic
    from hyperlake.pipelines.update.example import EXAMPLE

    path = Path(args.path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file name, e.g. {path / DEFAULT}")
    if path.exists() and not args.force:
        raise UserError(f"{path} exists; edit it, or give --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent} does not exist")
    write_bytes_atomic(path, EXAMPLE.encode())
    print(f"wrote {path}: edit it, then try hyperlake update --dry-run")
    return 0
