"""`loyalty rules ...`: check the rule files (with lint), diff two versions over recorded
events, and write the JSON Schema editors use."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from service.settings import MessagingSettings, Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rules = commands.add_parser("rules", help="rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)

    check = rules_commands.add_parser(
        "check", help="validate, compile, lint and run the embedded tests"
    )
    check.add_argument("path", nargs="?", help="rules directory (default LOYALTY_RULES_DIR)")
    check.add_argument(
        "--engine-timeout",
        type=float,
        default=60.0,
        help="seconds the rule engine may take to load the rules",
    )
    check.add_argument("--strict", action="store_true", help="fail on lint warnings too")
    check.add_argument(
        "--now", type=_moment, help="the moment lint judges `active` dates by (default: now)"
    )
    check.set_defaults(handler=check_command)

    diff = rules_commands.add_parser(
        "diff", help="replay recorded events under a git revision's rules and the working tree's"
    )
    diff.add_argument("--base", required=True, help="git revision to compare with (origin/main)")
    source = diff.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", help="JSON Lines file of events, as POST /v1/events takes")
    source.add_argument(
        "--since", help="replay the events stored in the database since then: 30d, or a time"
    )
    diff.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    diff.add_argument("--rules-dir", help="rules directory (default LOYALTY_RULES_DIR)")
    diff.add_argument("--top", type=int, default=10, help="members to list who change most")
    diff.add_argument(
        "--workers",
        type=_positive,
        help="processes (default: one per core, at least 2, for large replays)",
    )
    diff.add_argument("--now", type=_moment, help="what --since counts back from (default now)")
    diff.add_argument("--quiet", action="store_true", help="no progress on stderr")
    diff.set_defaults(handler=diff_command)

    schema = rules_commands.add_parser("schema", help="write JSON Schema for editors")
    schema.add_argument("--out", default="schemas", help="directory to write to (schemas/)")
    schema.add_argument(
        "--check", action="store_true", help="fail if the files in --out are not up to date"
    )
    schema.set_defaults(handler=schema_command)


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return number


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-12-01T00:00Z")
    return moment


def check_command(args: argparse.Namespace) -> int:
    from service.clock import system_clock
    from service.rules.check import check_rules

    return check_rules(
        args.path or Settings.from_env().rules_dir,
        engine_timeout=args.engine_timeout,
        strict=args.strict,
        now=args.now or system_clock(),
        channels=MessagingSettings.from_env(os.environ).channel_names(),
    )


def diff_command(args: argparse.Namespace) -> int:
    from service.clock import system_clock
    from service.commands.impact_format import render
    from service.commands.rules_diff import EventFile, StoredEvents, parse_since, run_diff
    from service.core.errors import RuleFileError
    from service.rules.git_source import GitError, rules_at_revision
    from service.rules.loader import load_rules, read_rules_dir

    settings = Settings.from_env()
    rules_dir = args.rules_dir or settings.rules_dir
    try:
        head_files = read_rules_dir(rules_dir)
        base_files = rules_at_revision(rules_dir, args.base)
        for label, files in ((f"{args.base}:", base_files), ("", head_files)):
            try:
                load_rules(files)
            except RuleFileError as error:
                for problem in error.problems:
                    print(f"{label}{Path(rules_dir) / str(problem)}", file=sys.stderr)
                print("loyalty rules diff: these rules do not load", file=sys.stderr)
                return 2
        if args.events:
            if not Path(args.events).is_file():
                print(f"loyalty rules diff: no file {args.events}", file=sys.stderr)
                return 2
            source: EventFile | StoredEvents = EventFile(args.events)
        else:
            since = parse_since(args.since, args.now or system_clock())
            source = StoredEvents(settings.database_url, since)
        impact = run_diff(
            base_files,
            head_files,
            source,
            workers=args.workers,
            top=args.top,
            progress=None if args.quiet else sys.stderr,
        )
    except (GitError, RuleFileError, ValueError) as error:
        print(f"loyalty rules diff: {error}", file=sys.stderr)
        return 2
    print(render(impact, args.format))
    return 0


def schema_command(args: argparse.Namespace) -> int:
    from service.rules.json_schema import check_schema_files, write_schema_files

    if args.check:
        stale = check_schema_files(args.out)
        for path in stale:
            print(f"{path}: out of date; run `loyalty rules schema --out {args.out}`")
        return 1 if stale else 0
    for path in write_schema_files(args.out):
        print(path)
    return 0
