"""`not: X` holds exactly when X does not, on both engines, absent fields included.

`category ne red` is false for a line without a category; `not: {category: red}` is true
for it. The campaign below is a peer's: only red lines earn, and a basket of 48 CNY of
red lines, 160 CNY of lines without a category and 40 CNY of blue lines earns 48.
"""

from __future__ import annotations

import textwrap

import pytest

from service.core.evaluation import Matcher
from service.rules.cases import run_case
from service.rules.loader import LoadedRules, load_rules
from service.rules.reference import ReferenceMatcher
from tests.durable_support import needs_durable

PROGRAM = textwrap.dedent("""\
    programme: peer
    currency: CNY
    timezone: Asia/Shanghai
    tiers:
      levels:
        - {name: bronze, min: 0}
    """)

BASKET = """\
      items:
        - {sku: r-1, category: red, quantity: 2, price: 24}
        - {sku: plain-1, quantity: 1, price: 100}
        - {sku: plain-2, quantity: 3, price: 20}
        - {sku: b-1, category: blue, quantity: 1, price: 40}"""

CAMPAIGN = f"""\
campaign: red-only
priority: 0
rules:
  - name: red-lines-earn
    when: {{type: purchase}}
    then:
      - award_points:
          per: 1
          of: items
          exclude: {{not: {{category: red}}}}
  - name: some-line-not-red
    when:
      type: purchase
      items: {{any: {{not: {{category: red}}}}}}
    then:
      - award_points: {{points: 1000}}
  - name: no-red-line
    when:
      type: purchase
      items: {{all: {{not: {{category: red}}}}}}
    then:
      - award_points: {{points: 5000}}
  - name: not-an-app-order
    when:
      type: purchase
      not: {{channel: app}}
    then:
      - award_points: {{points: 20000}}
  - name: not-red-or-blue
    when:
      type: purchase
      items: {{all: {{not: {{category: {{in: [red, blue]}}}}}}}}
    then:
      - award_points: {{points: 100000}}
tests:
  - name: only the red lines earn; lines without a category are not red
    event:
      type: purchase
      amount: 248
      channel: app
      occurred_at: 2026-12-02T10:00:00+08:00
{BASKET}
    expect: {{points: 1048}}
  - name: an order without a channel is not an app order
    event:
      type: purchase
      amount: 100
      occurred_at: 2026-12-02T10:00:00+08:00
      items:
        - {{sku: plain-1, quantity: 1, price: 100}}
    expect: {{points: 126000}}
  - name: a basket of red lines only
    event:
      type: purchase
      amount: 48
      channel: app
      occurred_at: 2026-12-02T10:00:00+08:00
      items:
        - {{sku: r-1, category: red, quantity: 2, price: 24}}
    expect: {{points: 48}}
  - name: lines without a category and blue lines
    event:
      type: purchase
      amount: 140
      channel: web
      occurred_at: 2026-12-02T10:00:00+08:00
      items:
        - {{sku: plain-1, quantity: 1, price: 100}}
        - {{sku: b-1, category: blue, quantity: 1, price: 40}}
    expect: {{points: 26000}}
"""

LOADED: LoadedRules = load_rules({"program.yaml": PROGRAM, "campaigns/red-only.yaml": CAMPAIGN})


@pytest.fixture(scope="module")
def durable_matcher():  # type: ignore[no-untyped-def]
    from service.rules.durable_engine import DurableMatcher

    matcher = DurableMatcher(LOADED.ruleset.rules, LOADED.ruleset.version)
    yield matcher
    matcher.close()


def _check(matcher: Matcher) -> None:
    failures = [str(r) for r in (run_case(LOADED.ruleset, matcher, c) for c in LOADED.cases)]
    assert all(line.endswith(": ok") for line in failures), "\n".join(failures)


def test_the_cases_hold_on_the_reference_engine() -> None:
    assert len(LOADED.cases) == 4
    _check(ReferenceMatcher(LOADED.ruleset.rules))


@needs_durable
def test_the_cases_hold_on_durable_rules(durable_matcher) -> None:  # type: ignore[no-untyped-def]
    from service.rules.durable_engine import ELEMENT_OR_REASON

    # `ne or absent` is a faithful translation; under `all` it would be the element's last
    # test as an `$or`, which durable-rules 2.0.28 mishandles, so those two rules stay
    # with the reference inside the matcher.
    kept = {entry.rule.name: entry.reason for entry in durable_matcher.reference_only}
    assert kept == {"no-red-line": ELEMENT_OR_REASON, "not-red-or-blue": ELEMENT_OR_REASON}
    _check(durable_matcher)
