"""The pure parts of the bench's cost per event: /proc lines, Prometheus text, arithmetic."""

from __future__ import annotations

import pytest

from bench.costs import (
    GROUP_COUNT,
    GROUP_SUM,
    ROUND_TRIPS,
    STATEMENTS,
    Snapshot,
    is_backend_of,
    parse_machine_cpu,
    parse_metrics,
    parse_proc_stat,
    per_event,
)

# /proc/PID/stat of a gunicorn worker: utime 1200, stime 300, cutime 40, cstime 10.
WORKER_STAT = (
    "4242 (gunicorn: worke) S 4200 4200 4200 0 -1 4194560 5000 0 0 0 1200 300 40 10 20 0 9 0 "
    "3117 222445568 2655 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0"
)


def test_a_stat_line_gives_pid_parent_and_all_four_cpu_times() -> None:
    stat = parse_proc_stat(WORKER_STAT)

    assert (stat.pid, stat.comm, stat.ppid, stat.cpu_ticks) == (
        4242,
        "gunicorn: worke",
        4200,
        1550,
    )


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    line = "77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0 1 1 1"

    stat = parse_proc_stat(line)

    assert (stat.pid, stat.comm, stat.ppid, stat.cpu_ticks) == (77, "a) b (c)", 1, 26)


def test_the_machine_line_counts_idle_and_iowait_as_not_busy() -> None:
    stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"

    busy, total = parse_machine_cpu(stat)

    assert (busy, total) == (160, 1000)


def test_metrics_are_summed_over_labels_and_other_samples_are_ignored() -> None:
    text = "\n".join(
        [
            "# HELP loyalty_db_statements_total Statements sent to the database",
            "# TYPE loyalty_db_statements_total counter",
            "loyalty_db_statements_total 120.0",
            "# HELP loyalty_db_round_trips_total Calls that wait on the database",
            "# TYPE loyalty_db_round_trips_total counter",
            'loyalty_db_round_trips_total{pid="1"} 100.0',
            'loyalty_db_round_trips_total{pid="2"} 60.0',
            "# HELP loyalty_event_group_size Events applied together",
            "# TYPE loyalty_event_group_size histogram",
            'loyalty_event_group_size_bucket{le="1.0"} 3.0',
            'loyalty_event_group_size_bucket{le="+Inf"} 10.0',
            "loyalty_event_group_size_count 10.0",
            "loyalty_event_group_size_sum 25.0",
            "# HELP loyalty_events_total Events received",
            "# TYPE loyalty_events_total counter",
            'loyalty_events_total{type="purchase",outcome="applied"} 25.0',
            "",
        ]
    )

    assert parse_metrics(text) == {
        STATEMENTS: 120.0,
        ROUND_TRIPS: 160.0,
        GROUP_COUNT: 10.0,
        GROUP_SUM: 25.0,
    }


def test_a_backend_is_recognised_by_its_database_word_in_the_process_title() -> None:
    title = "postgres: 15/main: postgres loyalty_bench_ab12 127.0.0.1(50312) idle"

    assert is_backend_of(title, "loyalty_bench_ab12")
    assert not is_backend_of(title, "loyalty_bench_ab")
    assert not is_backend_of("postgres: 15/main: walwriter", "loyalty_bench_ab12")
    assert not is_backend_of("/usr/bin/python loyalty_bench_ab12", "loyalty_bench_ab12")


def _snapshot(
    wall: float,
    server: int,
    database: int | None,
    busy: int,
    total: int,
    client: float,
    metrics: dict[str, float] | None,
) -> Snapshot:
    return Snapshot(wall, server, database, busy, total, client, metrics)


def test_costs_are_the_differences_divided_by_the_events() -> None:
    before = _snapshot(
        10.0,
        1_000,
        500,
        5_000,
        20_000,
        1.0,
        {STATEMENTS: 100, ROUND_TRIPS: 150, GROUP_SUM: 40, GROUP_COUNT: 30},
    )
    # 2 s on 2 CPUs at 100 ticks/s: 400 ticks of machine time, 300 of them busy.
    after = _snapshot(
        12.0,
        1_200,
        540,
        5_300,
        20_400,
        1.2,
        {STATEMENTS: 1_100, ROUND_TRIPS: 1_350, GROUP_SUM: 540, GROUP_COUNT: 130},
    )

    costs = per_event(before, after, events=500, clock_ticks=100)

    assert costs["server_cpu_ms_per_event"] == pytest.approx(4.0)  # 2,000 ms / 500
    assert costs["database_cpu_ms_per_event"] == pytest.approx(0.8)  # 400 ms / 500
    assert costs["wrk_cpu_ms_per_event"] == pytest.approx(0.4)  # 200 ms / 500
    assert costs["statements_per_event"] == pytest.approx(2.0)
    assert costs["round_trips_per_event"] == pytest.approx(2.4)
    assert costs["group_size_mean"] == pytest.approx(5.0)  # 500 events in 100 groups
    assert costs["machine_share"] == pytest.approx(
        {"server": 0.5, "database": 0.1, "wrk": 0.05, "others": 0.1}
    )


def test_without_a_database_server_or_metrics_those_costs_are_none() -> None:
    before = _snapshot(0.0, 0, None, 0, 100, 0.0, None)
    after = _snapshot(1.0, 50, None, 50, 300, 0.0, None)

    costs = per_event(before, after, events=100, clock_ticks=100)

    assert costs["server_cpu_ms_per_event"] == pytest.approx(5.0)
    assert costs["database_cpu_ms_per_event"] is None
    assert costs["statements_per_event"] is None
    assert costs["group_size_mean"] is None
    assert costs["machine_share"]["database"] is None


def test_no_events_gives_no_per_event_figures_rather_than_a_division_by_zero() -> None:
    metrics = {STATEMENTS: 0.0, ROUND_TRIPS: 0.0, GROUP_SUM: 0.0, GROUP_COUNT: 0.0}
    before = _snapshot(0.0, 0, 0, 0, 100, 0.0, metrics)
    after = _snapshot(1.0, 10, 0, 10, 300, 0.0, metrics)

    costs = per_event(before, after, events=0, clock_ticks=100)

    assert costs["server_cpu_ms_per_event"] is None
    assert costs["round_trips_per_event"] is None
    assert costs["group_size_mean"] is None
