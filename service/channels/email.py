"""The email channel: SMTP through the standard library (smtplib)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from service.application.delivery import Delivery, DeliveryFailed
from service.channels.render import render


class SmtpChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        timeout: float = 10.0,
        user: str | None = None,
        password: str = "",
        starttls: bool = False,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._timeout = timeout
        self._user, self._password, self._starttls = user, password, starttls

    def send(self, delivery: Delivery) -> None:
        if not delivery.email:
            raise DeliveryFailed("the member has no email address", permanent=True)
        subject, text = render(delivery)
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = delivery.email
        mail["Subject"] = subject
        mail["X-Loyalty-Message-Id"] = str(delivery.message_id)
        mail.set_content(text)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                if self._user:
                    smtp.login(self._user, self._password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryFailed(f"recipient refused: {delivery.email}", permanent=True) from error
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP: {type(error).__name__}: {error}") from error
