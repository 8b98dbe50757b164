"""Crash safety of the real server (gunicorn, deploy/ config), on PostgreSQL and SQLite.

- SIGTERM to the master drains: requests a worker is in the middle of all finish, and are
  applied, before the workers exit.
- SIGKILL of a worker in the middle of a stream of events loses no acknowledged event and
  applies none twice: after the kill every event is sent again, and the ledger must hold
  each event exactly once, with what its first acknowledgement said.

Requests are held "in the middle" deterministically, never by timing: the test takes the
database lock they need (the members' rows on PostgreSQL, the write lock on SQLite) and
waits until it can see them waiting for it (pg_stat_activity; on SQLite the writers'
queue file, whose lock a worker holds or awaits while its transaction waits, in
/proc/locks) before it signals anything. Requests of one worker that arrive together
share one transaction (group commit): one of them waits on the database, the others on
it, all in the middle of their request.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
import requests
from sqlalchemy import Connection, create_engine, select, text

from service.storage.tables import ledger_entries, members
from tests.databases import postgres_database, sqlite_database
from tests.e2e.live import AUTH, LiveServer, children_of, live_server, wait_for
from tests.service.helpers import assert_balanced

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("crash")]

OBSERVED_CONFIG = Path(__file__).with_name("gunicorn_observed_conf.py")
TIMEOUT_S = 60
MEMBERS = 6
STREAM = 120
CLIENTS = 4
KILL_AFTER = 30  # acknowledged events before the kill


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    maker = postgres_database() if request.param == "postgres" else sqlite_database(str(tmp_path))
    with maker as url:
        yield url


def purchase(customer_id: str, amount: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:12]}",
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": "2026-12-02T10:00:00+08:00",
        "order_id": f"order-{uuid.uuid4().hex[:12]}",
        "amount": amount,
    }


def send(session: requests.Session, server: LiveServer, body: dict[str, Any]) -> requests.Response:
    return session.post(f"{server.url}/v1/events", json=body, headers=AUTH, timeout=TIMEOUT_S)


# -- holding requests in the middle


class Blocker:
    """Holds what the requests need, and says which workers have requests waiting on it."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
        self._connection: Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def hold(self, customer_ids: list[str]) -> None:
        if self.is_sqlite:
            self._sqlite = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=TIMEOUT_S)
            self._sqlite.isolation_level = None
            self._sqlite.execute("BEGIN IMMEDIATE")
            return
        self._connection = self.engine.connect()
        self._connection.begin()
        self._connection.execute(
            select(members.c.customer_id)
            .where(members.c.customer_id.in_(customer_ids))
            .with_for_update()
        ).all()

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.rollback()
            self._sqlite.close()
            self._sqlite = None
        if self._connection is not None:
            self._connection.rollback()
            self._connection.close()
            self._connection = None

    def waiting_workers(self, server: LiveServer, workers: list[int]) -> list[int]:
        """Workers with a request waiting on the held lock, most waiting first."""
        if self.is_sqlite:
            # A worker's transaction takes the writers' queue (an flock on <db>.writers)
            # before SQLite's write lock, and holds it while it waits for that lock.
            queue = Path(self.url.removeprefix("sqlite:///") + ".writers")
            holders = flock_holders(queue)
            return [pid for pid in workers if pid in holders]
        with self.engine.connect() as connection:
            ports = connection.execute(
                text(
                    "SELECT client_port FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalars()
            owners = [worker_with_local_port(port, workers) for port in ports]
        counted = [(owners.count(pid), pid) for pid in set(owners) if pid is not None]
        return [pid for _, pid in sorted(counted, reverse=True)]

    def close(self) -> None:
        self.release()
        self.engine.dispose()


def open_files(pid: int) -> set[str]:
    found = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                found.add(os.readlink(fd))
            except OSError:
                continue
    except OSError:
        pass
    return found


def tcp_sockets(port: int, state: str | None = None, remote: bool = False) -> set[str]:
    """fd link names (socket:[inode]) of TCP sockets whose local (or remote) port is
    `port`, in the given state (01 established, 0A listening) if one is given."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address = fields[2] if remote else fields[1]
            if int(address.rsplit(":", 1)[1], 16) == port and state in (None, fields[3]):
                found.add(f"socket:[{fields[9]}]")
    return found


def flock_holders(path: Path) -> set[int]:
    """Processes holding or waiting for an flock on the file (/proc/locks)."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.replace("->", "").split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and int(fields[5].split(":")[2]) == inode:
            found.add(int(fields[4]))
    return found


def requests_in_flight(blocker: Blocker, server: LiveServer, workers: list[int]) -> int:
    """Client connections held by workers that wait on the held lock: each is a request
    in the middle (the connections of these tests carry one request each)."""
    waiting = set(blocker.waiting_workers(server, workers))
    return sum(len(open_files(pid) & accepted(server.port)) for pid in waiting)


def accepted(port: int) -> set[str]:
    """Connections a server listening on `port` has accepted."""
    return tcp_sockets(port, "01")


def worker_with_local_port(port: int, workers: list[int]) -> int | None:
    """The worker whose TCP socket to the database has this local port (pg_stat_activity's
    client_port): the socket's inode in /proc/net/tcp, then whose fd points at it."""
    inodes = tcp_sockets(port)
    for pid in workers:
        if open_files(pid) & inodes:
            return pid
    return None


# -- SIGTERM


def test_sigterm_lets_every_request_in_flight_finish(database_url: str, tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    with live_server(
        database_url,
        tmp_path,
        env={"LOYALTY_TEST_SIGNAL_DIR": str(signals)},
        config=OBSERVED_CONFIG,
    ) as server:
        blocker = Blocker(database_url)
        member = f"drain-{uuid.uuid4().hex[:8]}"
        with requests.Session() as session:
            assert send(session, server, purchase(member, "1")).status_code == 201
        bodies = [purchase(member, str(10 + n)) for n in range(2 if blocker.is_sqlite else 4)]
        workers = server.workers()
        told_all = {f"sigterm-{pid}" for pid in workers}
        wait_for(
            lambda: {f"ready-{pid}" for pid in workers} <= told(signals), "every worker to boot"
        )
        try:
            blocker.hold([member])
            with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
                answers = [pool.submit(post_alone, server, body) for body in bodies]
                wait_for(
                    lambda: requests_in_flight(blocker, server, workers) == len(bodies),
                    f"{len(bodies)} requests in the middle, waiting on the member's lock",
                )

                server.process.send_signal(signal.SIGTERM)
                if blocker.is_sqlite:
                    # A sync worker waiting in SQLite's busy handler runs Python's signal
                    # handler only when that C call returns. What shows is the master
                    # closing its listener, which it does just before signalling them.
                    wait_for(
                        lambda: not listens(server.pid, server.port),
                        "the master to stop listening",
                    )
                else:
                    wait_for(
                        lambda: told(signals, "sigterm-") == told_all,
                        "SIGTERM to reach every worker",
                    )
                blocker.release()

                results = [answer.result(timeout=TIMEOUT_S) for answer in answers]
            assert [status for status, _ in results] == [201] * len(bodies), results
            assert server.process.wait(timeout=TIMEOUT_S) == 0
            assert told(signals, "sigterm-") == told_all
        finally:
            blocker.close()
        ledger = ledger_event_ids(database_url, member)
        assert {body["event_id"] for body in bodies} <= ledger


def told(signals: Path, prefix: str = "") -> set[str]:
    return {marker.name for marker in signals.iterdir() if marker.name.startswith(prefix)}


def listens(pid: int, port: int) -> bool:
    """Whether the process holds a listening TCP socket on the port."""
    return bool(open_files(pid) & tcp_sockets(port, "0A"))


def post_alone(server: LiveServer, body: dict[str, Any]) -> tuple[int, Any]:
    with requests.Session() as session:
        response = send(session, server, body)
        return response.status_code, response.json()


# -- SIGKILL


class Stream:
    """Events sent by several clients at once; what each got back, if anything."""

    def __init__(self, server: LiveServer, bodies: list[dict[str, Any]]) -> None:
        self.server = server
        self.queue: Queue[dict[str, Any]] = Queue()
        for body in bodies:
            self.queue.put(body)
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.unanswered: list[str] = []
        self._lock = threading.Lock()

    def client(self) -> None:
        with requests.Session() as session:
            while True:
                try:
                    body = self.queue.get_nowait()
                except Empty:
                    return
                try:
                    response = send(session, self.server, body)
                except requests.RequestException:
                    with self._lock:
                        self.unanswered.append(body["event_id"])
                    session.close()  # its connection may have been to the killed worker
                    continue
                with self._lock:
                    if response.status_code in (200, 201):
                        self.acknowledged[body["event_id"]] = response.json()
                    else:
                        self.unanswered.append(body["event_id"])

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def test_a_worker_killed_mid_stream_loses_nothing_acknowledged_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    with live_server(database_url, tmp_path) as server:
        ids = [f"kill-{n}-{uuid.uuid4().hex[:6]}" for n in range(MEMBERS)]
        amounts = itertools.cycle(["12.50", "88", "120.80", "7", "301.25"])
        seed = [purchase(member, "10") for member in ids]
        bodies = [purchase(ids[n % MEMBERS], next(amounts)) for n in range(STREAM)]
        with requests.Session() as session:
            first = {body["event_id"]: send(session, server, body).json() for body in seed}
        stream = Stream(server, bodies)
        blocker = Blocker(database_url)
        workers = server.workers()
        try:
            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                clients = [pool.submit(stream.client) for _ in range(CLIENTS)]
                wait_for(lambda: stream.count() >= KILL_AFTER, f"{KILL_AFTER} acknowledgements")

                blocker.hold(ids)
                busy = wait_for(
                    lambda: blocker.waiting_workers(server, workers),
                    "a worker in the middle of an event",
                )
                victim = busy[0]  # type: ignore[index]
                os.kill(victim, signal.SIGKILL)
                wait_for(
                    lambda: (
                        victim not in children_of(server.pid)
                        and len(children_of(server.pid)) == len(workers)
                    ),
                    "gunicorn to replace the killed worker",
                )
                blocker.release()
                for client in clients:
                    client.result(timeout=TIMEOUT_S * 2)
        finally:
            blocker.close()
        acknowledged = {**first, **stream.acknowledged}
        assert stream.unanswered, "the kill should have cut off the request it was in"

        # Every event again: what was acknowledged is there, once; the rest goes in now.
        final = {}
        with requests.Session() as session:
            for body in seed + bodies:
                response = send(session, server, body)
                assert response.status_code in (200, 201), response.text
                answer = response.json()
                if body["event_id"] in acknowledged:
                    assert answer["status"] == "duplicate", (body, answer)
                    assert answer["effects"] == acknowledged[body["event_id"]]["effects"]
                final[body["event_id"]] = answer

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for member in ids:
            assert_balanced(engine, member)
        with engine.connect() as connection:
            rows = connection.execute(
                select(ledger_entries.c.event_id, ledger_entries.c.points).where(
                    ledger_entries.c.customer_id.in_(ids)
                )
            ).all()
    finally:
        engine.dispose()
    earned: dict[str, int] = {}
    for event_id, points in rows:
        earned[event_id] = earned.get(event_id, 0) + points
    expected = {
        event_id: sum(e["points"] for e in answer["effects"] if e["type"] == "award_points")
        for event_id, answer in final.items()
    }
    assert earned == {k: v for k, v in expected.items() if v}


def ledger_event_ids(database_url: str, customer_id: str) -> set[str]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return set(
                connection.execute(
                    select(ledger_entries.c.event_id).where(
                        ledger_entries.c.customer_id == customer_id
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
