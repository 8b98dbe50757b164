"""The core's error vocabulary. The HTTP edge maps each to one problem+json shape."""

from __future__ import annotations


class LoyaltyError(Exception):
    """Base of every error the service means to tell a caller about."""


class RuleFileError(LoyaltyError):
    """A rule file is invalid. Carries every problem found, each with file and line."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class RuleProblem:
    __slots__ = ("file", "line", "message")

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"RuleProblem({self!s})"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message}


class EventConflict(LoyaltyError):
    """The same event_id arrived before with a different body."""


class StorageUnavailable(LoyaltyError):
    """The database could not be reached, even on a fresh connection: nothing was
    applied, and the same request may be sent again."""


class NotFound(LoyaltyError):
    """The thing asked for does not exist."""


class InsufficientPoints(LoyaltyError):
    """A redemption asked for more points than the member has available."""


class RewardUnavailable(LoyaltyError):
    """A reward cannot be had now: out of stock, or the member has had their share."""


class OfferUnavailable(LoyaltyError):
    """An offer cannot be used: used already, expired, or another member's."""
