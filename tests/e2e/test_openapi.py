"""schemathesis against the live server (real gunicorn, real HTTP), on SQLite and on
PostgreSQL: for every operation in /openapi.json it sends generated requests, valid and
invalid, and checks that no answer is a 5xx and every answer fits the document (status,
content type, headers, body schema) and that a request without a key is refused.

Bounded: a fixed number of examples per operation, derandomised, so the run is quick and
the same every time; `make fuzz` runs many more, at random. Inputs that hit known bugs in
code other people own are left out, each pinned by a strict xfail test that names the fix
(see KNOWN BUGS below).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.openapi import OPERATIONS, openapi_path
from tests.databases import postgres_database, sqlite_database
from tests.e2e.live import AUTH, LiveServer, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("openapi")]

# `make fuzz` raises this for a longer, randomised hunt; `make test` keeps it small and
# derandomised, so a run is quick and repeatable.
MAX_EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "20"))
DERANDOMIZE = "LOYALTY_FUZZ_EXAMPLES" not in os.environ
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def openapi_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("openapi-sqlite")
    with sqlite_database(str(directory)) as url, live_server(url, directory) as server:
        yield server


@pytest.fixture(scope="module")
def openapi_postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("openapi-postgres")
    with postgres_database() as url, live_server(url, directory) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest) -> LiveServer:
    return request.getfixturevalue(f"openapi_{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture
def api_schema(live: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=10)


# KNOWN BUGS. Inputs that make code other people own fail with a 500. Each is pinned by a strict xfail
# test in tests/service/test_hardening.py (which names the fix); when that test starts to
# pass, delete its marker there and its entry here.
def _far_from_now(value: Any) -> bool:
    """An occurred_at before 1970 or after 9000 (test_an_event_time_out_of_any_range)."""
    if isinstance(value, dict):
        moment = value.get("occurred_at")
        if isinstance(moment, str) and moment[:4].isdigit() and not 1970 <= int(moment[:4]) < 9000:
            return True
        return any(_far_from_now(inner) for inner in value.values())
    if isinstance(value, list):
        return any(_far_from_now(inner) for inner in value)
    return False


def _away_for_ever(body: Any) -> bool:
    """A dry-run member away over 100 years (test_a_dry_run_member_away_for_ever)."""
    customer = body.get("customer") if isinstance(body, dict) else None
    return isinstance(customer, dict) and any(
        isinstance(customer.get(name), int) and customer[name] > 36500
        for name in ("days_since_last_purchase", "days_since_enrolment")
    )


def _cursor_beyond_bigint(case: schemathesis.Case) -> bool:
    """A messages cursor past BIGINT (test_a_messages_cursor_beyond_any_id)."""
    cursor = (case.query or {}).get("cursor")
    return case.path.endswith("/messages") and isinstance(cursor, int) and cursor >= 2**63


def known_bug(case: schemathesis.Case) -> bool:
    body = case.body if isinstance(case.body, (dict, list)) else None
    return _far_from_now(body) or _away_for_ever(body) or _cursor_beyond_bigint(case)


def cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input; and with invalid input where it takes any (a
    path id, a query or a body): there is nothing to get wrong in GET /healthz."""
    found = []
    for operation in OPERATIONS:
        method, path = operation.method.upper(), openapi_path(operation.path)
        found.append((method, path, GenerationMode.POSITIVE))
        if operation.body is not None or operation.query is not None or "{" in path:
            found.append((method, path, GenerationMode.NEGATIVE))
    return found


@pytest.mark.parametrize(("method", "path", "mode"), cases(), ids=lambda value: str(value))
def test_the_live_api_keeps_its_document(
    live: LiveServer,
    api_schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    generated = operation.as_strategy(generation_mode=mode).filter(lambda c: not known_bug(c))

    @given(case=generated)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=DERANDOMIZE,
        database=None,
    )
    def answers_fit_the_document(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=live.url, headers=AUTH, checks=CHECKS, timeout=30)

    answers_fit_the_document()


def test_the_document_is_served_and_describes_every_answer(live: LiveServer) -> None:
    document = requests.get(f"{live.url}/openapi.json", timeout=10).json()

    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"bearerAuth": ["events:write"]}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_the_log_of_the_run_is_json(live: LiveServer) -> None:
    """The server logs at warning here: whatever it wrote is JSON, one object a line."""
    for line in Path(live.log).read_text(encoding="utf-8").splitlines():
        json.loads(line)
