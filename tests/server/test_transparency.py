"""The transparency log on the server: the sealer, the API, witnesses' cosignatures, and every
way an insider could tamper with the database, caught by `audit verify` (`verify_trail`).

Tampering is SQL straight on the tables, as someone with database access would do it. What the
SDK and the witness catch (a client that saw a later head) is tests/sdk/test_transparency.py.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from protocol import merkle
from protocol.signed import cosign, format_time, parse, sign
from server.audit.chain import canonical_entry
from server.audit.models import AuditEntry
from server.audit.services import record
from server.audit.verify import VerifyReport
from server.auth.permissions import Role
from server.context import AppContext
from server.transparency.models import MerkleNode, TreeHead
from server.transparency.sealer import SealerStateError, prepare_seal, seal, write_seal
from server.transparency.services import log_signed_object, with_cosignatures
from server.transparency.verify import verify_trail
from tests.factories import auth_headers, make_principal

pytestmark = pytest.mark.anyio


def _append(session: Session, ctx: AppContext, n: int, **kw) -> list[AuditEntry]:
    out = [
        record(session, ctx, None, "test.event", object_type="thing", details={"i": i}, **kw)
        for i in range(n)
    ]
    session.commit()
    return out


def _seal(session: Session, ctx: AppContext) -> TreeHead:
    head = seal(session, ctx)
    session.commit()
    assert head is not None
    return head


def _verify(session: Session, ctx: AppContext, known: list[bytes] | None = None) -> VerifyReport:
    session.expire_all()
    return verify_trail(
        session,
        ctx.keys.audit_key.public_key(),
        ctx.keys.audit_key_id,
        network_id=ctx.keys.network_id,
        known_heads=known or [],
    )


def _first(session: Session, ctx: AppContext, known: list[bytes] | None = None) -> str:
    first = _verify(session, ctx, known).first
    assert first is not None, "tampering was not detected"
    return first.message


def _sized(session: Session, ctx: AppContext) -> tuple[TreeHead, TreeHead]:
    _append(session, ctx, 5)
    older = _seal(session, ctx)
    _append(session, ctx, 4)
    newer = _seal(session, ctx)
    return older, newer


# --- the sealer -----------------------------------------------------------------------------


def test_sealed_heads_are_signed_and_each_consistent_with_the_next(session, ctx):
    heads = []
    for n in (3, 1, 6, 2):
        _append(session, ctx, n)
        heads.append(_seal(session, ctx))
    from server.transparency.tree import StoredTree

    newest = heads[-1]
    tree = StoredTree(session, newest.tree_size)
    for head in heads:
        obj = parse(head.signed)
        obj.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head")
        assert obj.fields["tree_size"] == head.tree_size
        merkle.verify_consistency(
            head.tree_size,
            newest.tree_size,
            bytes.fromhex(head.root_hash),
            bytes.fromhex(newest.root_hash),
            tree.consistency_proof(head.tree_size),
        )
    # The root is the RFC 9162 root of the entries' canonical bytes, in leaf order.
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index)).all()
    assert merkle.MemoryTree([canonical_entry(e) for e in entries]).root().hex() == (
        newest.root_hash
    )
    assert _verify(session, ctx).ok


def test_a_seal_with_nothing_new_signs_nothing(session, ctx):
    _append(session, ctx, 2)
    _seal(session, ctx)
    assert seal(session, ctx) is None


def test_the_sealer_refuses_to_build_on_a_tree_that_does_not_end_at_its_head(session, ctx):
    _older, newer = _sized(session, ctx)
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    _append(session, ctx, 1)
    with pytest.raises(SealerStateError):
        seal(session, ctx)


def test_a_seal_prepared_before_another_was_written_is_dropped_and_the_next_one_builds_on_it(
    session, ctx
):
    """`seal_once` prepares from a snapshot and writes later: a seal prepared before another
    sealer's was written must not be written over it (two heads of one size, or a fork)."""
    _append(session, ctx, 3)
    _seal(session, ctx)
    _append(session, ctx, 2)
    stale = prepare_seal(session, ctx)
    assert stale is not None
    written = _seal(session, ctx)  # another sealer, first
    assert write_seal(session, stale) is None
    session.commit()
    assert session.scalar(select(func.count()).select_from(TreeHead)) == 2
    _append(session, ctx, 1)
    assert _seal(session, ctx).tree_size == written.tree_size + 1
    assert _verify(session, ctx).ok


def test_a_prepared_seal_whose_entries_were_placed_behind_its_back_is_not_written(session, ctx):
    _append(session, ctx, 2)
    _seal(session, ctx)
    _append(session, ctx, 2)
    prepared = prepare_seal(session, ctx)
    assert prepared is not None
    # An insider (or a broken sealer) placed one of them without a head: the head still
    # matches, the tree's end does not.
    first = prepared.places[0]
    session.execute(
        update(AuditEntry).where(AuditEntry.seq == first["b_seq"]).values(leaf_index=10_000)
    )
    assert write_seal(session, prepared) is None
    assert session.scalar(select(func.count()).select_from(TreeHead)) == 1
    session.rollback()


# --- the API --------------------------------------------------------------------------------


async def test_sth_before_the_first_seal_is_a_problem_then_a_signed_head(
    network, client, session, ctx
):
    response = await client.get("/v1/transparency/sth", headers=network.a_hr.headers)
    assert response.status_code == 503
    assert response.json()["type"].endswith("log-not-started")
    head = _seal(session, ctx)
    response = await client.get("/v1/transparency/sth", headers=network.a_hr.headers)
    assert response.status_code == 200
    body = response.json()
    obj = parse(bytes.fromhex(body["signed"]))
    obj.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="tree-head")
    assert obj.fields["tree_size"] == body["tree_size"] == head.tree_size
    assert obj.fields["root_hash"] == body["root_hash"]


async def test_consistency_proof_verifies_between_two_signed_heads(network, client, session, ctx):
    older, newer = _sized(session, ctx)
    response = await client.get(
        "/v1/transparency/consistency",
        params={"first": older.tree_size, "second": newer.tree_size},
        headers=network.b_focal.headers,
    )
    assert response.status_code == 200
    proof = [bytes.fromhex(h) for h in response.json()["proof"]]
    merkle.verify_consistency(
        older.tree_size,
        newer.tree_size,
        bytes.fromhex(older.root_hash),
        bytes.fromhex(newer.root_hash),
        proof,
    )
    too_far = await client.get(
        "/v1/transparency/consistency",
        params={"first": 1, "second": newer.tree_size + 1},
        headers=network.b_focal.headers,
    )
    assert too_far.status_code == 422


async def test_inclusion_of_an_own_entry_verifies_and_a_foreign_one_is_not_found(
    network, client, session, ctx
):
    mine = record(session, ctx, None, "test.mine", details={})
    mine_row = session.get(AuditEntry, mine.seq)
    assert mine_row is not None
    mine_row.actor_org_id = network.org_a.id
    theirs = record(session, ctx, None, "test.theirs", details={})
    session.commit()
    head = _seal(session, ctx)
    params = {"seq": str(mine.seq), "tree_size": str(head.tree_size)}
    response = await client.get(
        "/v1/transparency/inclusion", params=params, headers=network.a_hr.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    entry = body["entry"].encode()
    assert json.loads(entry)["seq"] == mine.seq
    merkle.verify_inclusion(
        body["index"],
        head.tree_size,
        merkle.leaf_hash(entry),
        [bytes.fromhex(h) for h in body["proof"]],
        bytes.fromhex(head.root_hash),
    )
    foreign = {"seq": str(theirs.seq), "tree_size": str(head.tree_size)}
    for actor in (network.a_hr, network.b_hr):
        response = await client.get(
            "/v1/transparency/inclusion", params=foreign, headers=actor.headers
        )
        assert response.status_code == 404
    response = await client.get(
        "/v1/transparency/inclusion", params=foreign, headers=network.auditor.headers
    )
    assert response.status_code == 200


def _signed_filter(ctx: AppContext, revision: int = 1):
    return sign(
        ctx.keys.signing_key,
        {
            "type": "filter",
            "network_id": ctx.keys.network_id,
            "issued_at": format_time(ctx.now()),
            "revision": revision,
            "count": 0,
        },
    )


async def test_signed_objects_are_entries_every_member_can_prove(network, client, session, ctx):
    obj = _signed_filter(ctx)
    entry = log_signed_object(session, ctx, obj, object_id="1")
    session.commit()
    head = _seal(session, ctx)
    response = await client.get(
        "/v1/transparency/inclusion",
        params={"seq": str(entry.seq), "tree_size": str(head.tree_size)},
        headers=network.b_hr.headers,
    )
    assert response.status_code == 200
    logged = json.loads(response.json()["entry"])
    assert logged["details"]["sha256"] == hashlib.sha256(obj.header).hexdigest()
    assert parse(bytes.fromhex(logged["details"]["signed"])) == obj


async def test_entries_page_by_leaf_index(network, client, session, ctx):
    _append(session, ctx, 4)
    head = _seal(session, ctx)
    response = await client.get(
        "/v1/transparency/entries",
        params={"start": "0", "end": str(head.tree_size)},
        headers=network.auditor.headers,
    )
    assert response.status_code == 200
    listed = response.json()["entries"]
    assert [e["index"] for e in listed] == list(range(head.tree_size))
    tree = merkle.MemoryTree([e["entry"].encode() for e in listed])
    assert tree.root().hex() == head.root_hash


async def _witness(session, client, ctx, *, named: bool = True):
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw().hex()
    if named:
        ctx.policy = ctx.policy.model_copy(update={"witnesses": [raw]})
    principal, auth_key = make_principal(
        session, _secretariat(session), [Role.WITNESS, Role.AUDITOR], name="witness"
    )
    session.commit()
    return key, await auth_headers(client, principal, auth_key)


def _secretariat(session):
    from server.registry.models import Organisation, OrgType

    return session.scalars(
        select(Organisation).where(Organisation.org_type == OrgType.NETWORK_SECRETARIAT)
    ).first()


async def test_a_witness_cosignature_is_served_in_the_head_from_then_on(
    network, client, session, ctx
):
    key, headers = await _witness(session, client, ctx)
    head = _seal(session, ctx)
    cosigned = cosign(key, parse(head.signed))
    response = await client.post(
        "/v1/transparency/cosignatures", json={"signed": cosigned.framed().hex()}, headers=headers
    )
    assert response.status_code == 201, response.text
    served = await client.get("/v1/transparency/sth", headers=network.a_hr.headers)
    obj = parse(bytes.fromhex(served.json()["signed"]))
    obj.verify(
        ctx.keys.audit_public,
        network_id=ctx.keys.network_id,
        type="tree-head",
        witnesses=[key.public_key().public_bytes_raw()],
    )
    # Filter headers and key announcements are served through `with_cosignatures`.
    filt = _signed_filter(ctx)
    log_signed_object(session, ctx, filt)
    session.commit()
    response = await client.post(
        "/v1/transparency/cosignatures",
        json={"signed": cosign(key, filt).framed().hex()},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert with_cosignatures(session, filt).cosignatures[0][0] == (
        key.public_key().public_bytes_raw()
    )


async def test_members_are_served_the_newest_head_every_witness_cosigned_and_the_witness_the_newest(
    network, client, session, ctx
):
    """The SDK refuses a head a named witness has not cosigned: were members served the newest
    head, every session would fail from each seal until the witness's next run."""
    key, headers = await _witness(session, client, ctx)

    async def served(who) -> int:
        response = await client.get("/v1/transparency/sth", headers=who)
        if response.status_code == 503:
            assert response.json()["type"].endswith("log-not-started")
            return -1
        assert response.status_code == 200, response.text
        return int(response.json()["tree_size"])

    first = _seal(session, ctx)
    assert await served(network.a_hr.headers) == -1  # nothing cosigned yet
    assert await served(headers) == first.tree_size  # the witness sees what it must cosign
    response = await client.post(
        "/v1/transparency/cosignatures",
        json={"signed": cosign(key, parse(first.signed)).framed().hex()},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    _append(session, ctx, 3)
    newer = _seal(session, ctx)
    assert newer.tree_size > first.tree_size
    assert await served(network.a_hr.headers) == first.tree_size
    assert await served(network.auditor.headers) == first.tree_size
    assert await served(headers) == newer.tree_size
    # Without a witness named, everyone is served the newest head.
    ctx.policy = ctx.policy.model_copy(update={"witnesses": []})
    assert await served(network.a_hr.headers) == newer.tree_size


async def test_cosignatures_are_refused_unless_valid_by_a_named_witness_on_a_logged_object(
    network, client, session, ctx
):
    key, headers = await _witness(session, client, ctx)
    head = _seal(session, ctx)
    obj = parse(head.signed)
    stranger = Ed25519PrivateKey.generate()
    forged = cosign(key, obj)
    forged = type(forged)(
        forged.type,
        forged.header,
        forged.fields,
        forged.signature,
        ((forged.cosignatures[0][0], b"\x01" * 64),),
    )
    unknown = cosign(key, _signed_filter(ctx, revision=99))  # never logged
    not_ours = cosign(
        key,
        sign(
            Ed25519PrivateKey.generate(),
            {**dict(obj.fields)},
        ),
    )
    for bad in (cosign(stranger, obj), forged, unknown, not_ours):
        response = await client.post(
            "/v1/transparency/cosignatures", json={"signed": bad.framed().hex()}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("cosignature-refused")
    # Only a witness may hand one in.
    response = await client.post(
        "/v1/transparency/cosignatures",
        json={"signed": cosign(key, obj).framed().hex()},
        headers=network.auditor.headers,
    )
    assert response.status_code == 403


# --- tampering, caught by `audit verify` -----------------------------------------------------


def test_an_edited_entry_is_named(session, ctx):
    entries = _append(session, ctx, 6)
    _seal(session, ctx)
    session.execute(
        update(AuditEntry).where(AuditEntry.seq == entries[2].seq).values(details={"i": 99})
    )
    session.commit()
    message = _first(session, ctx)
    assert "altered" in message and f"entry {entries[2].seq}" in message


def test_a_deleted_entry_is_named(session, ctx):
    entries = _append(session, ctx, 6)
    _seal(session, ctx)
    row = session.get(AuditEntry, entries[2].seq)
    assert row is not None
    index = row.leaf_index
    session.execute(delete(AuditEntry).where(AuditEntry.seq == entries[2].seq))
    session.commit()
    assert f"leaf {index} removed" in _first(session, ctx)


def test_deleting_the_newest_entries_with_their_heads_is_caught_by_a_head_kept_elsewhere(
    session, ctx
):
    older, newer = _sized(session, ctx)
    kept = newer.signed  # what a witness or a member holds
    session.execute(delete(AuditEntry).where(AuditEntry.leaf_index >= older.tree_size))
    session.execute(delete(MerkleNode).where(MerkleNode.position >= older.tree_size))
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    # Nothing inside the database is left to notice: every row is beyond an insider's reach.
    assert _verify(session, ctx).ok
    message = _first(session, ctx, [kept])
    assert "removed" in message and f"covers {newer.tree_size}" in message


def test_deleting_the_newest_head_alone_is_caught(session, ctx):
    _older, newer = _sized(session, ctx)
    session.execute(delete(TreeHead).where(TreeHead.id == newer.id))
    session.commit()
    assert "no signed tree head covers them" in _first(session, ctx)


def test_deleting_a_head_in_the_middle_is_caught(session, ctx):
    older, _newer = _sized(session, ctx)
    _append(session, ctx, 1)
    _seal(session, ctx)
    session.execute(delete(TreeHead).where(TreeHead.id == older.id + 1))
    session.commit()
    assert f"tree head {older.id + 1} removed" in _first(session, ctx)


def test_a_head_re_signed_over_a_rewritten_tree_is_caught(session, ctx):
    """An insider with the key file rewrites an entry, recomputes the nodes and re-signs the
    newest head: the older heads no longer match."""
    older, newer = _sized(session, ctx)
    victim = session.scalars(select(AuditEntry).where(AuditEntry.leaf_index == 1)).one()
    victim.details = {"rewritten": True}
    session.commit()
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index)).all()
    tree = merkle.MemoryTree([canonical_entry(e) for e in entries])
    session.execute(delete(MerkleNode))
    for level, row in enumerate(tree._levels):
        for position, h in enumerate(row):
            session.add(MerkleNode(level=level, position=position, hash=h))
    forged = sign(
        ctx.keys.signing_key,
        {**dict(parse(newer.signed).fields), "root_hash": tree.root().hex()},
    )
    session.execute(
        update(TreeHead)
        .where(TreeHead.id == newer.id)
        .values(signed=forged.framed(), root_hash=tree.root().hex())
    )
    session.commit()
    message = _first(session, ctx)
    assert "rewritten" in message and f"tree head {older.id}" in message


def test_a_head_with_a_forged_signature_is_caught(session, ctx):
    _append(session, ctx, 2)
    head = _seal(session, ctx)
    obj = parse(head.signed)
    bad = type(obj)(obj.type, obj.header, obj.fields, b"\x00" * 64)
    session.execute(update(TreeHead).where(TreeHead.id == head.id).values(signed=bad.framed()))
    session.commit()
    assert "no valid signature" in _first(session, ctx)
