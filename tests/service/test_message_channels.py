"""Messages the example rules send reach a channel a default install has, and rules that
send by an unconfigured channel are warned about when the service starts."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest

from service.bootstrap import Services
from service.channels import build_channels
from service.settings import MessagingSettings, Settings
from tests.service.helpers import EMAILING, app_for, event, post, purchase, services_for
from tests.service.jobs_helpers import context, messages, run, write_programme

BIRTHDAY_MORNING = datetime.fromisoformat("2026-12-02T10:00:00+08:00")


def test_the_example_birthday_and_win_back_messages_are_sent_on_a_default_install(
    services: Services,
) -> None:
    assert services.settings.messaging == MessagingSettings()  # no SMTP, no webhook
    client = app_for(services).test_client()
    profile = event("profile", "bea", occurred_at="2026-01-01T08:00:00+08:00")
    profile["profile"] = {"birthday": "1990-12-02"}
    assert post(client, profile).status_code == 201
    away = purchase("wim", amount="30", occurred_at="2026-09-01T10:00:00+08:00")
    assert post(client, away).status_code == 201

    ctx = context(services, channels=build_channels(services.settings.messaging))
    result = run(ctx, "run-schedules", BIRTHDAY_MORNING)
    assert result.get("birthday") == 1, result
    assert result.get("inactive") == 1, result
    run(ctx, "dispatch-outbox", BIRTHDAY_MORNING)

    sent = {
        member: [(m["template"], m["status"]) for m in messages(services.db, member)]
        for member in ("bea", "wim")
    }
    assert ("birthday-greeting", "sent") in sent["bea"], sent
    assert ("we-miss-you", "sent") in sent["wim"], sent
    assert not any(status == "dead" for found in sent.values() for _, status in found), sent


@pytest.mark.parametrize(
    ("smtp_host", "warned"), [(None, True), ("smtp.example.com", False)], ids=["unset", "set"]
)
def test_start_up_warns_about_rules_sending_by_an_unconfigured_channel(
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    smtp_host: str | None,
    warned: bool,
) -> None:
    rules = write_programme(tmp_path, {"receipts.yaml": EMAILING})
    settings = Settings(
        database_url=database_url,
        rules_dir=str(rules),
        engine="reference",
        messaging=MessagingSettings(smtp_host=smtp_host),
    )
    with services_for(settings) as services, caplog.at_level(logging.WARNING, "loyalty"):
        app_for(services)
    lines = [r.getMessage() for r in caplog.records if "channel-not-configured" in r.getMessage()]
    if not warned:
        assert lines == []
        return
    assert len(lines) == 1, lines
    assert "campaigns/receipts.yaml:4: warning [channel-not-configured]" in lines[0]
    assert "receipts/receipt sends messages by email" in lines[0]
    assert "LOYALTY_SMTP_HOST" in lines[0]


@pytest.mark.parametrize(
    "messaging",
    [
        MessagingSettings(),
        MessagingSettings(smtp_host="smtp.example.com"),
        MessagingSettings(webhook_url="https://hooks.example.com/x"),
        MessagingSettings(smtp_host="smtp.example.com", webhook_url="https://h.example.com/"),
    ],
)
def test_the_channels_warned_about_are_the_ones_the_outbox_lacks(
    messaging: MessagingSettings,
) -> None:
    assert set(build_channels(messaging)) == messaging.channel_names()
