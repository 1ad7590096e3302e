"""Credentials and keystore files: the server's format loads, secrets stay owner-only, sealed
files need the right passphrase."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nacl.pwhash
import pytest

from client_sdk import Credentials, CredentialsError, Keystore
from client_sdk.secretfile import seal

FAST = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}


def server_style_file(path: Path, **overrides: object) -> Path:
    """A credentials file exactly as docs/api.md shows `refcheck-server init` writing it."""
    document: dict[str, object] = {
        "refcheck_credentials": 1,
        "base_url": "http://127.0.0.1:8000",
        "issuer": "refcheck",
        "client_id": "5f0c2d1e-0000-4000-8000-000000000001",
        "principal_name": "org-b HR system",
        "roles": ["hr_checker"],
        "org_id": "5f0c2d1e-0000-4000-8000-0000000000b0",
        "org_short_name": "org-b",
        "auth_private_key": "11" * 32,
        "org_keys": {"ed25519_private": "22" * 32, "x25519_private": "33" * 32},
    }
    document.update(overrides)
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def test_server_written_credentials_file_loads(tmp_path: Path) -> None:
    creds = Credentials.load(server_style_file(tmp_path / "c.json"))
    assert creds.client_id.endswith("0001") and creds.roles == ("hr_checker",)
    assert creds.base_url == "http://127.0.0.1:8000"
    assert creds.org_keys is not None and creds.org_keys.x25519_private == b"\x33" * 32


def test_network_id_and_signing_key_fingerprint_are_read_and_written_back(
    tmp_path: Path,
) -> None:
    fingerprint = "ab" * 32
    path = server_style_file(
        tmp_path / "c.json", network_id="demo", network_signing_key_sha256=fingerprint
    )
    creds = Credentials.load(path)
    assert (creds.network_id, creds.network_signing_key_sha256) == ("demo", fingerprint)
    creds.save(tmp_path / "again.json")
    assert Credentials.load(tmp_path / "again.json") == creds
    assert Credentials.load(server_style_file(tmp_path / "old.json")).network_id is None


def test_a_malformed_signing_key_fingerprint_is_refused(tmp_path: Path) -> None:
    for bad in ("AB" * 32, "ab" * 31, 42):
        with pytest.raises(CredentialsError):
            Credentials.load(server_style_file(tmp_path / "c.json", network_signing_key_sha256=bad))


def test_secretariat_credentials_without_org_keys_load(tmp_path: Path) -> None:
    creds = Credentials.load(server_style_file(tmp_path / "c.json", org_keys=None))
    assert creds.org_keys is None


def test_private_keys_never_appear_in_repr(tmp_path: Path) -> None:
    creds = Credentials.load(server_style_file(tmp_path / "c.json"))
    assert "11" * 8 not in repr(creds) and "33" * 8 not in repr(creds)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_group_readable_credentials_file_is_refused(tmp_path: Path) -> None:
    path = server_style_file(tmp_path / "c.json")
    path.chmod(0o640)
    with pytest.raises(CredentialsError, match="chmod 600"):
        Credentials.load(path)


def test_wrong_format_or_bad_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError):
        Credentials.load(server_style_file(tmp_path / "a.json", refcheck_credentials=2))
    with pytest.raises(CredentialsError):
        Credentials.load(server_style_file(tmp_path / "b.json", auth_private_key="abcd"))
    with pytest.raises(CredentialsError):
        Credentials.load(tmp_path / "missing.json")


def test_saved_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    creds = Credentials.load(server_style_file(tmp_path / "c.json"))
    out = tmp_path / "copy.json"
    creds.save(out)
    assert out.stat().st_mode & 0o777 == 0o600
    assert Credentials.load(out) == creds
    with pytest.raises(CredentialsError, match="refusing to overwrite"):
        creds.save(out)


def test_sealed_credentials_need_the_right_passphrase(tmp_path: Path) -> None:
    creds = Credentials.load(server_style_file(tmp_path / "c.json"))
    document = creds.to_dict()
    secrets = {"auth_private_key": document.pop("auth_private_key"), "org_keys": None}
    document["org_keys"] = None
    document["sealed_secrets"] = seal(secrets, "correct horse", **FAST)
    path = tmp_path / "sealed.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    assert "11" * 32 not in path.read_text()
    assert Credentials.load(path, passphrase="correct horse").auth_private_key == b"\x11" * 32
    with pytest.raises(CredentialsError, match="wrong passphrase"):
        Credentials.load(path, passphrase="wrong")
    with pytest.raises(CredentialsError, match="passphrase"):
        Credentials.load(path)


def test_keystore_round_trip_with_and_without_passphrase(tmp_path: Path) -> None:
    store = Keystore.generate()
    store.save(tmp_path / "plain.json", passphrase=None)
    store.save(tmp_path / "sealed.json", passphrase="s3cret passphrase")
    assert Keystore.load(tmp_path / "plain.json") == store
    assert Keystore.load(tmp_path / "sealed.json", passphrase="s3cret passphrase") == store
    assert store.auth_private_key.hex() not in (tmp_path / "sealed.json").read_text()
    assert set(store.public_keys()) == {
        "auth_public_key",
        "ed25519_public_key",
        "x25519_public_key",
    }
    assert set(Keystore.generate(auth_only=True).public_keys()) == {"auth_public_key"}


def test_keystore_whose_public_keys_were_edited_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    Keystore.generate().save(path, passphrase=None)
    document = json.loads(path.read_text())
    document["public"]["auth_public_key"] = "00" * 32
    path.write_text(json.dumps(document))
    with pytest.raises(CredentialsError, match="do not match"):
        Keystore.load(path)


def test_sealed_envelope_with_absurd_kdf_limits_is_refused(tmp_path: Path) -> None:
    envelope = seal({"a": 1}, "pw", **FAST)
    envelope["memlimit"] = 1 << 40
    from client_sdk.secretfile import open_sealed

    with pytest.raises(CredentialsError, match="out-of-range"):
        open_sealed(envelope, "pw")
