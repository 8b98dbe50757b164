"""`loyalty scheduler`: the jobs on their schedules, in a process of its own.

Never started inside gunicorn workers. A scheduler waits for the leader lock
(service.leader), then runs APScheduler's BlockingScheduler with one entry per job,
checking before every run that it still leads; if it loses the lock it stops and waits
again. A second scheduler waits and takes over when the first dies. Every job is
idempotent, so even two acting at once would do no harm.

Each run is counted and timed (service.observability.metrics), and the process serves
`/metrics` and `/healthz` on LOYALTY_SCHEDULER_METRICS_PORT: job runs, durations,
failures, whether it leads, and the outbox depth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from service.application.job_ports import JobUnitOfWorkFactory
from service.application.jobs import JobContext, JobFailed, run_job
from service.application.outbox import OutboxPolicy
from service.bootstrap import Services
from service.channels import build_channels
from service.core.schedules import JobSchedule, job_schedules
from service.leader import LeaderLock
from service.observability import metrics
from service.rules.channel_check import log_unconfigured_channels
from service.settings import parse_metrics_address

log = logging.getLogger("loyalty.scheduler")


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def job_context(services: Services, runner: str | None = None) -> JobContext:
    """The jobs' composition root: storage, rules, clock and channels from the services."""
    messaging = services.settings.messaging
    return JobContext(
        uow=jobs_uow(services),
        rules=lambda: services.rules.active,
        clock=services.clock,
        channels=build_channels(messaging),
        outbox=OutboxPolicy(
            max_attempts=messaging.max_attempts,
            backoff=timedelta(seconds=messaging.backoff_seconds),
            default_channel=messaging.channel,
        ),
        runner=runner or runner_name(),
    )


def jobs_uow(services: Services) -> JobUnitOfWorkFactory:
    """The services' unit of work, whose SQL store implements the jobs' port too."""
    return cast(JobUnitOfWorkFactory, services.uow)


def programme_schedules(services: Services) -> dict[str, JobSchedule]:
    """program.yaml's `schedules:` over the defaults (the review every tiers.review.every)."""
    programme = services.rules.active.ruleset.programme
    written = programme.extras.get("schedules", ())
    assert isinstance(written, tuple)
    return job_schedules(written, programme.tiers.review_every)


class SchedulerProcess:
    def __init__(
        self,
        ctx: JobContext,
        lock: LeaderLock,
        schedules: Mapping[str, JobSchedule],
        timezone: str,
        *,
        poll_seconds: float = 5.0,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.ctx = ctx
        self.lock = lock
        self.schedules = schedules
        self.timezone = timezone
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()
        self._current: BlockingScheduler | None = None
        self._guard = threading.Lock()
        self.leading = False

    def health(self) -> dict[str, object]:
        """What `/healthz` says besides "ok": who this is and whether it leads."""
        return {"runner": self.ctx.runner, "leader": self.leading}

    def run(self) -> None:
        """Block: wait to lead, lead until stopped or the lock is lost, and again."""
        log.info("scheduler %s started; waiting for the leader lock", self.ctx.runner)
        while not self._stop.is_set():
            try:
                leading = self.lock.acquire()
            except Exception:
                log.exception("could not reach the database for the leader lock")
                leading = False
            if not leading:
                self._stop.wait(self.poll_seconds)
                continue
            log.info("scheduler %s leads", self.ctx.runner)
            self._set_leading(True)
            try:
                self._lead()
            finally:
                self._set_leading(False)
                self.lock.release()
                log.info("scheduler %s no longer leads", self.ctx.runner)

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        metrics.record_leadership(leading)

    def stop(self) -> None:
        self._stop.set()
        with self._guard:
            if self._current is not None and self._current.running:
                self._current.shutdown(wait=False)

    def _lead(self) -> None:
        scheduler = BlockingScheduler(
            timezone=self.timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        for schedule in self.schedules.values():
            if schedule.enabled:
                scheduler.add_job(
                    self._run,
                    self._trigger(schedule),
                    args=[schedule.job],
                    id=schedule.job,
                    name=schedule.job,
                    # Interval jobs run once at once: a new leader catches up straight away.
                    **(
                        {"next_run_time": datetime.now(scheduler.timezone)}
                        if schedule.every
                        else {}
                    ),
                )
        scheduler.add_job(
            self._heartbeat, IntervalTrigger(seconds=self.heartbeat_seconds), id="heartbeat"
        )
        with self._guard:
            if self._stop.is_set():
                return
            self._current = scheduler
        try:
            scheduler.start()  # blocks until shutdown
        finally:
            with self._guard:
                self._current = None

    def _trigger(self, schedule: JobSchedule) -> Any:
        if schedule.cron is not None:
            return CronTrigger.from_crontab(schedule.cron, timezone=self.timezone)
        assert schedule.every is not None
        return IntervalTrigger(seconds=schedule.every.total_seconds(), timezone=self.timezone)

    def _heartbeat(self) -> None:
        if self._stop.is_set() or not self._still_leading():
            self._step_down()

    def _still_leading(self) -> bool:
        try:
            return self.lock.still_held()
        except Exception:
            log.exception("could not check the leader lock")
            return False

    def _step_down(self) -> None:
        with self._guard:
            if self._current is not None and self._current.running:
                self._current.shutdown(wait=False)

    def _run(self, job: str) -> None:
        if self._stop.is_set() or not self._still_leading():
            self._step_down()
            return
        self.run_once(job)

    def run_once(self, job: str) -> bool:
        """One run of ``job`` as of the clock's now, recorded (job_runs table, metrics) and
        logged; True if it succeeded. A failed run is not raised: the job runs again."""
        started = time.perf_counter()
        ok = False
        try:
            with contextlib.suppress(JobFailed):
                run_job(self.ctx, job, self.ctx.clock())
                ok = True
        finally:
            metrics.record_job_run(job, ok, time.perf_counter() - started)
        return ok


def serve_scheduler_metrics(
    process: SchedulerProcess, services: Services, address: tuple[str, int]
) -> Callable[[], None]:
    """`/metrics` (job runs, durations, failures, leadership, outbox depth read when
    scraped) and `/healthz` of this scheduler on ``address``; returns how to stop."""
    host, port = address
    return metrics.serve_metrics(
        port, host, extra=[metrics.OutboxDepth(services.db)], health=process.health
    )


def run_scheduler(services: Services) -> int:
    """`loyalty scheduler`: lead when possible until SIGTERM or SIGINT."""
    import signal

    from service.leader import leader_lock

    ruleset = services.rules.active.ruleset
    log_unconfigured_channels(ruleset, services.settings.messaging.channel_names(), log)
    ctx = job_context(services)
    lock = leader_lock(services.db, ctx.uow, ctx.runner, clock=ctx.clock)
    process = SchedulerProcess(
        ctx,
        lock,
        programme_schedules(services),
        ruleset.programme.timezone,
    )

    def stop(signum: int, _frame: Any) -> None:
        log.info("scheduler %s stopping (signal %s)", ctx.runner, signum)
        process.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    address = parse_metrics_address(services.settings.scheduler_metrics)
    stop_serving = serve_scheduler_metrics(process, services, address) if address else None
    if address:
        log.info("scheduler metrics on http://%s:%s/metrics", *address)
    try:
        process.run()
    finally:
        if stop_serving is not None:
            stop_serving()
        lock.dispose()
        services.db.dispose()
    return 0
