"""The durable-rules target: rules compiled to its declarative JSON, one fact at a time.

The only module that imports durable-rules (2.0.28, frozen upstream). It keeps to the
envelope in which durable-rules was found to behave correctly (stateless evaluation of
one event at a time, facts rather than events, one sid behind a lock, effects collected
by closures, strict compilation), and to what the contract tests in
tests/rules/test_durable_contract.py pin:

* one host per matcher with the dispatcher threads switched off, one fixed sid, a lock;
  each evaluation asserts one fact and retracts it in ``finally``, so every matching
  rule fires (``post`` would fire only the first) and nothing is left behind;
* actions only append their rule key to the matcher's collector;
* the fact is ``{"sid", "id", "k": 1, "p0": ..., "p1": ...}``: each fact path a rule
  reads gets a short alias, so payload keys never meet the reserved ``sid``/``id``, dots
  in paths are never read as nesting, and paths no rule reads are not sent at all;
* every rule starts with ``k == 1``. Without a positive test durable-rules matches its
  own per-sid state fact: a rule of only ``$nex`` fired on it, and since each action
  rewrites that fact, fired again forever;
* values are sent only when the engine compares them as the reference does (see
  ``_text`` and ``_number``), otherwise the call raises EngineFailure and the caller
  falls back to the reference engine;
* rules the engine cannot be trusted with are evaluated by the reference inside this
  matcher (``reference_only``, each with its reason), never sent to durable-rules; every
  rule with ``matches`` is one of them (``MATCHES_REASON``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import durable_rules_engine
from durable import engine

from service.core.conditions import (
    ELEMENT,
    AllOf,
    AnyOf,
    ArrayAll,
    ArrayAny,
    Compare,
    Condition,
    Exists,
    Facts,
    Matches,
)
from service.core.programme import Rule
from service.rules.reference import ReferenceMatcher

Action = Callable[[Any], None]
ActionFactory = Callable[[str], Action]
DurableJson = dict[str, Any]

SID = "eval"
MARK = "k"  # every evaluation fact carries k: 1 and every rule tests it first
INIT_FIELD = "z"
INIT_RULE = "init"

# The hash table of equality tests under one node has 512 slots; registering a 513th
# value spins forever. Counting distinct (path, value) pairs over the whole ruleset
# bounds every node's count from above.
MAX_EQUALITY_VALUES = 500
# durable-rules expands `$or` inside `$and` into one network path per alternative.
MAX_ALTERNATIVES = 256
# Lifting `or` out of a list element multiplies alternatives; past this many the rule
# stays with the reference instead.
MAX_ELEMENT_OPTIONS = 16
# The engine keeps string lengths in 16 bits: 70,000 x's equalled 70,001 x's.
MAX_STRING_LENGTH = 1024
# Integers beyond a double's exact range are not worth trusting to the C side.
MAX_EXACT_INTEGER = 2**53
# json.dumps escapes these, and the engine compares and matches the escaped text:
# 'a#' < 'a"' held because it saw `a\"`. Surrogates cannot be encoded at all.
_ESCAPED = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')
_ERROR_CODE = re.compile(r"error code: (\d+)")
_KNOWN_CODES = {
    "204": "a value the engine's JSON parser rejects",
    "302": "more than 255 properties in one fact",
    "303": "the fact satisfied more than 64 tests at once",
}

_OPERATORS = {"ne": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}

TRUE: Condition = AllOf(())
FALSE: Condition = AnyOf(())

STRING, NUMBER, BOOLEAN, ARRAY = "string", "number", "boolean", "array"


class EngineFailure(Exception):
    """durable-rules could not evaluate these facts; the reference engine should."""


class _Unrepresentable(Exception):
    pass


# ------------------------------------------------------------------------ simplifying


def simplify(condition: Condition) -> Condition:
    """Fold constants and flatten nesting; TRUE is AllOf(()) and FALSE is AnyOf(()).

    An empty `$and` hangs durable-rules on the first fact, so no empty list may survive
    into the JSON: a rule that folds to TRUE gets only the mark test, one that folds to
    FALSE can never fire in either engine and is not compiled at all.
    """
    match condition:
        case AllOf(items) | AnyOf(items):
            # FALSE absorbs a conjunction and TRUE a disjunction; nested ones of the same
            # kind flatten into this one.
            kind, absorbing = (AllOf, FALSE) if isinstance(condition, AllOf) else (AnyOf, TRUE)
            kept: list[Condition] = []
            for item in items:
                part = simplify(item)
                if part == absorbing:
                    return absorbing
                kept.extend(part.items if isinstance(part, kind) else (part,))
            unique = tuple(dict.fromkeys(kept))
            return unique[0] if len(unique) == 1 else kind(unique)
        case ArrayAny(path, element) | ArrayAll(path, element):
            inner = simplify(element)
            # No element can satisfy FALSE: `any` never holds, nor does `all` (non-empty).
            return FALSE if inner == FALSE else type(condition)(path, inner)
    return condition


def distribute(condition: Condition) -> Condition:
    """Lift `or` out of `any` list elements: any(a or b) is any(a) or any(b).

    Inside a list element durable-rules decides an `$or` over different fields by the
    element's last field alone (`q > 3 or c == "x"` was false for {q: 5, c: "y"}). An `$or`
    over one field is right, and `$and` is, so only the mixed `$or` is lifted; `all`
    does not distribute over `or`, so a mixed `$or` under `all` is left for the reference.
    """
    match condition:
        case AllOf(items):
            return simplify(AllOf(tuple(distribute(item) for item in items)))
        case AnyOf(items):
            return simplify(AnyOf(tuple(distribute(item) for item in items)))
        case ArrayAny(path, element):
            options = _disjuncts(element, whole=not _ends_in_or(element))
            if options is None or len(options) == 1:
                return condition
            return simplify(AnyOf(tuple(ArrayAny(path, option) for option in options)))
    return condition


def _disjuncts(condition: Condition, whole: bool = True) -> list[Condition] | None:
    """The condition as alternatives, keeping an `or` over one field whole (unless not
    ``whole``); None if too many."""
    match condition:
        case AnyOf(items) if not (whole and _one_field(condition)):
            options = []
            for item in items:
                more = _disjuncts(item, whole)
                if more is None:
                    return None
                options.extend(more)
            return options if len(options) <= MAX_ELEMENT_OPTIONS else None
        case AllOf(items):
            combined: list[tuple[Condition, ...]] = [()]
            for item in items:
                more = _disjuncts(item, whole)
                if more is None:
                    return None
                combined = [(*done, option) for done in combined for option in more]
                if len(combined) > MAX_ELEMENT_OPTIONS:
                    return None
            return [simplify(AllOf(option)) for option in combined]
    return [condition]


def _ends_in_or(element: Condition) -> bool:
    """Would a list element's last test be an `$or`, even with its `or`s put first?"""
    match element:
        case AnyOf():
            return True
        case AllOf(items):
            return all(isinstance(item, AnyOf) for item in items)
    return False


def _one_field(condition: Condition) -> bool:
    return len(set(_paths(condition))) == 1 and not any(len(key) > 1 for key in _paths(condition))


def scoped(rule: Rule) -> Condition:
    """The rule's condition as the reference applies it, type index included."""
    if rule.event_type is None:
        return rule.condition
    return AllOf((Compare("type", "eq", rule.event_type), rule.condition))


def alternatives(condition: Condition) -> int:
    """How many network paths durable-rules builds for a condition (its DNF size)."""
    match condition:
        case AllOf(items):
            count = 1
            for item in items:
                count *= alternatives(item)
            return count
        case AnyOf(items):
            return sum(alternatives(item) for item in items)
    return 1


# ----------------------------------------------------------------------------- values


def _text(value: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise _Unrepresentable(f"a text of {len(value)} characters (at most {MAX_STRING_LENGTH})")
    if _ESCAPED.search(value):
        raise _Unrepresentable(f"the text {value[:40]!r} has quotes, backslashes or controls")
    return value


def _number(value: Decimal) -> int | float:
    """The JSON number the engine parses back to exactly this value's order and equality.

    Integers go as integers; fractions as the float whose shortest repr is the decimal
    itself, so distinct decimals stay distinct floats. The engine's parser refuses
    exponents (`1e-05`, `1e+20`: error 204), so those values are not sent.
    """
    if not value.is_finite():
        raise _Unrepresentable(f"the number {value}")
    if value == value.to_integral_value():
        integer = int(value)
        if abs(integer) < MAX_EXACT_INTEGER:
            return integer
        raise _Unrepresentable(f"the integer {value} (beyond 2**53)")
    number = float(value)
    shown = repr(number)
    if "e" in shown or Decimal(shown) != value:
        raise _Unrepresentable(f"the number {value} (no exact short float form)")
    return number


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, Decimal):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return None


def _literal(value: object) -> bool | int | float | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, str):
        return _text(value)
    raise _Unrepresentable(f"the literal {value!r}")


def _encode(value: object, kind: str | None) -> object:
    """A fact value as sent; its kind must be the one the rules compare it as."""
    if kind is None:  # read only by exists/absent: any present value will do
        return True
    if kind == BOOLEAN and type(value) is bool:
        return value
    if kind == NUMBER and type(value) is Decimal:
        return _number(value)
    if kind == STRING and type(value) is str:
        return _text(value)
    raise _Unrepresentable(f"a {type(value).__name__} where the rules expect a {kind}")


# ---------------------------------------------------------------------------- regexes

# Every rule with `matches` stays with the reference (RE2). durable-rules' `$mt` has a
# dialect of its own (Lua-like `%` escapes) whose DFA disagreed with a full match whenever
# `.` was followed by more pattern, and building that DFA is itself unsafe: compiling
# `[a-z]{0,20}` eight times over took 1.4 s, twelve times aborted the process with heap
# corruption (tests/rules/test_durable_contract.py pins both).
MATCHES_REASON = (
    "`matches`: durable-rules' own regex dialect differs from RE2's and building its DFA "
    "can stall or crash the process"
)

# durable-rules builds `$or` as a node whose right operand it never sets, then checks
# that operand's type when the `$or` is the last test of a list element (`$iany`/`$iall`)
# and refuses the whole ruleset (code 102) when the leftover memory happens to say
# "identifier" (src/rules/rete.c at 72070f4: createForwardAlpha, and createAlpha's array
# branch). So an element never ends in `$or`: an `any` is split into one `any` per
# alternative, an `and` puts its `or`s first, and what is left stays with the reference.
ELEMENT_OR_REASON = (
    "a list element that is only `or`s (such as `not` or `in` on an item field under "
    "`all`): durable-rules reads an unset node there and may refuse the rules"
)


# --------------------------------------------------------------------------- compiling


@dataclass
class _Slot:
    """A fact path sent to the engine, under a short alias."""

    path: str
    alias: str
    kind: str | None = None  # None: read only by exists/absent
    elements: dict[str, _Slot] = field(default_factory=dict)  # for arrays

    def encode(self, value: object) -> object:
        if self.kind != ARRAY:
            return _encode(value, self.kind)
        if not isinstance(value, tuple):
            raise _Unrepresentable(f"a {type(value).__name__} where the rules expect a list")
        scalar = self.elements.get(ELEMENT)
        if scalar is not None:
            return [_encode(_present(element), scalar.kind) for element in value]
        encoded = []
        for element in value:
            if not isinstance(element, Mapping):
                raise _Unrepresentable(f"a list element {element!r} that is not a mapping")
            encoded.append(
                {
                    slot.alias: _encode(element[slot.path], slot.kind)
                    for slot in self.elements.values()
                    if element.get(slot.path) is not None
                }
            )
        return encoded


def _present(element: object) -> object:
    if element is None or isinstance(element, Mapping):
        raise _Unrepresentable(f"a list element {element!r} where text is expected")
    return element


@dataclass(frozen=True)
class ReferenceOnly:
    rule: Rule
    reason: str


class _Usage:
    """Which kind each path (and each array element path) is read as, over all rules."""

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, ...], set[str | None]] = {}

    def record(self, condition: Condition, scope: tuple[str, ...] = ()) -> None:
        match condition:
            case Compare(path, _, value):
                self._add((*scope, path), _kind(value))
            case Exists(path):
                self._add((*scope, path), None)
            case Matches(path):
                self._add((*scope, path), STRING)
            case AllOf(items) | AnyOf(items):
                for item in items:
                    self.record(item, scope)
            case ArrayAny(path, element) | ArrayAll(path, element):
                self._add((*scope, path), ARRAY)
                self.record(element, (*scope, path))

    def _add(self, key: tuple[str, ...], kind: str | None) -> None:
        self.kinds.setdefault(key, set()).add(kind)

    def kind(self, key: tuple[str, ...]) -> str | None:
        definite = self.kinds.get(key, set()) - {None}
        return next(iter(definite)) if definite else None

    def conflict(self, key: tuple[str, ...]) -> bool:
        if len(self.kinds.get(key, set()) - {None}) > 1:
            return True
        # An array read both as text elements and as mappings cannot be encoded one way.
        if len(key) == 1 and self.kind(key) == ARRAY:
            element_paths = {k[1] for k in self.kinds if len(k) == 2 and k[0] == key[0]}
            return ELEMENT in element_paths and len(element_paths) > 1
        return False


class DurablePlan:
    """Rules compiled for durable-rules, and the encoding of facts that goes with them."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.sent: list[tuple[Rule, Condition]] = []
        self.reference_only: list[ReferenceOnly] = []
        self._slots: dict[str, _Slot] = {}
        self._equalities: set[tuple[tuple[str, ...], str, object]] = set()

        folded = [(rule, distribute(simplify(scoped(rule)))) for rule in rules]
        usage = _Usage()
        for _, condition in folded:
            usage.record(condition)
        for rule, condition in folded:
            if condition == FALSE:
                continue  # holds for no facts, in either engine
            reason = self._refusal(condition, usage)
            if reason is not None:
                self.reference_only.append(ReferenceOnly(rule, reason))
                continue
            self._equalities |= _equalities(condition)
            self._allocate(condition, usage)
            self.sent.append((rule, condition))

        self._bodies = [self._rule_json(condition) for _, condition in self.sent]
        self.digest = hashlib.sha256(
            json.dumps(
                [self._bodies, [r.rule.key for r in self.reference_only]],
                sort_keys=True,
                ensure_ascii=False,
            ).encode()
        ).hexdigest()

    # -- which rules go to the engine

    def _refusal(self, condition: Condition, usage: _Usage) -> str | None:
        if condition == TRUE:
            return None
        count = alternatives(condition)
        if count > MAX_ALTERNATIVES:
            return f"expands to {count} alternatives in durable-rules (at most {MAX_ALTERNATIVES})"
        reason = self._unsendable(condition, usage, ())
        if reason is not None:
            return reason
        new = _equalities(condition) - self._equalities
        if len(self._equalities) + len(new) > MAX_EQUALITY_VALUES:
            return (
                f"more than {MAX_EQUALITY_VALUES} distinct equality values in one ruleset "
                "would hang durable-rules' registration"
            )
        return None

    def _unsendable(
        self, condition: Condition, usage: _Usage, scope: tuple[str, ...]
    ) -> str | None:
        match condition:
            case AllOf(()) | AnyOf(()):
                return "an element condition that is always or never true"
            case AnyOf(items) if scope and not _one_field(condition):
                return (
                    "`or` over different fields of a list element "
                    "(durable-rules decides it by the element's last field)"
                )
            case AllOf(items) | AnyOf(items):
                for item in items:
                    reason = self._unsendable(item, usage, scope)
                    if reason is not None:
                        return reason
                return None
            case ArrayAny(path, element) | ArrayAll(path, element):
                if scope:
                    return "a list inside a list element"
                if usage.conflict((path,)):
                    return f"{path} is read both as a list and as something else"
                if _ends_in_or(element):
                    return ELEMENT_OR_REASON
                return self._unsendable(element, usage, (path,))
            case Compare(path) | Exists(path) | Matches(path) if usage.conflict((*scope, path)):
                return f"{'.'.join((*scope, path))} is compared as different types"
            case Compare(_, _, value):
                try:
                    _literal(value)
                except _Unrepresentable as error:
                    return f"durable-rules cannot hold {error}"
                return None
            case Exists():
                return None
            case Matches():
                return MATCHES_REASON
        raise TypeError(condition)

    def _allocate(self, condition: Condition, usage: _Usage) -> None:
        for key in _paths(condition):
            top = self._slots.get(key[0])
            if top is None:
                top = self._slots[key[0]] = _Slot(
                    key[0], f"p{len(self._slots)}", usage.kind(key[:1])
                )
            if len(key) == 2 and key[1] not in top.elements:
                top.elements[key[1]] = _Slot(key[1], f"e{len(top.elements)}", usage.kind(key))

    # -- JSON

    def ruleset(self, actions: ActionFactory) -> dict[str, DurableJson]:
        """A fresh ruleset definition (durable-rules deletes `run` from what it is given)."""
        definition: dict[str, DurableJson] = {}
        for index, ((rule, _), body) in enumerate(zip(self.sent, self._bodies, strict=True)):
            definition[f"r{index}"] = {
                "all": [{"m": json.loads(json.dumps(body))}],
                "run": actions(rule.key),
            }
        return definition

    def _rule_json(self, condition: Condition) -> DurableJson:
        if condition == TRUE:
            return {MARK: 1}
        body = self._json(condition, None)
        tests = body.get("$and", [body])
        return {"$and": [{MARK: 1}, *tests]}

    def _json(self, condition: Condition, array: _Slot | None) -> DurableJson:
        match condition:
            case Compare(path, op, value):
                name = self._name(path, array)
                literal = _literal(value)
                return {name: literal} if op == "eq" else {_OPERATORS[op]: {name: literal}}
            case Exists(path, present):
                return {"$ex" if present else "$nex": {self._name(path, array): 1}}
            case AllOf(items):
                ordered = _selective_first(items)
                if array is not None:  # the element's last test must not be an `$or`
                    ordered.sort(key=lambda item: not isinstance(item, AnyOf))
                return {"$and": [self._json(item, array) for item in ordered]}
            case AnyOf(items):
                return {"$or": [self._json(item, array) for item in items]}
            case ArrayAny(path, element) | ArrayAll(path, element):
                slot = self._slots[path]
                quantifier = "$iany" if isinstance(condition, ArrayAny) else "$iall"
                return {quantifier: {slot.alias: self._json(element, slot)}}
        raise TypeError(condition)

    def _name(self, path: str, array: _Slot | None) -> str:
        if array is None:
            return self._slots[path].alias
        if path == ELEMENT:
            return "$i"
        return f"$i.{array.elements[path].alias}"

    # -- facts

    def encode(self, facts: Facts) -> DurableJson:
        """The evaluation fact, without sid and id; EngineFailure if a value cannot go."""
        payload: DurableJson = {MARK: 1}
        for slot in self._slots.values():
            value = facts.get(slot.path)
            if value is None:
                continue
            try:
                payload[slot.alias] = slot.encode(value)
            except _Unrepresentable as error:
                raise EngineFailure(f"{slot.path}: durable-rules cannot hold {error}") from None
        return payload


def _selective_first(items: tuple[Condition, ...]) -> list[Condition]:
    """Equality on the event type first, then other equalities, then the rest.

    durable-rules tests an `$and` in the order written and hashes equality children, so a
    selective first test keeps the tests an event satisfies at once under its limit of 64.
    """

    def rank(item: Condition) -> int:
        if isinstance(item, Compare) and item.op == "eq":
            return 0 if item.path == "type" else 1
        return 2

    return sorted(items, key=rank)


def _paths(condition: Condition, scope: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    match condition:
        case Compare(path) | Exists(path) | Matches(path):
            return [(*scope, path)]
        case AllOf(items) | AnyOf(items):
            return [key for item in items for key in _paths(item, scope)]
        case ArrayAny(path, element) | ArrayAll(path, element):
            return [(path,), *_paths(element, (path,))]
    raise TypeError(condition)


def _equalities(
    condition: Condition, scope: tuple[str, ...] = ()
) -> set[tuple[tuple[str, ...], str, object]]:
    # The type is part of the key: Decimal(1) == True, yet they are different values.
    match condition:
        case Compare(path, "eq", value):
            return {((*scope, path), type(value).__name__, value)}
        case AllOf(items) | AnyOf(items):
            return set().union(*(_equalities(item, scope) for item in items))
        case ArrayAny(path, element) | ArrayAll(path, element):
            return _equalities(element, (*scope, path))
    return set()


def to_ruleset(rules: Iterable[Rule], actions: ActionFactory) -> dict[str, DurableJson]:
    """durable-rules' JSON for the rules it can be trusted with; ``actions(key)`` binds each.

    Facts for it must be encoded by the DurablePlan the rules compile to, since paths are
    sent under aliases.
    """
    return DurablePlan(rules).ruleset(actions)


# ---------------------------------------------------------------------------- matching


class _QuietHost(engine.Host):  # type: ignore[misc]
    """A host without the dispatcher and timer threads: actions run inside our own calls."""

    def _run(self) -> None:
        return None


def _collecting(sink: list[str], key: str) -> Action:
    # durable-rules inspects co_argcount: exactly one parameter, so no default arguments
    # and no functools.partial; and an action must neither raise nor touch c.s.
    def action(c: Any) -> None:
        sink.append(key)

    return action


def _no_op(c: Any) -> None:
    return None


_REGISTRATIONS = itertools.count(1)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _explain(error: BaseException) -> str:
    found = _ERROR_CODE.search(str(error))
    known = _KNOWN_CODES.get(found.group(1)) if found else None
    detail = f"{type(error).__name__}: {error}"
    return f"{detail} ({known})" if known else detail


class DurableMatcher:
    """Matches facts with durable-rules; rules it cannot be trusted with go to the reference."""

    name = "durable"

    def __init__(self, rules: Iterable[Rule], version: str) -> None:
        self._lock = threading.Lock()
        self._fired: list[str] = []
        self._ids = itertools.count(1)
        self._closed = False
        self.plan = DurablePlan(rules)
        only = [entry.rule for entry in self.plan.reference_only]
        self._reference = ReferenceMatcher(only) if only else None

        definition = self.plan.ruleset(lambda key: _collecting(self._fired, key))
        definition[INIT_RULE] = {"all": [{"m": {INIT_FIELD: 1}}], "run": _no_op}
        # A registered name can never be registered again, even after deletion.
        self.ruleset_name = (
            f"loyalty@{_UNSAFE_NAME.sub('_', version)[:40]}"
            f"#{self.plan.digest[:12]}.{next(_REGISTRATIONS)}"
        )
        self._host = _QuietHost()
        # One action on the fixed sid initialises its state, which makes delete_state safe
        # (on a sid that never ran an action it frees wild pointers).
        init = {"sid": SID, "id": "init", INIT_FIELD: 1}
        try:
            self._host.set_rulesets({self.ruleset_name: definition})
            self._host.assert_fact(self.ruleset_name, init)
            self._host.retract_fact(self.ruleset_name, init)
        except Exception as error:
            raise EngineFailure(f"durable-rules refused the rules: {_explain(error)}") from error

    @property
    def reference_only(self) -> tuple[ReferenceOnly, ...]:
        return tuple(self.plan.reference_only)

    def match(self, facts: Facts) -> frozenset[str]:
        payload = self.plan.encode(facts)
        with self._lock:
            if self._closed:
                raise EngineFailure("the durable-rules matcher is closed")
            payload["sid"] = SID
            payload["id"] = f"e{next(self._ids)}"
            self._fired.clear()
            try:
                matched = self._assert(payload)
            finally:
                retract_error = self._retract(payload)
            if retract_error is not None:
                raise EngineFailure(f"retracting failed: {_explain(retract_error)}")
        if self._reference is not None:
            matched |= self._reference.match(facts)
        return matched

    def _assert(self, payload: DurableJson) -> frozenset[str]:
        try:
            self._host.assert_fact(self.ruleset_name, payload)
        except engine.MessageNotHandledException:
            return frozenset()
        except Exception as error:
            raise EngineFailure(_explain(error)) from error
        return frozenset(self._fired)

    def _retract(self, payload: DurableJson) -> Exception | None:
        try:
            self._host.retract_fact(self.ruleset_name, payload)
        except engine.MessageNotHandledException:
            return None
        except Exception as error:
            return error
        return None

    def close(self) -> None:
        """Free the engine's memory for this version; later calls raise EngineFailure."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ruleset = self._host.get_ruleset(self.ruleset_name)
            # delete_ruleset alone leaks every live sid's state.
            self._host.delete_state(self.ruleset_name, SID)
            durable_rules_engine.delete_ruleset(ruleset._handle)
            self._host._ruleset_directory.pop(self.ruleset_name, None)
            self._host._ruleset_list.remove(ruleset)

    def __enter__(self) -> DurableMatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
