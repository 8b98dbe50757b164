"""POST /v1/events, /v1/events/batch and /v1/dry-run."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import ValidationError

from service.api import rules_admin
from service.api.auth import require, require_also
from service.api.request_body import json_body
from service.api.schemas import BatchRequest, DryRunFlag, DryRunRequest
from service.application.apply_event import EventOutcome, apply_batch
from service.application.dry_run import dry_run, dry_run_with_files
from service.bootstrap import Services
from service.core.errors import EventConflict
from service.core.events import Event
from service.event_schema import parse_event
from service.observability.web import batch_outcomes

blueprint = Blueprint("events", __name__)
DRY_RUN_FLAG = DryRunFlag()  # schemas are reusable; building one per request cost ~80 µs


def services() -> Services:
    return current_app.extensions["loyalty"]  # type: ignore[no-any-return]


@blueprint.post("/v1/events")
@require("events:write")
def post_event() -> tuple[Response, int]:
    flags = DRY_RUN_FLAG.load(request.args) if request.args else {"dry_run": False}
    event = parse_event(json_body())
    svc = services()
    if flags["dry_run"]:
        return jsonify(dry_run(svc.read_uow, svc.rules.active, event, svc.clock)), 200
    outcome = svc.events.apply(svc.rules.active, event)
    return jsonify(outcome.answer), 201 if outcome.status == "applied" else 200


@blueprint.post("/v1/events/batch")
@require("events:write")
def post_batch() -> tuple[Response, int]:
    body = BatchRequest().load(json_body())
    svc = services()
    results: list[dict[str, Any] | None] = []
    valid: list[tuple[int, Event]] = []
    for raw in body["events"]:
        try:
            valid.append((len(results), parse_event(raw)))
            results.append(None)
        except ValidationError as error:
            results.append(
                {
                    "status": "rejected",
                    "http_status": 422,
                    "errors": error.messages,
                    "event_id": raw.get("event_id") if isinstance(raw, dict) else None,
                }
            )
    outcomes = apply_batch(svc.uow, svc.rules.active, [event for _, event in valid], svc.clock)
    for (position, event), outcome in zip(valid, outcomes, strict=True):
        results[position] = _answer(event, outcome)
    answered = [result for result in results if result is not None]  # every item by now
    batch_outcomes(answered)
    return jsonify({"results": answered}), 200


def _answer(event: Event, outcome: EventOutcome | EventConflict) -> dict[str, Any]:
    if isinstance(outcome, EventConflict):
        return {
            "status": "rejected",
            "http_status": 409,
            "detail": str(outcome),
            "event_id": event.event_id,
        }
    return {**outcome.answer, "http_status": 201 if outcome.status == "applied" else 200}


@blueprint.post("/v1/dry-run")
@require("events:write")
def post_dry_run() -> tuple[Response, int]:
    raw = json_body()
    if rules_admin.is_stored_dry_run(raw):  # {"event_id"} or {"version"}: a stored one
        return jsonify(rules_admin.stored_dry_run(raw)), 200
    body = DryRunRequest().load(raw)
    svc = services()
    if "rules" in body:
        require_also("admin")  # compiling a caller's rule files is an admin's to ask
    event = parse_event(body["event"])
    customer = body.get("customer")
    if "rules" not in body:
        return jsonify(dry_run(svc.read_uow, svc.rules.active, event, svc.clock, customer)), 200
    check = rules_admin.sent_rules_check(svc.settings)
    answer = dry_run_with_files(
        svc.read_uow, svc.rules, body["rules"], check, event, svc.clock, customer
    )
    return jsonify(answer), 200
