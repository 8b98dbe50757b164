"""The restricted regex dialect of `matches`, which both engines must read alike.

A pattern is written in Python's regex syntax and always matches the whole value. It is
matched by Google's RE2 (``google-re2``), whose time is linear in the length of the value:
Python's backtracking ``re`` spent 21.8 s on ``.*[a-z]+.*[a-z]+.*[a-z]+.*[a-z]+!`` against
64 characters, so one approved rule could stall every event sender.

Only a small subset is accepted, because durable-rules has a regex dialect of its own (Lua-like
``%`` escapes, compiled to a DFA without backtracking) and, measured against Python's
``re.fullmatch``, it is wrong for parts of the syntax both dialects share: alternation and
groups (``(1+|a+b)`` matched ``"1ab"``; some groups made registration spin forever),
negated classes, and ``.`` anywhere but at the end (``a*.b?[ab]`` missed ``"aaaab"``).
The subset below is what a differential fuzz found no disagreement in; ``.`` is kept
because marketers need it. Since building durable-rules' DFA for some patterns of the
subset stalls or crashes the process, the durable-rules target now keeps every rule with
``matches`` on the reference side (service.rules.durable_engine), so RE2 decides them on
both engines.

The subset:

* literal characters: letters and digits (any script), space, and
  ``_ - @ : / # & ! ~ = , ; ' < > %``
* ``\\`` before one of ``. * + ? ( ) [ ] { } | ^ $ - %`` for that character itself
* ``.``: any one character
* a class ``[...]`` of letters, digits, ``_ . @`` and space, ranges ``a-z``, ``A-Z``,
  ``0-9`` (or parts of them), and ``\\-`` for a hyphen; never negated
* after any of those, one quantifier: ``*``, ``+``, ``?``, ``{n}`` or ``{m,n}`` (n at most 20)

Not accepted, with the reason given to the rule author: groups and ``|``, anchors (every
pattern is anchored already), negated classes, ``\\d``/``\\w``/``\\s`` (in Python these
include non-ASCII digits, letters and spaces; write ``[0-9]``), lazy or stacked
quantifiers, and quotes or backslashes as literals (durable-rules sees strings in their
JSON-escaped form). On the subset, RE2 and Python's ``re.fullmatch`` agree (a property
test holds them to it), so the dialect is still described in Python's terms.

Text that is not valid Unicode (a lone surrogate, which UTF-8 cannot encode and so RE2
cannot read) matches no pattern; durable-rules cannot hold such text either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import re2

MAX_PATTERN_LENGTH = 200
MAX_REPEAT = 20

LITERAL_PUNCTUATION = frozenset(" _-@:/#&!~=,;'<>%")
ESCAPABLE = frozenset(".*+?()[]{}|^$-%")
CLASS_PUNCTUATION = frozenset("_.@ ")
QUANTIFIERS = frozenset("*+?{")
_RANGES = (("0", "9"), ("a", "z"), ("A", "Z"))


@dataclass(frozen=True, slots=True)
class Literal:
    char: str


@dataclass(frozen=True, slots=True)
class AnyChar:
    pass


@dataclass(frozen=True, slots=True)
class CharClass:
    """Members as inclusive (low, high) pairs; a single character is (c, c)."""

    members: tuple[tuple[str, str], ...]


Atom = Literal | AnyChar | CharClass


@dataclass(frozen=True, slots=True)
class Piece:
    atom: Atom
    quantifier: str  # "", "*", "+", "?", "{n}" or "{m,n}" exactly as written


class PatternError(ValueError):
    pass


def validate_pattern(pattern: str) -> str | None:
    """An explanation of why the pattern is outside the dialect, or None if it is inside."""
    try:
        parse_pattern(pattern)
        compile_full_match(pattern)
    except PatternError as error:
        return str(error)
    return None


def compile_full_match(pattern: str) -> Callable[[str], bool]:
    """A test of whether a text matches the whole pattern, in time linear in the text.

    Raises PatternError when RE2 cannot compile the pattern. The pattern is not checked
    against the dialect here; parse_pattern does that.
    """
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal on stderr as well
    try:
        regex = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"RE2 cannot take this pattern: {reason}") from error

    def full_match(text: str) -> bool:
        try:
            return regex.fullmatch(text) is not None
        except UnicodeEncodeError:
            return False  # a lone surrogate: not Unicode text, so it matches nothing

    return full_match


def parse_pattern(pattern: str) -> tuple[Piece, ...]:
    """Split a pattern of the dialect into pieces; raises PatternError outside it."""
    if not pattern:
        raise PatternError("the pattern is empty; to ask for an empty value use `eq: ''`")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    pieces: list[Piece] = []
    position = 0
    while position < len(pattern):
        atom, position = _atom(pattern, position)
        quantifier, position = _quantifier(pattern, position)
        pieces.append(Piece(atom, quantifier))
    return tuple(pieces)


def _atom(pattern: str, position: int) -> tuple[Atom, int]:
    char = pattern[position]
    if char == ".":
        return AnyChar(), position + 1
    if char == "[":
        return _class(pattern, position)
    if char == "\\":
        if position + 1 >= len(pattern):
            raise PatternError("the pattern ends with a lone backslash")
        escaped = pattern[position + 1]
        if escaped in ESCAPABLE:
            return Literal(escaped), position + 2
        if escaped in "dws":
            raise PatternError(f"`\\{escaped}` is not supported; write the class, e.g. [0-9]")
        raise PatternError(f"`\\{escaped}` is not supported in patterns")
    if char in QUANTIFIERS:
        raise PatternError(f"`{char}` at position {position + 1} has nothing to repeat")
    if char in "(|)":
        raise PatternError("groups and `|` are not supported; write one rule per alternative")
    if char in "^$":
        raise PatternError(f"`{char}` is not supported; a pattern always matches the whole value")
    if char == "]":
        raise PatternError("`]` without a matching `[`; write `\\]` for the character")
    if char.isalnum() or char in LITERAL_PUNCTUATION:
        return Literal(char), position + 1
    raise PatternError(f"the character {char!r} is not supported in patterns")


def _class(pattern: str, start: int) -> tuple[CharClass, int]:
    position = start + 1
    if position < len(pattern) and pattern[position] == "^":
        raise PatternError("negated classes `[^...]` are not supported")
    members: list[tuple[str, str]] = []
    while True:
        if position >= len(pattern):
            raise PatternError("a `[` is never closed")
        char = pattern[position]
        if char == "]":
            break
        if char == "\\":
            if pattern[position + 1 : position + 2] != "-":
                raise PatternError("inside `[...]` only `\\-` may be escaped")
            members.append(("-", "-"))
            position += 2
            continue
        if char == "-":
            raise PatternError("inside `[...]` write `\\-` for a hyphen")
        if not (char.isalnum() or char in CLASS_PUNCTUATION):
            raise PatternError(f"the character {char!r} is not supported inside `[...]`")
        if (
            pattern[position + 1 : position + 2] == "-"
            and pattern[position + 2 : position + 3] != "]"
        ):
            high = pattern[position + 2 : position + 3]
            if not any(lo <= char <= high <= hi for lo, hi in _RANGES):
                raise PatternError(
                    f"the range {char}-{high} is not one of a-z, A-Z, 0-9 or a part of one"
                )
            members.append((char, high))
            position += 3
            continue
        members.append((char, char))
        position += 1
    if not members:
        raise PatternError("an empty class `[]` matches nothing")
    return CharClass(tuple(members)), position + 1


def _quantifier(pattern: str, position: int) -> tuple[str, int]:
    if position >= len(pattern) or pattern[position] not in QUANTIFIERS:
        return "", position
    char = pattern[position]
    if char == "{":
        end = pattern.find("}", position)
        if end < 0:
            raise PatternError("a `{` is never closed")
        text = pattern[position : end + 1]
        low_text, _, high_text = text[1:-1].partition(",")
        bounds = (low_text, high_text if "," in text else low_text)
        if not all(b.isascii() and b.isdigit() for b in bounds):
            raise PatternError(f"`{text}` is not a repeat count; write {{n}} or {{m,n}}")
        low, high = int(bounds[0]), int(bounds[1])
        if high < 1 or low > high or high > MAX_REPEAT:
            raise PatternError(f"`{text}` needs 0 <= m <= n, 1 <= n <= {MAX_REPEAT}")
        position = end + 1
        quantifier = text
    else:
        position += 1
        quantifier = char
    if position < len(pattern) and pattern[position] in QUANTIFIERS:
        raise PatternError("stacked or lazy quantifiers (`a*?`, `a+*`) are not supported")
    return quantifier, position
