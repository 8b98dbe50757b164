"""Real `loyalty serve` processes: one shared per database for the tests that only talk
HTTP (tests/e2e/conftest.py), and servers of their own for the tests that send signals,
kill workers or run two side by side.

Everything here waits by bounded polling, never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from service.settings import DEV_API_KEY

ROOT = Path(__file__).resolve().parents[2]
LOYALTY = Path(sys.executable).with_name("loyalty")
READY_WITHIN_S = 90.0  # generous: a loaded CI machine starts workers slowly
STOP_WITHIN_S = 40.0
POLL_S = 0.05
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


@dataclass
class LiveServer:
    url: str
    port: int
    database_url: str
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def auth(self) -> dict[str, str]:
        return AUTH

    @property
    def pid(self) -> int:
        """The gunicorn master: `loyalty serve` execs gunicorn in its own process."""
        return self.process.pid

    def workers(self) -> list[int]:
        return children_of(self.pid)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def wait_for(condition: Callable[[], object], what: str, within: float = READY_WITHIN_S) -> object:
    """Poll until `condition()` is truthy; fail naming `what` if it never is."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    pytest.fail(f"gave up after {within:.0f}s waiting for {what}")


def server_env(
    database_url: str, metrics_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
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
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    env.update(extra or {})
    return env


@contextmanager
def live_server(
    database_url: str,
    directory: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    name: str = "server",
    config: Path | None = None,
) -> Iterator[LiveServer]:
    """`loyalty serve` on a free port; yielded once /readyz answers 200 and every worker
    is up; stopped (quick shutdown, bounded wait) after."""
    port = free_port()
    log = directory / f"{name}.log"
    argv = [str(LOYALTY), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    if config is not None:
        argv += ["--config", str(config)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=server_env(database_url, directory / f"{name}-metrics", env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = LiveServer(f"http://127.0.0.1:{port}", port, database_url, log, process)
        try:
            wait_until_ready(server)
            wait_for(lambda: len(server.workers()) == workers, f"{workers} workers")
            yield server
        finally:
            stop(process)


def wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"the server exited with {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        try:
            response = requests.get(f"{server.url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as error:
            last = type(error).__name__
        time.sleep(POLL_S)
    pytest.fail(f"not ready within {READY_WITHIN_S:.0f}s ({last}):\n" + server.log_tail())


def stop(process: subprocess.Popen[bytes]) -> None:
    """gunicorn's quick shutdown (SIGQUIT): a second where SIGTERM's graceful one takes
    nearly three. Nothing a test checks is left in flight by then; the graceful stop is
    test_crash_safety's subject, which sends SIGTERM itself."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGQUIT)
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_WITHIN_S)


def refuses_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0
