"""The log channel: a message is delivered by writing it to the log (development, audits)."""

from __future__ import annotations

import json
import logging

from service.application.delivery import Delivery

log = logging.getLogger("loyalty.messages")


class LogChannel:
    name = "log"

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger

    def send(self, delivery: Delivery) -> None:
        self._log.info("message for %s: %s", delivery.customer_id, json.dumps(delivery.as_json()))
