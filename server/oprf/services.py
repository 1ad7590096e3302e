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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import signed
from protocol.errors import DeserializeError
from protocol.hazmat.ristretto255 import deserialize_element, scalar_mult
from protocol.oprf import VOPRFServer
from server.context import AppContext
from server.oprf.errors import InvalidElement, KeyMismatch
from server.oprf.models import OprfKeyAnnouncement

_ELEMENT_HEX = re.compile(r"[0-9a-f]{64}")


def decode_element(value: str, *, index: int) -> bytes:
    """The 32 bytes of a lower-case hex element, checked to be a valid non-identity point."""
    # The detail never echoes the value: it may be an unblinded pseudonym.
    if _ELEMENT_HEX.fullmatch(value) is None:
        raise InvalidElement("the element is not 32 bytes of lower-case hex", index=index)
    try:
        return deserialize_element(bytes.fromhex(value))
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


def require_current_key(ctx: AppContext, key_id: str) -> None:
    if key_id != ctx.keys.oprf_key_id:
        raise KeyMismatch(
            f"the current OPRF key is {ctx.keys.oprf_key_id}; fetch GET /v1/network/keys again"
        )


def evaluate(ctx: AppContext, elements: Sequence[bytes]) -> list[bytes]:
    """`P = skS·element` for decoded registration elements (already `HashToGroup(value)`)."""
    return [scalar_mult(ctx.keys.oprf_secret, e) for e in elements]


def wrap(ctx: AppContext, p: bytes) -> bytes:
    """`P̂ = w·P`, the only form of a pseudonym the database holds."""
    return scalar_mult(ctx.keys.oprf_wrap, p)


def unwrap(ctx: AppContext, p_hat: bytes) -> bytes:
    """`P = w⁻¹·P̂`, in memory only (to verify a claim)."""
    return scalar_mult(ctx.keys.oprf_unwrap, p_hat)


def announcement_fields(ctx: AppContext, *, prev_key_id: str | None) -> dict[str, object]:
    keys = ctx.keys
    return {
        "type": "oprf-key",
        "network_id": keys.network_id,
        "issued_at": signed.format_time(ctx.now()),
        "key_id": keys.oprf_key_id,
        "key_seq": keys.oprf_key_seq,
        "public_key": keys.oprf_public.hex(),
        "prev_key_id": prev_key_id,
        "registration_key": keys.registration_public.hex(),
    }


def ensure_announcement(session: Session, ctx: AppContext) -> None:
    """Record the signed announcement of the key in force if none exists yet (first start, or
    a database migrated from version 1), and commit. Several workers may race here: the
    primary key lets exactly one insert win."""
    keys = ctx.keys
    existing = session.get(OprfKeyAnnouncement, keys.oprf_key_seq)
    if existing is not None:
        if existing.key_id != keys.oprf_key_id:
            raise RuntimeError("the OPRF key file does not match the announced key of its key_seq")
        return
    previous = session.scalars(
        select(OprfKeyAnnouncement.key_id).where(
            OprfKeyAnnouncement.key_seq == keys.oprf_key_seq - 1
        )
    ).first()
    obj = signed.sign(keys.signing_key, announcement_fields(ctx, prev_key_id=previous))
    session.add(
        OprfKeyAnnouncement(
            key_seq=keys.oprf_key_seq,
            key_id=keys.oprf_key_id,
            public_key=keys.oprf_public,
            registration_key=keys.registration_public,
            announcement=obj.framed(),
            created_at=ctx.now(),
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def announcements(session: Session) -> list[bytes]:
    """Every signed `oprf-key` announcement, in `key_seq` order."""
    return [
        bytes(a)
        for a in session.scalars(
            select(OprfKeyAnnouncement.announcement).order_by(OprfKeyAnnouncement.key_seq)
        )
    ]


@functools.lru_cache(maxsize=4)
def _server(secret: bytes) -> VOPRFServer:
    """One `VOPRFServer` per key for the life of the process: building one checks the key and
    derives the public key (a base-point multiplication), work a request should not repeat."""
    return VOPRFServer(secret)


def blind_evaluate(ctx: AppContext, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """VOPRF batch evaluation with one DLEQ proof for all of `blinded` (from `decode_elements`).
    An element that is not a canonical non-identity point raises `InvalidElement` with its index
    before anything is returned: the evaluation checks each again on its own (for free: libsodium
    decodes each element in its multiplication), so nothing unchecked reaches the key."""
    try:
        return _server(ctx.keys.oprf_secret).blind_evaluate_batch(list(blinded))
    except DeserializeError as exc:
        raise InvalidElement(
            "the element is not a valid non-identity ristretto255 element",
            index=exc.index if exc.index is not None else 0,
        ) from None
