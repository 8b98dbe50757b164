"""`loyalty rules ...`: check the rule files (more subcommands join this group)."""

from __future__ import annotations

import argparse

from service.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = commands.add_parser("rules", help="rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate, compile and run the embedded tests")
    check.add_argument("path", nargs="?", help="rules directory (default LOYALTY_RULES_DIR)")
    check.add_argument(
        "--engine-timeout",
        type=float,
        default=60.0,
        help="seconds the rule engine may take to load the rules",
    )
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    from service.rules.check import check_rules

    return check_rules(
        args.path or Settings.from_env().rules_dir, engine_timeout=args.engine_timeout
    )
