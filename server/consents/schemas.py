"""Wire shapes of the consent endpoints, and the mapping from rows to them."""

from __future__ import annotations

from datetime import date

from protocol.messages import ConsentCreate, ConsentOut
from server.consents.models import Consent
from server.consents.services import consent_status

__all__ = ["ConsentCreate", "ConsentOut", "consent_out"]


def consent_out(consent: Consent, today: date, *, lookup_code: str | None = None) -> ConsentOut:
    return ConsentOut(
        id=consent.id,
        lookup_code=lookup_code,
        purpose=consent.purpose,
        consented_at=consent.consented_at,
        expires_on=consent.expires_on,
        max_checks=consent.max_checks,
        checks_used=consent.checks_used,
        status=consent_status(consent, today),
        withdrawn_at=consent.withdrawn_at,
        sealed_details=consent.sealed_details.hex(),
    )
