"""OPRF key rotation (docs/protocol.md, "Key rotation"): end to end, in-flight checks, crash
safety between every two steps, and what the server keeps of the old key.

Each test has a data directory of its own, because a rotation writes key files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from protocol.entry import prefix, tag
from protocol.identity import derive_keys
from server.app import create_app
from server.cases.models import Pseudonym
from server.checks.models import Check
from server.consents.models import Consent
from server.context import AppContext
from server.keys import create_keys, oprf_key_file
from server.oprf.models import CurrentOprfKey, OprfKeyAnnouncement
from server.oprf.rotation import STEPS, SimulatedCrash, prune_retired_keys, rotate
from server.settings import Settings
from tests.blindflow import (
    build_check_request,
    check_person,
    claim_hits,
    fetch_filter,
    fetch_key,
    record_consent,
    register_person,
)
from tests.factories import AppClient, Network
from tests.server.blindmatch.people import OTHER, REGISTERED

pytestmark = pytest.mark.anyio


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A data directory of this test's own (overrides the session's shared one)."""
    create_keys(tmp_path / "server")
    return tmp_path


def _key_files(settings: Settings) -> set[str]:
    return {p.name for p in settings.server_key_dir.glob("oprf-*.key*")}


async def _registered(client: AppClient, network: Network, clock: Any) -> dict[str, Any]:
    return await register_person(client, network.a_focal.headers, REGISTERED, today=clock.today())


async def _matches(client: AppClient, network: Network, clock: Any) -> set[str]:
    consent = await record_consent(client, network.b_hr.headers, now=clock())
    outcome = await check_person(client, network.b_hr.headers, consent["id"], REGISTERED)
    assert outcome.response.status_code == 200, outcome.response.text
    return outcome.case_ids


async def test_a_rotated_key_keeps_every_registration_matching_under_a_new_key_and_filter(
    client: AppClient, network: Network, clock: Any, ctx: AppContext, session: Session
) -> None:
    case = await _registered(client, network, clock)
    before_key = await fetch_key(client, network.b_hr.headers)
    before_header, before_values = await fetch_filter(client, network.b_hr.headers, before_key)
    old_tags = {bytes(t) for t in session.scalars(select(Pseudonym.tag))}
    assert await _matches(client, network, clock) == {case["id"]}

    done = rotate(ctx)

    after_key = await fetch_key(client, network.b_hr.headers)
    assert (after_key.key_seq, after_key.key_id) == (before_key.key_seq + 1, done.new_key_id)
    assert after_key.public_key != before_key.public_key
    after_header, after_values = await fetch_filter(client, network.b_hr.headers, after_key)
    assert after_header.fields["key_id"] == done.new_key_id
    assert after_header.fields["revision"] > before_header.fields["revision"]
    # The old tags, which a member may have kept, are gone from the database and the filter.
    session.expire_all()
    new_tags = {bytes(t) for t in session.scalars(select(Pseudonym.tag))}
    assert new_tags and not new_tags & old_tags
    assert not {int.from_bytes(t[:6], "big") for t in old_tags} & after_values - before_values
    assert {int.from_bytes(t[:6], "big") for t in old_tags}.isdisjoint(after_values)
    assert await _matches(client, network, clock) == {case["id"]}
    # Every rotation is announced (signed, chained to the old key) and audited.
    body = (await client.get("/v1/network/keys", headers=network.b_hr.headers)).json()
    assert len(body["oprf_keys"]) == 2
    audited = session.execute(
        select(func.count()).select_from(_audit_table()).where(_audit_action() == "oprf.rotate")
    ).scalar_one()
    assert audited == 1


def _audit_table() -> Any:
    from server.audit.models import AuditEntry

    return AuditEntry.__table__


def _audit_action() -> Any:
    from server.audit.models import AuditEntry

    return AuditEntry.action


async def test_the_focal_points_filter_values_are_reissued_for_the_new_key(
    client: AppClient, network: Network, clock: Any, ctx: AppContext
) -> None:
    case = await _registered(client, network, clock)
    path = f"/v1/cases/{case['id']}/filter-values"
    before = (await client.get(path, headers=network.a_focal.headers)).json()
    assert before["filter_values"] == case["filter_values"]["filter_values"]
    rotate(ctx)
    after = (await client.get(path, headers=network.a_focal.headers)).json()
    assert after["key_seq"] == before["key_seq"] + 1
    assert set(after["filter_values"]).isdisjoint(before["filter_values"])
    key = await fetch_key(client, network.a_focal.headers)
    _header, values = await fetch_filter(client, network.a_focal.headers, key)
    assert set(after["filter_values"]) <= values
    # Another member's focal point and an HR account of the holder cannot read them.
    foreign = await client.get(path, headers=network.b_focal.headers)
    assert foreign.status_code == 404
    hr = await client.get(path, headers=network.a_hr.headers)
    assert hr.status_code == 403


async def test_a_check_finished_after_the_switch_gets_key_rotated_and_its_rerun_matches_once(
    client: AppClient, network: Network, clock: Any, ctx: AppContext, session: Session
) -> None:
    case = await _registered(client, network, clock)
    hr = network.b_hr.headers
    consent = await record_consent(client, hr, now=clock(), max_checks=1)
    key = await fetch_key(client, hr)
    keys = derive_keys(REGISTERED)
    batch, body = build_check_request(key, consent["id"], keys)
    first = await client.post("/v1/checks", headers=hr, json=body)
    assert first.status_code == 200, first.text

    rotate(ctx)

    # The filter of the old key is gone; the client claims its keys as it would have.
    every = set(range(len(batch.keys)))
    late, matches = await claim_hits(
        client, hr, key, batch, first.json(), consent["id"], only=every
    )
    assert late is not None and late.status_code == 409
    assert late.json()["type"].endswith(":key-rotated") and matches == []

    new_key = await fetch_key(client, hr)
    batch2, body2 = build_check_request(new_key, consent["id"], keys)
    body2["rerun_of"] = first.json()["check_id"]
    rerun = await client.post("/v1/checks", headers=hr, json=body2)
    assert rerun.status_code == 200, rerun.text
    _response, matches = await claim_hits(client, hr, new_key, batch2, rerun.json(), consent["id"])
    assert {m.handle.case_id for m in matches} == {case["id"]}
    # No budget spent twice: the consent allowed one check.
    session.expire_all()
    assert session.get(Consent, consent["id"]).checks_used == 1  # type: ignore[union-attr]
    # Once per original check, and never for a check under the current key.
    again = await client.post(
        "/v1/checks", headers=hr, json={**body2, "rerun_of": body2["rerun_of"]}
    )
    assert again.status_code == 404
    fresh = await client.post(
        "/v1/checks", headers=hr, json={**body2, "rerun_of": rerun.json()["check_id"]}
    )
    assert fresh.status_code == 404
    assert session.scalar(select(func.count()).select_from(Check)) == 2


async def test_a_rerun_by_another_principal_or_without_a_rotation_is_refused(
    client: AppClient, network: Network, clock: Any, ctx: AppContext
) -> None:
    await _registered(client, network, clock)
    hr = network.b_hr.headers
    consent = await record_consent(client, hr, now=clock(), max_checks=3)
    key = await fetch_key(client, hr)
    _batch, body = build_check_request(key, consent["id"], derive_keys(OTHER))
    first = (await client.post("/v1/checks", headers=hr, json=body)).json()
    # No rotation yet: nothing to re-run.
    _b, again = build_check_request(key, consent["id"], derive_keys(OTHER))
    early = await client.post(
        "/v1/checks", headers=hr, json={**again, "rerun_of": first["check_id"]}
    )
    assert early.status_code == 404
    rotate(ctx)
    new_key = await fetch_key(client, hr)
    _b, body3 = build_check_request(new_key, consent["id"], derive_keys(OTHER))
    other_org = await client.post(
        "/v1/checks", headers=network.a_hr.headers, json={**body3, "rerun_of": first["check_id"]}
    )
    assert other_org.status_code == 404


@pytest.fixture
def restart(settings: Settings, connection: Connection, clock: Any) -> Iterator[Any]:
    """A new app over the same data directory and database, as after a crash and restart."""

    def make() -> FastAPI:
        created = create_app(settings, bind=connection, clock=clock)
        created.state.ctx.policy = created.state.ctx.policy.model_copy(
            update={"filter_publish_seconds": 0}
        )
        return created

    yield make


@pytest.mark.parametrize("step", [s for s in STEPS if s != "old-file-deleted"])
async def test_a_rotation_killed_at_any_step_leaves_the_old_key_or_the_new_one_and_matches(
    step: str,
    client: AppClient,
    network: Network,
    clock: Any,
    ctx: AppContext,
    session: Session,
    settings: Settings,
    restart: Any,
) -> None:
    case = await _registered(client, network, clock)
    old_key = await fetch_key(client, network.b_hr.headers)
    with pytest.raises(SimulatedCrash):
        rotate(ctx, crash_at=step)

    async with AppClient(restart()) as fresh:
        key = await fetch_key(fresh, network.b_hr.headers)
        session.expire_all()
        seqs = set(session.scalars(select(Pseudonym.key_seq)))
        current = session.get(CurrentOprfKey, 1)
        assert current is not None
        announced = session.scalar(select(func.max(OprfKeyAnnouncement.key_seq)))
        if STEPS.index(step) < STEPS.index("committed"):
            # Old key and data: nothing of the rotation is in force.
            assert (key.key_seq, key.key_id) == (old_key.key_seq, old_key.key_id)
            assert seqs == {old_key.key_seq} and announced == old_key.key_seq
        else:
            assert key.key_seq == old_key.key_seq + 1 and seqs == {key.key_seq}
        assert current.key_seq == key.key_seq and current.key_id == key.key_id
        assert oprf_key_file(key.key_id) in _key_files(settings)
        consent = await record_consent(fresh, network.b_hr.headers, now=clock())
        outcome = await check_person(fresh, network.b_hr.headers, consent["id"], REGISTERED)
        assert outcome.case_ids == {case["id"]}


async def test_the_old_key_file_goes_after_the_entry_window_and_a_crash_there_is_harmless(
    client: AppClient,
    network: Network,
    clock: Any,
    ctx: AppContext,
    settings: Settings,
    restart: Any,
) -> None:
    case = await _registered(client, network, clock)
    old = await fetch_key(client, network.b_hr.headers)
    done = rotate(ctx)
    # Still inside the window: the old file stays for checks that are finishing.
    assert oprf_key_file(old.key_id) in _key_files(settings)
    assert prune_retired_keys(ctx) == []
    clock.advance(seconds=ctx.policy.entry_fetch_window_seconds + 1)
    with pytest.raises(SimulatedCrash):
        prune_retired_keys(ctx, crash_at="old-file-deleted")
    assert _key_files(settings) == {oprf_key_file(done.new_key_id)}
    async with AppClient(restart()) as fresh:
        consent = await record_consent(fresh, network.b_hr.headers, now=clock())
        outcome = await check_person(fresh, network.b_hr.headers, consent["id"], REGISTERED)
        assert outcome.case_ids == {case["id"]}


async def test_an_unused_key_file_left_by_a_crash_is_never_used_and_is_pruned(
    client: AppClient, network: Network, clock: Any, ctx: AppContext, settings: Settings
) -> None:
    await _registered(client, network, clock)
    old = await fetch_key(client, network.b_hr.headers)
    with pytest.raises(SimulatedCrash):
        rotate(ctx, crash_at="renamed")
    assert len(_key_files(settings)) == 2
    # The next rotation is unaffected by the orphan, and the orphan goes after the window.
    done = rotate(ctx)
    assert done.key_seq == old.key_seq + 1
    clock.advance(seconds=ctx.policy.entry_fetch_window_seconds + 1)
    # The orphan's age is measured by its file time, which the test clock does not move.
    import os
    import time

    for path in settings.server_key_dir.glob("oprf-*.key"):
        stamp = time.time() - ctx.policy.entry_fetch_window_seconds - 5
        os.utime(path, (stamp, stamp))
    prune_retired_keys(ctx)
    assert _key_files(settings) == {oprf_key_file(done.new_key_id)}


async def test_rotation_is_due_after_the_policys_days_and_the_job_rotates(
    client: AppClient, network: Network, clock: Any, ctx: AppContext, session: Session
) -> None:
    from server.db import transaction
    from server.oprf.rotation import rotation_due, rotation_job

    await _registered(client, network, clock)
    with transaction(ctx.sessions) as s:
        assert not rotation_due(s, ctx)
    clock.advance(days=ctx.policy.oprf_key_rotation_days)
    with transaction(ctx.sessions) as s:
        assert rotation_due(s, ctx)
        rotation_job(s, ctx)
    session.expire_all()
    assert session.scalar(select(CurrentOprfKey.key_seq)) == 2
    with transaction(ctx.sessions) as s:
        assert not rotation_due(s, ctx)


def test_tags_and_prefixes_of_a_rotated_entry_are_those_of_delta_times_p() -> None:
    """The arithmetic the rotation relies on: with skS' = Δ·skS and the same w, the stored
    P̂' = Δ·P̂ is w·P' for P' = skS'·H(x), so the person's new tag is tag(P')."""
    from protocol.entry import hash_to_group
    from protocol.hazmat.ristretto255 import random_scalar, scalar_mul, scalar_mult

    sk, w, delta = random_scalar(), random_scalar(), random_scalar()
    h = hash_to_group(b"refcheck/v1/name_dob/test")
    p = scalar_mult(sk, h)
    p_hat = scalar_mult(w, p)
    p_new = scalar_mult(scalar_mul(delta, sk), h)
    assert scalar_mult(delta, p_hat) == scalar_mult(w, p_new)
    assert tag(p_new) != tag(p) and prefix(p_new) != prefix(p)
