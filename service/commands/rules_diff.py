"""`loyalty rules diff`: replay recorded events through the rules at a git revision and
through the working tree, and report what the change would have done.

Small replays run in this process. Large ones share the members out over the cores
(os.cpu_count(), at least two): each process replays both versions for its members, so
each event is read and parsed once. The shares are exact unless a campaign budget came
within reach (service.application.replay_shares); then the run falls back to one process
per version, which follows every event in order, and says so. Progress goes to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TextIO

from service.application.event_source import Skipped
from service.application.impact import Impact, RunReport, compare
from service.application.replay import ReplayResult
from service.application.replay_shares import (
    Shares,
    SharesWatch,
    budget_limits,
    merge_results,
    revenue_budgets,
)
from service.commands.diff_processes import (
    TICK,
    Report,
    ShareOutcome,
    Stop,
    VersionOutcome,
    peak_memory_mib,
    replay_of,
    replay_share,
    replay_version,
    run_in_processes,
)
from service.commands.diff_sources import EventFile, Source, StoredEvents
from service.core.programme import RuleSet
from service.rules.loader import load_rules

__all__ = ["EventFile", "Progress", "StoredEvents", "parse_since", "run_diff"]

PARALLEL_FROM = 20_000  # fewer events than this replay faster in one process


class Progress:
    """Prints `replayed N/TOTAL events (P%), R events/s` every 5% (every 100,000 events
    when the total is unknown)."""

    def __init__(self, total: int, stream: TextIO | None, label: str = "rules diff") -> None:
        self.total, self.stream, self.label = total, stream, label
        self.started = time.perf_counter()
        self.step = max(total // 20, 1) if total else 100_000
        self.next = self.step

    def update(self, done: int) -> None:
        if self.stream is None or done < self.next or (self.total and done >= self.total):
            return  # the closing line says 100%
        self.next = (done // self.step + 1) * self.step
        self._line(done)

    def close(self, done: int, note: str) -> None:
        """The closing line: all done, and how the run went."""
        if self.stream is not None:
            self._line(done, f"; {note}")

    def say(self, text: str) -> None:
        if self.stream is not None:
            print(f"{self.label}: {text}", file=self.stream, flush=True)

    def _line(self, done: int, note: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        total = f"/{self.total:,}" if self.total else ""
        print(
            f"{self.label}: {done:,}{total} events{share}, {rate:,.0f} events/s, "
            f"{elapsed:.0f} s{note}",
            file=self.stream,
            flush=True,
        )


Replayed = tuple[ReplayResult, ReplayResult, list[str], RunReport]


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
    processes = workers or (max(2, os.cpu_count() or 1) if total >= PARALLEL_FROM else 1)
    meter = Progress(total, progress)
    if processes == 1:
        base, head, skipped, run = _in_one_process(base_rules, head_rules, source, meter)
    else:
        revenue = revenue_budgets(base_rules) + revenue_budgets(head_rules)
        shared = None
        if not revenue:
            shared = _in_shares(
                base_files, head_files, base_rules, head_rules, source, meter, processes
            )
        if isinstance(shared, tuple):
            base, head, skipped, run = shared
        else:
            why = shared or f"campaign {revenue[0]} has a budget that follows revenue"
            meter.say(f"{why}: replaying again, one process per version, in event order")
            meter = Progress(total, progress)
            base, head, skipped, run = _per_version(base_files, head_files, source, meter, why)
    meter.close(max(total, base.events + base.duplicates + len(skipped)), _run_line(run))
    impact = compare(
        base_rules,
        head_rules,
        base,
        head,
        source=source.describe(),
        skipped=skipped,
        top=top,
        seconds=time.perf_counter() - started,
    )
    return replace(impact, run=run)


def _run_line(run: RunReport) -> str:
    memory = ", ".join(f"{name} {mib:,.0f} MiB" for name, mib in run.memory_mib)
    return f"{run.how}; peak memory: {memory}"


def _in_one_process(
    base_rules: RuleSet, head_rules: RuleSet, source: Source, meter: Progress
) -> Replayed:
    base, head = replay_of(base_rules, source), replay_of(head_rules, source)
    skipped: list[str] = []
    for done, item in enumerate(source.events(), start=1):
        if isinstance(item, Skipped):
            skipped.append(f"{item.where}: {item.reason}")
        else:
            base.apply(item, done)
            head.apply(item, done)
        if done % TICK == 0:
            meter.update(done)
    run = RunReport(1, "1 process", (("main", peak_memory_mib()),))
    return base.finish(), head.finish(), skipped, run


def _in_shares(
    base_files: Mapping[str, str],
    head_files: Mapping[str, str],
    base_rules: RuleSet,
    head_rules: RuleSet,
    source: Source,
    meter: Progress,
    processes: int,
) -> Replayed | str:
    """The members shared out; or why the shares' results cannot be trusted (found as
    soon as the shares' budget spends, merged in event order, show it)."""
    links = source.links()
    base_seeds, base_budgets = source.starting_states(base_rules)
    head_seeds, head_budgets = source.starting_states(head_rules)
    links.link_seeds(base_seeds)
    links.link_seeds(head_seeds)
    shares = Shares(processes, links.leaders())
    watches = [
        (rules.version, SharesWatch(budget_limits(rules), budgets, processes))
        for rules, budgets in ((base_rules, base_budgets), (head_rules, head_budgets))
    ]
    counts = [0] * processes
    reached: list[str] = []

    def heard(slot: int, report: Report) -> None:
        counts[slot] = report.done
        meter.update(sum(counts))
        for (version, watch), spends in zip(
            watches, (report.base_spends, report.head_spends), strict=True
        ):
            campaign = watch.add(slot, spends, report.through)
            if campaign is not None:
                reached.append(f"the budget of campaign {campaign} came within reach ({version})")
                raise Stop

    calls = [
        (replay_share, (dict(base_files), dict(head_files), source, shares, index))
        for index in range(processes)
    ]
    try:
        done: list[ShareOutcome] = run_in_processes(calls, heard)
    except Stop:
        return reached[0]
    for version, watch in watches:
        campaign = watch.close()
        if campaign is not None:
            return f"the budget of campaign {campaign} came within reach ({version})"
    seen: set[str] = set()
    for outcome in done:
        if not seen.isdisjoint(outcome.event_ids):
            return "an event_id is used by members of different shares"
        seen.update(outcome.event_ids)
    skipped = [text for _, text in sorted(s for o in done for s in o.skipped)]
    run = RunReport(
        processes,
        f"{processes} processes, members shared out (no budget came within reach)",
        (
            ("main", peak_memory_mib()),
            *((f"share {i + 1}", o.memory_mib) for i, o in enumerate(done)),
        ),
    )
    base = merge_results(base_rules.version, [o.base for o in done], base_budgets)
    head = merge_results(head_rules.version, [o.head for o in done], head_budgets)
    return base, head, skipped, run


def _per_version(
    base_files: Mapping[str, str],
    head_files: Mapping[str, str],
    source: Source,
    meter: Progress,
    why: str,
) -> Replayed:
    counts = [0, 0]

    def heard(slot: int, report: Report) -> None:
        counts[slot] = report.done
        meter.update(min(counts))

    base, head = run_in_processes(
        [
            (replay_version, (dict(base_files), source)),
            (replay_version, (dict(head_files), source)),
        ],
        heard,
    )
    assert isinstance(base, VersionOutcome)
    assert isinstance(head, VersionOutcome)
    run = RunReport(
        2,
        f"2 processes, one per version ({why})",
        (("main", peak_memory_mib()), ("base", base.memory_mib), ("head", head.memory_mib)),
    )
    return base.result, head.result, base.skipped, run


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
