"""Blind evaluation for registration (`POST /v1/oprf/evaluate`), within the daily quota.

An evaluation endpoint is an oracle for the network's key: a static Diffie-Hellman attack
(RFC 9497 section 7.2) needs many evaluations, and an unconsented lookup needs one. It is gated
like registration itself (focal point, MoU that permits registering), capped per request by the
policy's `max_keys_per_check`, counted per organisation and UTC day in elements (not requests,
or a caller would simply send fewer, larger ones) against `daily_evaluation_quota`, and audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit.services import record
from server.auth.tokens import Caller
from server.context import AppContext
from server.db import new_id
from server.errors import PolicyViolation
from server.oprf.models import OprfEvaluation
from server.oprf.services import blind_evaluate, decode_elements
from server.quotas import enforce_daily_quota, lock_organisation, start_of_utc_day
from server.registry.services import require_mou


def elements_evaluated_today(session: Session, org_id: str, now: datetime) -> int:
    """Elements evaluated for `org_id` since the start of `now`'s UTC day."""
    used = session.scalar(
        select(func.coalesce(func.sum(OprfEvaluation.element_count), 0)).where(
            OprfEvaluation.org_id == org_id, OprfEvaluation.at >= start_of_utc_day(now)
        )
    )
    return int(used or 0)


def _enforce_quota(
    session: Session, ctx: AppContext, org_id: str, adding: int, now: datetime
) -> None:
    enforce_daily_quota(
        used=elements_evaluated_today(session, org_id, now),
        adding=adding,
        quota=ctx.policy.daily_evaluation_quota,
        now=now,
        what="evaluated elements",
    )


def take_from_quota(
    session: Session, ctx: AppContext, caller: Caller, elements: int, now: datetime
) -> None:
    """Count `elements` against the organisation's quota for `now`'s UTC day, or refuse.

    Under the lock on the organisation's row, so concurrent evaluations cannot together go past
    the quota; the row added is what later evaluations count. In the caller's transaction.
    """
    lock_organisation(session, caller.org_id)
    _enforce_quota(session, ctx, caller.org_id, elements, now)
    session.add(
        OprfEvaluation(
            id=new_id(),
            org_id=caller.org_id,
            principal_id=caller.principal_id,
            at=now,
            element_count=elements,
        )
    )
    session.flush()


def evaluate_for_registration(
    session: Session, ctx: AppContext, caller: Caller, purpose: str, elements: Sequence[str]
) -> tuple[list[bytes], bytes]:
    """Evaluate a focal point's blinded keys with one batch DLEQ proof, and commit the use.

    Refusals (MoU, too many elements, an invalid element, over quota) evaluate nothing and
    count nothing. The quota is looked at before the key does any work, so calls over it cost
    the server next to nothing, and decided again under the organisation's row lock after it,
    as the check quota is (`server.quotas`).
    """
    now = ctx.now()
    require_mou(session, caller.org_id, "register", now.date())
    if len(elements) > ctx.policy.max_keys_per_check:
        raise PolicyViolation(
            f"at most {ctx.policy.max_keys_per_check} elements per evaluation",
            rule="keys_per_case",
        )
    blinded = decode_elements(elements)
    _enforce_quota(session, ctx, caller.org_id, len(blinded), now)
    # Only reads so far: end that transaction so no lock is held while the key multiplies.
    session.commit()
    evaluated, proof = blind_evaluate(ctx, blinded)
    take_from_quota(session, ctx, caller, len(blinded), now)
    record(
        session,
        ctx,
        caller,
        "oprf.evaluate",
        details={"purpose": purpose, "elements": len(blinded)},
    )
    session.commit()
    return evaluated, proof
