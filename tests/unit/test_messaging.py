"""Caps, quiet hours and staleness, decided in the core."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.core.messaging import DEFER, SEND, SUPPRESS, Pending, Sent, decide
from service.core.programme import MessageCap, MessagingPolicy

SHANGHAI = "Asia/Shanghai"
TZ = ZoneInfo(SHANGHAI)
WEEKLY_TWO = MessagingPolicy(caps=(MessageCap(2, timedelta(days=7), "marketing"),))
QUIET = MessagingPolicy(quiet_from="21:00", quiet_to="09:00")
MORNING = datetime(2026, 12, 2, 10, 0, tzinfo=TZ)
MARKETING = Pending("marketing", "email")


def run_day(policy: MessagingPolicy, messages: list[Pending], now: datetime) -> list[str]:
    """Decide each message in turn, as the dispatcher does, remembering what was sent."""
    sent: list[Sent] = []
    actions = []
    for message in messages:
        decision = decide(policy, message, sent, now, SHANGHAI)
        if decision.action == SEND:
            sent.append(Sent(message.category, message.channel, now))
        actions.append(decision.action)
    return actions


def test_five_marketing_messages_in_a_day_send_two_and_defer_three_a_week() -> None:
    sent = [Sent("marketing", "email", MORNING), Sent("marketing", "email", MORNING)]

    assert run_day(WEEKLY_TWO, [MARKETING] * 5, MORNING) == [SEND, SEND, DEFER, DEFER, DEFER]
    decision = decide(WEEKLY_TWO, MARKETING, sent, MORNING, SHANGHAI)
    assert decision.at == MORNING + timedelta(days=7)
    assert "cap of 2 marketing message(s) per 7d reached" in decision.reason
    assert "deferred to" in decision.reason


def test_a_capped_message_that_would_be_stale_is_dropped_with_the_reason() -> None:
    fresh_for_a_day = Pending("marketing", "email", stale_at=MORNING + timedelta(days=1))

    assert run_day(WEEKLY_TWO, [fresh_for_a_day] * 5, MORNING) == [SEND, SEND] + [SUPPRESS] * 3
    sent = [Sent("marketing", "email", MORNING)] * 2
    decision = decide(WEEKLY_TWO, fresh_for_a_day, sent, MORNING, SHANGHAI)
    assert "cap of 2 marketing" in decision.reason
    assert "would be stale" in decision.reason


def test_a_message_already_stale_is_dropped() -> None:
    old = Pending("marketing", "email", stale_at=MORNING - timedelta(minutes=1))
    decision = decide(MessagingPolicy(), old, [], MORNING, SHANGHAI)
    assert decision.action == SUPPRESS
    assert decision.reason.startswith("stale since")


def test_transactional_messages_bypass_marketing_caps() -> None:
    full = [Sent("marketing", "email", MORNING)] * 2
    receipt = Pending("transactional", "email")
    assert decide(WEEKLY_TWO, receipt, full, MORNING, SHANGHAI).action == SEND
    # A cap naming no category counts everything but transactional.
    any_category = MessagingPolicy(caps=(MessageCap(1, timedelta(days=1)),))
    assert decide(any_category, receipt, full, MORNING, SHANGHAI).action == SEND
    assert decide(any_category, MARKETING, full, MORNING, SHANGHAI).action == DEFER


def test_the_rolling_window_reopens_when_the_oldest_counted_message_leaves_it() -> None:
    sent = [
        Sent("marketing", "email", MORNING - timedelta(days=6)),
        Sent("marketing", "email", MORNING - timedelta(days=1)),
    ]
    decision = decide(WEEKLY_TWO, MARKETING, sent, MORNING, SHANGHAI)
    assert decision.at == MORNING + timedelta(days=1)
    week_later = [Sent("marketing", "email", MORNING - timedelta(days=7))] * 2
    assert decide(WEEKLY_TWO, MARKETING, week_later, MORNING, SHANGHAI).action == SEND


def test_calendar_caps_count_days_in_the_members_zone() -> None:
    daily = MessagingPolicy(caps=(MessageCap(1, timedelta(days=1), "marketing", calendar=True),))
    late_yesterday = Sent("marketing", "email", datetime(2026, 12, 1, 23, 30, tzinfo=TZ))
    early_today = Sent("marketing", "email", datetime(2026, 12, 2, 0, 30, tzinfo=TZ))

    assert decide(daily, MARKETING, [late_yesterday], MORNING, SHANGHAI).action == SEND
    decision = decide(daily, MARKETING, [early_today], MORNING, SHANGHAI)
    assert decision.action == DEFER
    assert decision.at == datetime(2026, 12, 3, tzinfo=TZ)  # tomorrow, from midnight
    assert "1 marketing message(s) per 1 calendar day(s)" in decision.reason
    quiet = MessagingPolicy(caps=daily.caps, quiet_from="21:00", quiet_to="09:00")
    assert decide(quiet, MARKETING, [early_today], MORNING, SHANGHAI).at == datetime(
        2026, 12, 3, 9, 0, tzinfo=TZ
    )  # midnight is quiet: 09:00


def test_when_caps_overlap_the_strictest_wins() -> None:
    policy = MessagingPolicy(
        caps=(
            MessageCap(3, timedelta(days=7), "marketing"),
            MessageCap(1, timedelta(days=1), "marketing", channel="sms"),
            MessageCap(2, timedelta(days=30)),
        )
    )
    sent = [
        Sent("marketing", "email", MORNING - timedelta(days=20)),
        Sent("marketing", "email", MORNING - timedelta(hours=1)),
    ]
    decision = decide(policy, MARKETING, sent, MORNING, SHANGHAI)
    assert decision.action == DEFER
    # The 30-day cap reopens when the message of 20 days ago leaves it, 10 days on.
    assert decision.at == MORNING + timedelta(days=10)
    assert "2 non-transactional message(s) per 30d" in decision.reason


def test_a_channel_cap_counts_only_its_channel() -> None:
    policy = MessagingPolicy(caps=(MessageCap(1, timedelta(days=1), channel="sms"),))
    sent = [Sent("marketing", "email", MORNING)]
    assert decide(policy, Pending("marketing", "sms"), sent, MORNING, SHANGHAI).action == SEND
    assert (
        decide(policy, MARKETING, [Sent("marketing", "sms", MORNING)], MORNING, SHANGHAI).action
        == SEND
    )


def test_quiet_hours_defer_to_the_morning_in_the_members_zone() -> None:
    late = datetime(2026, 12, 2, 22, 30, tzinfo=TZ)
    decision = decide(QUIET, MARKETING, [], late, SHANGHAI)
    assert decision.action == DEFER
    assert decision.at == datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    assert "quiet hours 21:00-09:00 in Asia/Shanghai" in decision.reason
    early = datetime(2026, 12, 3, 6, 0, tzinfo=TZ)
    assert decide(QUIET, MARKETING, [], early, SHANGHAI).at == datetime(
        2026, 12, 3, 9, 0, tzinfo=TZ
    )
    # The same instant is mid-afternoon in Paris: it goes now.
    assert decide(QUIET, MARKETING, [], late, "Europe/Paris").action == SEND


def test_transactional_messages_wait_for_quiet_hours_unless_urgent() -> None:
    late = datetime(2026, 12, 2, 23, 0, tzinfo=TZ)
    assert decide(QUIET, Pending("transactional", "email"), [], late, SHANGHAI).action == DEFER
    urgent = Pending("transactional", "email", urgent=True)
    assert decide(QUIET, urgent, [], late, SHANGHAI).action == SEND
    # Urgent marketing is still marketing.
    assert (
        decide(QUIET, Pending("marketing", "email", urgent=True), [], late, SHANGHAI).action
        == DEFER
    )


def test_quiet_hours_that_do_not_cross_midnight() -> None:
    lunch = MessagingPolicy(quiet_from="12:00", quiet_to="14:00")
    at_one = datetime(2026, 12, 2, 13, 0, tzinfo=TZ)
    assert decide(lunch, MARKETING, [], at_one, SHANGHAI).at == datetime(
        2026, 12, 2, 14, 0, tzinfo=TZ
    )
    assert decide(lunch, MARKETING, [], MORNING, SHANGHAI).action == SEND


def test_a_deferral_past_staleness_by_quiet_hours_is_dropped() -> None:
    late = datetime(2026, 12, 2, 22, 0, tzinfo=TZ)
    flash = Pending("marketing", "email", stale_at=late + timedelta(hours=2))
    decision = decide(QUIET, flash, [], late, SHANGHAI)
    assert decision.action == SUPPRESS
    assert "quiet hours" in decision.reason
