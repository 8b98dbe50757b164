"""The Flask application factory. Flask is only the HTTP edge."""

from __future__ import annotations

import logging

from flask import Flask

from service.api import (
    customers,
    events,
    hardening,
    messages,
    offers,
    openapi,
    operations,
    rules_admin,
)
from service.api.json_provider import DecimalJSONProvider
from service.api.problems import register_problem_handlers
from service.bootstrap import Services, build_services
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
    svc = app.extensions["loyalty"] = services or build_services(settings)
    engine, note = engine_in_use(settings.engine)
    if note is not None:
        log.warning("rule engine: %s instead of %s (%s)", engine, settings.engine, note)
    if svc.rules.loaded:
        channels = settings.messaging.channel_names()
        log_unconfigured_channels(svc.rules.active.ruleset, channels, log)
    register_problem_handlers(app)
    observability.init_app(app, log_requests=settings.access_log)  # first: the request id
    hardening.init_app(app, settings)
    for module in (events, customers, offers, operations, openapi, messages, rules_admin):
        app.register_blueprint(module.blueprint)
    return app
