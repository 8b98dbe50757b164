"""One clock per run: every time a job or an event writes comes from the clock the run was
given (the system's, or `loyalty jobs run --now T`), never from the wall clock behind it;
and writes at one fixed moment still read back in the order they were written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from service.application.event_ports import GroupWrite
from service.application.ports import MemberHistory, NewMessage, StoredEvent
from service.bootstrap import Services
from service.cli import main
from service.storage.event_log import stored_events
from service.storage.store import SqlStore
from service.storage.tables import events, job_runs, ledger_entries, members, outbox
from tests.channel_servers import webhook_receiver
from tests.conftest import FixedClock
from tests.service.helpers import activity, app_for, event, post, purchase
from tests.service.jobs_helpers import (
    BIRTHDAY,
    EARN,
    NUDGES,
    context,
    messages,
    run,
    services_on,
    write_programme,
)

# Long before the wall clock of any run of these tests: what `--now` says must win.
BIRTHDAY_MORNING = "2026-12-02T10:00:00+08:00"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the fixed clock of the services below
ODD = datetime(2020, 5, 17, 3, 4, 5, 678901, tzinfo=UTC)  # a moment no clock here says


@pytest.fixture
def birthdays(database_url: str, tmp_path: Path) -> Iterator[Services]:
    greeting_by_webhook = BIRTHDAY.replace("channel: log", "channel: webhook")
    rules = write_programme(tmp_path, {"birthday.yaml": greeting_by_webhook})
    with services_on(database_url, rules, FixedClock(AT)) as services:
        yield services


@pytest.fixture
def earning(database_url: str, tmp_path: Path) -> Iterator[Services]:
    rules = write_programme(tmp_path, {"earn.yaml": EARN, "nudges.yaml": NUDGES})
    with services_on(database_url, rules, FixedClock(AT)) as services:
        yield services


def test_a_birthday_queued_by_jobs_run_now_is_delivered_by_a_dispatch_at_that_now(
    birthdays: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = event("profile", "bea", occurred_at="2026-01-01T08:00:00+08:00")
    profile["profile"] = {"birthday": "1990-12-02"}
    assert post(app_for(birthdays).test_client(), profile).status_code == 201
    with webhook_receiver() as hook:
        monkeypatch.setenv("LOYALTY_DATABASE_URL", birthdays.settings.database_url)
        monkeypatch.setenv("LOYALTY_RULES_DIR", birthdays.settings.rules_dir)
        monkeypatch.setenv("LOYALTY_ENGINE", "reference")
        monkeypatch.setenv("LOYALTY_WEBHOOK_URL", hook.url)

        assert main(["jobs", "run", "run-schedules", "--now", BIRTHDAY_MORNING]) == 0
        assert json.loads(capsys.readouterr().out)["result"]["birthday"] == 1
        assert main(["jobs", "run", "dispatch-outbox", "--now", BIRTHDAY_MORNING]) == 0
        assert json.loads(capsys.readouterr().out)["result"] == {"sent": 1}

    ((_headers, body),) = hook.requests
    assert (json.loads(body)["customer_id"], json.loads(body)["template"]) == (
        "bea",
        "birthday-greeting",
    )
    now = datetime.fromisoformat(BIRTHDAY_MORNING)
    (greeting,) = messages(birthdays.db, "bea")
    assert greeting["status"] == "sent"
    assert greeting["created_at"] == greeting["sent_at"] == now
    with birthdays.db.connect() as connection:
        runs = connection.execute(select(job_runs).order_by(job_runs.c.id)).mappings().all()
        recorded = connection.execute(
            select(events.c.recorded_at).where(events.c.type == "schedule")
        ).scalar_one()
    assert [(r["job"], r["as_of"], r["started_at"], r["finished_at"]) for r in runs] == [
        ("run-schedules", now, now, now),
        ("dispatch-outbox", now, now, now),
    ]
    assert recorded == now


def test_storage_writes_the_times_it_is_given(services: Services) -> None:
    with services.db.connect() as connection:
        connection.begin()
        store = SqlStore(connection)
        store.lock_member("ann", ODD)
        stored = StoredEvent("e-odd", "ann", "activity", AT, "0" * 64, {}, {}, "v1")
        store.write_group(GroupWrite(events=[stored]), ODD)
        store.add_messages(
            "ann", "e-odd", [NewMessage("hello", "log", "transactional", {}, created_at=ODD)]
        )
        first_seen = connection.execute(select(members.c.first_seen_at)).scalar_one()
        recorded = connection.execute(select(events.c.recorded_at)).scalar_one()
        queued = connection.execute(select(outbox.c.created_at, outbox.c.next_attempt_at)).one()
        connection.rollback()
    assert first_seen == recorded == ODD
    assert tuple(queued) == (ODD, ODD)


def test_an_event_writes_every_time_by_the_services_clock(earning: Services) -> None:
    earning.clock.now = ODD  # type: ignore[attr-defined]
    client = app_for(earning).test_client()
    assert post(client, purchase("ann", "120")).status_code == 201
    login = activity("ann", "app_login", "2026-12-02T10:00:00+08:00")  # queues `promo`
    assert post(client, login).status_code == 201
    with earning.db.connect() as connection:
        times = [
            *connection.execute(select(members.c.first_seen_at)).scalars(),
            *connection.execute(select(events.c.recorded_at)).scalars(),
            *connection.execute(select(ledger_entries.c.recorded_at)).scalars(),
            *connection.execute(select(outbox.c.created_at, outbox.c.next_attempt_at)).one(),
        ]
    assert len(times) == 6
    assert set(times) == {ODD}


def history_before(services: Services, event_id: str) -> MemberHistory:
    """What explaining the event reconstructs of its member, from the tables."""
    with services.uow() as uow:
        stored = uow.store.find_event(event_id)
        assert stored is not None
        return uow.store.history_before(stored)


def test_events_written_at_one_moment_read_back_in_the_order_written(earning: Services) -> None:
    client = app_for(earning).test_client()
    ids = ["e-3", "e-1", "e-2"]  # neither alphabetical nor by occurred_at
    for event_id, day in zip(ids, ["05", "02", "09"], strict=True):
        body = purchase("ann", "10", event_id=event_id, occurred_at=f"2026-11-{day}T10:00:00Z")
        assert post(client, body).status_code == 201
    batch = [purchase("bob", "10", event_id=f"b-{n}") for n in (2, 1)]
    assert post(client, {"events": batch}, "/v1/events/batch").status_code == 200

    replayed = [where for where, _ in stored_events(earning.db, AT - timedelta(days=60))]

    assert replayed == [f"event {i}" for i in [*ids, "b-2", "b-1"]]
    histories = [history_before(earning, i) for i in ids]
    assert [h.events_before for h in histories] == [0, 1, 2]
    assert [h.points_available for h in histories] == [0, 10, 20]


def test_a_jobs_ledger_line_at_the_same_moment_counts_before_the_next_event(
    earning: Services,
) -> None:
    client = app_for(earning).test_client()
    assert post(client, purchase("ann", "10", event_id="first")).status_code == 201
    # A year on (the job's now), by the same fixed clock: the ten points expire.
    expired = run(context(earning), "expire-points", AT + timedelta(days=400))
    assert expired["points"] == 10
    assert post(client, purchase("ann", "5", event_id="second")).status_code == 201

    first, second = history_before(earning, "first"), history_before(earning, "second")
    assert (first.events_before, first.points_available) == (0, 0)
    assert (second.events_before, second.points_available) == (1, 0)  # 10 earned, 10 expired
