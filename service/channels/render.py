"""Plain text for a message: a subject and a body from its template name and data.

Templates proper (wording, languages) belong to the messaging platform a webhook feeds;
email gets a readable default.
"""

from __future__ import annotations

from service.application.delivery import Delivery

SUBJECTS = {
    "points-expiring": "{points} of your points expire on {expires_on}",
    "tier-changed": "Your tier is now {to}",
    "offer-issued": "An offer for you: {title}",
}


def render(delivery: Delivery) -> tuple[str, str]:
    data = {key: value for key, value in delivery.data.items() if value is not None}
    pattern = SUBJECTS.get(delivery.template)
    try:
        subject = pattern.format(**data) if pattern else _title(delivery.template)
    except (KeyError, IndexError, ValueError):
        subject = _title(delivery.template)
    lines = [subject, ""]
    lines += [f"{key.replace('_', ' ')}: {value}" for key, value in sorted(data.items())]
    lines += ["", f"(message {delivery.message_id}, {delivery.template})"]
    return subject, "\n".join(lines) + "\n"


def _title(template: str) -> str:
    return template.replace("-", " ").replace("_", " ").capitalize()
