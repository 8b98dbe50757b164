"""HTTP ingest through real gunicorn servers, driven by Debian's wrk.

Servers are started in their own process group and stopped (SIGTERM, then SIGKILL) in
``finally``, whatever happens; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "post_events.lua"
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
PG_SERVER = os.environ.get("LOYALTY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_ADMIN_DB = "test"
HOST = "127.0.0.1"


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """A gunicorn master in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], port: int, log: Path):
        self.name, self.argv, self.env, self.port, self.log = name, argv, dict(env), port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_timeout: float = 120.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log}"
                )
            if self._ready():
                return
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.name} was not ready within {ready_timeout:.0f} s; see {self.log}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Workers that outlived their master (they should not) go with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def server_env(database_url: str, api_key: str, port: int, workers: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LOYALTY_DATABASE_URL": database_url,
            "LOYALTY_RULES_DIR": str(ROOT / "rules"),
            "LOYALTY_ENGINE": "durable",
            "LOYALTY_API_KEYS": f"{api_key}:*",
            "LOYALTY_ENV": "development",
            "LOYALTY_LOG_LEVEL": "warning",
            "LOYALTY_BIND": f"{HOST}:{port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if workers:
        env["LOYALTY_WORKERS"] = str(workers)
    return env


def service_server(env: dict[str, str], port: int, log: Path) -> Server:
    argv = [
        str(BIN / "loyalty"),
        "serve",
        "--bind",
        f"{HOST}:{port}",
        "--config",
        str(GUNICORN_CONFIG),
    ]
    if "LOYALTY_WORKERS" in env:
        argv += ["--workers", env["LOYALTY_WORKERS"]]
    return Server("loyalty serve", argv, env, port, log)


def baseline_server(env: dict[str, str], port: int, log: Path) -> Server:
    argv = [
        str(BIN / "gunicorn"),
        "--config",
        str(GUNICORN_CONFIG),
        "bench.baseline_app:create_app()",
    ]
    return Server("baseline gunicorn", argv, env, port, log)


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run(
        [str(BIN / "loyalty"), "db", "upgrade"],
        cwd=ROOT,
        env=dict(env),
        check=True,
        stdout=subprocess.DEVNULL,
    )


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


@contextlib.contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal", ".writers"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()


def _admin_connection() -> Any:
    import psycopg

    conninfo = PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + f"/{PG_ADMIN_DB}"
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


def postgres_available() -> str | None:
    try:
        with _admin_connection() as connection:
            connection.execute("SELECT 1")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def postgres_version() -> str | None:
    try:
        with _admin_connection() as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except Exception:
        return None
    return str(row[0]) if row else None


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database loyalty_bench_<random> on the local server, dropped afterwards."""
    name = f"loyalty_bench_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with _admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_events(database_url: str) -> int | None:
    """Events the database holds: the check that 2xx answers were real writes."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM events")).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


def http_suite(
    database: str,
    database_url: str,
    load: Load,
    log_dir: Path,
    workers: int | None,
    batches: bool = True,
    progress: Any = print,
) -> dict[str, Any]:
    """Baseline, then the service (max rate, ~70 % rate, batches), on one database."""
    api_key = f"bench-{uuid.uuid4().hex}"
    results: dict[str, Any] = {"database": database}

    def single_events(url: str, duration: float) -> WrkResult:
        return run_wrk(
            url,
            mode="single",
            api_key=api_key,
            load=load,
            duration=duration,
            connections=load.connections,
        )

    port = free_port()
    env = server_env(database_url, api_key, port, workers)
    progress(f"[{database}] baseline: bare Flask under the same gunicorn config")
    with baseline_server(env, port, log_dir / f"baseline-{database}.log") as server:
        single_events(server.url, load.warmup)
        baseline = single_events(server.url, load.duration)
    results["baseline"] = baseline.summary()
    progress(f"[{database}] baseline: {baseline.events_per_s:,.0f} requests/s")

    migrate(env)
    port = free_port()
    env = server_env(database_url, api_key, port, workers)
    progress(f"[{database}] service: loyalty serve, fresh migrated database")
    with service_server(env, port, log_dir / f"service-{database}.log") as server:
        warm = single_events(server.url, load.warmup)
        results["warmup"] = warm.summary()
        peak = single_events(server.url, load.duration)
        results["max"] = peak.summary()
        results["ratio_to_baseline"] = (
            round(peak.events_per_s / baseline.events_per_s, 3) if baseline.events_per_s else None
        )
        progress(
            f"[{database}] service max: {peak.events_per_s:,.0f} events/s, "
            f"p99 {peak.latency_ms('99'):.1f} ms"
        )
        if peak.events_per_s <= 0:
            raise RuntimeError(
                f"the service accepted no events (answers: {peak.statuses}, socket errors: "
                f"{peak.raw['errors']}); see {server.log}"
            )
        paced = paced_run(server.url, api_key, load, peak.events_per_s)
        paced["run"] = paced["run"].summary()
        results["paced"] = paced
        progress(
            f"[{database}] service at ~{load.paced_fraction:.0%}: "
            f"{paced['run']['events_per_s']:,.0f} events/s, "
            f"p99 {paced['run']['latency_ms']['p99']:.1f} ms"
        )
        results["batch"] = []
        if batches:
            for size in load.batch_sizes:
                # Long enough for a few rounds of requests on every connection, were batches
                # no faster per event than single events; at most half a minute.
                rounds_s = 3 * size * load.batch_connections / max(peak.events_per_s, 1.0)
                run = run_wrk(
                    server.url,
                    mode="batch",
                    api_key=api_key,
                    load=load,
                    duration=min(30.0, max(load.duration, rounds_s)),
                    connections=load.batch_connections,
                    batch=size,
                    timeout_s=60,
                )
                results["batch"].append(run.summary())
                progress(f"[{database}] batch of {size}: {run.events_per_s:,.0f} events/s")
    acknowledged = (
        results["warmup"]["events"]
        + results["max"]["events"]
        + results["paced"]["run"]["events"]
        + sum(c["events"] for c in results["paced"]["calibration"])
        + sum(b["events"] for b in results["batch"])
    )
    results["acknowledged_events"] = acknowledged
    results["stored_events"] = stored_events(database_url)
    log = log_dir / f"service-{database}.log"
    results["server_log"] = str(log.relative_to(ROOT))
    results["server_log_findings"] = log_findings(log)
    return results


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
