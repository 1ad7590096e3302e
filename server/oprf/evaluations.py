"""Blind evaluation for registration (`POST /v1/oprf/evaluate`), within the daily quota.

An evaluation endpoint is an oracle for the network's key: a static Diffie-Hellman attack
(RFC 9497 section 7.2) needs many evaluations, and an unconsented lookup needs one. It is gated
like registration itself (focal point, MoU that permits registering), capped per request by the
policy's `max_keys_per_check`, counted per organisation and UTC day in elements (not requests,
or a caller would simply send fewer, larger ones) against `daily_evaluation_quota`, and audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from server.audit.services import record, refusal_details
from server.auth.tokens import Caller
from server.context import AppContext
from server.errors import DomainError, PolicyViolation
from server.oprf.services import blind_evaluate, decode_elements
from server.quotas.services import take_daily
from server.registry.services import require_mou

log = logging.getLogger("refcheck.server.oprf")


def evaluate_for_registration(
    session: Session, ctx: AppContext, caller: Caller, purpose: str, elements: Sequence[str]
) -> tuple[list[bytes], bytes]:
    """`_evaluate`; a refusal is recorded on its own (`record_refused_evaluation`) and raised
    unchanged."""
    try:
        return _evaluate(session, ctx, caller, purpose, elements)
    except DomainError as refusal:
        record_refused_evaluation(session, ctx, caller, purpose, len(elements), refusal)
        raise


def record_refused_evaluation(
    session: Session,
    ctx: AppContext,
    caller: Caller,
    purpose: str,
    elements: int,
    refusal: DomainError,
) -> None:
    """Audit a refused evaluation (`oprf.refused`) in a transaction of its own, after the refused
    one is rolled back: refused calls to the key's oracle (over the quota, too many or invalid
    elements, no MoU) are what probing looks like, as refused checks are. Recorded: the problem
    slug, the policy rule if any, the purpose and the element count; never an element. A failure
    to record is logged (by class name only) and the caller still gets the refusal."""
    session.rollback()
    try:
        details = refusal_details(refusal, purpose=purpose, elements=elements)
        record(session, ctx, caller, "oprf.refused", details=details)
        session.commit()
    except Exception as exc:  # noqa: BLE001 - the refusal, not this failure, is the answer
        session.rollback()
        log.error("could not record a refused evaluation: %s", type(exc).__name__)


def _evaluate(
    session: Session, ctx: AppContext, caller: Caller, purpose: str, elements: Sequence[str]
) -> tuple[list[bytes], bytes]:
    """Evaluate a focal point's blinded keys with one batch DLEQ proof, and commit the use.

    Refusals (MoU, too many elements, an invalid element, over quota) evaluate nothing and
    count nothing. The controls and the record of the use commit in one transaction before the
    key does any work: no lock is held while it multiplies, a call over the quota costs the
    server next to nothing, and a suspension that lands first is always seen. The quota is
    decided by the conditional upsert of the day's usage row (`server.quotas.services`).
    """
    now = ctx.now()
    if len(elements) > ctx.policy.max_keys_per_check:
        raise PolicyViolation(
            f"at most {ctx.policy.max_keys_per_check} elements per evaluation",
            rule="keys_per_case",
        )
    blinded = decode_elements(elements)
    require_mou(session, caller.org_id, "register", now.date())
    take_daily(session, ctx.policy, caller.org_id, now, elements=len(blinded))
    record(
        session,
        ctx,
        caller,
        "oprf.evaluate",
        details={"purpose": purpose, "elements": len(blinded)},
    )
    session.commit()
    return blind_evaluate(ctx, blinded)
