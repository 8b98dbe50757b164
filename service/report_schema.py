"""The reports' contract: the JSON the HTTP API answers and `loyalty report` prints, dumped
from the records service.application.reports returns, and the query strings they take.

Counts are integers; rates are decimal text with 4 places and money decimal text with 2
(null where a rate has no divisor, or the programme sets no ``points.value``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from service.event_schema import StrictSchema


class DecimalText(fields.String):
    """A Decimal as plain text with the places it was given: "0.1500", never "1.5E-1"."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format(Decimal(value), "f")


def _rate(description: str) -> DecimalText:
    return DecimalText(
        required=True, allow_none=True, metadata={"description": f"{description}, 4 places"}
    )


def _money(description: str) -> DecimalText:
    return DecimalText(
        required=True,
        allow_none=True,
        metadata={"description": f"{description}, in the programme's currency, 2 places"},
    )


# Days whose midnight, and the next, are a time in every zone.
DAYS = validate.Range(min=date(1900, 1, 1), max=date(9998, 12, 31))


def _day(description: str, **kwargs: Any) -> fields.Date:
    return fields.Date(validate=DAYS, metadata={"description": description}, **kwargs)


def _count() -> fields.Integer:
    return fields.Integer(required=True)


class MemberFiguresSchema(StrictSchema):
    total = _count()
    new = _count()
    active = _count()


class PointFiguresSchema(StrictSchema):
    issued = _count()
    redeemed = _count()
    expired = _count()
    clawed_back = _count()
    outstanding = _count()


class OrderFiguresSchema(StrictSchema):
    count = _count()
    revenue = _money("the orders' amounts less their refunds")
    average_value = _money("revenue per order")
    repurchase_rate = _rate("the share of buyers with two or more orders")


class ReferralFiguresSchema(StrictSchema):
    count = _count()
    converted = _count()


class CampaignFiguresSchema(StrictSchema):
    campaign = fields.String(required=True)
    points = _count()
    members = _count()
    cost = _money("points times points.value")
    budget_used = _rate("the share of budget.points the period took")


class KpiReportSchema(StrictSchema):
    from_date = fields.Date(required=True, data_key="from")
    to_date = fields.Date(required=True, data_key="to")
    currency = fields.String(required=True)
    members = fields.Nested(MemberFiguresSchema, required=True)
    points = fields.Nested(PointFiguresSchema, required=True)
    redemption_rate = _rate("redeemed / issued")
    breakage_rate = _rate("expired / issued")
    orders = fields.Nested(OrderFiguresSchema, required=True)
    referrals = fields.Nested(ReferralFiguresSchema, required=True)
    tiers = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "members by the tier they held at `to`"},
    )
    campaigns = fields.List(fields.Nested(CampaignFiguresSchema), required=True)


class ExpiryMonthSchema(StrictSchema):
    month = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "YYYY-MM in the programme's time zone; null: never expires"},
    )
    points = _count()
    value = _money("the points' worth")


class LiabilityReportSchema(StrictSchema):
    as_of = fields.Date(required=True)
    currency = fields.String(required=True)
    point_value = DecimalText(
        required=True, allow_none=True, metadata={"description": "points.value"}
    )
    points_outstanding = _count()
    value = _money("the points' worth")
    expected_breakage = _rate("points.expected_breakage")
    value_after_breakage = _money("value less the expected breakage")
    by_expiry_month = fields.List(fields.Nested(ExpiryMonthSchema), required=True)


class KpiQuery(StrictSchema):
    from_date = _day("the first day, in the programme's time zone", required=True, data_key="from")
    to_date = _day(
        "the day after the last (the period is [from, to))", required=True, data_key="to"
    )
    campaign = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata={"description": "list this campaign alone"},
    )

    @validates_schema
    def _forwards(self, data: dict[str, Any], **_: Any) -> None:
        if "from_date" in data and "to_date" in data and data["to_date"] <= data["from_date"]:
            raise ValidationError("must be a day after from", field_name="to")


class LiabilityQuery(StrictSchema):
    as_of = _day("the day whose end the figure is taken at (default: today)")
