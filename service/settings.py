"""Settings, read from the environment once, typed and frozen.

Every default works on a bare machine: SQLite under var/, the rules in rules/, and a
documented development key that production refuses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEV_API_KEY = "dev-key-not-for-production"
SCOPES = ("events:write", "customers:read", "customers:write", "admin")
ENGINES = ("durable", "reference")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: str = field(repr=False)
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"ApiKey(secret='****', scopes={sorted(self.scopes)})"

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///var/loyalty.db"
    rules_dir: str = "rules"
    api_keys: tuple[ApiKey, ...] = (ApiKey(DEV_API_KEY, frozenset({"*"})),)
    env: str = "development"
    engine: str = "durable"
    max_body_bytes: int = 1_048_576
    batch_limit: int = 1000

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        settings = cls(
            database_url=env.get("LOYALTY_DATABASE_URL", defaults.database_url),
            rules_dir=env.get("LOYALTY_RULES_DIR", defaults.rules_dir),
            api_keys=parse_api_keys(env["LOYALTY_API_KEYS"])
            if env.get("LOYALTY_API_KEYS")
            else defaults.api_keys,
            env=env.get("LOYALTY_ENV", defaults.env),
            engine=env.get("LOYALTY_ENGINE", defaults.engine),
            max_body_bytes=int(env.get("LOYALTY_MAX_BODY_BYTES", defaults.max_body_bytes)),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise SettingsError(
                f"LOYALTY_ENGINE must be one of {', '.join(ENGINES)}, not {self.engine!r}"
            )
        if self.is_production and any(key.secret == DEV_API_KEY for key in self.api_keys):
            raise SettingsError(
                "LOYALTY_ENV=production refuses the development API key; set LOYALTY_API_KEYS"
            )

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len(prefix) :])
        return None


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """``KEY:SCOPE,SCOPE KEY2:*`` -> keys. Unknown scopes are an error, not a silent no."""
    keys = []
    for entry in text.split():
        secret, sep, scopes = entry.partition(":")
        if not sep or not secret or not scopes:
            raise SettingsError("LOYALTY_API_KEYS entries look like KEY:SCOPE,SCOPE or KEY:*")
        parsed = frozenset(s for s in scopes.split(",") if s)
        unknown = parsed - set(SCOPES) - {"*"}
        if unknown:
            raise SettingsError(
                f"unknown scope(s) {sorted(unknown)}; known: {', '.join(SCOPES)}, *"
            )
        keys.append(ApiKey(secret, parsed))
    return tuple(keys)
