"""The event path's statements on the driver's cursor (service.storage.driver), and the
queue SQLite writers wait in (service.storage.database.WriterQueue).

Storage cases run on SQLite and PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import bindparam, create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from service.bootstrap import Services
from service.storage.database import make_engine
from service.storage.driver import Driver, Statement
from service.storage.migrate import upgrade
from service.storage.store import INSERT_EVENT, SELECT_ORDERS_BETWEEN, SqlStore
from service.storage.tables import events, ledger_entries, orders, point_lots
from tests.service.helpers import SATURDAY, add_member, post, purchase

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
    # ledger lines, written in one batch, each line taking the id of the lot just before.
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


def test_values_go_in_and_come_out_as_through_sqlalchemy(services: Services) -> None:
    with services.db.connect() as connection:
        connection.begin()
        driver = Driver(connection)
        driver.execute(INSERT_EVENT, _event_row("e-1"))
        connection.execute(
            insert(orders).values(
                customer_id="ann",
                order_id="o-1",
                event_id="e-1",
                amount=Decimal("12.5"),
                occurred_at=AT,
                points_earned=12,
                points_clawed=0,
                refunded_amount=Decimal("0.25"),
            )
        )
        stored = connection.execute(select(events).where(events.c.event_id == "e-1")).one()
        assert stored.payload == {"amount": "12.50", "items": [{"sku": "a"}]}
        assert stored.occurred_at == AT
        rows = driver.fetch(
            SELECT_ORDERS_BETWEEN,
            {"b_customer_id": "ann", "b_since": AT - timedelta(days=1), "b_until": AT},
        )
        assert rows == [(Decimal("12.5000"), Decimal("0.2500"))]
        in_list = Statement(
            select(events.c.event_id, events.c.occurred_at, events.c.result).where(
                events.c.event_id.in_(bindparam("b_ids", expanding=True))
            )
        )
        found = driver.fetch(in_list, {"b_ids": ("e-1", "e-2")})
        assert found == [("e-1", AT, {"status": "applied"})]
        connection.rollback()


def test_a_unique_violation_in_a_batch_raises_and_the_transaction_keeps_nothing(
    services: Services,
) -> None:
    with services.db.connect() as connection:
        connection.begin()
        driver = Driver(connection)
        with pytest.raises(IntegrityError):
            driver.fetch_all(
                [(INSERT_EVENT, _event_row("e-1")), (INSERT_EVENT, _event_row("e-1"))],
                want_rows=False,
            )
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
    try:
        held = first.connect()
        held.begin()
        held.execute(insert(events).values(_event_row("e-1")))
        order.append("first wrote")

        def other_writer() -> None:
            with second.connect() as connection:
                second_waiting.set()
                connection.begin()  # waits in the queue until the first commits
                order.append("second began")
                connection.execute(insert(events).values(_event_row("e-2")))
                connection.commit()

        thread = threading.Thread(target=other_writer)
        thread.start()
        assert second_waiting.wait(10)
        thread.join(0.3)
        assert thread.is_alive(), "the second writer must wait while the first holds the queue"
        order.append("first commits")
        held.commit()
        # The first connection stays checked out; the queue is left at commit regardless.
        thread.join(10)
        assert not thread.is_alive()
        assert order == ["first wrote", "first commits", "second began"]
        held.close()
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
    # On PostgreSQL the event path sends values quoted into one text of several
    # statements; whatever a client writes must come back byte for byte.
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
    name = services.db.url.database
    admin = create_engine(str(services.db.url.set(database="test")), poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        connection.commit()
    admin.dispose()

    # No ping before each checkout: the request that meets the dead connection may fail;
    # the connection is discarded, and the next request works.
    statuses = [post(client, purchase("ann", "10")).status_code for _ in range(3)]
    assert statuses[-1] == 201
    assert statuses.count(500) <= 1
