"""What lint finds: the lints (id, severity, what each catches) and a finding's shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.rules.yaml_source import LocatedDict, YamlSyntaxError, load_yaml

ERROR, WARNING = "error", "warning"

# id -> (severity, what it catches); README and `loyalty rules check` list these.
LINTS: Mapping[str, tuple[str, str]] = {
    "unknown-reference": (
        ERROR,
        "a segment, tier, offer or rule name that the programme does not define",
    ),
    "never-holds": (ERROR, "a rule whose condition no event can satisfy"),
    "equal-priority-overlap": (
        WARNING,
        "two campaigns of equal priority that both award points on the same event",
    ),
    "campaign-ended": (WARNING, "a campaign whose active.until is already past"),
    "budget-below-award": (ERROR, "a campaign budget smaller than one of its awards"),
    "referral-unguarded": (WARNING, "a referral reward with no new-customer guard"),
    "expiry-before-pending": (ERROR, "points that expire before their pending period ends"),
    "order-dependent": (
        WARNING,
        "equal-priority campaigns whose effects interact, so the outcome hangs on their ids",
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    lint: str
    severity: str
    file: str
    line: int | None
    message: str

    def format(self, root: str | Path | None = None) -> str:
        path = str(Path(root) / self.file) if root is not None else self.file
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity} [{self.lint}]: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "lint": self.lint,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


def finding(lint_id: str, file: str, line: int | None, message: str) -> Finding:
    return Finding(lint_id, LINTS[lint_id][0], file, line, message)


class Lines:
    """Lines of keys in the rule files (the intermediate form keeps only a few)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self._files = files
        self._parsed: dict[str, Any] = {}

    def of(self, file: str, *keys: str) -> int | None:
        if file not in self._parsed:
            try:
                self._parsed[file] = load_yaml(self._files.get(file, ""))
            except YamlSyntaxError:
                self._parsed[file] = None
        node, line = self._parsed[file], None
        for key in keys:
            if not isinstance(node, LocatedDict) or key not in node:
                return line
            line, node = node.line_of(key), node[key]
        return line
