"""The schema, as SQLAlchemy Core tables. Alembic migrations create it; this mirrors them
(a test compares the two)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from service.storage.types import Money, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
Moment = UtcDateTime()

members = Table(
    "members",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("tier", String(64)),
    Column("tier_since", Moment),
    Column("tier_until", Moment),  # a fast-track tier held at least until then
    Column("tier_below_since", Moment),  # first review that found the member below their tier
    Column("points_available", BigInteger, nullable=False, default=0),
    Column("points_pending", BigInteger, nullable=False, default=0),
    Column("points_debt", BigInteger, nullable=False, default=0),
    Column("lifetime_spend", Money(), nullable=False, default=0),
    Column("order_count", Integer, nullable=False, default=0),
    Column("events_applied", Integer, nullable=False, default=0),
    Column("last_purchase_at", Moment),
    Column("enrolled_at", Moment),
    Column("first_seen_at", Moment, nullable=False),
    Column("birthday", Date),
    Column("timezone", String(64)),
    Column("email", String(254)),
    Column("phone", String(32)),
    Column("tags", JSON, nullable=False, default=list),
    Column("segment", String(64)),
    Column("referral_code", String(32), unique=True),
    Column("referred_by", String(128)),
)

events = Table(
    "events",
    metadata,
    # The order events were written in: recorded_at ties whenever a clock is fixed (a job
    # run with --now) and within a group, so history reads follow this instead.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("customer_id", String(128), nullable=False),
    Column("type", String(16), nullable=False),
    Column("occurred_at", Moment, nullable=False),
    Column("recorded_at", Moment, nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("rules_version", String(32), nullable=False),
    Index("ix_events_customer_occurred", "customer_id", "occurred_at"),
    Index("ix_events_occurred", "occurred_at"),
)

point_lots = Table(
    "point_lots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("order_id", String(128)),
    Column("earned_at", Moment, nullable=False),
    Column("available_at", Moment, nullable=False),
    Column("expires_at", Moment),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("pending", Integer, nullable=False, default=0),  # 1 while held through the return window
    Index("ix_point_lots_customer_remaining", "customer_id", "remaining"),
    Index("ix_point_lots_expires", "expires_at"),  # the liability's months, expiry runs
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("points", BigInteger, nullable=False),  # signed change to the balance
    Column("debt", BigInteger, nullable=False, default=0),  # signed change to what is owed
    Column("event_id", String(128)),
    Column("campaign", String(128)),
    Column("rule", String(128)),
    Column("rules_version", String(32)),
    Column("order_id", String(128)),
    Column("lot_id", Id, ForeignKey("point_lots.id")),
    Column("occurred_at", Moment, nullable=False),
    Column("recorded_at", Moment, nullable=False),
    Column("note", Text),
    Index("ix_ledger_entries_customer_id", "customer_id", "id"),
    Index("ix_ledger_entries_occurred", "occurred_at"),  # the reports' periods
)

rule_firings = Table(
    "rule_firings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("rule_key", String(260), nullable=False),
    Column("occurred_at", Moment, nullable=False),
    Column("event_id", String(128), nullable=False),
    Index("ix_rule_firings_customer_rule", "customer_id", "rule_key"),
)

orders = Table(
    "orders",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("order_id", String(128), primary_key=True),
    Column("amount", Money(), nullable=False),
    Column("occurred_at", Moment, nullable=False),
    Column("points_earned", BigInteger, nullable=False, default=0),
    Column("points_clawed", BigInteger, nullable=False, default=0),
    Column("refunded_amount", Money(), nullable=False, default=0),
    Column("event_id", String(128)),  # the purchase that opened the order
    # The upgrade its purchase qualified the member for (a refund may undo it).
    Column("tier_before", String(64)),
    Column("tier_reached", String(64)),
    Column("tier_reached_at", Moment),
    Index("ix_orders_occurred", "occurred_at"),  # the reports' periods
)

# Refunds of orders not known when they came, until a purchase of the order applies them.
held_refunds = Table(
    "held_refunds",
    metadata,
    Column("event_id", String(128), primary_key=True),  # the refund
    Column("customer_id", String(128), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("occurred_at", Moment, nullable=False),
    Column("applied_by", String(128)),  # the purchase that applied it; NULL while held
    Column("applied_at", Moment),
    Index("ix_held_refunds_customer_order", "customer_id", "order_id"),
)

# Points a purchase gave another member (a referrer's thank-you), for its refund to take back.
referrer_awards = Table(
    "referrer_awards",
    metadata,
    Column("event_id", String(128), primary_key=True),  # the purchase
    Column("referrer_id", String(128), primary_key=True),
    Column("campaign", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),  # the buyer
    Column("order_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("points_clawed", BigInteger, nullable=False, default=0),
    Index("ix_referrer_awards_customer_order", "customer_id", "order_id"),
)

campaign_budgets = Table(
    "campaign_budgets",
    metadata,
    Column("campaign", String(128), primary_key=True),
    Column("points_used", BigInteger, nullable=False, default=0),
    Column("offers_issued", Integer, nullable=False, default=0),
    Column("revenue", Money(), nullable=False, default=0),  # of the purchases it rewarded
)

rules_versions = Table(
    "rules_versions",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("files", JSON, nullable=False),
    Column("first_loaded_at", Moment, nullable=False),
)

tier_history = Table(
    "tier_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("from_tier", String(64)),
    Column("to_tier", String(64), nullable=False),
    Column("reason", String(16), nullable=False),  # qualified | fast_track | review | refund
    Column("until", Moment),
    Column("event_id", String(128)),
    Column("campaign", String(128)),
    Column("rule", String(128)),
    Column("occurred_at", Moment, nullable=False),
    Index("ix_tier_history_customer", "customer_id", "id"),
)

member_offers = Table(
    "member_offers",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("offer_id", String(128), nullable=False),
    Column("campaign", String(128)),
    Column("rule", String(128)),
    Column("event_id", String(128)),
    Column("issued_at", Moment, nullable=False),
    Column("valid_until", Moment, nullable=False),
    Column("status", String(16), nullable=False),  # active | redeemed | expired
    Column("redeemed_at", Moment),
    Column("redemption_ref", String(128)),
    Index("ix_member_offers_customer", "customer_id", "status"),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("redemption_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("reward_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # completed | reversed
    Column("takes", JSON, nullable=False),  # [[lot_id, points], ...] to return on reversal
    Column("created_at", Moment, nullable=False),
    Column("reversed_at", Moment),
)

referrals = Table(
    "referrals",
    metadata,
    Column("referee_id", String(128), primary_key=True),  # a member is referred once
    Column("referrer_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("occurred_at", Moment, nullable=False),
    Column("rewarded", Integer, nullable=False, default=0),
    Index("ix_referrals_referrer", "referrer_id", "occurred_at"),
)

order_awards = Table(
    "order_awards",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("order_id", String(128), primary_key=True),
    Column("campaign", String(128), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("points_returned", BigInteger, nullable=False, default=0),
    Column("revenue", Money(), nullable=False, default=0),
    Column("event_id", String(128), nullable=False),
)

# Which rules version the service serves, and since when: one row per activation (a
# version activated again after a rollback gets a new row). The newest row without
# active_until is the version every worker should serve (service.application.rules_sync).
rules_activations = Table(
    "rules_activations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", String(32), ForeignKey("rules_versions.version"), nullable=False),
    Column("active_from", Moment, nullable=False),
    Column("active_until", Moment),  # NULL while it is the active version
    Column("source", String(32), nullable=False),  # startup | reload
    Index("ix_rules_activations_version", "version"),
)

# What evaluation saw and decided for one applied event, so any ledger entry can be
# explained later without guessing the member's state at the time.
event_traces = Table(
    "event_traces",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("rules_version", String(32), nullable=False),
    Column("engine", String(32), nullable=False),
    Column("trace", JSON, nullable=False),  # [{campaign, rule, outcome, reason}, ...]
    Column("snapshot", JSON, nullable=False),  # the member snapshot evaluation read
    Column("budgets", JSON, nullable=False),  # {campaign: [points, offers, revenue]} it read
    Column("recorded_at", Moment, nullable=False),
)

# Member messaging: every message a rule or the system queues, and what became of it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("event_id", String(128)),  # the event that queued it; None for a job's message
    Column("source", String(16), nullable=False),  # rule | system
    Column("template", String(128), nullable=False),
    Column("channel", String(16), nullable=False),  # webhook | email | log
    Column("category", String(32), nullable=False),  # marketing | transactional | ...
    Column("urgent", Integer, nullable=False, default=0),
    Column("data", JSON, nullable=False),
    Column("campaign", String(128)),
    Column("rule", String(128)),
    Column("dedupe_key", String(260)),
    # The dedupe key on the first message that used it; None on its duplicates.
    Column("dedupe_claim", String(260)),
    Column("status", String(16), nullable=False),  # queued | deferred | sent | suppressed | dead
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Moment, nullable=False),
    Column("stale_at", Moment),  # deferred past this, it is dropped
    Column("next_attempt_at", Moment),  # queued or deferred: due from then
    Column("claimed_until", Moment),  # a dispatcher is delivering it until then
    Column("last_attempt_at", Moment),
    Column("sent_at", Moment),
    UniqueConstraint("customer_id", "dedupe_claim"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_customer", "customer_id", "id"),
)

# Every run of a scheduler job, by the scheduler or by `loyalty jobs run`.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("as_of", Moment, nullable=False),  # the `now` the job ran for
    Column("runner", String(128), nullable=False),  # host:pid:nonce of the process
    Column("started_at", Moment, nullable=False),
    Column("finished_at", Moment),
    Column("status", String(16), nullable=False),  # running | ok | failed
    Column("result", JSON),
    Column("error", Text),
    Index("ix_job_runs_job", "job", "id"),
)

# The scheduler's leader lease where there are no advisory locks (SQLite).
scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Moment, nullable=False),
    Column("heartbeat_at", Moment, nullable=False),
)

# Members erased at their request: the pseudonym their records moved to, when, and the
# name of the API key that asked. The original id is kept nowhere.
erasures = Table(
    "erasures",
    metadata,
    Column("pseudonym", String(128), primary_key=True),
    Column("erased_at", Moment, nullable=False),
    Column("erased_by", String(64), nullable=False),
)

# Points customer service added or removed by hand (POST /v1/customers/{id}/adjustments).
adjustments = Table(
    "adjustments",
    metadata,
    Column("adjustment_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),  # signed
    Column("reason", Text, nullable=False),
    Column("allow_debt", Integer, nullable=False, default=0),
    Column("made_by", String(64), nullable=False),  # the API key's name
    Column("created_at", Moment, nullable=False),
)

# Points one member gave another (POST /v1/customers/{id}/transfers).
transfers = Table(
    "transfers",
    metadata,
    Column("transfer_id", String(128), primary_key=True),
    Column("from_id", String(128), nullable=False),
    Column("to_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("made_by", String(64), nullable=False),
    Column("created_at", Moment, nullable=False),
)

# Rewards with a stock: how many have been given. Locked by each redemption of the reward.
reward_stock = Table(
    "reward_stock",
    metadata,
    Column("reward_id", String(128), primary_key=True),
    Column("taken", Integer, nullable=False, default=0),
)
