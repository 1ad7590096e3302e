"""Why a consent cannot be used for a check. Distinct types so the HR system can tell the
applicant what to do (give a new consent, or nothing: they withdrew)."""

from __future__ import annotations

from server.errors import Conflict


class ConsentExpired(Conflict):
    slug, title = "consent-expired", "The consent has expired"


class ConsentWithdrawn(Conflict):
    slug, title = "consent-withdrawn", "The applicant withdrew this consent"


class ConsentExhausted(Conflict):
    slug, title = "consent-exhausted", "The consent's check budget is used up"
