"""`loyalty replay FILE`: bulk import of past events, e.g. years of history from the
system a programme replaces.

FILE is JSON Lines, one event per line exactly as POST /v1/events takes it (`-` reads
standard input). Events go through the same grouped apply path as POST /v1/events/batch,
so each is applied once: a second run over the same file finds every line a duplicate.
Progress goes to stderr, the summary to stdout. Exit code 0 when no line was rejected,
1 when some were, 2 when the file, the report or the settings cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from contextlib import ExitStack, nullcontext
from typing import TYPE_CHECKING, BinaryIO, TextIO

from service.settings import Settings

if TYPE_CHECKING:  # the import itself is loaded when the command runs
    from service.bootstrap import Services
    from service.commands.bulk_import import Rejection, Tally

DEFAULT_BATCH = 500
STDIN = "-"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    replay = commands.add_parser(
        "replay",
        help="bulk import of past events from a JSON Lines file",
        description="Apply past events, one JSON object per line as POST /v1/events takes "
        "them, each once (a second run finds them all duplicates).",
    )
    replay.add_argument("file", help="the JSON Lines file, or - for standard input")
    replay.add_argument(
        "--batch",
        type=_positive,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"events per call of the grouped apply path (default {DEFAULT_BATCH})",
    )
    replay.add_argument("--report", metavar="FILE", help="write the rejected lines as JSON Lines")
    replay.add_argument("--quiet", action="store_true", help="no progress on standard error")
    replay.set_defaults(
        handler=lambda args: replay_command(args.file, args.batch, args.report, args.quiet)
    )


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def replay_command(path: str, batch: int, report_path: str | None, quiet: bool) -> int:
    with ExitStack() as stack:
        return _replay(stack, path, batch, report_path, quiet)


def _replay(stack: ExitStack, path: str, batch: int, report_path: str | None, quiet: bool) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from service.bootstrap import build_services
    from service.core.errors import RuleFileError
    from service.settings import SettingsError

    try:
        source: BinaryIO = stack.enter_context(
            nullcontext(sys.stdin.buffer) if path == STDIN else open(path, "rb")  # noqa: SIM115
        )
        report = (
            stack.enter_context(open(report_path, "w", encoding="utf-8"))  # noqa: SIM115
            if report_path
            else None
        )
    except OSError as error:
        return _cannot(f"{error.filename}: {error.strerror}")
    try:
        services = build_services(Settings.from_env())
    except (SettingsError, RuleFileError, SQLAlchemyError, OSError) as error:
        return _cannot(f"cannot start: {error}")
    stack.callback(services.db.dispose)
    name = "<stdin>" if path == STDIN else path
    progress = None if quiet else sys.stderr
    return import_events(services, source, name, batch=batch, report=report, progress=progress)


def import_events(
    services: Services,
    source: Iterable[bytes],
    name: str,
    *,
    batch: int = DEFAULT_BATCH,
    report: TextIO | None = None,
    progress: TextIO | None = None,
    progress_every: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Import the lines of ``source`` with ``services``; the summary goes to ``out``
    (stdout by default). Returns the exit code."""
    from service.application.apply_event import apply_batch
    from service.commands.bulk_import import BulkImport, Progress, Rejections, read_lines

    out = out or sys.stdout
    rules = services.rules.active
    with Rejections(report) as rejections:
        importer = BulkImport(
            lambda events: apply_batch(services.uow, rules, events, services.clock),
            batch,
            Progress(progress, progress_every),
            rejections,
        )
        try:
            importer.run(read_lines(source))
        except KeyboardInterrupt:
            write_summary(name, importer.tally, rejections, out)
            print(
                f"loyalty replay: interrupted after line {importer.tally.lines:,}; the events "
                "applied so far stay applied, and a second run finds them duplicates",
                file=sys.stderr,
            )
            return 130
        write_summary(name, importer.tally, rejections, out)
    return 1 if importer.tally.rejected else 0


def write_summary(name: str, tally: Tally, rejections: Iterable[Rejection], out: TextIO) -> None:
    """Each rejected line as ``FILE:LINE: reason``, then the counts."""
    for rejection in rejections:
        print(f"{name}:{rejection.line}: {rejection.reason} ({rejection.http_status})", file=out)
    print(
        f"replayed {name}: {tally.applied:,} applied, {tally.duplicate:,} duplicate, "
        f"{tally.rejected:,} rejected ({tally.lines:,} lines)",
        file=out,
    )


def _cannot(reason: str) -> int:
    print(f"loyalty replay: {reason}", file=sys.stderr)
    return 2
