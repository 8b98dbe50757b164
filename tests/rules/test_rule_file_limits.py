"""What a rule file may not do to the process reading it: YAML anchors and aliases, deep
nesting and text that is not Unicode are refused at their line, wherever files are read
(the loader serves `rules check`, dry runs, reloads and `rules diff`'s git side alike)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.core.errors import RuleFileError
from service.rules.check import check_rules
from service.rules.git_source import rules_at_revision
from service.rules.loader import load_rules
from tests.conftest import RULES_DIR
from tests.hostile_rules import (
    ALIAS_BOMB_ANCHOR_LINE,
    alias_bomb_campaign,
    files_with,
    program_yaml,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def refusal(files: dict[str, str]) -> tuple[str, int | None, str]:
    with pytest.raises(RuleFileError) as refused:
        load_rules(files)
    (problem,) = refused.value.problems
    return problem.file, problem.line, problem.message


def test_an_alias_bomb_is_refused_at_its_first_anchor() -> None:
    file, line, message = refusal(files_with("campaigns/bomb.yaml", alias_bomb_campaign()))
    assert (file, line) == ("campaigns/bomb.yaml", ALIAS_BOMB_ANCHOR_LINE)
    assert "anchor &c0" in message


def test_an_alias_is_refused_at_its_line_in_the_programme() -> None:
    text = program_yaml().replace("currency: CNY", "currency: CNY\nshared: *nowhere")
    line = text.splitlines().index("shared: *nowhere") + 1
    assert refusal({"program.yaml": text})[:2] == ("program.yaml", line)


def test_nesting_deeper_than_the_limit_is_refused_at_its_line() -> None:
    deep = "campaign: deep\nrules:\n  - when: " + "[" * 80 + "]" * 80 + "\n"
    file, line, message = refusal(files_with("campaigns/deep.yaml", deep))
    assert (file, line) == ("campaigns/deep.yaml", 3)
    assert "nested more than" in message


def test_text_that_is_not_unicode_is_refused_at_its_line() -> None:
    text = "campaign: odd\ndescription: a\ud800b\n"
    file, line, message = refusal(files_with("campaigns/odd.yaml", text))
    assert (file, line) == ("campaigns/odd.yaml", 2)
    assert "not valid Unicode" in message


def test_a_control_character_is_refused_at_its_line() -> None:
    text = "campaign: odd\ndescription: a\x00b\n"
    assert refusal(files_with("campaigns/odd.yaml", text))[:2] == ("campaigns/odd.yaml", 2)


def test_rules_check_prints_the_anchor_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "campaigns" / "bomb.yaml").write_text(alias_bomb_campaign(), encoding="utf-8")

    assert check_rules(rules, now=NOW) == 1

    expected = f"{rules / 'campaigns' / 'bomb.yaml'}:{ALIAS_BOMB_ANCHOR_LINE}: invalid YAML"
    assert expected in capsys.readouterr().out


def test_rules_diff_refuses_an_alias_in_the_base_revision(tmp_path: Path) -> None:
    """The git side of `rules diff` reads a pull request's base through the same loader."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "campaigns" / "bomb.yaml").write_text(alias_bomb_campaign(), encoding="utf-8")
    for command in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"],
    ):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True)

    base = rules_at_revision(rules, "HEAD")

    file, line, _ = refusal(base)
    assert (file, line) == ("campaigns/bomb.yaml", ALIAS_BOMB_ANCHOR_LINE)
