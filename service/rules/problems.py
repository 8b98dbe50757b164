"""Collecting every problem in a rule file, each with its file and line, and the words
problems are told in."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from service.core.errors import RuleProblem
from service.rules.yaml_source import LocatedDict, LocatedList


class Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[RuleProblem] = []

    def add(self, line: int | None, message: str) -> None:
        self.found.append(RuleProblem(self.file, line, message))

    # Shape checks that report and return nothing, so one pass finds every problem.

    def mapping(self, value: Any, line: int, what: str) -> LocatedDict | None:
        if isinstance(value, LocatedDict):
            return value
        self.add(line, f"{what} must be a mapping, got {kind_of(value)}")
        return None

    def sequence(self, value: Any, line: int, what: str) -> LocatedList | None:
        if isinstance(value, LocatedList):
            return value
        self.add(line, f"{what} must be a list, got {kind_of(value)}")
        return None


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{type(value).__name__} {value!r}"
