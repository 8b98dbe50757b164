"""GET /v1/reports/kpis and /v1/reports/liability: the same answers as the CLI, the
`reports:read` scope (which `admin` and `*` include), and bad queries refused by field.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.bootstrap import Services
from service.commands.reports import run_report
from service.settings import parse_api_keys
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import app_for, assert_problem, post, purchase

KPIS = "/v1/reports/kpis?from=2026-12-01&to=2027-01-01"
LIABILITY = "/v1/reports/liability?as_of=2026-12-31"


@pytest.fixture
def history(client: FlaskClient) -> FlaskClient:
    for customer, amount in (("ann", "120.80"), ("bob", "80"), ("ann", "35")):
        assert post(client, purchase(customer, amount)).status_code == 201
    return client


def test_the_answers_are_the_reports(history: FlaskClient, services: Services) -> None:
    kpis = history.get(KPIS, headers=AUTH)
    assert kpis.status_code == 200, kpis.get_data(as_text=True)
    assert kpis.get_json() == run_report(
        services, "kpis", {"from": "2026-12-01", "to": "2027-01-01"}
    )
    assert kpis.get_json()["members"] == {"total": 2, "new": 2, "active": 2}
    assert kpis.get_json()["points"]["issued"] == 120 + 80 + 35

    liability = history.get(LIABILITY, headers=AUTH)
    assert liability.status_code == 200
    assert liability.get_json() == run_report(services, "liability", {"as_of": "2026-12-31"})
    assert liability.get_json()["points_outstanding"] == 235
    assert liability.get_json()["value"] == "2.35"


def test_liability_is_as_of_today_by_default(
    history: FlaskClient, services: Services, clock: FixedClock
) -> None:
    answer: dict[str, Any] = history.get("/v1/reports/liability", headers=AUTH).get_json()
    # The clock says 2026-12-01T12:00Z: 1 December in Shanghai too.
    assert answer["as_of"] == "2026-12-01"
    assert answer["points_outstanding"] == 0  # the purchases are on 2 December


@pytest.fixture
def keyed(services: Services) -> Iterator[FlaskClient]:
    keys = parse_api_keys(
        "analyst=rk:reports:read ops=ak:admin all=sk:* desk=ck:customers:read,customers:write"
    )
    original = services.settings
    services.settings = replace(original, api_keys=keys)
    try:
        yield app_for(services).test_client()
    finally:
        services.settings = original


@pytest.mark.parametrize("path", [KPIS, LIABILITY])
def test_reports_read_admin_and_star_may_read_the_reports(keyed: FlaskClient, path: str) -> None:
    for key in ("rk", "ak", "sk"):
        assert keyed.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    refused = assert_problem(keyed.get(path, headers={"Authorization": "Bearer ck"}), 403)
    assert "reports:read" in refused["detail"]
    assert_problem(keyed.get(path), 401)


def test_reports_read_is_no_admin(keyed: FlaskClient) -> None:
    answer = keyed.get("/v1/rules/versions", headers={"Authorization": "Bearer rk"})
    assert_problem(answer, 403)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2027-01-01&to=2026-12-01", "to"),
        ("from=2026-12-01&to=2026-12-01", "to"),
        ("from=2026-12-01", "to"),
        ("to=2026-12-01", "from"),
        ("from=01/12/2026&to=2027-01-01", "from"),
        ("from=0001-01-01&to=2027-01-01", "from"),
        ("from=2026-12-01&to=2027-01-01&campaign=", "campaign"),
        ("from=2026-12-01&to=2027-01-01&region=north", "region"),
    ],
)
def test_a_bad_period_is_refused_naming_the_field(
    client: FlaskClient, query: str, field: str
) -> None:
    problem = assert_problem(client.get(f"/v1/reports/kpis?{query}", headers=AUTH), 422)
    assert field in problem["errors"], problem


def test_a_bad_day_for_the_liability_is_refused(client: FlaskClient) -> None:
    for query in ("as_of=yesterday", "as_of=9999-12-31", "at=2026-12-31"):
        problem = assert_problem(client.get(f"/v1/reports/liability?{query}", headers=AUTH), 422)
        assert problem["errors"], problem


def test_one_campaign_alone_or_404(history: FlaskClient) -> None:
    alone = history.get(f"{KPIS}&campaign=base-earn", headers=AUTH).get_json()
    assert [c["campaign"] for c in alone["campaigns"]] == ["base-earn"]
    assert alone["campaigns"][0]["points"] == 235
    assert alone["campaigns"][0]["cost"] == "2.35"
    assert_problem(history.get(f"{KPIS}&campaign=nope", headers=AUTH), 404)


def test_points_expiring_millennia_ahead_are_counted_month_by_month(client: FlaskClient) -> None:
    for when in ("8999-06-01T00:00:00+00:00", "1970-01-02T00:00:00+00:00", "4000-01-01T00:00:00Z"):
        bought = purchase("ann", "10", occurred_at=when)
        assert post(client, bought).status_code == 201
    liability = client.get("/v1/reports/liability?as_of=1970-01-05", headers=AUTH).get_json()
    assert liability["by_expiry_month"] == [
        {"month": "1971-01", "points": 10, "value": "0.10"},
    ]
    later = client.get("/v1/reports/liability?as_of=8999-12-31", headers=AUTH).get_json()
    assert later["by_expiry_month"] == [{"month": "9000-06", "points": 10, "value": "0.10"}]
    earliest = client.get("/v1/reports/liability?as_of=1900-01-01", headers=AUTH).get_json()
    assert (earliest["points_outstanding"], earliest["by_expiry_month"]) == (0, [])
    kpis = client.get("/v1/reports/kpis?from=2000-01-01&to=2000-01-02", headers=AUTH)
    assert kpis.status_code == 200
    assert kpis.get_json()["points"]["outstanding"] == 0
    assert kpis.get_json()["members"]["total"] == 1
