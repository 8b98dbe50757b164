"""What one event costs: CPU of the server's and PostgreSQL's processes, read from /proc,
and statements, round trips and group sizes, read from the service's ``GET /metrics``,
each taken before and after a measured wrk run and divided by the events it got answered.

CPU of a process is utime + stime + cutime + cstime from ``/proc/PID/stat``: the children's
part is what a gunicorn master inherits when it reaps a worker recycled by
``max_requests``, so a worker that dies mid-run still counts. PostgreSQL's backends are
children of the shared postmaster, whose inherited time mixes every database's, so the
backends serving the bench's database are sampled while the run goes on, and each one's
last sample counts (a backend that exits loses at most its last interval).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
SAMPLE_INTERVAL_S = 0.2
STATEMENTS = "loyalty_db_statements_total"
ROUND_TRIPS = "loyalty_db_round_trips_total"
GROUP_SUM = "loyalty_event_group_size_sum"
GROUP_COUNT = "loyalty_event_group_size_count"
METRICS = (STATEMENTS, ROUND_TRIPS, GROUP_SUM, GROUP_COUNT)

Run = TypeVar("Run")


# -- pure parts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    cpu_ticks: int  # utime + stime + cutime + cstime


def parse_proc_stat(line: str) -> ProcStat:
    """One ``/proc/PID/stat`` line. The command name sits in parentheses and may itself
    hold spaces and parentheses, so the fields are counted from the last ``)``."""
    head, _, rest = line.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 of proc(5) (state): ppid is field 4, utime..cstime 14..17.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(int(pid_text), comm, ppid, utime + stime + cutime + cstime)


def parse_machine_cpu(stat: str) -> tuple[int, int]:
    """(busy, total) ticks of all CPUs from ``/proc/stat``'s first line."""
    fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user and nice
    return total - idle, total


def parse_metrics(text: str, names: Iterable[str] = METRICS) -> dict[str, float]:
    """The named samples of a Prometheus exposition, each summed over its labels."""
    wanted = set(names)
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] = found.get(sample.name, 0.0) + float(sample.value)
    return found


def is_backend_of(cmdline: str, database: str) -> bool:
    """A PostgreSQL backend's title: ``postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE``."""
    return cmdline.startswith("postgres:") and database in cmdline.split()


@dataclass(frozen=True)
class Snapshot:
    wall_s: float
    server_ticks: int
    database_ticks: int | None  # None: no database server to count (SQLite)
    machine_busy_ticks: int
    machine_total_ticks: int
    client_cpu_s: float  # CPU of this process's finished children: the wrk run
    metrics: Mapping[str, float] | None  # None: the server has no /metrics (the baseline)


def per_event(
    before: Snapshot,
    after: Snapshot,
    events: int,
    clock_ticks: int = CLOCK_TICKS,
) -> dict[str, Any]:
    """The costs between two snapshots, per acknowledged event, and each one's share of
    all the machine's CPU time in between (1.0: every core busy the whole time)."""
    wall = max(after.wall_s - before.wall_s, 1e-9)

    def ticks_ms(ticks: int) -> float:
        return ticks / clock_ticks * 1000

    def each(amount: float | None) -> float | None:
        return None if amount is None or events <= 0 else round(amount / events, 4)

    server_ms = ticks_ms(after.server_ticks - before.server_ticks)
    database_ms = (
        ticks_ms(after.database_ticks - before.database_ticks)
        if after.database_ticks is not None and before.database_ticks is not None
        else None
    )
    client_ms = (after.client_cpu_s - before.client_cpu_s) * 1000
    machine_busy_ms = ticks_ms(after.machine_busy_ticks - before.machine_busy_ticks)
    machine_ms = max(ticks_ms(after.machine_total_ticks - before.machine_total_ticks), 1e-9)
    others_ms = max(0.0, machine_busy_ms - server_ms - (database_ms or 0.0) - client_ms)

    def share(ms: float | None) -> float | None:
        return None if ms is None else round(ms / machine_ms, 3)

    result: dict[str, Any] = {
        "events": events,
        "seconds": round(wall, 3),
        "server_cpu_ms": round(server_ms, 1),
        "server_cpu_ms_per_event": each(server_ms),
        "database_cpu_ms_per_event": each(database_ms),
        "wrk_cpu_ms_per_event": each(client_ms),
        "machine_share": {
            "server": share(server_ms),
            "database": share(database_ms),
            "wrk": share(client_ms),
            "others": share(others_ms),
        },
        "statements_per_event": None,
        "round_trips_per_event": None,
        "group_size_mean": None,
    }
    if before.metrics is not None and after.metrics is not None:
        delta = {
            name: after.metrics.get(name, 0.0) - before.metrics.get(name, 0.0) for name in METRICS
        }
        result["statements_per_event"] = each(delta[STATEMENTS])
        result["round_trips_per_event"] = each(delta[ROUND_TRIPS])
        groups = delta[GROUP_COUNT]
        result["group_size_mean"] = round(delta[GROUP_SUM] / groups, 2) if groups > 0 else None
        result["groups"] = int(groups)
    return result


# -- reading the machine -----------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # the process is gone, or never was
        return ""


def process(pid: int) -> ProcStat | None:
    line = _read(PROC / str(pid) / "stat")
    try:
        return parse_proc_stat(line) if line else None
    except (ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        found += [int(p) for p in _read(task / "children").split()]
    return found


def tree_ticks(root: int) -> int:
    """CPU ticks of a process and all its descendants, living ones read now."""
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stat = process(pid)
        if stat is not None:
            total += stat.cpu_ticks
            todo += children(pid)
    return total


def postmaster_pid() -> int | None:
    """The PostgreSQL server process: a ``postgres`` whose parent is not one."""
    for entry in PROC.iterdir():
        stat = process(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat.comm == "postgres":
            parent = process(stat.ppid)
            if parent is None or parent.comm != "postgres":
                return stat.pid
    return None


class BackendSampler:
    """Samples the CPU of the PostgreSQL backends serving one database while a run goes on."""

    def __init__(self, postmaster: int, database: str):
        self.postmaster, self.database = postmaster, database
        self.last: dict[int, int] = {}  # pid -> the latest ticks seen
        self.first: dict[int, int] = {}  # pid -> ticks at the run's start (0 if born later)
        self.not_ours: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        for pid in children(self.postmaster):
            if pid in self.not_ours:
                continue
            if pid not in self.last:
                cmdline = _read(PROC / str(pid) / "cmdline").replace("\0", " ").strip()
                if not is_backend_of(cmdline, self.database):
                    self.not_ours.add(pid)
                    continue
            stat = process(pid)
            if stat is not None:
                self.last[pid] = stat.cpu_ticks
        return sum(self.last.values())

    def start(self) -> int:
        total = self.sample()
        self.first = dict(self.last)
        self._thread = threading.Thread(target=self._loop, name="backend-sampler", daemon=True)
        self._thread.start()
        return total

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.sample()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.sample()

    @property
    def backends_opened(self) -> int:
        return len(set(self.last) - set(self.first))


def scrape(url: str, api_key: str) -> dict[str, float]:
    request = urllib.request.Request(  # noqa: S310 - the bench's own loopback server
        f"{url}/metrics", headers={"Authorization": f"Bearer {api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        return parse_metrics(answer.read().decode("utf-8"))


def engine_of(url: str, api_key: str) -> str | None:
    """The engine the running service says it uses (GET /v1/rules)."""
    request = urllib.request.Request(  # noqa: S310 - the bench's own loopback server
        f"{url}/v1/rules", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return str(json.loads(answer.read())["engine"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Probe:
    """Where to look for one server's costs."""

    server_pid: int
    url: str
    api_key: str
    database: str | None = None  # the PostgreSQL database's name; None on SQLite
    metrics: bool = True  # the baseline has no /metrics

    def measure(
        self, run: Callable[[], Run], events: Callable[[Run], int]
    ) -> tuple[Run, dict[str, Any]]:
        """Run ``run`` between two snapshots; its costs per ``events(result)``."""
        metrics_before = scrape(self.url, self.api_key) if self.metrics else None
        postmaster = postmaster_pid() if self.database else None
        sampler = (
            BackendSampler(postmaster, self.database) if postmaster and self.database else None
        )
        before = self._snapshot(sampler.start() if sampler else None, metrics_before)
        result = run()
        after = self._snapshot(sampler.stop() if sampler else None, None)
        metrics_after = scrape(self.url, self.api_key) if self.metrics else None
        after = dataclasses.replace(after, metrics=metrics_after)
        costs = per_event(before, after, events(result))
        if sampler is not None:
            costs["database_backends"] = len(sampler.last)
            costs["database_backends_opened"] = sampler.backends_opened
        return result, costs

    def _snapshot(
        self, database_ticks: int | None, metrics: Mapping[str, float] | None
    ) -> Snapshot:
        busy, total = parse_machine_cpu(_read(PROC / "stat"))
        children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Snapshot(
            wall_s=time.monotonic(),
            server_ticks=tree_ticks(self.server_pid),
            database_ticks=database_ticks,
            machine_busy_ticks=busy,
            machine_total_ticks=total,
            client_cpu_s=children_usage.ru_utime + children_usage.ru_stime,
            metrics=metrics,
        )
