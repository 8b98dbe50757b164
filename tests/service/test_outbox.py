"""The outbox through storage, on SQLite and PostgreSQL: messages queued with their event,
caps and quiet hours at dispatch, dedupe, retries until dead, and what the API shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service.application.outbox import OutboxPolicy
from service.bootstrap import Services
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import activity, app_for, assert_problem, event, post, purchase
from tests.service.jobs_helpers import (
    EARN,
    NUDGES,
    RecordingChannel,
    context,
    messages,
    run,
    services_on,
    until_settled,
    write_programme,
)

MORNING = datetime.fromisoformat("2026-12-02T10:00:00+08:00")
LATE = datetime.fromisoformat("2026-12-02T22:00:00+08:00")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MORNING)


@pytest.fixture
def nudging(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Services]:
    rules = write_programme(tmp_path, {"nudges.yaml": NUDGES, "earn.yaml": EARN})
    with services_on(database_url, rules, clock) as services:
        yield services


@pytest.fixture
def client(nudging: Services) -> FlaskClient:
    return app_for(nudging).test_client()


def act(client: FlaskClient, customer_id: str, kind: str, occurred_at: datetime = MORNING) -> None:
    response = post(client, activity(customer_id, kind, occurred_at.isoformat()))
    assert response.status_code == 201, response.get_data(as_text=True)


def statuses(services: Services, customer_id: str) -> list[str]:
    return [m["status"] for m in messages(services.db, customer_id)]


def test_a_send_message_effect_is_queued_with_its_event(
    nudging: Services, client: FlaskClient
) -> None:
    act(client, "ann", "app_login")

    (queued,) = messages(nudging.db, "ann")
    assert queued["status"] == "queued"
    assert (queued["template"], queued["channel"], queued["category"]) == (
        "promo",
        "log",
        "marketing",
    )
    assert (queued["campaign"], queued["rule"], queued["source"]) == ("nudges", "promo", "rule")
    assert queued["created_at"] == MORNING
    assert queued["next_attempt_at"] == MORNING


def test_five_marketing_messages_in_a_day_send_two_and_defer_three(
    nudging: Services, client: FlaskClient
) -> None:
    for _ in range(5):
        act(client, "ann", "app_login")
    act(client, "ann", "survey")  # a transactional receipt still goes
    log = RecordingChannel("log")

    result = run(context(nudging, {"log": log}), "dispatch-outbox", MORNING)

    assert result == {"deferred": 3, "sent": 3}
    assert statuses(nudging, "ann") == ["sent", "sent", "deferred", "deferred", "deferred", "sent"]
    deferred = [m for m in messages(nudging.db, "ann") if m["status"] == "deferred"]
    for message in deferred:
        assert message["next_attempt_at"] == MORNING + timedelta(days=7)
        assert "cap of 2 marketing message(s) per 7d reached" in message["reason"]
    assert [d.template for d in log.sent] == ["promo", "promo", "receipt"]
    # A week on, the window has room again: two more go, one waits another week.
    week_on = MORNING + timedelta(days=7)
    assert run(context(nudging, {"log": log}), "dispatch-outbox", week_on) == {
        "deferred": 1,
        "sent": 2,
    }


def test_capped_messages_that_would_go_stale_are_suppressed(
    nudging: Services, client: FlaskClient
) -> None:
    for _ in range(5):
        act(client, "bob", "check_in")  # flash sales, stale after a day

    run(context(nudging, {"log": RecordingChannel()}), "dispatch-outbox", MORNING)

    found = messages(nudging.db, "bob")
    assert [m["status"] for m in found] == ["sent", "sent"] + ["suppressed"] * 3
    assert all("would be stale" in m["reason"] for m in found[2:])
    assert all(m["next_attempt_at"] is None for m in found[2:])


def test_quiet_hours_defer_to_the_morning_in_the_members_zone(
    nudging: Services, client: FlaskClient, clock: FixedClock
) -> None:
    clock.now = LATE
    body = event("profile", "pia", occurred_at=LATE.isoformat())
    body["profile"] = {"timezone": "Europe/Paris"}  # 15:00 there
    assert post(client, body).status_code == 201
    act(client, "pia", "survey", LATE)
    act(client, "zoe", "survey", LATE)  # the programme's zone: Shanghai
    log = RecordingChannel()

    run(context(nudging, {"log": log}), "dispatch-outbox", LATE)

    assert statuses(nudging, "pia") == ["sent"]
    (waiting,) = messages(nudging.db, "zoe")
    morning = datetime.fromisoformat("2026-12-03T09:00:00+08:00")
    assert (waiting["status"], waiting["next_attempt_at"]) == ("deferred", morning)
    assert "quiet hours 21:00-09:00 in Asia/Shanghai" in waiting["reason"]
    assert run(context(nudging, {"log": log}), "dispatch-outbox", morning) == {"sent": 1}
    assert statuses(nudging, "zoe") == ["sent"]


def test_a_dedupe_key_is_sent_once_per_member(nudging: Services, client: FlaskClient) -> None:
    act(client, "ann", "review")
    act(client, "ann", "review")
    act(client, "bob", "review")

    assert statuses(nudging, "ann") == ["queued", "suppressed"]
    duplicate = messages(nudging.db, "ann")[1]
    assert "duplicate" in duplicate["reason"]
    assert "welcome" in duplicate["reason"]
    assert statuses(nudging, "bob") == ["queued"]


def test_failed_deliveries_back_off_then_the_message_is_dead(
    nudging: Services, client: FlaskClient
) -> None:
    act(client, "cy", "review")  # by webhook
    failing = RecordingChannel("webhook", failures=99)
    policy = OutboxPolicy(max_attempts=4, backoff=timedelta(minutes=1))
    ctx = context(nudging, {"webhook": failing}, policy)

    times = until_settled(ctx, MORNING, "cy", nudging.db)

    assert [t - MORNING for t in times] == [timedelta(minutes=m) for m in (0, 1, 3, 7)]
    (dead,) = messages(nudging.db, "cy")
    assert (dead["status"], dead["attempts"], failing.tries) == ("dead", 4, 4)
    assert dead["reason"] == "gave up after 4 attempts; last: the test says no"


def test_a_retried_message_is_sent_when_the_channel_recovers(
    nudging: Services, client: FlaskClient
) -> None:
    act(client, "dan", "review")
    flaky = RecordingChannel("webhook", failures=2)
    ctx = context(nudging, {"webhook": flaky}, OutboxPolicy(max_attempts=5))

    until_settled(ctx, MORNING, "dan", nudging.db)

    (sent,) = messages(nudging.db, "dan")
    assert (sent["status"], sent["attempts"]) == ("sent", 3)
    assert sent["reason"] == "delivered by webhook on attempt 3"
    assert [d.attempt for d in flaky.sent] == [3]


def test_a_permanent_failure_is_dead_at_once(nudging: Services, client: FlaskClient) -> None:
    act(client, "eli", "review")
    refusing = RecordingChannel("webhook", failures=1, permanent=True)
    run(context(nudging, {"webhook": refusing}), "dispatch-outbox", MORNING)
    (dead,) = messages(nudging.db, "eli")
    assert (dead["status"], dead["attempts"]) == ("dead", 1)
    assert dead["reason"].startswith("will not succeed")


def test_unconfigured_channels_and_missing_addresses_say_why(
    nudging: Services, client: FlaskClient
) -> None:
    act(client, "fay", "review")  # webhook, not configured here
    act(client, "fay", "social_share")  # email, and fay has no address
    run(context(nudging, {"email": RecordingChannel("email")}), "dispatch-outbox", MORNING)
    found = messages(nudging.db, "fay")
    assert [(m["status"], m["reason"]) for m in found] == [
        ("dead", "channel 'webhook' is not configured"),
        ("suppressed", "the member has no email address"),
    ]


def test_system_messages_go_by_the_configured_channel(
    nudging: Services, client: FlaskClient
) -> None:
    assert post(client, purchase("gil", "1200", occurred_at=MORNING.isoformat())).status_code == 201
    (notice,) = messages(nudging.db, "gil")
    assert (notice["template"], notice["channel"], notice["source"]) == (
        "tier-changed",
        "default",
        "system",
    )
    assert notice["data"] == {"from": "bronze", "to": "silver", "reason": "qualified"}
    webhook = RecordingChannel("webhook")
    policy = OutboxPolicy(default_channel="webhook")
    run(context(nudging, {"webhook": webhook}, policy), "dispatch-outbox", MORNING)
    assert [(m["status"], m["channel"]) for m in messages(nudging.db, "gil")] == [
        ("sent", "webhook")
    ]
    assert webhook.sent[0].data["to"] == "silver"


def test_the_api_lists_a_members_messages_with_status_and_reason(
    nudging: Services, client: FlaskClient
) -> None:
    for _ in range(3):
        act(client, "ann", "app_login")
    run(context(nudging, {"log": RecordingChannel()}), "dispatch-outbox", MORNING)

    response = client.get("/v1/customers/ann/messages?limit=2", headers=AUTH)

    assert response.status_code == 200
    page = response.get_json()
    newest = page["messages"][0]
    assert newest["status"] == "deferred"
    assert "cap of 2 marketing" in newest["reason"]
    assert datetime.fromisoformat(newest["next_attempt_at"]) == MORNING + timedelta(days=7)
    assert page["messages"][1]["status"] == "sent"
    assert page["messages"][1]["reason"] == "delivered by log on attempt 1"
    rest = client.get(f"/v1/customers/ann/messages?cursor={page['next_cursor']}", headers=AUTH)
    assert [m["status"] for m in rest.get_json()["messages"]] == ["sent"]
    assert rest.get_json()["next_cursor"] is None


def test_the_messages_api_needs_a_member_and_the_read_scope(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/customers/nobody/messages", headers=AUTH), 404)
    assert_problem(client.get("/v1/customers/nobody/messages"), 401)
    assert_problem(client.get("/v1/customers/x/messages?limit=0", headers=AUTH), 422)
