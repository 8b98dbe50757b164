"""The whole programme through the application layer, on SQLite and PostgreSQL: tiers,
offers, rewards, referrals, line-by-line earning, refunds that undo, budgets."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select

from service.application.apply_event import apply_event
from service.bootstrap import Services
from service.event_schema import parse_event
from service.settings import Settings
from service.storage.tables import campaign_budgets, member_offers, rule_firings, tier_history
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import (
    WEDNESDAY,
    activity,
    app_for,
    assert_balanced,
    assert_problem,
    event,
    member_row,
    points_of,
    post,
    purchase,
    refund,
    services_for,
    write_rules,
)


def apply(services: Services, body: dict, *, internal: bool = False) -> dict:  # type: ignore[type-arg]
    outcome = apply_event(
        services.uow, services.rules.active, parse_event(body, internal=internal), services.clock
    )
    return outcome.answer


def effects_of(answer: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in answer["effects"] if e["type"] == kind]


# -- tiers


def test_an_upgrade_on_the_crossing_purchase_and_the_multiplier_on_the_next(
    client: FlaskClient, services: Services
) -> None:
    first = post(client, purchase("tia", "900")).get_json()
    assert first["customer"]["tier"] == "bronze"
    crossing = post(client, purchase("tia", "200")).get_json()
    assert points_of(crossing) == 200  # still bronze's rate on the crossing purchase
    assert effects_of(crossing, "change_tier") == [
        {"type": "change_tier", "from": "bronze", "to": "silver", "reason": "qualified"}
    ]
    assert crossing["customer"]["tier"] == "silver"
    after = post(client, purchase("tia", "100")).get_json()
    assert points_of(after) == 125  # silver earns 1.25 per CNY
    with services.db.connect() as connection:
        moves = connection.execute(select(tier_history.c.to_tier, tier_history.c.reason)).all()
    assert moves == [("silver", "qualified")]


def test_a_fast_track_upgrade_for_a_time(client: FlaskClient) -> None:
    post(client, activity("sam", "social_share", WEDNESDAY))
    answer = post(
        client,
        purchase("sam", "60", items=[{"sku": "scarf", "category": "new_arrivals", "price": 60}]),
    ).get_json()
    (change,) = effects_of(answer, "change_tier")
    assert change["to"] == "silver"
    assert change["reason"] == "fast_track"
    assert change["until"].startswith("2027-03-02")
    assert answer["customer"]["tier"] == "silver"


# -- offers


def test_birthday_win_back_and_segment_offers(client: FlaskClient, services: Services) -> None:
    post(client, event("enrolment", "bea", profile={"birthday": "1990-12-02"}))
    birthday = apply(
        services,
        {
            "event_id": "sched-1",
            "type": "schedule",
            "customer_id": "bea",
            "kind": "birthday",
            "occurred_at": "2026-12-02T00:05:00+08:00",
        },
        internal=True,
    )
    assert [o["offer"] for o in effects_of(birthday, "issue_offer")] == ["birthday-20"]
    assert effects_of(birthday, "issue_offer")[0]["code"]

    post(client, purchase("will", "30", occurred_at="2026-09-01T10:00:00+08:00"))
    back = apply(
        services,
        {
            "event_id": "sched-2",
            "type": "schedule",
            "customer_id": "will",
            "kind": "inactive",
            "occurred_at": WEDNESDAY,
        },
        internal=True,
    )
    assert [o["offer"] for o in effects_of(back, "issue_offer")] == ["welcome-back-15"]

    offers = []
    for n in range(16):  # frequent, big and recent: she becomes an RFM champion on the way
        answer = post(
            client, purchase("cara", "400", occurred_at=f"2026-11-{n + 10:02d}T10:00:00+08:00")
        )
        offers += [o["offer"] for o in effects_of(answer.get_json(), "issue_offer")]
    assert offers == ["vip-10"]  # once: the rule's limit is one a month
    customer = client.get("/v1/customers/cara", headers=AUTH).get_json()
    assert customer["segment"] == "champions"
    assert [o["offer_id"] for o in customer["offers"]] == ["vip-10"]


def test_an_offer_is_used_once(client: FlaskClient, services: Services) -> None:
    post(client, event("enrolment", "olga", profile={"birthday": "1990-12-02"}))
    answer = apply(
        services,
        {
            "event_id": "sched-3",
            "type": "schedule",
            "customer_id": "olga",
            "kind": "birthday",
            "occurred_at": "2026-12-02T00:05:00+08:00",
        },
        internal=True,
    )
    code = effects_of(answer, "issue_offer")[0]["code"]
    body = {"customer_id": "olga", "reference": "order-77"}
    used = client.post(f"/v1/offers/{code}/redeem", json=body, headers=AUTH)
    assert used.status_code == 200, used.get_data(as_text=True)
    assert used.get_json()["status"] == "redeemed"
    again = client.post(f"/v1/offers/{code}/redeem", json=body, headers=AUTH)
    assert again.status_code == 200  # the same use, repeated: harmless
    other_use = client.post(
        f"/v1/offers/{code}/redeem",
        json={"customer_id": "olga", "reference": "order-78"},
        headers=AUTH,
    )
    assert_problem(other_use, 409)
    not_hers = client.post(
        f"/v1/offers/{code}/redeem", json={"customer_id": "mallory"}, headers=AUTH
    )
    assert_problem(not_hers, 409)
    assert_problem(client.post("/v1/offers/NOPE/redeem", json=body, headers=AUTH), 404)


def test_an_expired_offer_is_refused(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    post(client, event("enrolment", "eve", profile={"birthday": "1990-12-02"}))
    answer = apply(
        services,
        {
            "event_id": "sched-4",
            "type": "schedule",
            "customer_id": "eve",
            "kind": "birthday",
            "occurred_at": "2026-12-02T00:05:00+08:00",
        },
        internal=True,
    )
    code = effects_of(answer, "issue_offer")[0]["code"]
    clock.now = clock.now.replace(year=2027)
    assert_problem(
        client.post(f"/v1/offers/{code}/redeem", json={"customer_id": "eve"}, headers=AUTH), 409
    )


# -- rewards


def test_a_reward_spends_points_oldest_first_and_409s_when_short(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("rex", "300"))
    post(client, purchase("rex", "300"))
    path = "/v1/customers/rex/redemptions"
    taken = client.post(
        path, json={"reward_id": "free-coffee", "redemption_id": "r-1"}, headers=AUTH
    )
    assert taken.status_code == 201, taken.get_data(as_text=True)
    assert taken.get_json()["points_available"] == 100
    repeat = client.post(
        path, json={"reward_id": "free-coffee", "redemption_id": "r-1"}, headers=AUTH
    )
    assert repeat.status_code == 200
    assert repeat.get_json()["points_available"] == 100
    short = client.post(
        path, json={"reward_id": "free-coffee", "redemption_id": "r-2"}, headers=AUTH
    )
    assert_problem(short, 409)
    assert assert_balanced(services.db, "rex")["available"] == 100
    assert_problem(
        client.post(path, json={"reward_id": "yacht", "redemption_id": "r-3"}, headers=AUTH), 404
    )


def test_a_reversed_redemption_returns_the_points(client: FlaskClient, services: Services) -> None:
    post(client, purchase("ray", "600"))
    client.post(
        "/v1/customers/ray/redemptions",
        json={"reward_id": "free-coffee", "redemption_id": "r-9"},
        headers=AUTH,
    )
    reversed_ = client.delete("/v1/customers/ray/redemptions/r-9", headers=AUTH)
    assert reversed_.status_code == 200, reversed_.get_data(as_text=True)
    assert reversed_.get_json()["status"] == "reversed"
    assert client.delete("/v1/customers/ray/redemptions/r-9", headers=AUTH).status_code == 200
    assert assert_balanced(services.db, "ray")["available"] == 600


def test_twenty_racing_redemptions_never_overdraw(services: Services) -> None:
    client = app_for(services).test_client()
    post(client, purchase("rio", "2400"))  # 2,400 points: room for exactly four coffees
    barrier = threading.Barrier(20, timeout=60)
    app = app_for(services)  # built once, before the threads: only the requests race
    clients = [app.test_client() for _ in range(20)]

    def redeem(n: int) -> int:
        barrier.wait()
        body = {"reward_id": "free-coffee", "redemption_id": f"race-{n}"}
        return clients[n].post("/v1/customers/rio/redemptions", json=body, headers=AUTH).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(redeem, range(20)))
    assert statuses.count(201) == 4
    assert statuses.count(409) == 16
    assert assert_balanced(services.db, "rio")["available"] == 400


# -- referrals


def test_a_referral_rewards_both_sides_and_a_first_order_thanks_the_referrer(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("fay", "10"))
    code = client.get("/v1/customers/fay", headers=AUTH).get_json()["referral_code"]
    answer = post(client, event("referral", "ned", referrer_id="fay", code=code)).get_json()
    assert points_of(answer) == 300  # 100 for ned, 200 for fay
    assert member_row(services.db, "ned")["points_available"] == 100
    assert member_row(services.db, "fay")["points_available"] == 210
    post(client, purchase("ned", "150"))
    assert member_row(services.db, "fay")["points_available"] == 510
    post(client, purchase("ned", "150"))
    assert member_row(services.db, "fay")["points_available"] == 510  # only the first order
    for who in ("fay", "ned"):
        assert_balanced(services.db, who)


def test_each_refused_referral_says_why_and_rewards_nobody(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("gil", "10"))
    post(client, purchase("old", "10"))
    cases = {
        "self-referral": event("referral", "gil", referrer_id="gil"),
        "not new": event("referral", "old", referrer_id="gil"),
        "not a member": event("referral", "pat", referrer_id="ghost"),
        "does not belong": event("referral", "quin", referrer_id="gil", code="WRONGCODE1"),
    }
    for reason, body in cases.items():
        referee = body["customer_id"]
        answer = client.post("/v1/events?dry_run=true", json=body, headers=AUTH).get_json()
        refused = [t for t in answer["trace"] if t["outcome"] == "refused"]
        assert refused, (reason, answer["trace"])
        assert reason in refused[0]["reason"]
        applied = post(client, body).get_json()
        assert points_of(applied) == 0, reason
        if referee not in ("gil", "old"):  # a refused referral links nobody to the referrer
            assert member_row(services.db, referee)["referred_by"] is None, reason
    assert member_row(services.db, "gil")["points_available"] == 10


def test_a_referrer_past_the_cap_earns_nothing_more(tmp_path: Path, settings: Settings) -> None:
    rules = write_rules(tmp_path / "rules", {})
    program = (
        (rules / "program.yaml").read_text().replace("max_per_referrer: 10", "max_per_referrer: 2")
    )
    (rules / "program.yaml").write_text(program)
    (rules / "campaigns" / "refer.yaml").write_text(
        "campaign: refer\nrules:\n  - name: r\n    when: {type: referral}\n    then: [{award_points: {points: 50, to: referrer}}]\n"
        "tests:\n  - {name: t, event: {type: referral, referrer_id: x, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {referrer_points: 50}}\n"
    )
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        client = app_for(svc).test_client()
        post(client, purchase("hub", "10"))
        earned = [
            points_of(post(client, event("referral", f"new-{n}", referrer_id="hub")).get_json())
            for n in range(3)
        ]
        assert earned == [50, 50, 0]
        assert member_row(svc.db, "hub")["points_available"] == 100


# -- line by line, refunds, budgets


def test_excluded_lines_earn_nothing(client: FlaskClient) -> None:
    items = [
        {"sku": "gift", "category": "gift_card", "price": 100},
        {"sku": "ship", "category": "delivery", "price": 20},
        {"sku": "paid", "category": "homeware", "price": 30, "paid_with_points": True},
    ]
    answer = post(client, purchase("xena", "150", items=items)).get_json()
    assert points_of(answer) == 0


def test_a_refund_after_spending_leaves_a_debt_the_next_purchase_repays(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("dan", "500")
    post(client, body)
    client.post(
        "/v1/customers/dan/redemptions",
        json={"reward_id": "free-coffee", "redemption_id": "d-1"},
        headers=AUTH,
    )
    answer = post(client, refund("dan", body["order_id"], "500")).get_json()
    (clawback,) = effects_of(answer, "claw_back_points")
    assert clawback == {
        "type": "claw_back_points",
        "points": 500,
        "order_id": body["order_id"],
        "shortfall": 500,
    }
    assert assert_balanced(services.db, "dan") == {"available": 0, "pending": 0, "debt": 500}
    post(client, purchase("dan", "800"))
    assert assert_balanced(services.db, "dan") == {"available": 300, "pending": 0, "debt": 0}


def test_a_refund_returns_budget_and_limit_counts(tmp_path: Path, settings: Settings) -> None:
    campaign = (
        "campaign: once\nbudget: {points: 1000}\nrules:\n  - name: r\n    when: {type: purchase}\n"
        "    then: [{award_points: {points: 100, tier_multiplier: false}}]\n    limit: {per_customer: 1}\n"
        "tests:\n  - {name: t, event: {type: purchase, amount: 5, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {points: 100}}\n"
    )
    rules = write_rules(tmp_path / "rules", {"once.yaml": campaign})
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        client = app_for(svc).test_client()
        body = purchase("lee", "40")
        assert points_of(post(client, body).get_json()) == 100
        assert points_of(post(client, purchase("lee", "40")).get_json()) == 0  # limit reached
        post(client, refund("lee", body["order_id"], "40"))
        with svc.db.connect() as connection:
            used = connection.execute(select(campaign_budgets.c.points_used)).scalar_one()
            firings = connection.execute(
                select(func.count()).select_from(rule_firings)
            ).scalar_one()
        assert (used, firings) == (0, 0)
        assert (
            points_of(post(client, purchase("lee", "40")).get_json()) == 100
        )  # the count came back
        assert_balanced(svc.db, "lee")


def test_a_budget_runs_out_exactly_under_parallel_requests(
    tmp_path: Path, settings: Settings
) -> None:
    campaign = (
        "campaign: small\nbudget: {points: 1000}\nrules:\n  - name: r\n    when: {type: purchase}\n"
        "    then: [{award_points: {points: 70, tier_multiplier: false}}]\n"
        "tests:\n  - {name: t, event: {type: purchase, amount: 5, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {points: 70}}\n"
    )
    rules = write_rules(tmp_path / "rules", {"small.yaml": campaign})
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        barrier = threading.Barrier(20, timeout=60)
        app = app_for(svc)  # built once, before the threads: only the requests race
        clients = [app.test_client() for _ in range(20)]

        def buy(n: int) -> int:
            barrier.wait()
            return points_of(post(clients[n], purchase(f"m-{n}", "1")).get_json())

        with ThreadPoolExecutor(20) as pool:
            granted = list(pool.map(buy, range(20)))
        assert sum(granted) == 1000  # 14 full awards of 70 and one cut to 20
        assert sorted(granted)[-15:] == [20] + [70] * 14
        with svc.db.connect() as connection:
            assert connection.execute(select(campaign_budgets.c.points_used)).scalar_one() == 1000


def test_an_offer_budget_runs_out(tmp_path: Path, settings: Settings) -> None:
    campaign = (
        "campaign: few\nbudget: {offers: 2}\nrules:\n  - name: r\n    when: {type: purchase}\n"
        "    then: [{issue_offer: vip-10}]\n"
        "tests:\n  - {name: t, event: {type: purchase, amount: 5, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {offers: [vip-10]}}\n"
    )
    rules = write_rules(tmp_path / "rules", {"few.yaml": campaign})
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        client = app_for(svc).test_client()
        issued = [
            len(effects_of(post(client, purchase(f"o-{n}", "5")).get_json(), "issue_offer"))
            for n in range(4)
        ]
        assert issued == [1, 1, 0, 0]
        with svc.db.connect() as connection:
            assert (
                connection.execute(select(func.count()).select_from(member_offers)).scalar_one()
                == 2
            )


def test_a_budget_as_a_share_of_revenue(tmp_path: Path, settings: Settings) -> None:
    campaign = (
        "campaign: fair\nbudget: {share_of_revenue: 0.05}\nrules:\n  - name: r\n    when: {type: purchase}\n"
        "    then: [{award_points: {points: 10, tier_multiplier: false}}]\n"
        "tests:\n  - {name: t, event: {type: purchase, amount: 500, occurred_at: 2026-12-02T10:00:00+08:00}, expect: {points: 10}}\n"
    )
    rules = write_rules(tmp_path / "rules", {"fair.yaml": campaign})
    with services_for(Settings(database_url=settings.database_url, rules_dir=str(rules))) as svc:
        client = app_for(svc).test_client()
        # 5% of 100 CNY is 5 points: the award is cut to what the revenue pays for.
        assert points_of(post(client, purchase("s-1", "100")).get_json()) == 5
        assert points_of(post(client, purchase("s-2", "300")).get_json()) == 10


def test_a_referral_between_two_ids_of_one_person_is_refused(
    client: FlaskClient, services: Services
) -> None:
    amy = {"email": "Amy.Li@Example.com", "phone": "+86 138-0013-8000"}
    post(client, event("enrolment", "amy", profile=amy))
    same_phone = {"phone": "13800138000"}
    same_email = {"email": "AMY.LI@example.COM"}
    for referee, profile in (("amy-2", same_phone), ("amy-3", same_email)):
        body = event("referral", referee, referrer_id="amy", profile=profile)
        dry = client.post("/v1/events?dry_run=true", json=body, headers=AUTH).get_json()
        assert "trace" in dry, dry
        refused = [t for t in dry["trace"] if t["outcome"] == "refused"]
        assert refused, dry
        assert "share an e-mail address or phone" in refused[0]["reason"]
        assert points_of(post(client, body).get_json()) == 0
    other = {"email": "bo@example.com", "phone": "+86 139 0000 0000"}
    rewarded = post(client, event("referral", "bo", referrer_id="amy", profile=other))
    assert points_of(rewarded.get_json()) == 300
