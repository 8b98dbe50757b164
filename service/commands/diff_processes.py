"""The processes of a rules diff: members shared out over the cores (each process replays
both versions for its members, reading each event once), or one process per version (the
exact fallback when budgets make the shares depend on each other).

Processes are spawned (no inherited threads or connections). Each reports as it goes
(events done, and a share's budget spends) and, at the end, its result and the peak of
its resident memory.
"""

from __future__ import annotations

import queue
import resource
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from service.application.replay import BudgetSpend, Replay, ReplayResult
from service.application.replay_shares import Shares
from service.application.rules_runtime import ActiveRules
from service.commands.diff_sources import Source
from service.core.events import Event
from service.core.programme import RuleSet
from service.rules.loader import load_rules
from service.rules.reference import ReferenceMatcher

TICK = 1000
ALL = sys.maxsize  # a share's last report covers every event after its last own one


def peak_memory_mib() -> float:
    """This process's peak resident memory: VmHWM from /proc (getrusage's ru_maxrss would
    count a spawned child's parent too: Linux carries it over fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def replay_of(
    ruleset: RuleSet,
    source: Source,
    *,
    shares: Shares | None = None,
    index: int = 0,
    record_budgets: bool = False,
) -> Replay:
    seeds, budgets = source.starting_states(ruleset)
    if shares is not None:
        seeds = {m: seed for m, seed in seeds.items() if shares.of(m) == index}
    rules = ActiveRules(ruleset, ReferenceMatcher(ruleset.rules), ())
    return Replay(rules, seeds, budgets, record_budgets=record_budgets)


@dataclass(frozen=True, slots=True)
class Report:
    """A process's news: events done; for a share, its budget spends through ``through``."""

    done: int
    through: int = 0
    base_spends: tuple[BudgetSpend, ...] = ()
    head_spends: tuple[BudgetSpend, ...] = ()


@dataclass(slots=True)
class ShareOutcome:
    base: ReplayResult
    head: ReplayResult
    skipped: list[tuple[int, str]]  # (position, "where: reason")
    event_ids: list[str]  # of the events it replayed (first sightings), to find repeats
    memory_mib: float


@dataclass(slots=True)
class VersionOutcome:
    result: ReplayResult
    skipped: list[str]
    memory_mib: float


def replay_share(
    report: Callable[[Report], None],
    base_files: Mapping[str, str],
    head_files: Mapping[str, str],
    source: Source,
    shares: Shares,
    index: int,
) -> ShareOutcome:
    """Both versions over one share of the members."""
    base = replay_of(
        load_rules(base_files).ruleset, source, shares=shares, index=index, record_budgets=True
    )
    head = replay_of(
        load_rules(head_files).ruleset, source, shares=shares, index=index, record_budgets=True
    )
    assert base.spends is not None
    assert head.spends is not None
    skipped: list[tuple[int, str]] = []
    seen: set[str] = set()
    done = 0

    def send(through: int) -> None:
        assert base.spends is not None
        assert head.spends is not None
        report(Report(done, through, tuple(base.spends), tuple(head.spends)))
        base.spends.clear()
        head.spends.clear()

    for position, item in source.share_events(shares, index):
        done += 1
        if isinstance(item, Event):
            seen.add(item.event_id)
            base.apply(item, position)
            head.apply(item, position)
        else:
            skipped.append((position, f"{item.where}: {item.reason}"))
        if done % TICK == 0:
            send(position)
    send(ALL)
    return ShareOutcome(base.finish(), head.finish(), skipped, list(seen), peak_memory_mib())


def replay_version(
    report: Callable[[Report], None], files: Mapping[str, str], source: Source
) -> VersionOutcome:
    """One version over every member, in event order: exact whatever the budgets."""
    replay = replay_of(load_rules(files).ruleset, source)
    skipped: list[str] = []
    done = 0
    for done, item in enumerate(source.events(), start=1):
        if isinstance(item, Event):
            replay.apply(item, done)
        else:
            skipped.append(f"{item.where}: {item.reason}")
        if done % TICK == 0:
            report(Report(done))
    report(Report(done))
    return VersionOutcome(replay.finish(), skipped, peak_memory_mib())


class Stop(Exception):
    """Raised by a caller's ``on_report`` to end every process at once."""


def run_in_processes(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    on_report: Callable[[int, Report], None],
) -> list[Any]:
    """Each call in a spawned process of its own, given a ``report`` function as its first
    argument; ``on_report(slot, report)`` hears each report as it comes. Returns the
    calls' results in order. Should ``on_report`` raise (Stop), the processes are ended
    and the exception goes up."""
    context = get_context("spawn")
    news: Any = context.Queue()
    processes = [
        context.Process(target=_child, args=(news, slot, call, args), daemon=True)
        for slot, (call, args) in enumerate(calls)
    ]
    for process in processes:
        process.start()
    results: dict[int, Any] = {}
    try:
        while len(results) < len(calls):
            try:
                kind, slot, body = news.get(timeout=0.5)
            except queue.Empty:
                _check_alive(processes, results)
                continue
            if kind == "report":
                on_report(slot, body)
            elif kind == "done":
                results[slot] = body
            else:
                raise RuntimeError(f"a rules diff process failed:\n{body}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return [results[slot] for slot in range(len(calls))]


def _check_alive(processes: Sequence[Any], results: Mapping[int, Any]) -> None:
    for slot, process in enumerate(processes):
        # Exit code 0: its result is on the way (a child puts it before it returns).
        if slot not in results and process.exitcode not in (None, 0):
            raise RuntimeError(f"a rules diff process ended with exit code {process.exitcode}")


def _child(news: Any, slot: int, call: Callable[..., Any], args: tuple[Any, ...]) -> None:
    def report(body: Report) -> None:
        news.put(("report", slot, body))

    try:
        result = call(report, *args)
    except BaseException:
        news.put(("failed", slot, traceback.format_exc()))
        raise
    news.put(("done", slot, result))
