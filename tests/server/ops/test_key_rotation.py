"""Rotating the token-signing key and the network signing key (docs/operations.md, "Key
rotation calendar" and "When a key leaks")."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import server.keys
from client_sdk import CheckStatus, Client, Credentials
from protocol.signed import parse, sign_signing_key
from server.keys import (
    AUDIT_KEY_FILE,
    SIGNING_HISTORY_FILE,
    KeyFileError,
    load_keys,
    rotate_signing_key,
    rotate_token_key,
)
from server.settings import Settings
from tests.factories import AppClient, Network, auth_headers
from tests.server.ops.support import check_status, deployment, person, register


@pytest.fixture
def own_key_dir(key_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the suite's key files that this test may rotate; rings look at every call."""
    monkeypatch.setattr(server.keys, "RECHECK_SECONDS", 0.0)
    target = tmp_path / "data"
    shutil.copytree(key_dir, target)
    return target


@pytest.fixture
def settings(own_key_dir: Path, database_url: str) -> Settings:
    return Settings(
        environment="test",
        data_dir=own_key_dir,
        database_url=database_url,
        run_background_jobs=False,
    )


def _kid(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.get_unverified_header(token)["kid"])


@pytest.mark.anyio
async def test_token_key_rotation_keeps_issued_tokens_valid_and_jwks_lists_both(
    client: AppClient, network: Network, own_key_dir: Path
) -> None:
    hr = network.b_hr
    old_kid = _kid(hr.headers)
    rotation = rotate_token_key(own_key_dir / "server")
    assert rotation.old_key_id == old_kid

    # The token issued before the rotation still works (the overlap)...
    assert (await client.get("/v1/me", headers=hr.headers)).status_code == 200
    # ...new tokens are signed by the new key, and the JWKS lists both, the new one first.
    fresh = await auth_headers(client, hr.principal, hr.key)
    assert _kid(fresh) == rotation.new_key_id
    assert (await client.get("/v1/me", headers=fresh)).status_code == 200
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [rotation.new_key_id, old_kid]

    # The next rotation drops the key before the previous one: its tokens are refused.
    rotate_token_key(own_key_dir / "server")
    refused = await client.get("/v1/me", headers=hr.headers)
    assert refused.status_code == 401
    assert (await client.get("/v1/me", headers=fresh)).status_code == 200


@pytest.mark.anyio
async def test_a_leaked_token_key_is_rotated_without_overlap_and_its_tokens_are_refused(
    client: AppClient, network: Network, own_key_dir: Path
) -> None:
    hr = network.b_hr
    rotation = rotate_token_key(own_key_dir / "server", keep_previous=False)
    refused = await client.get("/v1/me", headers=hr.headers)
    assert refused.status_code == 401
    assert refused.json()["type"].endswith("invalid-token")
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [rotation.new_key_id]
    # A token the old key signs now (a thief holding it) is refused as well.
    fresh = await auth_headers(client, hr.principal, hr.key)
    assert (await client.get("/v1/me", headers=fresh)).status_code == 200


def test_signing_history_chains_each_key_to_the_next_and_a_forged_line_is_refused(
    own_key_dir: Path,
) -> None:
    key_dir = own_key_dir / "server"
    first = load_keys(key_dir)
    original = first.audit_public
    rotate_signing_key(key_dir, issued_at="2026-01-01T00:00:00Z")
    rotate_signing_key(key_dir, issued_at="2026-04-01T00:00:00Z")
    keys = load_keys(key_dir)
    assert len(keys.signing_history) == 2
    assert keys.signing_publics[0] == original and keys.signing_publics[-1] == keys.audit_public
    # Each line: signed by the key before it, cosigned by the key it names.
    for older, newer, framed in zip(
        keys.signing_publics[:-1], keys.signing_publics[1:], keys.signing_history, strict=True
    ):
        obj = parse(framed)
        obj.verify(older, network_id=keys.network_id, type="signing-key", witnesses=[newer])
        assert obj.fields["public_key"] == newer.hex()
    # A line signed by a key that is not the one before it: refused when the keys are read.
    path = key_dir / SIGNING_HISTORY_FILE
    lines = path.read_text().split()
    forged = sign_signing_key(
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.from_private_bytes(
            bytes.fromhex((key_dir / AUDIT_KEY_FILE).read_text().strip())
        ),
        network_id=keys.network_id,
        key_seq=3,
        issued_at="2026-04-01T00:00:00Z",
    )
    path.write_text("\n".join([lines[0], forged.framed().hex()]) + "\n")
    with pytest.raises(KeyFileError, match="not a valid key rotation"):
        load_keys(key_dir)


@pytest.mark.slow
def test_signing_key_rotation_on_a_running_server_keeps_the_log_verifiable(
    tmp_path: Path,
) -> None:
    """The server side of following a rotation: the new key signs the filter, the announcements
    and new tree heads at once (no restart), the history the old key signed is served, the old
    heads still verify, and the rotation is audited. An SDK whose credentials and pin file name
    the old key follows `signing_key_history` to the new one (and pins it); new credentials name
    the new key."""
    with deployment(tmp_path, "net", "sqlite") as net:
        net.init()
        pins = tmp_path / "pins.json"
        with net.serve():
            with Client.from_credentials_file(net.credentials("org-a-focal"), pin_file=pins) as a:
                register(a, person(5))
            old_fingerprint = Credentials.load(
                net.credentials("org-b-hr")
            ).network_signing_key_sha256
            rotated = net.cli("keys", "rotate-signing", "--data-dir", str(net.data_dir))
            new_fingerprint = rotated.stdout.split("network_signing_key_sha256: ")[1].strip()
            assert new_fingerprint != old_fingerprint

            with Client.from_credentials_file(net.credentials("org-b-hr"), pin_file=pins) as old:
                assert check_status(old, person(5)) == CheckStatus.MATCH
            (pinned,) = json.loads(pins.read_text())["network"].values()
            assert hashlib.sha256(bytes.fromhex(pinned["signing_key"])).hexdigest() == (
                new_fingerprint
            )
            document = json.loads(net.credentials("org-b-hr").read_text())
            document["network_signing_key_sha256"] = new_fingerprint
            renewed = Credentials.from_dict(document)
            with Client(renewed, pin_file=tmp_path / "pins-new.json") as hr:
                assert check_status(hr, person(5)) == CheckStatus.MATCH
                body = hr.request("GET", "/v1/network/keys").json()
            (line,) = body["signing_key_history"]
            obj = parse(bytes.fromhex(line))
            old_public = bytes.fromhex(str(obj.fields["prev_public_key"]))
            new_public = bytes.fromhex(body["signing_key"]["public_key"])
            obj.verify(
                old_public,
                network_id=body["network_id"],
                type="signing-key",
                witnesses=[new_public],
            )
            assert hashlib.sha256(old_public).hexdigest() == old_fingerprint
            for framed in body["oprf_keys"]:
                parse(bytes.fromhex(framed)).verify(
                    new_public, network_id=body["network_id"], type="oprf-key"
                )
        verified = net.cli("audit", "verify", "--data-dir", str(net.data_dir))
        assert "audit trail intact" in verified.stdout
        db = sqlite3.connect(net.data_dir / "refcheck.db")
        try:
            actions = [
                (r[0], r[1])
                for r in db.execute(
                    "SELECT object_type, object_id FROM audit_entries WHERE action = 'key.rotate'"
                )
            ]
        finally:
            db.close()
        assert actions == [("signing_key", obj.fields["key_id"])]
        # A history line whose signature was altered: no command starts on these keys.
        # (One bit of the last byte flipped: writing "00" left it as it was when it was 00.)
        altered = line[:-2] + f"{int(line[-2:], 16) ^ 1:02x}"
        (net.data_dir / "server" / SIGNING_HISTORY_FILE).write_text(altered + "\n")
        broken = net.cli("audit", "verify", "--data-dir", str(net.data_dir), check=False)
        assert broken.returncode == 2 and "not a valid key rotation" in broken.stderr


def test_a_signing_key_rotation_whose_database_work_fails_leaves_the_old_key_in_force(
    own_key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file changes before the rotation's transaction commits (the new key signs inside
    it). When that transaction fails, the old key is put back and the history line naming the
    new one dropped: the files and the database agree on which key signs, and the next
    rotation goes through as if the failed one had never been tried."""
    import server.filter.services as filters
    from server.app import build_context
    from server.migrate import upgrade
    from server.signing_rotation import rotate_network_signing_key

    # A database of its own (the data dir's SQLite): the rotation commits, and what it signs
    # with its key must not reach the suite's shared database.
    settings = Settings(environment="test", data_dir=own_key_dir, run_background_jobs=False)
    upgrade(settings.effective_database_url)

    key_dir = own_key_dir / "server"
    key_before = (key_dir / AUDIT_KEY_FILE).read_bytes()
    history = key_dir / SIGNING_HISTORY_FILE
    history_before = history.read_text() if history.exists() else ""
    ctx = build_context(settings)
    try:
        signer_before = ctx.keys.signing_ring.reload().key_id

        def full_disk(*args: object, **kwargs: object) -> None:
            raise OSError("no space left on device")

        monkeypatch.setattr(filters, "publish", full_disk)
        with pytest.raises(OSError, match="no space left"):
            rotate_network_signing_key(ctx)
        assert (key_dir / AUDIT_KEY_FILE).read_bytes() == key_before
        assert (history.read_text() if history.exists() else "") == history_before
        assert ctx.keys.signing_ring.reload().key_id == signer_before

        monkeypatch.undo()
        rotation, _framed = rotate_network_signing_key(ctx)
        assert rotation.old_key_id == signer_before
        assert len(history.read_text().split()) == len(history_before.split()) + 1
    finally:
        ctx.sessions.kw["bind"].dispose()
