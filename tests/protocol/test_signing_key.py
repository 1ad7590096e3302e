"""The `signing-key` object (docs/protocol.md, "Signed objects" and "Rotating the network signing
key"): one rotation of the network signing key, signed by the old key and cosigned by the new,
and the walk along a history of them from a trusted key to the newest, with every way a history
can fail to lead there refused."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.signed import (
    SIGNING_KEY_TYPE,
    SignedObject,
    cosign,
    follow_signing_keys,
    parse,
    sign,
    sign_signing_key,
    signing_key_id,
    verify_signing_key,
)

NETWORK = "test-net"
K1, K2, K3, K4 = (Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32) for n in (11, 12, 13, 14))
STRANGER = Ed25519PrivateKey.from_private_bytes(b"\x66" * 32)
AT = "2026-03-01T00:00:00Z"


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def rotation(
    old: Ed25519PrivateKey, new: Ed25519PrivateKey, seq: int, network_id: str = NETWORK
) -> bytes:
    return sign_signing_key(old, new, network_id=network_id, key_seq=seq, issued_at=AT).framed()


def history() -> list[bytes]:
    """K1 → K2 → K3: the network's first two rotations."""
    return [rotation(K1, K2, 2), rotation(K2, K3, 3)]


def hand_made(old: Ed25519PrivateKey, new: Ed25519PrivateKey, **changes: Any) -> SignedObject:
    """A `signing-key` object signed and cosigned properly, with header fields changed."""
    fields: dict[str, Any] = {
        "type": SIGNING_KEY_TYPE,
        "network_id": NETWORK,
        "issued_at": AT,
        "key_seq": 2,
        "key_id": signing_key_id(raw(new)),
        "public_key": raw(new).hex(),
        "prev_key_id": signing_key_id(raw(old)),
        "prev_public_key": raw(old).hex(),
        **changes,
    }
    return cosign(new, sign(old, fields))


def test_a_rotation_is_signed_by_the_old_key_cosigned_by_the_new_and_names_both() -> None:
    obj = parse(rotation(K1, K2, 2))
    assert obj.type == "signing-key"
    assert set(obj.fields) == {
        "type",
        "network_id",
        "issued_at",
        "key_seq",
        "key_id",
        "public_key",
        "prev_key_id",
        "prev_public_key",
    }
    assert obj.fields["key_id"] == hashlib.sha256(raw(K2)).hexdigest()[:16]
    obj.verify(raw(K1), network_id=NETWORK, type="signing-key", witnesses=[raw(K2)])
    step = verify_signing_key(obj, prev_public_key=raw(K1), network_id=NETWORK)
    assert (step.key_seq, step.public_key, step.prev_public_key) == (2, raw(K2), raw(K1))
    assert step.key_id == signing_key_id(raw(K2)) and step.prev_key_id == signing_key_id(raw(K1))
    assert step.issued_at == AT


def test_signing_a_rotation_refuses_a_first_key_seq_and_the_same_key() -> None:
    with pytest.raises(InvalidInputError):
        sign_signing_key(K1, K2, network_id=NETWORK, key_seq=1, issued_at=AT)
    with pytest.raises(InvalidInputError):
        sign_signing_key(K1, K1, network_id=NETWORK, key_seq=2, issued_at=AT)


def test_a_rotation_from_another_key_than_the_trusted_one_is_refused() -> None:
    with pytest.raises(VerifyError, match="another key than the one trusted"):
        verify_signing_key(rotation(K1, K2, 2), prev_public_key=raw(K3), network_id=NETWORK)


def test_a_rotation_for_another_network_is_refused() -> None:
    with pytest.raises(VerifyError, match="another network"):
        verify_signing_key(
            rotation(K1, K2, 2, network_id="other"), prev_public_key=raw(K1), network_id=NETWORK
        )


def test_a_rotation_signed_by_a_stranger_or_not_cosigned_by_the_new_key_is_refused() -> None:
    # Names K1 as the key replaced, but K1 did not sign it.
    forged = cosign(K2, sign(STRANGER, dict(hand_made(K1, K2).fields)))
    with pytest.raises(VerifyError, match="signature does not verify"):
        verify_signing_key(forged, prev_public_key=raw(K1), network_id=NETWORK)
    uncosigned = sign(K1, dict(hand_made(K1, K2).fields))
    with pytest.raises(VerifyError, match="has not cosigned"):
        verify_signing_key(uncosigned, prev_public_key=raw(K1), network_id=NETWORK)
    altered = bytearray(rotation(K1, K2, 2))
    altered[-1] ^= 1  # inside the new key's cosignature
    with pytest.raises(VerifyError, match="cosignature does not verify"):
        verify_signing_key(bytes(altered), prev_public_key=raw(K1), network_id=NETWORK)


def test_another_type_is_not_a_rotation() -> None:
    tree_head = sign(
        K1, {"type": "tree-head", "network_id": NETWORK, "issued_at": AT, "tree_size": 0}
    )
    with pytest.raises(VerifyError, match="wrong type"):
        verify_signing_key(tree_head, prev_public_key=raw(K1), network_id=NETWORK)


@pytest.mark.parametrize(
    "changes",
    [
        {"key_seq": 1},
        {"key_seq": True},
        {"key_seq": "2"},
        {"key_id": "0" * 16},
        {"prev_key_id": "0" * 16},
        {"public_key": raw(K2).hex().upper()},
        {"prev_public_key": raw(K1).hex()[:-2]},
    ],
)
def test_a_malformed_rotation_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(DeserializeError):
        verify_signing_key(
            hand_made(K1, K2, **changes), prev_public_key=raw(K1), network_id=NETWORK
        )


def test_a_history_is_followed_from_any_key_of_it_to_the_newest() -> None:
    steps = follow_signing_keys(history(), trusted=raw(K1), network_id=NETWORK)
    assert [s.public_key for s in steps] == [raw(K2), raw(K3)]
    assert [s.key_seq for s in steps] == [2, 3]
    (step,) = follow_signing_keys(history(), trusted=raw(K2), network_id=NETWORK)
    assert step.public_key == raw(K3)
    # The newest key, or a key the history does not name: nothing to follow (the caller then
    # sees that the walk did not end at the key it is offered).
    assert follow_signing_keys(history(), trusted=raw(K3), network_id=NETWORK) == []
    assert follow_signing_keys(history(), trusted=raw(STRANGER), network_id=NETWORK) == []
    assert follow_signing_keys([], trusted=raw(K1), network_id=NETWORK) == []


def test_a_history_with_a_gap_after_the_trusted_key_is_refused() -> None:
    truncated = [rotation(K1, K2, 2), rotation(K3, K4, 4)]
    with pytest.raises(VerifyError, match="another key than the one trusted"):
        follow_signing_keys(truncated, trusted=raw(K1), network_id=NETWORK)


def test_a_forged_step_in_the_history_is_refused() -> None:
    # Names K2 as the key replaced, signed by a stranger (cosigned by the key it names).
    forged = cosign(K4, sign(STRANGER, dict(hand_made(K2, K4, key_seq=3).fields)))
    with pytest.raises(VerifyError, match="signature does not verify"):
        follow_signing_keys(
            [rotation(K1, K2, 2), forged.framed()], trusted=raw(K1), network_id=NETWORK
        )


def test_a_step_of_another_network_in_the_history_is_refused() -> None:
    mixed = [rotation(K1, K2, 2), rotation(K2, K3, 3, network_id="other")]
    with pytest.raises(VerifyError, match="another network"):
        follow_signing_keys(mixed, trusted=raw(K1), network_id=NETWORK)


def test_a_history_whose_key_seq_skips_forks_or_comes_back_is_refused() -> None:
    with pytest.raises(VerifyError, match="go up by one"):
        follow_signing_keys(
            [rotation(K1, K2, 2), rotation(K2, K3, 5)], trusted=raw(K1), network_id=NETWORK
        )
    with pytest.raises(VerifyError, match="more than once"):
        follow_signing_keys(
            [rotation(K1, K2, 2), rotation(K1, K3, 3)], trusted=raw(K1), network_id=NETWORK
        )
    with pytest.raises(VerifyError, match="returns to a key"):
        follow_signing_keys(
            [rotation(K1, K2, 2), rotation(K2, K1, 3)], trusted=raw(K1), network_id=NETWORK
        )


def test_a_malformed_object_anywhere_in_the_history_is_refused() -> None:
    with pytest.raises(DeserializeError):
        follow_signing_keys([b"junk", *history()], trusted=raw(K2), network_id=NETWORK)
