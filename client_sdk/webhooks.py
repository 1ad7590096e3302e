"""Receiving the network's webhooks: check that a delivery is the network's, fresh and new.

The server POSTs each notification as JSON to the HTTPS URLs an organisation registered
(`refcheck admin org update ORG --webhook URL`), signed with the network signing key::

    Refcheck-Webhook-Id:        the delivery's idempotency id (the same on every retry)
    Refcheck-Webhook-Timestamp: Unix seconds of this attempt
    Refcheck-Webhook-Signature: v1,<base64 Ed25519 signature>

    signed bytes = b"refcheck/v1/webhook\\x00" + id + b"." + timestamp + b"." + body

Usage (any web framework; pass the raw body, before any JSON parsing)::

    from client_sdk import Client, WebhookReplayGuard, verify_webhook

    guard = WebhookReplayGuard()              # one per receiving process
    signing_key = Client.from_credentials_file("org-a-hr.json").network.signing_key

    def receive(headers, raw_body: bytes):
        event = verify_webhook(headers, raw_body, signing_public_key=signing_key,
                               replay_guard=guard)
        if already_handled(event.id):         # a retry of what you already processed
            return 200
        handle(event.type, event.data)        # e.g. "disclosure.requested", {"request_id": ...}

`verify_webhook` raises (all `WebhookRejected`, a `RefcheckError`)::

    WebhookRejected           malformed: a header missing, a bad id or timestamp, not JSON,
    │                         or a body whose id is not the header's
    ├── WebhookSignatureInvalid  not signed by the network signing key (forged or altered)
    ├── WebhookStale          its timestamp is further than `tolerance_seconds` from now
    └── WebhookReplayed       this exact delivery (id and timestamp) was accepted before

Answer any refusal with a 4xx: the server retries a failed delivery (with a new timestamp and
signature, the same id) and gives up after the network policy's maximum attempts. A replay of
a captured delivery within the tolerance is refused by the guard; after it, as stale. A retry
the server makes is new to the guard (another timestamp): de-duplicate by `event.id`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client_sdk.errors import RefcheckError

__all__ = [
    "WebhookEvent",
    "WebhookReplayGuard",
    "WebhookReplayed",
    "WebhookRejected",
    "WebhookSignatureInvalid",
    "WebhookStale",
    "verify_webhook",
]

#: Domain separation: the network signing key also signs filters, key announcements and audit
#: checkpoints; this prefix makes a webhook signature useless as any of them, and theirs as one.
WEBHOOK_CONTEXT = b"refcheck/v1/webhook\x00"
ID_HEADER = "refcheck-webhook-id"
TIMESTAMP_HEADER = "refcheck-webhook-timestamp"
SIGNATURE_HEADER = "refcheck-webhook-signature"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookRejected(RefcheckError):
    """A webhook delivery that must not be acted on; the message says why."""


class WebhookSignatureInvalid(WebhookRejected):
    """Not signed by the network signing key: forged, altered, or for another network."""


class WebhookStale(WebhookRejected):
    """Signed too long ago (or in the future) to be trusted as a delivery made just now."""


class WebhookReplayed(WebhookRejected):
    """This exact delivery was already accepted once: someone sent it again."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery: `id` (idempotency id), `type` (e.g. `disclosure.requested`), the
    receiving `organisation`'s short name, `data` (request id, organisation names, dates: never
    an identifier or a finding) and `summary` (a line in Bahasa Indonesia and English)."""

    id: str
    type: str
    network_id: str
    organisation: str
    created_at: str
    timestamp: int
    data: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)


class WebhookReplayGuard:
    """Remembers accepted deliveries (id and timestamp) for as long as they would pass the
    freshness check, so the same delivery is accepted once. In memory, thread-safe, for one
    process; several receiving processes need a shared store with the same `accept` method.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def accept(self, delivery_id: str, timestamp: int, *, keep_seconds: float) -> bool:
        """True the first time (and remember it), False for a repeat."""
        now = self._clock()
        with self._lock:
            for key in [k for k, until in self._seen.items() if until < now]:
                del self._seen[key]
            key = (delivery_id, timestamp)
            if key in self._seen:
                return False
            self._seen[key] = now + keep_seconds
            return True


_DEFAULT_GUARD = WebhookReplayGuard()


def _header(headers: Mapping[str, str] | Any, name: str) -> str:
    found: list[str] = []
    for key, value in headers.items():
        if str(key).lower() == name:
            found.append(str(value))
    if len(found) != 1:
        raise WebhookRejected(f"expected exactly one {name} header")
    return found[0].strip()


def _public_key(key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    raw = bytes.fromhex(key) if isinstance(key, str) else bytes(key)
    if len(raw) != 32:
        raise ValueError("signing_public_key must be a 32-byte Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_webhook(
    headers: Mapping[str, str] | Any,
    body: bytes,
    *,
    signing_public_key: bytes | str | Ed25519PublicKey,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    replay_guard: WebhookReplayGuard | None = None,
    network_id: str | None = None,
    now: float | None = None,
) -> WebhookEvent:
    """The delivery in `headers` and `body`, if the network signed it within
    `tolerance_seconds` of `now` and it was not accepted before; `WebhookRejected` otherwise.

    `headers` is any mapping with `items()` (names compared case-insensitively); `body` the raw
    bytes as received. `signing_public_key` is the network signing key (raw 32 bytes or hex;
    `Client.network.signing_key` once pinned). `replay_guard` defaults to one shared by this
    process. `network_id`, if given, must be the delivery's.
    """
    key = _public_key(signing_public_key)
    if not isinstance(body, bytes | bytearray):
        raise TypeError("body must be the raw bytes received")
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected("body too large for a notification")
    delivery_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature_field = _header(headers, SIGNATURE_HEADER)
    # Strict formats: the signed bytes are built from these, so nothing in them may be able to
    # shift where the id ends and the timestamp begins.
    if not _ID.fullmatch(delivery_id):
        raise WebhookRejected("malformed webhook id")
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookRejected("malformed webhook timestamp")
    timestamp = int(stamp)
    signatures: list[bytes] = []
    for part in signature_field.split():
        version, _, encoded = part.partition(",")
        if version != "v1":
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not signatures:
        raise WebhookSignatureInvalid("no v1 signature")
    message = WEBHOOK_CONTEXT + f"{delivery_id}.{timestamp}.".encode("ascii") + bytes(body)
    for signature in signatures:
        try:
            key.verify(signature, message)
            break
        except InvalidSignature:
            continue
    else:
        raise WebhookSignatureInvalid("the signature is not the network's")
    # Freshness after the signature: an attacker cannot move a signed timestamp, and an
    # unsigned one must not get as far as the guard.
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookStale(f"signed {int(current - timestamp)} s from now")
    try:
        document = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected("body is not JSON") from exc
    if not isinstance(document, dict) or document.get("id") != delivery_id:
        raise WebhookRejected("the body's id is not the header's")
    if network_id is not None and document.get("network_id") != network_id:
        raise WebhookRejected("delivery of another network")
    guard = _DEFAULT_GUARD if replay_guard is None else replay_guard
    if not guard.accept(delivery_id, timestamp, keep_seconds=2 * tolerance_seconds + 1):
        raise WebhookReplayed("this delivery was already accepted")
    data = document.get("data")
    summary = document.get("summary")
    return WebhookEvent(
        id=delivery_id,
        type=str(document.get("type", "")),
        network_id=str(document.get("network_id", "")),
        organisation=str(document.get("organisation", "")),
        created_at=str(document.get("created_at", "")),
        timestamp=timestamp,
        data=dict(data) if isinstance(data, dict) else {},
        summary={str(k): str(v) for k, v in summary.items()} if isinstance(summary, dict) else {},
    )
