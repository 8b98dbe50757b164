"""Fuzzing the rule-file loader: random and mutated YAML for program.yaml and campaign files
gives a loaded ruleset or a RuleFileError whose problems each name a file and, for a rule
file, a line inside it: never another exception, never a hang over 2 s.

`make test` runs a few examples; `make fuzz` many (LOYALTY_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.errors import RuleFileError
from service.rules.loader import load_rules, read_rules_dir
from service.rules.reference import ReferenceMatcher
from tests.conftest import RULES_DIR
from tests.hostile_rules import alias_bomb_campaign, crowded_campaign, pattern_campaign

EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "30"))
DEADLINE_MS = 2000  # the bound on one load

SEEDS = read_rules_dir(RULES_DIR)
CAMPAIGN_SEEDS = [text for path, text in SEEDS.items() if path != "program.yaml"] + [
    alias_bomb_campaign("x", levels=3),
    pattern_campaign("x", ".*[a-z]+!"),
    crowded_campaign("x", rules=3),
]
# YAML's own punctuation, weighted up, and a few characters that broke parsers before.
YAML_CHARS = ":-[]{}&*!|>'\"#%@,?~ \n\t" * 4 + "aZ09_./\\é\u2028\x00\x07\ud800"
fragments = st.one_of(
    st.text(alphabet=YAML_CHARS, max_size=12),
    st.sampled_from(
        (
            *("&a ", "*a", "<<: ", "!!python/object ", "{", "[", "- ", ": ", "\n  ", "---\n"),
            *("...\n", "? ", "!!binary ", "1e999", "-0", "0x1f", "null", "~", "yes", "2026-13-40"),
            *("all_of: [", "matches: ", '"(a+)+"', "{gt: ", "award_points: ", "tests:\n"),
        )
    ),
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    """A seed file with a few random edits: cut, duplicate, insert or swap at random places."""
    return mutate(draw, draw(st.sampled_from(seeds)))


def mutate(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(0, 4))):
        size = len(text)
        start = draw(st.integers(0, size))
        end = draw(st.integers(start, min(size, start + 80)))
        edit = draw(st.sampled_from(["cut", "duplicate", "insert", "replace", "swap_lines"]))
        if edit == "cut":
            text = text[:start] + text[end:]
        elif edit == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif edit == "insert":
            text = text[:start] + draw(fragments) + text[start:]
        elif edit == "replace":
            text = text[:start] + draw(fragments) + text[end:]
        else:
            lines = text.split("\n")
            i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def any_text() -> st.SearchStrategy[str]:
    return st.text(alphabet=YAML_CHARS, max_size=300)


programs = st.one_of(mutated([SEEDS["program.yaml"]]), any_text())
campaigns = st.one_of(mutated(CAMPAIGN_SEEDS), any_text())
campaign_names = st.sampled_from(["campaigns/x.yaml", "campaigns/base-earn.yaml", "c.txt"])
file_sets = st.builds(
    lambda program, others: {"program.yaml": program, **others},
    programs,
    st.dictionaries(campaign_names, campaigns, max_size=3),
)


def check(files: dict[str, str]) -> None:
    try:
        loaded = load_rules(files)
    except RuleFileError as error:
        problems = error.problems
    else:
        ReferenceMatcher(loaded.ruleset.rules)  # what a worker builds next
        return
    assert problems
    for problem in problems:
        assert problem.file, problem
        assert problem.message, problem
        text = files.get(problem.file)
        if text is not None and problem.file.endswith(".yaml"):  # a rule file: file:line
            assert problem.line is not None, problem
            assert 1 <= problem.line <= text.count("\n") + 1, problem


@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(files=file_sets)
def test_random_and_mutated_rule_files_load_or_fail_cleanly(files: dict[str, str]) -> None:
    check(files)


@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(data=st.data())
def test_one_mutated_file_among_the_real_ones(data: st.DataObject) -> None:
    """Mostly-valid files under their own names reach deep into the parsers, past the YAML,
    and some still load."""
    path = data.draw(st.sampled_from(sorted(SEEDS)))
    check({**SEEDS, path: data.draw(st.composite(lambda draw: mutate(draw, SEEDS[path]))())})


def test_the_seeds_themselves_load() -> None:
    assert load_rules(SEEDS).ruleset.campaigns
