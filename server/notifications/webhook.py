"""Webhook deliveries: a JSON body POSTed to an organisation's HTTPS endpoint, signed with the
network signing key.

Headers (docs: README, "Notifications"; verified by `client_sdk.webhooks.verify_webhook`)::

    Refcheck-Webhook-Id:        the delivery's idempotency id (the same on every retry)
    Refcheck-Webhook-Timestamp: Unix seconds of this attempt
    Refcheck-Webhook-Signature: v1,<base64 Ed25519 signature>

The signature is over `b"refcheck/v1/webhook\\x00" + id + b"." + timestamp + b"." + body`. The
prefix separates it from everything else the network signing key signs (signed objects are
`refcheck/v2/<type>\\x00...`, audit checkpoints `refcheck/v1/audit-checkpoint\\x00...`): a
webhook signature can never be presented as a filter header or a key announcement, nor the
other way round. The timestamp lets a receiver refuse a stale delivery, the id a replayed one.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.notifications.errors import SendFailed
from server.registry.addresses import AddressRefused, check_webhook_url

WEBHOOK_CONTEXT = b"refcheck/v1/webhook\x00"
ID_HEADER = "Refcheck-Webhook-Id"
TIMESTAMP_HEADER = "Refcheck-Webhook-Timestamp"
SIGNATURE_HEADER = "Refcheck-Webhook-Signature"
SIGNATURE_VERSION = "v1"
USER_AGENT = "refcheck-server-webhooks/1"


def signed_message(delivery_id: str, timestamp: int, body: bytes) -> bytes:
    return WEBHOOK_CONTEXT + f"{delivery_id}.{timestamp}.".encode("ascii") + body


def signature_headers(
    key: Ed25519PrivateKey, delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    signature = key.sign(signed_message(delivery_id, timestamp, body))
    return {
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SIGNATURE_VERSION},{base64.b64encode(signature).decode('ascii')}",
    }


def _check_resolved(url: str, *, environment: str) -> None:
    """Every address the URL's host resolves to must be public (outside production, a
    loopback URL passes): a name pointing at the server's own LAN is refused like an IP
    literal would be. The connection resolves again, so a name re-pointed in between (DNS
    rebinding) is not caught here; an egress firewall is the complete answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if environment != "production" and host in ("127.0.0.1", "::1", "localhost"):
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise SendFailed(f"dns {type(exc).__name__}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise SendFailed("webhook host resolves to a non-public address", permanent=True)


def post(
    url: str,
    delivery_id: str,
    body: str,
    *,
    key: Ed25519PrivateKey,
    timestamp: int,
    environment: str,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """POST one delivery; any answer but 2xx is a failure (retried). Redirects are not
    followed: a 3xx could send the signed body, or the server, somewhere not on record."""
    try:
        check_webhook_url(url, environment=environment)
    except AddressRefused as exc:
        raise SendFailed(f"url refused: {exc}", permanent=True) from None
    _check_resolved(url, environment=environment)
    raw = body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signature_headers(key, delivery_id, timestamp, raw),
    }
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
        ) as http:
            response = http.post(url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        raise SendFailed(type(exc).__name__) from None
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"http {response.status_code}")
