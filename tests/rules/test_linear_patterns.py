"""`matches` runs on RE2: linear in the text on both engines, with the meaning the pattern
dialect documents (Python's full match, on the subset)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.conditions import AllOf, Compare, Matches
from service.core.errors import RuleFileError
from service.core.patterns import PatternError, compile_full_match, validate_pattern
from service.core.programme import Rule
from service.rules.loader import load_rules
from service.rules.matchers import build_matcher
from tests.hostile_rules import CATASTROPHIC_PATTERNS, files_with, pattern_campaign

# A liveness bound, not a speed test: Python's `re` needed 21.8 s for the second pattern
# on 64 characters and far longer for the first; RE2 takes microseconds.
FINISH_WITHIN_S = 10.0

CHILD = """
import sys
from service.rules.loader import load_rules
from service.rules.matchers import build_matcher
from tests.hostile_rules import LONG_CHANNEL, files_with, pattern_campaign

engine, pattern = sys.argv[1], sys.argv[2]
loaded = load_rules(files_with("campaigns/p.yaml", pattern_campaign("p", pattern)))
matcher = build_matcher(loaded.ruleset.rules, "v", engine, print)
for channel in (LONG_CHANNEL, LONG_CHANNEL + "!", "a" * 10_000):
    print(sorted(matcher.match({"type": "purchase", "channel": channel})))
"""


@pytest.mark.parametrize("engine", ["reference", "durable"])
@pytest.mark.parametrize("pattern", CATASTROPHIC_PATTERNS, ids=["dots", "classes"])
def test_catastrophic_patterns_finish_on_both_engines(engine: str, pattern: str) -> None:
    """The issue's patterns against 64 `a`s (and 10,000): in a child with a timeout, so
    a backtracking engine fails the test instead of hanging it."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), engine, pattern],
        capture_output=True,
        text=True,
        timeout=FINISH_WITHIN_S,
        check=True,
    )
    assert done.stdout.splitlines() == ["[]", "['p/patterned']", "[]"], done.stderr


# ------------------------------------------------------------- the dialect's meaning

_ATOMS = ("a", "b", "-", "%", "!", " ", "é", "\\.", "\\*", ".", "[ab]", "[a-c]", "[0-9]")
_ATOMS += ("[a\\-]", "[_.@ ]", "[b-dX-Z]")
_QUANTIFIERS = ("", "", "*", "+", "?", "{2}", "{0,3}", "{1,2}")
pieces = st.builds(lambda a, q: a + q, st.sampled_from(_ATOMS), st.sampled_from(_QUANTIFIERS))
patterns = st.lists(pieces, min_size=1, max_size=5).map("".join)
texts = st.text(alphabet="ab-%! é.*0_@cXZ\n", max_size=8)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns, text=texts)
def test_re2_means_what_pythons_full_match_means_on_the_dialect(pattern: str, text: str) -> None:
    assert validate_pattern(pattern) is None, pattern
    expected = re.fullmatch(pattern, text) is not None
    assert compile_full_match(pattern)(text) is expected


def test_text_that_is_not_unicode_matches_no_pattern() -> None:
    rule = Rule("c", "r", AllOf((Compare("type", "eq", "purchase"), Matches("channel", "a.*"))), ())
    fact = {"type": "purchase", "channel": "a\ud800"}
    for engine in ("reference", "durable"):
        matcher = build_matcher([rule], "v", engine, lambda reason: None)
        assert matcher.match(fact) == frozenset(), engine


def test_what_re2_cannot_take_is_refused() -> None:
    with pytest.raises(PatternError, match="RE2 cannot take"):
        compile_full_match("(a)\\1")
    with pytest.raises(PatternError, match="RE2 cannot take"):
        compile_full_match("a(?=b)")


def test_a_pattern_outside_the_dialect_is_refused_with_file_and_line() -> None:
    files = files_with("campaigns/p.yaml", pattern_campaign("p", "(a+)+\\\\1"))
    with pytest.raises(RuleFileError) as refused:
        load_rules(files)
    (problem,) = refused.value.problems
    assert (problem.file, problem.line) == ("campaigns/p.yaml", 8)
    assert "groups" in problem.message
