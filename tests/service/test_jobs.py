"""The scheduler's jobs through storage, on SQLite and PostgreSQL, with the job's `now`
and the events' `occurred_at` as the only clocks: expiry (rolling, fixed, FIFO, warnings),
pending release, the tier review, offer expiry and time-based campaigns. Every job run
twice, or by two at once, does its work once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from service.bootstrap import Services
from service.cli import main
from service.storage.tables import events, job_runs, member_offers, tier_history
from tests.conftest import FixedClock
from tests.service.helpers import (
    add_member,
    app_for,
    assert_balanced,
    event,
    ledger_rows,
    member_row,
    post,
    purchase,
    spend_points,
)
from tests.service.jobs_helpers import (
    BIRTHDAY,
    EARN,
    WIN_BACK,
    context,
    messages,
    run,
    services_on,
    write_programme,
)

EXPIRY_LINE = "expiry: {after: 365d, warn_before: [30d, 7d]}"
PENDING_LINE = "pending: {for: [purchase], days: 0}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def rolling(database_url: str, tmp_path: Path) -> Iterator[Services]:
    with services_on(database_url, write_programme(tmp_path, {"earn.yaml": EARN})) as services:
        yield services


def buy(client: FlaskClient, customer_id: str, amount: str, occurred_at: str) -> None:
    response = post(client, purchase(customer_id, amount, occurred_at=occurred_at))
    assert response.status_code == 201, response.get_data(as_text=True)


def expired_lines(services: Services, customer_id: str) -> list[tuple[int, int | None]]:
    return [
        (row["points"], row["lot_id"])
        for row in ledger_rows(services.db, customer_id)
        if row["kind"] == "expired"
    ]


def lot_ids(services: Services, customer_id: str) -> list[int]:
    return [r["lot_id"] for r in ledger_rows(services.db, customer_id) if r["kind"] == "earned"]


def test_rolling_expiry_takes_each_lot_a_year_after_its_earn_oldest_first(
    rolling: Services,
) -> None:
    client = app_for(rolling).test_client()
    buy(client, "ann", "100", "2025-01-10T10:00:00+08:00")
    buy(client, "ann", "50", "2025-02-10T10:00:00+08:00")
    buy(client, "ann", "30", "2025-06-10T10:00:00+08:00")
    spend_points(rolling.db, "ann", 40)  # from the oldest lot
    first, second, third = lot_ids(rolling, "ann")
    ctx = context(rolling)

    assert run(ctx, "expire-points", at("2026-01-10T01:00:00+08:00")) == {}
    result = run(ctx, "expire-points", at("2026-03-01T00:00:00+08:00"))

    assert result == {"members": 1, "lots": 2, "points": 110}
    assert expired_lines(rolling, "ann") == [(-60, first), (-50, second)]
    assert assert_balanced(rolling.db, "ann")["available"] == 30
    rows = [r for r in ledger_rows(rolling.db, "ann") if r["kind"] == "expired"]
    assert rows[0]["occurred_at"] == at("2026-01-10T10:00:00+08:00")  # when it expired
    assert third not in {lot for _, lot in expired_lines(rolling, "ann")}


def test_expiring_again_expires_nothing_twice(rolling: Services) -> None:
    client = app_for(rolling).test_client()
    buy(client, "bob", "80", "2025-01-10T10:00:00+08:00")
    ctx = context(rolling)
    now = at("2026-02-01T00:00:00+08:00")

    assert run(ctx, "expire-points", now)["points"] == 80
    assert run(ctx, "expire-points", now) == {}
    assert run(ctx, "expire-points", at("2026-06-01T00:00:00+08:00")) == {}

    assert expired_lines(rolling, "bob") == [(-80, lot_ids(rolling, "bob")[0])]
    assert assert_balanced(rolling.db, "bob")["available"] == 0


def test_two_expiry_runs_at_once_expire_each_lot_once(rolling: Services) -> None:
    client = app_for(rolling).test_client()
    members = [f"racer-{n}" for n in range(6)]
    for customer_id in members:
        buy(client, customer_id, "10", "2025-01-10T10:00:00+08:00")
        buy(client, customer_id, "20", "2025-01-11T10:00:00+08:00")
    now = at("2026-02-01T00:00:00+08:00")
    barrier = threading.Barrier(2, timeout=30)

    def scheduler(name: str) -> dict[str, int]:
        ctx = context(rolling, runner=name)
        barrier.wait()
        return run(ctx, "expire-points", now)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(scheduler, ["one", "two"]))

    assert sum(r.get("points", 0) for r in results) == 30 * len(members)
    for customer_id in members:
        assert [p for p, _ in expired_lines(rolling, customer_id)] == [-10, -20]
        assert assert_balanced(rolling.db, customer_id)["available"] == 0


def test_fixed_date_expiry_takes_everything_earned_before_the_day_ends(
    database_url: str, tmp_path: Path
) -> None:
    rules = write_programme(
        tmp_path, {"earn.yaml": EARN}, {EXPIRY_LINE: 'expiry: {fixed: "12-31", warn_before: [7d]}'}
    )
    with services_on(database_url, rules) as services:
        client = app_for(services).test_client()
        buy(client, "cat", "100", "2026-03-01T10:00:00+08:00")
        buy(client, "cat", "20", "2026-12-31T22:00:00+08:00")
        buy(client, "cat", "5", "2027-01-01T00:30:00+08:00")  # next year's
        ctx = context(services)

        assert run(ctx, "expire-points", at("2026-12-31T23:59:00+08:00")) == {}
        assert run(ctx, "expire-points", at("2027-01-01T00:00:00+08:00"))["points"] == 120

        assert assert_balanced(services.db, "cat")["available"] == 5
        expired = [r for r in ledger_rows(services.db, "cat") if r["kind"] == "expired"]
        assert {r["occurred_at"] for r in expired} == {at("2027-01-01T00:00:00+08:00")}


def test_warnings_go_out_before_expiry_once_per_day_and_horizon(rolling: Services) -> None:
    client = app_for(rolling).test_client()
    buy(client, "dee", "70", "2025-12-10T10:00:00+08:00")
    ctx = context(rolling)

    assert run(ctx, "warn-expiry", at("2026-11-01T00:00:00+08:00")) == {}  # 39 days ahead
    assert run(ctx, "warn-expiry", at("2026-12-01T00:00:00+08:00")) == {"members": 1, "warnings": 1}
    assert run(ctx, "warn-expiry", at("2026-12-02T00:00:00+08:00")) == {}
    assert run(ctx, "warn-expiry", at("2026-12-05T00:00:00+08:00"))["warnings"] == 1
    assert run(ctx, "warn-expiry", at("2026-12-09T00:00:00+08:00")) == {}

    sent = messages(rolling.db, "dee")
    assert [m["dedupe_key"] for m in sent] == [
        "points-expiring:2026-12-10:30d",
        "points-expiring:2026-12-10:7d",
    ]
    assert sent[0]["template"] == "points-expiring"
    assert sent[0]["category"] == "transactional"
    assert sent[0]["data"] == {
        "points": 70,
        "expires_on": "2026-12-10",
        "expires_at": "2026-12-10T02:00:00+00:00",
    }
    assert sent[0]["stale_at"] == at("2026-12-10T10:00:00+08:00")


def test_pending_points_become_available_when_the_return_window_ends(
    database_url: str, tmp_path: Path
) -> None:
    rules = write_programme(
        tmp_path, {"earn.yaml": EARN}, {PENDING_LINE: "pending: {for: [purchase], days: 14}"}
    )
    with services_on(database_url, rules) as services:
        client = app_for(services).test_client()
        buy(client, "eve", "60", "2026-11-01T10:00:00+08:00")
        buy(client, "eve", "40", "2026-11-10T10:00:00+08:00")
        ctx = context(services)

        assert run(ctx, "release-pending", at("2026-11-14T10:00:00+08:00")) == {}
        released = run(ctx, "release-pending", at("2026-11-15T10:00:00+08:00"))
        assert released == {"lots": 1, "members": 1, "points": 60}
        assert run(ctx, "release-pending", at("2026-11-15T10:00:00+08:00")) == {}

        assert assert_balanced(services.db, "eve") == {"available": 60, "pending": 40, "debt": 0}
        lines = [r for r in ledger_rows(services.db, "eve") if r["kind"] == "released"]
        assert [(r["points"], r["note"]) for r in lines] == [
            (0, "60 pending points became available")
        ]


def test_the_review_lowers_a_member_below_their_tier_after_the_grace(rolling: Services) -> None:
    add_member(rolling.db, "gus", tier="gold", tier_since=at("2026-01-01T00:00:00+00:00"))
    client = app_for(rolling).test_client()
    buy(client, "gus", "1500", "2026-06-01T10:00:00+08:00")  # silver's worth in the window
    ctx = context(rolling)
    first = at("2026-07-01T00:00:00+08:00")

    assert run(ctx, "review-tiers", first) == {"below": 1, "reviewed": 1}
    assert member_row(rolling.db, "gus")["tier_below_since"] == first  # type: ignore[index]
    assert run(ctx, "review-tiers", first) == {"reviewed": 1}
    lowered = run(ctx, "review-tiers", at("2026-08-01T00:00:00+08:00"))
    assert lowered == {"lowered": 1, "reviewed": 1}
    assert run(ctx, "review-tiers", at("2026-08-01T00:00:00+08:00")) == {"reviewed": 1}

    member = member_row(rolling.db, "gus")
    assert member is not None
    assert (member["tier"], member["tier_below_since"]) == ("silver", None)
    with rolling.db.connect() as connection:
        history = connection.execute(
            select(tier_history.c.from_tier, tier_history.c.to_tier, tier_history.c.reason).where(
                tier_history.c.customer_id == "gus"
            )
        ).all()
    assert [tuple(h) for h in history] == [("gold", "silver", "review")]
    notice = [m for m in messages(rolling.db, "gus") if m["template"] == "tier-changed"]
    assert [m["data"] for m in notice] == [{"from": "gold", "to": "silver", "reason": "review"}]


def test_a_member_back_above_their_level_is_no_longer_marked_below(rolling: Services) -> None:
    add_member(rolling.db, "hal", tier="silver")
    ctx = context(rolling)
    assert run(ctx, "review-tiers", at("2026-07-01T00:00:00+08:00"))["below"] == 1
    buy(app_for(rolling).test_client(), "hal", "1200", "2026-07-05T10:00:00+08:00")

    assert run(ctx, "review-tiers", at("2026-08-01T00:00:00+08:00"))["recovered"] == 1
    member = member_row(rolling.db, "hal")
    assert member is not None
    assert (member["tier"], member["tier_below_since"]) == ("silver", None)


@pytest.fixture
def campaigns(database_url: str, tmp_path: Path) -> Iterator[Services]:
    files = {"earn.yaml": EARN, "birthday.yaml": BIRTHDAY, "win-back.yaml": WIN_BACK}
    clock = FixedClock(at("2026-01-01T00:00:00+00:00"))
    with services_on(database_url, write_programme(tmp_path, files), clock) as services:
        yield services


def schedule_events(services: Services) -> list[str]:
    with services.db.connect() as connection:
        rows = connection.execute(
            select(events.c.event_id).where(events.c.type == "schedule").order_by(events.c.event_id)
        )
        return [event_id for (event_id,) in rows]


def offers_of(services: Services, customer_id: str) -> list[tuple[str, str]]:
    with services.db.connect() as connection:
        rows = connection.execute(
            select(member_offers.c.offer_id, member_offers.c.status).where(
                member_offers.c.customer_id == customer_id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_birthdays_fire_once_in_each_members_own_day(campaigns: Services) -> None:
    client = app_for(campaigns).test_client()
    for customer_id, zone in (("bea", "Asia/Shanghai"), ("lou", "America/Los_Angeles")):
        body = event("profile", customer_id, occurred_at="2026-01-01T08:00:00+08:00")
        body["profile"] = {"birthday": "1990-12-02", "timezone": zone}
        assert post(client, body).status_code == 201
    ctx = context(campaigns)
    shanghai_morning = at("2026-12-02T09:00:00+08:00")  # still 1 December in Los Angeles

    assert run(ctx, "run-schedules", shanghai_morning) == {"birthday": 1, "effects": 2}
    assert run(ctx, "run-schedules", shanghai_morning) == {"already": 1}
    later = run(ctx, "run-schedules", at("2026-12-03T09:00:00+08:00"))
    assert later == {"already": 1, "birthday": 1, "effects": 2}

    assert schedule_events(campaigns) == [
        "schedule:birthday:bea:2026",
        "schedule:birthday:lou:2026",
    ]
    assert offers_of(campaigns, "bea") == [("birthday-20", "active")]
    greeting = [m for m in messages(campaigns.db, "bea") if m["source"] == "rule"]
    assert [(m["template"], m["event_id"]) for m in greeting] == [
        ("birthday-greeting", "schedule:birthday:bea:2026")
    ]
    # The offer is valid 30 days from the start of the birthday, then the job expires it.
    assert run(ctx, "expire-offers", at("2027-01-01T00:00:00+08:00")) == {"expired": 1}
    assert run(ctx, "expire-offers", at("2027-01-01T00:00:00+08:00")) == {"expired": 0}
    assert offers_of(campaigns, "bea") == [("birthday-20", "expired")]
    assert offers_of(campaigns, "lou") == [("birthday-20", "active")]


def test_a_lapsed_member_is_won_back_once_per_lapse(campaigns: Services) -> None:
    client = app_for(campaigns).test_client()
    buy(client, "max", "10", "2026-09-01T10:00:00+08:00")
    buy(client, "amy", "10", "2026-11-20T10:00:00+08:00")  # recent: not lapsed
    ctx = context(campaigns)

    assert run(ctx, "run-schedules", at("2026-10-30T10:00:00+08:00")) == {}  # 59 days
    assert run(ctx, "run-schedules", at("2026-11-15T10:00:00+08:00"))["inactive"] == 1
    assert run(ctx, "run-schedules", at("2026-11-16T10:00:00+08:00")) == {"already": 1}

    assert schedule_events(campaigns) == ["schedule:inactive:max:20260901T020000:60d"]
    assert offers_of(campaigns, "max") == [("welcome-back-15", "active")]
    assert offers_of(campaigns, "amy") == []
    # A new purchase ends the lapse; the next one is a new occurrence.
    buy(client, "max", "10", "2026-11-20T10:00:00+08:00")
    assert run(ctx, "run-schedules", at("2027-01-20T10:00:00+08:00"))["inactive"] == 2


def test_every_run_is_recorded(rolling: Services) -> None:
    ctx = context(rolling, runner="recorder")
    run(ctx, "expire-offers", at("2026-12-01T00:00:00+00:00"))

    with rolling.db.connect() as connection:
        rows = connection.execute(select(job_runs)).mappings().all()
    assert [(r["job"], r["status"], r["runner"], r["result"]) for r in rows] == [
        ("expire-offers", "ok", "recorder", {"expired": 0})
    ]
    assert rows[0]["as_of"] == at("2026-12-01T00:00:00+00:00")


def test_loyalty_jobs_run_takes_now_from_the_command_line(
    rolling: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    buy(app_for(rolling).test_client(), "ned", "25", "2025-01-10T10:00:00+08:00")
    monkeypatch.setenv("LOYALTY_DATABASE_URL", rolling.settings.database_url)
    monkeypatch.setenv("LOYALTY_RULES_DIR", rolling.settings.rules_dir)
    monkeypatch.setenv("LOYALTY_ENGINE", "reference")

    code = main(["jobs", "run", "expire-points", "--now", "2026-02-01T00:00:00+08:00"])

    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert answer["result"] == {"lots": 1, "members": 1, "points": 25}
    assert answer["now"] == "2026-02-01T00:00:00+08:00"
    assert assert_balanced(rolling.db, "ned")["available"] == 0
    with pytest.raises(SystemExit):
        main(["jobs", "run", "expire-points", "--now", "2026-02-01T00:00:00"])  # no offset


def test_a_job_with_a_naive_now_is_refused(rolling: Services) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        run(context(rolling), "expire-points", datetime(2026, 1, 1))


def test_clock_is_only_for_records(rolling: Services) -> None:
    """Decisions follow the job's now, whatever the wall clock says."""
    rolling.clock.now = datetime(2020, 1, 1, tzinfo=UTC)  # type: ignore[attr-defined]
    buy(app_for(rolling).test_client(), "oli", "5", "2025-01-10T10:00:00+08:00")
    assert run(context(rolling), "expire-points", at("2026-02-01T00:00:00+08:00"))["points"] == 5
