"""The processes of a rules diff: members shared out over the cores (each process replays
both versions for its members, reading each event once), or one process per version (the
exact fallback when budgets make the shares depend on each other).

Processes are spawned (no inherited threads or connections); each reports the peak of
its resident memory.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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
    share: Shares | None = None,
    index: int = 0,
    record_budgets: bool = False,
) -> Replay:
    seeds, budgets = source.starting_states(ruleset)
    if share is not None:
        seeds = {m: seed for m, seed in seeds.items() if share.of(m) == index}
    rules = ActiveRules(ruleset, ReferenceMatcher(ruleset.rules), ())
    return Replay(rules, seeds, budgets, record_budgets=record_budgets)


@dataclass(slots=True)
class ShareOutcome:
    base: ReplayResult
    head: ReplayResult
    base_spends: list[BudgetSpend]
    head_spends: list[BudgetSpend]
    skipped: list[tuple[int, str]]  # (position, "where: reason")
    event_ids: list[str]  # of the events it replayed (first sightings), to find repeats
    memory_mib: float


@dataclass(slots=True)
class VersionOutcome:
    result: ReplayResult
    skipped: list[str]
    memory_mib: float


_counters: Any = None


def _init_child(counters: Any) -> None:
    global _counters  # this child's handle on the shared progress counters
    _counters = counters


def _count(slot: int, done: int) -> None:
    if _counters is not None:
        _counters[slot] = done


def replay_share(
    base_files: Mapping[str, str],
    head_files: Mapping[str, str],
    source: Source,
    shares: Shares,
    index: int,
) -> ShareOutcome:
    """Both versions over one share of the members."""
    base = replay_of(
        load_rules(base_files).ruleset, source, share=shares, index=index, record_budgets=True
    )
    head = replay_of(
        load_rules(head_files).ruleset, source, share=shares, index=index, record_budgets=True
    )
    skipped: list[tuple[int, str]] = []
    seen: set[str] = set()
    done = 0
    for position, item in source.share_events(shares, index):
        done += 1
        if isinstance(item, Event):
            seen.add(item.event_id)
            base.apply(item, position)
            head.apply(item, position)
        else:
            skipped.append((position, f"{item.where}: {item.reason}"))
        if done % TICK == 0:
            _count(index, done)
    _count(index, done)
    assert base.spends is not None
    assert head.spends is not None
    return ShareOutcome(
        base.finish(),
        head.finish(),
        base.spends,
        head.spends,
        skipped,
        list(seen),
        peak_memory_mib(),
    )


def replay_version(files: Mapping[str, str], source: Source, slot: int) -> VersionOutcome:
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
            _count(slot, done)
    _count(slot, done)
    return VersionOutcome(replay.finish(), skipped, peak_memory_mib())


def run_in_processes(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    on_progress: Callable[[list[int]], None],
) -> list[Any]:
    """Each call in a spawned process of its own; ``on_progress`` gets each process's count
    of events done, twice a second."""
    context = get_context("spawn")
    counters = context.Array("q", len(calls), lock=False)
    with ProcessPoolExecutor(
        max_workers=len(calls),
        mp_context=context,
        initializer=_init_child,
        initargs=(counters,),
        max_tasks_per_child=1,
    ) as pool:
        futures: list[Future[Any]] = [pool.submit(call, *args) for call, args in calls]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            on_progress(list(counters))
        return [future.result() for future in futures]
