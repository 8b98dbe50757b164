"""What each campaign budget allows, has used and has left, for GET /v1/rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from service.application.ports import UnitOfWorkFactory
from service.application.rules_runtime import ActiveRules
from service.core.evaluation import BudgetUse
from service.core.programme import Budget


def budgets_view(uow_factory: UnitOfWorkFactory, rules: ActiveRules) -> dict[str, dict[str, Any]]:
    """Each budgeted campaign's budget by kind; a budget never spent has used nothing."""
    if not rules.budgeted:
        return {}
    with uow_factory() as uow:
        used = uow.store.budgets_used(rules.budgeted)
    return {
        campaign.id: budget_view(campaign.budget, used.get(campaign.id, BudgetUse()))
        for campaign in rules.ruleset.campaigns
        if campaign.budget is not None
    }


def budget_view(budget: Budget, used: BudgetUse) -> dict[str, Any]:
    """One entry per kind the campaign file declares (``points``, ``offers``,
    ``share_of_revenue``), each with its limit, what is used and what is left."""
    view: dict[str, Any] = {}
    if budget.points is not None:
        view["points"] = _count(budget.points, used.points)
    if budget.offers is not None:
        view["offers"] = _count(budget.offers, used.offers)
    if budget.share_of_revenue is not None:
        # The points allowed grow with the revenue of the purchases the campaign rewarded.
        allowed = int(budget.share_of_revenue * used.revenue)
        view["share_of_revenue"] = {
            "limit": _text(budget.share_of_revenue),
            "revenue": _text(used.revenue),
            "used": used.points,
            "left": max(allowed - used.points, 0),
        }
    return view


def _count(limit: int, used: int) -> dict[str, int]:
    # A limit lowered below what was already used leaves nothing, never a negative.
    return {"limit": limit, "used": used, "left": max(limit - used, 0)}


def _text(amount: Decimal) -> str:
    return format(amount.normalize(), "f")
