"""`loyalty db upgrade|current`: schema migrations (Alembic) behind the app's own CLI."""

from __future__ import annotations

import argparse

from service.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply every pending migration").set_defaults(
        handler=lambda _: db_command("upgrade")
    )
    db_commands.add_parser("current", help="print the schema revision").set_defaults(
        handler=lambda _: db_command("current")
    )


def db_command(command: str) -> int:
    from service.storage.database import make_engine
    from service.storage.migrate import current_revision, head_revision, upgrade

    engine = make_engine(Settings.from_env().database_url)
    if command == "upgrade":
        upgrade(engine)
        print(f"database at revision {current_revision(engine)} (head {head_revision(engine)})")
    else:
        print(current_revision(engine) or "empty")
    return 0
