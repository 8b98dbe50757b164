"""`loyalty replay FILE`: bulk import of past events through the grouped apply path, on
SQLite and PostgreSQL, answering each line as POST /v1/events would answer it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.application.apply_event import EventOutcome
from service.bootstrap import Services
from service.cli import main
from service.commands.bulk_import import BulkImport, Progress, Rejection, Rejections, read_lines
from service.commands.replay import import_events
from service.core.errors import EventConflict
from service.core.events import Event
from tests.conftest import AUTH, RULES_DIR
from tests.databases import empty_tables, row_counts, sqlite_database
from tests.service.helpers import (
    SATURDAY,
    activity,
    assert_balanced,
    ledger_rows,
    member_row,
    purchase,
    refund,
)

LOYALTY = Path(sys.executable).with_name("loyalty")


def history() -> tuple[list[str], dict[str, Any]]:
    """A file's lines with one of each kind of line, and what each should come to."""
    ann, bob = purchase("ann", "120.00"), purchase("bob", "50")
    lines = [
        json.dumps(ann),
        json.dumps(bob),
        '{"event_id": "broken", "type": ',
        "",
        json.dumps(purchase("bob", "-1")),
        json.dumps({**ann, "amount": 120}),  # the same event written another way
        json.dumps({**bob, "amount": "51"}),  # its event_id again, with another body
        json.dumps(refund("ann", ann["order_id"], "20")),
        json.dumps(activity("bob", "review", SATURDAY)),
    ]
    expected = {
        "statuses": {1: 201, 2: 201, 3: 400, 5: 422, 6: 200, 7: 409, 8: 201, 9: 201},
        "summary": "replayed history.jsonl: 4 applied, 1 duplicate, 3 rejected (9 lines)",
        "conflict": bob["event_id"],
    }
    return lines, expected


def encoded(lines: Sequence[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def replay(
    services: Services, data: bytes, *, batch: int = 500, report: io.StringIO | None = None
) -> tuple[int, str]:
    out = io.StringIO()
    code = import_events(
        services, io.BytesIO(data), "history.jsonl", batch=batch, report=report, out=out
    )
    return code, out.getvalue()


def snapshot(services: Services, customers: Sequence[str]) -> dict[str, Any]:
    """What the members came to, without row ids, times of writing and the random referral
    code; and the rows of every table but the rules' (the app records its activation)."""
    rows = row_counts(services.db)
    found: dict[str, Any] = {"rows": {t: n for t, n in rows.items() if not t.startswith("rules_")}}
    for customer in customers:
        member = member_row(services.db, customer)
        assert member is not None
        member.pop("referral_code")
        ledger = [
            {k: v for k, v in row.items() if k not in ("id", "lot_id", "recorded_at")}
            for row in ledger_rows(services.db, customer)
        ]
        found[customer] = (assert_balanced(services.db, customer), member, ledger)
    return found


@pytest.mark.parametrize("batch", [2, 500])
def test_each_line_is_applied_or_rejected_by_number_as_posting_it_would_answer(
    services: Services, client: FlaskClient, batch: int
) -> None:
    lines, expected = history()
    report = io.StringIO()

    code, summary = replay(services, encoded(lines), batch=batch, report=report)

    assert code == 1
    assert summary.splitlines()[-1] == expected["summary"]
    rejected = [json.loads(line) for line in report.getvalue().splitlines()]
    assert [(r["line"], r["http_status"]) for r in rejected] == [(3, 400), (5, 422), (7, 409)]
    assert rejected[0]["reason"].startswith("not valid JSON: ")
    assert rejected[1]["errors"] == {"amount": ["must be between 0 and 100000000"]}
    assert rejected[2]["event_id"] == expected["conflict"]
    assert summary.splitlines()[:3] == [
        f"history.jsonl:3: {rejected[0]['reason']} (400)",
        "history.jsonl:5: amount: must be between 0 and 100000000 (422)",
        f"history.jsonl:7: {rejected[2]['reason']} (409)",
    ]
    imported = snapshot(services, ["ann", "bob"])

    # The same lines, posted one by one to a database as empty as the import found it.
    empty_tables(services.db)
    services.reload_rules()
    statuses = {}
    for number, line in enumerate(lines, start=1):
        if line:
            response = client.post(
                "/v1/events", data=line, headers=AUTH, content_type="application/json"
            )
            statuses[number] = response.status_code
    assert statuses == expected["statuses"]
    assert snapshot(services, ["ann", "bob"]) == imported


def test_a_second_run_finds_every_line_a_duplicate_and_changes_nothing(
    services: Services,
) -> None:
    lines = [json.dumps(purchase(f"m-{n % 3}", str(10 + n))) for n in range(7)]
    assert replay(services, encoded(lines), batch=3)[0] == 0
    before = row_counts(services.db)

    code, summary = replay(services, encoded(lines), batch=3)

    assert code == 0
    assert summary == "replayed history.jsonl: 0 applied, 7 duplicate, 0 rejected (7 lines)\n"
    assert row_counts(services.db) == before


def test_a_dash_reads_the_events_from_standard_input(
    services: Services,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = [json.dumps(purchase("sid", "30")), "not json"]
    monkeypatch.setenv("LOYALTY_DATABASE_URL", database_url)
    monkeypatch.setenv("LOYALTY_RULES_DIR", str(RULES_DIR))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(encoded(lines))))

    code = main(["replay", "-", "--quiet"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == [
        "<stdin>:2: not valid JSON: Expecting value at column 1 (400)",
        "replayed <stdin>: 1 applied, 0 duplicate, 1 rejected (2 lines)",
    ]
    assert captured.err == ""  # --quiet: no progress
    assert assert_balanced(services.db, "sid")["available"] == 30


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO, Terminal])
def test_progress_is_shown_while_the_import_runs(
    services: Services, stream: type[io.StringIO]
) -> None:
    lines = [json.dumps(purchase(f"p-{n}", "10")) for n in range(5)] + ["[]"]
    progress = stream()

    import_events(
        services,
        io.BytesIO(encoded(lines)),
        "history.jsonl",
        batch=2,
        progress=progress,
        progress_every=0,  # every line, instead of a few times a second
        out=io.StringIO(),
    )

    text = progress.getvalue()
    updates = text.split("\r\x1b[K")[1:] if stream is Terminal else text.splitlines()
    assert len(updates) >= 3
    assert (
        updates[-1]
        .rstrip("\n")
        .startswith("replay: 6 lines read, 5 applied, 0 duplicate, 1 rejected, ")
    )
    assert updates[-1].rstrip("\n").endswith(" events/s")
    assert text.endswith("\n")


def test_an_event_that_cannot_be_applied_is_rejected_alone() -> None:
    # The apply path raises for a whole batch; each event is then tried alone.
    def apply(events: Sequence[Event]) -> list[EventOutcome | EventConflict]:
        if any(event.customer_id == "bad" for event in events):
            raise RuntimeError("the engine failed on this event")
        return [EventOutcome("applied", {}) for _ in events]

    lines = [json.dumps(purchase(who, "10")) for who in ("a", "bad", "c")]
    with Rejections() as rejections:
        tally = BulkImport(apply, 500, Progress(None), rejections).run(
            read_lines(encoded(lines).splitlines(keepends=True))
        )
        found = list(rejections)
    assert (tally.applied, tally.duplicate, tally.rejected) == (2, 0, 1)
    assert [(r.line, r.http_status) for r in found] == [(2, 500)]
    assert found[0].reason == "not applied: RuntimeError: the engine failed on this event"


def test_a_batch_where_every_event_fails_stops_the_import() -> None:
    def apply(events: Sequence[Event]) -> list[EventOutcome | EventConflict]:
        raise ConnectionError("the database went away")

    lines = [json.dumps(purchase(who, "10")) for who in ("a", "b")]
    with Rejections() as rejections, pytest.raises(ConnectionError):
        BulkImport(apply, 500, Progress(None), rejections).run(
            read_lines(encoded(lines).splitlines(keepends=True))
        )


def test_the_loyalty_command_imports_a_file_into_sqlite(tmp_path: Path) -> None:
    lines, _ = history()
    events = tmp_path / "history.jsonl"
    events.write_bytes(encoded(lines))
    report = tmp_path / "rejected.jsonl"
    with sqlite_database(str(tmp_path)) as database_url:
        env = {
            **os.environ,
            "LOYALTY_DATABASE_URL": database_url,
            "LOYALTY_RULES_DIR": str(RULES_DIR),
        }
        command = [str(LOYALTY), "replay", str(events), "--report", str(report)]

        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        missing = subprocess.run(
            [str(LOYALTY), "replay", str(tmp_path / "missing.jsonl")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert first.returncode == 1, first.stderr
    assert first.stdout.splitlines()[-1] == (
        f"replayed {events}: 4 applied, 1 duplicate, 3 rejected (9 lines)"
    )
    assert "replay: 9 lines read, 4 applied, 1 duplicate, 3 rejected, " in first.stderr
    assert [json.loads(line)["line"] for line in report.read_text().splitlines()] == [3, 5, 7]
    assert second.returncode == 1, second.stderr
    # Lines 1, 2, 6, 8 and 9 are duplicates now; line 7 still reuses an event_id.
    assert second.stdout.splitlines()[-1] == (
        f"replayed {events}: 0 applied, 5 duplicate, 3 rejected (9 lines)"
    )
    assert missing.returncode == 2
    assert "No such file or directory" in missing.stderr


def test_a_long_run_of_rejected_lines_is_let_go_at_the_batch_size() -> None:
    # Rejections wait for the events before them (to be listed in line order), but not
    # for a whole file of rejections: memory stays that of a batch.
    listed_by_line: dict[int, int] = {}

    class Counted(Rejections):
        def add(self, rejection: Rejection) -> None:
            super().add(rejection)
            listed_by_line[rejection.line] = tally.lines

    lines = ["[]"] * 7 + [json.dumps(purchase("z", "10"))]
    with Counted() as rejections:
        importer = BulkImport(
            lambda events: [EventOutcome("applied", {}) for _ in events],
            2,
            Progress(None),
            rejections,
        )
        tally = importer.tally
        importer.run(read_lines(encoded(lines).splitlines(keepends=True)))
    assert listed_by_line == {1: 2, 2: 2, 3: 4, 4: 4, 5: 6, 6: 6, 7: 8}
