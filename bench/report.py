"""The machine, the method, the table and the JSON files under var/bench/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"
PACKAGES = (
    "Flask",
    "Werkzeug",
    "gunicorn",
    "SQLAlchemy",
    "psycopg",
    "durable_rules",
    "marshmallow",
    "PyYAML",
)

BUSY_WARNING = 15  # percent of the machine's CPU used by others before a measurement


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def _command(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


def background_cpu(seconds: float = 1.0) -> dict[str, float] | None:
    """How busy the machine is with nothing of ours running: other people's work skews
    every figure, so each run records it."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
        load1 = float(_read("/proc/loadavg").split()[0])
    except (IndexError, ValueError):
        return None
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    return {"busy_percent": round(busy * 100, 1), "loadavg_1min": load1}


def quiet_cpu(max_wait: float, progress: Any = print) -> dict[str, float] | None:
    """Sample the background load; while others keep the CPU busy, wait up to ``max_wait``."""
    deadline = time.monotonic() + max_wait
    sample = background_cpu()
    waited = False
    while sample and sample["busy_percent"] > BUSY_WARNING and time.monotonic() < deadline:
        if not waited:
            progress(
                f"other processes keep {sample['busy_percent']:.0f}% of the CPU busy; waiting "
                f"up to {max_wait:.0f} s for a quieter moment"
            )
            waited = True
        time.sleep(2)
        sample = background_cpu()
    return sample


def machine(postgres_version: str | None) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = _command(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql_server": postgres_version,
        "wrk": _command(["wrk", "--version"]),
        "packages": versions,
        "git_commit": commit,
        "git_tracked_changes": bool(dirty),
    }


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def method(load: Any, eval_seconds: float, workers: int | None) -> dict[str, Any]:
    workers_text = str(workers) if workers else "LOYALTY_WORKERS, by default one per CPU"
    return {
        "http": (
            f"Each server is real gunicorn with --config deploy/gunicorn.conf.py on a free port of "
            f"127.0.0.1, workers: {workers_text}; the config runs gthread workers on both "
            "databases (LOYALTY_THREADS, by default 32 threads each), and the baseline runs "
            "under the same config and environment. The service runs `loyalty serve` against "
            "a fresh database migrated with `loyalty db upgrade` (SQLite: a file under "
            "var/bench/; PostgreSQL: a new database loyalty_bench_<random> on 127.0.0.1:5432, "
            "dropped afterwards), LOYALTY_ENGINE=durable, the rules in rules/. "
            f"Debian's wrk ({load.threads} threads, {load.connections} connections, "
            f"{load.duration:g} s per measurement after a {load.warmup:g} s warm-up) runs "
            "bench/post_events.lua, which posts distinct purchase events (event_id unique per "
            f"run, wrk thread and request) over {load.members:,} members, 1-4 line items each. "
            "Latency is wrk's, from sending a request to its full answer. events/s counts 2xx "
            "answers (for batches: items answered 'applied') over the measured seconds. "
            f"'alone' is one wrk connection sending one request at a time for "
            f"{load.alone_duration:g} s, 'max' the {load.connections}-connection run."
        ),
        "engines": (
            "After the durable engine's runs (alone, max, paced, batches), a second service "
            "with LOYALTY_ENGINE=reference starts on the same database (its events already "
            "stored) and runs the warm-up, alone and max again; GET /v1/rules names the engine "
            "each service reports."
        ),
        "costs": (
            "Around each alone and max run: CPU of the gunicorn master and all its workers "
            "(utime+stime+cutime+cstime from /proc/PID/stat, so a worker recycled by "
            "max_requests still counts through its master), CPU of the PostgreSQL backends "
            "whose title names the bench database (sampled every 0.2 s during the run, as "
            "backends come and go; the shared walwriter, checkpointer and the others are not "
            "counted), wrk's CPU (getrusage of the bench's finished children), and the "
            "machine's busy time (/proc/stat): each divided by the events answered 2xx, and "
            "each as a share of all the machine's CPU time in the run ('others': what none of "
            "these used). GET /metrics, scraped before and after (with the bench key as "
            "Bearer), gives loyalty_db_statements_total and loyalty_db_round_trips_total "
            "(statements plus BEGIN and COMMIT/ROLLBACK) per event, and the mean of "
            "loyalty_event_group_size (_sum/_count: events applied in one transaction). "
            "Answers in flight when wrk stops count in the CPU and the statements but not in "
            "the events, which overstates the costs by a fraction of a per cent."
        ),
        "paced": (
            f"~{load.paced_fraction:.0%} of the measured maximum: wrk can't hold a rate and "
            "Debian has no wrk2, so each connection pauses a calibrated time (uniform 0.5x-1.5x "
            "of the mean) before its next request; up to three short calibration runs set the "
            "pause. "
            "This is closed-loop: a stalled answer delays the requests behind it instead of "
            "queueing them, so p99 here understates what an open-loop client at a fixed rate "
            "would see (coordinated omission)."
        ),
        "batch": (
            f"POST /v1/events/batch with {'/'.join(str(b) for b in load.batch_sizes)} distinct "
            f"purchase events per request, {load.batch_connections} wrk connections, same servers."
        ),
        "evaluation": (
            "In one process, no database: evaluate(ruleset, matcher, customer, event) over "
            "2,000 seeded (member snapshot, event) pairs (78% purchases, 15% activities, "
            f"referrals, enrolments), round and round for about {eval_seconds:g} s per engine "
            "and ruleset. 'durable' is build_matcher(engine='durable'): durable-rules with the "
            "reference answering any event it fails on (counted as fallbacks); 'reference' is "
            "the plain-Python matcher. Synthetic programmes are bench/synthetic.py's campaign "
            "files loaded with load_rules(files)."
        ),
        "cpu_sharing": (
            "The machine has 2 cores shared by wrk, gunicorn's workers and PostgreSQL: the load "
            "generator takes CPU from the server, so HTTP figures are lower bounds for a server "
            "with the machine to itself, and the baseline pays the same tax."
        ),
    }


def write(report: dict[str, Any]) -> tuple[Path, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"bench-{stamp}.json"
    text = json.dumps(report, indent=2, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    latest = OUT / "latest.json"
    latest.write_text(text, encoding="utf-8")
    return path, latest
