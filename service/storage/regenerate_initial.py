"""Rewrite the initial migration from tables.py.

Only while no release has shipped a database: once one has, schema changes are new
revisions (`make migration MESSAGE=...`) and this module is deleted.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from service.storage.database import make_engine
from service.storage.migrate import MIGRATIONS, make_revision

INITIAL = MIGRATIONS / "versions" / "0001_initial.py"


def main() -> None:
    INITIAL.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        make_revision(make_engine(f"sqlite:///{scratch}/empty.db"), "initial schema")
    (generated,) = [p for p in (MIGRATIONS / "versions").glob("*.py") if p.name != "__init__.py"]
    text = generated.read_text()
    revision = re.search(r"^revision = '(\w+)'", text, re.M).group(1)  # type: ignore[union-attr]
    text = text.replace(f"revision = '{revision}'", "revision = '0001'")
    text = text.replace(f"Revision ID: {revision}", "Revision ID: 0001")
    text = text.replace("UtcDateTime(timezone=True)", "UtcDateTime()")
    text = text.replace("Money(precision=18, scale=4)", "Money()")
    text = "\n".join(line for line in text.splitlines() if "### " not in line) + "\n"
    generated.unlink()
    Path(INITIAL).write_text(text)
    print(f"wrote {INITIAL}")


if __name__ == "__main__":
    main()
