"""Metrics and logs through the app, on SQLite and PostgreSQL: a request id on every answer
and log line, the counters and histograms ops watch, the outbox depth read at scrape time,
and logs that never carry a key or a payload.

The metrics live in this process's registry (no PROMETHEUS_MULTIPROC_DIR in tests), shared
by every test in it, so each test compares a sample before and after what it does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import StatementError

from service.application.rules_runtime import ActiveRules
from service.bootstrap import Services, _log_fallback
from service.observability import metrics
from service.observability.logging import JsonFormatter, request_id
from service.scheduler import SchedulerProcess
from service.storage.leader import leader_lock
from service.storage.tables import outbox
from tests.conftest import AUTH
from tests.service.helpers import new_id, post, purchase
from tests.service.jobs_helpers import context

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- the request id


def test_a_request_id_sent_comes_back_and_one_is_made_otherwise(client: FlaskClient) -> None:
    sent = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    made = client.get("/healthz")
    other = client.get("/healthz")

    assert sent.headers["X-Request-ID"] == "trace-42"
    assert len(made.headers["X-Request-ID"]) == 32
    assert made.headers["X-Request-ID"] != other.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "bad", ["has spaces", "x" * 129, "caf\u00e9"], ids=["spaces", "long", "latin-1"]
)
def test_a_request_id_that_is_not_a_short_printable_token_is_replaced(
    client: FlaskClient, bad: str
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": bad})

    assert response.headers["X-Request-ID"] != bad
    assert len(response.headers["X-Request-ID"]) == 32


def test_errors_carry_the_request_id_too(client: FlaskClient) -> None:
    response = client.post("/v1/events", json={}, headers={**AUTH, "X-Request-ID": "req-1"})

    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == "req-1"


# -- metrics


def test_events_are_counted_by_type_and_outcome(client: FlaskClient) -> None:
    body = purchase(new_id("obs"), "20")
    before = scrape(client)

    assert post(client, body).status_code == 201
    assert post(client, body).status_code == 200
    assert post(client, {**body, "amount": "21"}).status_code == 409
    assert post(client, {**body, "amount": "-1", "event_id": new_id("e")}).status_code == 422
    assert client.post("/v1/events?dry_run=true", json=body, headers=AUTH).status_code == 200
    batch = {"events": [purchase(new_id("obs"), "5"), {"type": "activity"}]}
    assert client.post("/v1/events/batch", json=batch, headers=AUTH).status_code == 200

    after = scrape(client)
    for outcome, kind, count in [
        ("applied", "purchase", 2),
        ("duplicate", "purchase", 1),
        ("conflict", "purchase", 1),
        ("rejected", "purchase", 1),
        ("dry_run", "purchase", 1),
        ("rejected", "activity", 1),
    ]:
        name, labels = "loyalty_events_total", {"type": kind, "outcome": outcome}
        assert value(after, name, **labels) - value(before, name, **labels) == count, labels


def test_requests_evaluations_and_ledger_writes_are_timed(client: FlaskClient) -> None:
    before = scrape(client)

    assert post(client, purchase(new_id("obs"), "30")).status_code == 201

    after = scrape(client)
    request = {"method": "POST", "route": "/v1/events", "status": "201"}
    name = "loyalty_http_request_duration_seconds_count"
    assert value(after, name, **request) - value(before, name, **request) == 1
    assert (
        value(after, "loyalty_http_request_duration_seconds_bucket", **request, le="+Inf")
        - value(before, "loyalty_http_request_duration_seconds_bucket", **request, le="+Inf")
        == 1
    )
    evaluations = "loyalty_rule_evaluation_seconds_count"
    assert value(after, evaluations) - value(before, evaluations) >= 1
    writes = "loyalty_ledger_write_seconds_count"
    assert value(after, writes, operation="apply") - value(before, writes, operation="apply") == 1


def test_a_redemption_and_its_reversal_are_timed_under_their_own_operations(
    client: FlaskClient,
) -> None:
    member = new_id("obs")
    assert post(client, purchase(member, "600")).status_code == 201
    path = f"/v1/customers/{member}/redemptions"
    before = scrape(client)

    redeemed = client.post(
        path, json={"reward_id": "free-coffee", "redemption_id": "r"}, headers=AUTH
    )
    assert redeemed.status_code == 201
    assert client.delete(f"{path}/r", headers=AUTH).status_code == 200

    after = scrape(client)
    writes = "loyalty_ledger_write_seconds_count"
    for operation in ("save_redemption", "reverse_redemption"):
        counted = value(after, writes, operation=operation) - value(
            before, writes, operation=operation
        )
        assert counted == 1, operation
    assert value(after, writes, operation="write_posting") == value(
        before, writes, operation="write_posting"
    )


def test_a_route_that_does_not_exist_is_one_series_not_one_per_path(
    client: FlaskClient,
) -> None:
    client.get(f"/nowhere/{new_id('x')}")
    client.get(f"/nowhere/{new_id('x')}")

    samples = scrape(client)
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert "unmatched" in routes
    assert not any(route and route.startswith("/nowhere") for route in routes)


def test_the_active_rules_version_is_a_gauge(client: FlaskClient, services: Services) -> None:
    samples = scrape(client)

    assert value(samples, "loyalty_rules_active", version=services.rules.active.version) == 1


def test_engine_fallbacks_are_counted_by_the_default_callback(client: FlaskClient) -> None:
    before = scrape(client)

    _log_fallback("the test says the engine failed")

    after = scrape(client)
    name = "loyalty_engine_fallbacks_total"
    assert value(after, name) - value(before, name) == 1


def scheduler(services: Services, *, rules_fail: bool = False) -> SchedulerProcess:
    """The scheduler's own process object on the test's services; with ``rules_fail``,
    every job that reads the rules (review-tiers always does) fails."""
    ctx = context(services, runner="metrics-test")
    if rules_fail:
        ctx = dataclasses.replace(ctx, rules=rules_unavailable)
    lock = leader_lock(
        services.db, ctx.uow, ctx.runner, f"metrics-{new_id('lock')}", clock=ctx.clock
    )
    return SchedulerProcess(ctx, lock, {}, "Asia/Shanghai")


def rules_unavailable() -> ActiveRules:
    raise RuntimeError("the rules are unavailable")


def test_scheduler_runs_and_failures_are_counted(client: FlaskClient, services: Services) -> None:
    before = scrape(client)

    assert scheduler(services).run_once("review-tiers")
    assert not scheduler(services, rules_fail=True).run_once("review-tiers")

    after = scrape(client)
    runs, failures = "loyalty_scheduler_job_runs_total", "loyalty_scheduler_job_failures_total"
    timed = "loyalty_scheduler_job_duration_seconds_count"
    assert value(after, runs, job="review-tiers") - value(before, runs, job="review-tiers") == 2
    assert (
        value(after, failures, job="review-tiers") - value(before, failures, job="review-tiers")
        == 1
    )
    assert value(after, timed, job="review-tiers") - value(before, timed, job="review-tiers") == 2


def test_a_process_outside_gunicorn_serves_its_own_metrics(services: Services) -> None:
    assert scheduler(services).run_once("review-tiers")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = metrics.serve_metrics(port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        stop()

    assert 'loyalty_scheduler_job_runs_total{job="review-tiers"}' in text


def test_the_outbox_depth_is_read_from_the_database_when_scraped(
    client: FlaskClient, services: Services
) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    with services.db.begin() as connection:
        for status in ("queued", "queued", "dead"):
            connection.execute(
                insert(outbox).values(
                    customer_id=new_id("m"),
                    source="rule",
                    template="hello",
                    channel="log",
                    category="marketing",
                    data={},
                    status=status,
                    created_at=now,
                )
            )

    samples = scrape(client)

    assert value(samples, "loyalty_outbox_messages", status="queued") == 2
    assert value(samples, "loyalty_outbox_messages", status="dead") == 1


def test_a_database_without_an_outbox_table_yields_no_depth_and_no_error() -> None:
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE unrelated (id INTEGER)"))

        assert list(metrics.OutboxDepth(engine).collect()) == []
        exposed = metrics.exposition([metrics.OutboxDepth(engine)])
        assert b"loyalty_outbox_messages" not in exposed
    finally:
        # Python 3.13 warns of a sqlite3 connection left to the garbage collector, and the
        # warning (an error in the tests) lands on whichever test runs next.
        engine.dispose()


# -- logs


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What loyalty.access and loyalty.api write, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("loyalty.access", "loyalty.api")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_each_request_is_one_json_line_with_its_id_and_no_key_or_payload(
    client: FlaskClient, access_lines: io.StringIO
) -> None:
    body = purchase(new_id("secretive"), "77.77", channel="app")

    client.post("/v1/events", json=body, headers={**AUTH, "X-Request-ID": "line-1"})

    lines = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["line-1"]
    (line,) = lines
    assert line["message"] == "request"
    assert line["method"] == "POST"
    assert line["route"] == "/v1/events"
    assert line["status"] == 201
    assert line["duration_ms"] >= 0
    text_ = access_lines.getvalue()
    assert AUTH["Authorization"].split()[1] not in text_
    for field in ("77.77", body["event_id"], body["order_id"]):
        assert field not in text_


def test_a_sql_error_is_logged_without_its_parameters() -> None:
    error = StatementError(
        "boom", "INSERT INTO events VALUES (?)", {"payload": "card 4111"}, ValueError("x")
    )
    record = logging.LogRecord("loyalty.api", logging.ERROR, __file__, 1, "failed", (), None)
    record.exc_info = (StatementError, error, None)

    line = json.loads(JsonFormatter().format(record))

    assert "card 4111" not in line["exception"]
    assert "INSERT INTO events" in line["exception"]


def test_a_log_line_names_the_request_it_belongs_to() -> None:
    record = logging.LogRecord("loyalty", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    token = request_id.set("req-9")
    try:
        line: dict[str, Any] = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)

    assert line["message"] == "hello x"
    assert line["level"] == "warning"
    assert line["request_id"] == "req-9"
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
