from __future__ import annotations

from datetime import timedelta

import pytest

from service.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_durations_round_trip(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span
    assert parse_duration(format_duration(span)) == span


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1.5d", "30 days"])
def test_bad_durations_say_the_accepted_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)
