"""Oversized request lines and headers against the real gunicorn, on SQLite and
PostgreSQL: what gunicorn's default limits answered as text/html now reaches the app
(deploy/gunicorn.conf.py sets gunicorn's own limits higher) and is refused as
problem+json. Beyond gunicorn's limits, and for bytes that are not HTTP, gunicorn still
answers itself (its own text/html page): those only show that the server stays up."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.e2e.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

TIMEOUT_S = 30
PROBLEM_JSON = "application/problem+json"


def assert_problem(response: requests.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def test_a_long_request_line_is_a_414_problem(server: LiveServer) -> None:
    url = f"{server.url}/v1/customers/someone?pad={'a' * 5000}"

    response = requests.get(url, headers=server.auth, timeout=TIMEOUT_S)

    assert "at most 4094" in str(assert_problem(response, 414)["detail"])


def test_a_large_header_is_a_431_problem(server: LiveServer) -> None:
    response = requests.get(f"{server.url}/healthz", headers={"X-Pad": "a" * 9000}, timeout=30)

    assert "X-Pad" in str(assert_problem(response, 431)["detail"])


def test_many_headers_are_a_431_problem(server: LiveServer) -> None:
    headers = {f"X-Pad-{i}": "a" for i in range(150)}

    response = requests.get(f"{server.url}/healthz", headers=headers, timeout=TIMEOUT_S)

    assert "at most 100" in str(assert_problem(response, 431)["detail"])


def test_past_gunicorns_own_limits_it_answers_and_the_server_stays_up(
    server: LiveServer,
) -> None:
    too_long = requests.get(f"{server.url}/healthz?pad={'a' * 9000}", timeout=TIMEOUT_S)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        garbage = raw.recv(200)

    assert too_long.status_code == 414
    assert garbage.startswith(b"HTTP/1.1 400")
    assert requests.get(f"{server.url}/healthz", timeout=TIMEOUT_S).status_code == 200
