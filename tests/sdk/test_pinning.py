"""Trust on first use of the OPRF key and of the organisations' public keys, refusal of an
unannounced change, and a pin file that several clients and threads share."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from client_sdk import (
    CredentialsError,
    InvalidResponse,
    KeyChanged,
    OrgKeyChanged,
    OrgPublicKeys,
    PinnedKey,
    org_key_fingerprint,
)
from client_sdk.pinning import KeyPin, OrgKeyPins, normalise_fingerprint

K1 = PinnedKey("aaaaaaaaaaaaaaaa", b"\x01" * 32)
K2 = PinnedKey("bbbbbbbbbbbbbbbb", b"\x02" * 32)


def test_first_key_is_pinned_and_the_same_key_accepted_again() -> None:
    pin = KeyPin("http://s")
    assert pin.check(K1) == K1
    assert pin.check(K1) == K1


def test_a_different_key_raises_key_changed() -> None:
    pin = KeyPin("http://s", pinned=K1)
    with pytest.raises(KeyChanged) as info:
        pin.check(K2)
    assert info.value.pinned_key_id == K1.key_id and info.value.server_key_id == K2.key_id


def test_same_key_id_with_other_public_key_is_refused() -> None:
    pin = KeyPin("http://s", pinned=K1)
    with pytest.raises(KeyChanged):
        pin.check(PinnedKey(K1.key_id, b"\x03" * 32))


def test_pin_file_survives_the_process_and_is_per_server(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    KeyPin("http://a", path=path).check(K1)
    KeyPin("http://b", path=path).check(K2)
    with pytest.raises(KeyChanged):
        KeyPin("http://a", path=path).check(K2)
    assert KeyPin("http://b", path=path).check(K2) == K2
    assert path.stat().st_mode & 0o777 == 0o600


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


def test_org_pins_and_the_oprf_pin_share_one_file_without_losing_each_other(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pins.json"
    OrgKeyPins("http://s", path=path).check(A1)  # an org pin before any OPRF pin
    KeyPin("http://s", path=path).check(K1)
    OrgKeyPins("http://other", path=path).check(A2)  # same org id, another network
    document = json.loads(path.read_text())
    assert set(document) == {"pins", "org_keys"}
    with pytest.raises(KeyChanged):
        KeyPin("http://s", path=path).check(K2)
    with pytest.raises(OrgKeyChanged):
        OrgKeyPins("http://s", path=path).check(A2)
    assert OrgKeyPins("http://other", path=path).check(A2) == A2
    assert document["org_keys"]["http://s"]["org-a-id"]["short_name"] == "org-a"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_pin_written_meanwhile_by_another_client_wins_over_first_use(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    slow = OrgKeyPins("http://s", path=path)  # read the file while it was still empty
    OrgKeyPins("http://s", path=path).check(A1)
    with pytest.raises(OrgKeyChanged):
        slow.check(A2)
    slow_oprf = KeyPin("http://s", path=path)
    KeyPin("http://s", path=path).check(K1)
    with pytest.raises(KeyChanged):
        slow_oprf.check(K2)


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
        KeyPin("http://s", path=path)


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
