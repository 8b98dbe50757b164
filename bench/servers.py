"""gunicorn servers for the benchmark: the service and the bare-Flask baseline.

Each runs in its own process group and is stopped (SIGTERM, then SIGKILL) in ``finally``,
whatever happens; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """A gunicorn master in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], port: int, log: Path):
        self.name, self.argv, self.env, self.port, self.log = name, argv, dict(env), port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The gunicorn master's process id (``loyalty serve`` execs gunicorn)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_timeout: float = 120.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if self._ready():
                return
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.name} was not ready within {ready_timeout:.0f} s; see {self.log}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Workers that outlived their master (they should not) go with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def server_env(
    database_url: str, api_key: str, port: int, workers: int | None, engine: str = "durable"
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LOYALTY_DATABASE_URL": database_url,
            "LOYALTY_RULES_DIR": str(ROOT / "rules"),
            "LOYALTY_ENGINE": engine,
            "LOYALTY_API_KEYS": f"{api_key}:*",
            "LOYALTY_ENV": "development",
            "LOYALTY_LOG_LEVEL": "warning",
            "LOYALTY_BIND": f"{HOST}:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if workers:
        env["LOYALTY_WORKERS"] = str(workers)
    return env


def service_server(env: dict[str, str], port: int, log: Path) -> Server:
    argv = [
        str(BIN / "loyalty"),
        "serve",
        "--bind",
        f"{HOST}:{port}",
        "--config",
        str(GUNICORN_CONFIG),
    ]
    if "LOYALTY_WORKERS" in env:
        argv += ["--workers", env["LOYALTY_WORKERS"]]
    return Server("loyalty serve", argv, env, port, log)


def baseline_server(env: dict[str, str], port: int, log: Path) -> Server:
    argv = [
        str(BIN / "gunicorn"),
        "--config",
        str(GUNICORN_CONFIG),
        "bench.baseline_app:create_app()",
    ]
    return Server("baseline gunicorn", argv, env, port, log)


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run(
        [str(BIN / "loyalty"), "db", "upgrade"],
        cwd=ROOT,
        env=dict(env),
        check=True,
        stdout=subprocess.DEVNULL,
    )
