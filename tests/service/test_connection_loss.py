"""A database connection that dies under a request is replaced and the request tried
once more; a database that cannot be reached answers 503 with Retry-After, never 500."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from service.bootstrap import Services, build_services
from service.rules.loader import read_rules_dir
from service.settings import Settings
from service.storage.tables import events
from tests.conftest import AUTH, RULES_DIR, FixedClock
from tests.service.helpers import app_for, post, purchase, terminate_connections


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # a server to drop them
def test_a_connection_dropped_under_a_request_is_replaced_and_the_event_applied(
    client: FlaskClient, services: Services
) -> None:
    assert post(client, purchase("ann", "10")).status_code == 201
    terminate_connections(services.db)

    bodies = [purchase("ann", str(20 + n)) for n in range(3)]
    assert [post(client, body).status_code for body in bodies] == [201, 201, 201]
    with services.db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(events)).scalar_one() == 4


def test_a_database_that_cannot_be_reached_answers_503_with_retry_after() -> None:
    # Nothing listens on port 9 of this machine (discard, not run here).
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:9/nothing",
        rules_dir=str(RULES_DIR),
        engine="reference",
    )
    services = build_services(settings, clock=FixedClock(), load_rules=False)
    services.rules.load(read_rules_dir(str(RULES_DIR)))
    try:
        answer = (
            app_for(services)
            .test_client()
            .post("/v1/events", json=purchase("ann", "10"), headers=AUTH)
        )
        assert answer.status_code == 503, answer.get_data(as_text=True)
        assert answer.headers["Retry-After"] == "1"
        assert answer.mimetype == "application/problem+json"
        assert "send the same request again" in answer.get_json()["detail"]
    finally:
        services.db.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_read_on_a_dropped_connection_answers_503_not_500(
    client: FlaskClient, services: Services
) -> None:
    assert post(client, purchase("bea", "10")).status_code == 201
    terminate_connections(services.db)
    statuses = [client.get("/v1/customers/bea", headers=AUTH).status_code for _ in range(3)]
    assert 500 not in statuses
    assert statuses[-1] == 200
