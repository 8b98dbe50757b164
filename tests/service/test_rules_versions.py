"""Versions and audit: every rules version the service serves is stored with when it was
active; a ledger entry is explained by its rule text and the trace that produced it; a
stored event replays against the live version or any stored one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete

from service.api.answers import LedgerEntryExplanation, VersionAnswer, VersionsAnswer
from service.application.event_source import event_from_json
from service.application.traces import (
    snapshot_from_json,
    snapshot_to_json,
    trace_record,
)
from service.bootstrap import Services
from service.core.customer import CustomerSnapshot
from service.core.evaluation import BudgetUse, evaluate
from service.settings import Settings
from service.storage.tables import event_traces
from tests.conftest import AUTH, RULES_DIR, FixedClock
from tests.service.helpers import (
    SATURDAY,
    activity,
    app_for,
    assert_problem,
    points_of,
    post,
    purchase,
    refund,
    services_for,
)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory)
    return directory


@pytest.fixture
def worker(database_url: str, rules_dir: Path, clock: FixedClock) -> Iterator[Services]:
    settings = Settings(database_url=database_url, rules_dir=str(rules_dir), engine="reference")
    with services_for(settings, clock) as services:
        yield services


@pytest.fixture
def api(worker: Services) -> FlaskClient:
    return app_for(worker).test_client()


def get(client: FlaskClient, path: str) -> dict[str, Any]:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def entries(client: FlaskClient, customer: str) -> list[dict[str, Any]]:
    return get(client, f"/v1/customers/{customer}/ledger")["entries"]  # type: ignore[no-any-return]


def dry_run(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = post(client, body, "/v1/dry-run")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def reload_doubled(client: FlaskClient, rules_dir: Path, clock: FixedClock) -> str:
    """A second version: base-earn gives double (its cases updated); returns its hash."""
    file = rules_dir / "campaigns" / "base-earn.yaml"
    text = file.read_text().replace("round: floor\n", "round: floor\n          multiplier: 2\n")
    for points in (120, 300, 80):
        text = text.replace(f"expect: {{points: {points}}}", f"expect: {{points: {2 * points}}}")
    file.write_text(text)
    clock.now += timedelta(minutes=10)
    response = client.post("/v1/rules/reload", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["version"]  # type: ignore[no-any-return]


def test_the_served_version_is_stored_with_its_files_and_when_it_was_active(
    api: FlaskClient, worker: Services, rules_dir: Path, clock: FixedClock
) -> None:
    first = worker.rules.active.version
    versions = get(api, "/v1/rules/versions")
    assert versions["active"] == first
    assert versions["activations"] == [
        {"version": first, "from": clock.now.isoformat(), "until": None, "source": "startup"}
    ]
    assert VersionsAnswer().validate(versions) == {}
    stored = get(api, f"/v1/rules/versions/{first}")
    assert VersionAnswer().validate(stored) == {}
    assert stored["files"]["program.yaml"] == (rules_dir / "program.yaml").read_text()
    assert "base-earn" in stored["campaigns"]

    second = reload_doubled(api, rules_dir, clock)

    activations = get(api, "/v1/rules/versions")["activations"]
    assert [(a["version"], a["until"]) for a in activations] == [
        (second, None),
        (first, clock.now.isoformat()),
    ]
    assert get(api, f"/v1/rules/versions/{first}")["version"] == first
    assert_problem(api.get("/v1/rules/versions/0000000000000000", headers=AUTH), 404)


def test_a_ledger_entry_is_explained_by_its_rule_and_trace(api: FlaskClient) -> None:
    post(api, purchase("ann", "300"))
    post(api, purchase("ann", "80", channel="store"))
    entry = next(e for e in entries(api, "ann") if e["points"] == 80)

    answer = get(api, f"/v1/customers/ann/ledger/{entry['id']}")

    assert LedgerEntryExplanation().validate(answer) == {}
    assert answer["entry"] == entry
    assert answer["event"]["event_id"] == entry["event_id"]
    assert answer["rule"]["name"] == "one-point-per-cny"
    assert answer["rule"]["file"] == "campaigns/base-earn.yaml"
    assert answer["rule"]["text"].startswith("  - name: one-point-per-cny\n    when:")
    assert "award_points" in answer["rule"]["text"]
    assert answer["campaign"]["text"].startswith("campaign: base-earn")
    assert answer["rules_version"]["stored"] is True
    assert answer["rules_version"]["active"][0]["until"] is None
    # The trace stored with the event: the member as they were before it, one order of
    # 300 behind them.
    assert answer["trace_source"] == "recorded"
    assert answer["customer"]["order_count"] == 1
    assert answer["customer"]["points_available"] == 300
    assert answer["customer"]["is_new"] is False
    assert answer["rule_trace"] == [
        {"campaign": "base-earn", "rule": "one-point-per-cny", "outcome": "matched", "reason": ""}
    ]
    reasons = {(t["campaign"], t["outcome"]) for t in answer["trace"]}
    assert ("coffee-lovers", "not_matched") in reasons


def test_a_recorded_trace_is_what_explains_an_entry(api: FlaskClient, worker: Services) -> None:
    body = purchase("bea", "100")
    post(api, body)
    # The trace is what explains, whatever the tables say now: here one replaced by a gold
    # member's snapshot.
    event = event_from_json(body)
    rules = worker.rules.active
    gold = CustomerSnapshot("bea", tier="gold", order_count=4, is_new=False)
    evaluation = evaluate(rules.ruleset, rules.matcher, gold, event)
    with worker.uow() as uow:
        uow.store.db.execute(delete(event_traces).where(event_traces.c.event_id == event.event_id))
        uow.store.save_event_trace(
            trace_record(
                event, gold, evaluation, {"weekend-double-points": BudgetUse(7)}, worker.clock()
            )
        )
        uow.commit()
    entry = entries(api, "bea")[0]

    answer = get(api, f"/v1/customers/bea/ledger/{entry['id']}")

    assert answer["trace_source"] == "recorded"
    assert answer["customer"]["tier"] == "gold"
    assert answer["recorded_trace"] == [t.as_dict() for t in evaluation.trace]
    assert answer["effects"] == [e.as_dict() for e in evaluation.effects]
    assert {t["outcome"] for t in answer["trace"]} >= {"matched", "not_matched"}
    replayed = dry_run(api, {"event_id": body["event_id"]})
    assert replayed["customer_state"] == "recorded"
    assert replayed["points"] == 150  # as the gold member the trace recorded


@pytest.mark.parametrize("state", ["recorded", "reconstructed"])
def test_why_a_member_did_not_get_points(api: FlaskClient, worker: Services, state: str) -> None:
    """The second review of the day earned nothing; replaying it says why, from the trace
    stored with it or, for events stored without one, from the tables as they were."""
    first = activity("cy", "review", "2026-12-02T10:00:00+08:00")
    second = activity("cy", "review", "2026-12-02T18:00:00+08:00")
    assert points_of(post(api, first).get_json()) == 20
    assert points_of(post(api, second).get_json()) == 0
    if state == "reconstructed":
        with worker.uow() as uow:
            uow.store.db.execute(delete(event_traces))
            uow.commit()

    answer = dry_run(api, {"event_id": second["event_id"]})

    assert answer["replayed"] is True
    assert answer["customer_state"] == state
    assert answer["points"] == 0
    limited = [t for t in answer["trace"] if t["rule"] == "points-for-a-review"]
    assert [t["outcome"] for t in limited] == ["limit_reached"]
    assert answer["recorded"]["effects"] == []
    again = dry_run(api, {"event_id": first["event_id"]})
    assert again["points"] == 20  # as the member was before it: no review yet that day


def test_a_stored_event_replays_against_the_live_or_any_stored_version(
    api: FlaskClient, worker: Services, rules_dir: Path, clock: FixedClock
) -> None:
    body = purchase("dan", "100", channel="store", occurred_at=SATURDAY)
    assert points_of(post(api, body).get_json()) == 100
    first = worker.rules.active.version
    second = reload_doubled(api, rules_dir, clock)

    live = dry_run(api, {"event_id": body["event_id"]})
    assert (live["rules_version"], live["points"]) == (second, 200)
    assert live["recorded"] == {
        "rules_version": first,
        "effects": [
            {
                "type": "award_points",
                "points": 100,
                "campaign": "base-earn",
                "rule": "one-point-per-cny",
            }
        ],
    }
    then = dry_run(api, {"event_id": body["event_id"], "version": first})
    assert (then["rules_version"], then["points"]) == (first, 100)
    fresh = {**body, "event_id": "not-stored-yet"}
    hypothetical = dry_run(api, {"event": fresh, "version": first, "customer": {"tier": "gold"}})
    assert (hypothetical["rules_version"], hypothetical["points"]) == (first, 150)


def test_bad_replay_requests(api: FlaskClient) -> None:
    body = purchase("eve", "10")
    post(api, body)
    assert_problem(post(api, {"event_id": "no-such-event"}, "/v1/dry-run"), 404)
    assert_problem(post(api, {"event_id": body["event_id"], "version": "ffff"}, "/v1/dry-run"), 404)
    both = assert_problem(
        post(api, {"event_id": body["event_id"], "event": body}, "/v1/dry-run"), 422
    )
    assert "not both" in both["detail"]
    assert_problem(post(api, {"version": "ffff"}, "/v1/dry-run"), 422)
    assert_problem(api.get("/v1/customers/eve/ledger/999999", headers=AUTH), 404)
    entry = entries(api, "eve")[0]
    assert_problem(api.get(f"/v1/customers/someone-else/ledger/{entry['id']}", headers=AUTH), 404)


def test_a_snapshot_survives_its_json() -> None:
    event = event_from_json(purchase("fay", "10", occurred_at=SATURDAY))
    snapshot = CustomerSnapshot(
        "fay",
        tier="silver",
        lifetime_spend=Decimal("12.5"),
        tags=frozenset({"a", "b"}),
        last_purchase_at=event.occurred_at - timedelta(days=3),
        rule_firings={"c/r": (event.occurred_at,)},
    )
    assert snapshot_from_json(snapshot_to_json(snapshot)) == snapshot


def test_an_explanation_shows_the_member_as_they_were_at_the_event(api: FlaskClient) -> None:
    two_weeks_ago = "2026-11-17T10:00:00+08:00"
    first = purchase("cal", "500", occurred_at=two_weeks_ago)
    post(api, first)
    post(api, purchase("cal", "100", occurred_at=two_weeks_ago))
    post(api, refund("cal", first["order_id"], "500"))  # later, and it must not count
    entry = next(e for e in entries(api, "cal") if e["points"] == 100)

    answer = get(api, f"/v1/customers/cal/ledger/{entry['id']}")

    assert answer["trace_source"] == "recorded"
    assert Decimal(answer["customer"]["lifetime_spend"]) == 500
    assert answer["customer"]["order_count"] == 1
    assert answer["customer"]["points_available"] == 500
