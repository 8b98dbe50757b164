"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-12-05 21:01:16.446755
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('adjustments',
    sa.Column('adjustment_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('allow_debt', sa.Integer(), nullable=False),
    sa.Column('made_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('adjustment_id', name=op.f('pk_adjustments'))
    )
    op.create_table('campaign_budgets',
    sa.Column('campaign', sa.String(length=128), nullable=False),
    sa.Column('points_used', sa.BigInteger(), nullable=False),
    sa.Column('offers_issued', sa.Integer(), nullable=False),
    sa.Column('revenue', service.storage.types.Money(), nullable=False),
    sa.PrimaryKeyConstraint('campaign', name=op.f('pk_campaign_budgets'))
    )
    op.create_table('erasures',
    sa.Column('pseudonym', sa.String(length=128), nullable=False),
    sa.Column('erased_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('erased_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('pseudonym', name=op.f('pk_erasures'))
    )
    op.create_table('event_traces',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('rules_version', sa.String(length=32), nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('trace', sa.JSON(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('budgets', sa.JSON(), nullable=False),
    sa.Column('recorded_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_event_traces'))
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('recorded_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('rules_version', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_events_event_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_customer_occurred', ['customer_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_occurred', ['occurred_at'], unique=False)

    op.create_table('held_refunds',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('amount', service.storage.types.Money(), nullable=False),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('applied_by', sa.String(length=128), nullable=True),
    sa.Column('applied_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_held_refunds'))
    )
    with op.batch_alter_table('held_refunds', schema=None) as batch_op:
        batch_op.create_index('ix_held_refunds_customer_order', ['customer_id', 'order_id'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('as_of', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('runner', sa.String(length=128), nullable=False),
    sa.Column('started_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('finished_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_job', ['job', 'id'], unique=False)

    op.create_table('member_offers',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('offer_id', sa.String(length=128), nullable=False),
    sa.Column('campaign', sa.String(length=128), nullable=True),
    sa.Column('rule', sa.String(length=128), nullable=True),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('issued_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('valid_until', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('redeemed_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('redemption_ref', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_member_offers'))
    )
    with op.batch_alter_table('member_offers', schema=None) as batch_op:
        batch_op.create_index('ix_member_offers_customer', ['customer_id', 'status'], unique=False)

    op.create_table('members',
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('tier', sa.String(length=64), nullable=True),
    sa.Column('tier_since', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('tier_until', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('tier_below_since', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('points_available', sa.BigInteger(), nullable=False),
    sa.Column('points_pending', sa.BigInteger(), nullable=False),
    sa.Column('points_debt', sa.BigInteger(), nullable=False),
    sa.Column('lifetime_spend', service.storage.types.Money(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('events_applied', sa.Integer(), nullable=False),
    sa.Column('last_purchase_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('enrolled_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('first_seen_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('segment', sa.String(length=64), nullable=True),
    sa.Column('referral_code', sa.String(length=32), nullable=True),
    sa.Column('referred_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_members')),
    sa.UniqueConstraint('referral_code', name=op.f('uq_members_referral_code'))
    )
    op.create_table('order_awards',
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('campaign', sa.String(length=128), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('points_returned', sa.BigInteger(), nullable=False),
    sa.Column('revenue', service.storage.types.Money(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'order_id', 'campaign', name=op.f('pk_order_awards'))
    )
    op.create_table('orders',
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('amount', service.storage.types.Money(), nullable=False),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('points_earned', sa.BigInteger(), nullable=False),
    sa.Column('points_clawed', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', service.storage.types.Money(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('tier_before', sa.String(length=64), nullable=True),
    sa.Column('tier_reached', sa.String(length=64), nullable=True),
    sa.Column('tier_reached_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', 'order_id', name=op.f('pk_orders'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_occurred', ['occurred_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('template', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('urgent', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('campaign', sa.String(length=128), nullable=True),
    sa.Column('rule', sa.String(length=128), nullable=True),
    sa.Column('dedupe_key', sa.String(length=260), nullable=True),
    sa.Column('dedupe_claim', sa.String(length=260), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('stale_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('next_attempt_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('claimed_until', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('last_attempt_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('sent_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('customer_id', 'dedupe_claim', name=op.f('uq_outbox_customer_id_dedupe_claim'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_customer', ['customer_id', 'id'], unique=False)
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('point_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('earned_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('available_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('expires_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_point_lots'))
    )
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.create_index('ix_point_lots_customer_remaining', ['customer_id', 'remaining'], unique=False)
        batch_op.create_index('ix_point_lots_expires', ['expires_at'], unique=False)

    op.create_table('redemptions',
    sa.Column('redemption_id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('reward_id', sa.String(length=128), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('takes', sa.JSON(), nullable=False),
    sa.Column('created_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('reversed_at', service.storage.types.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('redemption_id', name=op.f('pk_redemptions'))
    )
    op.create_table('referrals',
    sa.Column('referee_id', sa.String(length=128), nullable=False),
    sa.Column('referrer_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('rewarded', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('referee_id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_referrer', ['referrer_id', 'occurred_at'], unique=False)

    op.create_table('referrer_awards',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('referrer_id', sa.String(length=128), nullable=False),
    sa.Column('campaign', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('points_clawed', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'referrer_id', 'campaign', name=op.f('pk_referrer_awards'))
    )
    with op.batch_alter_table('referrer_awards', schema=None) as batch_op:
        batch_op.create_index('ix_referrer_awards_customer_order', ['customer_id', 'order_id'], unique=False)

    op.create_table('reward_stock',
    sa.Column('reward_id', sa.String(length=128), nullable=False),
    sa.Column('taken', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('reward_id', name=op.f('pk_reward_stock'))
    )
    op.create_table('rule_firings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('rule_key', sa.String(length=260), nullable=False),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_firings'))
    )
    with op.batch_alter_table('rule_firings', schema=None) as batch_op:
        batch_op.create_index('ix_rule_firings_customer_rule', ['customer_id', 'rule_key'], unique=False)

    op.create_table('rules_versions',
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('first_loaded_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_rules_versions'))
    )
    op.create_table('scheduler_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('heartbeat_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leases'))
    )
    op.create_table('tier_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('from_tier', sa.String(length=64), nullable=True),
    sa.Column('to_tier', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('until', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('campaign', sa.String(length=128), nullable=True),
    sa.Column('rule', sa.String(length=128), nullable=True),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_history'))
    )
    with op.batch_alter_table('tier_history', schema=None) as batch_op:
        batch_op.create_index('ix_tier_history_customer', ['customer_id', 'id'], unique=False)

    op.create_table('transfers',
    sa.Column('transfer_id', sa.String(length=128), nullable=False),
    sa.Column('from_id', sa.String(length=128), nullable=False),
    sa.Column('to_id', sa.String(length=128), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('made_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_transfers'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('debt', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=True),
    sa.Column('campaign', sa.String(length=128), nullable=True),
    sa.Column('rule', sa.String(length=128), nullable=True),
    sa.Column('rules_version', sa.String(length=32), nullable=True),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('occurred_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('recorded_at', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['lot_id'], ['point_lots.id'], name=op.f('fk_ledger_entries_lot_id')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_customer_id', ['customer_id', 'id'], unique=False)
        batch_op.create_index('ix_ledger_entries_occurred', ['occurred_at'], unique=False)

    op.create_table('rules_activations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('active_from', service.storage.types.UtcDateTime(), nullable=False),
    sa.Column('active_until', service.storage.types.UtcDateTime(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['version'], ['rules_versions.version'], name=op.f('fk_rules_activations_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules_activations'))
    )
    with op.batch_alter_table('rules_activations', schema=None) as batch_op:
        batch_op.create_index('ix_rules_activations_version', ['version'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rules_activations', schema=None) as batch_op:
        batch_op.drop_index('ix_rules_activations_version')

    op.drop_table('rules_activations')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_occurred')
        batch_op.drop_index('ix_ledger_entries_customer_id')

    op.drop_table('ledger_entries')
    op.drop_table('transfers')
    with op.batch_alter_table('tier_history', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_history_customer')

    op.drop_table('tier_history')
    op.drop_table('scheduler_leases')
    op.drop_table('rules_versions')
    with op.batch_alter_table('rule_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_firings_customer_rule')

    op.drop_table('rule_firings')
    op.drop_table('reward_stock')
    with op.batch_alter_table('referrer_awards', schema=None) as batch_op:
        batch_op.drop_index('ix_referrer_awards_customer_order')

    op.drop_table('referrer_awards')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_referrer')

    op.drop_table('referrals')
    op.drop_table('redemptions')
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_point_lots_expires')
        batch_op.drop_index('ix_point_lots_customer_remaining')

    op.drop_table('point_lots')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.drop_index('ix_outbox_customer')

    op.drop_table('outbox')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_occurred')

    op.drop_table('orders')
    op.drop_table('order_awards')
    op.drop_table('members')
    with op.batch_alter_table('member_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_member_offers_customer')

    op.drop_table('member_offers')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_job')

    op.drop_table('job_runs')
    with op.batch_alter_table('held_refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_held_refunds_customer_order')

    op.drop_table('held_refunds')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_occurred')
        batch_op.drop_index('ix_events_customer_occurred')

    op.drop_table('events')
    op.drop_table('event_traces')
    op.drop_table('erasures')
    op.drop_table('campaign_budgets')
    op.drop_table('adjustments')
