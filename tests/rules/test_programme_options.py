"""Rule-file options for stacking and the programme: exclusive groups (on both engines and
in the files' own cases), points that never expire, no grace, forgiven shortfalls,
transfers, and rewards with a stock or a per-member limit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.core.errors import RuleFileError
from service.rules.cases import run_cases
from service.rules.durable_engine import DurableMatcher
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher
from tests.durable_support import needs_durable
from tests.rules.test_lint import PROGRAM, STACKING


@needs_durable
def test_only_the_highest_priority_campaign_of_an_exclusive_group_pays_on_both_engines() -> None:
    loaded = load_rules(STACKING)
    reference = run_cases(loaded.ruleset, ReferenceMatcher(loaded.ruleset.rules), loaded.cases)
    with DurableMatcher(loaded.ruleset.rules, "stacking") as durable:
        on_durable = run_cases(loaded.ruleset, durable, loaded.cases)
    assert [r.failure for r in reference] == [None, None]
    assert [r.failure for r in on_durable] == [None, None]


def _programme(
    points: str, rewards: str = "", review: str = "{every: 30d, grace: 30d}"
) -> dict[str, str]:
    program = PROGRAM.replace(
        "  expiry: {after: 365d, warn_before: [30d, 7d]}   # rolling from each earn, FIFO by lot\n",
        points,
    ).replace("review: {every: 30d, grace: 30d}", f"review: {review}")
    if rewards:
        program = program.replace("  - {id: free-coffee, title: A free coffee, cost: 500}", rewards)
    return {"program.yaml": program}


def _problems(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleFileError) as refused:
        load_rules(files)
    return [str(p) for p in refused.value.problems]


def test_programme_options_load_as_the_core_uses_them() -> None:
    programme = load_rules(
        _programme(
            "  expiry: never\n  shortfall: forgive\n  transfers: true\n",
            "  - {id: free-coffee, title: A free coffee, cost: 500, stock: 100, per_member: 2}",
            review="{every: 30d, grace: 0d}",
        )
    ).ruleset.programme
    assert programme.points.expire_after is None
    assert programme.points.shortfall == "forgive"
    assert programme.points.transfers is True
    assert programme.tiers.grace == timedelta(0)
    coffee = programme.reward("free-coffee")
    assert coffee is not None
    assert (coffee.stock, coffee.per_member) == (100, 2)


def test_the_defaults_stay_as_they_were() -> None:
    programme = load_rules(
        _programme("  expiry: {after: 365d, warn_before: [30d, 7d]}\n")
    ).ruleset.programme
    assert programme.points.expire_after == timedelta(days=365)
    assert programme.points.shortfall == "debt"
    assert programme.points.transfers is False


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ("  expiry: sometimes\n", "points.expiry must be a mapping or 'never'"),
        ("  shortfall: pardon\n", "points.shortfall must be one of"),
        ("  transfers: yes please\n", "points.transfers takes true or false"),
    ],
)
def test_bad_programme_options_name_the_problem(points: str, message: str) -> None:
    problems = _problems(_programme(points))
    assert any(message in p for p in problems), problems


def test_a_zero_grace_is_allowed_but_a_zero_review_period_is_not() -> None:
    problems = _problems(_programme("", review="{every: 0d, grace: 0d}"))
    assert any("must be longer than zero" in p for p in problems), problems
