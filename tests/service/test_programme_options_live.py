"""Programme options at work on both databases: reward stock and per-member limits under
racing redemptions, transfers, forgiven shortfalls, and points that never expire."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from service.bootstrap import Services
from service.settings import Settings
from service.storage.tables import point_lots
from tests.conftest import AUTH
from tests.service.helpers import (
    app_for,
    assert_balanced,
    post,
    purchase,
    refund,
    services_for,
    write_rules,
)

EXPIRY = "  expiry: {after: 365d, warn_before: [30d, 7d]}   # rolling from each earn, FIFO by lot\n"
COFFEE = "  - {id: free-coffee, title: A free coffee, cost: 500}"


@pytest.fixture
def options(tmp_path: Path, settings: Settings) -> Iterator[Services]:
    rules = write_rules(tmp_path / "rules", {}, keep_examples=True)
    program = (rules / "program.yaml").read_text()
    program = program.replace(EXPIRY, "  expiry: never\n  shortfall: forgive\n  transfers: true\n")
    program = program.replace(
        COFFEE, "  - {id: free-coffee, title: A free coffee, cost: 500, stock: 3, per_member: 2}"
    )
    (rules / "program.yaml").write_text(program)
    with services_for(replace(settings, rules_dir=str(rules))) as svc:
        yield svc


def _redeem(client: FlaskClient, customer_id: str, redemption_id: str) -> int:
    body = {"reward_id": "free-coffee", "redemption_id": redemption_id}
    answer = client.post(f"/v1/customers/{customer_id}/redemptions", json=body, headers=AUTH)
    return answer.status_code


def test_racing_redemptions_never_oversell_a_stock(options: Services) -> None:
    app = app_for(options)
    members = [f"m-{n}" for n in range(8)]
    for member in members:
        post(app.test_client(), purchase(member, "2000"))  # enough for four coffees each
    clients = [app.test_client() for _ in members]
    barrier = threading.Barrier(len(members), timeout=60)

    def redeem(n: int) -> int:
        barrier.wait()
        return _redeem(clients[n], members[n], f"race-{n}")

    with ThreadPoolExecutor(len(members)) as pool:
        statuses = sorted(pool.map(redeem, range(len(members))))
    assert statuses.count(201) == 3
    assert statuses.count(409) == 5
    rewards = app.test_client().get("/v1/rewards", headers=AUTH).get_json()["rewards"]
    assert next(r for r in rewards if r["id"] == "free-coffee")["stock_left"] == 0
    for member in members:
        assert_balanced(options.db, member)


def test_a_member_has_at_most_their_share_and_a_reversal_gives_stock_back(
    options: Services,
) -> None:
    client = app_for(options).test_client()
    post(client, purchase("ann", "5000"))
    assert _redeem(client, "ann", "r-1") == 201
    assert _redeem(client, "ann", "r-2") == 201
    third = client.post(
        "/v1/customers/ann/redemptions",
        json={"reward_id": "free-coffee", "redemption_id": "r-3"},
        headers=AUTH,
    )
    assert third.status_code == 409
    assert third.get_json()["title"] == "Reward unavailable"
    assert "2 per member" in third.get_json()["detail"]
    assert client.delete("/v1/customers/ann/redemptions/r-1", headers=AUTH).status_code == 200
    assert _redeem(client, "ann", "r-4") == 201  # back within the share


def test_transfers_move_points_when_the_programme_allows_them(options: Services) -> None:
    client = app_for(options).test_client()
    post(client, purchase("giver", "300"))
    post(client, purchase("taker", "10"))
    body = {"transfer_id": "t-1", "to": "taker", "points": 100}

    first = client.post("/v1/customers/giver/transfers", json=body, headers=AUTH)
    again = client.post("/v1/customers/giver/transfers", json=body, headers=AUTH)
    too_much = client.post(
        "/v1/customers/giver/transfers",
        json={**body, "transfer_id": "t-2", "points": 10_000},
        headers=AUTH,
    )

    assert (first.status_code, again.status_code, too_much.status_code) == (201, 200, 409)
    assert first.get_json()["from"] == "giver"
    balances = {b["customer_id"]: b["points_available"] for b in first.get_json()["balances"]}
    assert balances == {"giver": 200, "taker": 110}
    assert assert_balanced(options.db, "giver")["available"] == 200
    assert assert_balanced(options.db, "taker")["available"] == 110


def test_a_forgiven_shortfall_leaves_no_debt(options: Services) -> None:
    client = app_for(options).test_client()
    bought = purchase("ann", "600")
    post(client, bought)
    assert _redeem(client, "ann", "spend") == 201  # 500 of the 600 points spent
    answer = post(client, refund("ann", bought["order_id"], "600")).get_json()
    clawback = next(e for e in answer["effects"] if e["type"] == "claw_back_points")
    assert clawback["shortfall"] == 500
    balance = assert_balanced(options.db, "ann")
    assert (balance["available"], balance["debt"]) == (0, 0)
    ledger = client.get("/v1/customers/ann/ledger", headers=AUTH).get_json()["entries"]
    assert any(e["kind"] == "debt_forgiven" for e in ledger)


def test_points_that_never_expire_show_no_expiry(options: Services) -> None:
    client = app_for(options).test_client()
    post(client, purchase("ann", "100"))
    member = client.get("/v1/customers/ann", headers=AUTH).get_json()
    assert member["points"]["expiring"] == []
    with options.db.connect() as connection:
        expiries = connection.execute(select(point_lots.c.expires_at)).scalars().all()
    assert expiries == [None]
