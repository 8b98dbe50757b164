"""A member's copy of their data, and erasure that keeps every amount under a pseudonym."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from service.application.personal_data import erase_member, export_member
from service.bootstrap import Services
from service.core.errors import NotFound
from service.storage.tables import erasures, events, ledger_entries, members, metadata, orders
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import WEDNESDAY, activity, event, purchase, refund

EMAIL, PHONE, BIRTHDAY = "li.wei@example.cn", "+8613800138000", "1990-03-14"


def _enrol_and_shop(client: FlaskClient, customer_id: str) -> str:
    profile = {"email": EMAIL, "phone": PHONE, "birthday": BIRTHDAY, "tags": ["vip-li"]}
    answer = client.post(
        "/v1/events", json=event("enrolment", customer_id, profile=profile), headers=AUTH
    )
    assert answer.status_code == 201, answer.get_json()
    bought = purchase(customer_id, "300.00")
    assert client.post("/v1/events", json=bought, headers=AUTH).status_code == 201
    client.post("/v1/events", json=refund(customer_id, bought["order_id"], "50.00"), headers=AUTH)
    noted = activity(customer_id, "review", WEDNESDAY, attributes={"note": f"call {PHONE}"})
    assert client.post("/v1/events", json=noted, headers=AUTH).status_code == 201
    referred = event("referral", "friend-of-li", referrer_id=customer_id)
    assert client.post("/v1/events", json=referred, headers=AUTH).status_code == 201
    return str(bought["order_id"])


def _totals(db: Engine) -> tuple[Any, ...]:
    with db.connect() as connection:
        return (
            connection.scalar(select(func.count()).select_from(members)),
            connection.scalar(select(func.sum(members.c.points_available))),
            connection.scalar(select(func.sum(members.c.lifetime_spend))),
            connection.scalar(select(func.sum(ledger_entries.c.points))),
            connection.scalar(select(func.count()).select_from(ledger_entries)),
            connection.scalar(select(func.sum(orders.c.amount))),
        )


def _every_text_in_the_database(db: Engine) -> str:
    found = []
    with db.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                found.append(repr(tuple(row)))
    return "\n".join(found)


def test_the_export_holds_everything_about_the_member(
    client: FlaskClient, services: Services
) -> None:
    order_id = _enrol_and_shop(client, "li-1")
    copy = export_member(services.uow, "li-1")
    assert copy["profile"]["email"] == EMAIL
    assert copy["profile"]["birthday"] == BIRTHDAY
    assert {e["type"] for e in copy["events"]} == {"enrolment", "purchase", "refund", "activity"}
    assert any(line["order_id"] == order_id for line in copy["ledger"])
    assert [o["order_id"] for o in copy["orders"]] == [order_id]
    assert copy["referrals"][0]["referee_id"] == "friend-of-li"
    assert copy["point_lots"]
    assert {"tier_history", "messages", "offers", "redemptions"} <= set(copy)
    with pytest.raises(NotFound):
        export_member(services.uow, "nobody")


def test_erasure_leaves_nothing_personal_and_every_sum_unchanged(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _enrol_and_shop(client, "li-1")
    before = _totals(services.db)

    erasure = erase_member(services.uow, "li-1", "support-desk", clock())

    assert _totals(services.db) == before
    everything = _every_text_in_the_database(services.db)
    for personal in ("li-1", EMAIL, PHONE, BIRTHDAY, "1990, 3, 14", "vip-li"):
        assert personal not in everything, personal
    assert erasure.pseudonym in everything
    with services.db.connect() as connection:
        record = connection.execute(select(erasures)).one()
    assert (record.pseudonym, record.erased_by, record.erased_at) == (
        erasure.pseudonym,
        "support-desk",
        clock(),
    )
    # The referee keeps their referrer, now named by the pseudonym.
    friend = client.get("/v1/customers/friend-of-li", headers=AUTH).get_json()
    assert friend["customer_id"] == "friend-of-li"
    with services.db.connect() as connection:
        referred_by = connection.scalar(
            select(members.c.referred_by).where(members.c.customer_id == "friend-of-li")
        )
        friends_event = connection.scalar(
            select(events.c.payload).where(events.c.customer_id == "friend-of-li")
        )
    assert referred_by == erasure.pseudonym
    assert friends_event["referrer_id"] == erasure.pseudonym
    assert friends_event["customer_id"] == "friend-of-li"


def test_a_later_event_for_an_erased_id_starts_a_new_member(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _enrol_and_shop(client, "li-1")
    erase_member(services.uow, "li-1", "support-desk", clock())
    assert client.get("/v1/customers/li-1", headers=AUTH).status_code == 404

    assert (
        client.post("/v1/events", json=purchase("li-1", "10.00"), headers=AUTH).status_code == 201
    )

    fresh = client.get("/v1/customers/li-1", headers=AUTH).get_json()
    assert fresh["order_count"] == 1
    assert fresh["lifetime_spend"] == "10"
    with pytest.raises(NotFound):
        erase_member(services.uow, "nobody", "support-desk", clock())
