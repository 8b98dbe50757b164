"""`loyalty rules check`: passes on rules/, and fails with file:line on broken copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.service.helpers import EMAILING

RULES = Path(__file__).resolve().parents[2] / "rules"


def check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as run on a default install (no channel settings), plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(CHANNEL_SETTINGS)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "rules", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, **env},
    )


CHANNEL_SETTINGS = ("LOYALTY_SMTP_", "LOYALTY_WEBHOOK_", "LOYALTY_MESSAGE_CHANNEL")


def copy_of_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def test_the_example_rules_pass() -> None:
    done = check(RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "case(s) passed" in done.stdout
    # Every message the examples send can be delivered on a default install.
    assert "channel-not-configured" not in done.stdout


def test_rules_sending_by_an_unconfigured_channel_are_warned_about(tmp_path: Path) -> None:
    rules = copy_of_rules(tmp_path)
    path = rules / "campaigns" / "receipts.yaml"
    path.write_text(EMAILING)
    done = check(rules)
    assert done.returncode == 0, done.stdout + done.stderr  # a warning, not a failure
    assert (
        f"{path}:4: warning [channel-not-configured]: receipts/receipt sends messages by "
        "email, which is not configured here (set LOYALTY_SMTP_HOST)"
    ) in done.stdout
    assert "1 rule(s) sending by an unconfigured channel" in done.stdout

    configured = check(rules, LOYALTY_SMTP_HOST="smtp.example.com")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "channel-not-configured" not in configured.stdout


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
