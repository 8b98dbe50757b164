"""The strict JSON reader's limits fit every legitimate body, and gunicorn's own limits
sit above the app's, so the app is the one that answers (with problem+json)."""

from __future__ import annotations

import json
import runpy
from decimal import Decimal
from pathlib import Path

import pytest

from service.api.hardening import MAX_HEADER_FIELD, MAX_HEADER_FIELDS, MAX_REQUEST_LINE
from service.api.json_provider import MAX_DEPTH, BodyRefused, strict_loads
from service.json_values import content_errors

ROOT = Path(__file__).resolve().parents[2]


def batch_of(count: int) -> dict[str, object]:
    item = {"sku": "latte-l", "category": "coffee", "quantity": 2, "price": "30.50"}
    return {
        "events": [
            {
                "event_id": f"e-{i}",
                "type": "purchase",
                "customer_id": f"member-{i % 37}",
                "occurred_at": "2026-12-02T10:00:00+08:00",
                "order_id": f"o-{i}",
                "amount": 120.8,
                "items": [item] * 5,
            }
            for i in range(count)
        ]
    }


def test_a_batch_of_500_events_passes_the_scan_and_the_value_checks() -> None:
    body = batch_of(500)

    parsed = strict_loads(json.dumps(body).encode())

    assert len(parsed["events"]) == 500
    assert parsed["events"][0]["amount"] == Decimal("120.8")
    assert content_errors(parsed) is None


def test_a_dry_run_with_rule_files_full_of_brackets_passes() -> None:
    campaign = "when:\n  channel: {in: [[app], [web]]}\n" * 200  # brackets inside text
    body = {"event": batch_of(1)["events"][0], "rules": {"campaigns/x.yaml": campaign}}

    assert strict_loads(json.dumps(body).encode())["rules"]["campaigns/x.yaml"] == campaign


def test_brackets_inside_strings_and_escaped_quotes_are_not_nesting() -> None:
    text = json.dumps({"a": '[[[[\\"' * 100, "b": "]]]" * 100})

    assert strict_loads(text.encode())["b"] == "]]]" * 100


@pytest.mark.parametrize(
    ("depth", "refused"), [(MAX_DEPTH, False), (MAX_DEPTH + 1, True), (10**6, True)]
)
def test_nesting_is_counted_exactly(depth: int, refused: bool) -> None:
    data = ("[" * depth + "]" * depth).encode()

    if refused:
        with pytest.raises(BodyRefused, match=f"at most {MAX_DEPTH}"):
            strict_loads(data)
    else:
        strict_loads(data)


def test_an_unterminated_string_full_of_escapes_is_scanned_in_one_pass() -> None:
    data = b'["' + b'\\"[' * 200_000  # each retry at each quote would be quadratic

    with pytest.raises(ValueError, match="Unterminated string"):
        strict_loads(data)


def test_gunicorns_limits_are_above_the_apps() -> None:
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))

    assert config["limit_request_line"] > MAX_REQUEST_LINE
    assert config["limit_request_fields"] > MAX_HEADER_FIELDS
    assert config["limit_request_field_size"] > MAX_HEADER_FIELD
