"""The vocabulary rule files are declared in: marshmallow fields over line-numbered YAML.

A field checks one value in the words `loyalty rules check` prints ("tier min must be a
number, got str 'x'") and carries its JSON Schema (``json``); a Section is a mapping of
such fields that refuses other keys. programme_parser, campaign_parser and effect_parser
declare the rule files with them, and json_schema walks the same declaration for editors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validates_schema

from service.core.durations import parse_duration
from service.rules.problems import kind_of, suggest
from service.rules.yaml_source import LocatedDict, LocatedList

Json = dict[str, Any]
TEXT: Json = {"type": "string", "minLength": 1}
FLAG: Json = {"type": "boolean"}
NUMBER_VALUE: Json = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}]
}
DURATION: Json = {
    "type": "string",
    "pattern": r"^[0-9]+[smhdw]$",
    "description": "a whole number and a unit: s, m, h, d or w (30d, 12h, 2w)",
}


class Value(fields.Field):  # type: ignore[type-arg]
    """One value of a rule file: ``check`` gives what the service uses or raises
    ValidationError saying what was expected; ``json`` tells editors the same."""

    JSON: ClassVar[Json] = {}

    def __init__(self, what: str = "", *, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what
        self.json: Json = {**self.JSON, "description": description} if description else self.JSON

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kw: Any) -> Any:
        if value is None and not self.allow_none:  # `key:` with nothing: say what was expected
            return self._deserialize(value, attr, data, **kw)
        return super().deserialize(value, attr, data, **kw)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.check(value, self.what or str(self.name))

    def check(self, value: Any, what: str) -> Any:
        return value

    def make_error(self, key: str, **kwargs: Any) -> ValidationError:
        needed = self.error_messages.get(key)
        return ValidationError(needed()) if callable(needed) else super().make_error(key, **kwargs)


class Text(Value):
    JSON = TEXT

    def check(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"{what} must be text, got {kind_of(value)}")
        return value


class Description(Value):
    """Free text; anything YAML reads (a date, a number) is taken as its text."""

    JSON = {"type": "string"}

    def check(self, value: Any, what: str) -> str:
        return str(value)


class WholeNumber(Value):
    def __init__(
        self,
        what: str = "",
        minimum: int | None = 0,
        most: int | None = None,
        over: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(what, **kwargs)
        self.minimum, self.most, self.over = minimum, most, over
        bounds = {"minimum": minimum, "maximum": most}
        self.json = {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}

    def check(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{what} must be a whole number, got {kind_of(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"{what} must be at least {self.minimum}, got {value}")
        if self.most is not None and value > self.most:
            raise ValidationError(self.over)
        return value


class Number(Value):
    """A non-negative decimal (positive with ``positive``), at most ``most`` if given."""

    JSON = NUMBER_VALUE

    def __init__(
        self,
        what: str = "",
        positive: bool = False,
        most: int | None = None,
        over: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(what, **kwargs)
        self.positive, self.most, self.over = positive, most, over

    def check(self, value: Any, what: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError(f"{what} must be a number, got {kind_of(value)}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValidationError(f"{what} must be a number, got {value!r}") from None
        if not number.is_finite() or number < 0 or (self.positive and number == 0):
            sign = "positive" if self.positive else "non-negative"
            raise ValidationError(f"{what} must be a {sign} number")
        if self.most is not None and number > self.most:
            raise ValidationError(self.over)
        return number


class Duration(Value):
    JSON = DURATION

    def __init__(self, what: str = "", *, zero: bool = False, **kwargs: Any) -> None:
        super().__init__(what, **kwargs)
        self.zero = zero

    def check(self, value: Any, what: str) -> timedelta:
        try:
            return parse_duration(value, zero=self.zero)
        except ValueError as error:
            raise ValidationError(f"{what}: {error}") from None


class Flag(Value):
    JSON = FLAG

    def check(self, value: Any, what: str) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{what} takes true or false")
        return value


class OneOf(Value):
    """One of ``choices``; ``refusal`` may use {choices}, {value}, {kind} and {hint}."""

    def __init__(self, choices: Iterable[str], refusal: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices, self.refusal = tuple(choices), refusal
        self.json = {"enum": list(self.choices)}

    def check(self, value: Any, what: str) -> str:
        if value not in self.choices:
            hint = suggest(str(value), self.choices)
            choices, kind = ", ".join(self.choices), kind_of(value)
            words = {"choices": choices, "value": value, "kind": kind, "hint": hint}
            raise ValidationError(self.refusal.format(**words))
        return str(value)


class Clock(Value):
    JSON = {"type": "string", "pattern": r"^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$"}

    def check(self, value: Any, what: str) -> str:
        try:
            time.fromisoformat(value if isinstance(value, str) else "")
        except ValueError:
            raise ValidationError(
                f'{what} must be a time of day in quotes, such as "21:00"'
            ) from None
        return str(value)


class Currency(Text):
    JSON = {"type": "string", "pattern": "^[A-Za-z]{3}$"}

    def check(self, value: Any, what: str) -> str:
        text = super().check(value, what)
        if len(text) != 3 or not text.isalpha():
            raise ValidationError(f"currency {text!r} is not an ISO 4217 code such as CNY")
        return text.upper()


class TimeZone(Text):
    def check(self, value: Any, what: str) -> str:
        text = super().check(value, what)
        try:
            ZoneInfo(text)
        except (ValueError, KeyError, OSError):
            message = f"{what}: {text!r} is not an IANA time zone such as Asia/Shanghai"
            raise ValidationError(message) from None
        return text


class YearlyDay(Value):
    """``fixed: "12-31"``: the day of the year (month-day) on whose end points expire."""

    JSON = {"type": "string", "pattern": "^[01][0-9]-[0-3][0-9]$"}

    def check(self, value: Any, what: str) -> tuple[int, int]:
        try:
            month, day = (int(part) for part in str(value).split("-"))
            date(2000, month, day)  # a leap year, so 02-29 is a day
        except ValueError:
            raise ValidationError(
                f'{what} takes a day of the year in quotes, e.g. "12-31"'
            ) from None
        return month, day


class Cuts(Value):
    """Four cut points between the five RFM scores: rising, or falling for days."""

    JSON = {"type": "array", "items": NUMBER_VALUE, "minItems": 4, "maxItems": 4}

    def __init__(self, descending: bool = False) -> None:
        super().__init__()
        self.descending = descending

    def check(self, value: Any, what: str) -> tuple[Decimal, ...]:
        if not isinstance(value, LocatedList) or len(value) != 4:
            raise ValidationError(f"{what} takes four cut points, e.g. [2, 4, 8, 16]")
        errors: list[Any] = []
        numbers: list[Decimal] = []
        for cut in value:
            try:
                numbers.append(Number().check(cut, what))
            except ValidationError as error:
                errors += error.messages
        if numbers != sorted(numbers, reverse=self.descending) or len(set(numbers)) < len(numbers):
            order = "falling (days: the fewer, the better)" if self.descending else "rising"
            errors.append(f"{what} cut points must be {order}")
        if errors:
            raise ValidationError(errors)
        return tuple(numbers)


class Cron(Value):
    JSON = {"type": "string"}

    def check(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or len(value.split()) != 5:
            raise ValidationError(f'{what} takes five fields in quotes, e.g. "0 10 * * *"')
        from apscheduler.triggers.cron import CronTrigger

        try:  # the zone moves the moments, never the validity
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as error:
            raise ValidationError(f"{what} {value!r}: {error}") from None
        return value


class Nested(Value):
    """A section: a mapping whose keys a Section schema declares. ``word``, if given, is
    also taken in place of the mapping (``expiry: never``) and loads as ``{word: True}``."""

    def __init__(
        self, section: type[Section], what: str = "", *, word: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(what or section.what, **kwargs)
        self.section = section()  # a schema loads any number of mappings
        self.word = word

    def check(self, value: Any, what: str) -> Any:
        if self.word is not None and value == self.word:
            return {self.word: True}
        if not isinstance(value, LocatedDict):
            also = f" or {self.word!r}" if self.word else ""
            raise ValidationError(f"{what} must be a mapping{also}, got {kind_of(value)}")
        return self.section.load(value)


class Entries(Value):
    """A list of ``item``s. With ``flat``, every item's error is the list's own (at its key)."""

    def __init__(
        self,
        item: Value,
        what: str = "",
        minimum: int = 0,
        empty: str = "",
        flat: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(what, **kwargs)
        self.item, self.minimum, self.empty, self.flat = item, minimum, empty, flat

    def check(self, value: Any, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationError(f"{what} must be a list, got {kind_of(value)}")
        if len(value) < self.minimum:
            raise ValidationError(self.empty)
        found, errors = [], {}
        for index, item in enumerate(value):
            try:
                found.append(self.item.deserialize(item))
            except ValidationError as error:
                found.append(error.valid_data)  # what of it was valid, at its index
                errors[index] = error.messages
        if errors:
            flat = [m for messages in errors.values() for m in _flat(messages)]
            raise ValidationError(flat if self.flat else errors, valid_data=found)
        return found


def _flat(messages: Any) -> Iterator[Any]:
    if isinstance(messages, dict):
        for inner in messages.values():
            yield from _flat(inner)
    elif isinstance(messages, list):
        for inner in messages:
            yield from _flat(inner)
    else:
        yield messages


class Section(Schema):
    """A mapping of a rule file: the keys its fields declare, each checked; others refused.

    ``make`` builds what the service uses from the checked values; ``needs_one`` refuses
    an empty mapping ("budget needs points, offers or share_of_revenue"); the JSON Schema
    defines a section with a ``json_name`` once, under $defs."""

    what: ClassVar[str] = ""
    make: ClassVar[Any] = None
    needs_one: ClassVar[bool] = False
    json_name: ClassVar[str] = ""

    class Meta:
        unknown = EXCLUDE  # refused below, each at its line with a suggestion
        register = False  # never looked up by name

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:  # type: ignore[type-arg]
        if field_obj.error_messages["required"] == fields.Field.default_error_messages["required"]:
            key = field_obj.data_key or field_name
            field_obj.error_messages["required"] = f"{self.what} needs {key!r}"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = [field.data_key or name for name, field in self.fields.items()]

    def unknown_key(self, key: str) -> str:
        return f"unknown key {key!r} in {self.what}{suggest(key, self.keys)}"

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def refuse_unknown_keys(self, data: Any, original: Any, **kwargs: Any) -> None:
        unknown = {key: [self.unknown_key(key)] for key in original if key not in self.keys}
        if unknown:
            raise ValidationError(unknown)
        if self.needs_one and not original:
            *most, last = self.keys
            raise ValidationError(f"{self.what} needs {', '.join(most)} or {last}")

    @post_load
    def build(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.make(**data) if self.make is not None else data
