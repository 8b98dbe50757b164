"""Using an issued offer, once."""

from __future__ import annotations

from typing import Any

from service.application.apply_event import Clock, UnitOfWorkFactory
from service.application.ports import MemberOffer
from service.core.errors import NotFound, OfferUnavailable


def redeem_offer(
    uow_factory: UnitOfWorkFactory, code: str, customer_id: str, reference: str | None, clock: Clock
) -> tuple[str, dict[str, Any]]:
    """Mark an offer used. The same member and reference again is a harmless repeat."""
    with uow_factory() as uow:
        store = uow.store
        offer = store.lock_offer(code)
        if offer is None:
            raise NotFound(f"no offer with code {code!r}")
        if offer.customer_id != customer_id:
            raise OfferUnavailable(f"offer {code!r} belongs to another member")
        now = clock()
        if offer.status == "redeemed":
            if reference is not None and reference == store.offer_reference(code):
                return "duplicate", _answer(offer, "redeemed")
            raise OfferUnavailable(f"offer {code!r} was already used")
        if offer.status == "expired" or offer.valid_until <= now:
            raise OfferUnavailable(f"offer {code!r} expired {offer.valid_until.isoformat()}")
        store.redeem_offer(code, now, reference)
        uow.commit()
    return "redeemed", _answer(offer, "redeemed")


def _answer(offer: MemberOffer, status: str) -> dict[str, Any]:
    return {
        "code": offer.code,
        "offer_id": offer.offer_id,
        "customer_id": offer.customer_id,
        "status": status,
    }
