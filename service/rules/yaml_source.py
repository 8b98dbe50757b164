"""YAML that remembers where each value came from, so every error can name a line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class LocatedDict(dict[str, Any]):
    """A mapping with the line of itself and of each of its keys (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that records lines and refuses duplicate keys (a silent overwrite in YAML).

    Built on libyaml's parser where PyYAML has it: about seven times faster, same lines.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:
        result = LocatedDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                # Keys such as `on:` or `2026:` are parsed by YAML as booleans or numbers.
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} must be text; quote it", key_node.start_mark
                )
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LocatedList:
        result = LocatedList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


# Far deeper than any campaign (about fifteen levels), far below Python's recursion limit.
MAX_DEPTH = 64


class YamlSyntaxError(ValueError):
    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        super().__init__(message)


def load_yaml(text: str) -> Any:
    """The document, or YamlSyntaxError with its line: bad YAML, anchors and aliases,
    nesting deeper than MAX_DEPTH, text that is not Unicode."""
    try:
        _check_shape(text)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        return_message = error.problem or error.context or "invalid YAML"
        raise YamlSyntaxError(line, return_message) from error
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        char = error.character
        shown = repr(chr(char) if isinstance(char, int) else char)
        message = f"the character {shown} is not allowed in YAML ({error.reason})"
        raise YamlSyntaxError(line, message) from error
    except yaml.YAMLError as error:
        raise YamlSyntaxError(None, str(error)) from error


def _check_shape(text: str) -> None:
    """Refuse, before anything is built, what would make the work outgrow the file.

    Anchors (``&name``) and aliases (``*name``): an alias shares a value instead of
    copying it, but everything after the loader walks the rules as a tree, so seven
    levels of ten aliases each (3 KB) made a million conditions to validate. Deep nesting:
    building and validating recurse once per level. About a fifth of a file's load time.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        at = text.count("\n", 0, error.start) + 1
        raise YamlSyntaxError(at, "the text is not valid Unicode (a lone surrogate)") from None
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            refused = f"the alias *{event.anchor}"
        elif isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            refused = f"the anchor &{event.anchor}"
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth <= MAX_DEPTH:
                continue
            raise YamlSyntaxError(_line(event), f"nested more than {MAX_DEPTH} levels deep")
        else:
            depth -= isinstance(event, yaml.CollectionEndEvent)
            continue
        raise YamlSyntaxError(
            _line(event),
            f"{refused}: rule files may not use YAML anchors or aliases; write the value out",
        )


def _line(event: yaml.Event) -> int | None:
    return event.start_mark.line + 1 if event.start_mark is not None else None


class KeyLines:
    """The lines of keys in rule files, read again on demand (the loaded rules keep only
    a few), for messages about something a rule set's parts do together."""

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
