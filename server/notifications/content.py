"""What a notification says: Jinja2 templates in Bahasa Indonesia and English, one of each per
event (`templates/<event>.<lang>.j2`, blocks `subject` and `body`), and a footer per language
naming who can change the addresses.

One template per language rather than a gettext catalogue: the messages are short texts whose
word order differs between the two languages, translators edit a text file each, and no build
step compiles catalogues. Every message carries both languages, Bahasa Indonesia first; a test
renders every event in both and fails on a missing template or variable (`StrictUndefined`).

What the templates are given is all they can say: the request id, the organisations' names, the
dates and what to do next. There is no identifier, applicant detail or case category to leak.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from protocol.signed import format_time
from server.notifications.events import Event

LANGUAGES = ("id", "en")
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}
MAX_SUBJECT = 300
SEPARATOR = "-" * 72

_HARI = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_BULAN = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def day_id(value: date) -> str:
    """`Kamis, 17 Desember 2026`: Indonesian names, not the server locale's."""
    return f"{_HARI[value.weekday()]}, {value.day} {_BULAN[value.month - 1]} {value.year}"


def day_en(value: date) -> str:
    return f"{_DAYS[value.weekday()]} {value.day} {_MONTHS[value.month - 1]} {value.year}"


def when_id(value: datetime) -> str:
    """`Kamis, 17 Desember 2026 pukul 09.30 UTC` (Indonesian writes the time with a dot)."""
    return f"{day_id(value.date())} pukul {value:%H.%M} UTC"


def when_en(value: datetime) -> str:
    return f"{day_en(value.date())}, {value:%H:%M} UTC"


_ENV = Environment(
    loader=PackageLoader("server.notifications", "templates"),
    # Plain text: nothing is HTML, and escaping would put `&amp;` into an organisation's name.
    autoescape=False,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_ENV.filters.update(day_id=day_id, day_en=day_en, when_id=when_id, when_en=when_en)


def _block(template_name: str, block: str, values: Mapping[str, Any]) -> str:
    template = _ENV.get_template(template_name)
    render = template.blocks[block]
    return "".join(render(template.new_context(dict(values)))).strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Rendered:
    """One recipient organisation's message: the e-mail's subject and text, and the summary
    the webhook's JSON carries, each in both languages."""

    subject: str
    text: str
    summary: dict[str, str]


def render(event: Event, values: Mapping[str, Any]) -> Rendered:
    """The message of `event` for one recipient organisation. `values` are what the templates
    may use (`server.notifications.services` builds them); a missing one raises."""
    subjects: dict[str, str] = {}
    sections: list[str] = []
    for lang in LANGUAGES:
        name = f"{event.value}.{lang}.j2"
        subjects[lang] = _one_line(_block(name, "subject", values))
        body = _block(name, "body", values)
        footer = _block(f"footer.{lang}.j2", "footer", values)
        sections.append(f"[{LANGUAGE_NAMES[lang]}]\n\n{body}\n\n{footer}")
    subject = f"[refcheck] {subjects['id']} / {subjects['en']}"
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    text = f"\n\n{SEPARATOR}\n".join(sections) + "\n"
    return Rendered(subject=subject, text=text, summary=subjects)


def webhook_body(
    *,
    delivery_id: str,
    event: Event,
    network_id: str,
    created_at: datetime,
    organisation: str,
    data: Mapping[str, Any],
    summary: Mapping[str, str],
) -> str:
    """The JSON a webhook receives, as the exact text that is signed and sent on every attempt.

    `id` is the delivery's idempotency id (also in the `Refcheck-Webhook-Id` header, and bound
    to it by the signature); `organisation` is the receiving organisation's short name.
    """
    document = {
        "id": delivery_id,
        "type": event.value,
        "network_id": network_id,
        "created_at": format_time(created_at),
        "organisation": organisation,
        "data": dict(data),
        "summary": dict(summary),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
