"""`verify_webhook`: a delivery signed by the network is accepted once; a forged, altered, stale,
replayed or malformed one is refused. Deliveries are signed here exactly as the server signs them
(`server.notifications.webhook.signature_headers`), so the two cannot drift apart."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from client_sdk import (
    RefcheckError,
    WebhookRejected,
    WebhookReplayed,
    WebhookReplayGuard,
    WebhookSignatureInvalid,
    WebhookStale,
    verify_webhook,
)
from server.notifications.webhook import signature_headers

NOW = 1_800_000_000


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def network_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def delivery(
    key: Ed25519PrivateKey, *, timestamp: int = NOW, delivery_id: str | None = None, **fields
) -> tuple[dict[str, str], bytes]:
    delivery_id = delivery_id or str(uuid.uuid4())
    document = {
        "id": delivery_id,
        "type": "disclosure.requested",
        "network_id": "refcheck",
        "created_at": "2027-01-15T08:00:00Z",
        "organisation": "org-a",
        "data": {"request_id": str(uuid.uuid4()), "requester": "org-b", "holder": "org-a"},
        "summary": {"id": "Permintaan pengungkapan baru", "en": "New disclosure request"},
    }
    document.update(fields)
    body = json.dumps(document).encode()
    return signature_headers(key, delivery_id, timestamp, body), body


def verify(headers, body, key: Ed25519PrivateKey, **kwargs):
    kwargs.setdefault("replay_guard", WebhookReplayGuard(clock=lambda: NOW))
    kwargs.setdefault("now", NOW)
    return verify_webhook(headers, body, signing_public_key=raw_public(key), **kwargs)


def test_a_delivery_signed_by_the_network_is_accepted_with_its_contents(network_key):
    headers, body = delivery(network_key)
    event = verify(headers, body, network_key)
    assert event.id == headers["Refcheck-Webhook-Id"]
    assert event.type == "disclosure.requested"
    assert event.organisation == "org-a"
    assert event.data["holder"] == "org-a"
    assert event.summary["id"].startswith("Permintaan")
    assert event.timestamp == NOW


def test_header_names_are_matched_whatever_their_case_and_the_key_may_be_hex(network_key):
    headers, body = delivery(network_key)
    lowered = {k.lower(): v for k, v in headers.items()}
    event = verify_webhook(
        lowered,
        body,
        signing_public_key=raw_public(network_key).hex(),
        replay_guard=WebhookReplayGuard(clock=lambda: NOW),
        now=NOW,
    )
    assert event.id == headers["Refcheck-Webhook-Id"]


def test_a_delivery_signed_by_another_key_is_refused_as_forged(network_key):
    headers, body = delivery(Ed25519PrivateKey.generate())
    with pytest.raises(WebhookSignatureInvalid):
        verify(headers, body, network_key)


@pytest.mark.parametrize("part", ["body", "id", "timestamp"])
def test_a_delivery_altered_after_signing_is_refused(network_key, part):
    headers, body = delivery(network_key)
    if part == "body":
        body = body.replace(b"org-b", b"org-c")
    elif part == "id":
        headers["Refcheck-Webhook-Id"] = str(uuid.uuid4())
    else:
        headers["Refcheck-Webhook-Timestamp"] = str(NOW + 1)
    with pytest.raises(WebhookSignatureInvalid):
        verify(headers, body, network_key)


def test_a_signature_over_the_same_bytes_without_the_webhook_prefix_is_refused(network_key):
    # What the network key signs for other purposes never starts with the webhook prefix, so
    # a signature made for anything else (here: the bare Standard-Webhooks-style message)
    # cannot pass as a webhook's.
    headers, body = delivery(network_key)
    bare = f"{headers['Refcheck-Webhook-Id']}.{NOW}.".encode() + body
    headers["Refcheck-Webhook-Signature"] = (
        "v1," + base64.b64encode(network_key.sign(bare)).decode()
    )
    with pytest.raises(WebhookSignatureInvalid):
        verify(headers, body, network_key)


def test_one_valid_signature_among_several_is_enough(network_key):
    headers, body = delivery(network_key)
    other, _ = delivery(Ed25519PrivateKey.generate(), delivery_id=headers["Refcheck-Webhook-Id"])
    headers["Refcheck-Webhook-Signature"] = (
        f"v1,{'A' * 86}== {other['Refcheck-Webhook-Signature']} "
        f"{headers['Refcheck-Webhook-Signature']}"
    )
    assert verify(headers, body, network_key).id == headers["Refcheck-Webhook-Id"]


def test_a_replayed_delivery_is_refused_and_a_retry_with_a_new_timestamp_is_not(network_key):
    guard = WebhookReplayGuard(clock=lambda: NOW)
    headers, body = delivery(network_key)
    verify(headers, body, network_key, replay_guard=guard)
    with pytest.raises(WebhookReplayed):
        verify(headers, body, network_key, replay_guard=guard)
    # The server's own retry: same id, new timestamp and signature. The receiver dedupes it
    # by id; it is not an attack.
    retry_headers = signature_headers(network_key, headers["Refcheck-Webhook-Id"], NOW + 60, body)
    assert (
        verify(retry_headers, body, network_key, replay_guard=guard, now=NOW + 60).id
        == (headers["Refcheck-Webhook-Id"])
    )


def test_the_default_guard_refuses_a_replay_within_one_process(network_key):
    headers, body = delivery(network_key, timestamp=NOW)
    public = raw_public(network_key)
    verify_webhook(headers, body, signing_public_key=public, now=NOW)
    with pytest.raises(WebhookReplayed):
        verify_webhook(headers, body, signing_public_key=public, now=NOW)


def test_a_forged_delivery_does_not_poison_the_replay_guard(network_key):
    guard = WebhookReplayGuard(clock=lambda: NOW)
    headers, body = delivery(network_key)
    forged = dict(headers)
    forged["Refcheck-Webhook-Signature"] = "v1," + base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(WebhookSignatureInvalid):
        verify(forged, body, network_key, replay_guard=guard)
    assert verify(headers, body, network_key, replay_guard=guard)


@pytest.mark.parametrize("skew", [-301, 301, -86_400])
def test_a_delivery_signed_too_long_ago_or_in_the_future_is_refused_as_stale(network_key, skew):
    headers, body = delivery(network_key, timestamp=NOW + skew)
    with pytest.raises(WebhookStale):
        verify(headers, body, network_key)


def test_the_tolerance_can_be_narrowed(network_key):
    headers, body = delivery(network_key, timestamp=NOW - 30)
    assert verify(headers, body, network_key, tolerance_seconds=60)
    headers, body = delivery(network_key, timestamp=NOW - 30)
    with pytest.raises(WebhookStale):
        verify(headers, body, network_key, tolerance_seconds=10)


def test_the_guard_forgets_deliveries_once_they_would_be_stale_anyway():
    clock = [float(NOW)]
    guard = WebhookReplayGuard(clock=lambda: clock[0])
    assert guard.accept("a", NOW, keep_seconds=601)
    assert not guard.accept("a", NOW, keep_seconds=601)
    clock[0] += 602
    assert guard.accept("a", NOW, keep_seconds=601)


@pytest.mark.parametrize(
    "change",
    [
        {"Refcheck-Webhook-Id": "not-a-uuid"},
        {"Refcheck-Webhook-Id": "x.1.y"},
        {"Refcheck-Webhook-Timestamp": "-5"},
        {"Refcheck-Webhook-Timestamp": "1e9"},
        {"Refcheck-Webhook-Signature": "v2,abc"},
        {"Refcheck-Webhook-Signature": "v1,***"},
    ],
)
def test_malformed_headers_are_refused(network_key, change):
    headers, body = delivery(network_key)
    headers.update(change)
    with pytest.raises(WebhookRejected):
        verify(headers, body, network_key)


@pytest.mark.parametrize(
    "header", ["Refcheck-Webhook-Id", "Refcheck-Webhook-Timestamp", "Refcheck-Webhook-Signature"]
)
def test_a_missing_header_is_refused(network_key, header):
    headers, body = delivery(network_key)
    del headers[header]
    with pytest.raises(WebhookRejected):
        verify(headers, body, network_key)


def test_a_header_given_twice_is_refused(network_key):
    headers, body = delivery(network_key)
    pairs = [*headers.items(), ("refcheck-webhook-id", str(uuid.uuid4()))]

    class Multi:
        def items(self):
            return pairs

    with pytest.raises(WebhookRejected):
        verify(Multi(), body, network_key)


def test_a_signed_body_naming_another_id_is_refused(network_key):
    delivery_id = str(uuid.uuid4())
    body = json.dumps({"id": str(uuid.uuid4()), "type": "disclosure.requested"}).encode()
    headers = signature_headers(network_key, delivery_id, NOW, body)
    with pytest.raises(WebhookRejected, match="id"):
        verify(headers, body, network_key)


def test_a_delivery_of_another_network_is_refused_when_the_network_is_named(network_key):
    headers, body = delivery(network_key, network_id="other-network")
    with pytest.raises(WebhookRejected, match="network"):
        verify(headers, body, network_key, network_id="refcheck")


def test_refusals_are_refcheck_errors_and_a_bad_key_is_a_value_error(network_key):
    assert issubclass(WebhookRejected, RefcheckError)
    headers, body = delivery(network_key)
    with pytest.raises(ValueError):
        verify_webhook(headers, body, signing_public_key=b"short", now=NOW)
