"""Why did (or didn't) a member get points? Ledger entries explained, and stored events
replayed against the live version or any stored one. Both answer records of domain values
(stored rows, snapshots, the core's effect and trace records) for the edge to dump.

The member's state at the time comes from the trace stored with the event when there is
one (exactly what evaluation read); otherwise it is rebuilt from the tables as they stood
before the event (``LoyaltyStore.history_before``), and the answer says so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.application.event_source import event_from_json
from service.application.ports import (
    EventTrace,
    LedgerRow,
    MemberHistory,
    MemberRecord,
    StoredEvent,
    UnitOfWork,
)
from service.application.rules_runtime import ActiveRules, RulesRuntime
from service.application.traces import budgets_from_json, snapshot_from_json
from service.core.customer import CustomerSnapshot
from service.core.errors import NotFound
from service.core.evaluation import BudgetUse, evaluate
from service.core.events import Event
from service.core.programme import Programme, RuleSet
from service.rules.cases import snapshot_from
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher
from service.rules.snippets import campaign_header, rule_text

UnitOfWorkFactory = Callable[[], UnitOfWork]
RECORDED, RECONSTRUCTED, HYPOTHETICAL = "recorded", "reconstructed", "hypothetical"


class StoredVersions:
    """Rules versions from the database, compiled for the reference engine, a few kept."""

    def __init__(self, runtime: RulesRuntime, keep: int = 8) -> None:
        self._runtime = runtime
        self._keep = keep
        self._cache: OrderedDict[str, ActiveRules] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uow_factory: UnitOfWorkFactory, version: str) -> ActiveRules:
        known = self._known(version)
        if known is not None:
            return known
        with uow_factory() as uow:
            files = uow.store.rules_version_files(version)
        if files is None:
            raise NotFound(f"no stored rules version {version!r}")
        return self.compiled(version, files)

    def _known(self, version: str) -> ActiveRules | None:
        active = self._runtime.active
        if version == active.version:
            return active
        with self._lock:
            if version in self._cache:
                self._cache.move_to_end(version)
                return self._cache[version]
        return None

    def compiled(self, version: str, files: Mapping[str, str]) -> ActiveRules:
        known = self._known(version)
        if known is not None:
            return known
        loaded = load_rules(files)
        rules = ActiveRules(loaded.ruleset, ReferenceMatcher(loaded.ruleset.rules), loaded.cases)
        with self._lock:
            self._cache[version] = rules
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        return rules


def snapshot_from_history(
    history: MemberHistory,
    member: MemberRecord | None,
    event: Event,
    programme: Programme,
) -> CustomerSnapshot:
    """The member as the tables knew them before the event (profile fields as they are now)."""
    at = event.occurred_at
    kept = [(t, amount - refunded) for t, amount, refunded in history.orders if refunded < amount]
    tiers, rfm = programme.tiers, programme.rfm

    def within(since: datetime) -> tuple[Decimal, int]:
        inside = [net for t, net in kept if since < t <= at]
        return sum(inside, Decimal(0)), len(inside)

    recent_spend, recent_orders = within(at - rfm.window)
    if tiers.metric == "points":
        since = at - tiers.window
        tier_value = Decimal(sum(p for t, p in history.earned if since < t <= at))
    else:
        spend, count = within(at - tiers.window)
        tier_value = Decimal(count) if tiers.metric == "orders" else spend
    enrolled = member.enrolled_at if member is not None else None
    return CustomerSnapshot(
        customer_id=event.customer_id,
        tier=history.tier,
        points_available=max(history.points_available, 0),
        lifetime_spend=sum((net for _, net in kept), Decimal(0)),
        order_count=len(kept),
        last_purchase_at=max((t for t, _ in kept), default=None),
        enrolled_at=enrolled if enrolled is not None and enrolled < at else None,
        birthday=member.birthday if member else None,
        timezone=member.timezone if member else None,
        tags=frozenset(member.tags) if member else frozenset(),
        is_new=history.events_before == 0,
        rule_firings=history.firings,
        tier_value=tier_value,
        recent_orders=recent_orders,
        recent_spend=recent_spend,
        referred_by=member.referred_by if member and history.events_before else None,
    )


def _state_at_event(
    store: Any, stored: StoredEvent, event: Event, programme: Programme
) -> tuple[CustomerSnapshot, Mapping[str, BudgetUse], str, EventTrace | None]:
    trace = store.event_trace(stored.event_id)
    if trace is not None:
        return snapshot_from_json(trace.snapshot), budgets_from_json(trace.budgets), RECORDED, trace
    history = store.history_before(stored)
    member = store.read_member(stored.customer_id)
    return snapshot_from_history(history, member, event, programme), {}, RECONSTRUCTED, None


def replay_stored_event(
    uow_factory: UnitOfWorkFactory,
    rules: ActiveRules,
    event_id: str,
    customer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A stored event evaluated again (nothing written): against ``rules``, for the member
    as they were then, or for a hypothetical member."""
    with uow_factory() as uow:
        stored = uow.store.find_event(event_id)
        if stored is None:
            raise NotFound(f"no stored event {event_id!r}")
        event = event_from_json(stored.payload)
        if customer is not None:
            snapshot = snapshot_from(customer, event.customer_id, event.occurred_at)
            budgets: Mapping[str, BudgetUse] = {}
            state = HYPOTHETICAL
        else:
            programme = rules.ruleset.programme
            snapshot, budgets, state, _ = _state_at_event(uow.store, stored, event, programme)
    evaluation = evaluate(
        rules.ruleset, rules.matcher, snapshot, event, budgets_used=budgets, explain=True
    )
    return {
        "event_id": event.event_id,
        "dry_run": True,
        "replayed": True,
        "customer_state": state,
        "effects": [effect.as_dict() for effect in evaluation.effects],
        "points": evaluation.points,
        "trace": [entry.as_dict() for entry in evaluation.trace],
        "rules_version": evaluation.rules_version,
        "engine": evaluation.engine,
        "recorded": {
            "rules_version": stored.rules_version,
            "effects": stored.result.get("effects", []),
        },
    }


def explain_ledger_entry(
    uow_factory: UnitOfWorkFactory, versions: StoredVersions, customer_id: str, entry_id: int
) -> dict[str, Any]:
    """The entry, the rule text that produced it, and the trace of the evaluation."""
    with uow_factory() as uow:
        store = uow.store
        row = store.ledger_entry(customer_id, entry_id)
        if row is None:
            raise NotFound(f"no ledger entry {entry_id} for member {customer_id!r}")
        stored = store.find_event(row.event_id) if row.event_id else None
        files = store.rules_version_files(row.rules_version) if row.rules_version else None
        activations = [a for a in store.rules_activations(50) if a.version == row.rules_version]
    answer: dict[str, Any] = {
        "entry": row,
        "event": stored.payload if stored is not None else None,
        "rules_version": {
            "version": row.rules_version,
            "stored": files is not None,
            "active": activations,
        },
        "campaign": None,
        "rule": None,
        "trace": [],
        "trace_source": None,
        "customer": None,
    }
    if files is None or row.rules_version is None:
        return answer
    rules = versions.compiled(row.rules_version, files)
    _describe_rule(answer, rules.ruleset, row)
    if stored is None:
        return answer
    event = event_from_json(stored.payload)
    with uow_factory() as uow:
        snapshot, budgets, state, trace = _state_at_event(
            uow.store, stored, event, rules.ruleset.programme
        )
    # Evaluated again with explain=True from the state the service read, so the trace also
    # says why each rule that did not match did not.
    evaluation = evaluate(
        rules.ruleset, rules.matcher, snapshot, event, budgets_used=budgets, explain=True
    )
    answer["trace"] = [entry.as_dict() for entry in evaluation.trace]
    answer["effects"] = [effect.as_dict() for effect in evaluation.effects]
    if trace is not None:
        answer["recorded_trace"] = trace.trace
        answer["engine"] = trace.engine
    answer["trace_source"] = state
    answer["customer"] = snapshot
    if row.campaign is not None:
        answer["rule_trace"] = [
            t for t in answer["trace"] if t["campaign"] == row.campaign and t["rule"] == row.rule
        ]
    return answer


def _describe_rule(answer: dict[str, Any], ruleset: RuleSet, row: LedgerRow) -> None:
    campaign = ruleset.campaign(row.campaign) if row.campaign else None
    if campaign is None:
        return
    answer["campaign"] = {
        "id": campaign.id,
        "file": campaign.file,
        "line": campaign.line,
        "text": campaign_header(ruleset.files, campaign),
    }
    rule = next((r for r in campaign.rules if r.name == row.rule), None)
    if rule is not None:
        answer["rule"] = {
            "name": rule.name,
            "file": rule.file,
            "line": rule.line,
            "text": rule_text(ruleset.files, rule),
        }
