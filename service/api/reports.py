"""The programme's measures (KPIs) over a period and its points liability in money."""

from __future__ import annotations

from typing import Any

from service.api.auth import require
from service.api.context import services
from service.api.contract import PROBLEM_JSON, Blueprint
from service.api.openapi_fields import ref
from service.application.reports import kpi_report, liability_report, local_today
from service.report_schema import (
    KpiQuery,
    KpiReportSchema,
    LiabilityQuery,
    LiabilityReportSchema,
)
from service.storage.report_store import report_reads

blueprint = Blueprint("reports", __name__)
NO_CAMPAIGN = {
    "description": "the campaign asked for is neither in the rules nor among the awards",
    "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
}


@blueprint.get("/v1/reports/kpis")
@require("reports:read")
@blueprint.arguments(KpiQuery(), location="query")
@blueprint.response(200, KpiReportSchema())
@blueprint.doc(responses={404: NO_CAMPAIGN})
def get_kpis(query: dict[str, Any]) -> Any:
    """The programme's measures over the days [from, to) in its time zone

    Members (total, new, active), points (issued, redeemed, expired, clawed back,
    outstanding at `to`), redemption and breakage rates, orders, referrals, members by
    tier at `to`, and each campaign's points, members, cost and budget used; the README's
    "Measuring the programme" defines each. `campaign` lists that campaign alone (404 if
    it is neither in the rules nor among the period's awards).
    """
    svc = services()
    return kpi_report(
        report_reads(svc.db),
        svc.rules.active.ruleset,
        query["from_date"],
        query["to_date"],
        query.get("campaign"),
    )


@blueprint.get("/v1/reports/liability")
@require("reports:read")
@blueprint.arguments(LiabilityQuery(), location="query")
@blueprint.response(200, LiabilityReportSchema())
def get_liability(query: dict[str, Any]) -> Any:
    """Outstanding points valued in money at the end of a day, by month of expiry

    The lots as they stood at the end of `as_of` (default today, in the programme's time
    zone): a past date gives that date's figure whatever came later.
    """
    svc = services()
    programme = svc.rules.active.ruleset.programme
    day = query.get("as_of") or local_today(svc.clock(), programme.timezone)
    return liability_report(report_reads(svc.db), programme, day)
