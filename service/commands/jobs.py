"""`loyalty jobs run JOB [--now TIME]`, `loyalty jobs list` and `loyalty scheduler`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from service.core.schedules import JOB_NAMES
from service.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    jobs = commands.add_parser("jobs", help="the scheduler's jobs, run once by hand")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    run = jobs_commands.add_parser(
        "run", help="run one job now (or as of --now) and print what it did"
    )
    run.add_argument("job", choices=JOB_NAMES)
    run.add_argument(
        "--now",
        type=_moment,
        help="the job's now, RFC 3339 with offset, also the time of all it writes "
        "(default: the current time)",
    )
    run.set_defaults(handler=lambda args: run_command(args.job, args.now))
    jobs_commands.add_parser("list", help="the jobs and their schedules").set_defaults(
        handler=lambda _: list_command()
    )
    commands.add_parser(
        "scheduler", help="run the jobs on their schedules (one leader at a time)"
    ).set_defaults(handler=lambda _: scheduler_command())


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from error
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--now needs a UTC offset, e.g. 2026-12-31T00:00:00+08:00")
    return moment


def run_command(job: str, now: datetime | None) -> int:
    from service.application.jobs import JobFailed, run_job
    from service.bootstrap import build_services
    from service.clock import fixed_clock, system_clock
    from service.scheduler import job_context

    # One clock for the whole run: with --now, everything the job writes (messages, ledger
    # lines, offers, the job_runs row) is stamped with that moment, as its decisions are.
    clock = system_clock if now is None else fixed_clock(now)
    services = build_services(Settings.from_env(), clock=clock)
    try:
        ctx = job_context(services, runner="cli")
        try:
            answer = run_job(ctx, job, clock())
        except JobFailed as error:
            print(f"loyalty jobs run: {error}", file=sys.stderr)
            return 1
        print(json.dumps(answer, indent=2, sort_keys=True))
        return 0
    finally:
        services.db.dispose()


def list_command() -> int:
    from service.bootstrap import build_services
    from service.core.durations import format_duration
    from service.scheduler import programme_schedules

    services = build_services(Settings.from_env())
    try:
        for name, schedule in programme_schedules(services).items():
            when = (
                f"cron {schedule.cron}"
                if schedule.cron
                else f"every {format_duration(schedule.every)}"
                if schedule.every
                else "-"
            )
            print(f"{name:16} {when}{'' if schedule.enabled else ' (disabled)'}")
    finally:
        services.db.dispose()
    return 0


def scheduler_command() -> int:
    import logging

    from service.bootstrap import build_services
    from service.scheduler import run_scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_scheduler(build_services(Settings.from_env()))
