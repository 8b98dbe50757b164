"""The real server: `loyalty serve` (gunicorn, several workers) on a fresh database.

One server per database for the whole session, shared by every e2e test; the tests carry
`xdist_group("e2e")` so that under `pytest -n N --dist loadgroup` they all run in the
worker that owns the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from service.settings import DEV_API_KEY
from tests.databases import postgres_database, sqlite_database

ROOT = Path(__file__).resolve().parents[2]
LOYALTY = Path(sys.executable).with_name("loyalty")
READY_WITHIN_S = 30.0
STOP_WITHIN_S = 30.0
WORKERS = 2


@dataclass(frozen=True)
class Server:
    url: str
    database_url: str
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {DEV_API_KEY}"}

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll /readyz, bounded; fail with the server's log if it dies or never gets ready."""
    deadline = time.monotonic() + READY_WITHIN_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the server exited with {process.returncode} before it was ready:\n"
                + log.read_text(encoding="utf-8", errors="replace")[-4000:]
            )
        try:
            response = requests.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as error:
            last = f"{type(error).__name__}"
        time.sleep(0.1)
    pytest.fail(
        f"the server was not ready within {READY_WITHIN_S:.0f}s ({last}):\n"
        + log.read_text(encoding="utf-8", errors="replace")[-4000:]
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_WITHIN_S)


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("e2e-sqlite")
    with sqlite_database(str(directory)) as database_url:
        yield from serve(database_url, directory)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("e2e-postgres")
    with postgres_database() as database_url:
        yield from serve(database_url, directory)


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each e2e test runs against both servers; each server starts once a session."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


def serve(database_url: str, directory: Path) -> Iterator[Server]:
    """Start `loyalty serve` on the database, yield it once ready, stop it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LOYALTY_")
        and key not in ("PYTEST_XDIST_WORKER", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        LOYALTY_DATABASE_URL=database_url,
        LOYALTY_RULES_DIR="rules",
        LOYALTY_ENV="development",
        LOYALTY_LOG_LEVEL="warning",
        # The workers' metric samples go under this test run's directory, not var/.
        PROMETHEUS_MULTIPROC_DIR=str(directory / "metrics"),
    )
    log = directory / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(LOYALTY), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, url, log)
            yield Server(url, database_url, log)
        finally:
            stop(process)
