"""Events raced from parallel clients: nothing applied twice, nothing lost.

Each thread has its own Flask test client on the same app; a barrier releases them
together. Runs on PostgreSQL (row locks) and SQLite (one writer at a time)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from service.bootstrap import Services
from service.settings import Settings
from service.storage.tables import campaign_budgets, events
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import (
    app_for,
    assert_balanced,
    flat_hundred_campaign,
    ledger_rows,
    member_row,
    points_of,
    purchase,
    services_for,
    write_rules,
)

PARALLEL = 20
FEWER = 10  # for the races that add members rather than contention


def race(
    app: Flask, bodies: list[dict[str, Any]], paths: list[str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Post every body at once (to /v1/events, or each to its path), each from its own
    thread and client; (status, answer) each."""
    barrier = threading.Barrier(len(bodies), timeout=30)

    def send(body: dict[str, Any], path: str) -> tuple[int, dict[str, Any]]:
        client = app.test_client()
        barrier.wait()
        response = client.post(path, json=body, headers=AUTH)
        return response.status_code, response.get_json(force=True)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies, paths or ["/v1/events"] * len(bodies)))


def statuses(results: list[tuple[int, dict[str, Any]]]) -> Counter[int]:
    return Counter(status for status, _ in results)


def test_the_same_purchase_posted_at_once_earns_once(app: Flask, services: Services) -> None:
    body = purchase("ann", "120.80")

    results = race(app, [body] * PARALLEL)

    assert statuses(results) == {201: 1, 200: PARALLEL - 1}, results
    applied = next(answer for status, answer in results if status == 201)
    for status, answer in results:
        assert answer["effects"] == applied["effects"]
        assert answer["status"] == ("applied" if status == 201 else "duplicate")
    earned = [r for r in ledger_rows(services.db, "ann") if r["kind"] == "earned"]
    assert [r["points"] for r in earned] == [120]
    assert assert_balanced(services.db, "ann")["available"] == 120
    member = member_row(services.db, "ann")
    assert member is not None
    assert member["order_count"] == 1
    assert member["events_applied"] == 1


def test_different_purchases_of_one_member_at_once_all_earn(app: Flask, services: Services) -> None:
    bodies = [purchase("bob", str(10 + n)) for n in range(PARALLEL)]

    results = race(app, bodies)

    assert statuses(results) == {201: PARALLEL}, results
    expected = sum(10 + n for n in range(PARALLEL))
    assert assert_balanced(services.db, "bob")["available"] == expected
    assert max(answer["customer"]["points"]["available"] for _, answer in results) == expected
    member = member_row(services.db, "bob")
    assert member is not None
    assert member["order_count"] == PARALLEL
    assert member["events_applied"] == PARALLEL


def test_purchases_of_many_members_at_once_all_earn(app: Flask, services: Services) -> None:
    bodies = [purchase(f"many-{n % 5}", "10") for n in range(FEWER)]

    results = race(app, bodies)

    assert statuses(results) == {201: FEWER}, results
    for n in range(5):
        assert assert_balanced(services.db, f"many-{n}")["available"] == 10 * FEWER // 5


def test_one_event_id_raced_for_two_customers_is_applied_once(
    app: Flask, services: Services
) -> None:
    for_cat = purchase("cat", "40")
    for_dan = {**for_cat, "customer_id": "dan"}

    results = race(app, [for_cat, for_dan] * (PARALLEL // 2))

    assert statuses(results)[201] == 1, results
    winner = next(answer for status, answer in results if status == 201)
    winner_id = winner["customer"]["customer_id"]
    loser_id = "dan" if winner_id == "cat" else "cat"
    for (status, answer), body in zip(results, [for_cat, for_dan] * (PARALLEL // 2), strict=True):
        if status == 201:
            continue
        if body["customer_id"] == winner_id:
            assert (status, answer["status"]) == (200, "duplicate"), answer
        else:
            assert status == 409, answer
            assert answer["status"] == 409
    assert assert_balanced(services.db, winner_id)["available"] == 40
    loser = member_row(services.db, loser_id)
    assert loser is None or loser["points_available"] == 0
    assert ledger_rows(services.db, loser_id) == []
    with services.db.connect() as connection:
        stored = (
            connection.execute(
                select(events.c.customer_id).where(events.c.event_id == for_cat["event_id"])
            )
            .scalars()
            .all()
        )
    assert stored == [winner_id]


def test_a_mix_of_repeats_and_new_events_at_once(app: Flask, services: Services) -> None:
    repeated = [purchase("eve", "7") for _ in range(4)]
    bodies = [repeated[n % 4] for n in range(FEWER)]

    results = race(app, bodies)

    assert statuses(results) == {201: 4, 200: FEWER - 4}, results
    assert assert_balanced(services.db, "eve")["available"] == 28


BUDGET_CAMPAIGN = flat_hundred_campaign("small-budget", 650)


def test_a_budget_raced_by_many_members_is_never_overspent(
    database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    rules = write_rules(tmp_path / "rules", {"small-budget.yaml": BUDGET_CAMPAIGN})
    settings = Settings(database_url=database_url, rules_dir=str(rules), engine="durable")
    with services_for(settings, clock) as services:
        bodies = [purchase(f"budget-{n}", "1") for n in range(FEWER)]

        results = race(app_for(services), bodies)

        assert statuses(results) == {201: FEWER}, results
        awarded = sorted((points_of(answer) for _, answer in results), reverse=True)
        assert awarded == [100] * 6 + [50] + [0] * (FEWER - 7)
        with services.db.connect() as connection:
            used = connection.execute(
                select(campaign_budgets.c.points_used).where(
                    campaign_budgets.c.campaign == "small-budget"
                )
            ).scalar_one()
        assert used == 650
        total = sum(assert_balanced(services.db, f"budget-{n}")["available"] for n in range(FEWER))
        assert total == 650


def test_batches_sharing_members_and_events_apply_each_event_once(
    app: Flask, services: Services
) -> None:
    # Six batches of the same thirty purchases of five members, each starting elsewhere
    # in the list, and singles of some of them, all at once: every event is applied by
    # exactly one request, whatever the batches' transactions and their fallbacks did.
    sent = [purchase(f"bat-{n % 5}", str(10 + n)) for n in range(30)]
    batches = [{"events": sent[i:] + sent[:i]} for i in range(0, 30, 5)]
    singles = sent[:4]
    paths = ["/v1/events/batch"] * len(batches) + ["/v1/events"] * len(singles)
    results = race(app, batches + singles, paths)

    items = [item for status, answer in results[:6] for item in answer["results"]]
    assert {status for status, _ in results[:6]} == {200}
    applied = Counter(item["event_id"] for item in items if item["http_status"] == 201)
    applied.update(answer["event_id"] for status, answer in results[6:] if status == 201)
    assert applied == Counter({body["event_id"]: 1 for body in sent})
    assert {item["status"] for item in items} <= {"applied", "duplicate"}
    for member in range(5):
        expected = sum(10 + n for n in range(member, 30, 5))
        assert assert_balanced(services.db, f"bat-{member}")["available"] == expected
