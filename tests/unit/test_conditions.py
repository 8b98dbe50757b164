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


def test_negation_keeps_absent_values_unknown() -> None:
    condition = negate(Compare("amount", "gt", Decimal(10)))
    assert condition == Compare("amount", "lte", Decimal(10))
    assert compile_predicate(condition)({}) is False


def test_de_morgan() -> None:
    negated = negate(AllOf((Compare("a", "eq", "x"), Exists("b", True))))
    assert negated == AnyOf((Compare("a", "ne", "x"), Exists("b", False)))


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
    negated = compile_predicate(negate(condition))(facts)
    # not_in holds only for a present value of the list's type that is not in it.
    kinds = {type(v) for v in values}
    expected = actual is not None and kinds == {type(actual)} and actual not in values
    assert negated is expected
