"""The transparency log's API (docs/api.md, "Transparency log"): heads and proofs for every
signed-in principal, inclusion proofs as `services._visible` allows, entries for auditors and
admins, cosignatures from witnesses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.audit.chain import canonical_entry
from server.auth.deps import Ctx as CtxDep
from server.auth.deps import Db, require
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.transparency import services
from server.transparency.schemas import (
    ConsistencyProof,
    CosignatureIn,
    CosignatureOut,
    InclusionProof,
    LogEntries,
    LogEntry,
    SignedTreeHead,
)

router = APIRouter(prefix="/v1/transparency", tags=["transparency"])

Reader = Annotated[Caller, Depends(require(Permission.TRANSPARENCY_READ))]
Size = Annotated[int, Query(ge=0, le=2**62)]


@router.get("/sth", response_model=SignedTreeHead)
def read_sth(ctx: CtxDep, session: Db, caller: Reader) -> SignedTreeHead:
    """The newest signed tree head (when the policy names witnesses, the newest they have all
    cosigned, except to a witness), with every witness cosignature in its framing."""
    head = services.current_head(session, ctx, caller)
    return SignedTreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        issued_at=head.issued_at,
        signed=head.signed.framed().hex(),
    )


@router.get("/consistency", response_model=ConsistencyProof)
def read_consistency(session: Db, _caller: Reader, first: Size, second: Size) -> ConsistencyProof:
    """RFC 9162 consistency proof from the tree of `first` leaves to the tree of `second`."""
    proof = services.consistency(session, first, second)
    return ConsistencyProof(first=first, second=second, proof=[h.hex() for h in proof])


@router.get("/inclusion", response_model=InclusionProof)
def read_inclusion(
    session: Db,
    caller: Reader,
    tree_size: Size,
    index: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    object_sha256: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
) -> InclusionProof:
    """RFC 9162 inclusion proof of the entry at leaf `index` (or with sequence number `seq`,
    as a registration's answer names it, or of the signed object whose header has SHA-256
    `object_sha256`) in the tree of `tree_size` leaves, with the entry."""
    found = services.inclusion(
        session, caller, tree_size=tree_size, index=index, seq=seq, object_sha256=object_sha256
    )
    return InclusionProof(
        index=found.index,
        tree_size=found.tree_size,
        seq=found.seq,
        entry=found.entry.decode("ascii"),
        proof=[h.hex() for h in found.proof],
    )


@router.get("/entries", response_model=LogEntries)
def read_entries(
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.AUDIT_READ))],
    start: Size,
    end: Size,
) -> LogEntries:
    """The leaves `start <= index < end` (at most 1,000), each with its canonical entry."""
    rows = services.entries(session, start, end)
    return LogEntries(
        entries=[
            LogEntry(index=int(e.leaf_index or 0), seq=e.seq, entry=canonical_entry(e).decode())
            for e in rows
        ]
    )


@router.post("/cosignatures", response_model=CosignatureOut, status_code=201)
def post_cosignature(
    ctx: CtxDep,
    session: Db,
    _caller: Annotated[Caller, Depends(require(Permission.TRANSPARENCY_COSIGN))],
    body: CosignatureIn,
) -> CosignatureOut:
    """A witness hands in its cosignature on a tree head, filter header or key announcement
    (the framed object carrying it); it is served in the object's framing from then on."""
    object_type, digest, witnesses = services.add_cosignatures(session, ctx, body.signed)
    return CosignatureOut(object_type=object_type, object_sha256=digest, witnesses=witnesses)
