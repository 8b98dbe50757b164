"""Collecting every problem in a rule file, each with its file and line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from service.core.errors import RuleFileError, RuleProblem
from service.rules.yaml_source import LocatedDict, LocatedList


class Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[RuleProblem] = []

    def add(self, line: int | None, message: str) -> None:
        self.found.append(RuleProblem(self.file, line, message))

    def raise_if_any(self) -> None:
        if self.found:
            raise RuleFileError(self.found)

    # Shape checks that report and return a safe default, so one pass finds every problem.

    def mapping(self, value: Any, line: int, what: str) -> LocatedDict | None:
        if isinstance(value, LocatedDict):
            return value
        self.add(line, f"{what} must be a mapping, got {kind_of(value)}")
        return None

    def sequence(self, value: Any, line: int, what: str) -> LocatedList | None:
        if isinstance(value, LocatedList):
            return value
        if isinstance(value, list):  # a parser's own default, not read from a file
            located = LocatedList(value)
            located.line, located.item_lines = line, [line] * len(value)
            return located
        self.add(line, f"{what} must be a list, got {kind_of(value)}")
        return None

    def unknown_keys(self, mapping: LocatedDict, allowed: Iterable[str], what: str) -> None:
        allowed = list(allowed)
        for key in mapping:
            if key not in allowed:
                self.add(
                    mapping.line_of(key), f"unknown key {key!r} in {what}{suggest(key, allowed)}"
                )

    def required(self, mapping: LocatedDict, keys: Iterable[str], what: str) -> bool:
        missing = [key for key in keys if key not in mapping]
        for key in missing:
            self.add(mapping.line, f"{what} needs {key!r}")
        return not missing


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
