"""Rules that send messages by a channel this installation has not configured.

The outbox marks such a message dead at once ("channel 'email' is not configured"), so a
campaign that sends by email where no SMTP server is set reaches nobody. `loyalty rules
check`, the web service and the scheduler say so when they load the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from service.core.programme import MessageSpec, RuleSet
from service.rules.lint import WARNING, Finding

LINT_ID = "channel-not-configured"
# What makes each channel exist; `log` always does.
CHANNEL_SETTINGS = {"email": "LOYALTY_SMTP_HOST", "webhook": "LOYALTY_WEBHOOK_URL"}


def unconfigured_channels(ruleset: RuleSet, configured: Collection[str]) -> list[Finding]:
    """One warning per rule and channel it sends by that is not among ``configured``."""
    findings = []
    for rule in ruleset.rules:
        channels = {e.channel for e in rule.effects if isinstance(e, MessageSpec)}
        for channel in sorted(channels - set(configured)):
            setting = CHANNEL_SETTINGS.get(channel, "its settings")
            findings.append(
                Finding(
                    LINT_ID,
                    WARNING,
                    rule.file,
                    rule.line or None,
                    f"{rule.campaign}/{rule.name} sends messages by {channel}, which is not "
                    f"configured here (set {setting}); they would go straight to dead",
                )
            )
    return findings


def log_unconfigured_channels(
    ruleset: RuleSet, configured: Collection[str], log: logging.Logger
) -> None:
    for finding in unconfigured_channels(ruleset, configured):
        log.warning("rules version %s: %s", ruleset.version, finding.format())
