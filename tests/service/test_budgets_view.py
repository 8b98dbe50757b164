"""GET /v1/rules shows each campaign budget by kind: its limit, what is used and what is
left, read from the budgets as spent. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from service.bootstrap import Services
from service.settings import Settings
from tests.conftest import AUTH
from tests.service.helpers import (
    SATURDAY,
    add_member,
    app_for,
    points_of,
    post,
    purchase,
    services_for,
    write_rules,
)


def budgets(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/v1/rules", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["id"]: c["budget"] for c in response.get_json()["campaigns"]}


def test_the_rules_show_each_budget_used_and_left(client: FlaskClient, services: Services) -> None:
    before = budgets(client)
    assert before["weekend-double-points"] == {
        "points": {"limit": 2000000, "used": 0, "left": 2000000}
    }
    assert before["birthday-treat"] == {"offers": {"limit": 100000, "used": 0, "left": 100000}}
    assert before["base-earn"] is None

    add_member(services.db, "sid", tier="silver")
    answer = post(client, purchase("sid", "120", channel="app", occurred_at=SATURDAY))
    assert answer.status_code == 201, answer.get_data(as_text=True)

    assert budgets(client)["weekend-double-points"] == {
        "points": {"limit": 2000000, "used": 240, "left": 2000000 - 240}
    }


SHARED = (
    "campaign: fair\nbudget: {points: 1000, share_of_revenue: 0.05}\nrules:\n"
    "  - name: r\n    when: {type: purchase}\n"
    "    then: [{award_points: {points: 10, tier_multiplier: false}}]\n"
    "tests:\n  - {name: t, event: {type: purchase, amount: 500, "
    "occurred_at: 2026-12-02T10:00:00+08:00}, expect: {points: 10}}\n"
)


def test_a_budget_of_two_kinds_shows_both(tmp_path: Path, settings: Settings) -> None:
    rules = write_rules(tmp_path / "rules", {"fair.yaml": SHARED})
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        client = app_for(svc).test_client()
        assert budgets(client)["fair"]["share_of_revenue"] == {
            "limit": "0.05",
            "revenue": "0",
            "used": 0,
            "left": 0,
        }
        assert points_of(post(client, purchase("s-1", "100")).get_json()) == 5
        assert points_of(post(client, purchase("s-2", "300")).get_json()) == 10

        assert budgets(client)["fair"] == {
            "points": {"limit": 1000, "used": 15, "left": 985},
            "share_of_revenue": {"limit": "0.05", "revenue": "400", "used": 15, "left": 5},
        }
