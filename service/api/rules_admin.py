"""Rules versions over HTTP: reload (admin), the stored versions, ledger explanations, and
dry runs of stored events or against stored versions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from flask import Response

from service.api.answers import (
    LedgerEntryExplanation,
    ReloadAnswer,
    VersionAnswer,
    VersionsAnswer,
)
from service.api.auth import require
from service.api.context import rules_sync, services, stored_versions
from service.api.contract import Blueprint, dumped, problems
from service.api.schemas import DryRunResultSchema, ReplayResultSchema, StoredDryRunRequest
from service.application.dry_run import dry_run
from service.application.explain import explain_ledger_entry, replay_stored_event
from service.event_schema import parse_event
from service.rules.channel_check import unconfigured_channels
from service.rules.lint import Finding
from service.rules.matchers import engine_in_use
from service.rules.sandbox import CompileLimits, check_in_child
from service.settings import Settings

log = logging.getLogger("loyalty.rules")

blueprint = Blueprint("rules_admin", __name__)
STORED_DRY_RUN = StoredDryRunRequest()
REPLAY_RESULT = ReplayResultSchema()
DRY_RUN_RESULT = DryRunResultSchema()


def stored_dry_run(body: Any) -> Response:
    """The dry-run branch for ``{"event_id"}`` and ``{"version"}`` bodies."""
    request = STORED_DRY_RUN.load(body)
    svc = services()
    rules = (
        stored_versions().get(svc.read_uow, request["version"])
        if "version" in request
        else svc.rules.active
    )
    if "event_id" in request:
        replayed = replay_stored_event(
            svc.read_uow, rules, request["event_id"], request.get("customer")
        )
        return dumped(REPLAY_RESULT, replayed)
    event = parse_event(request["event"])
    return dumped(
        DRY_RUN_RESULT, dry_run(svc.read_uow, rules, event, svc.clock, request.get("customer"))
    )


@blueprint.post("/v1/rules/reload", tags=["rules"])
@require("admin")
@blueprint.response(200, ReloadAnswer())
@blueprint.doc(responses=problems(422))
def post_reload() -> Any:
    """Load LOYALTY_RULES_DIR and make it the active version for every worker

    A version that fails to load answers 422 with each problem's file and line, and the
    active version stays.
    """
    svc = services()
    settings = svc.settings

    def vet(files: Mapping[str, str], now: datetime) -> tuple[Finding, ...]:
        return check_in_child(
            files,
            compile_limits(settings),
            # Where durable-rules cannot load, the reference serves: no engine to compare.
            engine=engine_in_use(settings.engine)[0],
            now=now,
            where=settings.rules_dir,
        )

    reloaded = rules_sync().reload(settings.rules_dir, vet=vet)
    ruleset = svc.rules.active.ruleset
    if ruleset.version == reloaded.version:
        # What this installation cannot deliver, said with the lint warnings.
        undeliverable = unconfigured_channels(ruleset, settings.messaging.channel_names())
        for finding in undeliverable:
            log.warning("rules version %s: %s", ruleset.version, finding.format())
        reloaded = replace(reloaded, warnings=(*reloaded.warnings, *undeliverable))
    return reloaded


def compile_limits(settings: Settings) -> CompileLimits:
    return CompileLimits(settings.rules_compile_timeout, settings.rules_compile_memory_mib)


def sent_rules_check(settings: Settings) -> Callable[[Mapping[str, str]], object]:
    """How a dry run's rule files are vetted: loaded and compiled in a child process."""
    return partial(check_in_child, limits=compile_limits(settings), engine=settings.engine)


@blueprint.get("/v1/rules/versions", tags=["rules"])
@require("admin")
@blueprint.response(200, VersionsAnswer())
def get_versions() -> Any:
    """The active version and the history of activations"""
    svc = services()
    with svc.read_uow() as uow:
        activations = uow.store.rules_activations(100)
    return {"active": svc.rules.active.version, "activations": activations}


@blueprint.get("/v1/rules/versions/<id:version>", tags=["rules"])
@require("admin")
@blueprint.response(200, VersionAnswer())
def get_version(version: str) -> Any:
    """A stored rules version: its files and campaigns"""
    return stored_versions().get(services().read_uow, version)


@blueprint.get("/v1/customers/<id:customer_id>/ledger/<row_id:entry_id>", tags=["customers"])
@require("customers:read")
@blueprint.response(200, LedgerEntryExplanation())
def get_ledger_entry(customer_id: str, entry_id: int) -> Any:
    """Why a ledger entry exists: its event, the rule's text and the evaluation's trace"""
    return explain_ledger_entry(services().read_uow, stored_versions(), customer_id, entry_id)
