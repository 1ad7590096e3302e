"""`GET /v1/stats`: network-wide figures for the secretariat, own figures for members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from server.auth.deps import Ctx, Db, require_any
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.cases.models import Case, CaseStatus
from server.registry.models import Organisation
from server.stats.answer_times import AnswerTime, answer_times
from server.stats.schemas import (
    AnswerTimesMonth,
    AnswerTimesOut,
    MonthFigures,
    OrgRetention,
    OrgStats,
    RetentionMonth,
    RetentionOut,
    StatsOut,
)
from server.stats.services import Counter, OrgFigures, figures, network_months

router = APIRouter(prefix="/v1/stats", tags=["stats"])


def _months(months: dict[str, dict[str, int]]) -> list[MonthFigures]:
    return [MonthFigures(month=m, counters=c) for m, c in sorted(months.items())]


@router.get("", response_model=StatsOut)
def read_stats(
    ctx: Ctx,
    session: Db,
    caller: Annotated[Caller, Depends(require_any(Permission.STATS_NETWORK, Permission.STATS_OWN))],
    year: Annotated[int | None, Query(ge=2000, le=9999)] = None,
) -> StatsOut:
    year = year if year is not None else ctx.now().year
    network = caller.has(Permission.STATS_NETWORK)
    per_org: dict[str, OrgFigures] = figures(
        session, year, org_id=None if network else caller.org_id
    )
    rows = session.execute(
        select(Organisation.id, Organisation.short_name).where(Organisation.id.in_(list(per_org)))
    )
    names: dict[str, str] = {org_id: short_name for org_id, short_name in rows}
    organisations = [
        OrgStats(
            org_id=oid,
            short_name=names.get(oid, ""),
            totals=figs.totals,
            months=_months(figs.months),
        )
        for oid, figs in sorted(per_org.items(), key=lambda kv: names.get(kv[0], kv[0]))
    ]
    months = network_months(per_org, year)
    totals = {c.value: 0 for c in Counter}
    for counters in months.values():
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
    return StatsOut(
        year=year,
        scope="network" if network else "organisation",
        counters=[c.value for c in Counter],
        totals=totals,
        months=_months(months),
        organisations=organisations,
    )


@router.get("/retention", response_model=RetentionOut)
def read_retention(
    ctx: Ctx,
    session: Db,
    _caller: Annotated[Caller, Depends(require_any(Permission.STATS_NETWORK))],
) -> RetentionOut:
    """Counts of live (active) cases by the month their retention ends and by member; no case,
    id or date finer than the month."""
    rows = session.execute(
        select(Case.org_id, Case.retention_until, func.count(Case.id))
        .where(Case.status == CaseStatus.ACTIVE)
        .group_by(Case.org_id, Case.retention_until)
    )
    per_org: dict[str, dict[str, int]] = {}
    for org_id, until, count in rows:
        months = per_org.setdefault(org_id, {})
        month = until.strftime("%Y-%m")
        months[month] = months.get(month, 0) + int(count)
    named = session.execute(
        select(Organisation.id, Organisation.short_name).where(Organisation.id.in_(list(per_org)))
    )
    names: dict[str, str] = {org_id: short_name for org_id, short_name in named}
    network: dict[str, int] = {}
    organisations = []
    for org_id, months in sorted(per_org.items(), key=lambda kv: names.get(kv[0], kv[0])):
        for month, count in months.items():
            network[month] = network.get(month, 0) + count
        organisations.append(
            OrgRetention(
                org_id=org_id,
                short_name=names.get(org_id, ""),
                live_cases=sum(months.values()),
                months=[RetentionMonth(month=m, live_cases=c) for m, c in sorted(months.items())],
            )
        )
    return RetentionOut(
        as_of=ctx.now().date(),
        live_cases=sum(network.values()),
        months=[RetentionMonth(month=m, live_cases=c) for m, c in sorted(network.items())],
        organisations=organisations,
    )


@router.get("/answer-times", response_model=AnswerTimesOut)
def read_answer_times(
    ctx: Ctx,
    session: Db,
    _caller: Annotated[Caller, Depends(require_any(Permission.STATS_NETWORK))],
    year: Annotated[int | None, Query(ge=2000, le=9999)] = None,
) -> AnswerTimesOut:
    """Disclosure requests by how early or late they were answered against their deadline, per
    month they fell due, network-wide; counts only (`server.stats.answer_times`)."""
    now = ctx.now()
    year = year if year is not None else now.year
    months = answer_times(session, year, now)
    totals = {b.value: sum(counts[b.value] for counts in months.values()) for b in AnswerTime}
    return AnswerTimesOut(
        year=year,
        as_of=now.date(),
        buckets=[b.value for b in AnswerTime],
        totals=totals,
        months=[AnswerTimesMonth(month=m, counts=c) for m, c in sorted(months.items())],
        record_retention_days=ctx.policy.disclosure_record_retention_days,
    )
