"""The transparency log's services: signed heads with their cosignatures, proofs, entries,
witnesses' cosignatures, and signed objects (filter headers, key announcements) as entries.

Hooks for other domains:

* `log_signed_object(session, ctx, obj)` records a signed object's bytes as an audit entry (so
  it becomes a leaf), in the caller's transaction. Call it wherever a `filter` header or an
  `oprf-key` announcement is signed and stored.
* `with_cosignatures(session, obj)` returns `obj` with every stored witness cosignature in its
  framing: call it wherever such an object is served.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.errors import ProtocolError
from protocol.signed import SignedObject, parse
from server.audit.chain import canonical_entry
from server.audit.models import AuditEntry
from server.audit.services import record
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.context import AppContext
from server.transparency.errors import (
    CosignatureRefused,
    EntryNotInLog,
    LogNotStarted,
    TreeSizeUnavailable,
)
from server.transparency.models import Cosignature, TreeHead
from server.transparency.sealer import latest_head
from server.transparency.tree import StoredTree

#: The audit action of a signed object recorded in the log; its details hold the object.
SIGNED_OBJECT_ACTION = "log.signed_object"
#: Signed object types that are log entries (tree heads are the log's own).
LOGGED_TYPES = frozenset({"filter", "oprf-key"})
COSIGNED_TYPES = LOGGED_TYPES | {"tree-head"}
#: Largest page of `GET /v1/transparency/entries`.
MAX_ENTRIES = 1000


def object_sha256(obj: SignedObject) -> str:
    """What names a signed object: the SHA-256 of its header bytes (the signature is over them)."""
    return hashlib.sha256(obj.header).hexdigest()


def _bare(obj: SignedObject) -> SignedObject:
    return SignedObject(obj.type, obj.header, obj.fields, obj.signature)


def log_signed_object(
    session: Session, ctx: AppContext, obj: SignedObject, *, object_id: str | None = None
) -> AuditEntry:
    """Record `obj` (without cosignatures) as a log entry in the caller's transaction.

    The entry's details are `{"sha256": <header's SHA-256>, "signed": <framed bytes, hex>}`: a
    witness reading the entries finds the object itself, and a client holding it finds its
    leaf. `object_id` may name the object's row (a key id, a revision).
    """
    if obj.type not in LOGGED_TYPES:
        raise ValueError(f"{obj.type} objects are not log entries")
    return record(
        session,
        ctx,
        None,
        SIGNED_OBJECT_ACTION,
        object_type=obj.type,
        object_id=object_id,
        details={"sha256": object_sha256(obj), "signed": _bare(obj).framed().hex()},
    )


def with_cosignatures(session: Session, obj: SignedObject) -> SignedObject:
    """`obj` with every stored witness cosignature added (ones it already carries kept)."""
    rows = session.scalars(
        select(Cosignature)
        .where(Cosignature.object_sha256 == object_sha256(obj))
        .order_by(Cosignature.witness_key)
    )
    have = {key for key, _ in obj.cosignatures}
    extra = [
        (bytes.fromhex(row.witness_key), bytes.fromhex(row.signature))
        for row in rows
        if bytes.fromhex(row.witness_key) not in have
    ]
    if not extra:
        return obj
    return SignedObject(
        obj.type, obj.header, obj.fields, obj.signature, (*obj.cosignatures, *extra)
    )


# --- heads and proofs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    tree_size: int
    root_hash: str
    issued_at: str
    signed: SignedObject


#: How many heads back a member's `GET /v1/transparency/sth` looks for one every witness
#: cosigned (the sealer signs at most one a second; a witness further behind is not witnessing).
WITNESS_LAG_HEADS = 10_000


def current_head(session: Session, ctx: AppContext, caller: Caller) -> Head:
    """The head a caller is served: the newest, to a witness (it cosigns what it is shown);
    to everyone else, when the policy names witnesses, the newest that every one of them has
    cosigned, since the SDK refuses any other (a fresh head would be refused from each seal
    until the witness's next run)."""
    witnesses = frozenset(ctx.policy.witnesses)
    if not witnesses or caller.has(Permission.TRANSPARENCY_COSIGN):
        head = latest_head(session)
        if head is None:
            raise LogNotStarted("the log has no signed tree head yet; try again in a moment")
        return _head(session, head)
    heads = session.scalars(select(TreeHead).order_by(TreeHead.id.desc()).limit(WITNESS_LAG_HEADS))
    for head in heads:
        obj = parse(head.signed)
        cosigned = session.scalars(
            select(Cosignature.witness_key).where(
                Cosignature.object_sha256 == object_sha256(obj),
                Cosignature.witness_key.in_(witnesses),
            )
        )
        if witnesses <= set(cosigned):
            return _head(session, head)
    raise LogNotStarted(
        "no signed tree head is cosigned by every witness the policy names yet; try again "
        "after the witness's next run"
    )


def _head(session: Session, head: TreeHead) -> Head:
    obj = with_cosignatures(session, parse(head.signed))
    return Head(head.tree_size, head.root_hash, str(obj.fields["issued_at"]), obj)


def _signed_size(session: Session) -> int:
    head = latest_head(session)
    return 0 if head is None else head.tree_size


def consistency(session: Session, first: int, second: int) -> list[bytes]:
    """RFC 9162 consistency proof between two tree sizes, both at most the newest head's."""
    if not 0 <= first <= second or second > _signed_size(session):
        raise TreeSizeUnavailable("need 0 <= first <= second <= the newest signed tree size")
    return StoredTree(session, second).consistency_proof(first)


def _visible(entry: AuditEntry, caller: Caller) -> bool:
    """Inclusion proofs: auditors and admins for any entry; everyone for signed objects; a
    member for entries about its own organisation (its own actions, or changes to it)."""
    if caller.has(Permission.AUDIT_READ):
        return True
    if entry.action == SIGNED_OBJECT_ACTION:
        return True
    if entry.actor_org_id == caller.org_id:
        return True
    return entry.object_type == "organisation" and entry.object_id == caller.org_id


@dataclass(frozen=True)
class Inclusion:
    index: int
    tree_size: int
    seq: int
    entry: bytes
    proof: list[bytes]


def inclusion(
    session: Session,
    caller: Caller,
    *,
    tree_size: int,
    index: int | None = None,
    seq: int | None = None,
    object_sha256: str | None = None,
) -> Inclusion:
    """The proof that the entry at leaf `index` (or with sequence number `seq`, or the signed
    object whose header has SHA-256 `object_sha256`) is in the tree of `tree_size` leaves."""
    if sum(x is not None for x in (index, seq, object_sha256)) != 1:
        raise TreeSizeUnavailable("name exactly one of index, seq and object_sha256")
    if not 0 < tree_size <= _signed_size(session):
        raise TreeSizeUnavailable("tree_size must be a signed tree size")
    query = select(AuditEntry)
    if index is not None:
        query = query.where(AuditEntry.leaf_index == index)
    elif seq is not None:
        query = query.where(AuditEntry.seq == seq)
    else:
        query = (
            query.where(
                AuditEntry.action == SIGNED_OBJECT_ACTION,
                AuditEntry.details["sha256"].as_string() == object_sha256,
            )
            .order_by(AuditEntry.seq)
            .limit(1)
        )
    entry = session.scalars(query).first()
    if entry is None or not _visible(entry, caller):
        raise EntryNotInLog("no such entry in the log")
    if entry.leaf_index is None:
        raise EntryNotInLog("the entry is not sealed yet; ask again after the next tree head")
    if entry.leaf_index >= tree_size:
        raise TreeSizeUnavailable("the entry is not in a tree of that size")
    proof = StoredTree(session, tree_size).inclusion_proof(entry.leaf_index)
    return Inclusion(entry.leaf_index, tree_size, entry.seq, canonical_entry(entry), proof)


def entries(session: Session, start: int, end: int) -> list[AuditEntry]:
    """Sealed entries with `start <= leaf_index < end`, at most `MAX_ENTRIES`, in order."""
    if not 0 <= start <= end or end > _signed_size(session):
        raise TreeSizeUnavailable("need 0 <= start <= end <= the newest signed tree size")
    end = min(end, start + MAX_ENTRIES)
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.leaf_index >= start, AuditEntry.leaf_index < end)
            .order_by(AuditEntry.leaf_index)
        )
    )


# --- cosignatures ---------------------------------------------------------------------------


def _known(session: Session, obj: SignedObject) -> bool:
    """Whether this log signed `obj`: a stored tree head, or a signed object among the entries."""
    if obj.type == "tree-head":
        size = obj.fields.get("tree_size")
        if not isinstance(size, int):
            return False
        head = session.scalars(select(TreeHead).where(TreeHead.tree_size == size)).first()
        return head is not None and parse(head.signed).header == obj.header
    digest = object_sha256(obj)
    rows = session.scalars(
        select(AuditEntry.details).where(
            AuditEntry.action == SIGNED_OBJECT_ACTION, AuditEntry.object_type == obj.type
        )
    )
    return any(isinstance(d, dict) and d.get("sha256") == digest for d in rows)


def add_cosignatures(
    session: Session, ctx: AppContext, signed_hex: str
) -> tuple[str, str, list[str]]:
    """Store the cosignatures on a signed object of this log from witnesses the policy names.

    Returns `(type, object_sha256, witness keys stored)`. Refused when the object is not this
    network's (signature, network id), not one the log holds, or carries no valid cosignature
    of a named witness: a stolen witness credential alone cannot add anything.
    """
    try:
        obj = parse(bytes.fromhex(signed_hex))
    except (ValueError, ProtocolError):
        raise CosignatureRefused("not a framed signed object") from None
    if obj.type not in COSIGNED_TYPES:
        raise CosignatureRefused("objects of this type are not cosigned")
    try:
        obj.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type=obj.type)
    except ProtocolError:
        raise CosignatureRefused("the object is not signed by this network's key") from None
    if not _known(session, obj):
        raise CosignatureRefused("the log holds no such object")
    allowed = set(ctx.policy.witnesses)
    digest = object_sha256(obj)
    stored: list[str] = []
    for key, signature in obj.cosignatures:
        if key.hex() not in allowed:
            continue
        try:
            obj.verify(
                ctx.keys.audit_public,
                network_id=ctx.keys.network_id,
                type=obj.type,
                witnesses=(key,),
            )
        except ProtocolError:
            continue
        if session.get(Cosignature, (digest, key.hex())) is None:
            session.add(
                Cosignature(
                    object_sha256=digest,
                    witness_key=key.hex(),
                    object_type=obj.type,
                    signature=signature.hex(),
                    created_at=ctx.now(),
                )
            )
        stored.append(key.hex())
    if not stored:
        raise CosignatureRefused("no valid cosignature of a witness the policy names")
    session.flush()
    return obj.type, digest, stored
