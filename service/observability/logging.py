"""JSON logs (python-json-logger), one object per line on stdout, each carrying the
request id it belongs to.

What is logged is chosen, never dumped: no request or answer body, no header (so never
an Authorization key), and SQL errors without their bound parameters (which hold the
event's data). gunicorn's own lines go the same way through `GunicornLogger`, which
service/gunicorn_conf.py names as its `logger_class`.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter as LibraryJsonFormatter

request_id: ContextVar[str | None] = ContextVar("loyalty_request_id", default=None)


class JsonFormatter(LibraryJsonFormatter):
    """The fields: time (UTC, ms), level (lower case), logger, message, whatever came as
    `extra=`, the exception's traceback, and the request id when there is one."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "exc_info": "exception",
            },
            json_default=str,
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        # SQLAlchemy puts a statement's bound parameters (an event's fields) in its message
        # unless told not to; a log line never carries them.
        error = ei[1]
        if hasattr(error, "hide_parameters"):
            error.hide_parameters = True
        return str(super().formatException(ei))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()
        current = request_id.get()
        if current is not None:
            log_data["request_id"] = current


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
