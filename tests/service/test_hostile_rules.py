"""Hostile rule files through the API, on SQLite and PostgreSQL: a dry run with files in
its body needs `admin` and checks them in a child process under limits; a reload checks
the files on disk the same way; patterns match in linear time."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.bootstrap import Services
from service.settings import Settings, parse_api_keys
from tests.conftest import RULES_DIR, FixedClock
from tests.hostile_rules import (
    ALIAS_BOMB_ANCHOR_LINE,
    CATASTROPHIC_PATTERNS,
    alias_bomb_campaign,
    crowded_campaign,
    files_with,
    pattern_campaign,
    purchase_on_long_channel,
)
from tests.service.helpers import app_for, assert_problem, new_id, services_for

ADMIN = {"Authorization": "Bearer dev"}
WRITER = {"Authorization": "Bearer writer"}


def dry_run(client: FlaskClient, files: dict[str, str], headers: dict[str, str] = ADMIN) -> Any:
    body = {"event": purchase_on_long_channel(new_id("evt")), "rules": files}
    return client.post("/v1/dry-run", json=body, headers=headers)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory)
    return directory


@pytest.fixture(params=[5.0], ids=["5s"])
def limited(
    request: pytest.FixtureRequest, database_url: str, rules_dir: Path, clock: FixedClock
) -> Iterator[Services]:
    """The durable engine, a compile time limit (5 s unless a test asks for less), an
    admin key and a writer's key."""
    settings = Settings(
        database_url=database_url,
        rules_dir=str(rules_dir),
        engine="durable",
        api_keys=parse_api_keys("dev:* writer:events:write"),
        rules_compile_timeout=request.param,
    )
    with services_for(settings, clock) as services:
        yield services


@pytest.fixture
def client(limited: Services) -> FlaskClient:
    return app_for(limited).test_client()


# 10,000 rules take seconds to load even alone; a one-second limit cuts them off.
one_second_limit = pytest.mark.parametrize("limited", [1.0], ids=["1s"], indirect=True)


def test_a_dry_run_with_rule_files_needs_the_admin_scope(client: FlaskClient) -> None:
    files = files_with("campaigns/p.yaml", pattern_campaign("p", "[a-z]+!"))

    problem = assert_problem(dry_run(client, files, WRITER), 403)

    assert "admin" in problem["detail"]
    assert dry_run(client, files, ADMIN).status_code == 200
    # Without files, a dry run stays the writer's.
    body = {"event": purchase_on_long_channel(new_id("evt"))}
    assert client.post("/v1/dry-run", json=body, headers=WRITER).status_code == 200


@pytest.mark.parametrize("pattern", CATASTROPHIC_PATTERNS, ids=["dots", "classes"])
def test_a_catastrophic_pattern_in_a_dry_run_finishes(client: FlaskClient, pattern: str) -> None:
    response = dry_run(client, files_with("campaigns/p.yaml", pattern_campaign("p", pattern)))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["points"] == 0


def test_an_alias_bomb_in_a_dry_run_is_refused_at_its_line(client: FlaskClient) -> None:
    response = dry_run(client, files_with("campaigns/bomb.yaml", alias_bomb_campaign()), ADMIN)

    problem = assert_problem(response, 422)
    (found,) = problem["problems"]
    assert (found["file"], found["line"]) == ("campaigns/bomb.yaml", ALIAS_BOMB_ANCHOR_LINE)
    assert "anchor" in found["message"]


@one_second_limit
def test_a_dry_run_over_the_time_limit_is_cut_off(client: FlaskClient) -> None:
    response = dry_run(client, files_with("campaigns/crowded.yaml", crowded_campaign()), ADMIN)

    problem = assert_problem(response, 422)
    assert "LOYALTY_RULES_COMPILE_TIMEOUT" in problem["detail"]
    assert client.get("/healthz").status_code == 200


def test_a_reload_of_an_alias_bomb_is_refused_and_the_old_version_served(
    client: FlaskClient, limited: Services, rules_dir: Path
) -> None:
    before = limited.rules.active.version
    (rules_dir / "campaigns" / "bomb.yaml").write_text(alias_bomb_campaign(), encoding="utf-8")

    problem = assert_problem(client.post("/v1/rules/reload", headers=ADMIN), 422)

    assert [(p["file"], p["line"]) for p in problem["problems"]] == [
        ("campaigns/bomb.yaml", ALIAS_BOMB_ANCHOR_LINE)
    ]
    assert limited.rules.active.version == before


@one_second_limit
def test_a_reload_over_the_time_limit_is_cut_off(
    client: FlaskClient, limited: Services, rules_dir: Path
) -> None:
    before = limited.rules.active.version
    (rules_dir / "campaigns" / "crowded.yaml").write_text(crowded_campaign(), encoding="utf-8")

    problem = assert_problem(client.post("/v1/rules/reload", headers=ADMIN), 422)

    assert "LOYALTY_RULES_COMPILE_TIMEOUT" in problem["detail"]
    assert problem["problems"][0]["file"] == str(rules_dir)
    assert limited.rules.active.version == before


def test_a_live_rule_with_a_catastrophic_pattern_answers_events(
    client: FlaskClient, limited: Services, rules_dir: Path
) -> None:
    """The pattern passes its case in the reload's child, goes live, and events on a
    64-character channel are applied, not stuck."""
    for index, pattern in enumerate(CATASTROPHIC_PATTERNS):
        campaign = pattern_campaign(f"p{index}", pattern)
        (rules_dir / "campaigns" / f"p{index}.yaml").write_text(campaign, encoding="utf-8")

    reloaded = client.post("/v1/rules/reload", headers=ADMIN)
    assert reloaded.status_code == 200, reloaded.get_data(as_text=True)
    assert limited.rules.active.ruleset.campaign("p1") is not None

    response = client.post("/v1/events", json=purchase_on_long_channel("e-1"), headers=ADMIN)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert {e["campaign"] for e in response.get_json()["effects"]} == {"base-earn"}


def test_settings_read_the_compile_limits_from_the_environment() -> None:
    env = {"LOYALTY_RULES_COMPILE_TIMEOUT": "2.5", "LOYALTY_RULES_COMPILE_MEMORY": "256"}
    settings = Settings.from_env(env)
    assert (settings.rules_compile_timeout, settings.rules_compile_memory_mib) == (2.5, 256)
    defaults = Settings.from_env({})
    assert (defaults.rules_compile_timeout, defaults.rules_compile_memory_mib) == (5.0, 512)
    with pytest.raises(ValueError, match="LOYALTY_RULES_COMPILE"):
        replace(defaults, rules_compile_memory_mib=8).check()
