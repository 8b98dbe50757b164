"""Settings, read from the environment once, typed and frozen.

Every default works on a bare machine: SQLite under var/, the rules in rules/, and a
documented development key that production refuses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEV_API_KEY = "dev-key-not-for-production"
SCOPES = ("events:write", "customers:read", "customers:write", "reports:read", "admin")
# A scope that broader ones include: an admin key may read the reports.
INCLUDED_IN = {"reports:read": frozenset({"admin"})}
ENGINES = ("durable", "reference")
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
RATE_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ApiKey:
    secret: str = field(repr=False)
    scopes: frozenset[str]
    # Who acted, in the ledger and the erasure records: never the secret itself.
    name: str = "development"

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, secret='****', scopes={sorted(self.scopes)})"

    def allows(self, scope: str) -> bool:
        if "*" in self.scopes or scope in self.scopes:
            return True
        return not self.scopes.isdisjoint(INCLUDED_IN.get(scope, ()))


class Secret(str):
    """A secret setting: itself everywhere, ``****`` in a repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'****'" if self else "''"


CHANNELS = ("log", "webhook", "email")
NO_SECRET = Secret("")


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    """Where member messages go: LOYALTY_WEBHOOK_*, LOYALTY_SMTP_*, LOYALTY_OUTBOX_*."""

    channel: str = "log"  # for system messages (tier changes, expiry warnings, offers)
    webhook_url: str | None = None
    webhook_secret: Secret = NO_SECRET
    webhook_timeout: float = 10.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "loyalty@localhost"
    smtp_user: str | None = None
    smtp_password: Secret = NO_SECRET
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    max_attempts: int = 5
    backoff_seconds: float = 60.0  # doubles after each failed attempt

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MessagingSettings:
        d = cls()
        return cls(
            channel=env.get("LOYALTY_MESSAGE_CHANNEL", d.channel),
            webhook_url=env.get("LOYALTY_WEBHOOK_URL") or None,
            webhook_secret=Secret(env.get("LOYALTY_WEBHOOK_SECRET", "")),
            webhook_timeout=float(env.get("LOYALTY_WEBHOOK_TIMEOUT", d.webhook_timeout)),
            smtp_host=env.get("LOYALTY_SMTP_HOST") or None,
            smtp_port=int(env.get("LOYALTY_SMTP_PORT", d.smtp_port)),
            smtp_from=env.get("LOYALTY_SMTP_FROM", d.smtp_from),
            smtp_user=env.get("LOYALTY_SMTP_USER") or None,
            smtp_password=Secret(env.get("LOYALTY_SMTP_PASSWORD", "")),
            smtp_starttls=env.get("LOYALTY_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
            smtp_timeout=float(env.get("LOYALTY_SMTP_TIMEOUT", d.smtp_timeout)),
            max_attempts=int(env.get("LOYALTY_OUTBOX_MAX_ATTEMPTS", d.max_attempts)),
            backoff_seconds=float(env.get("LOYALTY_OUTBOX_BACKOFF_SECONDS", d.backoff_seconds)),
        )

    def channel_names(self) -> frozenset[str]:
        """The channels messages can be delivered by here: log always, the others when set."""
        names = {"log"}
        if self.webhook_url:
            names.add("webhook")
        if self.smtp_host:
            names.add("email")
        return frozenset(names)

    def check(self, production: bool) -> None:
        if self.channel not in CHANNELS:
            raise SettingsError(f"LOYALTY_MESSAGE_CHANNEL must be one of {', '.join(CHANNELS)}")
        if self.channel == "webhook" and not self.webhook_url:
            raise SettingsError("LOYALTY_MESSAGE_CHANNEL=webhook needs LOYALTY_WEBHOOK_URL")
        if self.channel == "email" and not self.smtp_host:
            raise SettingsError("LOYALTY_MESSAGE_CHANNEL=email needs LOYALTY_SMTP_HOST")
        if self.webhook_url and production and not self.webhook_secret:
            raise SettingsError("LOYALTY_ENV=production signs webhooks: set LOYALTY_WEBHOOK_SECRET")
        if self.max_attempts < 1:
            raise SettingsError("LOYALTY_OUTBOX_MAX_ATTEMPTS must be at least 1")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///var/loyalty.db"
    rules_dir: str = "rules"
    api_keys: tuple[ApiKey, ...] = (ApiKey(DEV_API_KEY, frozenset({"*"})),)
    env: str = "development"
    engine: str = "durable"
    max_body_bytes: int = 1_048_576
    batch_limit: int = 1000
    messaging: MessagingSettings = MessagingSettings()
    # Requests per API key, bursts up to N: "N/s", "N/m", "N/h", or "off".
    rate_limit: str = "1000/s"
    # Requests without a valid key per client address; same format.
    auth_failure_limit: str = "60/m"
    # Where both limits count: "memory://", a token bucket in each gunicorn worker; or a
    # storage URL of the limits library ("redis://HOST:6379/0"), one moving window for
    # every worker and instance.
    rate_limit_storage: str = "memory://"
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    access_log: bool = True
    # Untrusted rule files (a dry run's, a reload's) are checked in a child process with
    # at most this much wall time and address space.
    rules_compile_timeout: float = 5.0
    rules_compile_memory_mib: int = 512
    # Where `loyalty scheduler` serves /metrics and /healthz: "PORT" (every interface),
    # "HOST:PORT", or "0"/"off" for nowhere.
    scheduler_metrics: str = "9102"

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
            messaging=MessagingSettings.from_env(env),
            rate_limit=env.get("LOYALTY_RATE_LIMIT", defaults.rate_limit),
            auth_failure_limit=env.get("LOYALTY_AUTH_FAILURE_LIMIT", defaults.auth_failure_limit),
            rate_limit_storage=env.get(
                "LOYALTY_RATE_LIMIT_STORAGE", defaults.rate_limit_storage
            ).strip(),
            cors_origins=tuple(env.get("LOYALTY_CORS_ORIGINS", "").replace(",", " ").split()),
            access_log=env.get("LOYALTY_ACCESS_LOG", "true").lower() not in FALSE_WORDS,
            rules_compile_timeout=float(
                env.get("LOYALTY_RULES_COMPILE_TIMEOUT", defaults.rules_compile_timeout)
            ),
            rules_compile_memory_mib=int(
                env.get("LOYALTY_RULES_COMPILE_MEMORY", defaults.rules_compile_memory_mib)
            ),
            scheduler_metrics=env.get("LOYALTY_SCHEDULER_METRICS_PORT", defaults.scheduler_metrics),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise SettingsError(
                f"LOYALTY_ENGINE must be one of {', '.join(ENGINES)}, not {self.engine!r}"
            )
        parse_rate_limit(self.rate_limit)
        # The checking process starts at about 50 MiB of address space before any file.
        if not self.rules_compile_timeout > 0 or self.rules_compile_memory_mib < 128:
            raise SettingsError(
                "LOYALTY_RULES_COMPILE_TIMEOUT must be above 0 seconds and "
                "LOYALTY_RULES_COMPILE_MEMORY at least 128 (MiB)"
            )
        parse_rate_limit(self.auth_failure_limit, "LOYALTY_AUTH_FAILURE_LIMIT")
        if "://" not in self.rate_limit_storage:
            raise SettingsError(
                "LOYALTY_RATE_LIMIT_STORAGE is a storage URL such as memory:// or "
                "redis://127.0.0.1:6379/0"
            )
        parse_metrics_address(self.scheduler_metrics)
        self.messaging.check(self.is_production)
        if self.is_production and any(key.secret == DEV_API_KEY for key in self.api_keys):
            raise SettingsError(
                "LOYALTY_ENV=production refuses the development API key; set LOYALTY_API_KEYS"
            )

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len(prefix) :])
        return None


KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """``NAME=KEY:SCOPE,SCOPE NAME2=KEY2:*`` -> keys. A key without ``NAME=`` (the older
    form) is named ``key-N`` by its place in the list. Unknown scopes are an error, not a
    silent no; so is a name given twice."""
    keys: list[ApiKey] = []
    for place, entry in enumerate(text.split(), start=1):
        name, named, rest = entry.partition("=")
        if not named:
            name, rest = f"key-{place}", entry
        elif not KEY_NAME.fullmatch(name):
            raise SettingsError(
                f"LOYALTY_API_KEYS: key name {name!r} must be letters, digits, . _ - "
                "(at most 64, starting with a letter or digit)"
            )
        secret, sep, scopes = rest.partition(":")
        if not sep or not secret or not scopes:
            raise SettingsError(
                "LOYALTY_API_KEYS entries look like NAME=KEY:SCOPE,SCOPE or NAME=KEY:* "
                "(NAME= may be left out)"
            )
        if any(key.name == name for key in keys):
            raise SettingsError(f"LOYALTY_API_KEYS names two keys {name!r}")
        parsed = frozenset(s for s in scopes.split(",") if s)
        unknown = parsed - set(SCOPES) - {"*"}
        if unknown:
            raise SettingsError(
                f"unknown scope(s) {sorted(unknown)}; known: {', '.join(SCOPES)}, *"
            )
        keys.append(ApiKey(secret, parsed, name))
    return tuple(keys)


def parse_metrics_address(text: str) -> tuple[str, int] | None:
    """``"9102"`` -> ("0.0.0.0", 9102); ``"127.0.0.1:9102"`` -> that; ``"0"``/``"off"`` -> None."""
    text = text.strip()
    if text.lower() in FALSE_WORDS:
        return None
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(
            "LOYALTY_SCHEDULER_METRICS_PORT is a port, HOST:PORT, or 0/off to serve no metrics"
        )
    return (host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - scraped from other hosts


def parse_rate_limit(text: str, name: str = "LOYALTY_RATE_LIMIT") -> tuple[int, float] | None:
    """``"1000/s"`` -> (1000, 1.0): that many requests per period; ``"off"`` -> None."""
    if text.strip().lower() in FALSE_WORDS:
        return None
    count, sep, period = text.strip().partition("/")
    if not sep or not count.isdigit() or int(count) < 1 or period not in RATE_PERIODS:
        raise SettingsError(f"{name} looks like 1000/s, 100/m or 5000/h (or off), not {text!r}")
    return int(count), RATE_PERIODS[period]
