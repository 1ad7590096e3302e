"""The SDK across a rotation of the network signing key (issue 20): a client whose credentials
name the old key's fingerprint follows the server's `signing_key_history` (each `signing-key`
object signed by the key before it) to the new key, pins it with the chain, and checks and
registers under it; one, two rotations, cold and warm pin files. A history that does not lead
from the trusted key to the offered one (a forged step, another network's step, a gap, a step
by a key outside the chain, none at all) and a rollback to an older key are refused with
`KeyChanged` before anything else is sent.

The first half runs the real app, rotated by the operation `refcheck-server keys rotate-signing`
runs (`server.signing_rotation`); the second the pin alone, on objects signed as the server signs
them. Each app test has a data directory of its own, because a rotation writes key files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from client_sdk import AsyncClient, CheckStatus, CredentialsError, KeyChanged
from client_sdk.pinning import NetworkPin, signing_key_sha256
from protocol.signed import cosign, parse, sign, sign_signing_key
from server.keys import AUDIT_KEY_FILE, create_keys
from server.signing_rotation import rotate_network_signing_key
from tests.factories import Actor, Network
from tests.sdk.conftest import FAST_RETRY, Counting, SdkFactory, Tamper, credentials_for, sdk_clock
from tests.sdk.signer import Signer, raw_public
from tests.sdk.test_client_app import case_fields, consent
from tests.server.blindmatch.people import OTHER as OTHER_PERSON
from tests.server.blindmatch.people import REGISTERED

AT = "2026-06-01T00:00:00Z"


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one)."""
    create_keys(tmp_path / "server")
    return tmp_path


def signing_private(ctx: Any) -> Ed25519PrivateKey:
    """The network signing key in force, read from its file (for forging with the real key)."""
    path = ctx.settings.server_key_dir / AUDIT_KEY_FILE
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))


def client_naming(
    app: FastAPI, network: Network, clock: Any, actor: Actor, fingerprint: str, **kwargs: Any
) -> AsyncClient:
    """An SDK client whose credentials name `fingerprint` (as a file issued before a rotation
    does), over the real app."""
    keys = SimpleNamespace(network_id=app.state.ctx.keys.network_id, signing_key_sha256=fingerprint)
    kwargs.setdefault("transport", httpx.ASGITransport(app=app))
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("clock", sdk_clock(clock))
    kwargs.setdefault("max_concurrency", 1)
    return AsyncClient(credentials_for(actor, network, server_keys=keys), **kwargs)


def pinned_entry(path: Path) -> dict[str, Any]:
    (entry,) = json.loads(path.read_text())["network"].values()
    assert isinstance(entry, dict)
    return entry


# -- with the real app ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_client_naming_the_old_key_follows_a_rotation_checks_registers_and_pins_it(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    old_public, old_fingerprint = ctx.keys.audit_public, ctx.keys.signing_key_sha256

    rotate_network_signing_key(ctx)
    new_public = ctx.keys.audit_public
    assert new_public != old_public

    pins = tmp_path / "pins.json"
    hr = client_naming(app, network, clock, network.b_hr, old_fingerprint, pin_file=pins)
    async with hr:
        result = await hr.check_applicant(REGISTERED, await consent(hr))
        assert result.status is CheckStatus.MATCH
        assert hr.network is not None and hr.network.signing_key == new_public
        assert hr.network.signing_keys == (old_public, new_public)
    entry = pinned_entry(pins)
    assert entry["signing_key"] == new_public.hex()
    (step,) = entry["signing_key_history"]
    assert parse(bytes.fromhex(step)).fields["prev_public_key"] == old_public.hex()

    focal = client_naming(app, network, clock, network.a_focal, old_fingerprint)
    async with focal:
        registered = await focal.register_case(OTHER_PERSON, case_fields(clock.today()))
        assert registered.case.id

    # The next process with the same (old) credentials and the pin file: the new key at once,
    # one keys call, no second walk needed; and a check finds the new registration.
    counting = Counting(httpx.ASGITransport(app=app))
    again = client_naming(
        app, network, clock, network.b_hr, old_fingerprint, pin_file=pins, transport=counting
    )
    async with again:
        assert again.network is not None and again.network.signing_key == new_public
        other = await again.check_applicant(OTHER_PERSON, await consent(again, applicant_ref="A2"))
        assert other.status is CheckStatus.MATCH
    assert counting.calls[("GET", "/v1/network/keys")] == 1


@pytest.mark.anyio
async def test_a_client_in_session_follows_a_rotation_made_meanwhile_and_spends_one_check(
    app: FastAPI,
    sdk_for: SdkFactory,
    network: Network,
    clock: Any,
    ctx: Any,
    session: Any,
    tmp_path: Path,
) -> None:
    """A client that read the network before the rotation meets an answer whose filter header
    the new key signed: it follows the signed history (as a new session would), verifies the
    same answer again, and finishes the check; the consent is spent once, not twice."""
    from server.consents.models import Consent

    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    old_public = ctx.keys.audit_public
    pins = tmp_path / "pins.json"
    hr = client_naming(
        app, network, clock, network.b_hr, ctx.keys.signing_key_sha256, pin_file=pins
    )
    async with hr:
        before = await hr.check_applicant(OTHER_PERSON, await consent(hr))
        assert before.status is CheckStatus.NO_MATCH
        assert hr.network is not None and hr.network.signing_key == old_public
        consent_id = await consent(hr, applicant_ref="APP-2")

        rotate_network_signing_key(ctx)
        result = await hr.check_applicant(REGISTERED, consent_id)

        assert result.status is CheckStatus.MATCH
        assert hr.network is not None and hr.network.signing_key == ctx.keys.audit_public
        assert hr.network.signing_keys == (old_public, ctx.keys.audit_public)
    assert pinned_entry(pins)["signing_key"] == ctx.keys.audit_public.hex()
    session.expire_all()
    spent = session.get(Consent, consent_id)
    assert spent is not None and spent.checks_used == 1


@pytest.mark.anyio
async def test_a_warm_pin_file_follows_two_rotations_and_new_credentials_work_directly(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    first_public, first_fingerprint = ctx.keys.audit_public, ctx.keys.signing_key_sha256
    pins = tmp_path / "pins.json"
    async with client_naming(
        app, network, clock, network.b_hr, first_fingerprint, pin_file=pins
    ) as hr:
        await hr.oprf_key()  # warm: keys and policy pinned under the first key
    assert pinned_entry(pins)["signing_key"] == first_public.hex()

    rotate_network_signing_key(ctx)
    second_public = ctx.keys.audit_public
    rotate_network_signing_key(ctx)
    third_public = ctx.keys.audit_public

    hr = client_naming(app, network, clock, network.b_hr, first_fingerprint, pin_file=pins)
    async with hr:
        result = await hr.check_applicant(REGISTERED, await consent(hr))
        assert result.status is CheckStatus.MATCH
        assert hr.network is not None
        assert hr.network.signing_keys == (first_public, second_public, third_public)
    entry = pinned_entry(pins)
    assert entry["signing_key"] == third_public.hex()
    assert [parse(bytes.fromhex(s)).fields["key_seq"] for s in entry["signing_key_history"]] == [
        2,
        3,
    ]

    # Credentials issued after the rotations name the newest key: no history needed, and the
    # pin file's entry (its chain passes through that key) is kept.
    fresh = sdk_for(network.b_hr, pin_file=pins)
    assert fresh.network is not None and fresh.network.signing_key == third_public
    assert fresh.network.rotations == ()
    result = await fresh.check_applicant(REGISTERED, await consent(fresh, applicant_ref="A3"))
    assert result.status is CheckStatus.MATCH


async def _refused(
    app: FastAPI,
    network: Network,
    clock: Any,
    fingerprint: str,
    edit: Any,
    match: str,
    **kwargs: Any,
) -> None:
    """A client naming `fingerprint`, shown the real keys answer changed by `edit`: refused
    with `KeyChanged` after the one unauthenticated keys call, nothing else sent."""
    tamper = Tamper(httpx.ASGITransport(app=app), path="/v1/network/keys", edit=edit)
    client = client_naming(
        app, network, clock, network.b_hr, fingerprint, transport=tamper, **kwargs
    )
    async with client:
        with pytest.raises(KeyChanged, match=match) as info:
            await client.registry_filter()
    assert "secretariat" in str(info.value)
    assert dict(tamper.calls) == {("GET", "/v1/network/keys"): 1}


@pytest.mark.anyio
async def test_a_forged_history_step_is_refused(
    app: FastAPI, network: Network, clock: Any, ctx: Any
) -> None:
    old_fingerprint = ctx.keys.signing_key_sha256
    rotate_network_signing_key(ctx)

    def forge(body: dict[str, Any]) -> None:
        step = bytearray(bytes.fromhex(body["signing_key_history"][0]))
        step[-100] ^= 1  # inside the old key's signature
        body["signing_key_history"] = [step.hex()]

    await _refused(app, network, clock, old_fingerprint, forge, "does not verify")


@pytest.mark.anyio
async def test_a_history_step_for_another_network_is_refused(
    app: FastAPI, network: Network, clock: Any, ctx: Any
) -> None:
    """Signed by the real old key, cosigned by the key it names: only the network is wrong."""
    old_fingerprint, old = ctx.keys.signing_key_sha256, signing_private(ctx)
    evil = Ed25519PrivateKey.from_private_bytes(b"\x0e" * 32)
    step = sign_signing_key(old, evil, network_id="other", key_seq=2, issued_at=AT)

    def swap(body: dict[str, Any]) -> None:
        body["signing_key"]["public_key"] = raw_public(evil).hex()
        body["signing_key_history"] = [step.framed().hex()]

    await _refused(app, network, clock, old_fingerprint, swap, "another network")


@pytest.mark.anyio
async def test_a_truncated_chain_is_refused(
    app: FastAPI, network: Network, clock: Any, ctx: Any
) -> None:
    old_fingerprint = ctx.keys.signing_key_sha256
    rotate_network_signing_key(ctx)
    rotate_network_signing_key(ctx)

    def drop_first(body: dict[str, Any]) -> None:
        body["signing_key_history"] = body["signing_key_history"][1:]

    await _refused(
        app, network, clock, old_fingerprint, drop_first, "does not start from the key you trust"
    )


@pytest.mark.anyio
async def test_a_step_signed_by_a_key_outside_the_chain_is_refused(
    app: FastAPI, network: Network, clock: Any, ctx: Any
) -> None:
    """After a real rotation, a second step that names the real new key as the one replaced
    but is signed by a key that is not in the chain; and one that replaces a key the chain
    never reached."""
    old_fingerprint = ctx.keys.signing_key_sha256
    rotate_network_signing_key(ctx)
    new_public = ctx.keys.audit_public
    stranger = Ed25519PrivateKey.from_private_bytes(b"\x0f" * 32)
    evil = Ed25519PrivateKey.from_private_bytes(b"\x0e" * 32)
    honest = sign_signing_key(stranger, evil, network_id="x", key_seq=3, issued_at=AT)
    fields = {**honest.fields, "network_id": ctx.keys.network_id}
    fields["prev_public_key"] = new_public.hex()
    fields["prev_key_id"] = ctx.keys.audit_key_id
    by_stranger = cosign(evil, sign(stranger, fields))
    from_stranger = sign_signing_key(
        stranger, evil, network_id=ctx.keys.network_id, key_seq=3, issued_at=AT
    )

    for extra in (by_stranger, from_stranger):

        def append(body: dict[str, Any], extra: Any = extra) -> None:
            body["signing_key"]["public_key"] = raw_public(evil).hex()
            body["signing_key_history"].append(extra.framed().hex())

        await _refused(app, network, clock, old_fingerprint, append, "does not verify")


@pytest.mark.anyio
async def test_a_new_key_without_history_and_a_rollback_to_the_old_key_are_refused(
    app: FastAPI, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    old_public, old_fingerprint = ctx.keys.audit_public, ctx.keys.signing_key_sha256
    rotate_network_signing_key(ctx)

    def no_history(body: dict[str, Any]) -> None:
        body["signing_key_history"] = []

    await _refused(app, network, clock, old_fingerprint, no_history, "no signing key history")

    pins = tmp_path / "pins.json"
    async with client_naming(
        app, network, clock, network.b_hr, old_fingerprint, pin_file=pins
    ) as hr:
        await hr.oprf_key()  # followed to the new key, pinned
    assert pinned_entry(pins)["signing_key"] == ctx.keys.audit_public.hex()

    def old_key(body: dict[str, Any]) -> None:
        # The server (or one holding the old key) shows the old key again, no history.
        body["signing_key"]["public_key"] = old_public.hex()
        body["signing_key_history"] = []

    await _refused(app, network, clock, old_fingerprint, old_key, "rollback", pin_file=pins)
    # The pin file still holds the new key.
    assert pinned_entry(pins)["signing_key"] == ctx.keys.audit_public.hex()


# -- the pin alone -------------------------------------------------------------------------------

K1 = Signer()
K2 = Signer(private=Ed25519PrivateKey.from_private_bytes(b"\x21" * 32))
K3 = Signer(private=Ed25519PrivateKey.from_private_bytes(b"\x22" * 32))


def step(old: Signer, new: Signer, seq: int, network_id: str = K1.network_id) -> bytes:
    return sign_signing_key(
        old.private, new.private, network_id=network_id, key_seq=seq, issued_at=AT
    ).framed()


def accept(pin: NetworkPin, signer: Signer, history: list[bytes]) -> None:
    pin.accept(
        signer.network_id,
        signer.public,
        [signer.announcement(1).framed()],
        keys_per_check=32,
        signing_key_history=history,
    )


def pin_naming(signer: Signer, path: Path | None = None) -> NetworkPin:
    return NetworkPin(
        "http://s", path=path, network_id=signer.network_id, signing_key_sha256=signer.fingerprint
    )


def test_the_pin_follows_a_chain_from_the_credentials_key_and_a_reread_verifies_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pins.json"
    pin = pin_naming(K1, path)
    history = [step(K1, K2, 2), step(K2, K3, 3)]
    assert [s.public_key for s in pin.check_offered(K1.network_id, K3.public, history)] == [
        K2.public,
        K3.public,
    ]
    assert pin.state is None  # checking pins nothing
    accept(pin, K3, history)
    assert pin.state is not None and pin.state.signing_key == K3.public
    again = pin_naming(K1, path)
    assert again.state is not None and again.state.signing_keys == (K1.public, K2.public, K3.public)
    # Credentials naming K2 keep the entry, with the chain from K2 only.
    from_k2 = pin_naming(K2, path)
    assert from_k2.state is not None and from_k2.state.signing_keys == (K2.public, K3.public)


def test_a_pin_file_chain_that_does_not_verify_is_a_credentials_error(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    accept(pin_naming(K1, path), K2, [step(K1, K2, 2)])
    document = json.loads(path.read_text())
    (entry,) = document["network"].values()
    tampered = bytearray(bytes.fromhex(entry["signing_key_history"][0]))
    tampered[-100] ^= 1
    entry["signing_key_history"] = [tampered.hex()]
    path.write_text(json.dumps(document))
    with pytest.raises(CredentialsError, match="malformed network pin"):
        pin_naming(K1, path)


def test_a_pin_file_entry_not_leading_from_the_credentials_key_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    accept(pin_naming(K2, path), K3, [step(K2, K3, 3)])
    assert pin_naming(K1, path).state is None  # K1 is not in that chain


def test_the_pin_refuses_what_does_not_chain_from_the_trusted_key() -> None:
    pin = pin_naming(K1)
    stranger = Signer(private=Ed25519PrivateKey.from_private_bytes(b"\x23" * 32))
    cases = [
        ([], K2, "no signing key history"),
        ([b"junk"], K2, "malformed"),
        ([step(K2, K3, 3)], K3, "does not start from the key you trust"),
        ([step(K1, K2, 2, network_id="other")], K2, "another network"),
        ([step(K1, K2, 2), step(stranger, K3, 3)], K3, "does not verify"),
        ([step(K1, K2, 2)], K3, "does not lead to it"),
        ([step(K1, K2, 2), step(K2, K3, 4)], K3, "does not verify"),
    ]
    for history, offered, match in cases:
        with pytest.raises(KeyChanged, match=match) as info:
            pin.check_offered(K1.network_id, offered.public, history)
        assert info.value.pinned_key_id == K1.fingerprint
        assert info.value.server_key_id == offered.fingerprint
        assert "secretariat" in str(info.value)


def test_the_pin_refuses_a_rollback_to_a_key_it_followed_away_from() -> None:
    pin = pin_naming(K1)
    accept(pin, K3, [step(K1, K2, 2), step(K2, K3, 3)])
    for older in (K1, K2):
        with pytest.raises(KeyChanged, match="rollback"):
            pin.check_offered(K1.network_id, older.public, [])
    # A server offering K2 with its history: its own history says K2 was replaced.
    fresh = pin_naming(K1)
    with pytest.raises(KeyChanged, match="rollback"):
        fresh.check_offered(K1.network_id, K2.public, [step(K1, K2, 2), step(K2, K3, 3)])
    assert signing_key_sha256(K3.public) == K3.fingerprint


def test_a_shared_pin_file_never_goes_back_to_an_older_key(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    slow = pin_naming(K1, path)
    accept(slow, K1, [])
    accept(pin_naming(K1, path), K3, [step(K1, K2, 2), step(K2, K3, 3)])
    accept(slow, K1, [])  # a process that has not followed yet writes after one that has
    assert pin_naming(K1, path).state.signing_key == K3.public  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_tree_head_saved_under_the_old_key_still_verifies_and_the_log_extends_it(
    app: FastAPI, sdk_for: SdkFactory, network: Network, clock: Any, ctx: Any, tmp_path: Path
) -> None:
    """A head the client verified and saved before the rotation was signed by the old key:
    compared under that key (from the chain followed), and the new head, signed by the new key,
    must extend it."""
    from client_sdk.transparency import TreeHeadStore, averify_log
    from server.db import transaction
    from server.transparency.sealer import seal

    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    with transaction(ctx.sessions) as session:
        seal(session, ctx)
    old_public, old_fingerprint = ctx.keys.audit_public, ctx.keys.signing_key_sha256
    store = TreeHeadStore(tmp_path / "heads.json")
    async with client_naming(app, network, clock, network.b_hr, old_fingerprint) as before:
        saved = await averify_log(before, store)
    saved.signed.verify(old_public, network_id=ctx.keys.network_id, type="tree-head")

    rotate_network_signing_key(ctx)
    async with client_naming(app, network, clock, network.b_hr, old_fingerprint) as after:
        head = await averify_log(after, store)
    assert head.size > saved.size
    head.signed.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head")
