"""The meaning of conditions, as the reference evaluator defines it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.core.conditions import (
    ELEMENT,
    AllOf,
    AnyOf,
    ArrayAll,
    ArrayAny,
    Compare,
    Exists,
    Matches,
    compile_predicate,
    describe,
    explain_failure,
    negate,
)

ITEMS = (
    {"sku": "latte", "category": "coffee", "quantity": Decimal(2), "price": Decimal(30)},
    {"sku": "bun", "category": "bakery", "quantity": Decimal(1), "price": Decimal(8)},
)


@pytest.mark.parametrize(
    ("condition", "facts", "holds"),
    [
        (Compare("amount", "gte", Decimal(50)), {"amount": Decimal(50)}, True),
        (Compare("amount", "gt", Decimal(50)), {"amount": Decimal(50)}, False),
        (Compare("amount", "lt", Decimal(50)), {}, False),
        (Compare("amount", "ne", Decimal(50)), {}, False),  # absent satisfies nothing
        (Compare("channel", "ne", "app"), {"channel": "store"}, True),
        (Compare("customer.is_new", "eq", True), {"customer.is_new": True}, True),
        (Compare("customer.is_new", "eq", True), {"customer.is_new": Decimal(1)}, False),
        (Exists("code", True), {"code": "X"}, True),
        (Exists("code", False), {}, True),
        (Matches("code", "SUMMER[0-9]+"), {"code": "SUMMER24"}, True),
        (Matches("code", "SUMMER"), {"code": "SUMMER24"}, False),  # full match
        (ArrayAny("items", Compare("category", "eq", "coffee")), {"items": ITEMS}, True),
        (ArrayAll("items", Compare("category", "eq", "coffee")), {"items": ITEMS}, False),
        (ArrayAll("items", Exists("category", True)), {"items": ()}, False),  # empty: false
        (
            ArrayAny("customer.tags", Compare(ELEMENT, "eq", "vip")),
            {"customer.tags": ("vip",)},
            True,
        ),
        (
            AnyOf((Compare("type", "eq", "refund"), Compare("type", "eq", "purchase"))),
            {"type": "purchase"},
            True,
        ),
        (
            AllOf((Compare("type", "eq", "purchase"), Compare("amount", "gt", Decimal(1)))),
            {"type": "purchase"},
            False,
        ),
    ],
)
def test_condition_meaning(condition, facts, holds) -> None:  # type: ignore[no-untyped-def]
    assert compile_predicate(condition)(facts) is holds


def test_not_holds_exactly_when_the_comparison_does_not() -> None:
    # `ne` is false on an absent value; `not` is true there, since `eq` is false there.
    condition = negate(Compare("amount", "gt", Decimal(10)))
    assert condition == AnyOf((Compare("amount", "lte", Decimal(10)), Exists("amount", False)))
    assert compile_predicate(condition)({}) is True
    assert compile_predicate(Compare("amount", "ne", Decimal(10)))({}) is False


@pytest.mark.parametrize(
    "condition",
    [
        Compare("category", "eq", "red"),
        Compare("amount", "gte", Decimal(50)),
        AnyOf((Compare("category", "eq", "red"), Compare("category", "eq", "blue"))),
        AnyOf((Compare("amount", "lt", Decimal(10)), Compare("amount", "gt", Decimal(100)))),
        AllOf((Compare("category", "eq", "red"), Exists("amount", True))),
        AnyOf((Compare("category", "eq", "red"), Compare("amount", "gt", Decimal(5)))),
    ],
)
@pytest.mark.parametrize(
    "facts",
    [
        {},
        {"category": "red"},
        {"category": "blue"},
        {"amount": Decimal(5)},
        {"amount": Decimal(50)},
        {"amount": Decimal(500), "category": "red"},
    ],
)
def test_not_is_the_complement_on_present_and_absent_fields(condition, facts) -> None:  # type: ignore[no-untyped-def]
    holds = compile_predicate(condition)(facts)
    assert compile_predicate(negate(condition))(facts) is not holds
    assert compile_predicate(negate(negate(condition)))(facts) is holds


def test_de_morgan() -> None:
    negated = negate(AllOf((Compare("a", "eq", "x"), Exists("b", True))))
    assert negated == AnyOf(
        (AnyOf((Compare("a", "ne", "x"), Exists("a", False))), Exists("b", False))
    )


def test_not_of_an_in_list_stays_two_alternatives() -> None:
    values = [f"c{i}" for i in range(100)]
    negated = negate(AnyOf(tuple(Compare("category", "eq", v) for v in values)))
    assert negated == AnyOf(
        (AllOf(tuple(Compare("category", "ne", v) for v in values)), Exists("category", False))
    )


def test_negating_a_quantifier_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot wrap"):
        negate(ArrayAny("items", Compare("category", "eq", "coffee")))


def test_explanations_name_the_failing_part() -> None:
    condition = AllOf((Compare("type", "eq", "purchase"), Compare("amount", "gte", Decimal(50))))
    reason = explain_failure(condition, {"type": "purchase", "amount": Decimal(30)})
    assert reason == "amount gte 50 (was 30)"
    assert explain_failure(condition, {"type": "purchase", "amount": Decimal(60)}) is None
    assert describe(Compare("channel", "eq", "app")) == "channel eq 'app'"


@pytest.mark.parametrize(
    ("values", "actual", "holds"),
    [
        ((1, 2), 1, True),
        ((1, 2), True, False),  # a bool is not an int here, although 1 == True in Python
        ((True,), 1, False),
        (("1", 2), 1, False),
        (("1", 2), "1", True),
        ((Decimal("1.50"), 3), Decimal("1.5"), True),
        ((Decimal("1.50"),), None, False),
        (("a", 1, True), True, True),
    ],
)
def test_an_in_list_compiled_to_a_set_keeps_types_apart(values, actual, holds) -> None:  # type: ignore[no-untyped-def]
    condition = AnyOf(tuple(Compare("x", "eq", v) for v in values))
    facts = {} if actual is None else {"x": actual}
    assert compile_predicate(condition)(facts) is holds
    not_in = AllOf(tuple(Compare("x", "ne", v) for v in values))  # what `not_in:` parses to
    negated = compile_predicate(not_in)(facts)
    # not_in holds only for a present value of the list's type that is not in it.
    kinds = {type(v) for v in values}
    expected = actual is not None and kinds == {type(actual)} and actual not in values
    assert negated is expected
