"""Consent receipts: recording, reading, withdrawing, and deciding whether one may be used.

Consent is specific and not retroactive (the members' rule): one purpose, a validity window
capped by the policy for that purpose, a check budget, and no use after expiry or withdrawal.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta
from typing import Literal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentCreate
from server.audit.services import record
from server.auth.permissions import Permission
from server.auth.tokens import Caller
from server.consents.errors import ConsentExhausted, ConsentExpired, ConsentWithdrawn
from server.consents.models import Consent
from server.context import AppContext
from server.db import new_id
from server.errors import InvalidRequest, NotFound, PolicyViolation
from server.policy.schema import ConsentPurpose
from server.registry.services import require_mou
from server.stats.services import Counter, increment

# Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or retyped from paper
# survives the usual confusions (normalised back in `normalise_lookup_code`).
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 4
_CODE_GROUP_SIZE = 4  # 16 symbols = 80 bits: not guessable online, and only a hash is stored
# Clocks of HR systems drift; a consent "given" a few minutes in the future is clock skew, more
# than that is a wrong date.
_CLOCK_SKEW = timedelta(minutes=5)

_LOOKALIKES = str.maketrans("OIL", "011")

_PURPOSE_COUNTERS = {
    "recruitment": Counter.CONSENTS_RECRUITMENT,
    "rescreening": Counter.CONSENTS_RESCREENING,
}


def new_lookup_code() -> str:
    symbols = "".join(
        secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUPS * _CODE_GROUP_SIZE)
    )
    return "-".join(
        symbols[i : i + _CODE_GROUP_SIZE] for i in range(0, len(symbols), _CODE_GROUP_SIZE)
    )


def normalise_lookup_code(code: str) -> str:
    """Upper-case, without separators, with Crockford's look-alikes mapped (O→0, I/L→1)."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    return cleaned.translate(_LOOKALIKES)


def lookup_code_sha256(code: str) -> str:
    """What the server stores and looks up instead of the code itself."""
    return hashlib.sha256(
        b"refcheck/v1/lookup-code/" + normalise_lookup_code(code).encode()
    ).hexdigest()


def consent_status(consent: Consent, today: date) -> Literal["active", "withdrawn", "expired"]:
    if consent.withdrawn_at is not None:
        return "withdrawn"
    if consent.expires_on < today:
        return "expired"
    return "active"


def ensure_unexpired(consent: Consent, today: date) -> None:
    """Raise if the consent was withdrawn or has expired."""
    status = consent_status(consent, today)
    if status == "withdrawn":
        raise ConsentWithdrawn("the applicant withdrew this consent; record a new one")
    if status == "expired":
        raise ConsentExpired(f"the consent expired after {consent.expires_on.isoformat()}")


def ensure_usable(consent: Consent, today: date) -> None:
    """Raise the reason a consent may not carry one more check, if there is one."""
    ensure_unexpired(consent, today)
    if consent.checks_used >= consent.max_checks:
        raise ConsentExhausted(f"all {consent.max_checks} checks of this consent were used")


def record_consent(
    session: Session, ctx: AppContext, caller: Caller, req: ConsentCreate
) -> tuple[Consent, str]:
    """Store a consent receipt; returns it with its lookup code (shown only now)."""
    now = ctx.now()
    today = now.date()
    require_mou(session, caller.org_id, "check", today)
    try:
        rule = ctx.policy.consent_purposes.get(ConsentPurpose(req.purpose))
    except ValueError:
        rule = None
    if rule is None:
        raise PolicyViolation("the policy knows no such consent purpose", rule="purpose")
    if req.consented_at > now + _CLOCK_SKEW:
        raise InvalidRequest("consented_at is in the future")
    latest = req.consented_at.date() + timedelta(days=rule.max_validity_days)
    expires_on = req.expires_on if req.expires_on is not None else latest
    if expires_on > latest:
        raise PolicyViolation(
            f"a {req.purpose} consent is valid at most {rule.max_validity_days} days "
            f"(until {latest.isoformat()})",
            rule="consent_validity",
        )
    if expires_on < today:
        raise PolicyViolation("the consent would already have expired", rule="consent_validity")
    max_checks = req.max_checks if req.max_checks is not None else rule.max_checks
    if max_checks > rule.max_checks:
        raise PolicyViolation(
            f"a {req.purpose} consent allows at most {rule.max_checks} checks",
            rule="consent_checks",
        )
    code = new_lookup_code()
    consent = Consent(
        id=new_id(),
        org_id=caller.org_id,
        recorded_by=caller.principal_id,
        purpose=req.purpose,
        consented_at=req.consented_at,
        expires_on=expires_on,
        max_checks=max_checks,
        checks_used=0,
        lookup_code_sha256=lookup_code_sha256(code),
        # Stored as sent: only the hiring organisation can open it (protocol.consent_details).
        sealed_details=bytes.fromhex(req.sealed_details),
        created_at=now,
    )
    session.add(consent)
    record(
        session,
        ctx,
        caller,
        "consent.record",
        object_type="consent",
        object_id=consent.id,
        details={"purpose": req.purpose, "max_checks": max_checks},
    )
    increment(session, caller.org_id, now, Counter.CONSENTS_RECORDED)
    purpose_counter = _PURPOSE_COUNTERS.get(req.purpose)
    if purpose_counter is not None:
        increment(session, caller.org_id, now, purpose_counter)
    session.flush()
    return consent, code


_OWN_CONSENT = select(Consent).where(
    Consent.id == bindparam("consent_id"), Consent.org_id == bindparam("org_id")
)
_OWN_CONSENT_LOCKED = _OWN_CONSENT.with_for_update()


def own_consent(
    session: Session, caller: Caller, consent_id: str, *, lock: bool = False
) -> Consent:
    """A consent of the caller's organisation; another organisation's answers like a missing one.

    The statement is built once (every check reads a consent): SQLAlchemy then compiles it once.
    """
    consent = session.scalars(
        _OWN_CONSENT_LOCKED if lock else _OWN_CONSENT,
        {"consent_id": consent_id, "org_id": caller.org_id},
    ).first()
    if consent is None:
        raise NotFound("no such consent")
    return consent


def consent_by_code(session: Session, caller: Caller, code: str, *, lock: bool = False) -> Consent:
    """The consent whose lookup code this is (the applicant's consent lookup). HR checkers reach
    only their own organisation's consents (they are the applicant's HR contact there); the
    secretariat any. An unknown and a foreign code answer alike."""
    stmt = select(Consent).where(Consent.lookup_code_sha256 == lookup_code_sha256(code))
    # ORG_READ_ALL is what marks the secretariat as seeing across organisations.
    if not caller.has(Permission.ORG_READ_ALL):
        stmt = stmt.where(Consent.org_id == caller.org_id)
    if lock:
        stmt = stmt.with_for_update()
    consent = session.scalars(stmt).first()
    if consent is None:
        raise NotFound("no consent has this lookup code")
    return consent


def withdraw_consent(session: Session, ctx: AppContext, caller: Caller, consent_id: str) -> Consent:
    """Record the applicant's withdrawal; no later check may use the consent. Repeating it
    changes nothing. No MoU check: ending processing must always be possible.
    `server.cascades.withdraw_consent` stops the disclosure requests under it in the same
    transaction."""
    now = ctx.now()
    consent = own_consent(session, caller, consent_id, lock=True)
    if consent.withdrawn_at is not None:
        return consent
    consent.withdrawn_at = now
    record(session, ctx, caller, "consent.withdraw", object_type="consent", object_id=consent.id)
    increment(session, caller.org_id, now, Counter.CONSENTS_WITHDRAWN)
    session.flush()
    return consent
