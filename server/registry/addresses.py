"""Where the network's notifications to an organisation go: e-mail addresses and webhook URLs.

Each organisation keeps a short list of each, set by the network admin or by its own focal point
(`server.registry.services.set_notification_addresses`). Each address is for one role's
notifications (`focal_point`: requests to answer and their deadlines; `hr_checker`: answers,
withdrawals and expiries of the organisation's own requests) or, with no role, for all of them.
`server.notifications` reads them when an event happens.

The rules here are checked when an address is set and again before every delivery, so a server
moved to production refuses a development URL that is still on record.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal, cast
from urllib.parse import urlsplit

AddressRole = Literal["focal_point", "hr_checker"]
ADDRESS_ROLES: tuple[AddressRole, ...] = ("focal_point", "hr_checker")

MAX_EMAILS = 10
MAX_WEBHOOKS = 5
MAX_URL_LENGTH = 500

# A plain addr-spec: dot-atom local part and an ASCII domain. No display name, no quoted local
# part, and above all no CR, LF, comma or angle bracket: the address goes into a `To:` header,
# and one that could carry a line break would let whoever sets it add headers or recipients.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class AddressRefused(ValueError):
    """An address or URL the network will not send to; the message says why."""


def check_email(address: str) -> str:
    if len(address) > 254 or not _EMAIL.match(address) or len(address.split("@")[0]) > 64:
        raise AddressRefused("not a plain e-mail address (name@example.org)")
    return address


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_webhook_url(url: str, *, environment: str) -> str:
    """`url` if the network may POST to it; `AddressRefused` saying why not.

    HTTPS only: a delivery carries request ids and organisation names, and its signature does not
    hide them. Plain http is allowed to 127.0.0.1 (or ::1, localhost) only outside production, for
    a receiver under test on the same machine. An IP literal must be a public address: the
    server must not become a way for a member to reach services on the network's own LAN
    (server-side request forgery); names are resolved and checked again at delivery
    (`server.notifications.webhook`).
    """
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"a webhook URL is at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise AddressRefused("a webhook URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused("not a valid URL") from exc
    host = (parts.hostname or "").lower()
    if not host:
        raise AddressRefused("a webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        # It would be sent as Basic credentials and shown in every listing of the addresses;
        # the signature is what authenticates a delivery.
        raise AddressRefused("a webhook URL cannot carry a user name or password")
    if parts.fragment:
        raise AddressRefused("a webhook URL cannot have a #fragment")
    local_test = environment != "production" and host in _LOOPBACK_HOSTS
    if parts.scheme == "http":
        if not local_test:
            raise AddressRefused(
                "webhook URLs must be https (http only to 127.0.0.1 in test or development)"
            )
    elif parts.scheme != "https":
        raise AddressRefused("webhook URLs must be https")
    if port == 0:
        raise AddressRefused("port 0 is not a port")
    ip = _literal_ip(host)
    if ip is not None and not ip.is_global and not local_test:
        raise AddressRefused("a webhook URL may not name a private, loopback or local address")
    return url


def normalise_role(role: Any) -> AddressRole | None:
    if role is None:
        return None
    if role not in ADDRESS_ROLES:
        raise AddressRefused(f"role must be one of {', '.join(ADDRESS_ROLES)} or none")
    return cast(AddressRole, role)


def for_role(entries: list[dict[str, Any]], key: str, role: AddressRole | None) -> list[str]:
    """The addresses (`key` = "address" or "url") of `entries` that receive `role`'s
    notifications (every one when `role` is None), in order, without repeats."""
    found: list[str] = []
    for entry in entries or []:
        value = entry.get(key)
        if not isinstance(value, str):
            continue
        if role is not None and entry.get("role") not in (None, role):
            continue
        if value not in found:
            found.append(value)
    return found
