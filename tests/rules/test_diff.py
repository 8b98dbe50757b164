"""`loyalty rules diff`: a campaign changed in a git repository, replayed over generated
events, and the reported deltas held against applying each version for real (the
apply_event use case on SQLite)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bench.rules_diff import generate_events
from service.application.apply_event import apply_event
from service.application.event_source import Skipped, event_from_json
from service.bootstrap import build_services
from service.cli import main
from service.commands.impact_format import COMMENT_MARKER, render
from service.commands.rules_diff import EventFile, StoredEvents, run_diff
from service.core.effects import (
    AwardPoints,
    ChangeTier,
    ClawBackPoints,
    IssueOffer,
    SendMessage,
    TagCustomer,
)
from service.event_schema import parse_event
from service.rules.git_source import GitError, rules_at_revision
from service.rules.loader import read_rules_dir
from service.settings import Settings
from service.storage.database import make_engine
from service.storage.migrate import upgrade
from service.storage.tables import campaign_budgets, members, outbox
from tests.conftest import RULES_DIR, FixedClock

# One worker runs the module: its fixtures (a git repository, both versions applied for
# real, the CLI's report) are made once a run, not once on each worker.
pytestmark = pytest.mark.xdist_group("rules-diff")

EVENTS = 90
MEMBERS = 12


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@dataclass
class Repository:
    rules: Path  # the working tree's rules/, with the change
    base_copy: Path  # the committed rules, copied out (to serve them for real)
    events: Path


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    root = tmp_path_factory.mktemp("brand-rules")
    rules = root / "rules"
    shutil.copytree(RULES_DIR, rules)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "rules as they are")
    base_copy = tmp_path_factory.mktemp("base") / "rules"
    shutil.copytree(rules, base_copy)
    campaign = rules / "campaigns" / "coffee-lovers.yaml"
    text = campaign.read_text(encoding="utf-8")
    changed = text.replace("coffee: 3, tea: 2", "coffee: 6, tea: 1").replace(
        "expect: {points: 24, tags: [coffee_lover]}", "expect: {points: 39, tags: [coffee_lover]}"
    )
    assert changed != text
    campaign.write_text(changed, encoding="utf-8")
    events = root / "events.jsonl"
    with events.open("w", encoding="utf-8") as out:
        for event in generate_events(EVENTS, MEMBERS, seed=11):
            out.write(json.dumps(event) + "\n")
    return Repository(rules, base_copy, events)


# -- the oracle: each version applied for real


@dataclass
class Real:
    points: Counter[str] = field(default_factory=Counter)
    awards: Counter[str] = field(default_factory=Counter)
    members: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    offers: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    tier_grants: Counter[str] = field(default_factory=Counter)
    tier_changes: int = 0
    clawed: int = 0
    messages_total: int = 0
    received: Counter[str] = field(default_factory=Counter)
    balances: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    budgets: dict[str, int] = field(default_factory=dict)


def apply_for_real(rules_dir: Path, events: Path, database: Path) -> Real:
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(database_url=url, rules_dir=str(rules_dir), engine="reference")
    services = build_services(settings, clock=FixedClock(datetime(2026, 11, 30, tzinfo=UTC)))
    real = Real()
    try:
        rules = services.rules.active
        for line in events.read_text(encoding="utf-8").splitlines():
            outcome = apply_event(
                services.uow, rules, parse_event(json.loads(line)), services.clock
            )
            assert outcome.evaluation is not None
            _tally(real, json.loads(line)["customer_id"], outcome.evaluation.effects)
        with services.db.connect() as connection:
            for row in connection.execute(select(members)):
                real.balances[row.customer_id] = (
                    row.points_available + row.points_pending,
                    row.tier or "bronze",
                )
            real.budgets = {
                r.campaign: r.points_used for r in connection.execute(select(campaign_budgets))
            }
            queued = select(outbox.c.campaign).where(outbox.c.status != "suppressed")
            for (campaign,) in connection.execute(queued):
                real.messages_total += 1
                if campaign is not None:
                    real.messages[campaign] += 1
    finally:
        services.db.dispose()
    return real


def _tally(real: Real, customer: str, effects: Any) -> None:
    for effect in effects:
        if isinstance(effect, AwardPoints):
            who = effect.customer_id or customer
            real.points[effect.campaign] += effect.points
            real.awards[effect.campaign] += 1
            members = real.members[effect.campaign]
            members[who] = members.get(who, 0) + effect.points
            real.received[who] += effect.points
        elif isinstance(effect, (IssueOffer, SendMessage, TagCustomer)):
            real.members[effect.campaign].setdefault(customer, 0)
            if isinstance(effect, IssueOffer):
                real.offers[effect.campaign] += 1
        elif isinstance(effect, ChangeTier):
            real.tier_changes += 1
            if effect.campaign is not None:
                real.tier_grants[effect.campaign] += 1
                real.members[effect.campaign].setdefault(customer, 0)
        elif isinstance(effect, ClawBackPoints):
            real.clawed += effect.points


@pytest.fixture(scope="module")
def real(repository: Repository, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Real]:
    scratch = tmp_path_factory.mktemp("real")
    return {
        "base": apply_for_real(repository.base_copy, repository.events, scratch / "base.db"),
        "head": apply_for_real(repository.rules, repository.events, scratch / "head.db"),
    }


@pytest.fixture(scope="module")
def reported(repository: Repository) -> dict[str, Any]:
    """`loyalty rules diff --format json`, as the CLI prints it."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "rules",
                "diff",
                "--base",
                "HEAD",
                "--events",
                str(repository.events),
                "--rules-dir",
                str(repository.rules),
                "--format",
                "json",
                "--quiet",
                "--top",
                "1000",
            ]
        )
    assert code == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_the_reported_deltas_are_the_ones_applying_each_version_gives(
    reported: dict[str, Any], real: dict[str, Real]
) -> None:
    base, head = real["base"], real["head"]
    assert reported["events"] == EVENTS
    assert reported["skipped"] == 0
    assert head.points["coffee-lovers"] != base.points["coffee-lovers"], "the change must show"
    campaigns = {c["campaign"]: c for c in reported["campaigns"]}
    assert campaigns["coffee-lovers"]["status"] == "changed"
    assert {c["status"] for n, c in campaigns.items() if n != "coffee-lovers"} == {"unchanged"}
    for name, campaign in campaigns.items():
        for side, was in (("base", base), ("head", head)):
            assert campaign["points"][side] == was.points[name], (name, side)
            assert campaign["awards"][side] == was.awards[name], (name, side)
            assert campaign["members"][side] == len(was.members.get(name, {})), (name, side)
            assert campaign["offers"][side] == was.offers[name], (name, side)
            assert campaign["messages"][side] == was.messages[name], (name, side)
            assert campaign["tier_grants"][side] == was.tier_grants[name], (name, side)
            assert campaign["budget"][side] == was.budgets.get(name, 0), (name, side)
        assert campaign["points"]["delta"] == head.points[name] - base.points[name]
    totals = reported["totals"]
    for side, was in (("base", base), ("head", head)):
        assert totals["points_issued"][side] == sum(was.points.values())
        assert totals["points_clawed"][side] == was.clawed
        assert totals["tier_changes"][side] == was.tier_changes
        assert totals["offers"][side] == sum(was.offers.values())
        assert totals["messages"][side] == was.messages_total


def test_the_members_who_change_are_the_ones_whose_outcome_differs(
    reported: dict[str, Any], real: dict[str, Real]
) -> None:
    base, head = real["base"], real["head"]
    differ = {
        member
        for member in set(base.balances) | set(head.balances)
        if base.balances.get(member) != head.balances.get(member)
        or base.received[member] != head.received[member]
    }
    assert reported["members_changed"] == len(differ)
    listed = {c["customer_id"]: c for c in reported["customers"]}
    assert set(listed) == differ
    for member, change in listed.items():
        assert change["points"]["base"] == base.received[member]
        assert change["points"]["head"] == head.received[member]
        assert change["balance"]["head"] == head.balances[member][0]
        assert change["tier"]["head"] == head.balances[member][1]
    deltas = [abs(c["points"]["delta"]) for c in reported["customers"]]
    assert deltas == sorted(deltas, reverse=True)


def test_two_processes_report_what_one_does(repository: Repository) -> None:
    base_files = rules_at_revision(repository.rules, "HEAD")
    head_files = read_rules_dir(repository.rules)
    source = EventFile(str(repository.events))
    one = run_diff(base_files, head_files, source, workers=1, progress=None).as_dict()
    two = run_diff(base_files, head_files, source, workers=2, progress=None).as_dict()
    for answer in (one, two):
        answer.pop("seconds")
    assert one == two


def test_table_and_markdown_name_the_changed_campaign(repository: Repository) -> None:
    impact = run_diff(
        rules_at_revision(repository.rules, "HEAD"),
        read_rules_dir(repository.rules),
        EventFile(str(repository.events)),
        workers=1,
        progress=None,
    )
    table = render(impact, "table")
    assert "coffee-lovers" in table
    assert "changed" in table
    assert "modified campaigns/coffee-lovers.yaml" in table
    markdown = render(impact, "markdown")
    assert markdown.startswith(COMMENT_MARKER)
    assert "| **coffee-lovers** | changed |" in markdown
    assert "<details>" in markdown


def test_progress_is_reported_on_stderr(repository: Repository, capsys: Any) -> None:
    import sys

    run_diff(
        rules_at_revision(repository.rules, "HEAD"),
        read_rules_dir(repository.rules),
        EventFile(str(repository.events)),
        workers=1,
        progress=sys.stderr,
    )
    lines = capsys.readouterr().err.splitlines()
    assert lines
    assert lines[-1].startswith(f"rules diff: {EVENTS:,}/{EVENTS:,} events (100%)")
    assert "events/s" in lines[-1]


def test_an_unknown_revision_or_a_broken_base_is_a_clear_error(
    repository: Repository, capsys: Any
) -> None:
    with pytest.raises(GitError, match="not a commit"):
        rules_at_revision(repository.rules, "no-such-branch")
    code = main(
        [
            "rules",
            "diff",
            "--base",
            "nope",
            "--events",
            str(repository.events),
            "--rules-dir",
            str(repository.rules),
            "--quiet",
        ]
    )
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_invalid_lines_are_skipped_and_named(tmp_path: Path) -> None:
    good = next(generate_events(1, 1))
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join([json.dumps(good), "{not json", json.dumps({**good, "amount": "-3"}), ""])
    )
    results = list(EventFile(str(path)).events())
    assert results[0] == parse_event(good)
    skipped = [r for r in results[1:] if isinstance(r, Skipped)]
    assert [s.where for s in skipped] == [f"{path}:2", f"{path}:3"]
    assert "amount" in skipped[1].reason


def test_the_fast_event_reader_agrees_with_the_contract() -> None:
    for payload in generate_events(300, 20, seed=5):
        assert event_from_json(payload) == parse_event(payload)


# -- replaying the events the service stored


def _split(events: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    payloads = [json.loads(line) for line in events.read_text().splitlines()]
    half = len(payloads) // 2
    return payloads[:half], payloads[half:]


def test_stored_events_replay_from_the_members_state_when_the_span_began(
    repository: Repository, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(database_url=url, rules_dir=str(repository.base_copy), engine="reference")
    services = build_services(settings, clock=FixedClock())
    before, window = _split(repository.events)
    live_window_points: Counter[str] = Counter()
    try:
        for payload in before:
            apply_event(services.uow, services.rules.active, parse_event(payload), services.clock)
        for payload in window:
            outcome = apply_event(
                services.uow, services.rules.active, parse_event(payload), services.clock
            )
            assert outcome.evaluation is not None
            for effect in outcome.evaluation.effects:
                if isinstance(effect, AwardPoints):
                    live_window_points[effect.campaign] += effect.points
    finally:
        services.db.dispose()
    since = datetime.fromisoformat(window[0]["occurred_at"])
    files = read_rules_dir(repository.base_copy)
    impact = run_diff(files, files, StoredEvents(url, since), workers=1, progress=None)
    assert impact.events == len(window)
    replayed = {c.campaign: c.metrics["points"].base for c in impact.campaigns}
    assert {k: v for k, v in replayed.items() if v} == dict(live_window_points)
    assert not impact.changed
