"""Every code the console's pages show (a category, a sanction, a state, an outcome, ...) in
English words, translated by the catalogs; `choice_label` is the templates' `label` filter."""

from __future__ import annotations

from typing import Any

from client_sdk.console.i18n import gettext_ as _


def choice_label(value: Any) -> str:
    """A policy or state code in words ("sexual_abuse" → "Sexual abuse"), translated."""
    if value is None:
        return ""
    text = str(value)
    known = CHOICES.get(text)
    return _(known) if known else text.replace("_", " ")


#: Every code the pages show, in English words; the catalogs translate them.
CHOICES = {
    "sexual_exploitation": "Sexual exploitation",
    "sexual_abuse": "Sexual abuse",
    "sexual_harassment": "Sexual harassment",
    "dismissal": "Dismissal",
    "contract_termination": "Contract termination",
    "other_disciplinary": "Other disciplinary measure",
    "legitimate_interests": "Legitimate interests",
    "legal_obligation": "Legal obligation",
    "contract": "Contract",
    "consent": "Consent",
    "requested": "Requested",
    "acknowledged": "Acknowledged",
    "answered": "Answered",
    "closed": "Closed",
    "withdrawn": "Withdrawn",
    "expired": "Expired",
    "active": "Active",
    "suspended": "Suspended",
    "confirmed": "Confirmed: the same person",
    "not_same_person": "Not the same person",
    "declined": "Declined to answer",
    "hired": "Hired",
    "not_hired_disclosure": "Not hired because of the disclosure",
    "not_hired_other": "Not hired for another reason",
    "recruitment": "Recruitment",
    "rescreening": "Re-screening of current staff",
    "appeal_upheld": "Appeal upheld",
    "rectification": "Rectification",
    "registered_in_error": "Registered in error",
    "other": "Other",
    "substantiated": "Substantiated",
    "focal_point": "Focal point",
    "hr_checker": "HR officer",
    "network_admin": "Network admin",
    "auditor": "Auditor",
    "present": "Published",
    "missing": "MISSING from the registry",
    "pending": "Not yet published",
    "not_live": "No longer live",
    "other_key": "Under an older key",
    "strong": "strong identifier",
    "exact": "exact name and date of birth",
    "variant": "loose name form and date of birth",
    "recruitments": "Recruitments",
    "requests_made": "Requests made",
    "responses_received": "Responses received",
    "responses_given": "Responses given",
    "applicants_rejected": "Applicants rejected",
    "overdue_requests": "Overdue requests",
    "full_name": "Full name",
    "date_of_birth": "Date of birth",
    "nationality": "Nationality",
    "national_id": "National ID number (NIK)",
    "passport": "Passport number",
    "passport_country": "Passport country",
    "email": "E-mail address",
    "phone": "Phone number",
}
