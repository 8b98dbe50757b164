"""The reference matcher files rules under a value they require and tries them only on
facts carrying it; what matches must not change (the differential tests hold it to
durable-rules on generated facts; these are the edges of the filing itself)."""

from __future__ import annotations

from decimal import Decimal

from service.core.conditions import AllOf, AnyOf, Compare, Condition, Exists
from service.core.programme import Rule
from service.rules.reference import ReferenceMatcher


def rule(name: str, condition: Condition, event_type: str | None = "purchase") -> Rule:
    return Rule("c", name, condition, (), event_type=event_type)


STORE_IN = AnyOf((Compare("store_id", "eq", "s1"), Compare("store_id", "eq", "s2")))
RULES = [
    rule("stores", AllOf((STORE_IN, Compare("amount", "gte", Decimal(10))))),
    rule("app", AllOf((Compare("channel", "eq", "app"), STORE_IN))),  # the narrower: channel
    rule("one", Compare("qty", "eq", 1)),
    rule("true", Compare("qty", "eq", True)),
    rule("open", Exists("store_id", True)),
    rule("any-type", Compare("channel", "eq", "app"), event_type=None),
    rule("either", AnyOf((Compare("channel", "eq", "app"), Compare("store_id", "eq", "s1")))),
]


def matched(facts: dict[str, object]) -> set[str]:
    return {key.split("/")[1] for key in ReferenceMatcher(RULES).match(facts)}


def test_filed_rules_match_only_with_their_value() -> None:
    facts = {"type": "purchase", "store_id": "s2", "amount": Decimal(12), "channel": "app"}
    assert matched(facts) == {"stores", "app", "open", "any-type", "either"}
    assert matched({**facts, "store_id": "s3"}) == {"open", "any-type", "either"}
    assert matched({**facts, "channel": "store", "store_id": "s1"}) == {"stores", "open", "either"}


def test_values_keep_their_types() -> None:
    assert matched({"type": "purchase", "qty": 1}) == {"one"}
    assert matched({"type": "purchase", "qty": True}) == {"true"}
    assert matched({"type": "purchase", "qty": Decimal(1)}) == set()


def test_an_unhashable_or_missing_value_matches_no_filed_rule() -> None:
    assert matched({"type": "purchase", "store_id": ("s1",)}) == {"open"}
    assert matched({"type": "refund", "channel": "app"}) == {"any-type"}
