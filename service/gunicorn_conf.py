"""gunicorn settings for `loyalty serve` (and `make run`), shipped inside the package.

`loyalty serve` hands gunicorn this file by its absolute path, so the service starts the
same from the repository, an installed package or any other directory
(deploy/gunicorn.conf.py only loads this file, for `gunicorn --config` by hand).

Nothing is built before the fork: the app factory runs in each worker, so every worker
has its own database pool and its own rule-engine host.
"""

import glob
import multiprocessing
import os
import re
import shutil
import tempfile
from typing import Any

bind = os.environ.get("LOYALTY_BIND", "127.0.0.1:8000")
# Threads let concurrent events of a worker share one transaction (group commit): the
# more requests a worker holds at once, the fewer statements and commits per event
# (measured on 2 cores: 16 threads per worker, groups of ~5 events; 32, ~8).
worker_class = "gthread"
threads = int(os.environ.get("LOYALTY_THREADS", "32"))
workers = int(os.environ.get("LOYALTY_WORKERS", multiprocessing.cpu_count()))
preload_app = False
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
# Twice gunicorn's defaults (the request line at its maximum), so that the app sees and
# refuses as problem+json what passes its own, default-sized limits (service.api.hardening:
# 4094-byte request line, 100 header fields, 8190 bytes each). gunicorn still answers
# beyond these, and for requests that are not HTTP at all, with its own text/html page.
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16380
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOYALTY_LOG_LEVEL", "info")
# JSON lines on stdout, gunicorn's own included; the app logs each request with its id.
logger_class = "service.observability.logging.GunicornLogger"

# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which two servers on one host would fight over; we do not use gunicornc.
control_socket_disable = True

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made_metrics_dir: list[str] = []  # the directory on_starting made, removed again on exit


def on_starting(server: Any) -> None:
    """Before any worker exists: a Prometheus multiprocess directory for this server, set
    before any worker imports prometheus_client, which reads it once, at import.

    PROMETHEUS_MULTIPROC_DIR names one to use (emptied of an earlier run's samples);
    otherwise a fresh directory of this server's own is made in the system's temporary
    directory (never under the working directory, which may be read-only or shared) and
    removed at exit. prometheus_client is not imported here: workers forked from a
    master that had imported it without the variable would keep single-process values."""
    directory = os.environ.get(METRICS_ENV)
    if not directory:
        name = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", address) for address in server.cfg.bind)
        directory = tempfile.mkdtemp(prefix=f"loyalty-metrics-{name}-")
        _made_metrics_dir.append(directory)
    os.environ[METRICS_ENV] = directory
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)


def child_exit(server: Any, worker: Any) -> None:
    """A worker died or was recycled: drop its live gauges (its counts still add up)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    for directory in _made_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)
