"""Channel adapters the outbox dispatcher delivers through (the port is
service.application.delivery.Channel): webhook, email (SMTP) and log."""

from __future__ import annotations

from service.application.delivery import Channel
from service.channels.email import SmtpChannel
from service.channels.log import LogChannel
from service.channels.webhook import WebhookChannel
from service.settings import MessagingSettings


def build_channels(settings: MessagingSettings) -> dict[str, Channel]:
    """Every channel the settings configure; log always."""
    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.webhook_url:
        channels["webhook"] = WebhookChannel(
            settings.webhook_url, settings.webhook_secret, settings.webhook_timeout
        )
    if settings.smtp_host:
        channels["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            timeout=settings.smtp_timeout,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return channels
