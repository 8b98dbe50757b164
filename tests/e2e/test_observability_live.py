"""Metrics, logs and limits of the real server (gunicorn, two workers, deploy/ config):
/metrics sums every worker, a dead worker's counts still count, the log is JSON lines
with request ids and no secrets, and too-large bodies are a 413 problem over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.settings import DEV_API_KEY
from tests.databases import sqlite_database
from tests.e2e.live import AUTH, LiveServer, children_of, live_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("observability")]

TIMEOUT_S = 30
EVENTS = 20
LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("observability")
    env = {"LOYALTY_LOG_LEVEL": "info", "LOYALTY_MAX_BODY_BYTES": str(LIMIT)}
    with sqlite_database(str(directory)) as url, live_server(url, directory, env=env) as live:
        yield live


def purchase(customer_id: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:12]}",
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": "2026-12-02T10:00:00+08:00",
        "order_id": f"order-{uuid.uuid4().hex[:12]}",
        "amount": "12",
    }


def alone(method: str, server: LiveServer, path: str, **kwargs: Any) -> requests.Response:
    """A request on a connection of its own, so that either worker may take it."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.request(
        method, f"{server.url}{path}", headers=headers, timeout=TIMEOUT_S, **kwargs
    )


def applied_purchases(server: LiveServer) -> float:
    text = alone("GET", server, "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loyalty_events_total" and sample.labels == {
                "type": "purchase",
                "outcome": "applied",
            }:
                return sample.value
    return 0.0


def test_metrics_add_up_every_worker_and_outlive_a_dead_one(server: LiveServer) -> None:
    before = applied_purchases(server)
    metrics_dir = server.log.parent / "server-metrics"
    workers = {str(pid) for pid in server.workers()}

    def writers() -> set[str]:
        return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}

    # Requests in parallel, so that both workers take some (one idle worker could take
    # every request sent one after another); each worker writes files of its own.
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent < 20 * EVENTS and not workers <= writers():
            members = [f"obs-{uuid.uuid4().hex[:8]}" for _ in range(EVENTS)]
            answers = pool.map(
                lambda m: alone("POST", server, "/v1/events", json=purchase(m), headers=AUTH),
                members,
            )
            assert all(answer.ok for answer in answers)
            sent += EVENTS
    assert writers() == workers

    # Whichever worker answers the scrape, it reports what both did.
    assert {applied_purchases(server) for _ in range(6)} == {before + sent}

    victim = server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: victim not in children_of(server.pid) and len(children_of(server.pid)) == 2,
        "gunicorn to replace the killed worker",
    )

    assert applied_purchases(server) == before + sent
    scrape = alone("GET", server, "/metrics").text
    assert scrape.count("loyalty_rules_active{") == 1  # the dead worker's gauge is gone


def test_the_log_is_json_lines_with_request_ids_and_no_secrets(server: LiveServer) -> None:
    body = purchase(f"log-{uuid.uuid4().hex[:8]}")

    answer = alone(
        "POST", server, "/v1/events", json=body, headers={**AUTH, "X-Request-ID": "live-trace-1"}
    )

    assert answer.headers["X-Request-ID"] == "live-trace-1"

    def logged() -> list[dict[str, Any]]:
        text = server.log.read_text(encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [line for line in lines if line.get("request_id") == "live-trace-1"]

    (line,) = wait_for(logged, "the request's log line")  # type: ignore[misc]
    assert line["logger"] == "loyalty.access"
    assert line["route"] == "/v1/events"
    assert line["status"] == 201
    text = server.log.read_text(encoding="utf-8")
    for line_text in text.splitlines():
        json.loads(line_text)  # every line, gunicorn's own included
    assert DEV_API_KEY not in text
    assert body["order_id"] not in text
    assert body["event_id"] not in text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_problem(server: LiveServer, chunked: bool) -> None:
    raw = json.dumps({**purchase("big"), "channel": "x" * (2 * LIMIT)}).encode()
    data: Any = iter([raw[i : i + 1000] for i in range(0, len(raw), 1000)]) if chunked else raw

    response = alone(
        "POST",
        server,
        "/v1/events",
        data=data,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert "X-Request-ID" in response.headers
