"""`loyalty serve`: the HTTP service under gunicorn with the settings the package ships."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.settings import Settings

# By absolute path, so gunicorn finds it whatever the working directory.
PACKAGED_CONFIG = Path(__file__).resolve().parents[1] / "gunicorn_conf.py"


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run the HTTP service under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT (default 127.0.0.1:8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1 per CPU)")
    serve.add_argument(
        "--config",
        default=str(PACKAGED_CONFIG),
        help="gunicorn config file (default: the one inside the package)",
    )
    serve.set_defaults(handler=lambda args: serve_command(args.bind, args.workers, args.config))


def serve_command(bind: str | None, workers: int | None, config: str) -> int:
    settings = Settings.from_env()  # refuse bad settings before starting anything
    if not Path(config).is_file():
        # gunicorn without its config would listen on its own default address instead
        print(f"loyalty serve: no gunicorn config at {config}", file=sys.stderr)
        return 2
    if bind:
        os.environ["LOYALTY_BIND"] = bind
    if workers:
        os.environ["LOYALTY_WORKERS"] = str(workers)
    argv = ["gunicorn", "--config", str(Path(config).resolve()), "service.wsgi:create_app()"]
    sqlite = settings.sqlite_path()
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    os.execv(str(gunicorn), argv)  # noqa: S606 - replaces this process with gunicorn, by design
