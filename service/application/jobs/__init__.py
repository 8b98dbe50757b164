"""The scheduler's jobs: each an idempotent function of ``now``, run by the scheduler
process on its schedule or once by hand (``loyalty jobs run JOB --now TIME``)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.application.jobs.campaigns import run_schedules
from service.application.jobs.context import JobContext
from service.application.jobs.points import expire_points, release_pending, warn_expiry
from service.application.jobs.standing import expire_offers, review_tiers
from service.application.outbox import dispatch_outbox
from service.core.schedules import JOB_NAMES

log = logging.getLogger("loyalty.jobs")
Job = Callable[[JobContext, datetime], dict[str, int]]


def _dispatch(ctx: JobContext, now: datetime) -> dict[str, int]:
    programme = ctx.rules().ruleset.programme
    return dispatch_outbox(ctx.uow, programme, ctx.channels, ctx.outbox, now)


JOBS: dict[str, Job] = {
    "expire-points": expire_points,
    "warn-expiry": warn_expiry,
    "release-pending": release_pending,
    "review-tiers": review_tiers,
    "expire-offers": expire_offers,
    "run-schedules": run_schedules,
    "dispatch-outbox": _dispatch,
}
assert tuple(JOBS) == JOB_NAMES


class JobFailed(Exception):
    pass


def run_job(ctx: JobContext, name: str, now: datetime) -> dict[str, Any]:
    """Run one job for ``now`` and record the run (job_runs): what it did, or why it failed."""
    job = JOBS.get(name)
    if job is None:
        raise KeyError(f"no job {name!r}; jobs are {', '.join(JOBS)}")
    if now.tzinfo is None:
        raise ValueError("a job's now must carry a UTC offset")
    with ctx.uow() as uow:
        run_id = uow.store.start_job_run(name, now, ctx.runner, ctx.clock())
        uow.commit()
    try:
        result = job(ctx, now)
    except Exception as error:
        _finish(ctx, run_id, "failed", None, traceback.format_exc(limit=20))
        log.exception("job %s for %s failed", name, now.isoformat())
        raise JobFailed(f"{name}: {type(error).__name__}: {error}") from error
    _finish(ctx, run_id, "ok", result, None)
    log.info("job %s for %s: %s", name, now.isoformat(), result)
    return {"job": name, "now": now.isoformat(), "run_id": run_id, "result": result}


def _finish(
    ctx: JobContext, run_id: int, status: str, result: dict[str, int] | None, error: str | None
) -> None:
    with ctx.uow() as uow:
        uow.store.finish_job_run(run_id, status, result, error, ctx.clock())
        uow.commit()


__all__ = ["JOBS", "JobContext", "JobFailed", "run_job"]
