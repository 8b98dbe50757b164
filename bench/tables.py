"""The printed tables of a bench report, and its targets."""

from __future__ import annotations

from typing import Any

from bench.report import BUSY_WARNING

# The targets of the issue "The event path, rebuilt", for the durable engine.
TARGETS = {
    "sqlite_vs_baseline": 0.30,
    "postgresql_vs_baseline": 0.25,
    "p99_ms_at_70_percent": 50,
    "batch_500_postgresql_events_per_s": 4000,
    "server_cpu_ms_per_event_under_load": 1.2,
}


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]


def table(report: dict[str, Any]) -> str:
    out = _machine_lines(report)
    http = report.get("http") or []
    if http:
        out += [
            "",
            "HTTP single-event ingest (POST /v1/events, distinct purchases; wrk closed-loop)",
        ]
        out += _http_rows(http)
        out += _cost_rows(http)
        out += _batch_rows(http)
        out += _write_check(http)
    evaluation = report.get("evaluation")
    if evaluation:
        out += ["", "In-process evaluation (evaluate(...), no database)"]
        out += _evaluation_rows(evaluation)
    found = report.get("targets")
    if found:
        out += ["", "Targets (issue 10, durable engine; '-': shown without a target)"]
        out += _rows(
            ["target", "wanted", "measured", "met"],
            [[t["name"], t["wanted"], t["measured"], t["met"]] for t in found],
        )
    return "\n".join(out)


def _machine_lines(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    out = [
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql_server'] or '-'}, "
        f"{m['wrk'] or 'no wrk'}",
        "Packages: "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
        + f"; commit {m['git_commit']}{' + local changes' if m['git_tracked_changes'] else ''}",
        "Note: wrk, gunicorn and PostgreSQL share the 2 cores; the load generator competes "
        "with the server.",
    ]
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
    return out


def _engine_runs(suite: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(engine, its part of the suite, its max run) for each engine the suite ran."""
    parts = [suite] + ([suite["reference"]] if "max" in suite.get("reference", {}) else [])
    return [
        (
            part["engine"]
            if part.get("engine_reported") in (None, part["engine"])
            else f"{part['engine']} (serves {part['engine_reported']})",
            part,
            part["max"],
        )
        for part in parts
    ]


def _http_rows(http: list[dict[str, Any]]) -> list[str]:
    header = ["database / server", "conns", "events/s", "p50 ms", "p99 ms", "sock err"]
    header += ["non-2xx", "vs baseline"]
    rows = []
    for suite in http:
        if "error" in suite:
            rows.append([f"{suite['database']}: FAILED {suite['error'][:60]}"] + [""] * 7)
            continue
        base = suite["baseline"]
        runs: list[tuple[str, dict[str, Any]]] = [("baseline (bare Flask)", base)]
        for engine, part, peak in _engine_runs(suite):
            runs += [(f"{engine}, alone", part["alone"]), (f"{engine}, max", peak)]
            if "paced" in part:
                fraction = part["paced"]["fraction_of_max"] or 0
                runs.append((f"{engine}, paced ~{fraction:.0%} of max", part["paced"]["run"]))
        for label, run in runs:
            # One connection against the baseline's 32 is no ratio worth printing.
            ratio = (
                run["events_per_s"] / base["events_per_s"]
                if base["events_per_s"] and run["connections"] == base["connections"]
                else None
            )
            errors = run["socket_errors"]
            rows.append(
                [
                    f"{suite['database']} {label}",
                    str(run["connections"]),
                    _n(run["events_per_s"]),
                    _n(run["latency_ms"]["p50"], 1),
                    _n(run["latency_ms"]["p99"], 1),
                    str(sum(errors.values()) - errors["status"]),
                    str(run["non_2xx"]),
                    f"{ratio:.2f}" if ratio is not None else "-",
                ]
            )
    return _rows(header, rows)


def _cost_rows(http: list[dict[str, Any]]) -> list[str]:
    rows = []
    for suite in http:
        if "error" in suite:
            continue
        runs = [("baseline (bare Flask), max", suite["baseline"])]
        for engine, part, peak in _engine_runs(suite):
            runs += [(f"{engine}, alone", part["alone"]), (f"{engine}, max", peak)]
        for label, run in runs:
            costs = run.get("costs")
            if not costs:
                continue
            share = costs["machine_share"]
            rows.append(
                [
                    f"{suite['database']} {label}",
                    str(run["connections"]),
                    _n(run["events_per_s"]),
                    _n(costs["server_cpu_ms_per_event"], 2),
                    _n(costs["database_cpu_ms_per_event"], 2),
                    _n(costs["statements_per_event"], 1),
                    _n(costs["round_trips_per_event"], 1),
                    _n(costs["group_size_mean"], 2),
                    _pct(share["server"]),
                    _pct(share["database"]),
                    _pct(share["wrk"]),
                    _pct(share["others"]),
                ]
            )
    if not rows:
        return []
    header = ["database / server", "conns", "events/s", "server ms", "postgres ms"]
    header += ["statements", "round trips", "group", "server", "postgres", "wrk", "others"]
    return [
        "",
        "Cost per event: CPU ms from /proc (gunicorn master + workers; the PostgreSQL "
        "backends of the bench database),",
        "statements, round trips and events per transaction (group) from /metrics; then the "
        "share of the machine's CPU each took in the run",
        *_rows(header, rows),
    ]


def _batch_rows(http: list[dict[str, Any]]) -> list[str]:
    rows = []
    for suite in http:
        for run in suite.get("batch", []):
            items = run["batch_items"] or {}
            done = bool(run["requests"])
            rows.append(
                [
                    suite["database"],
                    str(run["batch_size"]),
                    str(run["connections"]),
                    _n(run["events_per_s"]),
                    _n(run["requests_per_s"], 1),
                    _n(run["latency_ms"]["p50"], 1) if done else "none done",
                    _n(run["latency_ms"]["p99"], 1) if done else "",
                    str(items.get("rejected", 0)),
                    str(run["non_2xx"]),
                ]
            )
    if not rows:
        return []
    header = ["database", "batch", "conns", "events/s", "requests/s", "p50 ms", "p99 ms"]
    header += ["rejected", "non-2xx"]
    return [
        "",
        "Batch ingest (POST /v1/events/batch, durable engine; 'none done': no batch was "
        "answered within the run)",
        *_rows(header, rows),
    ]


def _write_check(http: list[dict[str, Any]]) -> list[str]:
    checks = [
        f"{s['database']}: {s['acknowledged_events']:,} events acknowledged, "
        f"{_n(s['stored_events'])} stored"
        for s in http
        if "acknowledged_events" in s
    ]
    if not checks:
        return []
    out = [
        "Write check (stored may exceed acknowledged: answers still in flight when wrk "
        "stops are not counted): " + "; ".join(checks)
    ]
    troubles = [
        f"{s['database']} {engine}: "
        + ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in found.items() if n)
        for s in http
        if "max" in s
        for engine, part, _ in _engine_runs(s)
        if (found := part.get("server_log_findings")) and any(found.values())
    ]
    if troubles:
        out.append("Service log under load: " + "; ".join(troubles))
    lost = [
        s["database"]
        for s in http
        if s.get("stored_events") is not None and s["stored_events"] < s["acknowledged_events"]
    ]
    if lost:
        out.append(f"ERROR: fewer events stored than acknowledged on {', '.join(lost)}")
    return out


def _evaluation_rows(evaluation: dict[str, Any]) -> list[str]:
    header = ["rules", "campaigns", "rules n", "durable ev/s", "reference ev/s", "durable/ref"]
    header += ["fallbacks", "ref-only", "load s", "differ"]
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
    return _rows(header, rows)


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    by_db = {s["database"]: s for s in report.get("http") or [] if "error" not in s}

    def add(
        name: str, wanted: str, measured: float | None, met: bool | None, digits: int = 1
    ) -> None:
        found.append(
            {
                "name": name,
                "wanted": wanted,
                "measured": _n(measured, digits),
                "met": "-" if met is None or measured is None else ("yes" if met else "NO"),
            }
        )

    for db in ("sqlite", "postgresql"):
        suite = by_db.get(db)
        ratio = suite["ratio_to_baseline"] if suite else None
        wanted = TARGETS[f"{db}_vs_baseline"]
        add(
            f"{db} single events vs bare Flask",
            f">= {wanted:.2f}",
            ratio,
            ratio is not None and ratio >= wanted,
            2,
        )
        p99 = suite["paced"]["run"]["latency_ms"]["p99"] if suite else None
        limit = TARGETS["p99_ms_at_70_percent"]
        add(f"{db} p99 at ~70% of max, ms", f"< {limit}", p99, p99 is not None and p99 < limit)
        cpu = suite["max"].get("costs", {}).get("server_cpu_ms_per_event") if suite else None
        limit_ms = TARGETS["server_cpu_ms_per_event_under_load"]
        add(
            f"{db} server CPU per event under load, ms",
            f"<= {limit_ms}",
            cpu,
            cpu is not None and cpu <= limit_ms,
            2,
        )
    pg = by_db.get("postgresql")
    rate = next(
        (b["events_per_s"] for b in (pg or {}).get("batch", []) if b["batch_size"] == 500), None
    )
    wanted_rate = TARGETS["batch_500_postgresql_events_per_s"]
    add(
        "postgresql batches of 500, events/s",
        f">= {wanted_rate:,}",
        rate,
        rate is not None and rate >= wanted_rate,
        0,
    )
    for r in (report.get("evaluation") or {}).get("results", []):
        if r["campaigns"] == 100 and r["rules"].startswith("synthetic"):
            for engine in ("durable", "reference"):
                rate = r["engines"][engine]["events_per_s"]
                add(f"evaluation, 100 campaigns, {engine}, events/s", "-", rate, None, 0)
    return found
