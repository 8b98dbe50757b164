"""`loyalty rules check`: schema, compile, lint, the engine's load, and the embedded tests.

Prints ``file:line: reason`` for each problem, so marketers (and editors) can jump to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from service.core.errors import RuleFileError
from service.rules.cases import run_cases
from service.rules.channel_check import unconfigured_channels
from service.rules.lint import ERROR, lint
from service.rules.loader import load_rules_dir
from service.rules.matchers import why_durable_cannot_load
from service.rules.reference import ReferenceMatcher


def check_rules(
    path: str | Path,
    *,
    engine_timeout: float = 60.0,
    strict: bool = False,
    now: datetime,
    channels: Collection[str] | None = None,
) -> int:
    """Exit code 0 when the rules are fit to serve; lint warnings fail only when strict.

    ``channels``: the message channels configured where the check runs; rules that send
    by another are warned about (never a failure: a CI runner need not have the SMTP
    settings of production)."""
    try:
        loaded = load_rules_dir(path)
    except RuleFileError as error:
        for problem in error.problems:
            where = problem.file if problem.file == str(path) else str(Path(path) / problem.file)
            line = f":{problem.line}" if problem.line else ""
            print(f"{where}{line}: {problem.message}")
        print(f"{len(error.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    ruleset = loaded.ruleset
    findings = lint(ruleset, loaded.cases, now=now)
    for finding in findings:
        print(finding.format(path))
    errors = sum(1 for f in findings if f.severity == ERROR)
    warnings = len(findings) - errors
    undeliverable = unconfigured_channels(ruleset, channels) if channels is not None else []
    for finding in undeliverable:
        print(finding.format(path))
    results = run_cases(ruleset, ReferenceMatcher(ruleset.rules), loaded.cases)
    failures = [r for r in results if not r.passed]
    for result in failures:
        print(
            f"{Path(path) / result.case.file}:{result.case.line}: {result.case.campaign}::"
            f"{result.case.name}: {result.failure}"
        )
    missing = why_durable_cannot_load()
    if missing is None:
        engine_problems = probe_engine(path, engine_timeout)
    else:
        engine_problems = []
        print(f"{path}: durable-rules not checked, unavailable here ({missing})")
    for message in engine_problems:
        print(message)
    campaigns, rules = len(ruleset.campaigns), len(ruleset.rules)
    summary = (
        f"{path}: version {ruleset.version}, {campaigns} campaign(s), {rules} rule(s), "
        f"{len(results) - len(failures)}/{len(results)} case(s) passed, "
        f"{errors} lint error(s), {warnings} warning(s)"
    )
    if undeliverable:
        summary += f", {len(undeliverable)} rule(s) sending by an unconfigured channel"
    if failures or engine_problems or errors or (strict and warnings):
        print(summary + " - FAILED", file=sys.stderr)
        return 1
    print(summary)
    return 0


def probe_engine(path: str | Path, timeout: float) -> list[str]:
    """Load the rules into durable-rules in a child process: some rulesets make the engine
    hang rather than fail, and a hang must not take the checker with it."""
    command = [sys.executable, "-m", "service.rules.engine_probe", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return [f"{path}: the rule engine did not finish loading these rules in {timeout:.0f} s"]
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return [f"{path}: the rule engine failed on these rules: {detail}"]
    report = json.loads(done.stdout)
    return [f"{path}/{d['file']}:{d['line']}: {d['message']}" for d in report["disagreements"]]
