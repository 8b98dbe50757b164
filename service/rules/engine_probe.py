"""Child process of `loyalty rules check`: load rules into durable-rules, run every case
through it and through the reference, and report where they disagree (as JSON)."""

from __future__ import annotations

import json
import sys

from service.core.errors import RuleProblem
from service.rules.cases import run_case
from service.rules.loader import LoadedRules, load_rules_dir
from service.rules.reference import ReferenceMatcher


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
