"""A network signing key for the SDK's I/O-free tests: signs OPRF key announcements and filter
headers exactly as the server does (`protocol.signed.sign`), so the pin and the filter cache are
tested on real signed objects, including ones a lying server would make (expired, older,
another key, another network, a bad signature)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from client_sdk.pinning import NetworkState, OprfKey
from protocol.filter import delta_body, full_body, rice_parameter, set_sha256
from protocol.signed import SignedObject, format_time, sign

NETWORK_ID = "testnet"
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def flip(data: bytes, index: int = -1) -> bytes:
    out = bytearray(data)
    out[index] ^= 1
    return bytes(out)


@dataclass
class Signer:
    """One network: its signing key and id; `key_id(seq)` names its OPRF keys."""

    private: Ed25519PrivateKey = field(
        default_factory=lambda: Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    )
    network_id: str = NETWORK_ID

    @property
    def public(self) -> bytes:
        return raw_public(self.private)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.public).hexdigest()

    @staticmethod
    def key_id(seq: int) -> str:
        return f"{seq:016x}"

    def announcement(self, seq: int, **overrides: Any) -> SignedObject:
        fields: dict[str, Any] = {
            "type": "oprf-key",
            "network_id": self.network_id,
            "issued_at": format_time(NOW),
            "key_id": self.key_id(seq),
            "key_seq": seq,
            "public_key": bytes([seq]).hex() * 32,
            "registration_key": bytes([seq + 100]).hex() * 32,
            "prev_key_id": self.key_id(seq - 1) if seq > 1 else None,
        }
        fields.update(overrides)
        return sign(self.private, fields)

    def oprf_key(self, seq: int) -> OprfKey:
        return OprfKey.from_announcement(
            self.announcement(seq).framed(), signing_key=self.public, network_id=self.network_id
        )

    def state(self, *seqs: int, keys_per_check: int = 8) -> NetworkState:
        keys = tuple(self.oprf_key(s) for s in seqs or (1,))
        return NetworkState(self.network_id, self.public, keys, keys_per_check)

    def filter_header(
        self,
        values: Sequence[int],
        *,
        revision: int,
        seq: int = 1,
        issued: dt.datetime = NOW,
        lifetime: dt.timedelta = dt.timedelta(minutes=2),
        **overrides: Any,
    ) -> SignedObject:
        fields: dict[str, Any] = {
            "type": "filter",
            "network_id": self.network_id,
            "issued_at": format_time(issued),
            "expires_at": format_time(issued + lifetime),
            "key_id": self.key_id(seq),
            "key_seq": seq,
            "revision": revision,
            "count": len(values),
            "p": rice_parameter(len(values)),
            "sha256": set_sha256(values).hex(),
            "prev_sha256": "0" * 64,
        }
        fields.update(overrides)
        return sign(self.private, fields)

    def full(self, values: Sequence[int], *, revision: int, **kwargs: Any) -> bytes:
        ordered = sorted(values)
        return full_body(self.filter_header(ordered, revision=revision, **kwargs), ordered)

    def delta(
        self,
        before: Sequence[int],
        added: Sequence[int],
        removed: Sequence[int],
        *,
        revision: int,
        seq: int = 1,
        issued: dt.datetime = NOW,
        **overrides: Any,
    ) -> bytes:
        after = sorted((set(before) - set(removed)) | set(added))
        fields: dict[str, Any] = {
            "type": "filter-delta",
            "network_id": self.network_id,
            "issued_at": format_time(issued),
            "expires_at": format_time(issued + dt.timedelta(minutes=2)),
            "key_id": self.key_id(seq),
            "key_seq": seq,
            "revision": revision,
            "since_sha256": set_sha256(sorted(before)).hex(),
            "added": len(added),
            "removed": len(removed),
            "count": len(after),
            "sha256": set_sha256(after).hex(),
        }
        fields.update(overrides)
        return delta_body(sign(self.private, fields), sorted(added), sorted(removed))
