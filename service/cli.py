"""The `loyalty` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from service.settings import Settings

DEPLOY_CONFIG = Path("deploy/gunicorn.conf.py")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyalty", description="Loyalty-programme rule engine")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT (default 127.0.0.1:8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 2 per CPU)")
    serve.add_argument("--config", default=str(DEPLOY_CONFIG), help="gunicorn config file")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply every pending migration")
    db_commands.add_parser("current", help="print the schema revision")

    rules = commands.add_parser("rules", help="rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate, compile and run the embedded tests")
    check.add_argument("path", nargs="?", help="rules directory (default LOYALTY_RULES_DIR)")
    check.add_argument(
        "--engine-timeout",
        type=float,
        default=60.0,
        help="seconds the rule engine may take to load the rules",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_command(args.bind, args.workers, args.config)
    if args.command == "db":
        return db_command(args.db_command)
    if args.command == "rules" and args.rules_command == "check":
        from service.rules.check import check_rules

        path = args.path or Settings.from_env().rules_dir
        return check_rules(path, engine_timeout=args.engine_timeout)
    parser.error("unknown command")
    return 2


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


def db_command(command: str) -> int:
    from service.storage.database import make_engine
    from service.storage.migrate import current_revision, head_revision, upgrade

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    if command == "upgrade":
        upgrade(engine)
        print(f"database at revision {current_revision(engine)} (head {head_revision(engine)})")
    else:
        print(current_revision(engine) or "empty")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
