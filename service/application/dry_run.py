"""Evaluating an event without writing anything: effects plus the trace of every rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.application.apply_event import Clock, UnitOfWorkFactory
from service.application.gather import Gathered, decide, gather
from service.application.ports import MemberRecord, Posting
from service.application.posting import post_clawback
from service.application.rules_runtime import ActiveRules, RulesRuntime
from service.core.effects import Effect, Evaluation
from service.core.evaluation import evaluate
from service.core.events import Event
from service.rules.cases import snapshot_from


def dry_run(
    uow_factory: UnitOfWorkFactory,
    rules: ActiveRules,
    event: Event,
    clock: Clock,
    customer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """For a real member (their stored state) or a hypothetical one (``customer`` fields)."""
    with uow_factory() as uow:
        store = uow.store
        if customer is not None:
            snapshot = snapshot_from(customer, event.customer_id, event.occurred_at)
            evaluation = evaluate(rules.ruleset, rules.matcher, snapshot, event, explain=True)
            return _answer(event, evaluation, list(evaluation.effects), "hypothetical")
        member = store.read_member(event.customer_id)
        known = member is not None
        member = member or MemberRecord(event.customer_id, first_seen_at=clock())
        gathered: Gathered = gather(store, rules, event, member)
        budgets = store.budgets_used(rules.budgeted) if rules.budgeted else {}
        evaluation = decide(rules, gathered, event, budgets, explain=True)
        effects: list[Effect] = list(evaluation.effects)
        if event.type == "refund" and event.order_id is not None and known:
            order = store.find_order(event.customer_id, event.order_id)
            forgive = rules.ruleset.programme.points.shortfall == "forgive"
            clawback = post_clawback(
                Posting(member), event, order, store.lots(event.customer_id), forgive=forgive
            )
            if clawback is not None:
                effects.append(clawback)
        return _answer(event, evaluation, effects, "stored" if known else "new")


def dry_run_with_files(
    uow_factory: UnitOfWorkFactory,
    runtime: RulesRuntime,
    files: Mapping[str, str],
    check: Callable[[Mapping[str, str]], object],
    event: Event,
    clock: Clock,
    customer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A dry run against rule files sent by the caller. ``check`` vets them first (in a
    child process under time and memory limits, raising RuleFileError); only files that
    passed are compiled here, and only for this call."""
    check(files)
    with runtime.temporary(files) as rules:
        return dry_run(uow_factory, rules, event, clock, customer)


def _answer(
    event: Event, evaluation: Evaluation, effects: list[Effect], customer: str
) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "dry_run": True,
        "customer_state": customer,
        "effects": [effect.as_dict() for effect in effects],
        "points": sum(getattr(e, "points", 0) for e in effects if e.type == "award_points"),
        "trace": [entry.as_dict() for entry in evaluation.trace],
        "rules_version": evaluation.rules_version,
        "engine": evaluation.engine,
    }
