"""`loyalty serve`: the HTTP service under gunicorn with the deploy/ config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.settings import Settings

DEPLOY_CONFIG = Path("deploy/gunicorn.conf.py")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run the HTTP service under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT (default 127.0.0.1:8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 2 per CPU)")
    serve.add_argument("--config", default=str(DEPLOY_CONFIG), help="gunicorn config file")
    serve.set_defaults(handler=lambda args: serve_command(args.bind, args.workers, args.config))


def serve_command(bind: str | None, workers: int | None, config: str) -> int:
    settings = Settings.from_env()  # refuse bad settings before starting anything
    if bind:
        os.environ["LOYALTY_BIND"] = bind
    if workers:
        os.environ["LOYALTY_WORKERS"] = str(workers)
    argv = ["gunicorn", "service.wsgi:create_app()"]
    if Path(config).is_file():
        argv[1:1] = ["--config", config]
    sqlite = settings.sqlite_path()
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    os.execv(str(gunicorn), argv)  # noqa: S606 - replaces this process with gunicorn, by design
