"""Signed checkpoints of the audit chain.

A checkpoint signs (seq, head hash, time) with the server's Ed25519 audit key. The message is
domain-separated so a signature made for a checkpoint can never be presented as anything else.
"""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.audit.models import AuditCheckpoint

CHECKPOINT_CONTEXT = b"refcheck/v1/audit-checkpoint\x00"


def checkpoint_message(*, seq: int, entry_hash: str, created_at: datetime, key_id: str) -> bytes:
    body = json.dumps(
        {
            "seq": seq,
            "entry_hash": entry_hash,
            "created_at": created_at.isoformat(timespec="microseconds"),
            "key_id": key_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return CHECKPOINT_CONTEXT + body.encode()


def sign_checkpoint(
    key: Ed25519PrivateKey, *, seq: int, entry_hash: str, created_at: datetime, key_id: str
) -> str:
    message = checkpoint_message(
        seq=seq, entry_hash=entry_hash, created_at=created_at, key_id=key_id
    )
    return key.sign(message).hex()


def checkpoint_signature_valid(checkpoint: AuditCheckpoint, public_key: Ed25519PublicKey) -> bool:
    message = checkpoint_message(
        seq=checkpoint.seq,
        entry_hash=checkpoint.entry_hash,
        created_at=checkpoint.created_at,
        key_id=checkpoint.key_id,
    )
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True
