"""Rule files: what is accepted, and every refusal naming file, line and reason."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from service.core.conditions import AllOf, AnyOf, ArrayAny, Compare
from service.core.errors import RuleFileError
from service.rules.loader import load_rules

PROGRAM = textwrap.dedent("""\
    programme: test
    currency: CNY
    timezone: Asia/Shanghai
    tiers:
      levels:
        - {name: bronze, min: 0}
        - {name: gold, min: 5000, multiplier: 1.5}
    """)


def campaign(body: str, name: str = "promo") -> dict[str, str]:
    text = f"campaign: {name}\n" + textwrap.dedent(body)
    if "tests:" not in text:
        text += (
            "tests: []\n"
            if False
            else (
                "tests:\n  - name: smoke\n    event: {type: purchase, amount: 1, "
                "occurred_at: 2026-12-01T10:00:00+08:00}\n    expect: {points: 0}\n"
            )
        )
    return {"program.yaml": PROGRAM, f"campaigns/{name}.yaml": text}


def problems_of(files: dict[str, str]) -> list[str]:
    with pytest.raises(RuleFileError) as caught:
        load_rules(files)
    return [str(p) for p in caught.value.problems]


RULE = """\
rules:
  - name: r
    when:
{when}
    then:
      - award_points: {{points: 10}}
"""


def with_when(when: str) -> dict[str, str]:
    indented = textwrap.indent(textwrap.dedent(when), "      ")
    return campaign(RULE.format(when=indented.rstrip("\n")))


def test_a_valid_campaign_compiles_to_the_intermediate_form() -> None:
    loaded = load_rules(
        with_when("""\
        type: purchase
        amount: {gte: 50, lt: "100"}
        channel: {in: [app, web]}
        items: {any: {category: coffee}}
        """)
    )
    (rule,) = loaded.ruleset.rules
    assert rule.event_type == "purchase"
    assert isinstance(rule.condition, AllOf)
    parts = rule.condition.items
    assert parts[0] == Compare("type", "eq", "purchase")
    assert parts[1] == AllOf(
        (Compare("amount", "gte", Decimal(50)), Compare("amount", "lt", Decimal(100)))
    )
    assert parts[2] == AnyOf((Compare("channel", "eq", "app"), Compare("channel", "eq", "web")))
    assert isinstance(parts[3], ArrayAny)
    assert len(loaded.ruleset.version) == 16


def test_literals_are_coerced_to_the_field_type() -> None:
    loaded = load_rules(with_when("store_id: 123\namount: '50'"))
    assert loaded.ruleset.rules[0].condition == AllOf(
        (Compare("store_id", "eq", "123"), Compare("amount", "eq", Decimal(50)))
    )


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            "amuont: {gt: 5}",
            "campaigns/promo.yaml:5: unknown field 'amuont' (did you mean 'amount'?)",
        ),
        ("amount: {greater: 5}", "campaigns/promo.yaml:5: amount: unknown operator 'greater'"),
        ("amount: {gt: abc}", "campaigns/promo.yaml:5: amount is a number; str 'abc' is not"),
        ("channel: {in: []}", "campaigns/promo.yaml:5: channel: `in` needs at least one value"),
        ("all_of: []", "campaigns/promo.yaml:5: `all_of` is empty"),
        ("any_of: []", "campaigns/promo.yaml:5: `any_of` is empty"),
        ("type: purchse", "campaigns/promo.yaml:5: type: 'purchse' is not one of"),
        (
            "customer.tier: platinum",
            "campaigns/promo.yaml:5: customer.tier: 'platinum' is not one of",
        ),
        (
            "local.weekday: saturday",
            "campaigns/promo.yaml:5: local.weekday: 'saturday' is not one of",
        ),
        ("customer.is_new: {gt: true}", "campaigns/promo.yaml:5: customer.is_new is a boolean"),
        (
            "items: {category: coffee}",
            "campaigns/promo.yaml:5: items is a list; use `any` or `all`",
        ),
        (
            "not: {items: {any: {category: x}}}",
            "campaigns/promo.yaml:5: `not` cannot wrap `any`/`all`",
        ),
        ("channel: [app]", "campaigns/promo.yaml:5: channel: a list needs an operator"),
    ],
)
def test_bad_conditions_name_file_line_and_reason(when: str, expected: str) -> None:
    found = problems_of(with_when(when))
    assert any(p.startswith(expected) for p in found), found


def test_more_than_500_equality_values_on_one_field_is_refused() -> None:
    values = ", ".join(f"s{i}" for i in range(501))
    found = problems_of(with_when(f"store_id: {{in: [{values}]}}"))
    assert any("at most 500" in p for p in found), found


def test_distinct_values_are_counted_across_rules() -> None:
    rules = "rules:\n" + "".join(
        f"  - name: r{i}\n    when: {{store_id: s{i}}}\n    then: [{{award_points: 1}}]\n"
        for i in range(501)
    )
    found = problems_of(campaign(rules))
    assert any("store_id is compared with 501 distinct values" in p for p in found), found


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"program.yaml": "programme: [unclosed"}, "program.yaml:1: invalid YAML"),
        (
            {"program.yaml": PROGRAM + "bogus: 1\n"},
            "program.yaml:8: unknown key 'bogus' in the programme",
        ),
        (
            {"program.yaml": PROGRAM.replace("Asia/Shanghai", "Mars/Olympus")},
            "program.yaml:3: timezone",
        ),
        ({"program.yaml": PROGRAM.replace("min: 0", "min: 10")}, "program.yaml:5: the lowest tier"),
        (
            {"program.yaml": PROGRAM, "campaigns/a.yaml": "campaign: b\nrules: []\ntests: []\n"},
            "campaigns/a.yaml:1: campaign 'b' must live in a file named b.yaml",
        ),
        ({"program.yaml": PROGRAM, "notes.txt": "hi"}, "notes.txt: not a rule file"),
        (
            {"program.yaml": PROGRAM + "currency: USD\n"},
            "program.yaml:8: invalid YAML: duplicate key",
        ),
    ],
)
def test_bad_files_name_file_line_and_reason(files: dict[str, str], expected: str) -> None:
    found = problems_of(files)
    assert any(p.startswith(expected) for p in found), found


def test_effects_and_limits_are_checked() -> None:
    files = campaign("""\
        rules:
          - name: r
            when: {type: purchase}
            then:
              - award_points: {per: 0, of: amount}
              - give_cash: 5
            limit: {per_customer: 0, per: 1 day}
        """)
    found = problems_of(files)
    assert any(":6: per must be a positive number" in p for p in found), found
    assert any(":7: unknown effect 'give_cash'" in p for p in found), found
    assert any(":8: per_customer must be at least 1" in p for p in found), found


def test_a_campaign_without_cases_is_refused() -> None:
    files = {
        "program.yaml": PROGRAM,
        "campaigns/x.yaml": "campaign: x\nrules:\n  - {name: r, when: {type: purchase}, then: [{award_points: 1}]}\n",
    }
    assert any("has no `tests:`" in p for p in problems_of(files))


def test_attribute_fields_take_their_type_from_the_rules() -> None:
    loaded = load_rules(with_when("type: activity\nattributes.rating: {gte: 4}"))
    assert loaded.ruleset.dynamic_fields == {"attributes.rating": "number"}
    found = problems_of(
        campaign(
            RULE.format(when="      attributes.rating: {gte: 4}")
            + RULE.format(when="      attributes.rating: high")
            .replace("rules:\n", "")
            .replace("name: r", "name: r2")
        )
    )
    assert any("compared with a string here and a number elsewhere" in p for p in found), found
