"""What a view reaches for: what create_app built for this app (service.api.app)."""

from __future__ import annotations

from flask import current_app

from service.application.explain import StoredVersions
from service.application.rules_versions import RulesSync
from service.bootstrap import Services

SERVICES = "loyalty"


def services() -> Services:
    return current_app.extensions[SERVICES]  # type: ignore[no-any-return]


RULES_SYNC = "loyalty.rules_sync"
STORED_VERSIONS = "loyalty.rules_versions"


def rules_sync() -> RulesSync:
    return current_app.extensions[RULES_SYNC]  # type: ignore[no-any-return]


def stored_versions() -> StoredVersions:
    return current_app.extensions[STORED_VERSIONS]  # type: ignore[no-any-return]
