"""What customer service, legal and member apps do besides events: adjust points by hand,
move points between members, copy or erase a member's data, and read the catalogues."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from service.api.auth import key_name, require
from service.api.context import services
from service.api.contract import BODY_PROBLEMS, Blueprint, problems
from service.application.catalogue import offer_catalogue, reward_catalogue
from service.application.manual_points import (
    Adjustment,
    Applied,
    Transfer,
    adjust_points,
    transfer_points,
)
from service.application.personal_data import erase_member, export_member
from service.event_schema import ID, URL_SAFE_ID, StrictSchema

blueprint = Blueprint("member_service", __name__)
catalogue = Blueprint("catalogue", __name__)
MAX_POINTS = 1_000_000_000


class AdjustmentRequest(StrictSchema):
    adjustment_id = fields.String(required=True, validate=ID)
    points = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=-MAX_POINTS, max=MAX_POINTS),
        metadata={"description": "a credit (positive) or a debit (negative), never 0"},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    allow_debt = fields.Boolean(
        load_default=False,
        metadata={"description": "a debit beyond the balance records the rest as debt"},
    )

    @validates_schema
    def moves_points(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("points") == 0:
            raise ValidationError("an adjustment moves at least one point", "points")


class TransferRequest(StrictSchema):
    transfer_id = fields.String(required=True, validate=ID)
    to = fields.String(required=True, validate=URL_SAFE_ID)
    points = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_POINTS)
    )


class MemberBalanceSchema(StrictSchema):
    customer_id = fields.String(required=True)
    points_available = fields.Integer(required=True)
    points_debt = fields.Integer(required=True)


class AdjustmentSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["applied", "duplicate"]))
    adjustment_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    points = fields.Integer(required=True)
    reason = fields.String(required=True)
    allow_debt = fields.Boolean(required=True)
    made_by = fields.String(required=True, metadata={"description": "the API key's name"})
    created_at = fields.DateTime(required=True)
    balance = fields.Nested(MemberBalanceSchema, required=True)


class TransferSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["applied", "duplicate"]))
    transfer_id = fields.String(required=True)
    from_id = fields.String(required=True, data_key="from")
    to_id = fields.String(required=True, data_key="to")
    points = fields.Integer(required=True)
    made_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    balances = fields.List(fields.Nested(MemberBalanceSchema), required=True)


class ExportSchema(StrictSchema):
    customer_id = fields.String(required=True)
    profile = fields.Dict(required=True)
    events = fields.List(fields.Dict(), required=True)
    ledger = fields.List(fields.Dict(), required=True)
    point_lots = fields.List(fields.Dict(), required=True)
    orders = fields.List(fields.Dict(), required=True)
    offers = fields.List(fields.Dict(), required=True)
    redemptions = fields.List(fields.Dict(), required=True)
    messages = fields.List(fields.Dict(), required=True)
    tier_history = fields.List(fields.Dict(), required=True)
    referrals = fields.List(fields.Dict(), required=True)
    adjustments = fields.List(fields.Dict(), required=True)
    transfers = fields.List(fields.Dict(), required=True)
    held_refunds = fields.List(fields.Dict(), required=True)
    referrer_awards = fields.List(fields.Dict(), required=True)


class ErasureSchema(StrictSchema):
    customer_id = fields.String(required=True, metadata={"description": "the id erased"})
    pseudonym = fields.String(
        required=True, metadata={"description": "where the ledger and amounts now stand"}
    )
    erased_at = fields.DateTime(required=True)
    erased_by = fields.String(required=True)


class RewardEntrySchema(StrictSchema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    cost = fields.Integer(required=True, metadata={"description": "points"})
    stock = fields.Integer(required=True, allow_none=True)
    stock_left = fields.Integer(required=True, allow_none=True)
    per_member = fields.Integer(required=True, allow_none=True)


class OfferEntrySchema(StrictSchema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    discount_percent = fields.Decimal(required=True, allow_none=True, as_string=True)
    valid_for_days = fields.Integer(
        required=True, metadata={"description": "how long an issued offer stays valid"}
    )


class RewardCatalogueSchema(StrictSchema):
    rewards = fields.List(fields.Nested(RewardEntrySchema), required=True)


class OfferCatalogueSchema(StrictSchema):
    offers = fields.List(fields.Nested(OfferEntrySchema), required=True)


def _answer(applied: Applied) -> tuple[dict[str, Any], int]:
    """The request as recorded and the balances after it (an adjustment's schema dumps the
    one member's as `balance`, a transfer's both as `balances`)."""
    status = "applied" if applied.status == "created" else "duplicate"
    balances = [vars_of(b) for b in applied.balances]
    body = {**vars_of(applied.record), "status": status, "balances": balances}
    return body | {"balance": balances[0]}, 201 if status == "applied" else 200


def vars_of(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


@blueprint.post("/v1/customers/<id:customer_id>/adjustments", tags=["customers"])
@require("customers:write")
@blueprint.arguments(AdjustmentRequest())
@blueprint.response(201, AdjustmentSchema())
@blueprint.alt_response(200, schema=AdjustmentSchema(), success=True)
@blueprint.doc(responses=problems(*BODY_PROBLEMS, 404, 409))
def post_adjustment(body: dict[str, Any], customer_id: str) -> Any:
    """Add or remove points by hand (idempotent on adjustment_id)

    201 when applied; 200 for the same request again; 409 for another body under the
    same id, or a debit beyond the balance without `allow_debt`. A credit pays debt first
    and expires as earned points do. The ledger line (kind `adjustment`) carries the reason
    and the name of the key that made it.
    """
    svc = services()
    request = Adjustment(
        body["adjustment_id"],
        customer_id,
        body["points"],
        body["reason"],
        body["allow_debt"],
        key_name(),
        svc.clock(),
    )
    return _answer(adjust_points(svc.uow, request, svc.rules.active.ruleset.programme.points))


@blueprint.post("/v1/customers/<id:customer_id>/transfers", tags=["customers"])
@require("customers:write")
@blueprint.arguments(TransferRequest())
@blueprint.response(201, TransferSchema())
@blueprint.alt_response(200, schema=TransferSchema(), success=True)
@blueprint.doc(responses=problems(*BODY_PROBLEMS, 404, 409))
def post_transfer(body: dict[str, Any], customer_id: str) -> Any:
    """Give points to another member (idempotent on transfer_id)

    Only where `program.yaml` sets `points.transfers: true` (403 otherwise). 201 when
    applied; 200 for the same request again; 409 for another body under the same id or
    too few points. Both ledgers show it (`transfer_out`, `transfer_in`).
    """
    if body["to"] == customer_id:
        raise ValidationError({"to": ["a transfer goes to another member"]})
    svc = services()
    request = Transfer(
        body["transfer_id"], customer_id, body["to"], body["points"], key_name(), svc.clock()
    )
    return _answer(transfer_points(svc.uow, request, svc.rules.active.ruleset.programme.points))


@blueprint.get("/v1/customers/<id:customer_id>/export", tags=["customers"])
@require("admin")
@blueprint.response(200, ExportSchema())
def get_export(customer_id: str) -> Any:
    """Everything held about a member (the right to a copy: GDPR, PIPL)"""
    return export_member(services().read_uow, customer_id)


@blueprint.delete("/v1/customers/<id:customer_id>", tags=["customers"])
@require("admin")
@blueprint.response(200, ErasureSchema())
def delete_customer(customer_id: str) -> Any:
    """Erase a member's personal data (the right to erasure: GDPR, PIPL)

    The ledger and every amount stay, under a new pseudonymous id, so balances and
    reports add up as before; profile fields, tags, message bodies and the personal parts
    of stored events go. A later event for the same id starts a new member. The erasure is
    recorded with the pseudonym, the time and the key's name.
    """
    svc = services()
    erasure = erase_member(svc.uow, customer_id, key_name(), svc.clock())
    return {"customer_id": customer_id, **vars_of(erasure)}


@catalogue.get("/v1/rewards", tags=["catalogue"])
@require("customers:read")
@catalogue.response(200, RewardCatalogueSchema())
def get_rewards() -> Any:
    """The rewards members can spend points on, with what stock is left"""
    svc = services()
    return {"rewards": reward_catalogue(svc.read_uow, svc.rules.active.ruleset.programme)}


@catalogue.get("/v1/offers", tags=["catalogue"])
@require("customers:read")
@catalogue.response(200, OfferCatalogueSchema())
def get_offers() -> Any:
    """The offers campaigns can issue, with their discount and validity"""
    return {"offers": offer_catalogue(services().rules.active.ruleset.programme)}
