"""The Flask application factory, the composition root of the HTTP edge: the services,
the rules every worker follows, the hooks, and the API's blueprints."""

from __future__ import annotations

import logging

from flask import Flask

from service.api import document, hardening
from service.api.context import RULES_SYNC, SERVICES, STORED_VERSIONS
from service.api.contract import install_paths
from service.api.json_provider import DecimalJSONProvider
from service.api.problems import register_problem_handlers
from service.application.explain import StoredVersions
from service.application.rules_versions import SYNC_EVERY_SECONDS, RulesSync
from service.bootstrap import Services, build_services
from service.observability import metrics
from service.observability import web as observability
from service.rules.channel_check import log_unconfigured_channels
from service.rules.matchers import engine_in_use
from service.settings import Settings

log = logging.getLogger("loyalty")


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or (services.settings if services else Settings.from_env())
    app = Flask("loyalty", static_folder=None)  # serves no files
    app.json_provider_class = DecimalJSONProvider
    app.json = DecimalJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    svc = app.extensions[SERVICES] = services or build_services(settings)
    engine, note = engine_in_use(settings.engine)
    if note is not None:
        log.warning("rule engine: %s instead of %s (%s)", engine, settings.engine, note)
    if svc.rules.loaded:
        channels = settings.messaging.channel_names()
        log_unconfigured_channels(svc.rules.active.ruleset, channels, log)
    register_problem_handlers(app)
    observability.init_app(app, log_requests=settings.access_log)  # first: the request id
    hardening.init_app(app, settings)
    follow_active_rules(app, svc)
    install_paths(app)
    for blueprint in document.BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def follow_active_rules(app: Flask, svc: Services) -> None:
    """Each worker joins the rules version the database names as active (after loading
    its own files), then checks it before requests at most every few seconds."""
    sync = app.extensions[RULES_SYNC] = RulesSync(
        svc.uow, svc.rules, svc.clock, every=SYNC_EVERY_SECONDS, on_loaded=metrics.rules_loaded
    )
    app.extensions[STORED_VERSIONS] = StoredVersions(svc.rules)
    sync.maybe_sync()
    app.before_request(sync.maybe_sync)
