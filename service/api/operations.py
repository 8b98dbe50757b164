"""Health, readiness and the active rules."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from service.api.auth import require
from service.api.events import services
from service.application.budgets import budgets_view
from service.core.evaluation import ordered
from service.rules.matchers import engine_in_use

blueprint = Blueprint("operations", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    svc = services()
    checks: dict[str, Any] = {"rules": svc.rules.loaded}
    try:
        with svc.db.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as error:
        checks["database"] = False
        checks["database_error"] = type(error).__name__
    ready = checks["rules"] and checks["database"]
    engine, note = engine_in_use(svc.settings.engine)
    answer: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "engine": engine,
    }
    if note is not None:
        answer["engine_note"] = note
    return jsonify(answer), 200 if ready else 503


@blueprint.get("/v1/rules")
@require("customers:read")
def get_rules() -> Response:
    svc = services()
    active = svc.rules.active
    ruleset = active.ruleset
    budgets = budgets_view(svc.read_uow, active)
    return jsonify(
        {
            "version": ruleset.version,
            "engine": engine_in_use(svc.settings.engine)[0],
            "programme": ruleset.programme.id,
            "currency": ruleset.programme.currency,
            "timezone": ruleset.programme.timezone,
            "files": sorted(ruleset.files),
            "campaigns": [
                {
                    "id": c.id,
                    "description": c.description,
                    "priority": c.priority,
                    "active": {
                        "from": c.active_from.isoformat() if c.active_from else None,
                        "until": c.active_until.isoformat() if c.active_until else None,
                    },
                    "budget": budgets.get(c.id),
                    "rules": [r.name for r in c.rules],
                }
                for c in ordered(ruleset.campaigns)
            ],
        }
    )
