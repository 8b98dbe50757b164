"""`python -m bench` (`make bench`): measure, print one table, write var/bench/*.json.

Parts: ``http`` (single-event ingest against a bare-Flask baseline, and ~70 % of the
maximum; CPU, statements and round trips per event, alone and under load, with the
durable and the reference engine), ``batch`` (POST /v1/events/batch, on the same
servers) and ``eval`` (the pure core with both engines). Each runs on SQLite and on
PostgreSQL where it touches storage.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench import report, tables
from bench.databases import (
    postgres_available,
    postgres_database,
    postgres_version,
    sqlite_database,
)
from bench.http import ENGINES, Load, http_suite

PARTS = ("http", "batch", "eval")
DATABASES = ("sqlite", "postgresql")


def _terminate(signum: int, _frame: Any) -> None:
    # Turn SIGTERM into an exception so every `finally` stops its servers and drops its database.
    raise SystemExit(128 + signum)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk measurement")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (single events)"
    )
    parser.add_argument(
        "--batch-connections", type=int, default=4, help="wrk connections (batches)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the config's)")
    parser.add_argument("--members", type=int, default=10_000, help="distinct customer ids")
    parser.add_argument("--campaigns", default="10,100,1000", help="synthetic programme sizes")
    parser.add_argument(
        "--eval-seconds", type=float, default=2.0, help="seconds per evaluation measurement"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="seconds to wait, before each part, for other processes to leave the CPU",
    )
    parser.add_argument(
        "--skip-reference",
        action="store_true",
        help="no second service with LOYALTY_ENGINE=reference",
    )
    parser.add_argument("--quick", action="store_true", help="short runs, to try the harness")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = (parts - set(PARTS)) | (set(databases) - set(DATABASES))
    if unknown:
        print(f"unknown part or database: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    load = Load(
        duration=3.0 if args.quick else args.duration,
        threads=args.threads,
        connections=args.connections,
        members=args.members,
        warmup=1.0 if args.quick else 3.0,
        batch_connections=args.batch_connections,
        calibration=2.0 if args.quick else 3.0,
        alone_duration=2.0 if args.quick else 5.0,
    )
    engines = ENGINES[:1] if args.skip_reference else ENGINES
    eval_seconds = 0.5 if args.quick else args.eval_seconds
    sizes = [int(s) for s in args.campaigns.split(",") if s.strip()]

    def progress(message: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)

    started = time.monotonic()
    pg_problem = postgres_available() if "postgresql" in databases else None
    background: dict[str, Any] = {"start": report.quiet_cpu(args.wait_quiet, progress)}
    result: dict[str, Any] = {
        "background_cpu": background,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(postgres_version() if pg_problem is None else None),
        "method": report.method(load, eval_seconds, args.workers),
        "payload": {
            "single": f"one purchase event: event_id, customer_id (m00001-m{args.members:05d}), "
            "occurred_at in December 2026 (+08:00), order_id, amount (sum of the items), channel, "
            "store_id, 1-4 items {sku, category, quantity, price}; about 350-650 bytes",
            "batch": '{"events": [N such purchases]}',
            "example": _example_payload(),
        },
        "http": [],
        "evaluation": None,
        "errors": [],
    }
    failed = False
    try:
        if parts & {"http", "batch"}:
            if shutil.which("wrk") is None:
                raise SystemExit("wrk is not installed: apt-get install wrk (make bench does)")
            for database in databases:
                if database == "postgresql" and pg_problem is not None:
                    progress(f"[postgresql] skipped: server not reachable ({pg_problem})")
                    result["http"].append(
                        {"database": database, "error": f"not reachable: {pg_problem}"}
                    )
                    failed = True
                    continue
                background[f"before {database}"] = report.quiet_cpu(args.wait_quiet, progress)
                try:
                    result["http"].append(
                        _http(database, load, args.workers, "batch" in parts, engines, progress)
                    )
                except Exception as error:
                    failed = True
                    progress(f"[{database}] FAILED: {type(error).__name__}: {error}")
                    result["http"].append(
                        {"database": database, "error": f"{type(error).__name__}: {error}"}
                    )
                    result["errors"].append(traceback.format_exc())
        if "eval" in parts:
            from bench.evaluation import evaluation_suite

            background["before evaluation"] = report.quiet_cpu(args.wait_quiet, progress)
            result["evaluation"] = evaluation_suite(sizes, eval_seconds, progress=progress)
    finally:
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        result["targets"] = tables.targets(result)
        path, latest = report.write(result)
        print()
        print(tables.table(result))
        print()
        print(
            f"wrote {path.relative_to(report.ROOT)} and {latest.relative_to(report.ROOT)} "
            f"in {result['elapsed_s']:.0f} s"
        )
    return 1 if failed else 0


def _http(
    database: str,
    load: Load,
    workers: int | None,
    batches: bool,
    engines: tuple[str, ...],
    progress: Any,
) -> dict[str, Any]:
    log_dir = report.OUT / "logs"
    if database == "sqlite":
        with sqlite_database(report.OUT / "db") as url:
            return http_suite(database, url, load, log_dir, workers, batches, progress, engines)
    with postgres_database() as url:
        return http_suite(database, url, load, log_dir, workers, batches, progress, engines)


def _example_payload() -> str:
    return (
        '{"event_id":"r3f1c2a9b0d-1-42","type":"purchase","customer_id":"m04711",'
        '"occurred_at":"2026-12-05T10:31:07+08:00","order_id":"o-r3f1c2a9b0d-1-42",'
        '"amount":"187.40","channel":"app","store_id":"s017","items":['
        '{"sku":"coffee-03","category":"coffee","quantity":2,"price":"31.20"},'
        '{"sku":"bakery-07","category":"bakery","quantity":1,"price":"125.00"}]}'
    )


if __name__ == "__main__":
    raise SystemExit(main())
