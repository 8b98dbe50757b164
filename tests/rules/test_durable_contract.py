"""Contract tests: the behaviour of durable-rules 2.0.28 that service.rules.durable_engine
relies on or works around, pinned so that a different build fails here first.

Crashes and hangs run only in child processes with a timeout, started together by one
fixture so their timeouts overlap; a child never writes a core file.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.durable_support import REASON, SKIP

if SKIP:
    pytest.skip(REASON, allow_module_level=True)

import durable_rules_engine
from durable import engine

from service.core.conditions import AllOf, AnyOf, ArrayAny, Compare, Exists, Matches
from service.core.programme import Rule
from service.rules.durable_engine import MATCHES_REASON, DurableMatcher, EngineFailure
from service.rules.matchers import FallbackMatcher
from service.rules.reference import ReferenceMatcher

# One worker runs the whole module, so the children (three of them spinning a core each
# until cut at HANG_SECONDS) are started once a run, not once per worker.
pytestmark = pytest.mark.xdist_group("durable-children")

HANG_SECONDS = 10.0  # generous: the control steps before each hang must finish on a busy machine
# A child expected to hang says so just before the call that hangs (HANGS_AFTER): still
# running this long after that line, it has hung. What hangs spins a core, so it is cut
# then rather than at HANG_SECONDS; a call that returned would have done so in
# milliseconds.
HANG_GRACE_SECONDS = 3.0
HANGS_AFTER = {
    "empty_and": "registered",
    "equality_513": "512 registered",
    "nex_alone": "guarded $nex fired once",
}
# Children that end by themselves (a MemoryError, a crash) get this long, so a busy machine
# cannot make them look hung; only the children expected to hang are cut sooner.
FINISH_SECONDS = 120.0
EXPECTED_TO_FINISH = frozenset({"sid_cap", "delete_unacted_sid", "regex_dfa"})
# Children whose outcome rests on memory the engine never initialised: glibc fills fresh
# allocations with this byte instead of whatever the heap held, so the bug shows the same
# on every Python (3.11 happened to crash without it; 3.13 happened to survive).
PERTURBED = {"delete_unacted_sid": {"MALLOC_PERTURB_": "165"}}


class QuietHost(engine.Host):  # type: ignore[misc]
    def _run(self) -> None:
        return None


_names = itertools.count(1)


def collecting(sink: list[str], label: str) -> Callable[[Any], None]:
    def action(c: Any) -> None:
        sink.append(label)

    return action


def ruleset(conditions: dict[str, Any], sink: list[str]) -> tuple[QuietHost, str]:
    """A quiet host with one rule per condition (alias m); fired labels go to sink."""
    host = QuietHost()
    name = f"contract-{next(_names)}"
    rules = {
        label: {"all": [{"m": cond}], "run": collecting(sink, label)}
        for label, cond in conditions.items()
    }
    host.set_rulesets({name: rules})
    return host, name


_fact_ids = itertools.count(1)


def fired_by(conditions: dict[str, Any], fact: dict[str, Any]) -> list[str]:
    """Labels of the rules that fire when the fact is asserted (then retracted)."""
    sink: list[str] = []
    host, name = ruleset(conditions, sink)
    message = {"sid": "contract", "id": f"f{next(_fact_ids)}", **fact}
    try:
        host.assert_fact(name, message)
    except engine.MessageNotHandledException:
        pass
    finally:
        with contextlib.suppress(Exception):  # the assert's own error is the one to see
            host.retract_fact(name, message)
    return sorted(sink)


def matches(pattern: str, value: str) -> bool:
    return fired_by({"r": {"$mt": {"v": pattern}}}, {"v": value}) == ["r"]


# ------------------------------------------------------------------------- children

PRELUDE = """
import resource, warnings
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
warnings.simplefilter("ignore")
from durable import engine
class Q(engine.Host):
    def _run(self):
        pass
host = Q()
def act(c):
    pass
def say(text):
    print(text, flush=True)
"""

CHILDREN = {
    "sid_cap": """
        host.set_rulesets({"s": {"r": {"all": [{"m": {"t": "hit"}}], "run": act}}})
        for i in range(1024):
            host.post("s", {"sid": f"s{i}", "t": "hit"})
        say("1024 sids")
        try:
            host.post("s", {"sid": "s1024", "t": "hit"})
        except MemoryError:
            say("MemoryError")
        host.delete_state("s", "s0")
        say("freed one")
        host.post("s", {"sid": "s1024", "t": "hit"})
        say("survived")
    """,
    "delete_unacted_sid": """
        host.set_rulesets({"s": {"r": {"all": [{"m": {"t": "hit"}}], "run": act}}})
        try:
            host.post("s", {"sid": "never-acted", "t": "miss"})
        except engine.MessageNotHandledException:
            say("not handled")
        host.delete_state("s", "never-acted")
        say("survived")
    """,
    "empty_and": """
        host.set_rulesets({"ok": {"r": {"all": [{"m": {"$and": [{"t": 1}]}}], "run": act}}})
        host.post("ok", {"t": 1})
        say("one-test $and posted")
        host.set_rulesets({"s": {"r": {"all": [{"m": {"$and": []}}], "run": act}}})
        say("registered")
        host.post("s", {"t": 1})
        say("survived")
    """,
    "equality_513": """
        def codes(n):
            return {f"r{i}": {"all": [{"m": {"$and": [{"t": "p"}, {"code": f"c{i}"}]}}], "run": act}
                    for i in range(n)}
        host.set_rulesets({"ok": codes(512)})
        say("512 registered")
        host.set_rulesets({"bad": codes(513)})
        say("513 registered")
    """,
    "regex_dfa": """
        import durable_rules_engine, json
        def regex(pattern):
            return json.dumps({"r": {"all": [{"m": {"$mt": {"v": pattern}}}]}})
        durable_rules_engine.create_ruleset("ok", regex("[a-z]{0,20}" * 2 + "!"))
        say("two repeats registered")
        durable_rules_engine.create_ruleset("bad", regex("[a-z]{0,20}" * 12 + "!"))
        say("twelve repeats registered")
    """,
    "nex_alone": """
        guarded = {"$and": [{"k": 1}, {"$nex": {"a": 1}}]}
        host.set_rulesets({"ok": {"r": {"all": [{"m": guarded}], "run": act}}})
        host.assert_fact("ok", {"sid": "x", "id": "1", "k": 1})
        say("guarded $nex fired once")
        host.set_rulesets({"s": {"r": {"all": [{"m": {"$nex": {"a": 1}}}], "run": act}}})
        host.assert_fact("s", {"sid": "x", "id": "1", "b": 1})
        say("survived")
    """,
}


@dataclass
class Outcome:
    returncode: int | None  # None: still running at the timeout, then killed
    stdout: str

    @property
    def hung(self) -> bool:
        return self.returncode is None

    @property
    def crashed(self) -> bool:
        return self.returncode is not None and self.returncode < 0


class Lines:
    """A child's output, read as it comes, each line with the moment it came."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, args=(child,), daemon=True)
        self._reader.start()

    def _read(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        with child.stdout:
            for line in child.stdout:
                self.lines.append((time.monotonic(), line))

    def said_at(self, text: str) -> float | None:
        return next((at for at, line in list(self.lines) if line == f"{text}\n"), None)

    def text(self) -> str:
        """Everything, once the child has ended (its end closes the pipe)."""
        self._reader.join()
        return "".join(line for _, line in self.lines)


def deadline(name: str, lines: Lines, started: float) -> float:
    if name in EXPECTED_TO_FINISH:
        return started + FINISH_SECONDS
    said = lines.said_at(HANGS_AFTER[name])
    return started + HANG_SECONDS if said is None else said + HANG_GRACE_SECONDS


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    cwd = tmp_path_factory.mktemp("durable-children")
    started = time.monotonic()
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
            cwd=Path(cwd),
            env={**os.environ, **PERTURBED.get(name, {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name, body in CHILDREN.items()
    }
    output = {name: Lines(child) for name, child in running.items()}
    outcomes: dict[str, Outcome] = {}
    try:
        while len(outcomes) < len(running):
            for name, child in running.items():
                if name in outcomes:
                    continue
                if child.poll() is not None:
                    outcomes[name] = Outcome(child.returncode, output[name].text())
                elif time.monotonic() > deadline(name, output[name], started):
                    child.kill()
                    child.wait()
                    outcomes[name] = Outcome(None, output[name].text())
            time.sleep(0.05)
        yield outcomes
    finally:
        for child in running.values():
            if child.poll() is None:
                child.kill()
                child.wait()


def test_1024_live_sids_then_memory_error(children: dict[str, Outcome]) -> None:
    """A ruleset holds at most 1,024 live sids; the 1,025th raises MemoryError."""
    assert "1024 sids\nMemoryError\n" in children["sid_cap"].stdout


def test_reusing_the_refused_sid_segfaults(children: dict[str, Outcome]) -> None:
    """After capacity is freed, posting the sid that got MemoryError crashes the process.

    Hence one fixed sid per matcher, never a sid per customer.
    """
    outcome = children["sid_cap"]
    assert "freed one" in outcome.stdout
    assert outcome.crashed
    assert "survived" not in outcome.stdout


def test_delete_state_of_a_sid_that_never_acted_crashes(children: dict[str, Outcome]) -> None:
    """delete_state frees uninitialised pointers unless the sid has run an action.

    Hence the no-op init action on the matcher's sid before close() may delete it.
    """
    outcome = children["delete_unacted_sid"]
    assert "not handled" in outcome.stdout
    assert outcome.crashed
    assert "survived" not in outcome.stdout


def test_empty_and_hangs_the_first_post(children: dict[str, Outcome]) -> None:
    """`"$and": []` is accepted, then the first post never returns.

    Hence simplify() folds every empty all/any before anything reaches the engine.
    """
    outcome = children["empty_and"]
    assert "one-test $and posted\nregistered\n" in outcome.stdout
    assert outcome.hung


def test_513_equality_values_under_one_node_hang_registration(
    children: dict[str, Outcome],
) -> None:
    """512 `field == value` children under one node register; the 513th spins forever.

    Hence the cap of MAX_EQUALITY_VALUES distinct equalities per ruleset.
    """
    outcome = children["equality_513"]
    assert "512 registered" in outcome.stdout
    assert outcome.hung
    assert "513 registered" not in outcome.stdout


def test_a_rule_of_only_nex_matches_the_state_fact_forever(children: dict[str, Outcome]) -> None:
    """`$nex` alone matches the sid's own state fact, which every action rewrites: a loop.

    Hence every compiled rule starts with the positive test `k == 1`.
    """
    outcome = children["nex_alone"]
    assert "guarded $nex fired once" in outcome.stdout
    assert outcome.hung
    assert "survived" not in outcome.stdout


# ----------------------------------------------------------------------- in process


def test_post_fires_only_the_first_match_but_assert_fact_fires_all() -> None:
    """An event is consumed by the first rule; a fact fires every rule it matches."""
    sink: list[str] = []
    host, name = ruleset({"a": {"$gt": {"x": 10}}, "b": {"$gt": {"x": 20}}}, sink)
    host.post(name, {"sid": "p", "x": 50})
    assert len(sink) == 1
    sink.clear()
    fact = {"sid": "f", "id": "1", "x": 50}
    host.assert_fact(name, fact)
    host.retract_fact(name, fact)
    assert sorted(sink) == ["a", "b"]


def test_no_match_raises_message_not_handled_and_retracting_it_is_silent() -> None:
    """assert_fact of an unmatched fact raises MessageNotHandledException; retract doesn't."""
    host, name = ruleset({"a": {"x": 1}}, [])
    fact = {"sid": "s", "id": "1", "x": 2}
    with pytest.raises(engine.MessageNotHandledException):
        host.assert_fact(name, fact)
    host.retract_fact(name, fact)


def test_default_host_starts_dispatcher_threads_and_ours_does_not() -> None:
    """engine.Host() starts two timer threads at once; a host with _run disabled has none."""
    before = threading.active_count()
    QuietHost()
    assert threading.active_count() == before
    host = engine.Host()
    try:
        timers = (host._d_timer, host._t_timer)
        assert all(isinstance(t, threading.Timer) and t.daemon for t in timers)
        assert threading.active_count() >= before + 2
    finally:
        for _ in range(100):  # a timer that already ran has scheduled its successor
            current = (host._d_timer, host._t_timer)
            for timer in current:
                timer.cancel()
                timer.join()
            if current == (host._d_timer, host._t_timer):
                break


def test_strings_and_numbers_compare_as_strings() -> None:
    """ "99" > 100 holds and "100" == 100: hence every value is coerced by the field schema."""
    assert fired_by({"r": {"$gt": {"amount": 100}}}, {"amount": "99"}) == ["r"]
    assert fired_by({"r": {"amount": 100}}, {"amount": "100"}) == ["r"]
    assert fired_by({"r": {"$gt": {"amount": 100}}}, {"amount": 99}) == []


def test_id_and_sid_are_reserved() -> None:
    """`id` is the fact's identity and `sid` its session: payload fields must not use them."""
    host, name = ruleset({"a": {"$ex": {"x": 1}}}, [])
    host.assert_fact(name, {"sid": "s", "id": "same", "x": 1})
    with pytest.raises(engine.MessageObservedException):
        host.assert_fact(name, {"sid": "s", "id": "same", "x": 2})
    host.assert_fact(name, {"sid": 7, "id": "other", "x": 1})
    assert host.get_state(name, "7")["sid"] == "7"


def test_exceptions_in_actions_are_swallowed_into_the_state() -> None:
    """An action that raises does not raise from assert_fact; the error sits in the state."""
    host = QuietHost()
    name = f"contract-{next(_names)}"

    def explode(c: Any) -> None:
        raise RuntimeError("boom")

    host.set_rulesets({name: {"r": {"all": [{"m": {"x": 1}}], "run": explode}}})
    state = host.assert_fact(name, {"sid": "s", "id": "1", "x": 1})
    assert "boom" in state["exception"]


def test_set_rulesets_mutates_its_input_and_a_name_registers_once() -> None:
    """`run` is deleted from the dict given; registering a name again raises."""
    host = QuietHost()
    name = f"contract-{next(_names)}"
    definition = {"r": {"all": [{"m": {"x": 1}}], "run": collecting([], "r")}}
    host.set_rulesets({name: definition})
    assert "run" not in definition["r"]
    with pytest.raises(KeyError):
        host.set_rulesets({f"contract-{next(_names)}": definition})
    fresh = {"r": {"all": [{"m": {"x": 1}}], "run": collecting([], "r")}}
    with pytest.raises(Exception, match="already registered"):
        host.set_rulesets({name: fresh})


def test_actions_are_told_apart_by_their_parameter_count() -> None:
    """One parameter: a sync action. Two: async, the second receiving a completion callback.

    So `lambda c, key=key: ...` does not raise: its default is silently replaced by the
    callback and the action never completes. Three parameters, or functools.partial (no
    __code__), are refused. Hence actions are closures made by a factory, taking only c.
    """
    got: list[object] = []

    def defaulted(key: str) -> Callable[..., None]:
        return lambda c, bound=key: got.append(bound)

    host = QuietHost()
    name = f"contract-{next(_names)}"
    host.set_rulesets({name: {"r": {"all": [{"m": {"x": 1}}], "run": defaulted("rule-key")}}})
    host.assert_fact(name, {"sid": "s", "id": "1", "x": 1})
    assert len(got) == 1
    assert callable(got[0])
    assert got[0] != "rule-key"

    def three(c: Any, complete: Any, extra: Any) -> None:
        return None

    def rules_with(action: object) -> dict[str, Any]:
        return {f"contract-{next(_names)}": {"r": {"all": [{"m": {"x": 1}}], "run": action}}}

    with pytest.raises(Exception, match="Invalid function signature"):
        QuietHost().set_rulesets(rules_with(three))
    with pytest.raises(AttributeError):
        QuietHost().set_rulesets(rules_with(functools.partial(three, extra=None)))


def test_neq_and_comparisons_on_an_absent_field_do_not_match() -> None:
    """`$neq` on a missing field is false, as `ne` on an absent path is in the reference."""
    conditions = {"ne": {"$neq": {"a": "x"}}, "lt": {"$lt": {"a": "z"}}, "ex": {"$ex": {"b": 1}}}
    assert fired_by(conditions, {"b": 1}) == ["ex"]
    assert fired_by(conditions, {"a": "y", "b": 1}) == ["ex", "lt", "ne"]


def test_list_quantifiers() -> None:
    """`$iall` over [] is false; `$iany`/`$iall` read `$i` (text) and `$i.field` (mappings)."""
    conditions = {
        "all-vip": {"$iall": {"tags": {"$i": "vip"}}},
        "any-vip": {"$iany": {"tags": {"$i": "vip"}}},
        "big-item": {"$iany": {"items": {"$gt": {"$i.q": 1}}}},
        "all-big": {"$iall": {"items": {"$gt": {"$i.q": 1}}}},
    }
    assert fired_by(conditions, {"tags": [], "items": []}) == []
    assert fired_by(conditions, {"tags": ["vip", "x"], "items": [{"q": 2}, {"z": 1}]}) == [
        "any-vip",
        "big-item",
    ]
    assert fired_by(conditions, {"tags": ["vip"], "items": [{"q": 2}]}) == [
        "all-big",
        "all-vip",
        "any-vip",
        "big-item",
    ]
    # An empty list is present, as () is to the reference.
    assert fired_by({"ex": {"$ex": {"tags": 1}}}, {"tags": []}) == ["ex"]


def test_or_inside_a_list_element_follows_the_last_field() -> None:
    """`$or` over different fields of an element is decided by the element's last field.

    Hence distribute() lifts such an `or` out of `any`, and `all` with one stays with the
    reference. An `$or` over one field is right.
    """
    mixed = {"r": {"$iany": {"items": {"$or": [{"$gt": {"$i.q": 3}}, {"$i.c": "x"}]}}}}
    assert fired_by(mixed, {"items": [{"q": 5, "c": "y"}]}) == []  # q > 3 holds
    assert fired_by(mixed, {"items": [{"q": 5}]}) == ["r"]
    one_field = {"r": {"$iany": {"items": {"$or": [{"$gt": {"$i.q": 3}}, {"$lt": {"$i.q": 0}}]}}}}
    assert fired_by(one_field, {"items": [{"q": 5, "c": "y"}]}) == ["r"]


def test_or_fires_once_per_satisfied_alternative() -> None:
    """`$or` becomes one network path per alternative, each firing: collect keys as a set."""
    assert fired_by({"r": {"$or": [{"$gt": {"a": 1}}, {"$gt": {"a": 2}}]}}, {"a": 5}) == ["r", "r"]


def test_booleans_and_numbers_compare_like_python() -> None:
    """Ordering on booleans is Python's (False < True); ints and floats compare as numbers."""
    conditions = {
        "gte-false": {"$gte": {"b": False}},
        "lte-true": {"$lte": {"b": True}},
        "gt-true": {"$gt": {"b": True}},
        "lt-false": {"$lt": {"b": False}},
        "gt-false": {"$gt": {"b": False}},
    }
    assert fired_by(conditions, {"b": True}) == ["gt-false", "gte-false", "lte-true"]
    assert fired_by(conditions, {"b": False}) == ["gte-false", "lte-true"]
    numbers = {"eq": {"n": 10}, "lt": {"$lt": {"n": 10.5}}, "big": {"$lt": {"n": 9007199254740993}}}
    assert fired_by(numbers, {"n": 10.0}) == ["big", "eq", "lt"]
    assert fired_by(numbers, {"n": 9007199254740992}) == ["big"]


def test_numbers_in_exponent_form_are_refused() -> None:
    """The JSON parser refuses `1e-05` in a ruleset and in a fact (error 204).

    Hence _number() sends only values whose shortest float form has no exponent.
    """
    with pytest.raises(durable_rules_engine.error, match="error code: 204"):
        ruleset({"r": {"$gt": {"a": 1e-05}}}, [])
    with pytest.raises(durable_rules_engine.error, match="error code: 204"):
        fired_by({"r": {"$gt": {"a": 1}}}, {"a": 2e20})


def test_strings_are_compared_in_their_json_escaped_form() -> None:
    """'a#' < 'a"' holds because the engine compares `a\\"`; a newline defeats `.`.

    Hence texts with quotes, backslashes or control characters are never sent.
    """
    assert fired_by({"r": {"$lt": {"s": 'a"'}}}, {"s": "a#"}) == ["r"]
    assert not matches("a.b", "a\nb")


def test_long_strings_compare_by_their_length_modulo_65536() -> None:
    """String lengths are 16-bit: 70,000 x's equal 70,001 x's. Hence MAX_STRING_LENGTH."""
    assert fired_by({"r": {"s": "x" * 70_000}}, {"s": "x" * 70_001}) == ["r"]


def test_regex_match_applies_to_numbers() -> None:
    """`$mt` matches the number 1 against "1"; the reference needs text. Hence kind checks."""
    assert fired_by({"r": {"$mt": {"v": "1"}}}, {"v": 1}) == ["r"]


def test_regex_dialect_is_full_match_with_percent_escapes() -> None:
    """`$mt` matches the whole value; `%` escapes metacharacters, `\\` is no escape."""
    assert matches("a%.b", "a.b")
    assert not matches("a%.b", "axb")
    assert not matches("example", "bob@example.com")
    assert matches("[a-c]+x{2}", "abcxx")
    assert matches("aé.", "aéz")
    assert matches("%d+", "123")  # Lua-like classes; our dialect does not offer them


def test_regex_constructs_outside_our_dialect_are_wrong() -> None:
    """Where durable-rules' regex disagrees with Python's; each is why the dialect omits it."""
    assert matches("(1+|[a]+[b]|c*1)", "1ab")  # alternation: Python says no
    assert not matches("a*.b?[.ba-b]", "aaaab")  # `.` before more pattern: Python says yes
    assert not matches(".+1[b_].b", "_11b1b")
    assert not matches("[^aa-c]?@c*[^éa]?", "@@@")  # negated classes: Python says yes
    assert matches("SUMMER.*", "SUMMER24")
    assert matches("s0.", "s01")


def test_some_short_regexes_are_refused_and_the_empty_one_too() -> None:
    """`b+b+b?` exceeds the DFA's 4,096 states (503) and "" is refused (508)."""
    with pytest.raises(durable_rules_engine.error, match="503"):
        ruleset({"r": {"$mt": {"v": "b+b+b?"}}}, [])
    with pytest.raises(durable_rules_engine.error, match="508"):
        ruleset({"r": {"$mt": {"v": ""}}}, [])


def test_building_a_regex_dfa_can_corrupt_the_heap(children: dict[str, Outcome]) -> None:
    """`[a-z]{0,20}` twelve times over (a pattern of our dialect) aborts the process.

    Hence no `matches` is ever sent to durable-rules: RE2, in the reference, decides them.
    """
    outcome = children["regex_dfa"]
    assert "two repeats registered" in outcome.stdout
    assert outcome.crashed
    assert "twelve repeats registered" not in outcome.stdout


def test_rules_with_matches_stay_with_the_reference() -> None:
    pattern = Matches("channel", "[a-z]{0,20}" * 12 + "!")
    kept = Rule("c", "regex", AllOf((Compare("type", "eq", "purchase"), pattern)), ())
    sent = Rule("c", "plain", Compare("type", "eq", "purchase"), ())
    with DurableMatcher([kept, sent], "regex") as matcher:
        assert [entry.rule for entry in matcher.reference_only] == [kept]
        assert matcher.reference_only[0].reason == MATCHES_REASON
        fact = {"type": "purchase", "channel": "a" * 30 + "!"}
        assert matcher.match(fact) == {"c/regex", "c/plain"}


def test_more_than_255_properties_fail() -> None:
    """A fact with more than 255 properties fails (error 302); lists don't count."""
    wide = {f"x{i}": i for i in range(260)}
    with pytest.raises(durable_rules_engine.error, match="302"):
        fired_by({"r": {"$ex": {"x0": 1}}}, wide)
    long_list = {"x0": 1, "items": [{"a": i, "b": i, "c": i} for i in range(300)]}
    assert fired_by({"r": {"$ex": {"x0": 1}}}, long_list) == ["r"]


def test_more_than_64_satisfied_tests_fail_and_the_reference_answers() -> None:
    """An event satisfying more than 64 tests at once fails with error 303, firing nothing.

    Our matcher turns it into EngineFailure, and the fallback answers from the reference.
    """
    assert len(fired_by({f"r{i}": {"$gt": {"a": i}} for i in range(64)}, {"a": 100})) == 64
    with pytest.raises(durable_rules_engine.error, match="303"):
        fired_by({f"r{i}": {"$gt": {"a": i}} for i in range(65)}, {"a": 100})

    rules = [Rule("broad", f"r{i}", Compare("amount", "gt", Decimal(i)), ()) for i in range(70)]
    reference = ReferenceMatcher(rules)
    reasons: list[str] = []
    with DurableMatcher(rules, "broad") as durable:
        with pytest.raises(EngineFailure, match="303"):
            durable.match({"amount": Decimal(100)})
        assert durable.match({"amount": Decimal(5)}) == reference.match({"amount": Decimal(5)})
        served = FallbackMatcher(durable, reference, reasons.append)
        facts = {"amount": Decimal(100)}
        assert served.match(facts) == reference.match(facts)
        assert len(served.match(facts)) == 70
        assert served.name == "durable"
        assert served.answered_by == "reference"
    assert len(reasons) == 2
    assert "more than 64 tests" in reasons[0]


def test_delete_state_then_delete_ruleset_unloads_a_version() -> None:
    """close(): delete_state on the initialised sid, then the private delete_ruleset."""
    rules = [
        Rule("c", "absent", Exists("customer.tier", False), ()),
        Rule(
            "c",
            "sku",
            ArrayAny("items", AnyOf((Compare("sku", "eq", "A"), Compare("sku", "eq", "B")))),
            (),
        ),
    ]
    durable = DurableMatcher(rules, "closing")
    assert durable.match({"items": ({"sku": "B"},)}) == {"c/absent", "c/sku"}
    durable.close()
    durable.close()
    with pytest.raises(EngineFailure, match="closed"):
        durable.match({})
