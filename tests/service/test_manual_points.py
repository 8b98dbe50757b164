"""Adjustments and transfers through the application layer, on both databases."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from service.application.manual_points import (
    Adjustment,
    Transfer,
    TransfersOff,
    adjust_points,
    transfer_points,
)
from service.bootstrap import Services
from service.core.errors import EventConflict, InsufficientPoints, NotFound
from service.core.programme import PointsPolicy
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import assert_balanced, purchase, refund

POLICY = PointsPolicy()


def _member_with(client: FlaskClient, customer_id: str, amount: str) -> str:
    bought = purchase(customer_id, amount)
    answer = client.post("/v1/events", json=bought, headers=AUTH)
    assert answer.status_code == 201, answer.get_json()
    return str(bought["order_id"])


def _points(client: FlaskClient, customer_id: str) -> dict[str, int]:
    return client.get(f"/v1/customers/{customer_id}", headers=AUTH).get_json()["points"]


def _adjustment(clock: FixedClock, points: int, **changes: object) -> Adjustment:
    made = Adjustment("adj-1", "m-1", points, "goodwill for a late parcel", False, "desk", clock())
    return replace(made, **changes)  # type: ignore[arg-type]


def test_a_credit_is_applied_once_and_a_changed_body_conflicts(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _member_with(client, "m-1", "100.00")
    before = _points(client, "m-1")["available"]

    first = adjust_points(services.uow, _adjustment(clock, 250), POLICY)
    again = adjust_points(services.uow, _adjustment(clock, 250), POLICY)

    assert (first.status, again.status) == ("created", "duplicate")
    assert _points(client, "m-1")["available"] == before + 250
    with pytest.raises(EventConflict):
        adjust_points(services.uow, _adjustment(clock, 300), POLICY)
    ledger = client.get("/v1/customers/m-1/ledger", headers=AUTH).get_json()["entries"]
    line = next(e for e in ledger if e["kind"] == "adjustment")
    assert line["points"] == 250
    assert line["note"] == "goodwill for a late parcel (by desk)"
    assert_balanced(services.db, "m-1")


def test_a_debit_beyond_the_balance_is_refused_unless_debt_is_allowed(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _member_with(client, "m-1", "100.00")
    available = _points(client, "m-1")["available"]

    with pytest.raises(InsufficientPoints):
        adjust_points(services.uow, _adjustment(clock, -(available + 40)), POLICY)
    assert _points(client, "m-1")["available"] == available

    owed = adjust_points(
        services.uow, _adjustment(clock, -(available + 40), allow_debt=True), POLICY
    )
    assert owed.balances[0].points_available == 0
    assert owed.balances[0].points_debt == 40
    assert_balanced(services.db, "m-1")


def test_a_credit_pays_debt_first(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    order_id = _member_with(client, "m-1", "600.00")
    spend = _points(client, "m-1")["available"]
    adjust_points(services.uow, _adjustment(clock, -spend, adjustment_id="spend"), POLICY)
    client.post("/v1/events", json=refund("m-1", order_id, "600.00"), headers=AUTH)
    debt = _points(client, "m-1")["debt"]
    assert debt > 0

    adjust_points(services.uow, _adjustment(clock, debt + 10, adjustment_id="credit"), POLICY)

    assert _points(client, "m-1") | {"expiring": []} == {
        "available": 10,
        "pending": 0,
        "debt": 0,
        "expiring": [],
    }
    assert_balanced(services.db, "m-1")


def test_an_adjustment_for_no_member_is_not_found(services: Services, clock: FixedClock) -> None:
    with pytest.raises(NotFound):
        adjust_points(services.uow, _adjustment(clock, 10, customer_id="nobody"), POLICY)


def test_a_transfer_moves_points_once_and_both_ledgers_show_it(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _member_with(client, "giver", "300.00")
    _member_with(client, "taker", "10.00")
    giver, taker = _points(client, "giver")["available"], _points(client, "taker")["available"]
    policy = replace(POLICY, transfers=True)
    request = Transfer("t-1", "giver", "taker", 100, "app", clock())

    assert transfer_points(services.uow, request, policy).status == "created"
    assert transfer_points(services.uow, request, policy).status == "duplicate"

    assert _points(client, "giver")["available"] == giver - 100
    assert _points(client, "taker")["available"] == taker + 100
    kinds = {
        who: [
            e["kind"]
            for e in client.get(f"/v1/customers/{who}/ledger", headers=AUTH).get_json()["entries"]
        ]
        for who in ("giver", "taker")
    }
    assert "transfer_out" in kinds["giver"]
    assert "transfer_in" in kinds["taker"]
    with pytest.raises(EventConflict):
        transfer_points(services.uow, replace(request, points=5), policy)
    with pytest.raises(InsufficientPoints):
        transfer_points(services.uow, replace(request, transfer_id="t-2", points=10**6), policy)
    assert_balanced(services.db, "giver")
    assert_balanced(services.db, "taker")


def test_transfers_need_the_programme_to_allow_them(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    _member_with(client, "giver", "300.00")
    _member_with(client, "taker", "10.00")
    with pytest.raises(TransfersOff):
        transfer_points(services.uow, Transfer("t-1", "giver", "taker", 1, "app", clock()), POLICY)
