"""What ops see of `loyalty scheduler`, on SQLite and PostgreSQL: the scheduler runs its
jobs on their schedules (leader lock, APScheduler, one job failing) and its own endpoint
answers `/metrics` (runs, durations, failures, leadership, outbox depth) and `/healthz`.

The metrics live in this process's registry, shared by the tests in it, so the counts
are compared before and after."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select

from service.application.rules_runtime import ActiveRules
from service.bootstrap import Services
from service.core.schedules import JobSchedule
from service.leader import leader_lock
from service.scheduler import SchedulerProcess, serve_scheduler_metrics
from service.settings import Settings, SettingsError, parse_metrics_address
from service.storage.tables import outbox
from tests.e2e.live import free_port
from tests.service.helpers import new_id
from tests.service.jobs_helpers import EARN, context, services_on, write_programme
from tests.service.test_scheduler import WITHIN_S, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
RUNS, FAILURES = "loyalty_scheduler_job_runs_total", "loyalty_scheduler_job_failures_total"
DURATIONS = "loyalty_scheduler_job_duration_seconds_count"


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    with services_on(database_url, write_programme(tmp_path, {"earn.yaml": EARN})) as built:
        yield built


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a local test URL
        return answer.status, answer.headers["Content-Type"], answer.read().decode()


def scrape(port: int) -> Samples:
    status, content_type, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def queue_messages(services: Services, count: int) -> None:
    with services.db.begin() as connection:
        for _ in range(count):
            connection.execute(
                insert(outbox).values(
                    customer_id=new_id("m"),
                    source="rule",
                    template="hello",
                    channel="log",
                    category="marketing",
                    data={},
                    status="queued",
                    created_at=datetime(2026, 12, 2, tzinfo=UTC),
                )
            )


def no_rules() -> ActiveRules:
    raise RuntimeError("the rules are unavailable")


def test_the_scheduler_serves_its_job_runs_leadership_and_outbox_depth(
    services: Services,
) -> None:
    # review-tiers reads the rules and fails here; expire-offers does not and succeeds.
    ctx = dataclasses.replace(
        context(services, runner=f"ops-{uuid.uuid4().hex[:6]}"), rules=no_rules
    )
    every = timedelta(seconds=0.1)
    schedules = {
        "expire-offers": JobSchedule("expire-offers", every=every),
        "review-tiers": JobSchedule("review-tiers", every=every),
    }
    lock = leader_lock(services.db, ctx.uow, ctx.runner, f"ops-{uuid.uuid4().hex}", clock=ctx.clock)
    process = SchedulerProcess(
        ctx, lock, schedules, "Asia/Shanghai", poll_seconds=0.05, heartbeat_seconds=0.1
    )
    queue_messages(services, 3)
    port = free_port()
    stop_serving = serve_scheduler_metrics(process, services, ("127.0.0.1", port))
    thread = threading.Thread(target=process.run, daemon=True)
    try:
        before = scrape(port)
        waiting = json.loads(get(f"http://127.0.0.1:{port}/healthz")[2])
        thread.start()

        def runs(samples: Samples, job: str) -> float:
            return value(samples, RUNS, job=job) - value(before, RUNS, job=job)

        wait_for(
            lambda: (
                min(runs(scrape(port), "expire-offers"), runs(scrape(port), "review-tiers")) >= 2
            ),
            "two runs of each job on the scheduler's endpoint",
        )
        leading = scrape(port)
        status, content_type, body = get(f"http://127.0.0.1:{port}/healthz")
    finally:
        process.stop()
        thread.join(timeout=WITHIN_S)
    try:
        after = scrape(port)
    finally:
        stop_serving()
        lock.dispose()

    assert not thread.is_alive()
    for job, fails in (("expire-offers", False), ("review-tiers", True)):
        ran = runs(leading, job)
        failed = value(leading, FAILURES, job=job) - value(before, FAILURES, job=job)
        timed = value(leading, DURATIONS, job=job) - value(before, DURATIONS, job=job)
        assert failed == (ran if fails else 0), (job, ran, failed)
        assert timed == ran, (job, ran, timed)
    assert value(leading, "loyalty_scheduler_leader") == 1
    assert value(after, "loyalty_scheduler_leader") == 0
    with services.db.connect() as connection:
        queued = connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status == "queued")
        ).scalar_one()
    assert queued == 3
    assert value(leading, "loyalty_outbox_messages", status="queued") == queued
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "runner": ctx.runner, "leader": True}
    assert waiting == {"status": "ok", "runner": ctx.runner, "leader": False}


def test_the_scheduler_metrics_address_is_a_setting() -> None:
    assert Settings.from_env({}).scheduler_metrics == "9102"
    assert parse_metrics_address("9102") == ("0.0.0.0", 9102)  # noqa: S104
    assert parse_metrics_address("127.0.0.1:9200") == ("127.0.0.1", 9200)
    assert parse_metrics_address("0") is None
    assert parse_metrics_address("off") is None
    assert Settings.from_env({"LOYALTY_SCHEDULER_METRICS_PORT": "off"}).scheduler_metrics == "off"
    with pytest.raises(SettingsError, match="LOYALTY_SCHEDULER_METRICS_PORT"):
        Settings.from_env({"LOYALTY_SCHEDULER_METRICS_PORT": "nine"})
