"""The SDK's view of the transparency log: a head it verified, then the server's later answers.
A log that shrank, was rewritten, or is shown to this client as a fork raises LogInconsistent."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from client_sdk import Client, Credentials, LogInconsistent
from client_sdk.errors import SignatureInvalid
from client_sdk.transparency import (
    TreeHeadStore,
    averify_log,
    averify_registration_logged,
    averify_signed_object_logged,
    tree_head_file,
)
from client_sdk.witness import WitnessReport, WitnessState, witness_once
from protocol import filter as filter_codec
from protocol import merkle
from protocol.oprf import MODE_VOPRF, generate_key_pair
from protocol.signed import SignedObject, format_time, parse, sign
from server.audit.chain import canonical_entry
from server.audit.models import AuditEntry
from server.audit.services import record
from server.auth.permissions import Role
from server.transparency.models import MerkleNode, TreeHead
from server.transparency.sealer import seal
from server.transparency.services import log_signed_object, with_cosignatures
from tests.factories import Actor, make_principal
from tests.sdk.conftest import Counting, Tamper, TamperBody, credentials_for, flip_bit
from tests.sdk.test_client_app import case_fields
from tests.server.blindmatch.people import REGISTERED
from tests.server.test_transparency import _signed_filter

pytestmark = pytest.mark.anyio


def _grow(session, ctx, n: int) -> TreeHead:
    for i in range(n):
        record(session, ctx, None, "test.event", details={"i": i})
    session.commit()
    head = seal(session, ctx)
    session.commit()
    assert head is not None
    return head


async def test_a_growing_log_verifies_and_the_newest_head_is_kept(
    sdk_for, network, session, ctx, tmp_path
):
    store = TreeHeadStore(tmp_path / "heads.json")
    sdk = sdk_for(network.a_hr)
    first = _grow(session, ctx, 3)
    assert (await averify_log(sdk, store)).size == first.tree_size
    second = _grow(session, ctx, 4)
    assert (await averify_log(sdk, store)).size == second.tree_size
    assert (tmp_path / "heads.json").stat().st_mode & 0o077 == 0


async def test_deleting_the_newest_entries_with_their_head_is_caught(
    sdk_for, network, session, ctx
):
    store = TreeHeadStore()
    sdk = sdk_for(network.a_hr)
    older = _grow(session, ctx, 3)
    newer = _grow(session, ctx, 3)
    await averify_log(sdk, store)
    session.execute(delete(AuditEntry).where(AuditEntry.leaf_index >= older.tree_size))
    session.execute(delete(MerkleNode).where(MerkleNode.position >= older.tree_size))
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    with pytest.raises(LogInconsistent) as caught:
        await averify_log(sdk, store)
    assert (caught.value.first_size, caught.value.second_size) == (newer.tree_size, older.tree_size)
    assert "secretariat" in str(caught.value)


async def test_a_forked_log_is_caught(sdk_for, network, session, ctx):
    """The server shows this client a head, then rewrites an entry under it and re-signs
    (a split view, or an insider with the key file)."""
    store = TreeHeadStore()
    sdk = sdk_for(network.a_hr)
    seen = _grow(session, ctx, 5)
    await averify_log(sdk, store)
    victim = session.scalars(select(AuditEntry).where(AuditEntry.leaf_index == 1)).one()
    victim.details = {"rewritten": True}
    session.execute(delete(MerkleNode))
    session.execute(delete(TreeHead))
    session.execute(update(AuditEntry).values(leaf_index=None))
    session.commit()
    _grow(session, ctx, 2)
    with pytest.raises(LogInconsistent) as caught:
        await averify_log(sdk, store)
    assert caught.value.first_size == seen.tree_size


async def test_a_logged_filter_header_is_proven_included(sdk_for, network, session, ctx):
    obj = _signed_filter(ctx)
    log_signed_object(session, ctx, obj)
    session.commit()
    _grow(session, ctx, 1)
    sdk = sdk_for(network.b_hr)
    head = await averify_log(sdk, TreeHeadStore())
    assert await averify_signed_object_logged(sdk, head, obj) >= 0
    with pytest.raises(LogInconsistent):
        await averify_signed_object_logged(sdk, head, _signed_filter(ctx, revision=7))


# --- the check at the start of every session of a client with a pin file ---------------------

STH = ("GET", "/v1/transparency/sth")
CONSISTENCY = ("GET", "/v1/transparency/consistency")


def _kept_size(pins: Path, server: str) -> int | None:
    framed = TreeHeadStore(tree_head_file(pins)).load(server)
    return None if framed is None else int(parse(framed).fields["tree_size"])


async def test_a_session_verifies_the_log_once_with_one_head_and_one_consistency_proof(
    app, sdk_for, network, session, ctx, tmp_path
):
    pins = tmp_path / "org-a-hr.pins.json"
    first = _grow(session, ctx, 3)
    counting = Counting(httpx.ASGITransport(app=app))
    sdk = sdk_for(network.a_hr, pin_file=pins, transport=counting)
    await sdk.me()
    await sdk.policy()
    assert sdk.tree_head is not None and sdk.tree_head.size == first.tree_size
    assert (counting.calls[STH], counting.calls[CONSISTENCY]) == (1, 0)
    # Kept where `refcheck transparency verify` keeps it, readable by its owner only.
    assert tree_head_file(pins) == tmp_path / "org-a-hr.treehead.json"
    assert tree_head_file(pins).stat().st_mode & 0o077 == 0
    assert _kept_size(pins, sdk.base_url) == first.tree_size

    second = _grow(session, ctx, 4)
    counting = Counting(httpx.ASGITransport(app=app))
    later = sdk_for(network.a_hr, pin_file=pins, transport=counting)
    await later.me()
    await later.me()
    assert later.tree_head is not None and later.tree_head.size == second.tree_size
    assert (counting.calls[STH], counting.calls[CONSISTENCY]) == (1, 1)
    assert _kept_size(pins, later.base_url) == second.tree_size


async def test_a_client_without_a_pin_file_keeps_no_head_and_asks_for_none(
    app, sdk_for, network, session, ctx
):
    _grow(session, ctx, 2)
    counting = Counting(httpx.ASGITransport(app=app))
    sdk = sdk_for(network.a_hr, transport=counting)
    await sdk.me()
    assert sdk.tree_head is None and counting.calls[STH] == 0


async def test_a_session_refuses_a_log_whose_newest_entries_went_with_their_heads(
    sdk_for, network, session, ctx, tmp_path
):
    pins = tmp_path / "pins.json"
    older = _grow(session, ctx, 3)
    newer = _grow(session, ctx, 3)
    await sdk_for(network.a_hr, pin_file=pins).me()
    session.execute(delete(AuditEntry).where(AuditEntry.leaf_index >= older.tree_size))
    session.execute(delete(MerkleNode).where(MerkleNode.position >= older.tree_size))
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    victim = sdk_for(network.a_hr, pin_file=pins)
    with pytest.raises(LogInconsistent) as caught:
        await victim.me()
    assert (caught.value.first_size, caught.value.second_size) == (newer.tree_size, older.tree_size)
    assert f"trusted tree size {newer.tree_size}, offered {older.tree_size}" in str(caught.value)
    # Nothing goes on in that session, and the evidence (the larger head) is kept.
    with pytest.raises(LogInconsistent):
        await victim.policy()
    assert _kept_size(pins, victim.base_url) == newer.tree_size


async def test_a_session_refuses_a_log_that_vanished_after_it_verified_a_head(
    sdk_for, network, session, ctx, tmp_path
):
    pins = tmp_path / "pins.json"
    seen = _grow(session, ctx, 2)
    await sdk_for(network.a_hr, pin_file=pins).me()
    session.execute(delete(TreeHead))
    session.commit()
    with pytest.raises(LogInconsistent) as caught:
        await sdk_for(network.a_hr, pin_file=pins).me()
    assert (caught.value.first_size, caught.value.second_size) == (seen.tree_size, 0)


async def test_a_session_before_the_first_signed_head_goes_on_and_keeps_none(
    sdk_for, network, session, tmp_path
):
    assert session.scalars(select(TreeHead)).first() is None
    pins = tmp_path / "pins.json"
    sdk = sdk_for(network.a_hr, pin_file=pins)
    assert (await sdk.me())["principal_id"] == network.a_hr.id
    assert sdk.tree_head is None and _kept_size(pins, sdk.base_url) is None


# --- a registration's log entry ---------------------------------------------------------------


async def test_a_registration_answers_its_log_entry_and_its_inclusion_is_proven(
    sdk_for, network, session, ctx, clock
):
    focal = sdk_for(network.a_focal)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    assert registration.log_seq is not None
    logged = session.get(AuditEntry, registration.log_seq)
    assert logged is not None
    assert (logged.action, logged.object_id) == ("case.register", registration.case_id)
    _grow(session, ctx, 2)  # sealed into a head, with entries after it
    head = await averify_log(focal, TreeHeadStore())
    index = await averify_registration_logged(focal, head, registration)
    session.expire_all()
    assert session.get(AuditEntry, registration.log_seq).leaf_index == index < head.size


async def test_a_server_proving_another_entry_for_a_registration_is_caught(
    app, sdk_for, network, session, ctx, clock
):
    focal = sdk_for(network.a_focal)
    registration = await focal.register_case(REGISTERED, case_fields(clock.today()))
    other = await focal.register_case(
        {**REGISTERED, "national_id": "3201234567890999"}, case_fields(clock.today())
    )
    _grow(session, ctx, 1)
    head = await averify_log(focal, TreeHeadStore())

    def swap_entry(body: dict) -> None:
        body["entry"] = body["entry"].replace(registration.case_id, other.case_id)

    def bend_proof(body: dict) -> None:
        body["proof"][0] = flip_bit(body["proof"][0])

    for edit in (swap_entry, bend_proof):
        tamper = Tamper(httpx.ASGITransport(app=app), path="/v1/transparency/inclusion", edit=edit)
        with pytest.raises(LogInconsistent, match=registration.case_id):
            await averify_registration_logged(
                sdk_for(network.a_focal, transport=tamper), head, registration
            )


# --- a split view, signed with the network's real key -----------------------------------------


def _named_witness(session, ctx, network) -> tuple[Ed25519PrivateKey, Credentials]:
    key = Ed25519PrivateKey.generate()
    ctx.policy = ctx.policy.model_copy(
        update={"witnesses": [key.public_key().public_bytes_raw().hex()]}
    )
    principal, auth_key = make_principal(
        session, network.secretariat, [Role.WITNESS, Role.AUDITOR], name="witness"
    )
    session.commit()
    actor = Actor(principal, auth_key, network.secretariat, {})
    return key, credentials_for(actor, server_keys=ctx.keys)


class _SyncOverApp(httpx.BaseTransport):
    """The sync client's transport into the in-process app: each request is handed to the
    test's event loop (the witness runs in a worker thread meanwhile)."""

    def __init__(self, app) -> None:
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.from_thread.run(send)


async def _witness_run(
    app, credentials: Credentials, key: Ed25519PrivateKey, state: WitnessState | None = None
) -> WitnessReport:
    """`refcheck-witness`'s run (the sync client) against the same app."""

    def run() -> WitnessReport:
        with Client(credentials, transport=_SyncOverApp(app)) as client:
            return witness_once(client, key, WitnessState() if state is None else state)

    return await anyio.to_thread.run_sync(run)


def _forged_head(ctx, session) -> SignedObject:
    """A tree head the network key signs over another tree of the same size: the log with its
    newest entry replaced, as shown to one member only."""
    entries = [
        canonical_entry(e)
        for e in session.scalars(
            select(AuditEntry)
            .where(AuditEntry.leaf_index.is_not(None))
            .order_by(AuditEntry.leaf_index)
        )
    ]
    entries[-1] = entries[-1].replace(b'"action":"', b'"action":"x')
    return sign(
        ctx.keys.signing_key,
        {
            "type": "tree-head",
            "network_id": ctx.keys.network_id,
            "issued_at": format_time(ctx.now()),
            "tree_size": len(entries),
            "root_hash": merkle.MemoryTree(entries).root().hex(),
        },
    )


def _filter_without(ctx, values_to_drop: tuple[int, ...]):
    """An edit of the served filter body: the same revision without one case's values, its
    header signed by the network key (no witness saw it)."""

    def edit(body: bytes) -> bytes:
        header, values = filter_codec.parse_full(body)
        kept = sorted(set(values) - set(values_to_drop))
        fields = dict(header.fields) | {
            "count": len(kept),
            "p": filter_codec.rice_parameter(len(kept)),
            "sha256": filter_codec.set_sha256(kept).hex(),
        }
        return filter_codec.full_body(sign(ctx.keys.signing_key, fields), kept)

    return edit


def _other_key_announced(ctx):
    """An edit of `GET /v1/network/keys`: the newest OPRF key announcement swapped for one of
    another key (which the server could evaluate one member's checks under), signed by the
    network key, not seen by the witness."""

    def edit(body: dict) -> None:
        announced = parse(bytes.fromhex(body["oprf_keys"][-1]))
        _secret, public = generate_key_pair(MODE_VOPRF)
        fields = dict(announced.fields) | {"public_key": public.hex()}
        body["oprf_keys"][-1] = sign(ctx.keys.signing_key, fields).framed().hex()

    return edit


async def test_a_split_view_signed_with_the_network_key_is_refused_without_the_witness(
    app, sdk_for, network, session, ctx, clock, tmp_path
):
    registration = await sdk_for(network.a_focal).register_case(
        REGISTERED, case_fields(clock.today())
    )
    key, witness = _named_witness(session, ctx, network)
    head = _grow(session, ctx, 1)
    report = await _witness_run(app, witness, key)
    assert f"tree-head {head.tree_size}" in report.cosigned and not report.refused
    assert any(c.startswith("filter ") for c in report.cosigned)
    assert any(c.startswith("oprf-key ") for c in report.cosigned)

    # What the witness saw, every member accepts: the head, the key and the filter it cosigned.
    honest = sdk_for(network.b_hr, pin_file=tmp_path / "honest.pins.json")
    served = await honest.registry_filter()
    assert all(value in served for value in registration.filter_values)
    assert honest.tree_head is not None and honest.tree_head.size == head.tree_size

    # One member is shown another view, signed with the network's real key: refused each time.
    forged = _forged_head(ctx, session)
    forged.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head")
    views = {
        "tree head": Tamper(
            httpx.ASGITransport(app=app),
            path="/v1/transparency/sth",
            edit=lambda body: body.update(signed=forged.framed().hex()),
        ),
        "filter": TamperBody(
            httpx.ASGITransport(app=app),
            path="/v1/registry/filter",
            edit=_filter_without(ctx, registration.filter_values),
        ),
        "key announcement": Tamper(
            httpx.ASGITransport(app=app), path="/v1/network/keys", edit=_other_key_announced(ctx)
        ),
    }
    for name, transport in views.items():
        member = sdk_for(network.b_hr, pin_file=tmp_path / f"{name}.pins.json", transport=transport)
        with pytest.raises(SignatureInvalid) as caught:
            await member.registry_filter()
        assert "cosign" in str(caught.value) or "witness" in str(caught.value), (name, caught.value)

    # Without a witness named, the forged head alone would pass a first look (it is signed with
    # the network key): the witness's cosignature is what refuses it.
    ctx.policy = ctx.policy.model_copy(update={"witnesses": []})
    unwitnessed = sdk_for(
        network.b_hr, pin_file=tmp_path / "unwitnessed.pins.json", transport=views["tree head"]
    )
    await unwitnessed.me()
    assert unwitnessed.tree_head is not None and unwitnessed.tree_head.root != head.root_hash


async def test_the_witness_refuses_a_filter_whose_count_is_not_keys_per_check_per_live_case(
    app, sdk_for, network, session, ctx, clock
):
    await sdk_for(network.a_focal).register_case(REGISTERED, case_fields(clock.today()))
    key, witness = _named_witness(session, ctx, network)
    short = _signed_filter(ctx, revision=99)  # count 0 with one live case in the log
    log_signed_object(session, ctx, short, object_id="99")
    session.commit()
    _grow(session, ctx, 1)
    report = await _witness_run(app, witness, key)
    assert report.refused == ["filter revision 99: count 0 is not keys_per_check × 1 live cases"]
    assert "filter 99" not in report.cosigned
    assert with_cosignatures(session, short).cosignatures == ()
    # The filter the registration published (its count right) was cosigned.
    assert any(c.startswith("filter ") for c in report.cosigned)
