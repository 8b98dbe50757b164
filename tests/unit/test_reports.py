"""The reports' definitions without a database: periods in the programme's zone, months
of expiry, rates and money, tiers and campaigns, the point value in program.yaml, and the
answers built over a fake store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType

import pytest

from service.application.reports import (
    CampaignAwards,
    ExpiryBucket,
    MemberCensus,
    OrderCounts,
    PointFlows,
    ReferralCounts,
    day_start,
    kpi_report,
    liability_report,
    local_today,
    month_of,
    period,
    rate,
    worth,
)
from service.commands.reports import flat, table
from service.core.errors import NotFound, RuleFileError
from service.core.programme import PointsPolicy, Programme, RuleSet
from service.report_schema import KpiQuery, KpiReportSchema, LiabilityReportSchema
from service.rules.loader import load_rules

PROGRAM = """\
programme: test
currency: CNY
timezone: Asia/Shanghai
tiers:
  levels: [{name: bronze, min: 0}, {name: silver, min: 1000}]
"""
BUDGETED = """\
campaign: {NAME}
active: {ACTIVE}
budget: {points: 1000}
rules:
  - name: r
    when: {type: purchase}
    then: [{award_points: {points: 1}}]
tests:
  - name: t
    event: {type: purchase, amount: 1, occurred_at: 2026-06-02T10:00:00+08:00}
    expect: {points: 1}
"""


def ruleset(points: str = "", campaigns: Mapping[str, str] | None = None) -> RuleSet:
    files = {"program.yaml": PROGRAM + (f"points: {points}\n" if points else "")}
    for name, active in (campaigns or {}).items():
        files[f"campaigns/{name}.yaml"] = BUDGETED.replace("{NAME}", name).replace(
            "{ACTIVE}", active
        )
    return load_rules(files).ruleset


# -- program.yaml


def test_the_programme_says_what_a_point_is_worth_and_how_many_will_lapse() -> None:
    policy = ruleset("{value: 0.01, expected_breakage: 0.15}").programme.points
    assert (policy.value, policy.expected_breakage) == (Decimal("0.01"), Decimal("0.15"))
    unset = ruleset().programme.points
    assert (unset.value, unset.expected_breakage) == (None, Decimal(0))
    assert (PointsPolicy().value, PointsPolicy().expected_breakage) == (None, Decimal(0))


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("{value: -0.01}", "points.value must be a non-negative number"),
        ("{value: cheap}", "points.value must be a number"),
        ("{expected_breakage: 1.5}", "points.expected_breakage must be at most 1"),
        ("{expected_breakage: -0.1}", "points.expected_breakage must be a non-negative number"),
        ("{worth: 1}", "worth"),
    ],
)
def test_a_bad_point_value_or_breakage_is_refused_with_its_line(written: str, said: str) -> None:
    with pytest.raises(RuleFileError) as error:
        ruleset(written)
    assert said in str(error.value)
    assert "program.yaml:6" in str(error.value)


# -- periods and months


def test_a_period_is_whole_days_in_the_programme_zone() -> None:
    span = period(date(2026, 12, 1), date(2027, 1, 1), "Asia/Shanghai")
    assert span.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert span.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="must be after"):
        period(date(2026, 12, 1), date(2026, 12, 1), "UTC")


def test_days_and_months_follow_summer_time() -> None:
    # London: 29 March 2026 begins in GMT, 30 March in BST.
    assert day_start(date(2026, 3, 29), "Europe/London") == datetime(2026, 3, 29, tzinfo=UTC)
    assert day_start(date(2026, 3, 30), "Europe/London") == datetime(2026, 3, 29, 23, tzinfo=UTC)
    london = "Europe/London"
    assert month_of(datetime(2026, 2, 28, 23, 30, tzinfo=UTC), london) == (
        "2026-02",
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert month_of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), london) == (
        "2026-04",  # half past midnight in BST
        datetime(2026, 4, 30, 23, tzinfo=UTC),
    )
    # Late on 31 December in UTC is already January in Shanghai.
    late = datetime(2026, 12, 31, 17, tzinfo=UTC)
    assert month_of(late, "Asia/Shanghai") == ("2027-01", datetime(2027, 1, 31, 16, tzinfo=UTC))
    assert month_of(datetime(2026, 12, 1, tzinfo=UTC), "UTC")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert local_today(late, "Asia/Shanghai") == date(2027, 1, 1)


def test_rates_have_four_places_and_none_without_a_divisor() -> None:
    assert rate(1, 3) == Decimal("0.3333")
    assert rate(2, 3) == Decimal("0.6667")
    assert rate(1, 8) == Decimal("0.1250")
    assert rate(0, 5) == Decimal("0.0000")
    assert rate(3, 0) is None
    assert worth(12345, Decimal("0.01")) == Decimal("123.45")
    assert worth(1, Decimal("0.005")) == Decimal("0.01")  # half a cent rounds up
    assert worth(12345, None) is None


# -- the answers, over a fake store


class FakeStore:
    """What a store would count, given outright."""

    def __init__(self) -> None:
        self.asked_outstanding: list[datetime] = []

    def awards(self, start: datetime, end: datetime) -> list[CampaignAwards]:
        return [CampaignAwards("spring", 300, 2), CampaignAwards("retired", 100, 1)]

    def point_flows(self, start: datetime, end: datetime) -> PointFlows:
        return PointFlows(redeemed=120, expired=40, clawed_back=7)

    def outstanding(self, at: datetime, zone: str) -> list[ExpiryBucket]:
        self.asked_outstanding.append(at)
        return [
            ExpiryBucket(None, 5),
            ExpiryBucket("2027-02", 200),
            ExpiryBucket("2027-01", 1000),
            ExpiryBucket("2027-03", 0),
        ]

    def census(self, start: datetime, end: datetime) -> MemberCensus:
        return MemberCensus(10, 4, {None: 6, "silver": 3, "diamond": 1})

    def active_members(self, start: datetime, end: datetime) -> int:
        return 7

    def orders(self, start: datetime, end: datetime) -> OrderCounts:
        return OrderCounts(5, Decimal("1000.5000"), 4, 1)

    def referrals(self, start: datetime, end: datetime) -> ReferralCounts:
        return ReferralCounts(3, 2)

    def budget_points_used(self, campaigns: Sequence[str]) -> Mapping[str, int]:
        return {"spring": 250}


class FakeReads:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def __enter__(self) -> FakeReads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def commit(self) -> None:
        pass


def test_the_kpis_put_the_counts_together() -> None:
    rules = ruleset(
        "{value: 0.01}",
        {"spring": "{from: 2026-03-01, until: 2026-06-01}", "autumn": "{from: 2026-09-01}"},
    )
    store = FakeStore()
    report = kpi_report(lambda: FakeReads(store), rules, date(2026, 5, 1), date(2026, 6, 1))
    document = KpiReportSchema().dump(report)

    assert store.asked_outstanding == [day_start(date(2026, 6, 1), "Asia/Shanghai")]
    assert document["points"] == {
        "issued": 400,
        "redeemed": 120,
        "expired": 40,
        "clawed_back": 7,
        "outstanding": 1205,
    }
    assert (document["redemption_rate"], document["breakage_rate"]) == ("0.3000", "0.1000")
    assert document["orders"] == {
        "count": 5,
        "revenue": "1000.50",
        "average_value": "200.10",
        "repurchase_rate": "0.2500",
    }
    assert document["members"] == {"total": 10, "new": 4, "active": 7}
    # Levels in their order, no tier as the lowest, a retired tier after them.
    assert document["tiers"] == {"bronze": 6, "silver": 3, "diamond": 1}
    assert list(document["tiers"]) == ["bronze", "silver", "diamond"]
    # Awarding in the period, or live in it (autumn is not yet).
    assert document["campaigns"] == [
        {"campaign": "retired", "points": 100, "members": 1, "cost": "1.00", "budget_used": None},
        {
            "campaign": "spring",
            "points": 300,
            "members": 2,
            "cost": "3.00",
            "budget_used": "0.2500",
        },
    ]
    assert (document["from"], document["to"], document["currency"]) == (
        "2026-05-01",
        "2026-06-01",
        "CNY",
    )


def test_one_campaign_alone_and_an_unknown_one() -> None:
    rules = ruleset(campaigns={"autumn": "{from: 2026-09-01}"})
    reads = lambda: FakeReads(FakeStore())  # noqa: E731
    alone = kpi_report(reads, rules, date(2026, 5, 1), date(2026, 6, 1), "autumn")
    assert [(c.campaign, c.points, c.cost, c.budget_used) for c in alone.campaigns] == [
        ("autumn", 0, None, Decimal("0.0000"))
    ]
    assert alone.points.issued == 400  # the programme's figures stay whole
    assert kpi_report(reads, rules, date(2026, 5, 1), date(2026, 6, 1), "retired").campaigns
    with pytest.raises(NotFound, match="no campaign 'nope'"):
        kpi_report(reads, rules, date(2026, 5, 1), date(2026, 6, 1), "nope")


def test_the_liability_values_each_month_and_takes_breakage_off() -> None:
    store = FakeStore()
    programme = ruleset("{value: 0.01, expected_breakage: 0.15}").programme
    report = liability_report(lambda: FakeReads(store), programme, date(2026, 12, 31))

    assert store.asked_outstanding == [datetime(2026, 12, 31, 16, 0, tzinfo=UTC)]  # day's end
    assert LiabilityReportSchema().dump(report) == {
        "as_of": "2026-12-31",
        "currency": "CNY",
        "point_value": "0.01",
        "points_outstanding": 1205,
        "value": "12.05",
        "expected_breakage": "0.1500",
        "value_after_breakage": "10.24",
        "by_expiry_month": [
            {"month": "2027-01", "points": 1000, "value": "10.00"},
            {"month": "2027-02", "points": 200, "value": "2.00"},
            {"month": None, "points": 5, "value": "0.05"},
        ],
    }


def test_without_a_point_value_there_are_no_money_figures() -> None:
    programme: Programme = ruleset().programme
    document = LiabilityReportSchema().dump(
        liability_report(lambda: FakeReads(FakeStore()), programme, date(2026, 12, 31))
    )
    assert document["point_value"] is None
    assert document["value"] is None
    assert document["value_after_breakage"] is None
    assert document["expected_breakage"] == "0.0000"
    assert {row["value"] for row in document["by_expiry_month"]} == {None}


def test_the_query_needs_a_period_that_moves_forwards() -> None:
    assert KpiQuery().load({"from": "2026-12-01", "to": "2026-12-02"})["to_date"] == date(
        2026, 12, 2
    )
    for bad, field in (
        ({"from": "2026-12-02", "to": "2026-12-01"}, "to"),
        ({"from": "2026-12-01"}, "to"),
        ({"from": "0001-01-01", "to": "2026-12-01"}, "from"),
        ({"from": "2026-12-01", "to": "2026-12-32"}, "to"),
        ({"from": "2026-12-01", "to": "2027-01-01", "campaign": ""}, "campaign"),
    ):
        with pytest.raises(Exception) as error:  # noqa: PT011  (marshmallow's ValidationError)
            KpiQuery().load(bad)
        assert field in error.value.messages, (bad, error.value.messages)  # type: ignore[attr-defined]


# -- the CLI's shapes


def test_csv_and_table_rows_name_every_value() -> None:
    document = {
        "as_of": "2026-12-31",
        "value": None,
        "by_expiry_month": [
            {"month": "2027-01", "points": 10, "value": "0.10"},
            {"month": None, "points": 2, "value": "0.02"},
        ],
    }
    assert list(flat(document)) == [
        ("as_of", "2026-12-31"),
        ("value", None),
        ("by_expiry_month.2027-01.points", 10),
        ("by_expiry_month.2027-01.value", "0.10"),
        ("by_expiry_month.never.points", 2),
        ("by_expiry_month.never.value", "0.02"),
    ]
    assert table(document).splitlines() == [
        "as_of  2026-12-31",
        "value  -",
        "",
        "by_expiry_month:",
        "month    points  value",
        "2027-01      10   0.10",
        "never         2   0.02",
    ]
    assert "by_expiry_month: none" in table({"as_of": "x", "by_expiry_month": []})
