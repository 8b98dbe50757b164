"""`loyalty rules diff` over several processes: members shared out (referrals kept
together), exact while no campaign budget comes within reach, and one process per
version, in event order, when one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.rules_diff import generate_events
from service.application.event_source import customer_of_line, read_lines_of
from service.application.replay import BudgetSpend
from service.application.replay_shares import (
    Limit,
    Links,
    Shares,
    budgets_never_reached,
)
from service.commands.diff_sources import EventFile
from service.commands.rules_diff import run_diff
from service.core.evaluation import BudgetUse
from service.rules.loader import read_rules_dir
from tests.conftest import RULES_DIR

EVENTS = 600
MEMBERS = 16


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shares") / "events.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for event in generate_events(EVENTS, MEMBERS, seed=3):
            out.write(json.dumps(event) + "\n")
    return path


def _rules(weekend_budget: int) -> tuple[dict[str, str], dict[str, str]]:
    """The example rules with the weekend campaign's budget set, and coffee-lovers changed
    on the head side."""
    base = read_rules_dir(RULES_DIR)
    weekend = "campaigns/weekend-double-points.yaml"
    base[weekend] = base[weekend].replace(
        "budget: {points: 2000000}", f"budget: {{points: {weekend_budget}}}"
    )
    head = dict(base)
    coffee = "campaigns/coffee-lovers.yaml"
    head[coffee] = head[coffee].replace("coffee: 3, tea: 2", "coffee: 6, tea: 1")
    assert head[coffee] != base[coffee]
    return base, head


def _diff(files: tuple[dict[str, str], dict[str, str]], events: Path, workers: int) -> Any:
    impact = run_diff(*files, EventFile(str(events)), workers=workers, top=1000, progress=None)
    answer = impact.as_dict()
    answer.pop("seconds")
    return answer, impact.run


def _weekend_budget_used(answer: dict[str, Any]) -> int:
    (weekend,) = [c for c in answer["campaigns"] if c["campaign"] == "weekend-double-points"]
    return int(weekend["budget"]["base"])


def test_while_no_budget_comes_within_reach_the_shares_give_the_one_process_result(
    events: Path,
) -> None:
    files = _rules(2_000_000)
    one, one_run = _diff(files, events, 1)
    shared, run = _diff(files, events, 3)
    assert one_run.processes == 1
    assert run.processes == 3
    assert "members shared out" in run.how
    assert [name for name, _ in run.memory_mib] == ["main", "share 1", "share 2", "share 3"]
    assert all(mib > 0 for _, mib in run.memory_mib)
    assert 0 < _weekend_budget_used(one) < 2_000_000
    assert one["totals"]["points_issued"]["head"] != one["totals"]["points_issued"]["base"]
    assert shared == one


def test_a_budget_spent_falls_back_to_one_process_per_version_and_the_exact_result(
    events: Path,
) -> None:
    unlimited, _ = _diff(_rules(2_000_000), events, 1)
    limit = _weekend_budget_used(unlimited) // 2  # the shares together spend past it
    files = _rules(limit)
    one, _ = _diff(files, events, 1)
    assert _weekend_budget_used(one) == limit, "the budget must be spent in this replay"
    fallen_back, run = _diff(files, events, 2)
    assert "one per version" in run.how
    assert "weekend-double-points" in run.how
    assert [name for name, _ in run.memory_mib] == ["main", "base", "head"]
    assert fallen_back == one


def test_members_linked_by_referrals_share_a_process() -> None:
    links = Links()
    links.link("m-3", "m-1")
    links.link("m-9", "m-3")
    links.link("m-5", "m-7")
    leaders = links.leaders()
    assert leaders["m-9"] == leaders["m-1"] == leaders["m-3"] == "m-1"
    assert leaders["m-5"] == leaders["m-7"] == "m-5"
    shares = Shares(4, leaders)
    assert shares.of("m-9") == shares.of("m-1") == shares.of("m-3")
    assert shares.of("m-7") == shares.of("m-5")


def test_a_budget_reached_only_when_the_shares_spends_are_merged_is_seen() -> None:
    limits = {"weekend": Limit(points=100, offers=None)}
    one = [BudgetSpend(1, "weekend", 40, 0), BudgetSpend(5, "weekend", 20, 0)]
    other = [BudgetSpend(2, "weekend", 30, 0), BudgetSpend(4, "weekend", 5, 0)]
    assert budgets_never_reached(limits, {}, [one, other]) is None  # 95 at most
    later = [*other, BudgetSpend(6, "weekend", 10, 0)]
    assert budgets_never_reached(limits, {}, [one, later]) == "weekend"
    # A refund that gives points back keeps the merged use below the budget ...
    refunded = [*other, BudgetSpend(3, "weekend", -50, 0), BudgetSpend(6, "weekend", 10, 0)]
    assert budgets_never_reached(limits, {}, [one, refunded]) is None
    # ... but what was used before the span began counts.
    seed = {"weekend": BudgetUse(points=60)}
    assert budgets_never_reached(limits, seed, [one, refunded]) == "weekend"


def test_each_line_goes_to_exactly_one_share(tmp_path: Path) -> None:
    lines = [
        '{"event_id": "e1", "customer_id": "m-1", "type": "activity"}',
        '{"event_id": "e2", "customer_id": "m-\\u0032", "type": "activity"}',  # escaped
        '{"event_id": "e3", "type": "activity", "attributes": {"customer_id": "m-3"}}',
        '{"event_id": "e4", "customer_id": "m-4", "attributes": {"customer_id": "m-9"}}',
        "{not json",
        "",
        '{"event_id": "e5", "customer_id": 5}',
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert customer_of_line(lines[0].encode()) == "m-1"
    assert customer_of_line(lines[1].encode()) is None  # only parsing can tell
    assert customer_of_line(lines[3].encode()) is None
    shares = Shares(3)

    def share(customer_id: str | None) -> int:
        return shares.of(customer_id) if customer_id is not None else 0

    seen: list[int] = []
    for index in range(3):

        def wanted(customer_id: str | None, index: int = index) -> bool:
            return share(customer_id) == index

        for number, _where, payload in read_lines_of(path, wanted):
            seen.append(number)
            named = payload.get("customer_id") if isinstance(payload, dict) else None
            if isinstance(named, str):  # a member's events are all in the member's share
                assert share(named) == index
    assert sorted(seen) == [1, 2, 3, 4, 5, 7]
