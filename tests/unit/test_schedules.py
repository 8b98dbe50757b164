"""Time-based campaigns and job schedules in the core and the programme file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.core.errors import RuleFileError
from service.core.schedules import (
    DEFAULT_EVERY,
    JobSchedule,
    job_schedules,
    lapse_occurrences,
    scheduled_kinds,
    yearly_occurrence,
)
from service.rules.loader import load_rules

TZ = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)

PROGRAM = """\
programme: test
currency: CNY
timezone: Asia/Shanghai
tiers:
  review: {every: 30d}
  levels: [{name: bronze, min: 0}]
"""
CAMPAIGN = """\
campaign: %(id)s
rules:
  - name: it
    when: %(when)s
    then:
      - tag: {add: [seen]}
tests:
  - name: case
    event: {type: schedule, kind: birthday, occurred_at: 2026-12-02T00:00:00+08:00}
    expect: {}
"""


def loaded(campaigns: dict[str, str], schedules: str = "") -> object:
    files = {"program.yaml": PROGRAM + schedules}
    for name, when in campaigns.items():
        files[f"campaigns/{name}.yaml"] = CAMPAIGN % {"id": name, "when": when}
    return load_rules(files).ruleset


def test_the_job_listens_only_for_the_kinds_campaigns_use() -> None:
    ruleset = loaded(
        {
            "bday": "{schedule: birthday}",
            "lapse": "{inactive_for: 60d}",
            "longer": "{inactive_for: 90d, customer.tier: bronze}",
        }
    )
    kinds = scheduled_kinds(ruleset.campaigns, datetime(2026, 12, 2, tzinfo=UTC))  # type: ignore[attr-defined]
    assert kinds == {"birthday": set(), "inactive": {60, 90}}


def test_a_birthday_happens_at_the_start_of_the_members_day() -> None:
    now = datetime(2026, 12, 2, 9, 0, tzinfo=TZ)
    found = yearly_occurrence("birthday", date(1990, 12, 2), "Asia/Shanghai", now, DAY)
    assert found is not None
    assert (found.key, found.at) == ("2026", datetime(2026, 12, 2, tzinfo=TZ))
    # Still 1 December in Los Angeles: not yet.
    assert yearly_occurrence("birthday", date(1990, 12, 2), "America/Los_Angeles", now, DAY) is None


def test_a_birthday_missed_yesterday_is_caught_up_but_not_older_ones() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    assert yearly_occurrence("birthday", date(1990, 12, 2), "Asia/Shanghai", now, DAY) is not None
    later = now + DAY
    assert yearly_occurrence("birthday", date(1990, 12, 2), "Asia/Shanghai", later, DAY) is None


def test_a_member_who_joined_after_their_birthday_is_not_greeted_for_it() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    joined = datetime(2026, 12, 3, 8, 0, tzinfo=TZ)
    found = yearly_occurrence("birthday", date(1990, 12, 2), "Asia/Shanghai", now, DAY, joined)
    assert found is None


def test_29_february_birthdays_fall_on_the_28th_in_common_years() -> None:
    now = datetime(2027, 2, 28, 12, 0, tzinfo=TZ)
    found = yearly_occurrence("birthday", date(2000, 2, 29), "Asia/Shanghai", now, timedelta(0))
    assert found is not None
    assert found.at == datetime(2027, 2, 28, tzinfo=TZ)


def test_anniversaries_start_a_year_after_enrolment() -> None:
    enrolled = date(2025, 12, 2)
    first = datetime(2025, 12, 2, 12, 0, tzinfo=TZ)
    assert yearly_occurrence("anniversary", enrolled, "Asia/Shanghai", first, DAY) is None
    found = yearly_occurrence("anniversary", enrolled, "Asia/Shanghai", first + 365 * DAY, DAY)
    assert found is not None
    assert found.key == "2026"


def test_a_lapse_occurs_once_per_threshold_reached() -> None:
    last = datetime(2026, 9, 1, 10, 0, tzinfo=TZ)
    now = datetime(2026, 11, 15, 12, 0, tzinfo=TZ)  # 75 days on

    found = lapse_occurrences(last, {60, 90}, "Asia/Shanghai", now)

    assert [o.key for o in found] == ["20260901T020000:60d"]
    # Found late: it happens at the start of today, so an offer it brings has time to run.
    assert found[0].at == datetime(2026, 11, 15, tzinfo=TZ)
    on_time = lapse_occurrences(last, {60}, "Asia/Shanghai", last + 60 * DAY + timedelta(hours=1))
    assert on_time[0].at == last + 60 * DAY


def test_schedules_come_from_the_programme_over_the_defaults() -> None:
    ruleset = loaded(
        {},
        'schedules:\n  dispatch-outbox: {every: 30s}\n  warn-expiry: {cron: "0 10 * * *"}\n'
        "  run-schedules: {enabled: false}\n",
    )
    written = ruleset.programme.extras["schedules"]  # type: ignore[attr-defined]
    schedules = job_schedules(written, timedelta(days=30))

    assert set(schedules) == set(DEFAULT_EVERY)
    assert schedules["dispatch-outbox"] == JobSchedule(
        "dispatch-outbox", every=timedelta(seconds=30)
    )
    assert schedules["warn-expiry"].cron == "0 10 * * *"
    assert not schedules["run-schedules"].enabled
    assert schedules["review-tiers"].every == timedelta(days=30)
    assert schedules["expire-points"].every == DEFAULT_EVERY["expire-points"]


@pytest.mark.parametrize(
    ("written", "complaint"),
    [
        ("  expire-point: {every: 1h}\n", "did you mean 'expire-points'"),
        ('  warn-expiry: {cron: "0 25 * * *"}\n', "warn-expiry.cron"),
        ("  warn-expiry: {every: 1h, cron: '* * * * *'}\n", "takes one of"),
        ("  warn-expiry: {every: soon}\n", "warn-expiry.every"),
    ],
)
def test_bad_schedules_are_refused_with_the_line(written: str, complaint: str) -> None:
    with pytest.raises(RuleFileError) as error:
        loaded({}, "schedules:\n" + written)
    assert complaint in str(error.value)
    assert "program.yaml:8" in str(error.value)
