"""JSON logs, one object per line on stdout, each carrying the request id it belongs to.

What is logged is chosen, never dumped: no request or answer body, no header (so never
an Authorization key), and SQL errors without their bound parameters (which hold the
event's data). gunicorn's own lines go the same way through `GunicornLogger`, which
service/gunicorn_conf.py names as its `logger_class`.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger

request_id: ContextVar[str | None] = ContextVar("loyalty_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            body["request_id"] = current
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            body["exception"] = _exception_text(record.exc_info[1])
        return json.dumps(body, default=str, ensure_ascii=False)


def _exception_text(error: BaseException) -> str:
    # SQLAlchemy puts a statement's bound parameters (an event's fields) in its message
    # unless told not to; a log line never carries them.
    if hasattr(error, "hide_parameters"):
        error.hide_parameters = True
    return "".join(traceback.format_exception(error)).rstrip()


def json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._loyalty_json = True  # type: ignore[attr-defined]
    return handler


def configure(level: str | int = "info") -> None:
    """Root logs JSON to stdout at `level`; every other logger propagates to it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_loyalty_json", False):
            root.removeHandler(handler)
    root.addHandler(json_handler())
    root.setLevel(level.upper() if isinstance(level, str) else level)


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing JSON lines to stdout through the root logger.

    gunicorn's access log stays off: the app logs each request itself, with its id.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure(cfg.loglevel)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
        self.error_log.propagate = True
        self.access_log.propagate = False
        self.access_log.disabled = True

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None
