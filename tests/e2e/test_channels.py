"""The real channel adapters against real local servers (tests.channel_servers): an HTTP
server for the webhook and an SMTP server for email. Messages are queued by real events
and delivered by the dispatch job, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from service.application.delivery import Delivery, DeliveryFailed
from service.application.outbox import OutboxPolicy
from service.bootstrap import Services
from service.channels.email import SmtpChannel
from service.channels.webhook import WebhookChannel
from tests.channel_servers import Hook, Mailbox, free_port, smtp_server, webhook_receiver
from tests.conftest import FixedClock
from tests.service.helpers import activity, app_for, event, post
from tests.service.jobs_helpers import (
    NUDGES,
    context,
    messages,
    run,
    services_on,
    until_settled,
    write_programme,
)

SECRET = "webhook-test-secret"
MORNING = datetime.fromisoformat("2026-12-02T10:00:00+08:00")


@pytest.fixture
def hook() -> Iterator[Hook]:
    with webhook_receiver() as state:
        yield state


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def nudging(database_url: str, tmp_path: Path) -> Iterator[Services]:
    rules = write_programme(tmp_path, {"nudges.yaml": NUDGES})
    with services_on(database_url, rules, FixedClock(MORNING)) as services:
        yield services


def queue(services: Services, customer_id: str, kind: str) -> None:
    client = app_for(services).test_client()
    response = post(client, activity(customer_id, kind, MORNING.isoformat()))
    assert response.status_code == 201, response.get_data(as_text=True)


def test_the_webhook_posts_the_message_signed_with_hmac_sha256(
    nudging: Services, hook: Hook
) -> None:
    queue(nudging, "ann", "review")  # the rule sends `welcome` by webhook
    webhook = WebhookChannel(hook.url, SECRET, timeout=5)

    assert run(context(nudging, {"webhook": webhook}), "dispatch-outbox", MORNING) == {"sent": 1}

    ((headers, body),) = hook.requests
    stamp = headers["X-Loyalty-Timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Loyalty-Signature"], f"sha256={expected.hexdigest()}")
    assert headers["Content-Type"] == "application/json"
    sent = json.loads(body)
    (stored,) = messages(nudging.db, "ann")
    assert headers["X-Loyalty-Message-Id"] == str(stored["id"])
    assert sent["message_id"] == stored["id"]
    assert (sent["customer_id"], sent["template"], sent["category"]) == (
        "ann",
        "welcome",
        "transactional",
    )
    assert sent["data"]["event_type"] == "activity"
    assert stored["status"] == "sent"
    # A body changed in transit no longer matches the signature.
    forged = hmac.new(SECRET.encode(), stamp.encode() + b"." + body + b" ", hashlib.sha256)
    assert headers["X-Loyalty-Signature"] != f"sha256={forged.hexdigest()}"


def test_a_failing_endpoint_gets_retries_then_the_message_is_dead(
    nudging: Services, hook: Hook
) -> None:
    hook.status = 500
    queue(nudging, "bob", "review")
    webhook = WebhookChannel(hook.url, SECRET, timeout=5)
    policy = OutboxPolicy(max_attempts=3, backoff=timedelta(minutes=1))

    times = until_settled(
        context(nudging, {"webhook": webhook}, policy), MORNING, "bob", nudging.db
    )

    assert [t - MORNING for t in times] == [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(minutes=3),
    ]
    assert len(hook.requests) == 3
    assert [json.loads(body)["attempt"] for _, body in hook.requests] == [1, 2, 3]
    (dead,) = messages(nudging.db, "bob")
    assert (dead["status"], dead["attempts"]) == ("dead", 3)
    assert dead["reason"] == "gave up after 3 attempts; last: HTTP 500 from the webhook"


def test_a_refusing_endpoint_is_not_retried(nudging: Services, hook: Hook) -> None:
    hook.status = 410
    queue(nudging, "cy", "review")
    webhook = WebhookChannel(hook.url, SECRET, timeout=5)
    assert run(context(nudging, {"webhook": webhook}), "dispatch-outbox", MORNING) == {"dead": 1}
    assert len(hook.requests) == 1


def test_a_webhook_that_does_not_answer_in_time_fails_for_a_retry(hook: Hook) -> None:
    hook.hang = threading.Event()
    webhook = WebhookChannel(hook.url, SECRET, timeout=0.2)
    delivery = Delivery(1, "ann", "welcome", "transactional", "webhook", {}, MORNING, 1)
    with pytest.raises(DeliveryFailed) as failure:
        webhook.send(delivery)
    assert not failure.value.permanent
    assert "unreachable" in failure.value.reason


def test_email_goes_through_smtp_to_the_members_address(
    nudging: Services, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    client = app_for(nudging).test_client()
    profile = event("profile", "dee", occurred_at=MORNING.isoformat())
    profile["profile"] = {"email": "dee@example.com"}
    assert post(client, profile).status_code == 201
    queue(nudging, "dee", "social_share")  # the rule sends `hello` by email
    email = SmtpChannel("127.0.0.1", port, "rewards@example.com", timeout=5)

    assert run(context(nudging, {"email": email}), "dispatch-outbox", MORNING) == {"sent": 1}

    ((sender, recipients, mail),) = mailbox.mails
    assert (sender, recipients) == ("rewards@example.com", ["dee@example.com"])
    assert mail["Subject"] == "Hello"
    assert mail["To"] == "dee@example.com"
    (stored,) = messages(nudging.db, "dee")
    assert mail["X-Loyalty-Message-Id"] == str(stored["id"])
    text = mail.get_payload(decode=True).decode()
    assert "event type: activity" in text
    assert "hello" in text
    assert stored["status"] == "sent"


def test_an_unreachable_smtp_server_fails_for_a_retry() -> None:
    email = SmtpChannel("127.0.0.1", free_port(), "rewards@example.com", timeout=2)
    delivery = Delivery(1, "ann", "hello", "transactional", "email", {}, MORNING, 1, "a@b.c")
    with pytest.raises(DeliveryFailed) as failure:
        email.send(delivery)
    assert not failure.value.permanent
