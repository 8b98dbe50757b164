"""HTTP ingest through real gunicorn servers (bench/servers.py), driven by Debian's wrk,
with the cost of each event measured around the runs that matter (bench/costs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.costs import Probe, engine_of
from bench.databases import stored_events
from bench.servers import (
    ROOT,
    Server,
    baseline_server,
    free_port,
    migrate,
    server_env,
    service_server,
)

LUA = ROOT / "bench" / "post_events.lua"
ENGINES = ("durable", "reference")


@dataclass(frozen=True)
class Load:
    """How wrk drives a server."""

    duration: float = 10.0
    threads: int = 2
    connections: int = 32
    members: int = 10_000
    warmup: float = 3.0
    batch_connections: int = 4
    batch_sizes: tuple[int, ...] = (50, 500)
    paced_fraction: float = 0.7
    calibration: float = 3.0
    alone_duration: float = 5.0  # one connection, one request at a time


@dataclass
class WrkResult:
    mode: str
    connections: int
    threads: int
    duration_s: float
    batch: int
    delay_ms: float
    raw: dict[str, Any] = field(repr=False)

    @property
    def requests(self) -> int:
        return int(self.raw["requests"])

    @property
    def seconds(self) -> float:
        return float(self.raw["duration_us"]) / 1e6

    @property
    def statuses(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.raw["statuses"].items()}

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if code.startswith("2"))

    @property
    def non_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if not code.startswith("2"))

    @property
    def socket_errors(self) -> int:
        errors = self.raw["errors"]
        return int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"])

    @property
    def events(self) -> int:
        """Events the server accepted: 2xx answers, or applied items of batches."""
        if self.mode == "batch":
            return int(self.raw["items"]["applied"])
        return self.ok

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def latency_ms(self, percentile: str) -> float:
        return float(self.raw["latency_us"]["percentiles"][percentile]) / 1000

    @property
    def mean_latency_ms(self) -> float:
        return float(self.raw["latency_us"]["mean"]) / 1000

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "batch_size": self.batch,
            "threads": self.threads,
            "connections": self.connections,
            "duration_s": round(self.seconds, 3),
            "pacing_delay_ms": round(self.delay_ms, 2),
            "requests": self.requests,
            "requests_per_s": round(self.requests_per_s, 1),
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "latency_ms": {
                "mean": round(self.mean_latency_ms, 2),
                **{
                    f"p{k}": round(self.latency_ms(k), 2)
                    for k in self.raw["latency_us"]["percentiles"]
                },
                "max": round(float(self.raw["latency_us"]["max"]) / 1000, 2),
            },
            "statuses": self.statuses,
            "non_2xx": self.non_2xx,
            "socket_errors": self.raw["errors"],
            "batch_items": self.raw["items"] if self.mode == "batch" else None,
        }


def run_wrk(
    url: str,
    *,
    mode: str,
    api_key: str,
    load: Load,
    duration: float,
    connections: int,
    batch: int = 1,
    delay_ms: float = 0.0,
    timeout_s: int = 30,
) -> WrkResult:
    path = "/v1/events/batch" if mode == "batch" else "/v1/events"
    run_id = f"r{uuid.uuid4().hex[:10]}"
    threads = min(load.threads, connections)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(LUA),
        url + path,
        "--",
        run_id,
        mode,
        str(batch),
        str(load.members),
        api_key,
    ]
    env = dict(os.environ, BENCH_DELAY_MS=f"{delay_ms:.3f}")
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, timeout=duration + 120
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkResult(mode, connections, threads, duration, batch, delay_ms, raw)


def paced_run(url: str, api_key: str, load: Load, max_rate: float) -> dict[str, Any]:
    """About ``load.paced_fraction`` of ``max_rate``: each connection pauses between requests.

    wrk is closed-loop: a connection sends its next request only after the answer and a
    pause. With C connections, pause d and latency L, the rate is C / (d + L); up to three
    short calibration runs measure L at the pause chosen and correct d, then the measured run.
    """
    target = max_rate * load.paced_fraction
    connections = load.connections
    delay_ms = connections / target * 1000
    calibrations = []
    for _ in range(3):
        trial = run_wrk(
            url,
            mode="single",
            api_key=api_key,
            load=load,
            duration=load.calibration,
            connections=connections,
            delay_ms=delay_ms,
        )
        calibrations.append(
            {
                "delay_ms": round(delay_ms, 2),
                "events_per_s": round(trial.events_per_s, 1),
                "events": trial.events,
            }
        )
        if trial.events_per_s <= 0:
            break
        cycle_ms = connections / trial.events_per_s * 1000  # d + L, as measured
        latency_ms = max(0.0, cycle_ms - delay_ms)
        delay_ms = max(0.5, connections / target * 1000 - latency_ms)
        if abs(trial.events_per_s - target) / target < 0.05:
            break
    result = run_wrk(
        url,
        mode="single",
        api_key=api_key,
        load=load,
        duration=load.duration,
        connections=connections,
        delay_ms=delay_ms,
    )
    return {
        "target_events_per_s": round(target, 1),
        "fraction_of_max": round(result.events_per_s / max_rate, 3) if max_rate else None,
        "calibration": calibrations,
        "run": result,
    }


def http_suite(
    database: str,
    database_url: str,
    load: Load,
    log_dir: Path,
    workers: int | None,
    batches: bool = True,
    progress: Any = print,
    engines: tuple[str, ...] = ENGINES,
) -> dict[str, Any]:
    """Baseline, then the service with the durable engine (alone, max rate, ~70 % rate,
    batches), then with the reference engine (alone, max rate), on one database."""
    api_key = f"bench-{uuid.uuid4().hex}"
    results: dict[str, Any] = {"database": database}
    database_name = database_url.rsplit("/", 1)[1] if database == "postgresql" else None

    def single_events(url: str, duration: float, connections: int | None = None) -> WrkResult:
        return run_wrk(
            url,
            mode="single",
            api_key=api_key,
            load=load,
            duration=duration,
            connections=connections or load.connections,
        )

    def measured(
        server: Server, duration: float, connections: int | None = None, service: bool = True
    ) -> tuple[WrkResult, dict[str, Any]]:
        probe = Probe(server.pid, server.url, api_key, database_name if service else None, service)
        run, costs = probe.measure(
            lambda: single_events(server.url, duration, connections), lambda r: r.events
        )
        return run, {**run.summary(), "costs": costs}

    port = free_port()
    env = server_env(database_url, api_key, port, workers)
    progress(f"[{database}] baseline: bare Flask under the same gunicorn config")
    with baseline_server(env, port, log_dir / f"baseline-{database}.log") as server:
        single_events(server.url, load.warmup)
        baseline, results["baseline"] = measured(server, load.duration, service=False)
    progress(f"[{database}] baseline: {baseline.events_per_s:,.0f} requests/s")

    migrate(env)
    for engine in engines:
        port = free_port()
        env = server_env(database_url, api_key, port, workers, engine)
        log = log_dir / f"service-{database}-{engine}.log"
        with service_server(env, port, log) as server:
            reported = engine_of(server.url, api_key)
            progress(
                f"[{database}] service: loyalty serve, LOYALTY_ENGINE={engine} "
                f"(GET /v1/rules: {reported})"
            )
            part: dict[str, Any] = {"engine": engine, "engine_reported": reported}
            part["warmup"] = single_events(server.url, load.warmup).summary()
            alone, part["alone"] = measured(server, load.alone_duration, connections=1)
            peak, part["max"] = measured(server, load.duration)
            part["ratio_to_baseline"] = (
                round(peak.events_per_s / baseline.events_per_s, 3)
                if baseline.events_per_s
                else None
            )
            for label, run, costs in (
                ("alone", alone, part["alone"]["costs"]),
                ("max", peak, part["max"]["costs"]),
            ):
                progress(
                    f"[{database}] {engine} {label}: {run.events_per_s:,.0f} events/s, "
                    f"p99 {run.latency_ms('99'):.1f} ms, "
                    f"server {_ms(costs['server_cpu_ms_per_event'])} ms CPU/event, "
                    f"{_ms(costs['round_trips_per_event'])} round trips/event"
                )
            if peak.events_per_s <= 0:
                raise RuntimeError(
                    f"the service accepted no events (answers: {peak.statuses}, socket errors: "
                    f"{peak.raw['errors']}); see {server.log}"
                )
            if engine == "durable":
                part.update(_loaded(server.url, api_key, load, peak, batches, database, progress))
        part["server_log"] = str(log.relative_to(ROOT))
        part["server_log_findings"] = log_findings(log)
        if engine == "durable":
            results.update(part)  # the main figures stay where earlier reports had them
        else:
            results[engine] = part
    parts = [results] + [results[e] for e in engines if e != "durable"]
    results["acknowledged_events"] = sum(
        p["warmup"]["events"]
        + p["alone"]["events"]
        + p["max"]["events"]
        + (p["paced"]["run"]["events"] if "paced" in p else 0)
        + sum(c["events"] for c in p.get("paced", {}).get("calibration", []))
        + sum(b["events"] for b in p.get("batch", []))
        for p in parts
        if "max" in p
    )
    results["stored_events"] = stored_events(database_url)
    return results


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _loaded(
    url: str,
    api_key: str,
    load: Load,
    peak: WrkResult,
    batches: bool,
    database: str,
    progress: Any,
) -> dict[str, Any]:
    """~70 % of the maximum, then the batches, on a running service."""
    paced = paced_run(url, api_key, load, peak.events_per_s)
    paced["run"] = paced["run"].summary()
    progress(
        f"[{database}] service at ~{load.paced_fraction:.0%}: "
        f"{paced['run']['events_per_s']:,.0f} events/s, "
        f"p99 {paced['run']['latency_ms']['p99']:.1f} ms"
    )
    found: dict[str, Any] = {"paced": paced, "batch": []}
    if batches:
        for size in load.batch_sizes:
            # Long enough for a few rounds of requests on every connection, were batches
            # no faster per event than single events; at most half a minute.
            rounds_s = 3 * size * load.batch_connections / max(peak.events_per_s, 1.0)
            run = run_wrk(
                url,
                mode="batch",
                api_key=api_key,
                load=load,
                duration=min(30.0, max(load.duration, rounds_s)),
                connections=load.batch_connections,
                batch=size,
                timeout_s=60,
            )
            found["batch"].append(run.summary())
            progress(f"[{database}] batch of {size}: {run.events_per_s:,.0f} events/s")
    return found


def log_findings(log: Path) -> dict[str, int]:
    """What the service's own log says went wrong under load."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    lines = text.splitlines()
    return {
        "worker_timeouts": sum("WORKER TIMEOUT" in line for line in lines),
        "workers_killed": sum("was sent SIGKILL" in line for line in lines),
        "request_errors": sum("Error handling request" in line for line in lines),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "engine_fallbacks": sum("reference engine answered" in line for line in lines),
    }
