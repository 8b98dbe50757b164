"""The `loyalty` command. Each area's subcommands live in service.commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from service.commands import db, jobs, replay, reports, rules, serve

AREAS = (serve, db, rules, jobs, replay, reports)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loyalty", description="Loyalty-programme rule engine")
    commands = parser.add_subparsers(dest="command", required=True)
    for area in AREAS:
        area.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
