"""Child process of `loyalty rules check`: load rules into durable-rules, run every case
through it and through the reference, and report where they disagree (as JSON)."""

from __future__ import annotations

import json
import sys

from service.rules.cases import run_case
from service.rules.loader import load_rules_dir
from service.rules.reference import ReferenceMatcher


def main(path: str) -> int:
    from service.rules.durable_engine import DurableMatcher

    loaded = load_rules_dir(path)
    ruleset = loaded.ruleset
    durable = DurableMatcher(ruleset.rules, ruleset.version)
    reference = ReferenceMatcher(ruleset.rules)
    disagreements = []
    for case in loaded.cases:
        by_engine = run_case(ruleset, durable, case)
        by_reference = run_case(ruleset, reference, case)
        if by_engine.failure != by_reference.failure:
            disagreements.append(
                {
                    "file": case.file,
                    "line": case.line,
                    "case": case.name,
                    "detail": f"durable-rules: {by_engine.failure or 'passed'}; "
                    f"reference: {by_reference.failure or 'passed'}",
                }
            )
    json.dump({"version": ruleset.version, "disagreements": disagreements}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
