"""Hot reload: `POST /v1/rules/reload` validates first and swaps the version atomically; a
version that fails is refused with its file:line problems and the service keeps serving
the one it has; other workers follow the active version from the database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.answers import ReloadAnswer
from service.api.context import RULES_SYNC
from service.bootstrap import Services, build_services
from service.settings import Settings, parse_api_keys
from tests.conftest import AUTH, RULES_DIR, FixedClock
from tests.durable_support import needs_durable
from tests.service.helpers import app_for, assert_problem, points_of, post, purchase, services_for

BASE_EARN = "campaigns/base-earn.yaml"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory)
    return directory


@pytest.fixture
def worker(database_url: str, rules_dir: Path, clock: FixedClock) -> Iterator[Services]:
    settings = Settings(database_url=database_url, rules_dir=str(rules_dir), engine="reference")
    with services_for(settings, clock) as services:
        yield services


def client_of(services: Services, sync_every: float = 5.0) -> FlaskClient:
    app: Flask = app_for(services)
    app.extensions[RULES_SYNC].every = sync_every
    return app.test_client()


def edit(rules_dir: Path, path: str, old: str, new: str) -> None:
    file = rules_dir / path
    text = file.read_text(encoding="utf-8")
    assert old in text
    file.write_text(text.replace(old, new), encoding="utf-8")


def version_served(client: FlaskClient) -> str:
    response = client.get("/v1/rules", headers=AUTH)
    assert response.status_code == 200
    return response.get_json()["version"]  # type: ignore[no-any-return]


def reload(client: FlaskClient) -> tuple[int, dict[str, object]]:
    response = client.post("/v1/rules/reload", headers=AUTH)
    return response.status_code, response.get_json(force=True)


def double_base_earn(rules_dir: Path) -> None:
    """base-earn gives two points per CNY (and its cases say so)."""
    edit(rules_dir, BASE_EARN, "round: floor\n", "round: floor\n          multiplier: 2\n")
    for points in (120, 300, 80):
        edit(
            rules_dir,
            BASE_EARN,
            f"expect: {{points: {points}}}",
            f"expect: {{points: {2 * points}}}",
        )


def test_a_valid_version_is_swapped_in(
    worker: Services, rules_dir: Path, clock: FixedClock
) -> None:
    client = client_of(worker)
    before = version_served(client)
    assert points_of(post(client, purchase("ann", "100")).get_json()) == 100
    double_base_earn(rules_dir)
    clock.now += timedelta(minutes=5)

    status, answer = reload(client)

    assert status == 200, answer
    assert ReloadAnswer().validate(answer) == {}
    assert answer["previous"] == before
    assert answer["changed"] is True
    assert answer["version"] != before
    assert version_served(client) == answer["version"]
    assert points_of(post(client, purchase("bob", "100")).get_json()) == 200
    versions = client.get("/v1/rules/versions", headers=AUTH).get_json()
    assert versions["active"] == answer["version"]
    newest, older = versions["activations"][:2]
    assert (newest["version"], newest["source"], newest["until"]) == (
        answer["version"],
        "reload",
        None,
    )
    assert (older["version"], older["until"]) == (before, newest["from"])
    status, again = reload(client)
    assert (status, again["changed"]) == (200, False)


@pytest.mark.parametrize(
    ("path", "old", "new", "says"),
    [
        (BASE_EARN, "amount: {gt: 0}", "amount: {greater: 0}", "unknown operator 'greater'"),
        (BASE_EARN, "expect: {points: 120}", "expect: {points: 121}", "expected points 121"),
        (BASE_EARN, "amount: {gt: 0}", "amount: {gt: 10, lt: 5}", "error [never-holds]"),
        ("program.yaml", "timezone: Asia/Shanghai", "timezone: Mars/Olympus", "time zone"),
    ],
    ids=["invalid-file", "failing-case", "lint-error", "bad-programme"],
)
def test_a_broken_version_is_refused_and_the_old_one_served(
    worker: Services, rules_dir: Path, path: str, old: str, new: str, says: str
) -> None:
    client = client_of(worker)
    before = version_served(client)
    edit(rules_dir, path, old, new)

    problem = assert_problem(client.post("/v1/rules/reload", headers=AUTH), 422)

    assert problem["type"].endswith("/invalid-rules")
    assert any(says in p["message"] for p in problem["problems"]), problem["problems"]
    assert all(p["file"] for p in problem["problems"])
    if path == BASE_EARN:
        assert any(p["file"] == BASE_EARN and p["line"] for p in problem["problems"])
    assert version_served(client) == before
    assert points_of(post(client, purchase("ann", "100")).get_json()) == 100
    versions = client.get("/v1/rules/versions", headers=AUTH).get_json()
    assert [a["version"] for a in versions["activations"]] == [before]


@needs_durable
def test_the_durable_engine_loads_the_version_before_it_is_swapped_in(
    sqlite_url: str, rules_dir: Path, clock: FixedClock
) -> None:
    """The engine is loaded in a child process first (some rulesets hang it)."""
    settings = Settings(database_url=sqlite_url, rules_dir=str(rules_dir), engine="durable")
    with services_for(settings, clock) as services:
        client = client_of(services)
        edit(rules_dir, BASE_EARN, "description: One point", "description: Still one point")
        status, answer = reload(client)
        assert status == 200, answer
        assert answer["changed"] is True
        assert services.rules.active.matcher.name == "durable"


def test_reloading_needs_the_admin_scope(worker: Services) -> None:
    keys = parse_api_keys("writer:events:write,customers:read")
    client = client_of(replace(worker, settings=replace(worker.settings, api_keys=keys)))
    response = client.post("/v1/rules/reload", headers={"Authorization": "Bearer writer"})
    assert_problem(response, 403)


def test_other_workers_follow_the_active_version(
    database_url: str, rules_dir: Path, tmp_path: Path, clock: FixedClock
) -> None:
    """Workers on one database; the second and third still have the old files on disk."""
    old_files = tmp_path / "old-rules"
    shutil.copytree(rules_dir, old_files)
    on_old_files = Settings(database_url=database_url, rules_dir=str(old_files), engine="reference")
    settings = replace(on_old_files, rules_dir=str(rules_dir))
    with services_for(settings, clock) as first:
        second = build_services(on_old_files, clock=clock)
        a, b = client_of(first, sync_every=0), client_of(second, sync_every=0)
        old = version_served(b)
        double_base_earn(rules_dir)
        clock.now += timedelta(minutes=1)

        status, answer = reload(a)

        assert status == 200, answer
        assert version_served(b) == answer["version"] != old  # from the database, not its disk
        assert points_of(post(b, purchase("cy", "100")).get_json()) == 200
        # A worker that starts later (a HUP, a deploy, a recycled worker) publishes what its
        # disk holds, and the others follow it.
        clock.now += timedelta(minutes=1)
        third = build_services(on_old_files, clock=clock)
        try:
            client_of(third)
            assert version_served(b) == old
            assert version_served(a) == old
        finally:
            third.db.dispose()
            second.db.dispose()


def test_a_reload_warns_about_rules_sending_by_an_unconfigured_channel(
    worker: Services, rules_dir: Path, clock: FixedClock
) -> None:
    client = client_of(worker)
    edit(
        rules_dir,
        "campaigns/birthday-treat.yaml",
        "template: birthday-greeting, channel: log",
        "template: birthday-greeting, channel: email",
    )
    clock.now += timedelta(minutes=5)

    status, answer = reload(client)

    assert status == 200, answer
    assert ReloadAnswer().validate(answer) == {}
    warned = [w for w in answer["warnings"] if w["lint"] == "channel-not-configured"]  # type: ignore[attr-defined]
    assert warned == [
        {
            "lint": "channel-not-configured",
            "severity": "warning",
            "file": "campaigns/birthday-treat.yaml",
            "line": 6,
            "message": "birthday-treat/birthday-offer sends messages by email, which is not "
            "configured here (set LOYALTY_SMTP_HOST); they would go straight to dead",
        }
    ]
