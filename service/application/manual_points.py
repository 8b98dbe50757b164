"""Points moved by people rather than rules: customer service adjustments, and transfers
between members where the programme allows them.

Both are idempotent on the id the caller gives: the same request again answers what the
first did; another request under that id is a conflict. A credit pays debt first and the
rest becomes a lot that expires as earned points do; a debit takes the oldest available
points and never overdraws (an adjustment may record the shortfall as debt when asked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.application.ports import LedgerLine, MemberRecord, NewLot, Posting, Transaction
from service.application.posting import DEBT_PAID
from service.core.errors import EventConflict, InsufficientPoints, NotFound
from service.core.expiry import lot_expiry
from service.core.ledger import Lot, Take, pay_debt, take_fifo
from service.core.programme import PointsPolicy

ADJUSTMENT, TRANSFER_OUT, TRANSFER_IN = "adjustment", "transfer_out", "transfer_in"


@dataclass(frozen=True, slots=True)
class Adjustment:
    adjustment_id: str
    customer_id: str
    points: int  # signed: a credit or a debit
    reason: str
    allow_debt: bool
    made_by: str  # the name of the API key that made it
    created_at: datetime

    def same_request(self, other: Adjustment) -> bool:
        return (self.customer_id, self.points, self.reason, self.allow_debt) == (
            other.customer_id,
            other.points,
            other.reason,
            other.allow_debt,
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer_id: str
    from_id: str
    to_id: str
    points: int
    made_by: str
    created_at: datetime

    def same_request(self, other: Transfer) -> bool:
        return (self.from_id, self.to_id, self.points) == (other.from_id, other.to_id, other.points)


@dataclass(frozen=True, slots=True)
class Balance:
    customer_id: str
    points_available: int
    points_debt: int


@dataclass(frozen=True, slots=True)
class Applied:
    """What a request did: ``created`` now, or a ``duplicate`` of one done before."""

    status: str
    record: Adjustment | Transfer
    balances: tuple[Balance, ...]


class ManualPointsStore(Protocol):
    def read_member(self, customer_id: str) -> MemberRecord | None: ...

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord: ...

    def lots(self, customer_id: str) -> list[Lot]: ...

    def find_adjustment(self, adjustment_id: str) -> Adjustment | None: ...

    def save_adjustment(self, adjustment: Adjustment, posting: Posting) -> None: ...

    def find_transfer(self, transfer_id: str) -> Transfer | None: ...

    def save_transfer(self, transfer: Transfer, postings: tuple[Posting, Posting]) -> None: ...


Transactions = Callable[[], Transaction[ManualPointsStore]]


def adjust_points(transactions: Transactions, request: Adjustment, policy: PointsPolicy) -> Applied:
    if request.points == 0:
        raise ValueError("an adjustment moves at least one point")
    with transactions() as uow:
        store = uow.store
        if store.read_member(request.customer_id) is None:
            raise NotFound(f"no member {request.customer_id!r}")
        member = store.lock_member(request.customer_id, request.created_at)
        earlier = store.find_adjustment(request.adjustment_id)
        if earlier is not None:
            if not earlier.same_request(request):
                raise EventConflict(
                    f"adjustment {request.adjustment_id!r} was already made with another body"
                )
            return Applied("duplicate", earlier, (_balance(member),))
        posting = Posting(member)
        note = f"{request.reason} (by {request.made_by})"
        if request.points > 0:
            credit(posting, request.points, request.created_at, policy, ADJUSTMENT, note)
        else:
            debit(
                posting,
                store.lots(request.customer_id),
                -request.points,
                ADJUSTMENT,
                note,
                allow_debt=request.allow_debt,
            )
        store.save_adjustment(request, posting)
        uow.commit()
    return Applied("created", request, (_balance(member),))


def transfer_points(transactions: Transactions, request: Transfer, policy: PointsPolicy) -> Applied:
    if not policy.transfers:
        raise TransfersOff("this programme does not allow points transfers (points.transfers)")
    if request.from_id == request.to_id:
        raise ValueError("a transfer goes to another member")
    if request.points <= 0:
        raise ValueError("a transfer moves at least one point")
    with transactions() as uow:
        store = uow.store
        for customer_id in (request.from_id, request.to_id):
            if store.read_member(customer_id) is None:
                raise NotFound(f"no member {customer_id!r}")
        # Both members locked in id order, so two transfers the other way cannot deadlock.
        locked = {
            customer_id: store.lock_member(customer_id, request.created_at)
            for customer_id in sorted((request.from_id, request.to_id))
        }
        sender, receiver = locked[request.from_id], locked[request.to_id]
        earlier = store.find_transfer(request.transfer_id)
        if earlier is not None:
            if not earlier.same_request(request):
                raise EventConflict(
                    f"transfer {request.transfer_id!r} was already made with another body"
                )
            return Applied("duplicate", earlier, (_balance(sender), _balance(receiver)))
        sent, received = Posting(sender), Posting(receiver)
        debit(
            sent,
            store.lots(request.from_id),
            request.points,
            TRANSFER_OUT,
            f"to {request.to_id} ({request.transfer_id})",
            allow_debt=False,
        )
        credit(
            received,
            request.points,
            request.created_at,
            policy,
            TRANSFER_IN,
            f"from {request.from_id} ({request.transfer_id})",
        )
        store.save_transfer(request, (sent, received))
        uow.commit()
    return Applied("created", request, (_balance(sender), _balance(receiver)))


class TransfersOff(LookupError):
    """The programme has no transfers; the edge answers 403."""


def credit(
    posting: Posting,
    points: int,
    at: datetime,
    policy: PointsPolicy,
    kind: str,
    note: str,
) -> None:
    """Points in: debt first, the rest a new lot that expires as earned points do."""
    member = posting.member
    paid, credited = pay_debt(member.points_debt, points)
    if credited:
        posting.new_lots.append(NewLot(credited, at, at, lot_expiry(policy, at), None, False))
        posting.ledger.append(
            LedgerLine(kind, credited, new_lot=len(posting.new_lots) - 1, note=note)
        )
        member.points_available += credited
    if paid:
        member.points_debt -= paid
        posting.ledger.append(
            LedgerLine(
                DEBT_PAID, 0, debt=-paid, note=f"{paid} of {points} points paid debt; {note}"
            )
        )


def debit(
    posting: Posting,
    lots: list[Lot],
    points: int,
    kind: str,
    note: str,
    *,
    allow_debt: bool,
) -> None:
    """Points out, oldest first. Short: refused, or (``allow_debt``) the rest owed."""
    member = posting.member
    available = sum(lot.remaining for lot in lots if not lot.pending)
    if points > available and not allow_debt:
        raise InsufficientPoints(f"needs {points} points, {available} available")
    takes: list[Take] = take_fifo(lots, min(points, available))
    posting.takes.extend(takes)
    for take in takes:
        posting.ledger.append(LedgerLine(kind, -take.points, lot_id=take.lot_id, note=note))
    member.points_available -= sum(take.points for take in takes)
    owed = points - sum(take.points for take in takes)
    if owed:
        member.points_debt += owed
        posting.ledger.append(LedgerLine(kind, 0, debt=owed, note=f"{owed} points owed; {note}"))


def _balance(member: MemberRecord) -> Balance:
    return Balance(member.customer_id, member.points_available, member.points_debt)
