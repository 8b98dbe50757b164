"""The event path's storage (service.storage.event_store), and the queue SQLite writers
wait in (service.storage.database.WriterQueue).

Storage cases run on SQLite and PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from service.application.event_ports import GroupWrite
from service.application.ports import DuplicateEvent, StoredEvent
from service.bootstrap import Services
from service.storage.database import make_engine
from service.storage.migrate import upgrade
from service.storage.store import SqlStore
from service.storage.tables import events, ledger_entries, orders, point_lots
from service.storage.unit_of_work import SqlUnitOfWork
from tests.service.helpers import SATURDAY, add_member, post, purchase, terminate_connections

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _event_row(event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "customer_id": "ann",
        "type": "purchase",
        "occurred_at": AT,
        "recorded_at": AT,
        "body_hash": "0" * 64,
        "payload": {"amount": "12.50", "items": [{"sku": "a"}]},
        "result": {"status": "applied"},
        "rules_version": "v1",
    }


def test_each_new_lots_ledger_line_names_that_lot(client: FlaskClient, services: Services) -> None:
    # A gold member's Saturday app purchase earns from two campaigns: two lots, two
    # ledger lines, written in one group, each line naming its own lot.
    add_member(services.db, "ann", tier="gold")
    body = purchase("ann", "120.80", channel="app", occurred_at=SATURDAY)
    assert post(client, body).status_code == 201
    post(client, purchase("bob", "30.00", occurred_at=SATURDAY))

    with services.db.connect() as connection:
        lines = connection.execute(
            select(
                ledger_entries.c.points,
                ledger_entries.c.campaign,
                point_lots.c.points,
                point_lots.c.event_id,
                point_lots.c.customer_id,
            )
            .join(point_lots, point_lots.c.id == ledger_entries.c.lot_id)
            .where(ledger_entries.c.customer_id == "ann")
            .order_by(ledger_entries.c.id)
        ).all()
    assert len(lines) == 2
    assert {line.campaign for line in lines} == {"base-earn", "weekend-double-points"}
    for line_points, _campaign, lot_points, lot_event, lot_member in lines:
        assert (line_points, lot_event, lot_member) == (lot_points, body["event_id"], "ann")


def test_a_repeated_event_id_in_a_group_raises_and_the_transaction_keeps_nothing(
    services: Services,
) -> None:
    with services.db.connect() as connection:
        connection.begin()
        store = SqlStore(connection)
        stored = StoredEvent("e-1", "ann", "purchase", AT, "0" * 64, {}, {}, "v1")
        with pytest.raises(DuplicateEvent):
            store.write_group(GroupWrite(events=[stored, stored]), AT)
        connection.rollback()
    with services.db.connect() as connection:
        assert connection.execute(select(events)).all() == []


def test_the_store_reads_an_event_and_its_member_in_one_call(services: Services) -> None:
    with services.db.connect() as connection:
        connection.begin()
        store = SqlStore(connection)
        member = store.lock_member("ann", AT)
        again = store.lock_member("ann", AT + timedelta(days=1))
        assert again == member  # created once, then only locked
        assert store.find_event("nope") is None
        connection.rollback()


# -- SQLite's writer queue


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def test_sqlite_writers_take_turns_and_leave_the_queue_at_commit(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    first, second = make_engine(url), make_engine(url)  # as two gunicorn workers
    order: list[str] = []
    second_waiting = threading.Event()
    second_began = threading.Event()
    try:
        unit = SqlUnitOfWork(first)
        unit.__enter__()
        unit.store.db.execute(insert(events).values(_event_row("e-1")))
        order.append("first wrote")

        def other_writer() -> None:
            with second.connect() as connection:
                second_waiting.set()
                connection.begin()  # waits in the queue until the first commits
                order.append("second began")
                second_began.set()
                connection.execute(insert(events).values(_event_row("e-2")))
                connection.commit()

        thread = threading.Thread(target=other_writer)
        thread.start()
        assert second_waiting.wait(10)
        assert not second_began.wait(0.3), "the second writer must wait for the first"
        order.append("first commits")
        unit.commit()
        # The first unit of work is still open; the queue is left at commit regardless.
        assert second_began.wait(10)
        thread.join(10)
        assert order == ["first wrote", "first commits", "second began"]
        unit.__exit__(None, None, None)
        with first.connect() as connection:
            ids = connection.execute(select(events.c.event_id).order_by(events.c.event_id))
            assert [row[0] for row in ids] == ["e-1", "e-2"]
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_readers_do_not_queue_behind_a_writer(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    engine = make_engine(url)
    try:
        writer = engine.connect()
        writer.begin()
        writer.execute(insert(events).values(_event_row("e-1")))
        with engine.connect().execution_options(readonly=True) as reader:
            reader.begin()
            assert reader.execute(select(events)).all() == []  # WAL: the last commit
        writer.rollback()
        writer.close()
    finally:
        engine.dispose()


def test_text_with_quotes_and_semicolons_round_trips_exactly(
    client: FlaskClient, services: Services
) -> None:
    # Whatever a client writes must come back byte for byte.
    tricky = 'o\';DROP_TABLE_events;--\\\\"q"$1%s%(x)s'  # ids: printable ASCII
    text = "l'été; DROP TABLE events; -- \\\\ %s 🎟"
    body = purchase("x'y;z", "12.50", order_id=tricky, store_id=tricky)
    body["items"] = [{"sku": tricky, "category": text, "quantity": 1, "price": "12.50"}]
    answer = post(client, body)
    assert answer.status_code == 201, answer.get_data(as_text=True)

    again = post(client, body)
    assert again.get_json()["status"] == "duplicate"
    with services.db.connect() as connection:
        stored = connection.execute(select(events).where(events.c.event_id == body["event_id"]))
        row = stored.one()
        assert row.customer_id == "x'y;z"
        assert row.payload["order_id"] == tricky
        assert row.payload["items"][0] == {
            "sku": tricky,
            "category": text,
            "quantity": "1",
            "price": "12.5",  # the canonical form of the event
        }
        assert connection.execute(select(orders.c.order_id)).scalar_one() == tricky


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # a server to drop them
def test_after_the_database_drops_its_connections_the_service_recovers(
    client: FlaskClient, services: Services
) -> None:
    assert post(client, purchase("ann", "10")).status_code == 201
    terminate_connections(services.db)

    # No ping before each checkout: the request that meets the dead connection discards
    # it and tries again on a fresh one; the next requests work.
    statuses = [post(client, purchase("ann", "10")).status_code for _ in range(3)]
    assert statuses[-1] == 201
    assert statuses.count(500) <= 1
