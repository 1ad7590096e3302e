"""The network policy as a validated model.

The file is data the members agree on; the model is what makes a typo in it stop the server at
start-up instead of silently allowing, say, unlimited retention.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocol.vocabulary import Category, Sanction


class LegalBasis(StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class ConsentPurpose(StrEnum):
    RECRUITMENT = "recruitment"
    RESCREENING = "rescreening"


# The Misconduct Disclosure Scheme asks about the last five years; a policy that could not keep a
# finding that long would let a perpetrator wait out the check.
MIN_RETENTION_YEARS = 5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryRule(_Strict):
    max_retention_years: int = Field(ge=MIN_RETENTION_YEARS, le=50)
    max_retention_years_child_victim: int = Field(ge=MIN_RETENTION_YEARS, le=100)

    @model_validator(mode="after")
    def _child_victim_not_shorter(self) -> CategoryRule:
        if self.max_retention_years_child_victim < self.max_retention_years:
            raise ValueError("max_retention_years_child_victim must be >= max_retention_years")
        return self


class PurposeRule(_Strict):
    max_validity_days: int = Field(ge=1, le=730)
    max_checks: int = Field(ge=1, le=1000)


class NetworkPolicy(_Strict):
    version: str = Field(min_length=1, max_length=40)
    allow_under_investigation: bool = False
    # Every check carries, and every case stores, exactly this many elements (docs/protocol.md,
    # "Pseudonyms, tags, handles"): the count then says nothing about the person.
    keys_per_check: int = Field(default=32, ge=1, le=255)
    daily_check_quota: int = Field(ge=1)
    # Elements per organisation per UTC day evaluated for registrations (keys_per_check per
    # case): every element is one query of the key, which is what a static Diffie-Hellman attack
    # (RFC 9497 section 7.2) needs many of.
    daily_evaluation_quota: int = Field(ge=1)
    # A filter revision is published at least this often, even when nothing changed; 0 publishes
    # inside every changing transaction (the demo network, tests).
    filter_publish_seconds: int = Field(default=3600, ge=0, le=86400)
    # How long a check's evaluated elements are kept for its entries call.
    entry_fetch_window_seconds: int = Field(default=300, ge=30, le=3600)
    # The OPRF key is rotated at least this often (next issue: the job); 90 at most.
    oprf_key_rotation_days: int = Field(default=90, ge=1, le=90)
    # New audit entries become leaves of the transparency log, under a signed tree head, at
    # least this often (server.transparency.sealer).
    audit_seal_interval_seconds: int = Field(default=1, ge=1, le=3600)
    # Witnesses' Ed25519 public keys (hex): the SDK refuses a tree head, filter or key
    # announcement one of them has not cosigned; the server accepts cosignatures only from them.
    witnesses: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=list)
    disclosure_response_deadline_days: int = Field(ge=1, le=90)
    # Until then a late answer is still accepted; after it the requester has decided without one.
    disclosure_expiry_days_after_due: int = Field(ge=1, le=365)
    # Days an ended (closed, withdrawn, expired) disclosure request's metadata is kept.
    disclosure_record_retention_days: int = Field(ge=1, le=3650)
    withdrawn_org_cases: Literal["purge", "keep_until_retention"] = "purge"
    # Notifications (server.notifications): a delivery is tried at most this many times, the
    # n-th retry base * 2^(n-1) seconds after the one before (never more than the maximum);
    # then it stays undeliverable, listed for the admin.
    notification_max_attempts: int = Field(default=16, ge=1, le=50)
    notification_retry_base_seconds: int = Field(default=60, ge=1, le=3600)
    notification_retry_max_seconds: int = Field(default=21600, ge=1, le=7 * 86400)
    # Days before its due date that the holder is reminded of an unanswered request, and
    # before an MoU's expiry that the member and the secretariat are told.
    notification_due_soon_days: int = Field(default=2, ge=1, le=30)
    notification_mou_expiry_days: int = Field(default=30, ge=1, le=365)
    # Days a sent or undeliverable notification is kept: the outbox is not an archive.
    notification_retention_days: int = Field(default=90, ge=1, le=3650)
    allowed_legal_bases: list[LegalBasis] = Field(min_length=1)
    sanctions: list[Sanction] = Field(min_length=1)
    categories: dict[Category, CategoryRule]
    consent_purposes: dict[ConsentPurpose, PurposeRule]

    @model_validator(mode="after")
    def _complete(self) -> NetworkPolicy:
        missing = set(Category) - set(self.categories)
        if missing:
            raise ValueError(f"categories missing a rule: {', '.join(sorted(missing))}")
        # A repeated entry is almost always a typo for another one that is now missing.
        for name in ("allowed_legal_bases", "sanctions", "witnesses"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists an entry twice")
        if not self.consent_purposes:
            raise ValueError("at least one consent purpose is required")
        if self.notification_retry_max_seconds < self.notification_retry_base_seconds:
            raise ValueError(
                "notification_retry_max_seconds must be >= notification_retry_base_seconds"
            )
        if self.daily_evaluation_quota < self.keys_per_check:
            # Below one full registration's keys, some people could never be registered.
            raise ValueError("daily_evaluation_quota must be >= keys_per_check")
        longest_consent = max(rule.max_validity_days for rule in self.consent_purposes.values())
        if self.disclosure_record_retention_days < longest_consent:
            # The applicant's consent lookup and the once-per-applicant hiring outcome read the
            # requests made under a consent; purging them while the consent can still be used
            # would hide a request from the applicant and let an outcome be counted twice.
            raise ValueError(
                "disclosure_record_retention_days must be >= the longest consent validity "
                f"({longest_consent} days)"
            )
        return self

    def max_retention_years(self, category: Category, child_victim: bool) -> int:
        rule = self.categories[category]
        return rule.max_retention_years_child_victim if child_victim else rule.max_retention_years


class PolicyError(Exception):
    """The policy file is missing or invalid; the message names the file and the rule."""


def load_policy(path: Path) -> NetworkPolicy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
    try:
        return NetworkPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyError(f"policy file {path} is invalid: {problems}") from exc
