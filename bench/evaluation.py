"""In-process evaluation: events/s of the pure core, both engines side by side.

The same (member snapshot, event) pairs go through ``evaluate(ruleset, matcher, customer,
event)`` with the durable-rules matcher (the reference behind it, as in production) and
with the reference matcher alone, for the example rules in rules/ and for synthetic
programmes of growing size. Nothing here touches a database or HTTP.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.synthetic import ROOT, sample_traffic, synthetic_rules
from service.core.customer import CustomerSnapshot
from service.core.evaluation import Matcher, evaluate
from service.core.events import Event
from service.core.programme import RuleSet
from service.rules.loader import load_rules, load_rules_dir
from service.rules.matchers import build_matcher

Traffic = Sequence[tuple[CustomerSnapshot, Event]]
AGREEMENT_SAMPLE = 300


def _timed(
    ruleset: RuleSet, matcher: Matcher, traffic: Traffic, seconds: float, minimum: int
) -> tuple[int, float]:
    """Evaluate the traffic round and round for about ``seconds``; (events, elapsed)."""
    done = 0
    gc.collect()
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for customer, event in traffic:
            evaluate(ruleset, matcher, customer, event)
            done += 1
            if done >= minimum and done % 50 == 0 and time.perf_counter() >= deadline:
                return done, time.perf_counter() - start


def _effects(ruleset: RuleSet, matcher: Matcher, traffic: Traffic) -> list[tuple[Any, ...]]:
    return [evaluate(ruleset, matcher, customer, event).effects for customer, event in traffic]


def evaluate_ruleset(
    label: str,
    campaigns: int,
    load: Callable[[], RuleSet],
    traffic: Traffic,
    seconds: float,
    minimum: int = 200,
) -> dict[str, Any]:
    started = time.perf_counter()
    ruleset = load()
    load_s = time.perf_counter() - started
    fallback_reasons: list[str] = []
    result: dict[str, Any] = {
        "rules": label,
        "campaigns": campaigns,
        "rule_count": len(ruleset.rules),
        "load_s": round(load_s, 3),
        "engines": {},
    }
    matchers: dict[str, Matcher] = {}
    for engine in ("durable", "reference"):
        started = time.perf_counter()
        matcher = build_matcher(ruleset.rules, ruleset.version, engine, fallback_reasons.append)
        build_s = time.perf_counter() - started
        matchers[engine] = matcher
        primary = getattr(matcher, "primary", None)
        plan = getattr(primary, "plan", None)
        # One untimed pass warms caches (zoneinfo, compiled patterns) for both engines alike.
        _effects(ruleset, matcher, traffic[:50])
        before = getattr(matcher, "fallbacks", 0)
        events, elapsed = _timed(ruleset, matcher, traffic, seconds, minimum)
        fallbacks = getattr(matcher, "fallbacks", 0) - before
        entry: dict[str, Any] = {
            "build_s": round(build_s, 3),
            "events": events,
            "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed, 1),
            "us_per_event": round(elapsed / events * 1e6, 1),
        }
        if engine == "durable":
            entry["matcher"] = type(matcher).__name__
            entry["fallback_events"] = fallbacks
            entry["fallback_share"] = round(fallbacks / events, 4) if events else None
            entry["rules_in_durable"] = len(plan.sent) if plan is not None else 0
            entry["rules_reference_only"] = len(plan.reference_only) if plan is not None else None
            entry["fallback_reasons"] = sorted({_short(r) for r in fallback_reasons})[:5]
        result["engines"][engine] = entry
    durable = result["engines"]["durable"]["events_per_s"]
    reference = result["engines"]["reference"]["events_per_s"]
    result["durable_over_reference"] = round(durable / reference, 3) if reference else None
    sample = traffic[:AGREEMENT_SAMPLE]
    by_durable = _effects(ruleset, matchers["durable"], sample)
    by_reference = _effects(ruleset, matchers["reference"], sample)
    result["agreement"] = {
        "events": len(sample),
        "differ": sum(1 for a, b in zip(by_durable, by_reference, strict=True) if a != b),
        "with_effects": sum(1 for a in by_reference if a),
    }
    close = getattr(matchers["durable"], "close", None)
    if close is not None:
        close()
    return result


def _short(reason: str) -> str:
    return reason if len(reason) <= 160 else reason[:157] + "..."


def evaluation_suite(
    sizes: Sequence[int], seconds: float, traffic_size: int = 2000, progress: Any = print
) -> dict[str, Any]:
    traffic = sample_traffic(traffic_size)
    mix: dict[str, int] = {}
    for _, event in traffic:
        mix[event.type] = mix.get(event.type, 0) + 1
    results = []
    progress("[evaluation] example rules in rules/")
    results.append(
        evaluate_ruleset(
            "rules/ (examples)",
            _count_campaigns(),
            lambda: load_rules_dir(ROOT / "rules").ruleset,
            traffic,
            seconds,
        )
    )
    for size in sizes:
        progress(f"[evaluation] {size} synthetic campaigns")
        results.append(
            evaluate_ruleset(
                f"synthetic x{size}",
                size,
                lambda size=size: load_rules(synthetic_rules(size)).ruleset,
                traffic,
                seconds,
            )
        )
    return {
        "traffic": {
            "events": len(traffic),
            "members": len({c.customer_id for c, _ in traffic}),
            "mix": mix,
        },
        "seconds_per_measurement": seconds,
        "results": results,
    }


def _count_campaigns() -> int:
    return len(list((ROOT / "rules" / "campaigns").glob("*.y*ml")))
