"""Rotating the network signing key on a running network: what `refcheck-server keys
rotate-signing` runs (docs/operations.md, "Key rotation calendar").

The old key signs the new one into the signing history (`server.keys.rotate_signing_key`; the
`signing-key` object of docs/protocol.md, served as `signing_key_history` with `GET
/v1/network/keys`, which SDKs pinned to the old key follow), the rotation is audited, every OPRF
key announcement is signed again under the new key, and a filter revision and a tree head are
signed with it, all in one transaction. The key file changes before that transaction commits
(the new key signs inside it), so a failure there puts the old key back
(`server.keys.restore_signing_key`): the files and the database never disagree on which key
signs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.context import AppContext
from server.db import transaction
from server.keys import KeyRotation


def rotate_network_signing_key(ctx: AppContext) -> tuple[KeyRotation, bytes]:
    """Rotate the network signing key of `ctx`'s data directory now; returns the rotation and
    the framed `signing-key` object. Running workers follow within `RECHECK_SECONDS`."""
    from protocol.signed import format_time
    from server.keys import read_signing_secret, restore_signing_key, rotate_signing_key

    key_dir = ctx.settings.server_key_dir
    old_secret = read_signing_secret(key_dir)
    rotated = False
    try:
        with transaction(ctx.sessions) as session:
            rotation, framed = rotate_signing_key(
                key_dir, issued_at=format_time(ctx.now().replace(microsecond=0))
            )
            rotated = True
            _sign_again(ctx, session, rotation, framed)
    except BaseException:
        if rotated:
            restore_signing_key(key_dir, old_secret)
            ctx.keys.signing_ring.reload()
        raise
    return rotation, framed


def _sign_again(ctx: AppContext, session: Session, rotation: KeyRotation, framed: bytes) -> None:
    """The database's part of a rotation: audited, announcements signed again, a filter
    revision and a tree head under the new key."""
    from protocol.signed import parse, sign
    from server.audit.services import record
    from server.filter.services import publish
    from server.oprf.models import OprfKeyAnnouncement
    from server.transparency.sealer import seal
    from server.transparency.services import log_signed_object

    state = ctx.keys.signing_ring.reload()
    obj = parse(framed)
    record(
        session,
        ctx,
        None,
        "key.rotate",
        object_type="signing_key",
        object_id=rotation.new_key_id,
        details={
            "key": "network-signing",
            "prev_key_id": rotation.old_key_id,
            "key_seq": obj.fields["key_seq"],
            "signed": framed.hex(),
        },
    )
    # Every announcement again under the new key: the same header bytes (so witnesses'
    # cosignatures still apply), a new signature, logged like the first.
    for row in session.scalars(select(OprfKeyAnnouncement)):
        again = sign(state.key, dict(parse(bytes(row.announcement)).fields))
        row.announcement = again.framed()
        log_signed_object(session, ctx, again, object_id=row.key_id)
    session.flush()
    publish(session, ctx)
    seal(session, ctx)
