"""Lint in `loyalty rules check`: one test per lint, each with a file that trips it and
the near miss that does not, plus the command's output and exit codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.rules.check import check_rules
from service.rules.lint import LINTS, Finding, lint
from service.rules.loader import load_rules, read_rules_dir
from tests.conftest import RULES_DIR

NOW = datetime(2026, 11, 23, tzinfo=UTC)
PROGRAM = (RULES_DIR / "program.yaml").read_text(encoding="utf-8")
CASE = "tests: [{name: t, event: {type: purchase, amount: 1, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {}}]"


# Two campaigns that do not stack (exclusive_group), each with a case.
STACKING = {
    "program.yaml": PROGRAM,
    "campaigns/welcome-big.yaml": """\
campaign: welcome-big
priority: 5
exclusive_group: welcome
rules:
  - name: big
    when: {type: purchase}
    then: [award_points: 100]
tests:
  - name: the bigger welcome pays alone
    event: {type: purchase, amount: 10, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {points: 100, rules: [big]}
""",
    "campaigns/welcome-small.yaml": """\
campaign: welcome-small
priority: 1
exclusive_group: welcome
rules:
  - name: small
    when: {type: purchase}
    then: [award_points: 10]
tests:
  - name: outranked by the bigger welcome
    event: {type: purchase, amount: 10, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {points: 0}
""",
}


def campaign(name: str, rules: str, head: str = "", tests: str = CASE) -> dict[str, str]:
    """A campaign file: `head` lines (priority, active, budget), then `rules`, then tests."""
    text = f"campaign: {name}\n{head}rules:\n{rules}{tests}\n"
    return {f"campaigns/{name}.yaml": text}


def rule(name: str, when: str, then: str = "[award_points: 10]", extra: str = "") -> str:
    return f"  - name: {name}\n    when: {when}\n    then: {then}\n{extra}"


def findings(*campaigns: dict[str, str], program: str = PROGRAM) -> list[Finding]:
    files = {"program.yaml": program}
    for entry in campaigns:
        files.update(entry)
    loaded = load_rules(files)
    return lint(loaded.ruleset, loaded.cases, now=NOW)


def ids(found: list[Finding]) -> list[str]:
    return [f.lint for f in found]


def test_the_example_rules_are_clean() -> None:
    loaded = load_rules(read_rules_dir(RULES_DIR))
    assert lint(loaded.ruleset, loaded.cases, now=NOW) == []


# -- unknown-reference


def test_a_segment_no_programme_segment_defines() -> None:
    found = findings(campaign("vip", rule("r", "{type: purchase, customer.segment: vips}")))
    assert ids(found) == ["unknown-reference"]
    assert "'vips'" in found[0].message
    assert "champions" in found[0].message
    assert found[0].severity == "error"
    ok = findings(campaign("vip", rule("r", "{type: purchase, customer.segment: champions}")))
    assert ok == []


def test_cases_that_name_unknown_tiers_offers_or_rules() -> None:
    tests = (
        "tests:\n"
        "  - name: bad\n"
        "    customer: {tier: diamond}\n"
        "    event: {type: purchase, amount: 1, occurred_at: 2026-12-02T10:00:00+08:00}\n"
        "    expect: {offers: [free-car], rules: [nope], tier: titanium}\n"
    )
    found = findings(campaign("c", rule("r", "{type: purchase}"), tests=tests))
    messages = " | ".join(f.message for f in found)
    assert set(ids(found)) == {"unknown-reference"}
    assert len(found) == 4
    for word in ("'diamond'", "'free-car'", "'nope'", "'titanium'"):
        assert word in messages


# -- never-holds


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("{type: purchase, amount: {gt: 100, lt: 50}}", "amount cannot be > 100 and < 50"),
        ("{type: purchase, all_of: [{type: refund}]}", "type cannot equal"),
        ("{type: purchase, channel: {in: [app, web]}, all_of: [{channel: store}]}", "channel"),
        ("{type: activity, amount: {gte: 1}}", "activity events carry no amount"),
        ("{type: purchase, local.hour: {gte: 24}}", "local.hour runs >= 0 and <= 23"),
        ("{type: purchase, customer.tier: {not_in: [bronze, silver, gold, platinum]}}", "tier"),
        ("{type: purchase, items: {any: {price: {lt: 0}}}}", "no element of items"),
    ],
)
def test_a_condition_that_can_never_hold(when: str, reason: str) -> None:
    found = findings(campaign("c", rule("dead", when)))
    assert ids(found) == ["never-holds"]
    assert reason in found[0].message
    assert found[0].line == 3


@pytest.mark.parametrize(
    "when",
    [
        "{type: purchase, amount: {gt: 50, lt: 100}}",
        "{type: purchase, channel: {in: [app, web]}, any_of: [{channel: app}, {amount: {gt: 1}}]}",
        "{type: activity, attributes.stars: {gte: 4}}",
        "{type: purchase, customer.tier: {not_in: [bronze, silver]}}",
    ],
)
def test_conditions_that_can_hold_pass(when: str) -> None:
    assert findings(campaign("c", rule("alive", when))) == []


# -- equal-priority-overlap


def test_two_campaigns_of_equal_priority_awarding_on_the_same_event() -> None:
    found = findings(
        campaign("aa", rule("a", "{type: purchase, amount: {gt: 10}}"), "priority: 3\n"),
        campaign("bb", rule("b", "{type: purchase, channel: app}"), "priority: 3\n"),
    )
    assert ids(found) == ["equal-priority-overlap"]
    assert found[0].file == "campaigns/bb.yaml"
    assert found[0].line == 2  # the second campaign's `priority:`
    assert found[0].severity == "warning"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("{type: purchase}", "priority: 3\n"), ("{type: purchase}", "priority: 4\n")),
        (("{type: purchase, amount: {lt: 10}}", ""), ("{type: purchase, amount: {gt: 20}}", "")),
        (("{type: purchase}", ""), ("{type: activity, kind: review}", "")),
        (
            ("{type: purchase}", "active: {from: 2026-01-01, until: 2026-06-30}\n"),
            ("{type: purchase}", "active: {from: 2026-07-01, until: 2027-06-30}\n"),
        ),
    ],
)
def test_exclusive_campaigns_do_not_overlap(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    found = findings(
        campaign("aa", rule("a", first[0]), first[1]),
        campaign("bb", rule("b", second[0]), second[1]),
    )
    assert "equal-priority-overlap" not in ids(found)


# -- campaign-ended


def test_a_campaign_already_over() -> None:
    head = "active: {from: 2026-01-01, until: 2026-06-30}\n"
    found = findings(campaign("summer", rule("r", "{type: purchase}"), head))
    assert ids(found) == ["campaign-ended"]
    assert found[0].line == 2
    still = "active: {from: 2026-01-01, until: 2027-06-30}\n"
    assert findings(campaign("summer", rule("r", "{type: purchase}"), still)) == []


# -- budget-below-award


def test_a_budget_smaller_than_one_fixed_award() -> None:
    head = "budget: {points: 50}\n"
    found = findings(campaign("tiny", rule("r", "{type: purchase}", "[award_points: 80]"), head))
    assert ids(found) == ["budget-below-award"]
    assert "80 points" in found[0].message
    assert found[0].severity == "error"
    fits = findings(campaign("tiny", rule("r", "{type: purchase}", "[award_points: 50]"), head))
    assert fits == []


def test_a_budget_of_fewer_offers_than_one_rule_issues() -> None:
    head = "budget: {offers: 1}\n"
    then = "[issue_offer: birthday-20, issue_offer: vip-10]"
    found = findings(campaign("o", rule("r", "{type: purchase}", then), head))
    assert ids(found) == ["budget-below-award"]


# -- referral-unguarded


UNGUARDED = PROGRAM.replace("require_new_referee: true", "require_new_referee: false")
REFERRAL_CASE = "tests: [{name: t, event: {type: referral, referrer_id: f, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {}}]"


def test_a_referral_reward_without_a_new_customer_guard() -> None:
    assert UNGUARDED != PROGRAM
    bare = campaign("refer", rule("r", "{type: referral}"), tests=REFERRAL_CASE)
    found = findings(bare, program=UNGUARDED)
    assert ids(found) == ["referral-unguarded"]
    guarded = campaign(
        "refer", rule("r", "{type: referral, customer.is_new: true}"), tests=REFERRAL_CASE
    )
    assert findings(guarded, program=UNGUARDED) == []
    assert findings(bare) == []  # the programme itself requires new referees


def test_a_referrer_rewarded_on_every_purchase() -> None:
    then = "[award_points: {points: 50, to: referrer}]"
    found = findings(campaign("thanks", rule("r", "{type: purchase}", then)))
    assert ids(found) == ["referral-unguarded"]
    first_order = rule("r", "{type: purchase, customer.order_count: 0}", then)
    assert findings(campaign("thanks", first_order)) == []
    limited = rule("r", "{type: purchase}", then, "    limit: {per_customer: 1}\n")
    assert findings(campaign("thanks", limited)) == []


# -- expiry-before-pending


def test_points_that_expire_before_the_pending_period_ends() -> None:
    program = PROGRAM.replace("after: 365d", "after: 10d").replace("days: 0", "days: 14")
    found = findings(campaign("c", rule("r", "{type: purchase}")), program=program)
    assert ids(found) == ["expiry-before-pending"]
    assert found[0].file == "program.yaml"
    assert found[0].line == 7
    longer = PROGRAM.replace("days: 0", "days: 14")
    assert findings(campaign("c", rule("r", "{type: purchase}")), program=longer) == []


# -- order-dependent


@pytest.mark.parametrize(
    ("then_a", "then_b", "reason"),
    [
        ("[issue_offer: vip-10]", "[issue_offer: vip-10]", "both issue offer 'vip-10'"),
        ("[upgrade_tier: gold]", "[upgrade_tier: silver]", "move the member's tier"),
        ("[tag: vip]", "[tag: {remove: [vip]}]", "adds tag 'vip' and the other removes it"),
    ],
)
def test_equal_priority_campaigns_whose_effects_interact(
    then_a: str, then_b: str, reason: str
) -> None:
    found = findings(
        campaign("aa", rule("a", "{type: purchase}", then_a)),
        campaign("bb", rule("b", "{type: purchase}", then_b)),
    )
    assert ids(found) == ["order-dependent"]
    assert reason in found[0].message
    apart = findings(
        campaign("aa", rule("a", "{type: purchase}", then_a), "priority: 1\n"),
        campaign("bb", rule("b", "{type: purchase}", then_b)),
    )
    assert apart == []


# -- the command


def write(tmp_path: Path, *campaigns: dict[str, str]) -> Path:
    root = tmp_path / "rules"
    (root / "campaigns").mkdir(parents=True)
    (root / "program.yaml").write_text(PROGRAM)
    for entry in campaigns:
        for path, text in entry.items():
            (root / path).write_text(text)
    return root


def test_check_prints_each_finding_with_file_line_severity_and_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ended = "active: {from: 2026-01-01, until: 2026-06-30}\n"
    root = write(tmp_path, campaign("summer", rule("r", "{type: purchase}"), ended))
    assert check_rules(root, engine_timeout=60, now=NOW) == 0  # a warning alone passes
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if "[campaign-ended]" in li)
    assert re.match(
        rf"^{re.escape(str(root))}/campaigns/summer.yaml:2: warning \[campaign-ended\]: ", line
    )
    assert check_rules(root, engine_timeout=60, now=NOW, strict=True) == 1


def test_check_fails_on_a_lint_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path, campaign("dead", rule("r", "{type: purchase, amount: {gt: 9, lt: 1}}")))
    assert check_rules(root, engine_timeout=60, now=NOW) == 1
    assert "error [never-holds]" in capsys.readouterr().out


def test_every_lint_has_a_severity_and_a_test() -> None:
    source = Path(__file__).read_text()
    for lint_id, (severity, what) in LINTS.items():
        assert severity in ("error", "warning")
        assert what
        assert f'"{lint_id}"' in source, f"no test names {lint_id}"


def test_lint_flags_an_exclusive_group_of_one() -> None:
    big, small = STACKING["campaigns/welcome-big.yaml"], STACKING["campaigns/welcome-small.yaml"]
    found = findings({"campaigns/welcome-big.yaml": big})
    assert ids(found) == ["exclusive-group-of-one"]
    assert found[0].line == 3
    pair = {"campaigns/welcome-big.yaml": big, "campaigns/welcome-small.yaml": small}
    assert ids(findings(pair)) == []
