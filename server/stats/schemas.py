"""Wire shape of `GET /v1/stats`."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, computed_field

from server.stats.services import mds_figures


class MonthFigures(BaseModel):
    month: str
    counters: dict[str, int]


class OrgStats(BaseModel):
    org_id: str
    short_name: str
    totals: dict[str, int]
    months: list[MonthFigures]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mds(self) -> dict[str, int]:
        """The Misconduct Disclosure Scheme's yearly figures, derived from `totals`."""
        return mds_figures(self.totals)


class StatsOut(BaseModel):
    """One year of counters: network-wide (with the per-organisation breakdown the secretariat
    needs to see unusual volumes) or, for a member, its own organisation only."""

    year: int
    scope: Literal["network", "organisation"]
    counters: list[str]
    totals: dict[str, int]
    months: list[MonthFigures]
    organisations: list[OrgStats]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mds(self) -> dict[str, int]:
        """The MDS yearly figures, network-wide (or the member's own)."""
        return mds_figures(self.totals)


class RetentionMonth(BaseModel):
    #: YYYY-MM of the cases' retention date: they are deleted after it.
    month: str
    live_cases: int


class OrgRetention(BaseModel):
    org_id: str
    short_name: str
    live_cases: int
    months: list[RetentionMonth]


class RetentionOut(BaseModel):
    """Live cases by the month their retention ends, network-wide and per member: counts only,
    for the secretariat to see what the retention policy will delete and when."""

    as_of: date
    live_cases: int
    months: list[RetentionMonth]
    organisations: list[OrgRetention]


class AnswerTimesMonth(BaseModel):
    #: YYYY-MM the requests fell due (UTC).
    month: str
    counts: dict[str, int]


class AnswerTimesOut(BaseModel):
    """Network-wide counts of disclosure requests by how early or late they were answered
    against their deadline, per month they fell due: counts only, no request or organisation.
    Read from the requests the server still holds: those ended more than
    `record_retention_days` ago are deleted and no longer counted."""

    year: int
    as_of: date
    buckets: list[str]
    totals: dict[str, int]
    months: list[AnswerTimesMonth]
    record_retention_days: int
