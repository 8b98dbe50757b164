"""A fuzz target over the JSON body parser, on SQLite and PostgreSQL: random bytes,
random and deep JSON, and events carrying hostile text and numbers, posted to
/v1/events and /v1/events/batch through the Flask test client. No answer is a 5xx, no
request spins for WATCHDOG_S of CPU, and whatever was stored reads back as PostgreSQL
`jsonb` and holds no NUL or lone surrogate.

Bounded in `make test` (LOYALTY_FUZZ_EXAMPLES unset: a few derandomised examples per
target); `make fuzz` sets LOYALTY_FUZZ_EXAMPLES for a longer, random run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Engine, cast, select
from sqlalchemy.dialects.postgresql import JSONB

from service.bootstrap import Services
from service.storage.tables import events, metadata
from tests.conftest import AUTH

MAX_EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = "LOYALTY_FUZZ_EXAMPLES" not in os.environ
# CPU seconds one request may take before it counts as a hang: CPU, not wall-clock time,
# so a machine busy with other work does not trip it, and a request spinning does.
WATCHDOG_S = 2.0
PATHS = ("/v1/events", "/v1/events/batch")
JSON_TYPE = {**AUTH, "Content-Type": "application/json"}
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,  # the watchdog bounds time; hypothesis's deadline would time speed
    database=None,
    suppress_health_check=list(HealthCheck),
)
_ids = itertools.count(1)
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # text PostgreSQL's jsonb cannot hold


class Hung(Exception):
    """A request used WATCHDOG_S of CPU."""


@contextmanager
def watchdog(what: str) -> Iterator[None]:
    """Raise Hung in this thread once the process has spent WATCHDOG_S of CPU in here."""
    assert threading.current_thread() is threading.main_thread(), "signals need the main thread"

    def bark(_signal: int, _frame: FrameType | None) -> None:
        raise Hung(f"{what} took more than {WATCHDOG_S} s of CPU")

    previous = signal.signal(signal.SIGPROF, bark)
    signal.setitimer(signal.ITIMER_PROF, WATCHDOG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def spin() -> None:
    while True:
        pass


def test_the_watchdog_stops_a_request_that_spins() -> None:
    with pytest.raises(Hung), watchdog("a spin"):
        spin()


def send(client: FlaskClient, path: str, data: bytes) -> int:
    with watchdog(f"POST {path} with {data[:80]!r}..."):
        response = client.post(path, data=data, headers=JSON_TYPE)
    assert response.status_code < 500, (path, data[:300], response.get_data(as_text=True))
    return response.status_code


def send_everywhere(client: FlaskClient, event_json: bytes, batch_json: bytes) -> None:
    send(client, PATHS[0], event_json)
    send(client, PATHS[1], batch_json)


# -- what is sent

HOSTILE_CHARACTERS = st.sampled_from(
    ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "/", "\\", '"', "\u2028", "\ufeff", "é"]
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=HOSTILE_CHARACTERS, min_size=1, max_size=5),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Lu", "Nd"]), max_size=10),
)
RAW_NUMBERS = st.one_of(
    st.sampled_from(
        ["1e999999", "1e1000000", "-1e-1000000", "-0", "-0.0", "1" * 60, "0e99999", "1E-31"]
    ),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "")),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HOSTILE_TEXT)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=20,
)


class Raw:
    """A JSON number written exactly as given (json.dumps would rewrite it)."""

    def __init__(self, number: str) -> None:
        self.number = number


def dumps(value: Any) -> bytes:
    raws: list[str] = []

    def place(o: Any) -> str:
        if isinstance(o, Raw):
            raws.append(o.number)
            return f"@@raw{len(raws) - 1}@@"
        raise TypeError(type(o))

    written = json.dumps(value, default=place)
    for i, number in enumerate(raws):
        written = written.replace(f'"@@raw{i}@@"', number, 1)
    return written.encode("ascii")  # json.dumps escapes everything else


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    """A purchase or activity that is valid but for what the draws put in it."""
    kind = draw(st.sampled_from(["purchase", "activity"]))
    body: dict[str, Any] = {
        "event_id": f"fuzz-{next(_ids)}",
        "type": kind,
        "customer_id": draw(st.sampled_from(["fz-a", "fz-b", "fz-c"]) | HOSTILE_TEXT),
        "occurred_at": "2026-12-02T10:00:00+08:00",
    }
    if kind == "purchase":
        body["order_id"] = f"order-{next(_ids)}"
        body["amount"] = draw(st.just("12.50") | RAW_NUMBERS.map(Raw))
        body["channel"] = draw(st.just("app") | HOSTILE_TEXT)
        body["items"] = [
            {"sku": draw(HOSTILE_TEXT), "price": draw(st.just("1") | RAW_NUMBERS.map(Raw))}
        ]
    else:
        body["kind"] = "review"
        values = HOSTILE_TEXT | RAW_NUMBERS.map(Raw) | st.booleans() | ANY_JSON
        body["attributes"] = draw(st.dictionaries(HOSTILE_TEXT, values, max_size=4))
    return body


def deep(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# -- the targets


@pytest.mark.slow
def test_random_bytes_never_answer_5xx_nor_hang(client: FlaskClient) -> None:
    prefixes = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00"])

    @FUZZ
    @given(prefix=prefixes, data=st.binary(max_size=512))
    def fuzz(prefix: bytes, data: bytes) -> None:
        send_everywhere(client, prefix + data, prefix + data)

    fuzz()


@pytest.mark.slow
def test_random_and_deep_json_never_answer_5xx_nor_hang(client: FlaskClient) -> None:
    @FUZZ
    @given(value=ANY_JSON, depth=st.integers(min_value=0, max_value=5000))
    def fuzz(value: Any, depth: int) -> None:
        body = dumps(value)
        send_everywhere(client, deep(depth, body), dumps({"events": [value]}))
        send(client, PATHS[1], b'{"events": [' + deep(depth) + b"]}")

    fuzz()


@pytest.mark.slow
def test_hostile_events_never_answer_5xx_and_what_is_stored_reads_back_as_jsonb(
    client: FlaskClient, services: Services
) -> None:
    @FUZZ
    @given(one=hostile_events(), other=hostile_events(), encoding=st.sampled_from(ENCODINGS))
    def fuzz(one: dict[str, Any], other: dict[str, Any], encoding: str) -> None:
        single = dumps(one)
        send_everywhere(client, reencode(single, encoding), dumps({"events": [other, one]}))

    fuzz()

    assert_stored_json_is_clean(services.db)


ENCODINGS = ["utf-8", "utf-8", "utf-8", "utf-16", "utf-32-le", "utf-8-sig"]


def reencode(body: bytes, encoding: str) -> bytes:
    """The same JSON in another encoding (lone surrogates kept as they are)."""
    return body.decode("utf-8", "surrogatepass").encode(encoding, "surrogatepass")


def unstorable(value: Any) -> list[str]:
    """Every string or key in a JSON value that holds a NUL or a lone surrogate."""
    if isinstance(value, str):
        return [value] if UNSTORABLE.search(value) else []
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in unstorable(k) + unstorable(v)]
    if isinstance(value, list):
        return [found for item in value for found in unstorable(item)]
    return []


def assert_stored_json_is_clean(engine: Engine) -> None:
    """Every JSON column of every table reads back as jsonb (PostgreSQL) and holds no
    NUL or lone surrogate (both stores)."""
    columns = [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, JSON)
    ]
    with engine.connect() as connection:
        stored = connection.execute(select(events.c.event_id)).scalars().all()
        assert stored, "the fuzz stored no event at all: nothing was checked"
        for table, column in columns:
            for value in connection.execute(select(column).where(column.is_not(None))).scalars():
                assert not unstorable(value), (table.name, column.name, value)
            if engine.dialect.name == "postgresql":
                connection.execute(select(cast(column, JSONB))).all()
