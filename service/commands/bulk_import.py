"""The work behind `loyalty replay`: a JSON Lines stream of past events, read line by line
as POST /v1/events reads a body, applied a batch at a time through the grouped apply path,
with a tally, progress and every rejected line kept by its number.

Nothing holds more than one batch of events: lines are streamed, and the rejections go to
a spool file (memory until it grows) rather than a list, so a file of millions of lines
runs in the memory of a few thousand.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from marshmallow import ValidationError

from service.application.apply_event import EventOutcome
from service.core.errors import EventConflict
from service.core.events import Event
from service.event_schema import error_text, nul_fields, parse_event
from service.strict_json import BodyRefused, strict_loads

log = logging.getLogger(__name__)

ApplyBatch = Callable[[Sequence[Event]], Sequence[EventOutcome | EventConflict]]
NUL_ESCAPE = b"\\u0000"  # the only way a JSON line can carry U+0000


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that changed nothing, with the HTTP status POST /v1/events would answer."""

    line: int
    http_status: int  # 400 not JSON, 422 invalid, 409 changed body, 500 failed on its own
    reason: str
    event_id: str | None = None
    errors: Any = None  # the field messages of an invalid event

    def as_json(self) -> dict[str, Any]:
        body = {
            "line": self.line,
            "http_status": self.http_status,
            "event_id": self.event_id,
            "reason": self.reason,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def read_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Event | Rejection | None]]:
    """(line number, the event or why not) for every line; None for a blank one."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            yield number, None
            continue
        yield number, _event_of(number, line.rstrip(b"\r\n"))


def _event_of(number: int, line: bytes) -> Event | Rejection:
    try:
        payload = strict_loads(line)
    except json.JSONDecodeError as error:  # its own "line 1" would read as the file's
        return Rejection(number, 400, f"not valid JSON: {error.msg} at column {error.colno}")
    except BodyRefused as error:  # not UTF-8, too deep, a key twice: as the edge answers
        return Rejection(number, error.status, error.detail)
    except ValueError as error:  # NaN
        return Rejection(number, 400, f"not valid JSON: {error}")
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    event_id = event_id if isinstance(event_id, str) else None
    try:
        if NUL_ESCAPE in line and (nul := nul_fields(payload)):
            raise ValidationError(nul)
        return parse_event(payload)
    except ValidationError as error:
        return Rejection(number, 422, error_text(error.messages), event_id, error.messages)


@dataclass(slots=True)
class Tally:
    lines: int = 0  # read so far, blank ones included
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def events(self) -> int:
        return self.applied + self.duplicate + self.rejected

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.lines:,} lines read, {self.applied:,} applied, {self.duplicate:,} duplicate,"
            f" {self.rejected:,} rejected, {self.rate():,.0f} events/s"
        )


class Progress:
    """The tally on a stream while the import runs: rewritten in place on a terminal (at
    most four times a second), else one line every ``every`` seconds; always a last line."""

    def __init__(self, stream: TextIO | None, every: float | None = None) -> None:
        self.stream = stream
        self.tty = stream is not None and stream.isatty()
        self.every = every if every is not None else (0.25 if self.tty else 10.0)
        self.last = time.monotonic()

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        if self.stream is None or now - self.last < self.every:
            return
        self.last = now
        self._write(tally, "" if self.tty else "\n")

    def finish(self, tally: Tally) -> None:
        if self.stream is not None:
            self._write(tally, "\n")

    def _write(self, tally: Tally, end: str) -> None:
        assert self.stream is not None
        start = "\r\x1b[K" if self.tty else ""  # back to the line's start, and clear it
        self.stream.write(f"{start}replay: {tally.line()}{end}")
        self.stream.flush()


class Rejections:
    """Every rejection in line order: spooled for the summary, and written to the report."""

    def __init__(self, report: TextIO | None = None) -> None:
        self.report = report
        self.spool: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 closed on exit
            max_size=1 << 20, mode="w+", encoding="utf-8"
        )

    def add(self, rejection: Rejection) -> None:
        text = json.dumps(rejection.as_json(), default=str) + "\n"
        self.spool.write(text)
        if self.report is not None:
            self.report.write(text)

    def __iter__(self) -> Iterator[Rejection]:
        self.spool.seek(0)
        for text in self.spool:
            body = json.loads(text)
            yield Rejection(
                body["line"],
                body["http_status"],
                body["reason"],
                body["event_id"],
                body.get("errors"),
            )

    def __enter__(self) -> Rejections:
        return self

    def __exit__(self, *_: object) -> None:
        self.spool.close()


class BulkImport:
    """Applies a stream of read lines ``batch_size`` events at a time through ``apply``
    (the grouped path POST /v1/events/batch uses), tallying each event's outcome."""

    def __init__(
        self, apply: ApplyBatch, batch_size: int, progress: Progress, rejections: Rejections
    ) -> None:
        self.apply, self.batch_size = apply, batch_size
        self.progress, self.rejections = progress, rejections
        self.tally = Tally()

    def run(self, lines: Iterable[tuple[int, Event | Rejection | None]]) -> Tally:
        events: list[tuple[int, Event]] = []
        refused: list[Rejection] = []  # lines of this batch refused before it is applied
        for number, item in lines:
            self.tally.lines = number
            if isinstance(item, Rejection):
                self.tally.rejected += 1
                refused.append(item)
            elif item is not None:
                events.append((number, item))
            # Rejections wait for the events before them, to be listed in line order; a
            # run of them is let go at the batch size, so they never pile up in memory.
            if len(events) >= self.batch_size or len(refused) >= self.batch_size:
                self._apply(events, refused)
                events, refused = [], []
            self.progress.update(self.tally)
        self._apply(events, refused)
        self.progress.finish(self.tally)
        return self.tally

    def _apply(self, events: list[tuple[int, Event]], refused: list[Rejection]) -> None:
        batch = [event for _, event in events]
        outcomes: list[EventOutcome | EventConflict | Exception]
        try:
            outcomes = list(self.apply(batch)) if batch else []
        except Exception as error:
            outcomes = self._one_by_one(batch, error)
        for (number, event), outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, EventOutcome):
                if outcome.status == "applied":
                    self.tally.applied += 1
                else:
                    self.tally.duplicate += 1
                continue
            self.tally.rejected += 1
            status = 409 if isinstance(outcome, EventConflict) else 500
            refused.append(Rejection(number, status, _reason(outcome), event.event_id))
        for rejection in sorted(refused, key=lambda r: r.line):
            self.rejections.add(rejection)

    def _one_by_one(
        self, batch: list[Event], error: Exception
    ) -> list[EventOutcome | EventConflict | Exception]:
        """A batch the apply path raised on: each event alone, so one that cannot be
        applied (an engine error, data the schema let through) is rejected by itself.
        When every one fails, the cause is not in the events (the database went away):
        the import stops."""
        log.warning("a batch of %d events failed; applying them one by one", len(batch))
        outcomes: list[EventOutcome | EventConflict | Exception] = []
        for event in batch:
            try:
                outcomes.append(self.apply([event])[0])
            except Exception as alone:
                log.warning("event %r was not applied", event.event_id, exc_info=True)
                outcomes.append(alone)
        if len(batch) > 1 and all(isinstance(o, Exception) for o in outcomes):
            raise error
        return outcomes


def _reason(outcome: Exception) -> str:
    if isinstance(outcome, EventConflict):
        return str(outcome)
    return f"not applied: {type(outcome).__name__}: {outcome}"
