"""Helpers for the tests of jobs, the outbox and the scheduler: rules of their own, a job
context on the test's services, and direct reads of the outbox."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from service.application.delivery import Channel, Delivery, DeliveryFailed
from service.application.jobs import JobContext, run_job
from service.application.outbox import OutboxPolicy
from service.bootstrap import Services
from service.scheduler import jobs_uow
from service.settings import Settings
from service.storage.tables import outbox
from tests.conftest import RULES_DIR, FixedClock
from tests.service.helpers import services_for

EARN = """\
campaign: earn
description: a point per CNY
rules:
  - name: per-cny
    when: {type: purchase}
    then:
      - award_points: {per: 1, of: amount, tier_multiplier: false}
tests:
  - name: a purchase earns
    event: {type: purchase, amount: 10, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {points: 10}
"""

NUDGES = """\
campaign: nudges
description: messages of each kind, for the outbox tests
rules:
  - name: promo
    when: {type: activity, kind: app_login}
    then:
      - send_message: {template: promo, channel: log, category: marketing}
  - name: flash
    when: {type: activity, kind: check_in}
    then:
      - send_message: {template: flash-sale, channel: log, category: marketing, stale_after: 1d}
  - name: receipt
    when: {type: activity, kind: survey}
    then:
      - send_message: {template: receipt, channel: log, category: transactional}
  - name: welcome
    when: {type: activity, kind: review}
    then:
      - send_message: {template: welcome, channel: webhook, category: transactional, dedupe: welcome}
  - name: hello
    when: {type: activity, kind: social_share}
    then:
      - send_message: {template: hello, channel: email, category: transactional}
tests:
  - name: a login nudges
    event: {type: activity, kind: app_login, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {messages: [promo]}
"""

BIRTHDAY = """\
campaign: birthday
description: an offer and a greeting on the member's birthday
rules:
  - name: treat
    when: {schedule: birthday}
    then:
      - issue_offer: birthday-20
      - send_message: {template: birthday-greeting, channel: log, category: marketing, stale_after: 2d}
tests:
  - name: the birthday brings an offer
    customer: {birthday: 1990-12-02}
    event: {type: schedule, kind: birthday, occurred_at: 2026-12-02T00:05:00+08:00}
    expect: {offers: [birthday-20]}
"""

WIN_BACK = """\
campaign: win-back
description: an offer for members away 60 days
rules:
  - name: come-back
    when: {inactive_for: 60d}
    then:
      - issue_offer: welcome-back-15
    limit: {per_customer: 1, per: 60d}
tests:
  - name: away 75 days
    customer: {days_since_last_purchase: 75}
    event: {type: schedule, kind: inactive, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {offers: [welcome-back-15]}
"""


def write_programme(
    directory: Path,
    campaigns: Mapping[str, str],
    replacements: Mapping[str, str] | None = None,
    extra: str = "",
) -> Path:
    """The example program.yaml with some lines replaced, plus the given campaign files."""
    (directory / "campaigns").mkdir(parents=True)
    text = (RULES_DIR / "program.yaml").read_text(encoding="utf-8")
    for old, new in (replacements or {}).items():
        assert old in text, f"program.yaml no longer has {old!r}"
        text = text.replace(old, new)
    (directory / "program.yaml").write_text(text + extra, encoding="utf-8")
    for name, body in campaigns.items():
        (directory / "campaigns" / name).write_text(body, encoding="utf-8")
    return directory


@contextmanager
def services_on(
    database_url: str, rules_dir: Path, clock: FixedClock | None = None
) -> Iterator[Services]:
    settings = Settings(database_url=database_url, rules_dir=str(rules_dir), engine="reference")
    with services_for(settings, clock) as services:
        yield services


def context(
    services: Services,
    channels: Mapping[str, Channel] | None = None,
    policy: OutboxPolicy | None = None,
    runner: str = "test",
) -> JobContext:
    return JobContext(
        uow=jobs_uow(services),
        rules=lambda: services.rules.active,
        clock=services.clock,
        channels=dict(channels or {}),
        outbox=policy or OutboxPolicy(),
        runner=runner,
    )


def run(ctx: JobContext, job: str, now: datetime) -> dict[str, int]:
    result: dict[str, int] = run_job(ctx, job, now)["result"]
    return result


def messages(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(outbox).where(outbox.c.customer_id == customer_id).order_by(outbox.c.id)
        ).mappings()
        return [dict(row) for row in rows]


class RecordingChannel:
    """A channel that keeps what it was given, and fails while told to."""

    def __init__(self, name: str = "log", failures: int = 0, permanent: bool = False) -> None:
        self.name = name
        self.sent: list[Delivery] = []
        self.tries = 0
        self.failures = failures
        self.permanent = permanent

    def send(self, delivery: Delivery) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise DeliveryFailed("the test says no", permanent=self.permanent)
        self.sent.append(delivery)


def until_settled(
    ctx: JobContext, start: datetime, customer_id: str, engine: Engine, most: int = 20
) -> list[datetime]:
    """Dispatch at each retry time in turn until nothing is queued; the times used."""
    now, times = start, []
    for _ in range(most):
        times.append(now)
        run(ctx, "dispatch-outbox", now)
        due = [
            m["next_attempt_at"]
            for m in messages(engine, customer_id)
            if m["status"] in ("queued", "deferred")
        ]
        if not due:
            return times
        now = max(now + timedelta(seconds=1), min(due))
    raise AssertionError("the outbox never settled")
