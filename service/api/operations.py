"""Health, readiness and the active rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from service.api.answers import HealthSchema, ReadinessSchema, RulesViewSchema
from service.api.auth import require
from service.api.context import services
from service.api.contract import PROBLEM_TITLES, Blueprint
from service.application.queries import rules_view
from service.rules.matchers import engine_in_use

blueprint = Blueprint("operations", __name__)


@blueprint.get("/healthz")
@blueprint.response(200, HealthSchema())
def healthz() -> Any:
    """Alive"""
    return {"status": "ok"}


@blueprint.get("/readyz")
@blueprint.response(200, ReadinessSchema())
@blueprint.alt_response(503, schema=ReadinessSchema(), description=PROBLEM_TITLES[503])
def readyz() -> Any:
    """Ready: the database answers and rules are loaded"""
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
    readiness = {"status": "ready" if ready else "not ready", "checks": checks, "engine": engine}
    if note is not None:
        readiness["engine_note"] = note
    return readiness, 200 if ready else 503


@blueprint.get("/v1/rules")
@require("customers:read")
@blueprint.response(200, RulesViewSchema())
def get_rules() -> Any:
    """The active rules version, its files and campaigns

    Each campaign's `budget` has one entry per kind its file declares (`points`,
    `offers`, `share_of_revenue`) with its limit, what is used (0 for a budget never
    spent) and what is left.
    """
    svc = services()
    return rules_view(svc.read_uow, svc.rules.active, engine_in_use(svc.settings.engine)[0])
