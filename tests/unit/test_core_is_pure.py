"""The core knows nothing of Flask, SQLAlchemy or durable-rules."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_core_pulls_in_no_framework() -> None:
    code = (
        "import sys, service.core.evaluation, service.core.ledger, service.core.tiers, "
        "service.core.facts, service.core.conditions\n"
        "bad = [m for m in ('flask', 'sqlalchemy', 'durable', 'durable_rules_engine', 'marshmallow') "
        "if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_only_one_module_imports_durable_rules() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "service"
    importers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "import durable" in path.read_text() or "from durable" in path.read_text()
    )
    assert importers == ["rules/durable_engine.py"]
