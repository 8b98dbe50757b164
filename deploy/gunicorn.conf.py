"""gunicorn settings for `loyalty serve` (and `make run`).

Nothing is built before the fork: the app factory runs in each worker, so every worker
has its own database pool and its own rule-engine host.
"""

import multiprocessing
import os

bind = os.environ.get("LOYALTY_BIND", "127.0.0.1:8000")
_database = os.environ.get("LOYALTY_DATABASE_URL", "sqlite:///var/loyalty.db")
# SQLite takes one writer at a time, so threads would only queue on its lock; PostgreSQL
# overlaps the round trips of several requests per worker.
if _database.startswith("sqlite"):
    worker_class = "sync"
    threads = 1
else:
    worker_class = "gthread"
    threads = int(os.environ.get("LOYALTY_THREADS", "4"))
workers = int(os.environ.get("LOYALTY_WORKERS", multiprocessing.cpu_count() * 2))
preload_app = False
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOYALTY_LOG_LEVEL", "info")
