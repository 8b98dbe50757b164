"""Collecting every problem in a rule file, each with its file and line, and the words
problems are told in."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from marshmallow.exceptions import SCHEMA

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


@dataclass(frozen=True, slots=True)
class Located:
    """A message that knows its own line (a condition's, from deep inside `when`)."""

    line: int | None
    message: str


def report(error: ValidationError, document: Any, problems: Problems) -> None:
    """Each of marshmallow's messages for ``document``, at its line."""
    found = sorted(_located(error.messages, document, 1), key=lambda found: found[0] or 0)
    for line, message in found:
        problems.add(line, message)


def _located(messages: Any, node: Any, line: int | None) -> Iterator[tuple[int | None, str]]:
    """A message under a key is at the key's line; one about a whole mapping (marshmallow's
    ``_schema``, or a key it lacks) at the mapping's own line."""
    if isinstance(messages, dict):
        for key, inner in messages.items():
            located = isinstance(node, (LocatedDict, LocatedList)) and key != SCHEMA
            if located and key in (node if isinstance(node, dict) else range(len(node))):
                yield from _located(inner, node[key], node.line_of(key))
            else:
                yield from _located(inner, None, getattr(node, "line", line))
    elif isinstance(messages, list):
        for inner in messages:
            yield from _located(inner, node, line)
    elif isinstance(messages, Located):
        yield messages.line, messages.message
    else:
        yield line, str(messages)
