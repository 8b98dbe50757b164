"""Where durable-rules cannot be imported (Python 3.13 without the patched build), a
service configured for it runs the reference engine and says so: a log line at start,
/readyz, /v1/rules; the reload and `loyalty rules check` skip the durable-rules probe.

The missing engine is made real for one test by blocking the import of the one module
that imports durable-rules (a None entry in sys.modules makes `import` raise ImportError).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from service.rules.check import check_rules
from service.rules.loader import load_rules_dir
from service.rules.matchers import build_matcher, engine_in_use, why_durable_cannot_load
from service.settings import Settings
from tests.conftest import AUTH, RULES_DIR, FixedClock
from tests.durable_support import needs_durable
from tests.service.helpers import app_for, points_of, post, purchase, services_for

BLOCKED = "import of service.rules.durable_engine halted; None in sys.modules"


@pytest.fixture
def durable_missing(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The reason why_durable_cannot_load() gives with the import blocked."""
    monkeypatch.setitem(sys.modules, "service.rules.durable_engine", None)
    why_durable_cannot_load.cache_clear()
    yield f"ModuleNotFoundError: {BLOCKED}"
    why_durable_cannot_load.cache_clear()  # asked again once the import works again


def test_the_reason_is_the_import_error_and_the_reference_serves(durable_missing: str) -> None:
    assert why_durable_cannot_load() == durable_missing
    assert engine_in_use("durable") == (
        "reference",
        f"durable-rules unavailable: {durable_missing}",
    )
    assert engine_in_use("reference") == ("reference", None)

    heard: list[str] = []
    rules = load_rules_dir(RULES_DIR).ruleset.rules
    matcher = build_matcher(rules, "v1", "durable", heard.append)

    assert matcher.name == "reference"
    assert heard == []  # not an engine failure per load: said once at start instead


def test_the_service_says_so_at_start_and_in_readyz_and_still_serves(
    durable_missing: str, sqlite_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    note = f"durable-rules unavailable: {durable_missing}"
    settings = Settings(database_url=sqlite_url, rules_dir=str(RULES_DIR), engine="durable")
    with services_for(settings, clock) as services:
        with caplog.at_level(logging.WARNING, logger="loyalty"):
            client = app_for(services).test_client()
        ready = client.get("/readyz").get_json()
        rules = client.get("/v1/rules", headers=AUTH).get_json()
        answer = post(client, purchase("ann", "120"))

    assert [r.getMessage() for r in caplog.records if r.name == "loyalty"] == [
        f"rule engine: reference instead of durable ({note})"
    ]
    assert ready["status"] == "ready"
    assert ready["engine"] == "reference"
    assert ready["engine_note"] == note
    assert rules["engine"] == "reference"
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert points_of(answer.get_json()) == 120


def test_rules_check_passes_on_the_reference_and_says_durable_was_not_checked(
    durable_missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_rules(RULES_DIR, now=FixedClock()()) == 0

    out = capsys.readouterr().out
    assert f"{RULES_DIR}: durable-rules not checked, unavailable here ({durable_missing})" in out


@needs_durable
def test_readyz_names_durable_and_no_note_where_it_loads(
    sqlite_url: str, clock: FixedClock
) -> None:
    settings = Settings(database_url=sqlite_url, rules_dir=str(RULES_DIR), engine="durable")
    with services_for(settings, clock) as services:
        ready = app_for(services).test_client().get("/readyz").get_json()

    assert ready["engine"] == "durable"
    assert "engine_note" not in ready


def test_readyz_names_the_reference_when_it_is_configured(
    sqlite_url: str, clock: FixedClock
) -> None:
    settings = Settings(database_url=sqlite_url, rules_dir=str(RULES_DIR), engine="reference")
    with services_for(settings, clock) as services:
        ready = app_for(services).test_client().get("/readyz").get_json()

    assert ready["engine"] == "reference"
    assert "engine_note" not in ready
