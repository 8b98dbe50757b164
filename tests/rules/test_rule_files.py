"""Every case written inside the rule files, run through both engines, plus corpus checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.rules.campaign_parser import RuleCase
from service.rules.cases import run_case
from service.rules.loader import LoadedRules, load_rules_dir
from service.rules.reference import ReferenceMatcher
from tests.durable_support import needs_durable

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
LOADED: LoadedRules = load_rules_dir(RULES_DIR)


@pytest.fixture(scope="module")
def durable_matcher():  # type: ignore[no-untyped-def]
    from service.rules.durable_engine import DurableMatcher

    matcher = DurableMatcher(LOADED.ruleset.rules, LOADED.ruleset.version)
    yield matcher
    matcher.close()


@pytest.mark.parametrize("case", LOADED.cases, ids=lambda c: f"{c.campaign}::{c.name}")
def test_case_holds_on_the_reference_engine(case: RuleCase) -> None:
    result = run_case(LOADED.ruleset, ReferenceMatcher(LOADED.ruleset.rules), case)
    assert result.passed, str(result)


@needs_durable
@pytest.mark.parametrize("case", LOADED.cases, ids=lambda c: f"{c.campaign}::{c.name}")
def test_case_holds_on_durable_rules(case: RuleCase, durable_matcher) -> None:  # type: ignore[no-untyped-def]
    result = run_case(LOADED.ruleset, durable_matcher, case)
    assert result.passed, str(result)


def test_every_campaign_carries_cases() -> None:
    with_cases = {case.campaign for case in LOADED.cases}
    assert {c.id for c in LOADED.ruleset.campaigns} <= with_cases


def test_file_names_are_campaign_ids() -> None:
    for campaign in LOADED.ruleset.campaigns:
        assert Path(campaign.file).stem == campaign.id
