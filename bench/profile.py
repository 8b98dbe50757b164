"""`python -m bench.profile`: where one event's time goes, in one process.

Posts distinct purchases (the baskets of ``bench.rules_diff``) through the Flask test
client into `create_app` on a fresh SQLite or PostgreSQL database, with the default
settings (durable-rules, rate limit, metrics; the access log off, which would print a
line per event: about 0.1 ms), and prints wall and CPU time per event and pyinstrument's
call tree. No HTTP server or load generator: it shows the application's own cost. For
a live gunicorn worker under wrk use py-spy instead, e.g.
``py-spy record --pid WORKER --duration 8 --format raw -o profile.txt``.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.databases import postgres_database, sqlite_database
from bench.report import OUT
from bench.rules_diff import purchase_event
from service.api.app import create_app
from service.settings import DEV_API_KEY, Settings
from service.storage.database import make_engine
from service.storage.migrate import upgrade


def purchase(run: str, number: int, members: int, rng: random.Random) -> dict[str, Any]:
    base = {
        "event_id": f"{run}-{number}",
        "customer_id": f"m{rng.randint(1, members):05d}",
        "occurred_at": "2026-12-05T10:31:07+08:00",
    }
    return purchase_event(rng, base, number, [])


def profile(database_url: str, events: int, members: int, tree: bool) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    root = Path(__file__).resolve().parent.parent
    settings = replace(
        Settings(), database_url=database_url, rules_dir=str(root / "rules"), access_log=False
    )
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
    rng, run = random.Random(7), uuid.uuid4().hex[:8]
    # Warm caches, compiled statements and the engine's ruleset first, with order numbers
    # of their own (the same order id for a member would be a second part of one order).
    for number in range(events, events + 100):
        client.post("/v1/events", json=purchase(f"w{run}", number, members, rng), headers=headers)
    bodies = [purchase(run, number, members, rng) for number in range(events)]
    profiler = None
    if tree:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        answer = client.post("/v1/events", json=body, headers=headers)
        assert answer.status_code == 201, answer.get_data(as_text=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(color=False, unicode=False))
    note = " (under the profiler)" if tree else ""
    print(
        f"{events} events{note}: {events / wall:,.0f}/s, "
        f"{wall / events * 1000:.2f} ms wall and {cpu / events * 1000:.2f} ms CPU each"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--no-tree", action="store_true", help="time only, no profiler")
    args = parser.parse_args()
    if args.database == "sqlite":
        with sqlite_database(OUT / "db") as url:
            profile(url, args.events, args.members, not args.no_tree)
    else:
        with postgres_database() as url:
            profile(url, args.events, args.members, not args.no_tree)


if __name__ == "__main__":
    main()
