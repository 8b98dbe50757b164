"""`loyalty serve` started outside the repository behaves as inside it: gunicorn's
settings come with the package, so `--bind` is the address it listens on, its metrics
directory is its own, and nothing lands in the working directory or in $HOME."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.databases import sqlite_database
from tests.e2e.live import LOYALTY, ROOT, LiveServer, free_port, stop, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("serve-anywhere")]


def test_serve_listens_on_bind_from_a_directory_outside_the_repository(tmp_path: Path) -> None:
    elsewhere, home = tmp_path / "deployment", tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    assert not elsewhere.resolve().is_relative_to(ROOT)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LOYALTY_")
        and key not in ("PYTEST_XDIST_WORKER", "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH")
    }
    log = tmp_path / "serve.log"
    with sqlite_database(str(tmp_path)) as database_url, log.open("wb") as output:
        env.update(
            HOME=str(home),
            LOYALTY_DATABASE_URL=database_url,
            LOYALTY_RULES_DIR=str(ROOT / "rules"),
            LOYALTY_LOG_LEVEL="warning",
        )
        process = subprocess.Popen(
            [str(LOYALTY), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=elsewhere,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = LiveServer(f"http://127.0.0.1:{port}", port, database_url, log, process)
        try:
            wait_until_ready(server)  # /readyz answers 200 on the address given
            scraped = requests.get(f"{server.url}/metrics", timeout=10)
        finally:
            stop(process)

    assert scraped.status_code == 200
    assert 'route="/readyz"' in scraped.text  # the worker's samples reach the scrape
    assert list(elsewhere.iterdir()) == []  # no var/metrics/ where it was started
    assert not (home / ".gunicorn").exists()  # no control socket in $HOME
