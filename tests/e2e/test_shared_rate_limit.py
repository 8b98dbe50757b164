"""One rate limit for the whole service: with LOYALTY_RATE_LIMIT_STORAGE naming a Redis,
the workers of one `loyalty serve` and a second instance beside it count a key's requests
together, so N per period pass in all, not N per worker.

Redis runs on 127.0.0.1:6379 (LOYALTY_TEST_REDIS names another). Where it is not
reachable the test skips with the reason, except under CI=true, where it fails instead,
as the PostgreSQL tests do (tests/databases.py). Each run uses an API key of its own, so
its counts live under keys of their own in Redis, deleted afterwards.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests

from tests.databases import sqlite_database
from tests.e2e.live import LiveServer, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("shared-rate-limit")]

REDIS_URL = os.environ.get("LOYALTY_TEST_REDIS", "redis://127.0.0.1:6379/0")
LIMIT = 6  # requests per minute for the key, across every worker and instance
TIMEOUT_S = 30


def require_redis() -> None:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as error:
        reason = f"Redis at {REDIS_URL} is not reachable: {type(error).__name__}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the shared rate limit test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def secret() -> Iterator[str]:
    """This run's API key; its counts are deleted from Redis afterwards."""
    require_redis()
    key = f"limit-{uuid.uuid4().hex}"
    yield key
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
        for name in client.scan_iter(match=f"*{fingerprint}*"):
            client.delete(name)


@pytest.fixture(scope="module")
def instances(
    secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two instances on one database and one Redis: two workers, and one."""
    directory = tmp_path_factory.mktemp("shared-rate-limit")
    env = {
        "LOYALTY_API_KEYS": f"{secret}:*",
        "LOYALTY_RATE_LIMIT": f"{LIMIT}/m",
        "LOYALTY_RATE_LIMIT_STORAGE": REDIS_URL,
    }
    with (
        sqlite_database(str(directory)) as url,
        live_server(url, directory, workers=2, env=env, name="a") as a,
        live_server(url, directory, workers=1, env=env, name="b") as b,
    ):
        yield a, b


def test_workers_and_instances_share_one_limit_through_redis(
    instances: tuple[LiveServer, LiveServer], secret: str
) -> None:
    a, b = instances
    headers = {"Authorization": f"Bearer {secret}", "Connection": "close"}
    answers = []
    # Each request on a connection of its own, so that any worker may take it, and every
    # other one to the second instance: counted apart, twice LIMIT would pass.
    for number in range(2 * LIMIT):
        server = a if number % 2 == 0 else b
        answers.append(requests.get(f"{server.url}/v1/rules", headers=headers, timeout=TIMEOUT_S))

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == LIMIT, statuses
    for refused in (answer for answer in answers if answer.status_code == 429):
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/rate-limited")
        assert "to each worker" not in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
