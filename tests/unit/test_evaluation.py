"""Evaluation: what conditions cannot say (windows, priority, limits, budgets, arithmetic)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from service.core.customer import CustomerSnapshot
from service.core.effects import AwardPoints
from service.core.evaluation import BudgetUse, evaluate, limit_reached
from service.core.events import Event
from service.core.programme import Limit
from service.core.referrals import share_contact
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher

PROGRAM = textwrap.dedent("""\
    programme: test
    currency: CNY
    timezone: Asia/Shanghai
    tiers:
      levels:
        - {name: bronze, min: 0}
        - {name: gold, min: 5000, multiplier: 1.5}
    """)
CASE = "tests:\n  - {name: c, event: {type: purchase, amount: 1, occurred_at: 2026-12-01T10:00:00+08:00}, expect: {}}\n"
AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def ruleset(**campaigns: str):  # type: ignore[no-untyped-def]
    files = {"program.yaml": PROGRAM}
    for name, body in campaigns.items():
        cid = name.replace("_", "-")
        files[f"campaigns/{cid}.yaml"] = f"campaign: {cid}\n" + textwrap.dedent(body) + CASE
    return load_rules(files).ruleset


def purchase(amount: str = "100", at: datetime = AT, **extra: object) -> Event:
    return Event("e1", "purchase", "c1", at, order_id="o1", amount=Decimal(amount), **extra)  # type: ignore[arg-type]


def run(rs, event: Event, customer: CustomerSnapshot | None = None, **kw):  # type: ignore[no-untyped-def]
    return evaluate(rs, ReferenceMatcher(rs.rules), customer or CustomerSnapshot("c1"), event, **kw)


EARN = textwrap.dedent("""\
    rules:
      - name: earn
        when: {type: purchase}
        then: [{award_points: {per: 1, of: amount}}]
    """)


def test_tier_multiplier_applies_unless_the_rule_opts_out() -> None:
    rs = ruleset(
        base=EARN,
        flat="""\
        rules:
          - name: flat
            when: {type: purchase}
            then: [{award_points: {points: 10, tier_multiplier: false}}]
        """,
    )
    gold = CustomerSnapshot("c1", tier="gold")
    points = {e.campaign: e.points for e in run(rs, purchase("100.90"), gold).effects}
    assert points == {"base": 150, "flat": 10}


def test_every_whole_per_earns_then_rounding_and_max() -> None:
    rs = ruleset(
        promo="""\
        rules:
          - name: r
            when: {type: purchase}
            then: [{award_points: {points: 5, per: 10, of: amount, multiplier: 1.3, round: ceil, max: 60}}]
        """
    )
    assert run(rs, purchase("88")).points == 52  # 8 whole tens * 5 * 1.3 = 52
    assert run(rs, purchase("99.99")).points == 59  # 9 * 5 * 1.3 = 58.5 -> ceil 59
    assert run(rs, purchase("1000")).points == 60  # capped


def test_higher_priority_first_and_ties_by_id() -> None:
    rs = ruleset(
        b_low=EARN + "priority: 1\n", a_low=EARN + "priority: 1\n", z_high=EARN + "priority: 9\n"
    )
    assert [e.campaign for e in run(rs, purchase()).effects] == ["z-high", "a-low", "b-low"]


def test_inactive_campaigns_say_so_in_the_trace() -> None:
    rs = ruleset(promo="active: {from: 2026-12-10, until: 2026-12-20}\n" + EARN)
    evaluation = run(rs, purchase(), explain=True)
    assert evaluation.points == 0
    assert evaluation.trace[0].outcome == "inactive"
    assert "starts 2026-12-10T00:00:00+08:00" in evaluation.trace[0].reason
    inside = run(rs, purchase(at=datetime(2026, 12, 20, 15, 59, tzinfo=UTC)))  # 23:59 in Shanghai
    assert inside.points == 100


def test_limits_count_firings_on_both_sides_of_the_event() -> None:
    limit = Limit(1, timedelta(days=1))
    assert limit_reached(limit, (AT - timedelta(hours=23),), AT)
    assert limit_reached(limit, (AT + timedelta(hours=23),), AT)
    assert not limit_reached(limit, (AT - timedelta(hours=25),), AT)
    assert limit_reached(Limit(2, None), (AT, AT), AT)


def test_a_limited_rule_is_refused_with_a_reason() -> None:
    rs = ruleset(promo=EARN.replace("then:", "limit: {per_customer: 1, per: 1d}\n    then:"))
    fired = MappingProxyType({"promo/earn": (AT - timedelta(hours=2),)})
    evaluation = run(rs, purchase(), CustomerSnapshot("c1", rule_firings=fired), explain=True)
    assert evaluation.points == 0
    assert evaluation.trace[0].outcome == "limit_reached"


def test_budget_caps_the_award_that_meets_its_end_then_refuses() -> None:
    rs = ruleset(promo="budget: {points: 150}\n" + EARN)
    assert run(rs, purchase(), budgets_used={"promo": BudgetUse(points=100)}).effects == (
        AwardPoints(50, "promo", "earn"),
    )
    spent = run(rs, purchase(), budgets_used={"promo": BudgetUse(points=150)}, explain=True)
    assert spent.effects == ()
    assert spent.trace[0].outcome == "budget_spent"


def test_the_trace_names_the_condition_that_failed() -> None:
    rs = ruleset(promo=EARN.replace("{type: purchase}", "{type: purchase, amount: {gte: 500}}"))
    evaluation = run(rs, purchase("100"), explain=True)
    assert evaluation.trace[0].reason == "amount gte 500 (was 100)"


def test_local_time_uses_the_members_zone() -> None:
    rs = ruleset(promo=EARN.replace("{type: purchase}", "{type: purchase, local.weekday: sat}"))
    friday_utc = datetime(2026, 12, 4, 17, 30, tzinfo=UTC)  # Saturday 01:30 in Shanghai
    assert run(rs, purchase(at=friday_utc)).points == 100
    in_london = CustomerSnapshot("c1", timezone="Europe/London")
    assert run(rs, purchase(at=friday_utc), in_london).points == 0


def _grouped(rs, group: str, *campaign_ids: str):  # type: ignore[no-untyped-def]
    campaigns = tuple(
        replace(c, exclusive_group=group) if c.id in campaign_ids else c for c in rs.campaigns
    )
    return replace(rs, campaigns=campaigns)


def test_of_an_exclusive_group_only_the_highest_priority_campaign_pays() -> None:
    rs = _grouped(
        ruleset(
            small=EARN + "priority: 1\n",
            big=EARN + "priority: 5\n",
            other=EARN,
        ),
        "welcome",
        "small",
        "big",
    )
    result = run(rs, purchase("100"))
    paid = {e.campaign for e in result.effects if isinstance(e, AwardPoints)}
    assert paid == {"big", "other"}
    outranked = next(t for t in result.trace if t.campaign == "small")
    assert outranked.outcome == "outranked"
    assert outranked.reason == "exclusive group welcome: campaign big applied"


def test_an_exclusive_group_breaks_priority_ties_by_campaign_id() -> None:
    rs = _grouped(ruleset(zeta=EARN, alpha=EARN), "one-only", "zeta", "alpha")
    paid = {e.campaign for e in run(rs, purchase("100")).effects if isinstance(e, AwardPoints)}
    assert paid == {"alpha"}


def test_contacts_match_whatever_their_case_spacing_and_country_prefix() -> None:
    assert share_contact(("A@B.cn ", None), ("a@b.cn", "1"))
    assert share_contact((None, "+86 138 0013 8000"), (None, "13800138000"))
    assert share_contact((None, "0086-13800138000"), ("x@y.cn", "138 0013 8000"))
    assert not share_contact((None, None), (None, None))
    assert not share_contact(("a@b.cn", "1380"), ("c@d.cn", "1390"))
