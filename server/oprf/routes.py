"""`GET /v1/network/keys`: the network signing key and every signed OPRF key announcement."""

from __future__ import annotations

from fastapi import APIRouter

from server.auth.deps import Ctx, Db
from server.db import commit_for_key_work
from server.oprf.schemas import NetworkKeys, SigningKey
from server.oprf.services import announcements, current_key

router = APIRouter(prefix="/v1/network", tags=["network"])


@router.get("/keys", response_model=NetworkKeys)
def get_keys(ctx: Ctx, session: Db) -> NetworkKeys:
    """What the SDK verifies every proof, filter and registration against. The signing key is
    trusted only when its SHA-256 equals the fingerprint in the member's credentials file.

    Served without a token: these are public keys, and a client must be able to refuse an
    impostor before it signs a token assertion for it."""
    # The first call after `init` or the version-2 migration announces the key in force.
    current_key(session, ctx)
    commit_for_key_work(session)  # a new announcement is in the log before anyone reads it
    return NetworkKeys(
        network_id=ctx.keys.network_id,
        signing_key=SigningKey(
            key_id=ctx.keys.audit_key_id, public_key=ctx.keys.audit_public.hex()
        ),
        oprf_keys=[a.hex() for a in announcements(session, ctx)],
        signing_key_history=[h.hex() for h in ctx.keys.signing_history],
    )
