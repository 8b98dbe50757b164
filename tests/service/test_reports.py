"""KPIs and the points liability on a generated year of history, on SQLite and PostgreSQL:
every figure against a count made here by hand from the raw rows, and a past liability
read again after everything that came later gives the figure of its day."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.application.reports import liability_report
from service.bootstrap import Services
from service.cli import main
from service.commands.reports import run_report
from service.report_schema import LiabilityReportSchema
from service.storage.report_store import SqlReportReads
from tests.conftest import AUTH
from tests.service.helpers import app_for, post, purchase, refund
from tests.service.jobs_helpers import context, run
from tests.service.report_history import (
    ZONE,
    Tables,
    end_of,
    generate,
    read_tables,
    report_services,
)

POINT_VALUE = Decimal("0.01")
BREAKAGE = Decimal("0.15")
LEVELS = ("bronze", "silver", "gold", "platinum")
BUDGETS = {"big-basket": 1500}
LIVE = ("big-basket", "earn", "referral-rewards")
PERIODS = (
    (date(2026, 1, 1), date(2027, 1, 1)),
    (date(2026, 6, 1), date(2026, 7, 1)),
    (date(2026, 3, 15), date(2026, 9, 2)),
    (date(2025, 6, 1), date(2026, 1, 4)),  # mostly before anything happened
)
CHECKPOINTS = (date(2026, 2, 28), date(2026, 5, 31), date(2026, 8, 15), date(2026, 12, 31))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), ZONE)


def rate(part: int, whole: int) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01"), ROUND_HALF_UP))


# -- the counts by hand, straight from the definitions


def outstanding_by_month(tables: Tables, at: datetime) -> dict[str | None, int]:
    """Each lot alive at ``at`` (earned before, not expired by then): the sum of its ledger
    entries before ``at``, by the month its expiry falls in."""
    held: dict[int, int] = defaultdict(int)
    for entry in tables.ledger:
        lot = tables.lots.get(entry["lot_id"]) if entry["lot_id"] is not None else None
        if lot is None or entry["occurred_at"] >= at or lot["earned_at"] >= at:
            continue
        if lot["expires_at"] is not None and lot["expires_at"] <= at:
            continue
        held[lot["id"]] += entry["points"]
    months: dict[str | None, int] = defaultdict(int)
    for lot_id, points in held.items():
        expires = tables.lots[lot_id]["expires_at"]
        months[expires.astimezone(ZONE).strftime("%Y-%m") if expires else None] += points
    return {month: points for month, points in months.items() if points}


def expected_liability(tables: Tables, day: date) -> dict[str, Any]:
    months = outstanding_by_month(tables, end_of(day))
    points = sum(months.values())
    return {
        "as_of": day.isoformat(),
        "currency": "CNY",
        "point_value": "0.01",
        "points_outstanding": points,
        "value": money(points * POINT_VALUE),
        "expected_breakage": "0.1500",
        "value_after_breakage": money(points * POINT_VALUE * (1 - BREAKAGE)),
        "by_expiry_month": [
            {"month": month, "points": months[month], "value": money(months[month] * POINT_VALUE)}
            for month in sorted(months, key=lambda m: (m is None, m or ""))
        ],
    }


def expected_kpis(
    tables: Tables, first: date, after: date, budgets_used: dict[str, int]
) -> dict[str, Any]:
    start, end = midnight(first), midnight(after)

    def inside(at: datetime) -> bool:
        return start <= at < end

    entries = [e for e in tables.ledger if inside(e["occurred_at"])]
    issued_rows = [
        e
        for e in entries
        if e["kind"] == "earned"
        or (e["kind"] == "pending" and tables.lots[e["lot_id"]]["available_at"] <= end)
    ]
    issued = sum(e["points"] for e in issued_rows)
    moved: Counter[str] = Counter()
    for e in entries:
        moved[e["kind"]] += e["points"]
    redeemed = -(moved["redeemed"] + moved["redemption_reversed"])
    expired, clawed = -moved["expired"], -moved["clawed_back"]

    first_event: dict[str, datetime] = {}
    for event in tables.events:
        customer = event["customer_id"]
        first_event[customer] = min(
            event["occurred_at"], first_event.get(customer, event["occurred_at"])
        )
    since = {
        m["customer_id"]: first_event.get(m["customer_id"], m["first_seen_at"])
        for m in tables.members
    }
    known = [c for c, at in since.items() if at < end]
    active = {
        e["customer_id"]
        for e in tables.events
        if inside(e["occurred_at"]) and e["type"] != "schedule"
    }

    placed = [o for o in tables.orders if inside(o["occurred_at"])]
    revenue = sum((o["amount"] - o["refunded_amount"] for o in placed), Decimal(0))
    per_buyer = Counter(o["customer_id"] for o in placed)
    referred = [r for r in tables.referrals if inside(r["occurred_at"])]
    converted = [
        r
        for r in referred
        if any(
            o["customer_id"] == r["referee_id"] and r["occurred_at"] <= o["occurred_at"] < end
            for o in tables.orders
        )
    ]
    tiers = dict.fromkeys(LEVELS, 0)
    for customer in known:
        changes = [
            h
            for h in tables.tier_history
            if h["customer_id"] == customer and h["occurred_at"] < end
        ]
        latest = max(changes, key=lambda h: (h["occurred_at"], h["id"]), default=None)
        tiers[latest["to_tier"] if latest else LEVELS[0]] += 1
    by_campaign: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in issued_rows:
        by_campaign[e["campaign"]].append(e)
    campaigns = []
    for name in sorted(set(by_campaign) | set(LIVE)):
        points = sum(e["points"] for e in by_campaign[name])
        campaigns.append(
            {
                "campaign": name,
                "points": points,
                "members": len({e["customer_id"] for e in by_campaign[name]}),
                "cost": money(points * POINT_VALUE),
                "budget_used": rate(budgets_used[name], BUDGETS[name]) if name in BUDGETS else None,
            }
        )
    return {
        "from": first.isoformat(),
        "to": after.isoformat(),
        "currency": "CNY",
        "members": {
            "total": len(known),
            "new": sum(1 for c in known if since[c] >= start),
            "active": len(active),
        },
        "points": {
            "issued": issued,
            "redeemed": redeemed,
            "expired": expired,
            "clawed_back": clawed,
            "outstanding": sum(outstanding_by_month(tables, end).values()),
        },
        "redemption_rate": rate(redeemed, issued),
        "breakage_rate": rate(expired, issued),
        "orders": {
            "count": len(placed),
            "revenue": money(revenue),
            "average_value": money(revenue / len(placed)) if placed else None,
            "repurchase_rate": rate(sum(1 for n in per_buyer.values() if n >= 2), len(per_buyer)),
        },
        "referrals": {"count": len(referred), "converted": len(converted)},
        "tiers": tiers,
        "campaigns": campaigns,
    }


def liability(services: Services, day: date) -> dict[str, Any]:
    return run_report(services, "liability", {"as_of": day.isoformat()})


def test_every_kpi_and_the_liability_match_a_count_by_hand(
    database_url: str, tmp_path: Path
) -> None:
    with report_services(database_url, tmp_path) as (services, clock):
        history = generate(
            services, clock, 20261205, CHECKPOINTS, lambda day: liability(services, day)
        )
        tables = read_tables(services.db)
        # The history exercised what the figures count.
        kinds = Counter(e["kind"] for e in tables.ledger)
        for kind in (
            "earned",
            "pending",
            "redeemed",
            "redemption_reversed",
            "expired",
            "clawed_back",
        ):
            assert kinds[kind] > 0, kind
        assert history.referrals > 10
        assert {h["to_tier"] for h in tables.tier_history} >= {"silver", "gold"}
        assert len(tables.members) > 20

        # What the budgeted campaign kept of its awards, refunds given back.
        budgets_used = {
            name: sum(
                a["points"] - a["points_returned"]
                for a in tables.order_awards
                if a["campaign"] == name
            )
            for name in BUDGETS
        }
        for first, after in PERIODS:
            query = {"from": first.isoformat(), "to": after.isoformat()}
            expected = expected_kpis(tables, first, after, budgets_used)
            assert run_report(services, "kpis", query) == expected, query

        programme = services.rules.active.ruleset.programme
        for day in CHECKPOINTS:
            now = liability(services, day)
            assert now == expected_liability(tables, day), day
            # Read again after every later event, expiry run and redemption: the same.
            assert now == history.seen_at_checkpoints[day], day
            # Months past what SQL buckets are grouped lot by lot, to the same figures.
            one_month = LiabilityReportSchema().dump(
                liability_report(lambda: SqlReportReads(services.db, 1), programme, day)
            )
            assert one_month == now, day


# -- a few members by hand


def buy(client: FlaskClient, customer: str, order: str, amount: str, when: str) -> None:
    bought = purchase(customer, amount, order_id=order, occurred_at=when)
    assert post(client, bought).status_code == 201


def by_month(services: Services, day: date) -> dict[str | None, int]:
    return {row["month"]: row["points"] for row in liability(services, day)["by_expiry_month"]}


def test_a_past_liability_stays_the_figure_of_its_day(database_url: str, tmp_path: Path) -> None:
    with report_services(database_url, tmp_path) as (services, clock):
        client = app_for(services).test_client()
        ctx = context(services)
        buy(client, "ann", "o-0", "100", "2026-01-05T10:00:00+08:00")  # expires 5 April
        buy(client, "ann", "o-1", "480", "2026-01-10T10:00:00+08:00")  # expires 10 April
        buy(client, "ann", "o-2", "250", "2026-02-20T10:00:00+08:00")  # expires 21 May
        february = liability(services, date(2026, 2, 28))
        assert february["points_outstanding"] == 830
        assert (february["value"], february["value_after_breakage"]) == ("8.30", "7.06")
        assert february["by_expiry_month"] == [
            {"month": "2026-04", "points": 580, "value": "5.80"},
            {"month": "2026-05", "points": 250, "value": "2.50"},
        ]

        run(ctx, "release-pending", at("2026-03-10T00:00:00+08:00"))
        returned = refund("ann", "o-2", "50", occurred_at="2026-03-12T10:00:00+08:00")
        assert post(client, returned).status_code == 201  # 50 points back from o-2
        clock.now = at("2026-03-20T10:00:00+08:00")
        redeemed = client.post(
            "/v1/customers/ann/redemptions",
            json={"reward_id": "free-coffee", "redemption_id": "r-1"},
            headers=AUTH,
        )
        assert redeemed.status_code == 201  # 500 points: all of o-0, 400 of o-1
        run(ctx, "expire-points", at("2026-04-11T00:00:00+08:00"))
        buy(client, "ann", "o-3", "300", "2026-05-01T10:00:00+08:00")

        assert liability(services, date(2026, 2, 28)) == february
        assert by_month(services, date(2026, 3, 31)) == {"2026-04": 80, "2026-05": 200}
        assert by_month(services, date(2026, 4, 30)) == {"2026-05": 200}
        # o-2's lot expired on 21 May though no job has taken it yet; o-3 is still pending.
        may = liability(services, date(2026, 5, 31))
        assert by_month(services, date(2026, 5, 31)) == {"2026-07": 300}
        run(ctx, "expire-points", at("2026-06-01T00:00:00+08:00"))
        assert liability(services, date(2026, 5, 31)) == may

        def points(first: str, after: str) -> dict[str, Any]:
            answer = run_report(services, "kpis", {"from": first, "to": after})
            return dict(answer["points"])

        # Pending points count once their return window has ended by the period's end.
        assert points("2026-01-01", "2026-02-01")["issued"] == 580
        assert points("2026-02-01", "2026-03-01")["issued"] == 0
        assert points("2026-02-01", "2026-03-07")["issued"] == 250
        assert points("2026-03-01", "2026-04-01") == {
            "issued": 0,
            "redeemed": 500,
            "expired": 0,
            "clawed_back": 50,
            "outstanding": 280,
        }
        half = run_report(services, "kpis", {"from": "2026-01-01", "to": "2026-07-01"})
        assert half["points"] == {
            "issued": 1130,
            "redeemed": 500,
            "expired": 280,
            "clawed_back": 50,
            "outstanding": 300,
        }
        assert (half["redemption_rate"], half["breakage_rate"]) == ("0.4425", "0.2478")


def test_loyalty_report_prints_json_csv_or_a_table(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with report_services(database_url, tmp_path) as (services, _clock):
        client = app_for(services).test_client()
        buy(client, "ann", "o-1", "480", "2026-01-10T10:00:00+08:00")
        buy(client, "bob", "o-2", "520", "2026-01-11T10:00:00+08:00")
        monkeypatch.setenv("LOYALTY_DATABASE_URL", database_url)
        monkeypatch.setenv("LOYALTY_RULES_DIR", services.settings.rules_dir)
        monkeypatch.setenv("LOYALTY_ENGINE", "reference")
        period = ["--from", "2026-01-01", "--to", "2026-02-01"]

        assert main(["report", "kpis", *period, "--format", "json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == run_report(services, "kpis", {"from": "2026-01-01", "to": "2026-02-01"})
        assert printed["points"]["issued"] == 480 + 520 + 50  # big-basket's fifty for bob

        assert main(["report", "kpis", *period, "--campaign", "big-basket", "--format", "csv"]) == 0
        rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
        assert rows[0] == ["measure", "value"]
        assert ["points.issued", "1050"] in rows
        assert ["campaigns.big-basket.budget_used", "0.0333"] in rows
        assert not any(name.startswith("campaigns.earn.") for name, _ in rows)

        assert main(["report", "liability", "--as-of", "2026-01-31"]) == 0
        table = capsys.readouterr().out
        assert "points_outstanding    1050" in table
        assert "2026-04    1050  10.50" in table

        assert main(["report", "kpis", "--from", "2026-02-01", "--to", "2026-01-01"]) == 2
        assert "--to: must be a day after from" in capsys.readouterr().err
        assert main(["report", "liability", "--as-of", "31/01/2026"]) == 2
        assert "--as-of: Not a valid date." in capsys.readouterr().err
        assert main(["report", "kpis", *period, "--campaign", "nope"]) == 1
        assert "no campaign 'nope'" in capsys.readouterr().err
