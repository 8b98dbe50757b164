"""``schedules:`` in program.yaml: when each job of the scheduler runs.

    schedules:
      dispatch-outbox: {every: 1m}
      warn-expiry: {cron: "0 10 * * *"}     # five fields, in the programme's time zone
      review-tiers: {every: 1d}
      run-schedules: {every: 1h, enabled: false}

Jobs not named keep their defaults (service.core.schedules.DEFAULT_EVERY).
"""

from __future__ import annotations

from typing import Any

from service.core.schedules import JOB_NAMES, JobSchedule
from service.rules.problems import Problems, suggest
from service.rules.values import read_duration
from service.rules.yaml_source import LocatedDict

SCHEDULE_KEYS = ("every", "cron", "enabled")


def parse_schedules(
    root: LocatedDict, problems: Problems, timezone: str | None
) -> tuple[JobSchedule, ...]:
    if "schedules" not in root:
        return ()
    section = problems.mapping(root["schedules"], root.line_of("schedules"), "schedules")
    if section is None:
        return ()
    found = []
    for job, body in section.items():
        line = section.line_of(job)
        if job not in JOB_NAMES:
            problems.add(
                line,
                f"schedules: no job {job!r}{suggest(str(job), JOB_NAMES)}; "
                f"jobs are {', '.join(JOB_NAMES)}",
            )
            continue
        entry = problems.mapping(body, line, f"schedules.{job}")
        if entry is not None:
            schedule = _schedule(job, entry, problems, timezone)
            if schedule is not None:
                found.append(schedule)
    return tuple(found)


def _schedule(
    job: str, entry: LocatedDict, problems: Problems, timezone: str | None
) -> JobSchedule | None:
    problems.unknown_keys(entry, SCHEDULE_KEYS, f"schedules.{job}")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(entry.line_of("enabled"), f"schedules.{job}.enabled takes true or false")
        return None
    if ("every" in entry) == ("cron" in entry):
        if not enabled and "every" not in entry:
            return JobSchedule(job, enabled=False)
        problems.add(entry.line, f"schedules.{job} takes one of `every` (e.g. 1h) or `cron`")
        return None
    if "every" in entry:
        every = read_duration(problems, entry["every"], entry.line_of("every"), f"{job}.every")
        return JobSchedule(job, every=every, enabled=enabled) if every is not None else None
    cron = _cron(entry["cron"], entry.line_of("cron"), job, problems, timezone)
    return JobSchedule(job, cron=cron, enabled=enabled) if cron is not None else None


def _cron(value: Any, line: int, job: str, problems: Problems, timezone: str | None) -> str | None:
    if not isinstance(value, str) or len(value.split()) != 5:
        problems.add(line, f'{job}.cron takes five fields in quotes, e.g. "0 10 * * *"')
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone=timezone or "UTC")
    except ValueError as error:
        problems.add(line, f"{job}.cron {value!r}: {error}")
        return None
    return value
