"""What rule files must pass before a worker loads them: the checks themselves.

service.rules.sandbox runs these in a child process for files the service did not read
from its own disk at start (a dry run's, a reload's), so that a file that is slow or
large to compile costs a child, not a worker. `loyalty rules check` runs this module as
a child process (``python -m service.rules.vetting DIR``) to compare the engines on the
embedded cases, since some rulesets make durable-rules hang rather than fail.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime

from service.core.errors import RuleFileError, RuleProblem
from service.rules.cases import run_case, run_cases
from service.rules.lint import ERROR, Finding, lint
from service.rules.loader import CAMPAIGN_DIR, LoadedRules, load_rules, load_rules_dir
from service.rules.matchers import build_matcher
from service.rules.reference import ReferenceMatcher


def check_files(
    files: Mapping[str, str], *, engine: str, now: datetime | None = None
) -> tuple[Finding, ...]:
    """Load the files and build the engine's matcher for them, as a worker would.

    With ``now`` (a reload), the version must also pass its embedded cases, lint without
    errors and, on durable-rules, decide every case as the reference does. Raises
    RuleFileError with every problem; returns the lint warnings.
    """
    loaded = load_rules(files)
    ruleset = loaded.ruleset
    if now is None:
        matcher = build_matcher(ruleset.rules, ruleset.version, engine, lambda reason: None)
        close = getattr(matcher, "close", None)
        if callable(close):
            close()
        return ()
    problems = [
        RuleProblem(r.case.file, r.case.line, f"{r.case.campaign}::{r.case.name}: {r.failure}")
        for r in run_cases(ruleset, ReferenceMatcher(ruleset.rules), loaded.cases)
        if not r.passed
    ]
    findings = lint(ruleset, loaded.cases, now=now)
    problems += [
        RuleProblem(f.file, f.line, f"{f.severity} [{f.lint}]: {f.message}")
        for f in findings
        if f.severity == ERROR
    ]
    if not problems and engine == "durable":
        from service.rules.durable_engine import EngineFailure

        try:
            problems += disagreements(loaded)
        except EngineFailure as error:
            problems.append(RuleProblem(CAMPAIGN_DIR, None, f"the rule engine failed: {error}"))
    if problems:
        raise RuleFileError(problems)
    return tuple(f for f in findings if f.severity != ERROR)


def disagreements(loaded: LoadedRules) -> list[RuleProblem]:
    """The cases on which durable-rules and the reference decide differently."""
    from service.rules.durable_engine import DurableMatcher

    ruleset = loaded.ruleset
    reference = ReferenceMatcher(ruleset.rules)
    found = []
    with DurableMatcher(ruleset.rules, ruleset.version) as durable:
        for case in loaded.cases:
            by_engine = run_case(ruleset, durable, case)
            by_reference = run_case(ruleset, reference, case)
            if by_engine.failure != by_reference.failure:
                detail = (
                    f"durable-rules: {by_engine.failure or 'passed'}; "
                    f"reference: {by_reference.failure or 'passed'}"
                )
                message = f"{case.name}: engines disagree: {detail}"
                found.append(RuleProblem(case.file, case.line, message))
    return found


def main(path: str) -> int:
    loaded = load_rules_dir(path)
    report = [p.as_dict() for p in disagreements(loaded)]
    json.dump({"version": loaded.ruleset.version, "disagreements": report}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
