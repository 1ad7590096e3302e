"""Paging of list endpoints, one way for all of them.

Two kinds, answered alike: a page of `items` and a pointer to the next page that is null on the
last one. Lists ordered newest first (cases, disclosure requests) page by `limit` and `offset`
and answer `next_offset`; the audit trail, which only grows at its end, pages by sequence number
(`after_seq`) and answers `next_after`. Either way one more row than asked for is read, so
"is there a next page" is known without a count and a full last page is not followed by an empty
one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")

#: Page size when the caller names none, and the largest an offset-paged list returns.
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
#: Far past any real list, and within a 64-bit SQL integer on both backends.
MAX_OFFSET = 2**62

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def split_page(rows: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """The first `limit` of `rows` (read with `limit + 1`), and whether there were more."""
    return list(rows[:limit]), len(rows) > limit


@dataclass(frozen=True)
class OffsetPage(Generic[T]):
    items: list[T]
    next_offset: int | None


def offset_page(session: Session, stmt: Select[T], *, limit: int, offset: int) -> OffsetPage[T]:
    """One page of the entities `stmt` selects (it must be ordered, with a unique last key, so
    pages neither repeat nor skip rows while the list does not change)."""
    limit = max(1, min(limit, MAX_LIMIT))
    rows = list(session.scalars(stmt.offset(offset).limit(limit + 1)))
    items, more = split_page(rows, limit)
    return OffsetPage(items=items, next_offset=offset + limit if more else None)
