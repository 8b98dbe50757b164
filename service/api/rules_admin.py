"""Rules versions over HTTP: reload (admin), the stored versions, and ledger explanations.

Registering this blueprint also keeps each worker on the rules version the database names
as active (service.application.rules_versions.RulesSync), checked before requests at most
every few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow import ValidationError, fields, validate, validates_schema

from service.api.auth import require
from service.application.dry_run import dry_run
from service.application.explain import StoredVersions, explain_ledger_entry, replay_stored_event
from service.application.rules_versions import SYNC_EVERY_SECONDS, RulesSync
from service.bootstrap import Services
from service.event_schema import ID, StrictSchema, parse_event
from service.observability import metrics
from service.rules.channel_check import unconfigured_channels
from service.rules.lint import Finding
from service.rules.matchers import engine_in_use
from service.rules.sandbox import CompileLimits, check_in_child
from service.settings import Settings

log = logging.getLogger("loyalty.rules")

blueprint = Blueprint("rules_admin", __name__)
SYNC = "loyalty.rules_sync"
VERSIONS = "loyalty.rules_versions"


class StoredDryRunRequest(StrictSchema):
    """POST /v1/dry-run with a stored event, or against a stored rules version."""

    event_id = fields.String(validate=ID, metadata={"description": "a stored event to replay"})
    event = fields.Dict(metadata={"description": "an event, as POST /v1/events takes"})
    version = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "a stored rules version (default: the live one)"},
    )
    customer = fields.Dict(metadata={"description": "a hypothetical member, as in dry runs"})

    @validates_schema
    def one_event(self, data: dict[str, Any], **_: Any) -> None:
        if ("event_id" in data) == ("event" in data):
            raise ValidationError("send `event_id` (a stored event) or `event`, not both")


# Answer schemas, for the OpenAPI document (service.api.openapi.OPERATIONS).


class LintFindingSchema(StrictSchema):
    lint = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(["error", "warning"]))
    file = fields.String(required=True)
    line = fields.Integer(allow_none=True)
    message = fields.String(required=True)


class ReloadAnswer(StrictSchema):
    version = fields.String(required=True)
    previous = fields.String(required=True)
    changed = fields.Boolean(required=True)
    warnings = fields.List(fields.Nested(LintFindingSchema), required=True)


class ActivationSchema(StrictSchema):
    version = fields.String(required=True)
    from_ = fields.String(required=True, data_key="from")
    until = fields.String(allow_none=True)
    source = fields.String(validate=validate.OneOf(["startup", "reload"]))


class VersionsAnswer(StrictSchema):
    active = fields.String(required=True)
    activations = fields.List(fields.Nested(ActivationSchema), required=True)


class VersionAnswer(StrictSchema):
    version = fields.String(required=True)
    files = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    campaigns = fields.List(fields.String(), required=True)


class LedgerEntryExplanation(StrictSchema):
    entry = fields.Dict(required=True)
    event = fields.Dict(allow_none=True)
    rules_version = fields.Dict(required=True)
    campaign = fields.Dict(allow_none=True, metadata={"description": "id, file, line, text"})
    rule = fields.Dict(allow_none=True, metadata={"description": "name, file, line, text"})
    trace = fields.List(fields.Dict(), required=True)
    rule_trace = fields.List(fields.Dict())
    recorded_trace = fields.List(fields.Dict())
    effects = fields.List(fields.Dict())
    engine = fields.String()
    trace_source = fields.String(
        allow_none=True, validate=validate.OneOf(["recorded", "reconstructed"])
    )
    customer = fields.Dict(allow_none=True)


def is_stored_dry_run(body: Any) -> bool:
    """Does a dry-run body ask for a stored event or a stored version (this module's)?"""
    return isinstance(body, dict) and ("event_id" in body or "version" in body)


def services() -> Services:
    return current_app.extensions["loyalty"]  # type: ignore[no-any-return]


def _sync() -> RulesSync:
    return current_app.extensions[SYNC]  # type: ignore[no-any-return]


def _versions() -> StoredVersions:
    return current_app.extensions[VERSIONS]  # type: ignore[no-any-return]


@blueprint.record_once
def _install(state: Any) -> None:
    """At app creation (in the worker, after the rules loaded): join the active version."""
    app: Flask = state.app
    svc = app.extensions["loyalty"]
    sync = RulesSync(
        svc.uow, svc.rules, svc.clock, every=SYNC_EVERY_SECONDS, on_loaded=metrics.rules_loaded
    )
    app.extensions[SYNC] = sync
    app.extensions[VERSIONS] = StoredVersions(svc.rules)
    sync.maybe_sync()


@blueprint.before_app_request
def _follow_active_version() -> None:
    _sync().maybe_sync()


def stored_dry_run(body: Any) -> dict[str, Any]:
    """The dry-run branch for ``{"event_id"}`` and ``{"version"}`` bodies."""
    request = StoredDryRunRequest().load(body)
    svc = services()
    rules = (
        _versions().get(svc.read_uow, request["version"])
        if "version" in request
        else svc.rules.active
    )
    if "event_id" in request:
        return replay_stored_event(
            svc.read_uow, rules, request["event_id"], request.get("customer")
        )
    event = parse_event(request["event"])
    return dry_run(svc.read_uow, rules, event, svc.clock, request.get("customer"))


@blueprint.post("/v1/rules/reload")
@require("admin")
def post_reload() -> Response:
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

    reloaded = _sync().reload(settings.rules_dir, vet=vet)
    ruleset = svc.rules.active.ruleset
    if ruleset.version == reloaded.version:
        # What this installation cannot deliver, said with the lint warnings.
        undeliverable = unconfigured_channels(ruleset, settings.messaging.channel_names())
        for finding in undeliverable:
            log.warning("rules version %s: %s", ruleset.version, finding.format())
        reloaded = replace(reloaded, warnings=(*reloaded.warnings, *undeliverable))
    return jsonify(reloaded.as_dict())


def compile_limits(settings: Settings) -> CompileLimits:
    return CompileLimits(settings.rules_compile_timeout, settings.rules_compile_memory_mib)


def sent_rules_check(settings: Settings) -> Callable[[Mapping[str, str]], object]:
    """How a dry run's rule files are vetted: loaded and compiled in a child process."""
    return partial(check_in_child, limits=compile_limits(settings), engine=settings.engine)


@blueprint.get("/v1/rules/versions")
@require("admin")
def get_versions() -> Response:
    svc = services()
    with svc.read_uow() as uow:
        activations = uow.store.rules_activations(100)
    return jsonify(
        {
            "active": svc.rules.active.version,
            "activations": [
                {
                    "version": a.version,
                    "from": a.active_from.isoformat(),
                    "until": a.active_until.isoformat() if a.active_until else None,
                    "source": a.source,
                }
                for a in activations
            ],
        }
    )


@blueprint.get("/v1/rules/versions/<version>")
@require("admin")
def get_version(version: str) -> Response:
    svc = services()
    rules = _versions().get(svc.read_uow, version)
    return jsonify(
        {
            "version": rules.version,
            "files": dict(rules.ruleset.files),
            "campaigns": [c.id for c in rules.ruleset.campaigns],
        }
    )


@blueprint.get("/v1/customers/<customer_id>/ledger/<int:entry_id>")
@require("customers:read")
def get_ledger_entry(customer_id: str, entry_id: int) -> Response:
    svc = services()
    return jsonify(explain_ledger_entry(svc.read_uow, _versions(), customer_id, entry_id))
