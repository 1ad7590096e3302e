"""A member that left the network keeps no access; a suspended one may still sign in.

Without this, a withdrawn member's staff could go on reading the applicants' details sealed to it
in earlier disclosure requests, long after its MoU ended.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from server.registry.models import OrgStatus
from tests.factories import AppClient, Network, sign_assertion, token_form

pytestmark = pytest.mark.anyio


async def _new_token(client: AppClient, actor) -> int:
    assertion = sign_assertion(actor.id, actor.key, now=client.ctx.now().timestamp())
    response = await client.post("/v1/oauth/token", data=token_form(assertion))
    return response.status_code


async def test_withdrawn_members_principals_cannot_sign_in_or_use_their_tokens(
    client: AppClient, network: Network, session: Session
) -> None:
    assert (await client.get("/v1/me", headers=network.a_focal.headers)).status_code == 200
    network.org_a.status = OrgStatus.WITHDRAWN
    session.commit()
    for actor in (network.a_focal, network.a_hr):
        refused = await client.get("/v1/disclosure-requests", headers=actor.headers)
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:refcheck:problem:invalid-token"
        assert await _new_token(client, actor) == 401
    # The other member is untouched.
    assert (await client.get("/v1/me", headers=network.b_hr.headers)).status_code == 200
    assert await _new_token(client, network.b_hr) == 200


async def test_suspended_members_principals_still_sign_in(
    client: AppClient, network: Network, session: Session
) -> None:
    network.org_a.status = OrgStatus.SUSPENDED
    session.commit()
    assert (await client.get("/v1/me", headers=network.a_focal.headers)).status_code == 200
    assert await _new_token(client, network.a_focal) == 200
