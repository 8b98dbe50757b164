"""Logic and storage take the time from the clock they are given (service/clock.py builds
it in the composition roots); none reads the system's time on its own."""

from __future__ import annotations

import re
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
WALL_CLOCK = re.compile(r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|time\.time\(")
ALLOWED = {
    "clock.py",  # the system clock itself
    "scheduler.py",  # APScheduler's first run of an interval job, on its own timetable
}


def test_only_the_clock_reads_the_system_time() -> None:
    readers = sorted(
        f"{path.relative_to(SERVICE)}:{number}"
        for path in SERVICE.rglob("*.py")
        if str(path.relative_to(SERVICE)) not in ALLOWED
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if WALL_CLOCK.search(line)
    )
    assert readers == []
