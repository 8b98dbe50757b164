"""Untrusted rule files are checked in a child process whose time and memory are limited;
the worker gets the files' problems with file and line, or the limit that stopped them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.core.errors import RuleFileError
from service.rules.loader import read_rules_dir
from service.rules.sandbox import CompileLimits, check_in_child
from tests.conftest import RULES_DIR
from tests.hostile_rules import (
    ALIAS_BOMB_ANCHOR_LINE,
    alias_bomb_campaign,
    crowded_campaign,
    files_with,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_files_that_pass_in_the_child_answer_their_warnings() -> None:
    files = read_rules_dir(RULES_DIR)
    assert check_in_child(files, CompileLimits(), engine="durable") == ()
    warnings = check_in_child(files, CompileLimits(), engine="durable", now=NOW)
    assert all(w.severity == "warning" for w in warnings)


def test_the_child_reports_each_problem_with_file_and_line() -> None:
    files = files_with("campaigns/bomb.yaml", alias_bomb_campaign())
    with pytest.raises(RuleFileError) as refused:
        check_in_child(files, CompileLimits(), engine="durable")
    (problem,) = refused.value.problems
    assert (problem.file, problem.line) == ("campaigns/bomb.yaml", ALIAS_BOMB_ANCHOR_LINE)


def test_a_reload_check_runs_the_cases_and_lint_in_the_child() -> None:
    files = dict(read_rules_dir(RULES_DIR))
    files["campaigns/base-earn.yaml"] = files["campaigns/base-earn.yaml"].replace(
        "expect: {points: 120}", "expect: {points: 121}"
    )
    with pytest.raises(RuleFileError) as refused:
        check_in_child(files, CompileLimits(), engine="durable", now=NOW)
    (problem,) = refused.value.problems
    assert problem.file == "campaigns/base-earn.yaml"
    assert problem.line
    assert "expected points 121" in problem.message


def test_files_slower_to_compile_than_the_limit_are_cut_off() -> None:
    """10,000 valid rules take seconds to load; with a one-second limit the child is
    killed and the reason names the setting."""
    files = files_with("campaigns/crowded.yaml", crowded_campaign())
    with pytest.raises(RuleFileError) as refused:
        check_in_child(files, CompileLimits(seconds=1), engine="reference", where="sent")
    (problem,) = refused.value.problems
    assert problem.file == "sent"
    assert "longer than 1 s (LOYALTY_RULES_COMPILE_TIMEOUT)" in problem.message


def test_files_larger_to_compile_than_the_limit_are_cut_off() -> None:
    """The example rules check within 128 MiB; 10,000 rules need more."""
    limits = CompileLimits(seconds=120, memory_mib=128)
    assert check_in_child(read_rules_dir(RULES_DIR), limits, engine="durable") == ()
    files = files_with("campaigns/crowded.yaml", crowded_campaign())
    with pytest.raises(RuleFileError) as refused:
        check_in_child(files, limits, engine="reference")
    (problem,) = refused.value.problems
    assert "more than 128 MiB of memory (LOYALTY_RULES_COMPILE_MEMORY)" in problem.message
