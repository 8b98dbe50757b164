"""Hostile rule files against a real gunicorn (two workers, SQLite and PostgreSQL): dry
runs and reloads with catastrophic patterns, alias bombs and files too slow to compile are
answered, refused or cut off, while `/healthz` keeps answering within a second."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from service.settings import DEV_API_KEY
from tests.conftest import RULES_DIR
from tests.databases import postgres_database, sqlite_database
from tests.e2e.live import POLL_S, LiveServer, live_server
from tests.hostile_rules import (
    ALIAS_BOMB_ANCHOR_LINE,
    CATASTROPHIC_PATTERNS,
    alias_bomb_campaign,
    crowded_campaign,
    pattern_campaign,
    program_yaml,
    purchase_on_long_channel,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("hostile-rules")]

HEALTHZ_WITHIN_S = 1.0  # the bound
HOSTILE_TIMEOUT_S = 120.0  # a request gunicorn kills after 30 s fails long before this
COMPILE_TIMEOUT_S = 3
CROWDED_FILES = 4  # 40,000 rules: many times the compile limit even on a fast machine
WRITER = {"Authorization": "Bearer writer"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hostile_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """A server of its own, on its own copy of the rules (the tests reload them)."""
    directory = tmp_path_factory.mktemp(f"hostile-{request.param}")
    rules_dir = directory / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    env = {
        "LOYALTY_RULES_DIR": str(rules_dir),
        "LOYALTY_API_KEYS": f"{DEV_API_KEY}:* writer:events:write",
        "LOYALTY_RULES_COMPILE_TIMEOUT": str(COMPILE_TIMEOUT_S),
        "LOYALTY_MAX_BODY_BYTES": str(8 * 2**20),
    }
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = stack.enter_context(sqlite_database(str(directory)))
        else:
            url = stack.enter_context(postgres_database())
        server = stack.enter_context(live_server(url, directory, env=env))
        # Each worker starts its checking process's fork server on first use (about half a
        # second); a few checks at once, untimed, reach every worker.
        warm_up = dry_run(server, with_program(p=pattern_campaign("p", "[a-z]+!")))
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert all(r.status_code == 200 for r in pool.map(lambda _: warm_up(), range(4)))
        yield server, rules_dir


@pytest.fixture
def server(hostile_server: tuple[LiveServer, Path]) -> Iterator[LiveServer]:
    """The server; campaign files a test adds are removed and the rules reloaded after."""
    live, rules_dir = hostile_server
    before = set((rules_dir / "campaigns").iterdir())
    yield live
    added = set((rules_dir / "campaigns").iterdir()) - before
    for path in added:
        path.unlink()
    if added:
        answer = requests.post(f"{live.url}/v1/rules/reload", headers=live.auth, timeout=60)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def rules_dir(hostile_server: tuple[LiveServer, Path]) -> Path:
    return hostile_server[1]


def while_healthz_answers(server: LiveServer, sends: list[Callable[[], Any]]) -> list[Any]:
    """Run the sends at once; meanwhile /healthz is asked again and again (at least three
    times) and must answer 200 within HEALTHZ_WITHIN_S every time. The sends' results."""
    with ThreadPoolExecutor(max_workers=len(sends)) as pool:
        futures: list[Future[Any]] = [pool.submit(send) for send in sends]
        asked = 0
        while asked < 3 or not all(f.done() for f in futures):
            try:
                health = requests.get(f"{server.url}/healthz", timeout=HEALTHZ_WITHIN_S)
            except requests.Timeout:
                pytest.fail(f"/healthz did not answer within {HEALTHZ_WITHIN_S} s")
            assert health.status_code == 200
            asked += 1
            wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
        return [f.result() for f in futures]


def dry_run(server: LiveServer, files: dict[str, str], headers: Any = None) -> Callable[[], Any]:
    def send() -> requests.Response:
        body = {"event": purchase_on_long_channel(f"e-{uuid.uuid4().hex[:8]}"), "rules": files}
        return requests.post(
            f"{server.url}/v1/dry-run",
            json=body,
            headers=headers or server.auth,
            timeout=HOSTILE_TIMEOUT_S,
        )

    return send


def reload(server: LiveServer) -> Callable[[], Any]:
    def send() -> requests.Response:
        return requests.post(
            f"{server.url}/v1/rules/reload", headers=server.auth, timeout=HOSTILE_TIMEOUT_S
        )

    return send


def with_program(**campaigns: str) -> dict[str, str]:
    return {"program.yaml": program_yaml()} | {
        f"campaigns/{name}.yaml": text for name, text in campaigns.items()
    }


def crowded_files() -> dict[str, str]:
    return with_program(**{f"c{i}": crowded_campaign(f"c{i}") for i in range(CROWDED_FILES)})


def assert_refused_at_the_anchor(response: requests.Response, file: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert [(p["file"], p["line"]) for p in response.json()["problems"]] == [
        (file, ALIAS_BOMB_ANCHOR_LINE)
    ]


def test_hostile_dry_runs_are_answered_or_refused_while_healthz_answers(
    server: LiveServer,
) -> None:
    """The two catastrophic patterns at once, then two alias bombs: as many requests as
    the server has workers (two such requests made /healthz time out for 28 s)."""
    patterns = [
        dry_run(server, with_program(p=pattern_campaign("p", pattern)))
        for pattern in CATASTROPHIC_PATTERNS
    ]
    for response in while_healthz_answers(server, patterns):
        assert response.status_code == 200, response.text
        assert response.json()["points"] == 0

    bomb = dry_run(server, with_program(bomb=alias_bomb_campaign()))
    for response in while_healthz_answers(server, [bomb, bomb]):
        assert_refused_at_the_anchor(response, "campaigns/bomb.yaml")


def test_a_dry_run_too_slow_to_compile_is_cut_off_while_healthz_answers(
    server: LiveServer,
) -> None:
    (response,) = while_healthz_answers(server, [dry_run(server, crowded_files())])

    assert response.status_code == 422, response.text
    assert f"longer than {COMPILE_TIMEOUT_S} s" in response.json()["detail"]


def test_a_dry_run_with_rule_files_needs_the_admin_scope(server: LiveServer) -> None:
    files = with_program(p=pattern_campaign("p", "[a-z]+!"))
    response = dry_run(server, files, WRITER)()
    assert response.status_code == 403, response.text


def test_hostile_reloads_are_refused_while_healthz_answers(
    server: LiveServer, rules_dir: Path
) -> None:
    version = requests.get(f"{server.url}/v1/rules", headers=server.auth, timeout=10).json()
    (rules_dir / "campaigns" / "bomb.yaml").write_text(alias_bomb_campaign(), encoding="utf-8")

    results = while_healthz_answers(server, [reload(server)] * 2)

    for response in results:
        assert_refused_at_the_anchor(response, "campaigns/bomb.yaml")
    after = requests.get(f"{server.url}/v1/rules", headers=server.auth, timeout=10).json()
    assert after["version"] == version["version"]


def test_a_reload_too_slow_to_compile_is_cut_off_while_healthz_answers(
    server: LiveServer, rules_dir: Path
) -> None:
    for path, text in crowded_files().items():
        if path != "program.yaml":
            (rules_dir / path).write_text(text, encoding="utf-8")

    (response,) = while_healthz_answers(server, [reload(server)])

    assert response.status_code == 422, response.text
    assert f"longer than {COMPILE_TIMEOUT_S} s" in response.json()["detail"]


def test_live_catastrophic_patterns_answer_events_while_healthz_answers(
    server: LiveServer, rules_dir: Path
) -> None:
    for index, pattern in enumerate(CATASTROPHIC_PATTERNS):
        campaign = pattern_campaign(f"p{index}", pattern)
        (rules_dir / "campaigns" / f"p{index}.yaml").write_text(campaign, encoding="utf-8")
    (reloaded,) = while_healthz_answers(server, [reload(server)])
    assert reloaded.status_code == 200, reloaded.text

    def event() -> requests.Response:
        body = purchase_on_long_channel(f"e-{uuid.uuid4().hex[:8]}")
        return requests.post(
            f"{server.url}/v1/events", json=body, headers=server.auth, timeout=HOSTILE_TIMEOUT_S
        )

    for response in while_healthz_answers(server, [event] * 4):
        assert response.status_code == 201, response.text
        assert {e["campaign"] for e in response.json()["effects"]} == {"base-earn"}
