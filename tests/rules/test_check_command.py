"""`loyalty rules check`: passes on rules/, and fails with file:line on broken copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "rules"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "rules", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def test_the_example_rules_pass() -> None:
    done = check(RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "case(s) passed" in done.stdout


def test_a_broken_file_fails_with_file_and_line(tmp_path: Path) -> None:
    rules = copy_of_rules(tmp_path)
    path = rules / "campaigns" / "review-bonus.yaml"
    path.write_text(path.read_text().replace("kind: review", "knd: review"))
    done = check(rules)
    assert done.returncode == 1
    assert f"{path}:8: unknown field 'knd' (did you mean 'kind'?)" in done.stdout


def test_a_case_expecting_the_wrong_points_fails_with_file_and_line(tmp_path: Path) -> None:
    rules = copy_of_rules(tmp_path)
    path = rules / "campaigns" / "base-earn.yaml"
    path.write_text(path.read_text().replace("expect: {points: 300}", "expect: {points: 301}"))
    done = check(rules)
    assert done.returncode == 1
    line = next(
        n
        for n, text in enumerate(path.read_text().splitlines(), 1)
        if "a gold member earns" in text
    )
    assert (
        f"{path}:{line}: base-earn::a gold member earns one and a half times: expected points 301, got 300"
        in done.stdout
    )


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    rules = copy_of_rules(tmp_path)
    (rules / "program.yaml").write_text("programme: [unclosed\n")
    done = check(rules)
    assert done.returncode == 1
    assert (
        f"{rules / 'program.yaml'}:2: invalid YAML" in done.stdout
        or f"{rules / 'program.yaml'}:1: invalid YAML" in done.stdout
    )
