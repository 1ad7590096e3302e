"""Publishing the registry filter: its set, its signed header, its revisions and when they are
made (docs/protocol.md, "The registry filter")."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from protocol import entry as entry_crypto
from protocol.filter import set_sha256
from protocol.signed import parse, parse_time
from server.cases.models import CaseStatus
from server.context import AppContext
from server.filter import services
from server.filter.models import FilterRevision
from tests.server.filter.helpers import add_case, values_of

pytestmark = pytest.mark.anyio


def values_after(session: Session, ctx: AppContext) -> list[int]:
    row = services.publish(session, ctx)
    return services._unpack(row.value_list)


def immediate(ctx: AppContext) -> AppContext:
    return dataclasses.replace(
        ctx, policy=ctx.policy.model_copy(update={"filter_publish_seconds": 0})
    )


def hourly(ctx: AppContext) -> AppContext:
    return dataclasses.replace(
        ctx, policy=ctx.policy.model_copy(update={"filter_publish_seconds": 3600})
    )


async def test_the_set_is_keys_per_check_values_per_live_case(session, ctx, network, kpc):
    add_case(session, ctx, network, values_of(1, kpc))
    add_case(session, ctx, network, values_of(2, kpc))
    values = values_after(session, ctx)
    assert values == sorted(values_of(1, kpc) + values_of(2, kpc))


async def test_fillers_top_up_values_two_cases_share(session, ctx, network, kpc):
    first = values_of(1, kpc)
    # The same person registered by a second member: 5 of its keys give the same values.
    second = first[:5] + values_of(2, kpc - 5)
    add_case(session, ctx, network, first)
    add_case(session, ctx, network, second)
    row = services.publish(session, ctx)
    values = set(services._unpack(row.value_list))
    assert len(values) == row.value_count == 2 * kpc
    assert set(first) | set(second) <= values
    fillers = values - set(first) - set(second)
    assert len(fillers) == 5
    ks = services._unpack(row.filler_ks, 4)
    points = entry_crypto.evaluate_inputs(
        ctx.keys.oprf_secret, [entry_crypto.filler_input(k) for k in ks]
    )
    assert {entry_crypto.prefix(point) for point in points} == fillers


async def test_a_filler_whose_prefix_is_a_value_is_skipped(session, ctx, network, kpc):
    taken = [
        entry_crypto.prefix(p)
        for p in entry_crypto.evaluate_inputs(ctx.keys.oprf_secret, [entry_crypto.filler_input(1)])
    ]
    add_case(session, ctx, network, taken + values_of(1, kpc - 1))
    add_case(session, ctx, network, taken + values_of(2, kpc - 1))
    row = services.publish(session, ctx)
    assert row.value_count == 2 * kpc
    assert services._unpack(row.filler_ks, 4) == [2]


async def test_registering_someone_registered_adds_keys_per_check_values_and_nothing_else(
    session, ctx, network, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    before = services.publish(session, ctx)
    add_case(session, ctx, network, values_of(1, kpc))
    after = services.publish(session, ctx)
    added, removed = services._unpack(after.added), services._unpack(after.removed)
    assert len(added) == kpc and removed == []
    assert not set(added) & set(values_of(1, kpc))
    assert after.value_count == before.value_count + kpc


async def test_withdrawn_and_expired_cases_leave_at_the_next_publication(
    clock, session, ctx, network, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    withdrawn = add_case(session, ctx, network, values_of(2, kpc))
    add_case(session, ctx, network, values_of(3, kpc), retention_until=ctx.now().date())
    assert set(values_after(session, ctx)) == set(
        values_of(1, kpc) + values_of(2, kpc) + values_of(3, kpc)
    )
    withdrawn.status = CaseStatus.WITHDRAWN
    session.commit()
    assert set(values_after(session, ctx)) == set(values_of(1, kpc) + values_of(3, kpc))
    # The day after its retention date the case is no longer live, deleted by the sweep or not.
    clock.advance(days=1)
    values = values_after(session, ctx)
    assert values == values_of(1, kpc)


async def test_entries_under_another_key_are_not_in_the_set(session, ctx, network, kpc):
    add_case(session, ctx, network, values_of(1, kpc))
    add_case(session, ctx, network, values_of(2, kpc), key_seq=ctx.keys.oprf_key_seq + 1)
    values = set(values_after(session, ctx))
    assert set(values_of(1, kpc)) <= values
    assert not set(values_of(2, kpc)) & values
    assert len(values) == 2 * kpc  # the second case still counts: fillers stand in


async def test_an_empty_registry_publishes_an_empty_filter(session, ctx):
    row = services.publish(session, ctx)
    assert row.value_count == 0 and services._unpack(row.value_list) == []
    assert row.sha256 == set_sha256([]).hex()


async def test_the_header_says_what_the_contract_lists_and_chains_revisions(
    clock, session, ctx, network, kpc
):
    add_case(session, ctx, network, values_of(1, kpc))
    first = services.publish(session, ctx)
    clock.advance(seconds=5)
    second = services.publish(session, ctx)
    header = parse(second.header)
    header.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="filter")
    fields = dict(header.fields)
    assert set(fields) == {
        "type", "network_id", "issued_at", "expires_at", "key_id", "key_seq", "revision",
        "count", "p", "sha256", "prev_sha256",
    }  # fmt: skip
    assert fields["revision"] == first.revision + 1
    assert fields["prev_sha256"] == first.sha256
    assert fields["key_id"] == ctx.keys.oprf_key_id
    assert fields["key_seq"] == ctx.keys.oprf_key_seq
    assert fields["count"] == kpc
    lifetime = parse_time(fields["expires_at"]) - parse_time(fields["issued_at"])
    assert lifetime <= 2 * timedelta(seconds=max(ctx.policy.filter_publish_seconds, 60))


async def test_the_first_revision_has_a_zero_prev_sha256(session, ctx):
    assert session.scalar(select(func.count()).select_from(FilterRevision)) == 0
    row = services.publish(session, ctx)
    assert parse(row.header).fields["prev_sha256"] == "0" * 64


async def test_the_shortest_expiry_is_two_minutes_when_every_change_publishes(session, ctx):
    row = services.publish(session, immediate(ctx))
    fields = parse(row.header).fields
    assert parse_time(fields["expires_at"]) - parse_time(fields["issued_at"]) == timedelta(
        seconds=120
    )


async def test_only_the_newest_revision_keeps_its_values(session, ctx, network, kpc):
    add_case(session, ctx, network, values_of(1, kpc))
    first = services.publish(session, ctx)
    second = services.publish(session, ctx)
    session.refresh(first)
    assert first.value_list is None and first.filler_ks is None
    assert second.value_list is not None


async def test_revisions_older_than_a_day_are_pruned_and_numbers_never_go_back(clock, session, ctx):
    old = services.publish(session, ctx)
    clock.advance(hours=25)
    services.publish(session, ctx)
    newest = services.publish(session, ctx)
    revisions = session.scalars(select(FilterRevision.revision)).all()
    assert old.revision not in revisions
    assert newest.revision == old.revision + 2
    session.execute(delete(FilterRevision))
    assert services.publish(session, ctx).revision == newest.revision + 1


async def test_publish_if_immediate_publishes_only_when_the_policy_says_zero(session, ctx):
    assert services.publish_if_immediate(session, hourly(ctx)) is None
    assert session.scalar(select(func.count()).select_from(FilterRevision)) == 0
    row = services.publish_if_immediate(session, immediate(ctx))
    assert row is not None and row.revision >= 1


async def test_the_check_header_is_published_when_none_exists_and_then_reused(session, ctx):
    header = services.current_filter_header(session, ctx)
    assert parse(header).fields["revision"] >= 1
    assert services.current_filter_header(session, ctx) == header
    assert session.scalar(select(func.count()).select_from(FilterRevision)) == 1


async def test_the_check_header_is_re_signed_when_due(clock, session, ctx):
    fast = immediate(ctx)
    header = services.current_filter_header(session, fast)
    clock.advance(seconds=59)
    assert services.current_filter_header(session, fast) == header
    clock.advance(seconds=1)
    renewed = parse(services.current_filter_header(session, fast))
    assert renewed.fields["revision"] == parse(header).fields["revision"] + 1
    assert parse_time(renewed.fields["issued_at"]) == ctx.now()


async def test_the_check_header_is_re_published_at_the_days_retention_cut(
    clock, session, ctx, network, kpc
):
    clock.set(ctx.now().replace(hour=23, minute=59, second=0))
    add_case(session, ctx, network, values_of(1, kpc), retention_until=ctx.now().date())
    header = parse(services.current_filter_header(session, ctx))
    assert header.fields["count"] == kpc
    clock.advance(minutes=2)
    after = parse(services.current_filter_header(session, ctx))
    assert after.fields["revision"] == header.fields["revision"] + 1
    assert after.fields["count"] == 0


async def test_the_job_publishes_when_due_and_leaves_a_fresh_revision_alone(clock, session, ctx):
    job_every_minute = dataclasses.replace(
        hourly(ctx), settings=ctx.settings.model_copy(update={"job_interval_seconds": 60})
    )
    services.publication_job(session, job_every_minute)
    first = session.scalar(select(func.max(FilterRevision.revision)))
    assert first is not None
    clock.advance(minutes=30)
    services.publication_job(session, job_every_minute)
    assert session.scalar(select(func.max(FilterRevision.revision))) == first
    # Due within the job's next interval: published now rather than late.
    clock.advance(seconds=3600 - 30 * 60 - 59)
    services.publication_job(session, job_every_minute)
    assert session.scalar(select(func.max(FilterRevision.revision))) == first + 1


async def test_the_periodic_jobs_include_the_publication(ctx, session):
    from server.jobs import run_jobs_once

    results = run_jobs_once(ctx)
    assert results["filter-publication"] is True
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(FilterRevision)) == 1
