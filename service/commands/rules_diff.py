"""`loyalty rules diff`: replay recorded events through the rules at a git revision and
through the working tree, and report what the change would have done.

The two replays are independent, so on a machine with two cores they run side by side,
one process each; each streams the events itself (nothing is held but the members).
Progress goes to stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from typing import Any, TextIO

from service.application.event_source import (
    Skipped,
    count_lines,
    events_from_payloads,
    read_event_lines,
)
from service.application.impact import Impact, compare
from service.application.replay import MemberSeed, Replay, ReplayResult
from service.core.evaluation import BudgetUse
from service.core.events import Event
from service.core.programme import RuleSet
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher

PARALLEL_FROM = 20_000  # fewer events than this replay faster in one process
TICK = 1000


@dataclass(frozen=True, slots=True)
class EventFile:
    """A JSON Lines file of events, as POST /v1/events takes them."""

    path: str

    def describe(self) -> str:
        return self.path

    def count(self) -> int:
        return count_lines(self.path)

    def events(self) -> Iterator[Event | Skipped]:
        return events_from_payloads(read_event_lines(self.path))

    def starting_states(
        self, ruleset: RuleSet
    ) -> tuple[dict[str, MemberSeed], dict[str, BudgetUse]]:
        return {}, {}  # every member in a file starts new


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """The events the service stored since a moment, from its members' state then."""

    database_url: str
    since: datetime

    def describe(self) -> str:
        return f"events stored since {self.since.isoformat()}"

    def count(self) -> int:
        from service.storage.database import make_engine
        from service.storage.event_log import count_events

        engine = make_engine(self.database_url)
        try:
            return count_events(engine, self.since)
        finally:
            engine.dispose()

    def events(self) -> Iterator[Event | Skipped]:
        from service.storage.database import make_engine
        from service.storage.event_log import stored_events

        engine = make_engine(self.database_url)
        try:
            yield from events_from_payloads(stored_events(engine, self.since))
        finally:
            engine.dispose()

    def starting_states(
        self, ruleset: RuleSet
    ) -> tuple[dict[str, MemberSeed], dict[str, BudgetUse]]:
        from service.storage.database import make_engine
        from service.storage.event_log import starting_states

        programme = ruleset.programme
        window = max(programme.tiers.window, programme.rfm.window)
        budgeted = sorted(c.id for c in ruleset.campaigns if c.budget is not None)
        engine = make_engine(self.database_url)
        try:
            return starting_states(engine, self.since, window, budgeted)
        finally:
            engine.dispose()


Source = EventFile | StoredEvents


class Progress:
    """Prints `replayed N/TOTAL events (P%), R events/s` every 5% (every 100,000 events
    when the total is unknown)."""

    def __init__(self, total: int, stream: TextIO | None, label: str = "rules diff") -> None:
        self.total, self.stream, self.label = total, stream, label
        self.started = time.perf_counter()
        self.step = max(total // 20, 1) if total else 100_000
        self.next = self.step

    def update(self, done: int) -> None:
        if self.stream is None or done < self.next:
            return
        self.next = (done // self.step + 1) * self.step
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        total = f"/{self.total:,}" if self.total else ""
        print(
            f"{self.label}: {done:,}{total} events{share}, {rate:,.0f} events/s, {elapsed:.0f} s",
            file=self.stream,
            flush=True,
        )


def run_diff(
    base_files: Mapping[str, str],
    head_files: Mapping[str, str],
    source: Source,
    *,
    workers: int | None = None,
    top: int = 10,
    progress: TextIO | None = sys.stderr,
) -> Impact:
    started = time.perf_counter()
    base_rules = load_rules(base_files).ruleset
    head_rules = load_rules(head_files).ruleset
    total = source.count()
    parallel = workers if workers is not None else (2 if total >= PARALLEL_FROM else 1)
    meter = Progress(total, progress)
    if parallel > 1:
        (base, skipped), (head, _) = _in_two_processes(base_files, head_files, source, meter)
    else:
        base, head, skipped = _in_one_process(base_rules, head_rules, source, meter)
    meter.update(total)  # the closing line, when the count was an estimate
    return compare(
        base_rules,
        head_rules,
        base,
        head,
        source=source.describe(),
        skipped=skipped,
        top=top,
        seconds=time.perf_counter() - started,
    )


def _replay(ruleset: RuleSet, source: Source) -> Replay:
    seeds, budgets = source.starting_states(ruleset)
    return Replay(ruleset, ReferenceMatcher(ruleset.rules), seeds, budgets)


def _in_one_process(
    base_rules: RuleSet, head_rules: RuleSet, source: Source, meter: Progress
) -> tuple[ReplayResult, ReplayResult, list[str]]:
    base, head = _replay(base_rules, source), _replay(head_rules, source)
    skipped: list[str] = []
    for done, item in enumerate(source.events(), start=1):
        if isinstance(item, Skipped):
            skipped.append(f"{item.where}: {item.reason}")
        else:
            base.apply(item)
            head.apply(item)
        if done % TICK == 0:
            meter.update(done)
    return base.finish(), head.finish(), skipped


# -- two processes, one version each

_counters: Any = None


def _init_child(counters: Any) -> None:
    global _counters  # this child's handle on the shared progress counters
    _counters = counters


def _replay_child(
    files: Mapping[str, str], source: Source, slot: int
) -> tuple[ReplayResult, list[str]]:
    ruleset = load_rules(files).ruleset
    replay = _replay(ruleset, source)
    skipped: list[str] = []
    done = 0
    for done, item in enumerate(source.events(), start=1):
        if isinstance(item, Skipped):
            skipped.append(f"{item.where}: {item.reason}")
        else:
            replay.apply(item)
        if done % TICK == 0 and _counters is not None:
            _counters[slot] = done
    if _counters is not None:
        _counters[slot] = done
    return replay.finish(), skipped


def _in_two_processes(
    base_files: Mapping[str, str], head_files: Mapping[str, str], source: Source, meter: Progress
) -> tuple[tuple[ReplayResult, list[str]], tuple[ReplayResult, list[str]]]:
    context = get_context("spawn")  # no inherited threads or connections
    counters = context.Array("q", 2, lock=False)
    with ProcessPoolExecutor(
        max_workers=2, mp_context=context, initializer=_init_child, initargs=(counters,)
    ) as pool:
        futures: list[Future[tuple[ReplayResult, list[str]]]] = [
            pool.submit(_replay_child, dict(files), source, slot)
            for slot, files in enumerate((base_files, head_files))
        ]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            meter.update(min(counters[0], counters[1]))
        return futures[0].result(), futures[1].result()


def parse_since(text: str, now: datetime) -> datetime:
    """``30d`` (a span back from now) or an RFC 3339 moment."""
    from service.core.durations import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"--since {text!r}: give a span such as 30d or a time with an offset")
    return moment
