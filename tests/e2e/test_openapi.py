"""schemathesis against the live server (real gunicorn, real HTTP), on SQLite and on
PostgreSQL: for every operation in /openapi.json it sends generated requests, valid and
invalid, and checks that no answer is a 5xx and every answer fits the document (status,
content type, headers, body schema) and that a request without a key is refused.

Bounded: a fixed number of examples per operation, derandomised, so the run is quick and
the same every time; `make fuzz` runs many more, at random.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

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

from service.api.document import api_document
from tests.databases import postgres_database, sqlite_database
from tests.e2e.live import AUTH, LiveServer, live_server, wait_for

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


# schemathesis probes every operation without a key after each success it sees: far more
# failed authentications than LOYALTY_AUTH_FAILURE_LIMIT lets one address send. At info,
# the server logs every request it answers: the log is never empty, so its lines are tested.
SERVER_ENV = {"LOYALTY_AUTH_FAILURE_LIMIT": "off", "LOYALTY_LOG_LEVEL": "info"}


@pytest.fixture(scope="module")
def openapi_sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("openapi-sqlite")
    with (
        sqlite_database(str(directory)) as url,
        live_server(url, directory, env=SERVER_ENV) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def openapi_postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("openapi-postgres")
    with postgres_database() as url, live_server(url, directory, env=SERVER_ENV) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest) -> LiveServer:
    return request.getfixturevalue(f"openapi_{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture
def api_schema(live: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=10)


def cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input; and with invalid input where it takes any (a
    path id, a query or a body): there is nothing to get wrong in GET /healthz."""
    found = []
    for path, operations in api_document()["paths"].items():
        for method, operation in operations.items():
            found.append((method.upper(), path, GenerationMode.POSITIVE))
            query = any(p.get("in") == "query" for p in operation["parameters"])
            if "requestBody" in operation or query or "{" in path:
                found.append((method.upper(), path, GenerationMode.NEGATIVE))
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
    generated = operation.as_strategy(generation_mode=mode)

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
    """The server logs at info here: gunicorn's lines and one line per request, each a
    JSON object on a line of its own, the request's line carrying its id."""
    marker = f"log-{uuid.uuid4().hex}"
    answer = requests.get(f"{live.url}/healthz", headers={"X-Request-ID": marker}, timeout=10)
    assert answer.status_code == 200
    wait_for(lambda: marker in live.log.read_text(encoding="utf-8"), "the request's log line", 30)

    lines = live.log.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]

    assert all(isinstance(record, dict) for record in records)
    assert any(record["logger"].startswith("gunicorn") for record in records), lines[:5]
    (access,) = [record for record in records if record.get("request_id") == marker]
    assert (access["logger"], access["route"], access["status"]) == (
        "loyalty.access",
        "/healthz",
        200,
    )
