"""Prometheus metrics, one set per process, summed across gunicorn workers.

Under gunicorn, `service/gunicorn_conf.py` points PROMETHEUS_MULTIPROC_DIR at a directory
of its own (wiped at start) before any worker imports prometheus_client; each worker
writes its samples there and whichever worker answers `/metrics` sums them
(prometheus-client's multiprocess mode). Without that variable (tests, the CLI) the
samples live in this process's own registry.

The metrics are made on first use, never at import. Other processes record through the
functions here: the scheduler calls `record_job_run(job, ok, seconds)` for every job run
and `record_leadership(leading)`, and, being a process of its own, serves its metrics and
a health answer with `serve_metrics(port)`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
OUTBOX_TABLE = "outbox"

log = logging.getLogger("loyalty.metrics")


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "loyalty_events_total",
            "Events received over HTTP, by type and outcome "
            "(applied, duplicate, conflict, rejected, dry_run, error)",
            ["type", "outcome"],
            registry=registry,
        )
        self.requests = Histogram(
            "loyalty_http_request_duration_seconds",
            "Time from a request reaching the app to its answer, by route and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.evaluation = Histogram(
            "loyalty_rule_evaluation_seconds",
            "Time the rule engine took to match one event's facts",
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.ledger_write = Histogram(
            "loyalty_ledger_write_seconds",
            "Time from writing a use case's changes (ledger, lots, balance) to its commit",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.group_size = Histogram(
            "loyalty_event_group_size",
            "Events applied together in one transaction (single requests joined, or a batch's)",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100),
            registry=registry,
        )
        self.db_statements = Counter(
            "loyalty_db_statements_total",
            "Statements sent to the database (an executemany counts once)",
            registry=registry,
        )
        self.db_round_trips = Counter(
            "loyalty_db_round_trips_total",
            "Calls that wait on the database: statements, BEGIN, COMMIT and ROLLBACK",
            registry=registry,
        )
        self.job_runs = Counter(
            "loyalty_scheduler_job_runs_total",
            "Scheduler job runs, successful or not",
            ["job"],
            registry=registry,
        )
        self.job_failures = Counter(
            "loyalty_scheduler_job_failures_total",
            "Scheduler job runs that failed",
            ["job"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "loyalty_scheduler_job_duration_seconds",
            "Time a scheduler job run took, successful or not",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.scheduler_leader = Gauge(
            "loyalty_scheduler_leader",
            "1 while this scheduler holds the leader lock and runs the jobs, 0 while it waits",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.engine_fallbacks = Counter(
            "loyalty_engine_fallbacks_total",
            "Events the reference evaluator answered because the rule engine failed",
            registry=registry,
        )
        self.rules_active = Gauge(
            "loyalty_rules_active",
            "1 for each rules version a live worker serves",
            ["version"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self._version: str | None = None
        self._version_lock = threading.Lock()

    def rules_loaded(self, version: str) -> None:
        with self._version_lock:
            if self._version is not None and self._version != version:
                self.rules_active.labels(version=self._version).set(0)
            self.rules_active.labels(version=version).set(1)
            self._version = version


@cache
def _process_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@cache
def metrics() -> Metrics:
    """This process's metrics, made on first use."""
    return Metrics(_process_registry())


# -- recording, for the rest of the service (each is cheap and never raises into callers)


def record_event(event_type: str, outcome: str) -> None:
    metrics().events.labels(type=event_type, outcome=outcome).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    metrics().requests.labels(method=method, route=route, status=str(status)).observe(seconds)


def observe_evaluation(seconds: float) -> None:
    metrics().evaluation.observe(seconds)


def observe_ledger_write(operation: str, seconds: float) -> None:
    metrics().ledger_write.labels(operation=operation).observe(seconds)


def observe_group(size: int) -> None:
    metrics().group_size.observe(size)


def count_database_calls(engine: Engine) -> None:
    """Count the statements and round trips of ``engine`` (SQLAlchemy's public events),
    added to the counters once per transaction rather than once per statement."""
    recorded = metrics()
    pending = threading.local()

    def statement(*_args: object) -> None:
        pending.statements = getattr(pending, "statements", 0) + 1

    def begin(*_args: object) -> None:
        pending.others = getattr(pending, "others", 0) + 1

    def end(*_args: object) -> None:
        statements = getattr(pending, "statements", 0)
        calls = statements + getattr(pending, "others", 0) + 1
        pending.statements = pending.others = 0
        recorded.db_statements.inc(statements)
        recorded.db_round_trips.inc(calls)

    event.listen(engine, "before_cursor_execute", statement)
    # SQLite's BEGIN IMMEDIATE is a statement of ours (service.storage.database), counted
    # as one; psycopg sends BEGIN on its own before a transaction's first statement.
    if engine.dialect.name != "sqlite":
        event.listen(engine, "begin", begin)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)


def record_job_run(job: str, ok: bool, seconds: float | None = None) -> None:
    """For the scheduler: one run of `job`, whether it succeeded, and how long it took."""
    recorded = metrics()
    recorded.job_runs.labels(job=job).inc()
    if seconds is not None:
        recorded.job_duration.labels(job=job).observe(seconds)
    if not ok:
        recorded.job_failures.labels(job=job).inc()
    else:
        recorded.job_failures.labels(job=job).inc(0)  # the series exists from the first run


def record_leadership(leading: bool) -> None:
    """For the scheduler: whether it holds the leader lock now."""
    metrics().scheduler_leader.set(1 if leading else 0)


def record_engine_fallback() -> None:
    metrics().engine_fallbacks.inc()


def rules_loaded(version: str) -> None:
    metrics().rules_loaded(version)


# -- scrape time


class OutboxDepth(Collector):
    """Messages in the outbox by status, counted when scraped. Answers nothing while the
    outbox table does not exist (or cannot be read): a scrape never fails for it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "loyalty_outbox_messages", "Messages in the outbox, by status", labels=["status"]
        )
        try:
            with self._engine.connect() as connection:
                if not inspect(connection).has_table(OUTBOX_TABLE):
                    return
                rows = connection.execute(
                    text(f"SELECT status, COUNT(*) FROM {OUTBOX_TABLE} GROUP BY status")  # noqa: S608 - a constant table name
                ).all()
        except SQLAlchemyError as error:
            log.warning("could not count the outbox: %s", type(error).__name__)
            return
        for status, count in rows:
            family.add_metric([str(status)], float(count))
        yield family


class _Live(Collector):
    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text a scrape gets: every worker's samples (multiprocess mode) or this
    process's, plus the collectors computed now (e.g. the outbox depth)."""
    metrics()  # so that every family shows, even before its first sample
    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Live([_process_registry()]))
    registry.register(_Live(extra))
    return generate_latest(registry)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one a few seconds would drown the scheduler's lines."""


def serve_metrics(
    port: int,
    address: str = "0.0.0.0",  # noqa: S104 - scraped from other hosts
    extra: Iterable[Collector] = (),
    health: Callable[[], Mapping[str, object]] | None = None,
) -> Callable[[], None]:
    """For a process outside gunicorn (the scheduler): serve `GET /metrics` (this
    process's metrics plus `extra`, computed when scraped) and `GET /healthz` (200 with
    `health()` as JSON) on a port of its own, from a daemon thread. Returns a function
    that stops serving."""
    metrics()
    collectors = tuple(extra)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, content_type, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif path == "/metrics":
            status, content_type, body = "200 OK", CONTENT_TYPE, exposition(collectors)
        elif path == "/healthz":
            answer = {"status": "ok", **(health() if health is not None else {})}
            status, content_type = "200 OK", "application/json"
            body = json.dumps(answer, sort_keys=True).encode()
        else:
            status, content_type, body = "404 Not Found", "text/plain", b"/metrics or /healthz\n"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    server = make_server(
        address, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics-endpoint", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


# -- gunicorn hooks


def prepare_multiprocess_dir(directory: str) -> None:
    """Create the directory and delete the samples a previous run left in it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters and histograms still count)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
