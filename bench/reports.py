"""`python -m bench.reports`: how long the KPI and liability reports take on a large ledger.

Fills a fresh, migrated database (SQLite under var/bench/, and a throwaway PostgreSQL
database) with two years of a synthetic programme written straight into the tables, about
``--entries`` ledger entries in all: purchases (each an event, an order and a lot, some
pending and released later), redemptions, refunds' clawbacks, expiries, activities,
referrals and tier changes, every lot's remaining points the sum of its entries as the
service keeps them, rows written in time order as the service appends them. Then times
each report a few times and prints the best, with its slowest statements, and
(``--explain``) PostgreSQL's plans. Filling takes about three minutes per database; ``--url``
measures a database an earlier run filled (nothing is dropped then).

    python -m bench.reports --entries 1000000 [--databases sqlite,postgresql] [--explain]
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, text

from bench.databases import postgres_database, sqlite_database
from service.application.reports import kpi_report, liability_report
from service.rules.loader import load_rules, read_rules_dir
from service.storage.database import make_engine
from service.storage.migrate import upgrade
from service.storage.report_store import SqlReportReads
from service.storage.tables import (
    events,
    ledger_entries,
    members,
    orders,
    point_lots,
    referrals,
    tier_history,
)

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 730
END = START + timedelta(days=DAYS)
CHUNK = 20_000
LEVELS = ("silver", "gold", "platinum")


def synthetic_rows(entries: int, seed: int = 11) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(table, rows) chunks of a programme with about ``entries`` ledger entries."""
    rng = random.Random(seed)
    purchases = entries * 10 // 21  # each purchase's lot gets ~2.1 entries
    member_count = max(purchases // 16, 10)
    ids = [f"member-{n:07d}" for n in range(member_count)]
    joined = {c: START + timedelta(minutes=rng.randrange(DAYS * 1440 // 2)) for c in ids}
    yield (
        members,
        [
            {
                "customer_id": c,
                "first_seen_at": joined[c],
                "tags": [],
                "points_available": 0,
                "points_pending": 0,
                "points_debt": 0,
                "lifetime_spend": Decimal(0),
                "order_count": 0,
                "events_applied": 0,
            }
            for c in ids
        ],
    )
    tiers = []
    for c in rng.sample(ids, member_count // 3):
        at = joined[c] + timedelta(days=rng.randrange(30, 400))
        tiers.append(
            {
                "customer_id": c,
                "to_tier": rng.choice(LEVELS),
                "reason": "qualified",
                "occurred_at": at,
            }
        )
        if rng.random() < 0.3:
            lowered = at + timedelta(days=rng.randrange(30, 300))
            tiers.append(
                {"customer_id": c, "to_tier": "silver", "reason": "review", "occurred_at": lowered}
            )
    yield tier_history, tiers
    yield (
        referrals,
        [
            {
                "referee_id": c,
                "referrer_id": rng.choice(ids),
                "event_id": f"ref-{c}",
                "occurred_at": joined[c],
                "rewarded": 1,
            }
            for c in rng.sample(ids, member_count // 10)
        ],
    )
    # Rows are written in time order, as the service appends them: what a purchase causes
    # later (release, redemption, clawback, expiry, an activity) waits in a heap.
    later: list[tuple[datetime, int, Any, dict[str, Any]]] = []
    serial = itertools.count()
    batch: dict[Any, list[dict[str, Any]]] = {
        events: [],
        orders: [],
        point_lots: [],
        ledger_entries: [],
    }
    by_joining = sorted(ids, key=joined.__getitem__)
    joins = [joined[c] for c in by_joining]
    times = sorted(START + timedelta(seconds=rng.randrange(DAYS * 86400)) for _ in range(purchases))
    for n, earned_at in enumerate(times):
        while later and later[0][0] <= earned_at:
            _, _, table, row = heapq.heappop(later)
            batch[table].append(row)
        lot_id = n + 1
        eligible = bisect.bisect_right(joins, earned_at) or 1
        customer = by_joining[rng.randrange(eligible)]
        amount = Decimal(rng.randrange(500, 60_000)) / 100
        points = int(amount)
        event_id, order_id = f"evt-{n}", f"order-{n}"
        pending = rng.random() < 0.3
        available_at = earned_at + timedelta(days=14) if pending else earned_at
        expires_at = earned_at + timedelta(days=365)
        refunded = amount if rng.random() < 0.05 else Decimal(0)
        batch[events].append(_event(event_id, customer, "purchase", earned_at))
        batch[orders].append(
            {
                "customer_id": customer,
                "order_id": order_id,
                "amount": amount,
                "occurred_at": earned_at,
                "points_earned": points,
                "points_clawed": points if refunded else 0,
                "refunded_amount": refunded,
                "event_id": event_id,
            }
        )
        lines = [("pending" if pending else "earned", points, earned_at)]
        left = points
        if refunded:
            lines.append(("clawed_back", -left, earned_at + timedelta(days=3)))
            left = 0
        if pending:
            lines.append(("released", 0, available_at))
        spend_at = available_at + timedelta(days=rng.randrange(1, 300))
        if left and rng.random() < 0.4 and spend_at < min(expires_at, END):
            spent = rng.randrange(1, left + 1)
            lines.append(("redeemed", -spent, spend_at))
            left -= spent
        if left and expires_at <= END:
            lines.append(("expired", -left, expires_at))
            left = 0
        lines = [line for line in lines if line[2] < END]
        batch[point_lots].append(
            {
                "id": lot_id,
                "customer_id": customer,
                "event_id": event_id,
                "order_id": order_id,
                "earned_at": earned_at,
                "available_at": available_at,
                "expires_at": expires_at,
                "points": points,
                "remaining": points + sum(moved for _, moved, _ in lines),
                "pending": int(pending and available_at >= END),
            }
        )
        for kind, moved, at in lines:
            row = {
                "customer_id": customer,
                "kind": kind,
                "points": moved,
                "debt": 0,
                "event_id": event_id if kind in ("earned", "pending", "clawed_back") else None,
                "campaign": rng.choice(("base-earn", "weekend-double-points"))
                if kind in ("earned", "pending")
                else None,
                "order_id": order_id,
                "lot_id": lot_id,
                "occurred_at": at,
                "recorded_at": at,
            }
            heapq.heappush(later, (at, next(serial), ledger_entries, row))
        if rng.random() < 0.3:
            at = earned_at + timedelta(hours=rng.randrange(1, 2000))
            if at < END:
                act = _event(f"act-{n}", customer, "activity", at)
                heapq.heappush(later, (at, next(serial), events, act))
        if len(batch[ledger_entries]) >= CHUNK:
            yield from batch.items()
            batch = {table: [] for table in batch}
    while later:
        _, _, table, row = heapq.heappop(later)
        batch[table].append(row)
    yield from batch.items()


def _event(event_id: str, customer: str, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "occurred_at": at,
        "recorded_at": at,
        "body_hash": "0" * 64,
        "payload": {},
        "result": {},
        "rules_version": "bench",
    }


def fill(engine: Engine, entries: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        for table, rows in synthetic_rows(entries):
            if rows:
                connection.execute(insert(table), rows)
                counts[table.name] = counts.get(table.name, 0) + len(rows)
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT setval('point_lots_id_seq', (SELECT max(id) FROM point_lots))")
            )
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return counts


@contextmanager
def statement_times(engine: Engine) -> Iterator[list[tuple[str, float]]]:
    """The wall time of each statement run inside the block, with its first words."""
    times: list[tuple[str, float]] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        times.append(
            (" ".join(statement.split())[:90], time.perf_counter() - conn.info["bench_started"])
        )

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def best_of(
    runs: int, work: Callable[[], Any], engine: Engine
) -> tuple[float, list[tuple[str, float]]]:
    best: tuple[float, list[tuple[str, float]]] = (float("inf"), [])
    for _ in range(runs):
        with statement_times(engine) as times:
            started = time.perf_counter()
            work()
            took = time.perf_counter() - started
        if took < best[0]:
            best = (took, list(times))
    return best


def measure(url: str, entries: int, runs: int, explain: bool, *, filled: bool = False) -> None:
    engine = make_engine(url)
    if not filled:
        upgrade(engine)
        started = time.perf_counter()
        counts = fill(engine, entries)
        print(
            f"  filled in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        )
    ruleset = load_rules(read_rules_dir(str(ROOT / "rules"))).ruleset
    reads = lambda: SqlReportReads(engine)  # noqa: E731
    cases = {
        "kpis, a month": lambda: kpi_report(reads, ruleset, date(2026, 6, 1), date(2026, 7, 1)),
        "kpis, a year": lambda: kpi_report(reads, ruleset, date(2026, 1, 1), date(2027, 1, 1)),
        "kpis, everything": lambda: kpi_report(reads, ruleset, date(2024, 1, 1), date(2027, 1, 1)),
        "liability, at the end": lambda: liability_report(
            reads, ruleset.programme, date(2026, 12, 31)
        ),
        "liability, a year before": lambda: liability_report(
            reads, ruleset.programme, date(2025, 12, 31)
        ),
    }
    for name, work in cases.items():
        took, times = best_of(runs, work, engine)
        print(f"  {name:26} {took * 1000:8.0f} ms")
        for statement, seconds in sorted(times, key=lambda t: -t[1])[:4]:
            print(f"      {seconds * 1000:7.0f} ms  {statement}")
    if explain and engine.dialect.name == "postgresql":
        _explain(engine, ruleset)
    engine.dispose()


def _explain(engine: Engine, ruleset: Any) -> None:
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    kpi_report(lambda: SqlReportReads(engine), ruleset, date(2026, 6, 1), date(2026, 7, 1))
    event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                cursor.execute("EXPLAIN ANALYZE " + statement, parameters)
                print("\n".join(row[0] for row in cursor.fetchall()) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--url", help="a database filled by an earlier run: measure only")
    args = parser.parse_args()
    if args.url:
        measure(args.url, args.entries, args.runs, args.explain, filled=True)
        return
    for name in args.databases.split(","):
        print(f"{name}, about {args.entries:,} ledger entries")
        maker = sqlite_database(ROOT / "var" / "bench") if name == "sqlite" else postgres_database()
        with maker as url:
            measure(url, args.entries, args.runs, args.explain)


if __name__ == "__main__":
    main()
