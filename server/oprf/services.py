"""The network's OPRF key at work: its signed announcement, blind evaluation for checks, direct
evaluation of registered elements, and the wrapping of stored pseudonyms.

Every element that reaches the key goes through `decode_elements` first: ristretto255 has no
small subgroup, but the identity and malformed encodings must still be refused before the key
touches them (RFC 9497 section 7.1), and refused one way, whatever the cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

from sqlalchemy import Executable, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import keyops, signed
from protocol.errors import DeserializeError
from protocol.oprf import VOPRFServer
from server.context import AppContext
from server.keys import OprfKey
from server.oprf.errors import InvalidElement, KeyMismatch
from server.oprf.models import CurrentOprfKey, OprfKeyAnnouncement

_ELEMENT_HEX = re.compile(r"[0-9a-f]{64}")


def decode_element(value: str, *, index: int) -> bytes:
    """The 32 bytes of a lower-case hex element, checked to be a valid non-identity point."""
    # The detail never echoes the value: it may be an unblinded pseudonym.
    if _ELEMENT_HEX.fullmatch(value) is None:
        raise InvalidElement("the element is not 32 bytes of lower-case hex", index=index)
    try:
        return keyops.decode_element(bytes.fromhex(value))
    except DeserializeError:
        raise InvalidElement(
            "the element is not a valid non-identity ristretto255 element", index=index
        ) from None


def decode_elements(values: Sequence[str]) -> list[bytes]:
    """Decode every element, refusing a repeat: a check or case carries distinct points, and a
    repeat is either a bug or a probe (the same point evaluated twice tells nothing new)."""
    out: list[bytes] = []
    seen: set[bytes] = set()
    for i, value in enumerate(values):
        element = decode_element(value, index=i)
        if element in seen:
            raise InvalidElement("the element repeats an earlier one", index=i)
        seen.add(element)
        out.append(element)
    return out


def require_current_key(ctx: AppContext, key_id: str, *, current: OprfKey | None = None) -> None:
    """Refuse work asked under `key_id` when `current` (default: the worker's current key) is
    another key."""
    in_force = ctx.keys.oprf_key_id if current is None else current.key_id
    if key_id != in_force:
        raise KeyMismatch(f"the current OPRF key is {in_force}; fetch GET /v1/network/keys again")


def evaluate(ctx: AppContext, elements: Sequence[bytes]) -> list[bytes]:
    """`P = skS·element` for decoded registration elements (already `HashToGroup(value)`)."""
    return [keyops.multiply(ctx.keys.oprf_secret, e) for e in elements]


def wrap(ctx: AppContext, p: bytes) -> bytes:
    """`P̂ = w·P`, the only form of a pseudonym the database holds."""
    return keyops.multiply(ctx.keys.oprf_wrap, p)


def unwrap(ctx: AppContext, p_hat: bytes) -> bytes:
    """`P = w⁻¹·P̂`, in memory only (to verify a claim)."""
    return keyops.multiply(ctx.keys.oprf_unwrap, p_hat)


KeyLock = Literal["share", "update"] | None


class KeyInForce(NamedTuple):
    seq: int
    key: OprfKey


_READ_KEY_IN_FORCE = select(CurrentOprfKey.key_seq, CurrentOprfKey.key_id).where(
    CurrentOprfKey.id == 1
)
#: Built once: every check reads the row twice, and building the statement (and its cache
#: key) each time cost more than running it.
_KEY_IN_FORCE: dict[KeyLock, Executable] = {
    None: _READ_KEY_IN_FORCE,
    "share": _READ_KEY_IN_FORCE.with_for_update(read=True),
    "update": _READ_KEY_IN_FORCE.with_for_update(),
}


def current_key(session: Session, ctx: AppContext, *, lock: KeyLock = None) -> OprfKey:
    """`key_in_force`'s key."""
    return key_in_force(session, ctx, lock=lock).key


def key_in_force(session: Session, ctx: AppContext, *, lock: KeyLock = None) -> KeyInForce:
    """Read the current-key row (optionally `FOR SHARE` or `FOR UPDATE`) and make its key the
    worker's current one, so `ctx.keys.oprf_*` is the key in force for the rest of this
    transaction. A registration or check holds the row `FOR SHARE` until it commits, so a
    rotation cannot switch keys under it (docs/protocol.md, "Key rotation").

    The first call on a fresh network (or one migrated from version 1) announces the one key
    file as key 1 and creates the row, in a savepoint, so racing workers insert it once.

    Work that uses the key after another request of the worker may have made a newer key the
    current one (a check evaluates outside its transaction) uses the key returned here, not
    `ctx.keys`.
    """
    stmt = _KEY_IN_FORCE[lock]
    # On the session's connection: every check reads this row twice, and the ORM's execution
    # path (with its autoflush) cost several times the statement. Nothing else of the
    # transaction is pending on this table: a rotation updates it with a statement of its own.
    connection = session.connection()
    row = connection.execute(stmt).first()
    if row is None:
        _announce_first_key(session, ctx)
        row = connection.execute(stmt).one()
    return KeyInForce(row.key_seq, ctx.keys.oprf_ring.set_current(row.key_seq, row.key_id))


def _announce_first_key(session: Session, ctx: AppContext) -> None:
    keys = ctx.keys
    seq, key = keys.oprf_ring.current
    try:
        with session.begin_nested():
            announce(session, ctx, seq, key, prev_key_id=None)
            session.add(CurrentOprfKey(id=1, key_seq=seq, key_id=key.key_id, switched_at=ctx.now()))
    except IntegrityError:
        pass  # another worker announced it first


def announce(
    session: Session, ctx: AppContext, key_seq: int, key: OprfKey, *, prev_key_id: str | None
) -> None:
    """Store the signed `oprf-key` announcement of `key` and log it (a transparency log entry,
    so no member can be shown a key the others are not)."""
    from server.transparency.services import log_signed_object

    row = announcement(ctx, key_seq, key, prev_key_id=prev_key_id)
    session.add(row)
    log_signed_object(session, ctx, signed.parse(row.announcement), object_id=key.key_id)


def announcement(
    ctx: AppContext, key_seq: int, key: OprfKey, *, prev_key_id: str | None
) -> OprfKeyAnnouncement:
    """The signed `oprf-key` announcement of `key`; the registration key travels inside, so one
    signature authenticates both."""
    keys = ctx.keys
    fields = {
        "type": "oprf-key",
        "network_id": keys.network_id,
        "issued_at": signed.format_time(ctx.now()),
        "key_id": key.key_id,
        "key_seq": key_seq,
        "public_key": key.public.hex(),
        "prev_key_id": prev_key_id,
        "registration_key": keys.registration_public.hex(),
    }
    return OprfKeyAnnouncement(
        key_seq=key_seq,
        key_id=key.key_id,
        public_key=key.public,
        registration_key=keys.registration_public,
        announcement=signed.sign(keys.signing_key, fields).framed(),
        created_at=ctx.now(),
    )


def announcements(session: Session, ctx: AppContext) -> list[bytes]:
    """Every signed `oprf-key` announcement, in `key_seq` order, with the witnesses'
    cosignatures when the policy names witnesses."""
    framed = [
        bytes(a)
        for a in session.scalars(
            select(OprfKeyAnnouncement.announcement).order_by(OprfKeyAnnouncement.key_seq)
        )
    ]
    if not ctx.policy.witnesses:
        return framed
    from server.transparency.services import with_cosignatures

    return [with_cosignatures(session, signed.parse(a)).framed() for a in framed]


@functools.lru_cache(maxsize=4)
def _server(secret: bytes) -> VOPRFServer:
    """One `VOPRFServer` per key for the life of the process: building one checks the key and
    derives the public key (a base-point multiplication), work a request should not repeat."""
    return VOPRFServer(secret)


def blind_evaluate(
    ctx: AppContext, blinded: Sequence[bytes], *, key: OprfKey | None = None
) -> tuple[list[bytes], bytes]:
    """VOPRF batch evaluation with one DLEQ proof for all of `blinded` (from `decode_elements`),
    under `key` (default: the worker's current key; a check names the key it read, because it
    evaluates outside its transaction, where another request may switch the current one).
    An element that is not a canonical non-identity point raises `InvalidElement` with its index
    before anything is returned: the evaluation checks each again on its own (for free: libsodium
    decodes each element in its multiplication), so nothing unchecked reaches the key."""
    secret = ctx.keys.oprf_secret if key is None else key.secret
    try:
        return _server(secret).blind_evaluate_batch(list(blinded))
    except DeserializeError as exc:
        raise InvalidElement(
            "the element is not a valid non-identity ristretto255 element",
            index=exc.index if exc.index is not None else 0,
        ) from None
