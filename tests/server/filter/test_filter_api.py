"""`GET /v1/registry/filter` and `GET /v1/registry/fillers` as the contract specifies them: the
full and delta forms, ETag and 304, and who may read what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from protocol import entry as entry_crypto
from protocol.filter import DELTA_MAGIC, FULL_MAGIC, apply_delta, parse_delta, set_sha256
from protocol.messages import Fillers
from protocol.signed import parse
from server.cases.models import CaseStatus
from server.context import AppContext
from server.filter import services
from server.filter.models import FilterRevision
from tests.factories import AppClient, Network
from tests.server.filter.helpers import add_case, publish_every, values_of, verified_full

pytestmark = pytest.mark.anyio

FILTER = "/v1/registry/filter"
FILLERS = "/v1/registry/fillers"


async def fetch(client: AppClient, network: Network, **params: str) -> bytes:
    response = await client.get(FILTER, headers=network.a_hr.headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    return response.content


async def test_the_full_filter_verifies_with_the_signing_key_and_holds_the_set(
    client, network, session, ctx, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    body = await fetch(client, network)
    assert body.startswith(FULL_MAGIC)
    header, values = verified_full(body, ctx)
    assert values == values_of(1, kpc)
    assert header.fields["count"] == kpc


async def test_the_etag_names_key_revision_and_hash_and_if_none_match_gives_304(
    client, network, session, ctx, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    response = await client.get(FILTER, headers=network.a_hr.headers)
    header, _values = verified_full(response.content, ctx)
    fields = header.fields
    etag = f'"{fields["key_id"]}:{fields["revision"]}:{fields["sha256"]}"'
    assert response.headers["etag"] == etag
    again = await client.get(FILTER, headers={**network.a_hr.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    assert again.content == b""
    # A newer revision: the old ETag no longer matches.
    services.publish(session, ctx)
    session.commit()
    newer = await client.get(FILTER, headers={**network.a_hr.headers, "If-None-Match": etag})
    assert newer.status_code == 200
    assert newer.headers["etag"] != etag


async def test_a_delta_since_a_recent_sha256_reproduces_the_full_set(
    client, network, session, ctx, kpc
):
    withdrawn = add_case(session, ctx, network, values_of(1, kpc))
    add_case(session, ctx, network, values_of(2, kpc))
    old_header, old_values = verified_full(await fetch(client, network), ctx)
    # Several revisions later: one case withdrawn, two registered (one of them a duplicate).
    withdrawn.status = CaseStatus.WITHDRAWN
    session.commit()
    services.publish(session, ctx)
    add_case(session, ctx, network, values_of(3, kpc))
    services.publish(session, ctx)
    add_case(session, ctx, network, values_of(2, kpc))
    services.publish(session, ctx)
    session.commit()
    body = await fetch(client, network, since_sha256=old_header.fields["sha256"])
    assert body.startswith(DELTA_MAGIC)
    header, added, removed = parse_delta(body)
    header.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="filter-delta")
    updated = apply_delta(old_values, added, removed)
    assert set_sha256(updated).hex() == header.fields["sha256"]
    assert header.fields["since_sha256"] == old_header.fields["sha256"]
    assert header.fields["count"] == len(updated) == 3 * kpc
    _full_header, full_values = verified_full(await fetch(client, network), ctx)
    assert updated == full_values
    assert header.fields["revision"] == _full_header.fields["revision"]
    assert set(header.fields) == {
        "type", "network_id", "issued_at", "expires_at", "key_id", "key_seq", "revision",
        "since_sha256", "added", "removed", "count", "sha256",
    }  # fmt: skip


async def test_a_delta_never_shows_a_duplicate_registration(client, network, session, ctx, kpc):
    add_case(session, ctx, network, values_of(1, kpc))
    old_header, old_values = verified_full(await fetch(client, network), ctx)
    add_case(session, ctx, network, values_of(1, kpc))
    services.publish(session, ctx)
    session.commit()
    body = await fetch(client, network, since_sha256=old_header.fields["sha256"])
    _header, added, removed = parse_delta(body)
    # As any registration: keys_per_check new values, none of them the person's.
    assert len(added) == kpc and removed == []
    assert not set(added) & set(old_values)


async def test_an_unknown_since_sha256_gets_the_full_filter(client, network, session, ctx):
    body = await fetch(client, network, since_sha256="ab" * 32)
    assert body.startswith(FULL_MAGIC)
    verified_full(body, ctx)


async def test_a_since_sha256_older_than_a_day_gets_the_full_filter(
    client, network, session, ctx, clock, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    old_header, _values = verified_full(await fetch(client, network), ctx)
    clock.advance(hours=25)
    await network.a_hr.refresh(client)
    add_case(session, ctx, network, values_of(2, kpc))
    services.publish(session, ctx)
    session.commit()
    body = await fetch(client, network, since_sha256=old_header.fields["sha256"])
    assert body.startswith(FULL_MAGIC)


async def test_a_since_sha256_under_another_key_gets_the_full_filter(
    client, network, session, ctx, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    old_header, _values = verified_full(await fetch(client, network), ctx)
    # As if every revision so far had been published under the key before this one.
    session.execute(update(FilterRevision).values(key_seq=ctx.keys.oprf_key_seq - 1))
    add_case(session, ctx, network, values_of(2, kpc))
    services.publish(session, ctx)
    session.commit()
    body = await fetch(client, network, since_sha256=old_header.fields["sha256"])
    assert body.startswith(FULL_MAGIC)


async def test_a_malformed_since_sha256_is_refused(client, network):
    response = await client.get(
        FILTER, headers=network.a_hr.headers, params={"since_sha256": "XYZ"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_revision_published_elsewhere_is_served_from_the_next_request(
    client, network, ctx, kpc, session
):
    first = await client.get(FILTER, headers=network.a_hr.headers)
    # Another worker (or the CLI) publishes in a transaction of its own.
    add_case(session, ctx, network, values_of(1, kpc))
    with ctx.sessions() as other:
        row = services.publish(other, ctx)
        revision = row.revision
        other.commit()
    second = await client.get(FILTER, headers=network.a_hr.headers)
    assert second.headers["etag"] != first.headers["etag"]
    header, _values = verified_full(second.content, ctx)
    assert header.fields["revision"] == revision


async def test_a_due_filter_is_re_published_before_it_is_served(
    client, network, session, ctx, clock
):
    publish_every(ctx, 3600)
    first, _ = verified_full(await fetch(client, network), ctx)
    clock.advance(seconds=3599)
    await network.a_hr.refresh(client)
    assert verified_full(await fetch(client, network), ctx)[0].fields == first.fields
    clock.advance(seconds=1)
    await network.a_hr.refresh(client)
    second, _ = verified_full(await fetch(client, network), ctx)
    assert second.fields["revision"] == first.fields["revision"] + 1
    assert second.fields["prev_sha256"] == first.fields["sha256"]


async def test_checkers_and_focal_points_read_the_filter_others_do_not(client, network):
    for actor in (network.a_hr, network.b_hr, network.a_focal, network.b_focal):
        response = await client.get(FILTER, headers=actor.headers)
        assert response.status_code == 200, actor
    for actor in (network.admin, network.auditor):
        response = await client.get(FILTER, headers=actor.headers)
        assert response.status_code == 403
        assert response.json()["type"] == "urn:refcheck:problem:permission-denied"
    assert (await client.get(FILTER)).status_code == 401


async def test_only_admins_and_auditors_read_the_fillers(client, network):
    for actor in (network.admin, network.auditor):
        assert (await client.get(FILLERS, headers=actor.headers)).status_code == 200
    for actor in (network.a_hr, network.a_focal):
        response = await client.get(FILLERS, headers=actor.headers)
        assert response.status_code == 403
        assert response.json()["type"] == "urn:refcheck:problem:permission-denied"
    assert (await client.get(FILLERS)).status_code == 401


async def test_the_fillers_are_proven_and_are_exactly_what_the_filter_adds(
    client, network, session: Session, ctx: AppContext, kpc
):
    first = values_of(1, kpc)
    add_case(session, ctx, network, first)
    add_case(session, ctx, network, first[:3] + values_of(2, kpc - 3))
    add_case(session, ctx, network, values_of(3, kpc), status=CaseStatus.WITHDRAWN)
    _header, values = verified_full(await fetch(client, network), ctx)
    response = await client.get(FILLERS, headers=network.auditor.headers)
    fillers = Fillers.model_validate(response.json())
    assert fillers.live_cases == 2
    assert fillers.key_id == ctx.keys.oprf_key_id
    assert fillers.revision == _header.fields["revision"]
    assert len(values) == kpc * fillers.live_cases
    points = [bytes.fromhex(item.point) for item in fillers.items]
    assert len(points) == 3 and fillers.proof is not None
    inputs = [entry_crypto.filler_input(item.k) for item in fillers.items]
    entry_crypto.verify_evaluations(
        ctx.keys.oprf_public, inputs, points, bytes.fromhex(fillers.proof)
    )
    real = set(first) | set(values_of(2, kpc - 3))
    assert {entry_crypto.prefix(p) for p in points} == set(values) - real


async def test_no_fillers_means_no_proof(client, network, session, ctx, kpc):
    add_case(session, ctx, network, values_of(1, kpc))
    response = await client.get(FILLERS, headers=network.admin.headers)
    fillers = Fillers.model_validate(response.json())
    assert fillers.items == [] and fillers.proof is None and fillers.live_cases == 1


async def test_the_filter_header_expires_within_twice_the_interval(client, network, ctx):
    header, _ = verified_full(await fetch(client, network), ctx)
    from protocol.signed import parse_time

    lifetime = parse_time(header.fields["expires_at"]) - parse_time(header.fields["issued_at"])
    assert lifetime <= 2 * timedelta(seconds=max(ctx.policy.filter_publish_seconds, 60))
    assert parse(header.framed()).fields == header.fields
