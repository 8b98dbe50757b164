"""POST /v1/events, /v1/events/batch and /v1/dry-run."""

from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import ValidationError

from service.api import rules_admin
from service.api.auth import require, require_also
from service.api.context import services
from service.api.contract import BODY_PROBLEMS, Blueprint, dumped, json_body_of, problems
from service.api.openapi_fields import ref
from service.api.request_body import json_body
from service.api.schemas import (
    BatchRequest,
    BatchResultSchema,
    DryRunFlag,
    DryRunRequest,
    DryRunResultSchema,
    EventResultSchema,
    StoredDryRunRequest,
)
from service.application.apply_event import EventOutcome, apply_batch
from service.application.dry_run import dry_run, dry_run_with_files
from service.core.errors import EventConflict
from service.core.events import Event
from service.event_schema import parse_event
from service.observability.web import count_event, event_type_of, note_event_type

blueprint = Blueprint("events", __name__)
DRY_RUN_RESULT = DryRunResultSchema()


@blueprint.post("/v1/events", tags=["events"])
@require("events:write")
@blueprint.arguments(DryRunFlag(), location="query")
@blueprint.response(201, EventResultSchema)
@blueprint.alt_response(
    200, schema={"oneOf": [ref("EventResult"), ref("DryRunResult")]}, success=True
)
@blueprint.doc(requestBody=json_body_of(ref("Event")), responses=problems(*BODY_PROBLEMS, 409, 503))
def post_event(flags: dict[str, bool]) -> Any:
    """Apply one event (or evaluate it only, with ?dry_run=true)

    201 when applied; 200 with `status: duplicate` for an event_id seen before with the
    same body (nothing changes), or the dry-run answer with `?dry_run=true`; 409 for a
    seen event_id with another body; 503 with `Retry-After` when the database cannot be
    reached even on a fresh connection.
    """
    raw = json_body()
    note_event_type(raw)
    event = parse_event(raw)
    svc = services()
    if flags["dry_run"]:
        answer = dry_run(svc.read_uow, svc.rules.active, event, svc.clock)
        count_event(event.type, "dry_run")
        return dumped(DRY_RUN_RESULT, answer)
    outcome = svc.events.apply(svc.rules.active, event)
    count_event(event.type, outcome.status)
    return outcome.answer, 201 if outcome.status == "applied" else 200


@blueprint.post("/v1/events/batch", tags=["events"])
@require("events:write")
@blueprint.arguments(BatchRequest())
@blueprint.response(200, BatchResultSchema)
@blueprint.doc(responses=problems(*BODY_PROBLEMS, 503))
def post_batch(body: dict[str, Any]) -> dict[str, Any]:
    """Apply up to 1,000 events, each on its own

    Each event is validated and applied or rejected on its own; the answer holds one
    result per event, in order.
    """
    svc = services()
    results: list[dict[str, Any] | None] = []
    valid: list[tuple[int, Event]] = []
    for raw in body["events"]:
        try:
            valid.append((len(results), parse_event(raw)))
            results.append(None)
        except ValidationError as error:
            count_event(event_type_of(raw), "rejected")
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            results.append(_rejected(422, event_id, errors=error.messages))
    outcomes = apply_batch(svc.uow, svc.rules.active, [event for _, event in valid], svc.clock)
    for (position, event), outcome in zip(valid, outcomes, strict=True):
        results[position] = _result(event, outcome)
        count_event(
            event.type, "conflict" if isinstance(outcome, EventConflict) else outcome.status
        )
    answered = [result for result in results if result is not None]  # every item by now
    return {"results": answered}


def _result(event: Event, outcome: EventOutcome | EventConflict) -> dict[str, Any]:
    if isinstance(outcome, EventConflict):
        return _rejected(409, event.event_id, detail=str(outcome))
    return {**outcome.answer, "http_status": 201 if outcome.status == "applied" else 200}


def _rejected(http_status: int, event_id: Any, **why: Any) -> dict[str, Any]:
    return {"status": "rejected", "http_status": http_status, **why, "event_id": event_id}


@blueprint.post("/v1/dry-run", tags=["events"])
@require("events:write")
@blueprint.response(200, {"oneOf": [ref("DryRunResult"), ref("ReplayResult")]})
@blueprint.doc(
    requestBody=json_body_of({"anyOf": [ref("DryRunRequest"), ref("StoredDryRunRequest")]}),
    responses=problems(*BODY_PROBLEMS, 404),
)
def post_dry_run() -> Response:
    """Evaluate an event against the live rules, rule files sent along, or a stored
    version; or replay a stored event

    `{event, customer?, rules?}` evaluates an event (against the files in `rules` if
    sent: that needs the `admin` scope too, and the files are checked in a child process
    under LOYALTY_RULES_COMPILE_TIMEOUT and LOYALTY_RULES_COMPILE_MEMORY, 422 when over);
    `{event, version, customer?}` against a stored rules version; `{event_id, version?,
    customer?}` replays a stored event. Nothing is written.
    """
    raw = json_body()
    if StoredDryRunRequest.asked(raw):  # {"event_id"} or {"version"}: a stored one
        return rules_admin.stored_dry_run(raw)
    body = DryRunRequest().load(raw)
    svc = services()
    if "rules" in body:
        require_also("admin")  # compiling a caller's rule files is an admin's to ask
    event = parse_event(body["event"])
    customer = body.get("customer")
    if "rules" not in body:
        answer = dry_run(svc.read_uow, svc.rules.active, event, svc.clock, customer)
        return dumped(DRY_RUN_RESULT, answer)
    check = rules_admin.sent_rules_check(svc.settings)
    answer = dry_run_with_files(
        svc.read_uow, svc.rules, body["rules"], check, event, svc.clock, customer
    )
    return dumped(DRY_RUN_RESULT, answer)
