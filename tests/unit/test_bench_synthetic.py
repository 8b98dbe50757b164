"""The benchmark's synthetic programmes are rule files the product accepts and whose own
cases pass, so `make bench` measures rules that mean something."""

from __future__ import annotations

from bench.synthetic import sample_traffic, synthetic_campaigns, synthetic_rules
from service.core.evaluation import evaluate
from service.rules.cases import run_cases
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher


def test_synthetic_campaigns_load_and_their_cases_pass() -> None:
    loaded = load_rules(synthetic_rules(30))

    assert len(loaded.ruleset.campaigns) == 30
    assert len(loaded.cases) >= 30
    results = run_cases(loaded.ruleset, ReferenceMatcher(loaded.ruleset.rules), loaded.cases)
    assert [str(r) for r in results if not r.passed] == []


def test_the_generator_is_deterministic() -> None:
    assert synthetic_campaigns(5, seed=3) == synthetic_campaigns(5, seed=3)
    assert synthetic_campaigns(5, seed=3) != synthetic_campaigns(5, seed=4)


def test_sample_traffic_evaluates_and_earns_points() -> None:
    loaded = load_rules(synthetic_rules(30))
    matcher = ReferenceMatcher(loaded.ruleset.rules)
    traffic = sample_traffic(200)

    evaluations = [evaluate(loaded.ruleset, matcher, c, e) for c, e in traffic]

    assert len({c.customer_id for c, _ in traffic}) > 150
    assert sum(1 for ev in evaluations if ev.effects) > 50
