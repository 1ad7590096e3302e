"""Wire shape of `GET /v1/stats`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class MonthFigures(BaseModel):
    month: str
    counters: dict[str, int]


class OrgStats(BaseModel):
    org_id: str
    short_name: str
    totals: dict[str, int]
    months: list[MonthFigures]


class StatsOut(BaseModel):
    """One year of counters: network-wide (with the per-organisation breakdown the secretariat
    needs to see unusual volumes) or, for a member, its own organisation only."""

    year: int
    scope: Literal["network", "organisation"]
    counters: list[str]
    totals: dict[str, int]
    months: list[MonthFigures]
    organisations: list[OrgStats]
