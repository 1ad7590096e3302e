"""Helpers of the filter tests: cases with chosen filter values, and reading filter bodies.

A case here is a row with entries whose tags start with values the test chooses, inserted
directly: what the filter reads of an entry is its case's liveness and the first 6 bytes of its
tag, so chosen values show exactly which of them the filter holds. Registration through the API
is in test_filter_registration.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from protocol.filter import parse_full
from protocol.signed import SignedObject
from server.cases.models import Case, Pseudonym
from server.context import AppContext
from tests.factories import Network, make_case


def values_of(seed: int, n: int) -> list[int]:
    """`n` distinct 48-bit values, different for each seed."""
    return [(seed << 24) | i for i in range(1, n + 1)]


def add_case(
    session: Session,
    ctx: AppContext,
    network: Network,
    values: Sequence[int],
    *,
    key_seq: int | None = None,
    **overrides: Any,
) -> Case:
    """A case of org-a whose entries' tags begin with `values` (one entry each). Committed, so
    the app's sessions see it."""
    overrides.setdefault("retention_until", ctx.now().date() + timedelta(days=365))
    case = make_case(session, network.org_a, network.a_focal.id, **overrides)
    for value in values:
        session.add(
            Pseudonym(
                case_id=case.id,
                key_seq=ctx.keys.oprf_key_seq if key_seq is None else key_seq,
                p_hat=os.urandom(32),
                tag=value.to_bytes(6, "big") + os.urandom(10),
                sealed_handle=os.urandom(256 + 40),
            )
        )
    session.commit()
    return case


def verified_full(body: bytes, ctx: AppContext) -> tuple[SignedObject, list[int]]:
    """The header and values of an `RCF2` body, the header verified with the signing key."""
    header, values = parse_full(body)
    header.verify(ctx.keys.audit_public, network_id=ctx.keys.network_id, type="filter")
    return header, values


def publish_every(ctx: AppContext, seconds: int) -> AppContext:
    """Set the app's `filter_publish_seconds` (the test suite runs with 0, as the demo network
    does); returns `ctx` for chaining."""
    ctx.policy = ctx.policy.model_copy(update={"filter_publish_seconds": seconds})
    return ctx
