"""Adjustments, transfers, export and erasure, and the catalogues, over HTTP on both
databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient

from service.bootstrap import Services
from service.settings import ApiKey
from tests.conftest import AUTH
from tests.service.helpers import (
    app_for,
    assert_balanced,
    event,
    member_row,
    post,
    purchase,
    services_for,
)

DESK = {"Authorization": "Bearer desk-secret"}
READER = {"Authorization": "Bearer reader-secret"}


def _adjust(
    client: FlaskClient, customer_id: str, headers: dict[str, str] = AUTH, **body: Any
) -> Any:
    return client.post(f"/v1/customers/{customer_id}/adjustments", json=body, headers=headers)


def test_an_adjustment_answers_201_then_200_and_409_for_another_body(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("ann", "100"))
    body = {"adjustment_id": "goodwill-1", "points": 50, "reason": "late parcel"}

    first = _adjust(client, "ann", **body)
    again = _adjust(client, "ann", **body)
    changed = _adjust(client, "ann", **{**body, "points": 60})

    assert first.status_code == 201, first.get_json()
    assert first.get_json()["status"] == "applied"
    assert first.get_json()["made_by"] == "development"
    assert first.get_json()["balance"]["points_available"] == 150
    assert again.status_code == 200
    assert again.get_json()["status"] == "duplicate"
    assert changed.status_code == 409
    assert assert_balanced(services.db, "ann")["available"] == 150


def test_adjustments_refuse_bad_bodies_and_unknown_members(client: FlaskClient) -> None:
    post(client, purchase("ann", "100"))
    zero = _adjust(client, "ann", adjustment_id="a", points=0, reason="r")
    stringly = _adjust(client, "ann", adjustment_id="a", points="5", reason="r")
    unknown = _adjust(client, "ann", adjustment_id="a", points=5, reason="r", by="me")
    nobody = _adjust(client, "nobody", adjustment_id="a", points=5, reason="r")
    short = _adjust(client, "ann", adjustment_id="b", points=-101, reason="r")

    assert (zero.status_code, stringly.status_code, unknown.status_code) == (422, 422, 422)
    assert "points" in zero.get_json()["errors"]
    assert nobody.status_code == 404
    assert short.status_code == 409
    assert short.get_json()["title"] == "Not enough points"


def test_a_debit_with_allow_debt_records_the_rest_as_debt_and_credits_pay_it_first(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("ann", "100"))
    owed = _adjust(client, "ann", adjustment_id="d", points=-130, reason="r", allow_debt=True)
    assert owed.get_json()["balance"] == {
        "customer_id": "ann",
        "points_available": 0,
        "points_debt": 30,
    }
    paid = _adjust(client, "ann", adjustment_id="c", points=50, reason="sorry")
    assert paid.get_json()["balance"]["points_debt"] == 0
    assert paid.get_json()["balance"]["points_available"] == 20
    assert_balanced(services.db, "ann")


def test_the_ledger_names_the_key_that_adjusted(services: Services) -> None:
    scopes = frozenset({"events:write", "customers:write", "customers:read"})
    keys = (ApiKey("desk-secret", scopes, "desk"),)
    with services_for(replace(services.settings, api_keys=keys)) as svc:
        client = app_for(svc).test_client()
        client.post("/v1/events", json=purchase("ann", "100"), headers=DESK)
        _adjust(client, "ann", DESK, adjustment_id="x", points=5, reason="birthday")
        ledger = client.get("/v1/customers/ann/ledger", headers=DESK).get_json()["entries"]
    line = next(e for e in ledger if e["kind"] == "adjustment")
    assert line["note"] == "birthday (by desk)"


def test_debits_racing_redemptions_never_overdraw(client: FlaskClient, services: Services) -> None:
    post(client, purchase("rio", "1000"))  # 1,000 points
    app = app_for(services)
    clients = [app.test_client() for _ in range(16)]
    barrier = threading.Barrier(16, timeout=60)

    def spend(n: int) -> int:
        barrier.wait()
        if n % 2:
            body = {"reward_id": "free-coffee", "redemption_id": f"r-{n}"}  # 500 points
            path = "/v1/customers/rio/redemptions"
        else:
            body = {"adjustment_id": f"a-{n}", "points": -150, "reason": "correction"}
            path = "/v1/customers/rio/adjustments"
        return clients[n].post(path, json=body, headers=AUTH).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(spend, range(16)))
    assert set(statuses) <= {201, 409}
    spent = sum((500 if n % 2 else 150) for n, status in enumerate(statuses) if status == 201)
    balance = assert_balanced(services.db, "rio")
    assert spent <= 1000
    assert balance["available"] == 1000 - spent
    assert balance["debt"] == 0


def test_transfers_are_refused_unless_the_programme_allows_them(client: FlaskClient) -> None:
    post(client, purchase("giver", "300"))
    post(client, purchase("taker", "10"))
    answer = client.post(
        "/v1/customers/giver/transfers",
        json={"transfer_id": "t-1", "to": "taker", "points": 5},
        headers=AUTH,
    )
    assert answer.status_code == 403
    assert answer.get_json()["title"] == "Transfers not allowed"
    to_self = client.post(
        "/v1/customers/giver/transfers",
        json={"transfer_id": "t-2", "to": "giver", "points": 5},
        headers=AUTH,
    )
    assert to_self.status_code == 422


def test_export_and_erasure_need_admin_and_erasure_keeps_the_amounts(services: Services) -> None:
    keys = (
        ApiKey("reader-secret", frozenset({"events:write", "customers:read"}), "reader"),
        ApiKey("dpo-secret", frozenset({"admin"}), "dpo"),
    )
    dpo = {"Authorization": "Bearer dpo-secret"}
    with services_for(replace(services.settings, api_keys=keys)) as svc:
        api = app_for(svc).test_client()
        enrolment = event("enrolment", "li", profile={"email": "li@example.cn"})
        assert api.post("/v1/events", json=enrolment, headers=READER).status_code == 201
        assert api.post("/v1/events", json=purchase("li", "300"), headers=READER).status_code == 201
        assert api.get("/v1/customers/li/export", headers=READER).status_code == 403
        copy = api.get("/v1/customers/li/export", headers=dpo)
        assert copy.status_code == 200
        assert copy.get_json()["profile"]["email"] == "li@example.cn"
        assert api.delete("/v1/customers/li", headers=READER).status_code == 403
        before = api.get("/v1/customers/li", headers=READER).get_json()["points"]["available"]
        erased = api.delete("/v1/customers/li", headers=dpo)
        assert erased.status_code == 200
        receipt = erased.get_json()
        assert receipt["customer_id"] == "li"
        assert receipt["erased_by"] == "dpo"
        assert receipt["pseudonym"].startswith("erased-")
        assert api.get("/v1/customers/li", headers=READER).status_code == 404
        assert api.delete("/v1/customers/li", headers=dpo).status_code == 404
        kept = member_row(svc.db, receipt["pseudonym"])
        assert kept is not None
        assert kept["email"] is None
        assert kept["points_available"] == before > 0


def test_the_catalogues_list_rewards_and_offers(client: FlaskClient) -> None:
    rewards = client.get("/v1/rewards", headers=AUTH).get_json()["rewards"]
    offers = client.get("/v1/offers", headers=AUTH).get_json()["offers"]
    coffee = next(r for r in rewards if r["id"] == "free-coffee")
    assert coffee == {
        "id": "free-coffee",
        "title": "A free coffee",
        "description": "",
        "cost": 500,
        "stock": None,
        "stock_left": None,
        "per_member": None,
    }
    birthday = next(o for o in offers if o["id"] == "birthday-20")
    assert birthday["discount_percent"] == "20"
    assert birthday["valid_for_days"] == 30
