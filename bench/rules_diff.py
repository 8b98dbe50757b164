"""`python -m bench.rules_diff`: the time `loyalty rules diff` takes over a million events.

Writes a seeded JSON Lines file of realistic traffic for the example rules (enrolments,
referrals, purchases with baskets, partial and full refunds, activities), builds a
throwaway git repository holding rules/ with one campaign changed, and times the diff the
way the CLI runs it: `loyalty rules diff --base HEAD~1 --events FILE --rules-dir rules`.

    python -m bench.rules_diff --events 1000000 --members 10000

``generate_events`` is also what the diff tests replay (at a few hundred events).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)
CHANNELS = ("app", "store", "web")
BASKET = (
    ("coffee", 18, 45),
    ("tea", 20, 60),
    ("bakery", 8, 30),
    ("new_arrivals", 60, 400),
    ("homeware", 30, 300),
    ("gift_card", 100, 100),
    ("delivery", 10, 10),
)
ACTIVITIES = ("review", "check_in", "social_share", "app_login", "survey")
TAGS = ("social_sharer", "price-sensitive", "quality-seeking", "student")


def generate_events(
    count: int, members: int, seed: int = 7, days: int = 30
) -> Iterator[dict[str, Any]]:
    """``count`` events of ``members`` members, in time order over ``days`` days.

    A member's first event is an enrolment, or (one in eight) a referral by a member who
    joined earlier. Then purchases (60 %), activities (25 %), refunds of an earlier order
    (7 %) and profile updates.
    """
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    joined: list[str] = []
    orders: dict[str, list[tuple[str, float]]] = {}
    for n in range(count):
        at = START + timedelta(seconds=span * n / max(count, 1))
        customer = f"m-{rng.randrange(members):05d}"
        base = {
            "event_id": f"e-{n:08d}",
            "customer_id": customer,
            "occurred_at": at.isoformat(),
        }
        if customer not in orders:
            orders[customer] = []
            if joined and rng.random() < 0.125:
                yield {**base, "type": "referral", "referrer_id": rng.choice(joined)}
            else:
                yield {**base, "type": "enrolment", "profile": _profile(rng, at)}
            joined.append(customer)
            continue
        roll = rng.random()
        if roll < 0.60:
            yield purchase_event(rng, base, n, orders[customer])
        elif roll < 0.85:
            yield {**base, "type": "activity", "kind": rng.choice(ACTIVITIES)}
        elif roll < 0.92 and orders[customer]:
            order_id, amount = orders[customer].pop(rng.randrange(len(orders[customer])))
            share = 1 if rng.random() < 0.5 else rng.choice((0.25, 0.5))
            refund = max(round(amount * share, 2), 0.01)
            yield {**base, "type": "refund", "order_id": order_id, "amount": f"{refund:.2f}"}
        else:
            tags = rng.sample(TAGS, rng.randrange(3))
            yield {**base, "type": "profile", "profile": {"tags": tags}}


def _profile(rng: random.Random, at: datetime) -> dict[str, Any]:
    profile: dict[str, Any] = {"tags": rng.sample(TAGS, rng.randrange(2))}
    if rng.random() < 0.7:
        birthday = at.date() - timedelta(days=rng.randrange(18 * 365, 60 * 365))
        profile["birthday"] = birthday.isoformat()
    return profile


def purchase_event(
    rng: random.Random, base: dict[str, Any], n: int, orders: list[tuple[str, float]]
) -> dict[str, Any]:
    """A purchase of 1-3 basket lines on ``base`` (event_id, customer_id, occurred_at),
    order ``o-<n>``, noted in ``orders``."""
    items = []
    for _ in range(rng.randrange(1, 4)):
        category, low, high = rng.choice(BASKET)
        price = round(rng.uniform(low, high), 2)
        item: dict[str, Any] = {
            "sku": f"{category}-{rng.randrange(20)}",
            "category": category,
            "quantity": rng.randrange(1, 3),
            "price": f"{price:.2f}",
        }
        if rng.random() < 0.05:
            item["discounted"] = True
        items.append(item)
    amount = sum(float(i["price"]) * i["quantity"] for i in items)
    order_id = f"o-{n:08d}"
    orders.append((order_id, amount))
    return {
        **base,
        "type": "purchase",
        "order_id": order_id,
        "amount": f"{amount:.2f}",
        "channel": rng.choice(CHANNELS),
        "items": items,
    }


def write_events(path: Path, count: int, members: int, seed: int = 7) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for event in generate_events(count, members, seed):
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    return path


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def rules_repository(directory: Path) -> Path:
    """A git repository with rules/ committed, then coffee-lovers changed (not committed)."""
    rules = directory / "rules"
    shutil.copytree(ROOT / "rules", rules)
    git(directory, "init", "-q", "-b", "main")
    git(directory, "add", "rules")
    git(directory, "commit", "-q", "-m", "rules")
    campaign = rules / "campaigns" / "coffee-lovers.yaml"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text.replace("coffee: 3, tea: 2", "coffee: 5, tea: 2"), encoding="utf-8")
    return rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules_diff", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, help="processes (default: the CLI's choice)")
    parser.add_argument("--keep", type=Path, help="write the events file here and keep it")
    parser.add_argument(
        "--reuse", type=Path, help="replay this events file (one --keep wrote) instead"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rules-diff-bench-") as scratch:
        work = Path(scratch)
        events = args.reuse or args.keep or work / "events.jsonl"
        if args.reuse is None:
            started = time.perf_counter()
            write_events(events, args.events, args.members)
            print(
                f"wrote {args.events:,} events of {args.members:,} members to {events} "
                f"in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        rules = rules_repository(work)
        command = [
            str(Path(sys.executable).with_name("loyalty")),
            "rules",
            "diff",
            "--base",
            "HEAD",
            "--events",
            str(events),
            "--rules-dir",
            str(rules),
            "--format",
            "table",
        ]
        if args.workers:
            command += ["--workers", str(args.workers)]
        started = time.perf_counter()
        code, closing = _run_showing_progress(command)
        elapsed = time.perf_counter() - started
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"\n`loyalty rules diff --base HEAD --events <{args.events:,} events>` took "
            f"{elapsed:.1f} s ({args.events / elapsed:,.0f} events/s), "
            f"{cpu.ru_utime + cpu.ru_stime:.1f} s of CPU in all processes",
            file=sys.stderr,
        )
        # How it ran (processes, and why) and each process's peak resident memory.
        how = closing.partition("; ")[2] if closing else "(no closing line)"
        print(f"ran in {how}", file=sys.stderr)
        return code


def _run_showing_progress(command: list[str]) -> tuple[int, str]:
    """Run the CLI with its stderr passed through; returns its exit code and its closing
    progress line (which says how it ran and each process's peak memory)."""
    closing = ""
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(line)
            if "peak memory" in line:
                closing = line.strip()
    return process.returncode, closing


if __name__ == "__main__":
    raise SystemExit(main())
