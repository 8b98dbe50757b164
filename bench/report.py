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

# The targets of the "Production readiness" issue.
TARGETS = {
    "http_postgres_events_per_s": 1200,
    "http_sqlite_events_per_s": 1500,
    "p99_ms_at_70_percent": 50,
    "batch_postgres_events_per_s": 12000,
    "evaluation_100_campaigns_events_per_s": 20000,
}


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
    workers_text = str(workers) if workers else "the config's default (2 per CPU)"
    return {
        "http": (
            f"Each server is real gunicorn with --config deploy/gunicorn.conf.py on a free port of "
            f"127.0.0.1, workers: {workers_text}; the config picks sync workers for SQLite URLs "
            "and gthread (4 threads) for PostgreSQL, and the baseline runs with the same "
            "LOYALTY_DATABASE_URL, so it gets the same worker class. The service runs "
            "`loyalty serve` against a fresh database migrated with `loyalty db upgrade` "
            "(SQLite: a file under var/bench/; PostgreSQL: a new database loyalty_bench_<random> "
            "on 127.0.0.1:5432, dropped afterwards), LOYALTY_ENGINE=durable, the rules in rules/. "
            f"Debian's wrk ({load.threads} threads, {load.connections} connections, "
            f"{load.duration:g} s per measurement after a {load.warmup:g} s warm-up) runs "
            "bench/post_events.lua, which posts distinct purchase events (event_id unique per "
            f"run, wrk thread and request) over {load.members:,} members, 1-4 line items each. "
            "Latency is wrk's, from sending a request to its full answer. events/s counts 2xx "
            "answers (for batches: items answered 'applied') over the measured seconds."
        ),
        "paced": (
            f"~{load.paced_fraction:.0%} of the measured maximum: wrk can't hold a rate and "
            "Debian has no wrk2, so each connection pauses a calibrated time (uniform 0.5x-1.5x "
            "of the mean) before its next request; two short calibration runs set the pause. "
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


# -- the table -------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return lines


def table(report: dict[str, Any]) -> str:
    out: list[str] = []
    m = report["machine"]
    out.append(
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql_server'] or '-'}, "
        f"{m['wrk'] or 'no wrk'}"
    )
    out.append(
        "Packages: "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
        + f"; commit {m['git_commit']}{' + local changes' if m['git_tracked_changes'] else ''}"
    )
    out.append(
        "Note: wrk, gunicorn and PostgreSQL share the 2 cores; the load generator competes "
        "with the server."
    )
    samples = report.get("background_cpu") or {}
    if samples:
        shown = ", ".join(
            f"{when} {s['busy_percent']:.0f}% (load {s['loadavg_1min']:.1f})"
            for when, s in samples.items()
            if s
        )
        out.append(f"CPU busy with other processes, sampled while nothing of ours ran: {shown}")
        if any(s and s["busy_percent"] > BUSY_WARNING for s in samples.values()):
            out.append(
                f"WARNING: other processes used more than {BUSY_WARNING}% of the CPU: the figures "
                "below are depressed; run again on a quiet machine."
            )
    http = report.get("http") or []
    if http:
        out.append("")
        out.append(
            "HTTP single-event ingest (POST /v1/events, distinct purchases; wrk closed-loop)"
        )
        header = [
            "database / server",
            "conns",
            "events/s",
            "p50 ms",
            "p99 ms",
            "sock err",
            "non-2xx",
            "vs baseline",
        ]
        rows = []
        for suite in http:
            if "error" in suite:
                rows.append(
                    [
                        f"{suite['database']}: FAILED {suite['error'][:60]}",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
                continue
            base = suite["baseline"]
            for label, run, ratio in (
                ("baseline (bare Flask)", base, 1.0),
                ("service, max", suite["max"], suite["ratio_to_baseline"]),
                (
                    f"service, paced ~{suite['paced']['fraction_of_max'] or 0:.0%} of max",
                    suite["paced"]["run"],
                    None,
                ),
            ):
                if ratio is None and base["events_per_s"]:
                    ratio = run["events_per_s"] / base["events_per_s"]
                rows.append(
                    [
                        f"{suite['database']} {label}",
                        str(run["connections"]),
                        _n(run["events_per_s"]),
                        _n(run["latency_ms"]["p50"], 1),
                        _n(run["latency_ms"]["p99"], 1),
                        str(sum(run["socket_errors"].values()) - run["socket_errors"]["status"]),
                        str(run["non_2xx"]),
                        f"{ratio:.2f}" if ratio is not None else "-",
                    ]
                )
        out += _rows(header, rows)
        batch_rows = []
        for suite in http:
            for run in suite.get("batch", []):
                items = run["batch_items"] or {}
                batch_rows.append(
                    [
                        suite["database"],
                        str(run["batch_size"]),
                        str(run["connections"]),
                        _n(run["events_per_s"]),
                        _n(run["requests_per_s"], 1),
                        _n(run["latency_ms"]["p50"], 1) if run["requests"] else "none done",
                        _n(run["latency_ms"]["p99"], 1) if run["requests"] else "",
                        str(items.get("rejected", 0)),
                        str(run["non_2xx"]),
                    ]
                )
        if batch_rows:
            out.append("")
            out.append(
                "Batch ingest (POST /v1/events/batch; 'none done': no batch was answered "
                "within the run)"
            )
            out += _rows(
                [
                    "database",
                    "batch",
                    "conns",
                    "events/s",
                    "requests/s",
                    "p50 ms",
                    "p99 ms",
                    "rejected",
                    "non-2xx",
                ],
                batch_rows,
            )
        checks = [
            f"{s['database']}: {s['acknowledged_events']:,} events acknowledged, "
            f"{_n(s['stored_events'])} stored"
            for s in http
            if "acknowledged_events" in s
        ]
        if checks:
            out.append(
                "Write check (stored may exceed acknowledged: answers still in flight when wrk "
                "stops are not counted): " + "; ".join(checks)
            )
            troubles = [
                f"{s['database']}: "
                + ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in found.items() if n)
                for s in http
                if (found := s.get("server_log_findings")) and any(found.values())
            ]
            if troubles:
                out.append("Service log under load: " + "; ".join(troubles))
            lost = [
                s["database"]
                for s in http
                if s.get("stored_events") is not None
                and s["stored_events"] < s["acknowledged_events"]
            ]
            if lost:
                out.append(f"ERROR: fewer events stored than acknowledged on {', '.join(lost)}")
    evaluation = report.get("evaluation")
    if evaluation:
        out.append("")
        out.append("In-process evaluation (evaluate(...), no database)")
        header = [
            "rules",
            "campaigns",
            "rules n",
            "durable ev/s",
            "reference ev/s",
            "durable/ref",
            "fallbacks",
            "ref-only",
            "load s",
            "differ",
        ]
        rows = []
        for r in evaluation["results"]:
            d, ref = r["engines"]["durable"], r["engines"]["reference"]
            rows.append(
                [
                    r["rules"],
                    str(r["campaigns"]),
                    str(r["rule_count"]),
                    _n(d["events_per_s"]),
                    _n(ref["events_per_s"]),
                    f"{r['durable_over_reference']:.2f}",
                    f"{d['fallback_events']}/{d['events']}",
                    str(d["rules_reference_only"]),
                    f"{r['load_s']:.2f}",
                    f"{r['agreement']['differ']}/{r['agreement']['events']}",
                ]
            )
        out += _rows(header, rows)
    targets = report.get("targets")
    if targets:
        out.append("")
        out.append("Targets (issue 6)")
        out += _rows(
            ["target", "wanted", "measured", "met"],
            [[t["name"], t["wanted"], t["measured"], t["met"]] for t in targets],
        )
    return "\n".join(out)


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    by_db = {s["database"]: s for s in report.get("http") or [] if "error" not in s}

    def add(name: str, wanted: str, measured: float | None, met: bool | None) -> None:
        found.append(
            {
                "name": name,
                "wanted": wanted,
                "measured": _n(measured, 1),
                "met": "-" if met is None else ("yes" if met else "NO"),
            }
        )

    for db, key in (
        ("postgresql", "http_postgres_events_per_s"),
        ("sqlite", "http_sqlite_events_per_s"),
    ):
        suite = by_db.get(db)
        rate = suite["max"]["events_per_s"] if suite else None
        add(
            f"{db} single-event ingest, events/s",
            f">= {TARGETS[key]:,}",
            rate,
            None if rate is None else rate >= TARGETS[key],
        )
        p99 = suite["paced"]["run"]["latency_ms"]["p99"] if suite else None
        add(
            f"{db} p99 at ~70% of max, ms",
            f"< {TARGETS['p99_ms_at_70_percent']}",
            p99,
            None if p99 is None else p99 < TARGETS["p99_ms_at_70_percent"],
        )
    pg = by_db.get("postgresql")
    best_batch = max((b["events_per_s"] for b in pg["batch"]), default=None) if pg else None
    add(
        "postgresql batch ingest, events/s",
        f">= {TARGETS['batch_postgres_events_per_s']:,}",
        best_batch,
        None if best_batch is None else best_batch >= TARGETS["batch_postgres_events_per_s"],
    )
    for r in (report.get("evaluation") or {}).get("results", []):
        if r["campaigns"] == 100 and r["rules"].startswith("synthetic"):
            for engine in ("durable", "reference"):
                rate = r["engines"][engine]["events_per_s"]
                wanted = TARGETS["evaluation_100_campaigns_events_per_s"]
                add(
                    f"evaluation, 100 campaigns, {engine}, events/s",
                    f">= {wanted:,}",
                    rate,
                    rate >= wanted,
                )
    return found


def write(report: dict[str, Any]) -> tuple[Path, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"bench-{stamp}.json"
    text = json.dumps(report, indent=2, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    latest = OUT / "latest.json"
    latest.write_text(text, encoding="utf-8")
    return path, latest
