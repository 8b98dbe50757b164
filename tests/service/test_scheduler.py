"""The scheduler process and its leader lock: only one scheduler acts at a time; a second
waits and takes over when the first goes. On PostgreSQL (advisory lock on a connection of
its own) and SQLite (a lease row)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from service.bootstrap import Services
from service.core.schedules import JobSchedule
from service.leader import AdvisoryLock, LeaseLock, leader_lock
from service.scheduler import SchedulerProcess, programme_schedules
from service.storage.database import make_engine
from service.storage.tables import job_runs
from tests.service.jobs_helpers import EARN, context, services_on, write_programme

WITHIN_S = 20.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Bounded polling: fail with ``what`` if it does not happen in time."""
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    with services_on(database_url, write_programme(tmp_path, {"earn.yaml": EARN})) as built:
        yield built


def runners(services: Services) -> list[str]:
    with services.db.connect() as connection:
        rows = connection.execute(select(job_runs.c.runner).order_by(job_runs.c.id))
        return [runner for (runner,) in rows]


def test_only_one_connection_holds_the_postgres_advisory_lock(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    name = f"test-{uuid.uuid4().hex}"
    first, second = AdvisoryLock(engine, "first", name), AdvisoryLock(engine, "second", name)
    try:
        assert first.acquire()
        assert first.acquire()  # holding it already
        assert not second.acquire()
        assert first.still_held()
        first.dispose()  # the holder goes: its session closes and the lock with it
        assert not first.still_held()
        assert second.acquire()
        assert not AdvisoryLock(engine, "third", name).acquire()
    finally:
        first.dispose()
        second.dispose()
        engine.dispose()


def test_a_lease_is_taken_over_only_once_it_runs_out(services: Services) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    clock = [now]
    uow = context(services).uow
    first = LeaseLock(uow, "first", ttl=timedelta(seconds=60), clock=lambda: clock[0])
    second = LeaseLock(uow, "second", ttl=timedelta(seconds=60), clock=lambda: clock[0])

    assert first.acquire()
    clock[0] = now + timedelta(seconds=30)
    assert not second.acquire()
    assert first.still_held()  # renewed until 90 s
    clock[0] = now + timedelta(seconds=89)
    assert not second.acquire()
    clock[0] = now + timedelta(seconds=91)  # the first died at 30 s and never renewed
    assert second.acquire()
    assert not first.still_held()
    second.release()
    assert first.acquire()


def test_two_schedulers_race_and_only_the_leader_runs_jobs(services: Services) -> None:
    schedules = {"expire-offers": JobSchedule("expire-offers", every=timedelta(seconds=0.1))}
    name = f"race-{uuid.uuid4().hex}"

    def scheduler(runner: str) -> SchedulerProcess:
        ctx = context(services, runner=runner)
        lock = leader_lock(services.db, ctx.uow, runner, name, clock=ctx.clock)
        return SchedulerProcess(
            ctx, lock, schedules, "Asia/Shanghai", poll_seconds=0.05, heartbeat_seconds=0.1
        )

    one, two = scheduler("one"), scheduler("two")
    threads = [threading.Thread(target=s.run, daemon=True) for s in (one, two)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(runners(services)) >= 3, "three runs of the job")
        assert len(set(runners(services))) == 1, runners(services)
        leader, follower = (one, two) if runners(services)[0] == "one" else (two, one)

        leader.stop()  # the leader goes; the other takes over
        wait_for(lambda: follower.ctx.runner in runners(services), "the takeover")
        ran = runners(services)
        first_by_follower = ran.index(follower.ctx.runner)
        assert set(ran[:first_by_follower]) == {leader.ctx.runner}
        wait_for(lambda: not threads[[one, two].index(leader)].is_alive(), "the leader to stop")
        count = len(runners(services))
        wait_for(lambda: len(runners(services)) >= count + 2, "runs by the new leader")
        assert set(runners(services)[count:]) == {follower.ctx.runner}
    finally:
        one.stop()
        two.stop()
        for thread in threads:
            thread.join(timeout=WITHIN_S)
    assert not any(thread.is_alive() for thread in threads)


def test_the_scheduler_takes_its_schedules_from_the_programme(
    database_url: str, tmp_path: Path
) -> None:
    extra = 'schedules:\n  dispatch-outbox: {every: 30s}\n  warn-expiry: {cron: "0 10 * * *"}\n'
    with services_on(
        database_url, write_programme(tmp_path, {"earn.yaml": EARN}, extra=extra)
    ) as s:
        schedules = programme_schedules(s)
    assert schedules["dispatch-outbox"].every == timedelta(seconds=30)
    assert schedules["warn-expiry"].cron == "0 10 * * *"
    assert schedules["review-tiers"].every == timedelta(days=30)  # tiers.review.every
