"""Points expiry in the core: rolling and fixed-date expiry, FIFO order, warnings due."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.core.errors import RuleFileError
from service.core.expiry import expired_lots, lot_expiry, warnings_due
from service.core.ledger import Lot
from service.core.programme import PointsPolicy
from service.rules.loader import load_rules

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def lot(lot_id: int, earned: str, expires: str | None, remaining: int = 100, **kw: object) -> Lot:
    return Lot(lot_id, at(earned), remaining, at(expires) if expires else None, **kw)  # type: ignore[arg-type]


def test_rolling_expiry_is_the_span_after_each_earn() -> None:
    policy = PointsPolicy(expire_after=timedelta(days=365))
    assert lot_expiry(policy, at("2026-03-01T10:00:00+08:00")) == at("2027-03-01T10:00:00+08:00")
    assert lot_expiry(PointsPolicy(expire_after=None), at("2026-03-01T10:00:00+08:00")) is None


def test_fixed_expiry_ends_with_the_fixed_day_in_the_programme_zone() -> None:
    policy = PointsPolicy(expire_after=None, fixed_expiry=(12, 31), expiry_timezone="Asia/Shanghai")
    end_of_2026 = datetime(2027, 1, 1, tzinfo=SHANGHAI)

    assert lot_expiry(policy, at("2026-03-01T10:00:00+08:00")) == end_of_2026
    # Earned on the day itself (local): it goes that night.
    assert lot_expiry(policy, at("2026-12-31T23:00:00+08:00")) == end_of_2026
    # 17:00 UTC on the 31st is already 1 January in Shanghai: next year's day.
    assert lot_expiry(policy, at("2026-12-31T17:00:00+00:00")) == datetime(
        2028, 1, 1, tzinfo=SHANGHAI
    )


def test_fixed_expiry_with_after_is_the_first_fixed_day_after_the_span() -> None:
    policy = PointsPolicy(
        expire_after=timedelta(days=365), fixed_expiry=(12, 31), expiry_timezone="Asia/Shanghai"
    )
    # Earned March 2026: a year later is March 2027; the first 31 December after that.
    assert lot_expiry(policy, at("2026-03-01T10:00:00+08:00")) == datetime(
        2028, 1, 1, tzinfo=SHANGHAI
    )


def test_a_29_february_fixed_day_is_the_28th_in_common_years() -> None:
    policy = PointsPolicy(expire_after=None, fixed_expiry=(2, 29), expiry_timezone="UTC")
    assert lot_expiry(policy, at("2026-01-10T00:00:00+00:00")) == datetime(2026, 3, 1, tzinfo=UTC)
    assert lot_expiry(policy, at("2028-01-10T00:00:00+00:00")) == datetime(2028, 3, 1, tzinfo=UTC)


def test_expired_lots_come_soonest_expiry_first_then_oldest() -> None:
    lots = [
        lot(3, "2025-03-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"),
        lot(1, "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        lot(2, "2025-02-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        lot(4, "2025-04-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00"),  # not yet
        lot(5, "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", remaining=0),  # spent
        lot(6, "2025-01-01T00:00:00+00:00", None),  # never expires
    ]

    due = expired_lots(lots, at("2026-03-01T00:00:00+00:00"))

    assert [d.id for d in due] == [1, 2, 3]


def test_one_warning_per_expiry_day_at_the_narrowest_horizon_that_covers_it() -> None:
    horizons = (timedelta(days=30), timedelta(days=7))
    lots = [
        lot(1, "2025-12-10T09:00:00+08:00", "2026-12-10T09:00:00+08:00", 40),
        lot(2, "2025-12-10T20:00:00+08:00", "2026-12-10T20:00:00+08:00", 60),  # same local day
        lot(3, "2025-12-20T10:00:00+08:00", "2026-12-20T10:00:00+08:00", 10),
        lot(4, "2026-02-01T10:00:00+08:00", "2027-02-01T10:00:00+08:00", 10),  # too far
    ]

    warnings = warnings_due(lots, horizons, at("2026-12-05T00:00:00+08:00"), "Asia/Shanghai")

    assert [(w.expires_on, w.points, w.horizon) for w in warnings] == [
        (date(2026, 12, 10), 100, timedelta(days=7)),
        (date(2026, 12, 20), 10, timedelta(days=30)),
    ]
    assert warnings[0].dedupe_key == "points-expiring:2026-12-10:7d"
    assert warnings[0].expires_at == at("2026-12-10T09:00:00+08:00")


def test_no_warnings_without_horizons_or_for_what_has_expired() -> None:
    lots = [lot(1, "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00")]
    assert warnings_due(lots, (), at("2025-12-30T00:00:00+00:00"), "UTC") == []
    assert warnings_due(lots, (timedelta(days=7),), at("2026-01-02T00:00:00+00:00"), "UTC") == []


PROGRAM = """\
programme: test
currency: CNY
timezone: Asia/Shanghai
points:
  expiry: {EXPIRY}
"""


def programme_with(expiry: str) -> PointsPolicy:
    files = {"program.yaml": PROGRAM.replace("{EXPIRY}", expiry)}
    return load_rules(files).ruleset.programme.points


def test_the_programme_file_says_fixed_expiry() -> None:
    policy = programme_with('{fixed: "12-31", warn_before: [30d]}')
    assert policy.fixed_expiry == (12, 31)
    assert policy.expire_after is None
    assert policy.expiry_timezone == "Asia/Shanghai"
    assert programme_with('{after: 730d, fixed: "06-30"}').expire_after == timedelta(days=730)


@pytest.mark.parametrize("written", ['"13-01"', '"12/31"', "2026-12-31", '"02-30"'])
def test_a_bad_fixed_day_is_refused_with_its_line(written: str) -> None:
    with pytest.raises(RuleFileError) as error:
        programme_with("{fixed: " + written + "}")
    assert "points.expiry.fixed" in str(error.value)
    assert ":5" in str(error.value)
