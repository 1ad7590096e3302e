"""Wire messages of the blind-match endpoints (docs/api.md), shared by the server and the SDK.

One definition for both ends, so a field renamed or retyped on one side cannot silently stop
matching: the server's schemas re-export these models and the SDK builds and parses with them.
This module uses pydantic only (no web or database imports), so the base install stays small.

Conventions (docs/api.md): bytes are lower-case hex, dates `YYYY-MM-DD`, times RFC 3339 with an
offset. Request models forbid unknown fields, so a misspelt field (say `retention_untill`) is
refused instead of silently falling back to a default; response models ignore unknown fields,
so the server can add a field without breaking deployed SDKs.

Elements sent *to* the server (`blinded_elements`, a case's pseudonym `element`) are only
checked here for being short text: whether they are valid group elements is the server's
decision, and it answers every bad element, whatever is wrong with it (not hex, wrong length,
non-canonical, identity), with one `invalid-element` problem naming its index. Everything the
server sends back is validated to the exact length here, so the SDK never feeds a malformed
value to the OPRF.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "BUCKET_MAX",
    "CASE_STATUSES",
    "CONSENT_STATUSES",
    "MAX_BATCH",
    "OPRF_MODE",
    "OPRF_SUITE",
    "WITHDRAWAL_REASONS",
    "BucketEntries",
    "BucketEntry",
    "CaseCreate",
    "CaseList",
    "CaseOut",
    "CaseUpdate",
    "CaseWithdraw",
    "CheckRequest",
    "CheckResponse",
    "ConsentCreate",
    "ConsentOut",
    "ElementHex",
    "ElementText",
    "OprfEvaluateRequest",
    "OprfEvaluateResponse",
    "OprfKey",
    "PseudonymIn",
]

OPRF_SUITE = "ristretto255-SHA512"
OPRF_MODE = "voprf"

#: Hard cap on elements in one request, whatever the policy says (the policy's own cap,
#: `max_keys_per_check`, is at most 256): bounds the work one request can ask for.
MAX_BATCH = 256
#: Largest bucket number the wire accepts (24 bits, the most `protocol.pseudonym.bucket` emits);
#: the server narrows it to the network's `bucket_bits`.
BUCKET_MAX = 2**24 - 1

CASE_STATUSES = ("active", "withdrawn")
CONSENT_STATUSES = ("active", "withdrawn", "expired")
WITHDRAWAL_REASONS = ("appeal_upheld", "rectification", "registered_in_error", "other")


ElementHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A ristretto255 element (or public key) as the server sends it: 32 bytes, lower-case hex."""
ProofHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
"""A batch DLEQ proof `c || s` (RFC 9497): 64 bytes."""
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
TagHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
# nonce (24) + Poly1305 tag (16) + a handle's JSON; 2 KiB is far above any real handle.
SealedHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){41,2048}$")]
ElementText = Annotated[str, StringConstraints(max_length=128)]
"""An element as a client sends it; decoded and validated by the server (see module doc)."""
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=_UUID_PATTERN)]
# Policy vocabulary (category, finding, sanction, legal basis, purpose) travels as plain codes:
# the *policy in force* decides which are allowed, and the server names the rule it applied,
# which an enum check at parse time could not do.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
KeyKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Strength = Literal["strong", "exact", "variant"]
# References chosen by a member's own systems. The narrow alphabet (no spaces, no '@') keeps
# names and e-mail addresses out: these must be opaque ids, never identifiers of the applicant.
OpaqueRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
MouRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/ -]{1,64}$")]
Bucket = Annotated[int, Field(ge=0, le=BUCKET_MAX)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- OPRF -----------------------------------------------------------------------------------


class OprfKey(_Response):
    """`GET /v1/oprf/key`: the key the SDK pins; a change it was not told about is refused."""

    suite: Literal["ristretto255-SHA512"] = "ristretto255-SHA512"
    mode: Literal["voprf"] = "voprf"
    key_id: KeyId
    public_key: ElementHex


class OprfEvaluateRequest(_Request):
    """`POST /v1/oprf/evaluate`: blind evaluation for a focal point preparing a registration."""

    purpose: Literal["register"]
    blinded_elements: list[ElementText] = Field(min_length=1, max_length=MAX_BATCH)


class OprfEvaluateResponse(_Response):
    key_id: KeyId
    evaluated_elements: list[ElementHex] = Field(min_length=1, max_length=MAX_BATCH)
    proof: ProofHex


# --- cases ----------------------------------------------------------------------------------


class PseudonymIn(_Request):
    """One registered key: its kind and strength (shown to a matching checker), its bucket, and
    the unblinded element `P`. Nothing else about the person reaches the server."""

    kind: KeyKind
    strength: Strength
    bucket: Bucket
    element: ElementText


class CaseCreate(_Request):
    """`POST /v1/cases`."""

    category: Code
    child_victim: bool
    finding: Code
    sanction: Code
    finding_date: dt.date
    legal_basis: Code
    retention_until: dt.date
    mou_reference: MouRef
    subject_notified_on: dt.date
    key_id: KeyId
    pseudonyms: list[PseudonymIn] = Field(min_length=1, max_length=MAX_BATCH)


class CaseOut(_Response):
    id: Uuid
    org_id: Uuid
    category: str
    child_victim: bool
    finding: str
    sanction: str
    finding_date: dt.date
    legal_basis: str
    retention_until: dt.date
    mou_reference: str
    subject_notified_on: dt.date
    status: Literal["active", "withdrawn"]
    pseudonym_count: int
    created_at: AwareDatetime
    withdrawn_at: AwareDatetime | None = None
    withdrawal_reason: str | None = None
    withdrawal_note: str | None = None


class CaseList(_Response):
    items: list[CaseOut]
    #: Offset of the next page (`GET /v1/cases?offset=`), when there is one.
    next_offset: int | None = None


class CaseUpdate(_Request):
    """`PATCH /v1/cases/{id}`: only the retention date may change (and only within policy)."""

    retention_until: dt.date


class CaseWithdraw(_Request):
    """`POST /v1/cases/{id}/withdraw`. The note is for the holder's own records: no names."""

    reason: Literal["appeal_upheld", "rectification", "registered_in_error", "other"]
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


# --- consents -------------------------------------------------------------------------------


class ConsentCreate(_Request):
    """`POST /v1/consents`: the receipt of one applicant's specific consent to be checked."""

    applicant_ref: OpaqueRef
    purpose: Code
    position_ref: OpaqueRef
    form_sha256: Sha256Hex
    self_declared_finding: bool
    consented_at: AwareDatetime
    expires_on: dt.date | None = None
    max_checks: Annotated[int, Field(ge=1, le=1000)] | None = None


class ConsentOut(_Response):
    """A consent receipt. `lookup_code` is present only in the answer to its creation: the
    server keeps a hash, so it can never show the code again."""

    id: Uuid
    lookup_code: str | None = None
    applicant_ref: str
    purpose: str
    position_ref: str
    form_sha256: Sha256Hex
    self_declared_finding: bool
    consented_at: AwareDatetime
    expires_on: dt.date
    max_checks: int
    checks_used: int
    status: Literal["active", "withdrawn", "expired"]
    withdrawn_at: AwareDatetime | None = None


# --- checks ---------------------------------------------------------------------------------


class CheckRequest(_Request):
    """`POST /v1/checks`: all of one applicant's blinded keys and their buckets, in one request,
    so the server cannot relate keys of one person across requests any better than within one."""

    consent_id: Uuid
    key_id: KeyId
    blinded_elements: list[ElementText] = Field(min_length=1, max_length=MAX_BATCH)
    buckets: list[Bucket] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _same_length(self) -> CheckRequest:
        if len(self.blinded_elements) != len(self.buckets):
            raise ValueError("blinded_elements and buckets must have the same length")
        return self


class BucketEntry(_Response):
    tag: TagHex
    sealed_handle: SealedHex


class BucketEntries(_Response):
    bucket: Bucket
    entries: list[BucketEntry]


class CheckResponse(_Response):
    """Evaluations, one proof, and the full content of every requested bucket. The server sends
    the same thing whether or not the applicant is registered: it cannot know."""

    check_id: Uuid
    key_id: KeyId
    evaluated_elements: list[ElementHex] = Field(min_length=1, max_length=MAX_BATCH)
    proof: ProofHex
    buckets: list[BucketEntries]
