"""The wire messages of the API (docs/api.md, docs/protocol.md version 2), shared by the server
and the SDK, all in this one module: network keys, cases, consents, checks and entries, the
disclosure workflow and the applicant's consent lookup.

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

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from protocol.disclosure import SEALED_ANSWER_SIZE, SEALED_DETAILS_SIZE
from protocol.vocabulary import DisclosureState, Outcome

__all__ = [
    "CASE_STATUSES",
    "CLOSE_REASONS",
    "CONSENT_STATUSES",
    "MAX_BATCH",
    "OPRF_MODE",
    "OPRF_SUITE",
    "OUTCOMES",
    "STATES",
    "WITHDRAWAL_REASONS",
    "CaseCreate",
    "CaseList",
    "CaseMetadata",
    "CaseOut",
    "CaseRegistered",
    "CaseRekey",
    "CaseUpdate",
    "CaseWithdraw",
    "CheckRequest",
    "CheckResponse",
    "Claim",
    "ConsentCreate",
    "ConsentLookupCheck",
    "ConsentLookupOut",
    "ConsentLookupRequest",
    "ConsentOut",
    "DisclosureAnswerIn",
    "DisclosureCreate",
    "DisclosureList",
    "DisclosureOut",
    "DisclosureOutcomeIn",
    "ElementHex",
    "ElementText",
    "EntriesRequest",
    "EntriesResponse",
    "EntryOut",
    "Filler",
    "Fillers",
    "FilterValues",
    "NetworkKeys",
    "PadOut",
    "SigningKey",
]

OPRF_SUITE = "ristretto255-SHA512"
OPRF_MODE = "voprf"

#: Hard cap on elements in one request, whatever the policy says (the policy's
#: `keys_per_check` is at most 255): bounds the work one request can ask for.
MAX_BATCH = 256

CASE_STATUSES = ("active", "withdrawn")
CONSENT_STATUSES = ("active", "withdrawn", "expired")
WITHDRAWAL_REASONS = ("appeal_upheld", "rectification", "registered_in_error", "other")

# The disclosure workflow (docs/api.md, "Disclosure workflow").
#: `requested → acknowledged → answered → closed`, plus `withdrawn` and `expired`.
STATES: tuple[DisclosureState, ...] = tuple(DisclosureState)
#: Why a request left the open states.
CLOSE_REASONS = (
    "read",  # the requester read the answer and closed it
    "record_withdrawn",  # the holder withdrew the case (appeal upheld, rectification, ...)
    "record_purged",  # the case reached its retention date and was deleted
    "requester_withdrew",  # the requester no longer needs an answer
    "consent_withdrawn",  # the applicant withdrew the consent the request rests on
    "deadline_passed",  # unanswered long after the response deadline
)
#: The hiring outcomes the requester may report (the MDS yearly figures).
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)

Role = Literal["holder", "requester", "oversight"]


ElementHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A ristretto255 element (or public key) as the server sends it: 32 bytes, lower-case hex."""
ProofHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
"""A batch DLEQ proof `c || s` (RFC 9497): 64 bytes."""
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
TagHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
ElementText = Annotated[str, StringConstraints(max_length=128)]
NetworkId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
# A framed signed object (docs/protocol.md, "Signed objects"): header at most 4,096 bytes, then
# the signature and up to 255 cosignatures.
SignedHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){67,29000}$")]
# SealedBox (48 bytes) of hash (32) + n (1) + 256 slots of 34 bytes at most.
SealedKeysHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2}){115,8785}$")]
# A consent's details sealed to the hiring organisation: SealedBox (48 bytes) of 1,024 bytes
# (protocol.consent_details), always 1,072 bytes.
SealedConsentDetailsHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{2144}$")]
# nonce (24) + Poly1305 tag (16) + a handle padded to 256 bytes: always 296 bytes.
SealedHandleHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{592}$")]
"""An element as a client sends it; decoded and validated by the server (see module doc)."""
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=_UUID_PATTERN)]
# Policy vocabulary (category, finding, sanction, legal basis, purpose) travels as plain codes:
# the *policy in force* decides which are allowed, and the server names the rule it applied,
# which an enum check at parse time could not do.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
KeyKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
MouRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/ -]{1,64}$")]
# Sealed blobs of the disclosure workflow are hex of exactly the fixed sizes of
# `protocol.disclosure`: a server that accepted other sizes would let a buggy client leak the
# verdict through the length of its answer.
SealedAnswerHex = Annotated[
    str, StringConstraints(pattern=rf"^[0-9a-f]{{{2 * SEALED_ANSWER_SIZE}}}$")
]
SealedDetailsHex = Annotated[
    str, StringConstraints(pattern=rf"^[0-9a-f]{{{2 * SEALED_DETAILS_SIZE}}}$")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- network keys ---------------------------------------------------------------------------


class SigningKey(_Response):
    """The network signing key (Ed25519) as the server shows it; the SDK trusts it only when its
    SHA-256 equals the fingerprint pinned from the credentials file."""

    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    public_key: ElementHex


class NetworkKeys(_Response):
    """`GET /v1/network/keys`: the signing key and every signed `oprf-key` announcement (framed
    signed objects as hex, in `key_seq` order). Each announcement carries the registration key,
    so one signature authenticates both."""

    network_id: NetworkId
    signing_key: SigningKey
    oprf_keys: list[SignedHex] = Field(min_length=1)
    #: Every rotation of the network signing key, oldest first: a `signing-key` object signed
    #: by the key it replaced and cosigned by the new one, so a client pinned to an older key
    #: can follow the chain to `signing_key` (docs/operations.md, "Key rotation calendar").
    signing_key_history: list[SignedHex] = Field(default_factory=list)


# --- cases ----------------------------------------------------------------------------------


class CaseMetadata(_Request):
    """What a registration says about the finding (never about the person). Its RFC 8785 JSON
    is hashed into `sealed_keys`, so the server cannot pair the keys with other metadata."""

    category: Code
    child_victim: bool
    finding: Code
    sanction: Code
    finding_date: dt.date
    legal_basis: Code
    retention_until: dt.date
    mou_reference: MouRef
    subject_notified_on: dt.date


class CaseCreate(CaseMetadata):
    """`POST /v1/cases`: the metadata, the OPRF key the keys were prepared for, and the keys
    sealed to that key's registration key (docs/protocol.md, "Registration")."""

    key_id: KeyId
    sealed_keys: SealedKeysHex


class CaseOut(_Response):
    """A registered case as its holder sees it. No count of the person's keys: every case has
    exactly `keys_per_check` entries, and the real number is kept nowhere."""

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
    created_at: AwareDatetime
    withdrawn_at: AwareDatetime | None = None
    withdrawal_reason: str | None = None
    withdrawal_note: str | None = None


class CaseRekey(_Request):
    """`POST /v1/cases/{id}/rekey`: the case's keys derived again by its focal point, sealed
    like a registration's and bound to the case's current metadata."""

    key_id: KeyId
    sealed_keys: SealedKeysHex


class PadOut(_Response):
    """A pad entry's point `skS·HashToGroup(pad_input(case_id, index))`."""

    index: Annotated[int, Field(ge=0, le=MAX_BATCH)]
    point: ElementHex


class FilterValues(_Response):
    """The case's `keys_per_check` filter values (sorted, 48-bit integers), for `verify-live`,
    and the pads with one batch DLEQ proof under the key `key_id` (`null` with no pads)."""

    case_id: Uuid
    key_id: KeyId
    key_seq: Annotated[int, Field(ge=1)]
    filter_values: list[Annotated[int, Field(ge=0, lt=2**48)]] = Field(min_length=1)
    pads: list[PadOut]
    pad_proof: ProofHex | None = None


class CaseRegistered(_Response):
    """The answer to `POST /v1/cases`: the case, its filter values, and the sequence number of
    its `case.register` entry in the transparency log."""

    case: CaseOut
    filter_values: FilterValues
    #: The `case.register` log entry's `seq`: its leaf index is given when the sealer places it
    #: (within `audit_seal_interval_seconds`), so the holder asks for its inclusion proof by
    #: this number (`GET /v1/transparency/inclusion?seq=`). None only from older servers.
    log_seq: int | None = None


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
    """`POST /v1/consents`: the receipt of one applicant's specific consent to be checked.

    The HR system's references, the signed form's SHA-256 and the self-declaration travel only
    in `sealed_details`, sealed by the SDK to its own organisation's X25519 key
    (`protocol.consent_details`): the server keeps what it enforces and nothing that could tell
    a reader of its database which applicant a consent is about."""

    purpose: Code
    consented_at: AwareDatetime
    expires_on: dt.date | None = None
    max_checks: Annotated[int, Field(ge=1, le=1000)] | None = None
    sealed_details: SealedConsentDetailsHex


class ConsentOut(_Response):
    """A consent receipt. `lookup_code` is present only in the answer to its creation: the
    server keeps a hash, so it can never show the code again. `sealed_details` is the blob the
    SDK sealed, returned as it was stored (only the hiring organisation can open it)."""

    id: Uuid
    lookup_code: str | None = None
    purpose: str
    consented_at: AwareDatetime
    expires_on: dt.date
    max_checks: int
    checks_used: int
    status: Literal["active", "withdrawn", "expired"]
    withdrawn_at: AwareDatetime | None = None
    sealed_details: SealedConsentDetailsHex


# --- checks ---------------------------------------------------------------------------------


class CheckRequest(_Request):
    """`POST /v1/checks`: exactly `keys_per_check` blinded elements (the applicant's keys padded
    with random points and shuffled), so the server learns nothing of how many keys the person
    has. `rerun_of` only re-runs a check that got 409 `key-rotated`."""

    consent_id: Uuid
    key_id: KeyId
    blinded_elements: list[ElementText] = Field(min_length=1, max_length=MAX_BATCH)
    rerun_of: Uuid | None = None


class CheckResponse(_Response):
    """Evaluations, one batch DLEQ proof, and the signed header of the filter the client must
    test its keys against (framed signed object, hex)."""

    check_id: Uuid
    key_id: KeyId
    evaluated_elements: list[ElementHex] = Field(min_length=1, max_length=MAX_BATCH)
    proof: ProofHex
    filter: SignedHex


class Claim(_Request):
    """One hit: element `index` of the check, the tag of its unblinded `P`, and the Schnorr
    proof that the caller knows `r` with `Z_index = r·P` (`protocol.claim`)."""

    index: Annotated[int, Field(ge=0, lt=MAX_BATCH)]
    tag: TagHex
    proof: ProofHex


class EntriesRequest(_Request):
    """`POST /v1/checks/{check_id}/entries`: at most one claim per element."""

    claims: list[Claim] = Field(min_length=1, max_length=MAX_BATCH)


class EntryOut(_Response):
    tag: TagHex
    sealed_handle: SealedHandleHex


class EntriesResponse(_Response):
    """Every live entry of an active holder with a claimed tag; entries of one tag in
    ascending order of their sealed handle (never the order of registration)."""

    entries: list[EntryOut]


class Filler(_Response):
    """A filler: `prefix` of `skS·HashToGroup(filler_input(k))`, proven with `proof`."""

    k: Annotated[int, Field(ge=1)]
    point: ElementHex


class Fillers(_Response):
    """`GET /v1/registry/fillers` (witnesses, auditors, admins): every filler of the current
    revision with one batch DLEQ proof, so they can check that the filter holds exactly
    `keys_per_check` values per live case and nothing planted."""

    key_id: KeyId
    revision: Annotated[int, Field(ge=1)]
    live_cases: Annotated[int, Field(ge=0)]
    items: list[Filler]
    proof: ProofHex | None = None


# --- disclosure workflow and the applicant's consent lookup --------------------------------


class DisclosureCreate(_Request):
    """`POST /v1/disclosure-requests`: ask the holder of a matched record for its answer.

    `check_id` and `entry_id` must be a verified claim of that check (`POST
    /v1/checks/{id}/entries`), made by the caller's organisation: only a check run under the
    applicant's consent can lead to a request, and the request is under that check's consent.
    The applicant's declared details are always sealed to the holder, so the holder confirms or
    denies that the applicant is the registered person.
    """

    check_id: Uuid
    entry_id: Uuid
    sealed_applicant_details: SealedDetailsHex


class DisclosureAnswerIn(_Request):
    """`POST /v1/disclosure-requests/{id}/answer`: the holder's signed answer, sealed to the
    requester (`protocol.disclosure.seal_answer`).

    `not_same_person` is the one part of an answer the server reads: the holder compared the
    applicant's sealed details and found another person. It is counted per requesting member
    for the secretariat, because a member's software could put other people's keys into a
    check's padding, and only the holders can notice (docs/protocol.md, "Check", step 6).
    """

    sealed_answer: SealedAnswerHex
    not_same_person: bool = False


class DisclosureOutcomeIn(_Request):
    """`POST /v1/disclosure-requests/{id}/outcome`: the applicant's hiring outcome."""

    outcome: Outcome


class DisclosureOut(_Response):
    """One request as the caller may see it.

    `role` says from which side: the holder sees the sealed applicant details, the requester
    the sealed answer and the outcome; the secretariat (`oversight`, overdue requests only) sees
    neither ids of records or consents nor any ciphertext.
    """

    id: Uuid
    role: Role
    requester_org_id: Uuid
    requester_org: str
    holder_org_id: Uuid
    holder_org: str
    state: DisclosureState
    created_at: AwareDatetime
    due_at: AwareDatetime
    overdue: bool
    case_id: Uuid | None = None
    entry_id: Uuid | None = None
    consent_id: Uuid | None = None
    acknowledged_at: AwareDatetime | None = None
    answered_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    close_reason: str | None = None
    outcome: Outcome | None = None
    outcome_at: AwareDatetime | None = None
    sealed_applicant_details: SealedDetailsHex | None = None
    sealed_answer: SealedAnswerHex | None = None


class DisclosureList(_Response):
    items: list[DisclosureOut]
    #: Offset of the next page, when there is one.
    next_offset: int | None = None


class ConsentLookupRequest(_Response):
    """A disclosure request made under the consent: to which organisation, when, and where it
    stands (the applicant's right to know who received their details)."""

    holder_org: str
    requested_at: AwareDatetime
    state: DisclosureState


class ConsentLookupCheck(_Response):
    org: str
    at: AwareDatetime


class ConsentLookupOut(_Response):
    """`GET /v1/consent-lookup/{code}`: what the applicant may know about the use of their
    consent. No applicant or position reference: the code holder sees the use, not HR's notes."""

    consent_id: Uuid
    org: str
    purpose: str
    status: Literal["active", "withdrawn", "expired"]
    consented_at: AwareDatetime
    expires_on: dt.date
    withdrawn_at: AwareDatetime | None = None
    checks: list[ConsentLookupCheck]
    disclosure_requests: list[ConsentLookupRequest]
