"""The webhook channel: an HTTP POST of the message as JSON, signed with HMAC-SHA256.

Receivers check ``X-Loyalty-Signature: sha256=<hex>``, the HMAC of
``<X-Loyalty-Timestamp>.<body>`` under the shared secret, refuse old timestamps, and dedupe
on ``X-Loyalty-Message-Id`` (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from service.application.delivery import Delivery, DeliveryFailed

RETRYABLE_STATUS = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Loyalty-Signature"
TIMESTAMP_HEADER = "X-Loyalty-Timestamp"
MESSAGE_ID_HEADER = "X-Loyalty-Message-Id"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL is http(s), not {url!r}")
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._clock = clock

    def send(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.as_json(), sort_keys=True, separators=(",", ":")).encode()
        stamp = str(int(self._clock()))
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "loyalty-outbox/1",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature(self._secret, stamp, body),
                MESSAGE_ID_HEADER: str(delivery.message_id),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                response.read(1024)
        except urllib.error.HTTPError as error:
            permanent = 400 <= error.code < 500 and error.code not in RETRYABLE_STATUS
            raise DeliveryFailed(
                f"HTTP {error.code} from the webhook", permanent=permanent
            ) from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryFailed(f"webhook unreachable: {reason}") from error
