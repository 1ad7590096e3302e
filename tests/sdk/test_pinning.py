"""Pinning the network signing key from the credentials (never on first use) with its verified
OPRF key announcements, refusal of another key, of another network and of a key_seq going
back; the organisations' public keys on first use; a pin file that several clients and threads
share."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import (
    CredentialsError,
    InvalidResponse,
    KeyChanged,
    OrgKeyChanged,
    OrgPublicKeys,
    SignatureInvalid,
    org_key_fingerprint,
)
from client_sdk.pinning import NetworkPin, OrgKeyPins, normalise_fingerprint
from protocol.signed import cosign
from tests.sdk.signer import Signer, flip, raw_public

NET = Signer()
IMPOSTOR = Signer(private=Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))


def net_pin(server: str = "http://s", **kwargs: Any) -> NetworkPin:
    """A pin as credentials naming NET's network and signing key make it."""
    kwargs.setdefault("network_id", NET.network_id)
    kwargs.setdefault("signing_key_sha256", NET.fingerprint)
    return NetworkPin(server, **kwargs)


def announcements(*seqs: int, signer: Signer = NET) -> list[bytes]:
    return [signer.announcement(seq).framed() for seq in seqs]


def accept(pin: NetworkPin, *seqs: int, signer: Signer = NET, kpc: int = 32) -> None:
    pin.accept(
        signer.network_id, signer.public, announcements(*seqs, signer=signer), keys_per_check=kpc
    )


def test_the_credentials_key_is_pinned_and_the_newest_announcement_is_used() -> None:
    pin = net_pin()
    state = pin.accept(NET.network_id, NET.public, announcements(2, 1), keys_per_check=32)
    assert state.current.key_seq == 2 and state.current.key_id == NET.key_id(2)
    assert state.current.registration_key == bytes([102]) * 32
    assert [k.key_seq for k in state.keys] == [1, 2] and state.keys_per_check == 32
    assert pin.state == state and state.fingerprint == NET.fingerprint


def test_the_credentials_fingerprint_decides_and_a_mismatch_is_refused() -> None:
    pin = net_pin()
    with pytest.raises(KeyChanged, match="not the one your credentials file names") as info:
        pin.check_offered(NET.network_id, IMPOSTOR.public)
    assert info.value.pinned_key_id == NET.fingerprint
    with pytest.raises(KeyChanged, match="your credentials are for network"):
        pin.check_offered("other", NET.public)
    assert pin.state is None
    accept(pin, 1)
    assert pin.state is not None


def test_announcements_signed_by_any_other_key_are_refused_even_with_a_fresh_pin() -> None:
    """No first use to exploit: a server with a key of its own is refused from the start."""
    with pytest.raises(KeyChanged, match="credentials file names"):
        accept(net_pin(), 1, signer=IMPOSTOR)
    pin = net_pin()
    accept(pin, 1)
    with pytest.raises(KeyChanged):
        accept(pin, 2, signer=IMPOSTOR)
    assert pin.state is not None and pin.state.current.key_seq == 1


@pytest.mark.parametrize(
    "naming",
    [
        {"network_id": "", "signing_key_sha256": NET.fingerprint},
        {"network_id": NET.network_id, "signing_key_sha256": ""},
        {"network_id": NET.network_id, "signing_key_sha256": "ab" * 31},
    ],
)
def test_a_pin_without_the_credentials_network_and_fingerprint_is_refused(
    naming: dict[str, str],
) -> None:
    with pytest.raises(CredentialsError):
        NetworkPin(
            "http://s",
            network_id=naming["network_id"],
            signing_key_sha256=naming["signing_key_sha256"],
        )


def test_a_fingerprint_read_out_with_separators_is_the_same_pin() -> None:
    grouped = " ".join(NET.fingerprint[i : i + 4] for i in range(0, 64, 4)).upper()
    pin = net_pin(signing_key_sha256=grouped)
    accept(pin, 1)
    assert pin.state is not None and pin.state.fingerprint == NET.fingerprint


def test_an_announcement_not_signed_by_the_signing_key_is_refused() -> None:
    forged = IMPOSTOR.announcement(2).framed()
    with pytest.raises(SignatureInvalid):
        net_pin().accept(NET.network_id, NET.public, [*announcements(1), forged], keys_per_check=32)
    tampered = flip(NET.announcement(1).framed(), -2)  # inside the signature
    with pytest.raises(SignatureInvalid):
        net_pin().accept(NET.network_id, NET.public, [tampered], keys_per_check=32)
    with pytest.raises(SignatureInvalid):  # another network's announcement, same signing key
        net_pin().accept(
            NET.network_id,
            NET.public,
            announcements(1, signer=Signer(network_id="other")),
            keys_per_check=32,
        )
    with pytest.raises(InvalidResponse):
        net_pin().accept(NET.network_id, NET.public, [b"junk"], keys_per_check=32)


def test_key_sequence_never_goes_back_and_one_seq_has_one_key() -> None:
    pin = net_pin()
    accept(pin, 1, 2)
    with pytest.raises(KeyChanged, match="never go back"):
        accept(pin, 1)
    other_key = NET.announcement(2, public_key="ee" * 32).framed()
    with pytest.raises(KeyChanged, match="unlike the one already seen"):
        pin.accept(NET.network_id, NET.public, [other_key], keys_per_check=32)
    accept(pin, 2, 3)
    assert pin.state is not None and pin.state.current.key_seq == 3


def test_witnesses_must_cosign_announcements() -> None:
    witness = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
    plain = NET.announcement(1)
    with pytest.raises(SignatureInvalid):
        net_pin().accept(
            NET.network_id,
            NET.public,
            [plain.framed()],
            keys_per_check=32,
            witnesses=[raw_public(witness)],
        )
    state = net_pin().accept(
        NET.network_id,
        NET.public,
        [cosign(witness, plain).framed()],
        keys_per_check=32,
        witnesses=[raw_public(witness)],
    )
    assert state.witnesses == (raw_public(witness),)


def impostor_pin(server: str = "http://s", **kwargs: Any) -> NetworkPin:
    """A pin as credentials naming the impostor's key would make it."""
    return net_pin(
        server, network_id=IMPOSTOR.network_id, signing_key_sha256=IMPOSTOR.fingerprint, **kwargs
    )


def test_pin_file_keeps_keys_and_policy_for_the_next_process_per_server(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    accept(net_pin("http://a", path=path), 1, 2, kpc=16)
    accept(impostor_pin("http://b", path=path), 1, signer=IMPOSTOR)
    warm = net_pin("http://a", path=path)
    assert warm.state is not None
    assert warm.state.current.key_seq == 2 and warm.state.keys_per_check == 16
    with pytest.raises(KeyChanged):
        accept(warm, 1, signer=IMPOSTOR)
    with pytest.raises(KeyChanged):  # the file remembers seq 2
        accept(net_pin("http://a", path=path), 1)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_pin_file_entry_the_credentials_disagree_with_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    accept(impostor_pin(path=path), 1, signer=IMPOSTOR)  # written under other credentials
    pin = net_pin(path=path)
    assert pin.state is None
    accept(pin, 1)
    assert net_pin(path=path).state.fingerprint == NET.fingerprint  # type: ignore[union-attr]


def test_a_key_seq_seen_by_another_client_of_the_file_counts_as_seen(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    slow = net_pin(path=path)  # read the file while it was still empty
    accept(net_pin(path=path), 1, 2)
    with pytest.raises(KeyChanged, match="never go back"):
        accept(slow, 1)
    accept(slow, 1, 2, 3)
    assert net_pin(path=path).state.current.key_seq == 3  # type: ignore[union-attr]


def test_a_malformed_network_pin_is_a_credentials_error(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"network": {"http://s": {"network_id": "x", "oprf_keys": []}}}))
    path.chmod(0o600)
    with pytest.raises(CredentialsError):
        net_pin(path=path)
    entry = {
        "network_id": NET.network_id,
        "signing_key": NET.public.hex(),
        "oprf_keys": [IMPOSTOR.announcement(1).framed().hex()],
        "keys_per_check": 32,
    }
    path.write_text(json.dumps({"network": {"http://s": entry}}))
    with pytest.raises(CredentialsError):  # an announcement the pinned key did not sign
        net_pin(path=path)


# -- organisations' public keys --------------------------------------------------------------

A1 = OrgPublicKeys("org-a-id", b"\x0a" * 32, b"\x0b" * 32, short_name="org-a")
A2 = OrgPublicKeys("org-a-id", b"\x0a" * 32, b"\x0c" * 32, short_name="org-a")
B1 = OrgPublicKeys("org-b-id", b"\x1a" * 32, b"\x1b" * 32, short_name="org-b")


def test_org_keys_are_pinned_on_first_use_and_a_change_is_refused() -> None:
    pins = OrgKeyPins("http://s")
    assert pins.check(A1) == A1
    assert pins.check(A1) == A1
    with pytest.raises(OrgKeyChanged) as info:
        pins.check(A2)
    assert info.value.org == "org-a" and info.value.org_id == "org-a-id"
    assert info.value.changed == ("ed25519",)
    assert info.value.pinned_fingerprint == A1.fingerprint
    assert info.value.directory_fingerprint == A2.fingerprint
    assert pins.check(B1) == B1  # another organisation is pinned on its own


def test_replacing_an_org_pin_is_the_only_way_to_accept_a_change(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    OrgKeyPins("http://s", path=path).check(A1)
    OrgKeyPins("http://s", path=path).replace(A2)
    assert OrgKeyPins("http://s", path=path).check(A2) == A2
    with pytest.raises(OrgKeyChanged):
        OrgKeyPins("http://s", path=path).check(A1)


def test_org_pins_and_the_network_pin_share_one_file_without_losing_each_other(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pins.json"
    OrgKeyPins("http://s", path=path).check(A1)  # an org pin before any network pin
    accept(net_pin(path=path), 1)
    OrgKeyPins("http://other", path=path).check(A2)  # same org id, another network
    document = json.loads(path.read_text())
    assert set(document) == {"network", "org_keys"}
    with pytest.raises(KeyChanged):
        accept(net_pin(path=path), 1, signer=IMPOSTOR)
    with pytest.raises(OrgKeyChanged):
        OrgKeyPins("http://s", path=path).check(A2)
    assert OrgKeyPins("http://other", path=path).check(A2) == A2
    assert document["org_keys"]["http://s"]["org-a-id"]["short_name"] == "org-a"
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_org_pin_written_meanwhile_by_another_client_wins_over_first_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pins.json"
    slow = OrgKeyPins("http://s", path=path)  # read the file while it was still empty
    OrgKeyPins("http://s", path=path).check(A1)
    with pytest.raises(OrgKeyChanged):
        slow.check(A2)


def test_concurrent_first_uses_in_threads_keep_every_pin(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    keys = [OrgPublicKeys(f"org-{i}", bytes([i]) * 32, bytes([i + 100]) * 32) for i in range(1, 17)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: OrgKeyPins("http://s", path=path).check(k), keys))
    stored = json.loads(path.read_text())["org_keys"]["http://s"]
    assert set(stored) == {k.org_id for k in keys}


def test_malformed_org_pins_are_a_credentials_error(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"org_keys": {"http://s": {"org-a-id": {"x25519_public_key": 1}}}}))
    path.chmod(0o600)
    with pytest.raises(CredentialsError):
        OrgKeyPins("http://s", path=path)
    path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(CredentialsError):
        net_pin(path=path)


def test_fingerprint_is_read_out_in_any_grouping() -> None:
    fingerprint = org_key_fingerprint(A1.x25519, A1.ed25519)
    assert fingerprint == A1.fingerprint
    assert len(fingerprint) == 39 and fingerprint.count("-") == 7
    spoken = fingerprint.upper().replace("-", " ")
    assert normalise_fingerprint(spoken) == normalise_fingerprint(fingerprint)
    assert A1.fingerprint != A2.fingerprint  # either key changes it
    assert A1.fingerprint != OrgPublicKeys("x", A1.ed25519, A1.x25519).fingerprint


def test_a_directory_entry_without_valid_keys_is_an_invalid_response() -> None:
    entry = {"id": "org-a-id", "short_name": "org-a", "x25519_public_key": "ab" * 32}
    with pytest.raises(InvalidResponse):
        OrgPublicKeys.from_directory(entry)
    with pytest.raises(InvalidResponse):
        OrgPublicKeys.from_directory({**entry, "ed25519_public_key": "zz" * 32})
    keys = OrgPublicKeys.from_directory({**entry, "ed25519_public_key": "cd" * 32})
    assert keys.short_name == "org-a" and keys.ed25519 == bytes.fromhex("cd" * 32)
