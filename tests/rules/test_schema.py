"""`loyalty rules schema`: JSON Schema for editors, generated from the parsers, committed
under schemas/, and good for every example rule file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from service.cli import main
from service.core.facts import FIELD_TYPES
from service.rules.condition_parser import OPERATORS
from service.rules.effect_parser import AWARD_KEYS, EFFECTS
from service.rules.json_schema import (
    CAMPAIGN_SCHEMA,
    PROGRAM_SCHEMA,
    VALUES,
    accepted_keys,
    campaign_schema,
    program_schema,
    schema_files,
)
from service.rules.programme_parser import PROGRAMME_KEYS
from tests.conftest import RULES_DIR

ROOT = RULES_DIR.parent
COMMITTED = ROOT / "schemas"
CAMPAIGNS = sorted((RULES_DIR / "campaigns").glob("*.yaml"))


class EditorYaml(yaml.SafeLoader):
    """YAML as editors' language servers read it: no timestamps (2026-12-01 is text)."""


EditorYaml.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=EditorYaml)  # noqa: S506


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    return {
        "program": jsonschema_rs.validator_for(program_schema()),
        "campaign": jsonschema_rs.validator_for(campaign_schema()),
    }


def errors(validator: Any, document: Any) -> list[str]:
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_schemas_are_valid_draft_2020_12() -> None:
    for schema in (program_schema(), campaign_schema()):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema_rs.meta.validate(schema)


def test_the_example_programme_validates(validators: dict[str, Any]) -> None:
    assert errors(validators["program"], read(RULES_DIR / "program.yaml")) == []


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.stem)
def test_every_example_campaign_validates(validators: dict[str, Any], path: Path) -> None:
    assert errors(validators["campaign"], read(path)) == []


def test_mistakes_an_editor_should_underline(validators: dict[str, Any]) -> None:
    document = read(RULES_DIR / "campaigns" / "weekend-double-points.yaml")
    document["priority"] = "high"
    document["rules"][0]["when"]["chanel"] = "app"
    document["rules"][0]["when"]["amount"] = {"greater": 50}
    document["rules"][0]["then"].append({"award_point": 1})
    appended = len(document["rules"][0]["then"]) - 1
    document["rules"][0]["when"]["local.weekday"] = {"in": ["saturday"]}
    found = errors(validators["campaign"], document)
    assert any(e.startswith("['priority']") for e in found)
    assert any("'chanel' was unexpected" in e for e in found)
    assert any(e.startswith("['rules', 0, 'when', 'amount']") for e in found)
    assert any(e.startswith(f"['rules', 0, 'then', {appended}]") for e in found)
    assert any(e.startswith("['rules', 0, 'when', 'local.weekday']") for e in found)
    programme = read(RULES_DIR / "program.yaml")
    programme["points"]["expiry"]["after"] = "a year"
    programme["tiers"]["metrc"] = "spend"
    found = errors(validators["program"], programme)
    assert any(e.startswith("['points', 'expiry', 'after']") for e in found)
    assert any("'metrc' was unexpected" in e for e in found)


def test_the_schema_comes_from_the_parsers() -> None:
    program, campaign = program_schema(), campaign_schema()
    assert list(program["properties"]) == list(PROGRAMME_KEYS)
    condition = campaign["$defs"]["condition"]["properties"]
    assert set(FIELD_TYPES) <= set(condition)
    effects = [
        next(iter(e["properties"]))
        for e in campaign["$defs"]["rule"]["properties"]["then"]["items"]["oneOf"]
    ]
    assert effects == list(EFFECTS)
    award = campaign["$defs"]["rule"]["properties"]["then"]["items"]["oneOf"][0]
    assert list(award["properties"]["award_points"]["anyOf"][1]["properties"]) == list(AWARD_KEYS)
    number_ops = campaign["$defs"]["number_field"]["anyOf"][1]["properties"]
    assert set(number_ops) == set(OPERATORS) - {"any", "all", "matches"}


def test_every_key_the_parsers_accept_has_a_value_type() -> None:
    untyped = [
        f"{section}.{key}"
        for section, keys in accepted_keys().items()
        for key in keys
        if section in VALUES and key not in VALUES[section] and not _nested(section, key)
    ]
    assert untyped == [], "add their types to service.rules.json_schema.VALUES"


def _nested(section: str, key: str) -> bool:
    """Keys whose value is a section of its own (typed by that section)."""
    return (section, key) in {
        ("programme", k) for k in PROGRAMME_KEYS if k not in ("programme", "currency", "timezone")
    } | {
        ("campaign", "active"),
        ("campaign", "budget"),
        ("campaign", "rules"),
        ("campaign", "tests"),
        ("points", "expiry"),
        ("points", "pending"),
        ("tiers", "review"),
        ("tiers", "levels"),
        ("rule", "when"),
        ("rule", "then"),
        ("rule", "limit"),
        ("case", "customer"),
        ("case", "event"),
        ("case", "expect"),
    }


def test_the_committed_schemas_are_fresh() -> None:
    for name, text in schema_files().items():
        path = COMMITTED / name
        assert path.is_file(), f"run `loyalty rules schema --out schemas` ({path} is missing)"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run `loyalty rules schema --out schemas`"
        )


def test_the_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "schemas"
    assert main(["rules", "schema", "--out", str(out)]) == 0
    assert json.loads((out / PROGRAM_SCHEMA).read_text())["$id"].endswith(PROGRAM_SCHEMA)
    assert json.loads((out / CAMPAIGN_SCHEMA).read_text())["$id"].endswith(CAMPAIGN_SCHEMA)
    assert main(["rules", "schema", "--out", str(out), "--check"]) == 0
    (out / CAMPAIGN_SCHEMA).write_text("{}")
    assert main(["rules", "schema", "--out", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
