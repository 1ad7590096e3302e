"""refcheck client SDK: record consent, check applicants and register cases without ever
sending an identifier to the server.

Quick use (HR system)::

    from client_sdk import Client

    with Client.from_credentials_file("org-b-hr.json") as rc:
        consent_id = rc.record_consent(
            applicant_ref="APP-2026-0042", purpose="recruitment", position_ref="POS-17",
            form_sha256=signed_form_digest, self_declared_finding=False,
        )
        result = rc.check_applicant(
            {"full_name": "Siti Rahmawati", "date_of_birth": "1990-01-31",
             "national_id": "3201234567890001", "nationality": "ID"},
            consent_id,
        )
        print(result.status)          # no_match | match | possible_match

`AsyncClient` offers the same calls, awaited. Both share one I/O-free core
(`client_sdk._core`, protocol version 2): the network signing key is pinned from the
credentials file (a file without it is refused), every OPRF key announcement and filter
is verified against it, every DLEQ proof against the announced key; a check sends exactly
`keys_per_check` blinded elements and looks the applicant's keys up in the signed registry
filter locally (`client_sdk.filter_cache`). The organisations' public keys from the directory
(for sealing and verifying disclosures) are pinned on first use (`client_sdk.pinning`).

Exceptions
----------
Every exception the SDK raises on purpose derives from `RefcheckError`::

    RefcheckError
    ├── CredentialsError          credentials/key/pin file missing, malformed, readable by
    │                             others, wrong passphrase, or naming no network
    │                             signing key fingerprint (before any request)
    ├── InvalidInput (ValueError) an argument cannot be sent (bad date, reference that looks
    │   │                         like a name); raised before any request
    │   └── InvalidPerson         the person record yields no identifier keys
    ├── TransportError            server unreachable / timed out after the allowed retries
    ├── ProtocolViolation         the server's answer fails the SDK's own checks; never
    │   │                         retried, stops a whole check_many batch
    │   ├── ProofInvalid          a DLEQ proof (check, registration pads) does not verify
    │   ├── KeyChanged            the network signing key is not the credentials' (or the
    │   │                         pinned) one, or OPRF key announcements went back
    │   ├── SignatureInvalid      a key announcement or filter header is not signed by the
    │   │                         network signing key (or lacks a witness's cosignature)
    │   ├── LogInconsistent       the transparency log contradicts a tree head seen
    │   │                         before (removed or rewritten entries, a split view)
    │   ├── FilterRejected        the registry filter fails its checks (values, delta)
    │   │   ├── FilterExpired     its signed header has expired
    │   │   ├── FilterRollback    its (key_seq, revision) is lower than one already seen
    │   │   └── FilterWrongKey    it is for another OPRF key than the check's
    │   ├── OrgKeyChanged         an organisation's directory keys are not the pinned ones
    │   │                         (accept a change with `trust_org_keys` after an
    │   │                         out-of-band check of the fingerprint)
    │   ├── InvalidResponse       answer does not match the wire contract (also: an entry
    │   │                         with the applicant's tag that does not open, or opens
    │   │                         as padding)
    │   └── DisclosureNotAuthentic  a sealed disclosure answer is forged (wrong signer),
    │                             replayed from another request, or not sealed to you
    ├── WebhookRejected           a webhook delivery to refuse (`verify_webhook`): malformed,
    │                             forged (WebhookSignatureInvalid), stale (WebhookStale) or
    │                             replayed (WebhookReplayed); see `client_sdk.webhooks`
    └── ApiError                  problem+json refusal (status, type, slug, detail, extra)
        ├── BadRequest                400 bad-request
        │   └── UnsupportedGrantType  400 unsupported-grant-type
        ├── AuthenticationError       401 unauthenticated
        │   ├── InvalidClient         401 invalid-client (token request refused)
        │   └── InvalidToken          401 invalid-token (after one automatic renewal)
        ├── PermissionDenied          403 permission-denied
        │   └── MouInactive           403 mou-inactive
        ├── NotFound                  404 not-found (also: another organisation's id)
        ├── MethodNotAllowed          405 method-not-allowed
        ├── NotAcceptable             406 not-acceptable
        ├── Conflict                  409 conflict
        │   ├── ConsentUnusable       the consent cannot cover another check
        │   │   ├── ConsentExpired    409 consent-expired
        │   │   ├── ConsentWithdrawn  409 consent-withdrawn
        │   │   └── ConsentExhausted  409 consent-exhausted
        │   ├── IdempotencyConflict   409 idempotency-conflict
        │   ├── InvalidTransition     409 invalid-transition (disclosure state, `.state`)
        │   ├── KeyMismatch           409 key-mismatch (the SDK re-reads the keys once)
        │   ├── KeyRotated            409 key-rotated (rotated again during the re-run)
        │   ├── EntryWindowClosed     409 entry-window-closed (a hit followed up too late)
        │   ├── HolderInactive        409 holder-inactive (the holder cannot answer now)
        │   ├── ShortNameTaken        409 short-name-taken (network admin)
        │   ├── OrgStatusTransition   409 status-transition (network admin)
        │   └── LastAdmin             409 last-admin (network admin)
        ├── PayloadTooLarge           413 payload-too-large
        ├── UnsupportedMediaType      415 unsupported-media-type
        ├── InvalidRequest            422 invalid-request
        │   ├── PolicyViolation       422 policy-violation (`.rule`)
        │   ├── InvalidElement        422 invalid-element (`.index`)
        │   ├── WrongElementCount     422 wrong-element-count (after one policy re-read)
        │   ├── ClaimInvalid          422 claim-invalid (an entries claim does not hold)
        │   ├── EntryNotClaimed       422 entry-not-claimed (disclosure request for an entry
        │   │                         the check did not claim)
        │   ├── SealedKeysInvalid     422 sealed-keys-invalid (registration)
        │   ├── RoleNotAllowed        422 role-not-allowed (network admin)
        │   │   └── AlreadyInitialised  422 already-initialised (bootstrap runs once)
        │   ├── CosignatureRefused    422 cosignature-refused (transparency log witness)
        │   └── TreeSizeUnavailable   422 tree-size-unavailable (transparency log)
        ├── QuotaExceeded             429 quota-exceeded (`.retry_after_seconds`)
        │   └── FairShareExceeded     429 fair-share-exceeded (the organisation's share)
        ├── HeadersTooLarge           431 headers-too-large
        └── ServerError               5xx internal-error
            └── ServiceUnavailable    503
                ├── ServerBusy        503 busy
                └── LogNotStarted     503 log-not-started (transparency log)

Mapping is by the problem `type` (`urn:refcheck:problem:<slug>`); an unknown slug falls back
to the class of its HTTP status. Retries (`RetryPolicy`): connection failures, and 429/503
honouring `Retry-After`; never any other refusal.
"""

from __future__ import annotations

from client_sdk._client import AsyncClient, Client
from client_sdk.config import DEFAULT_TIMEOUT, RetryPolicy
from client_sdk.credentials import Credentials, OrgKeys
from client_sdk.disclosures import ApplicantDetails, ConsentLookup, Disclosure, VerifiedAnswer
from client_sdk.errors import (
    AlreadyInitialised,
    ApiError,
    AuthenticationError,
    BadRequest,
    ClaimInvalid,
    Conflict,
    ConsentExhausted,
    ConsentExpired,
    ConsentUnusable,
    ConsentWithdrawn,
    CosignatureRefused,
    CredentialsError,
    DisclosureNotAuthentic,
    EntryNotClaimed,
    EntryWindowClosed,
    FairShareExceeded,
    FilterExpired,
    FilterRejected,
    FilterRollback,
    FilterWrongKey,
    HeadersTooLarge,
    HolderInactive,
    IdempotencyConflict,
    InvalidClient,
    InvalidElement,
    InvalidInput,
    InvalidPerson,
    InvalidRequest,
    InvalidResponse,
    InvalidToken,
    InvalidTransition,
    KeyChanged,
    KeyMismatch,
    KeyRotated,
    LastAdmin,
    LogInconsistent,
    LogNotStarted,
    MethodNotAllowed,
    MouInactive,
    NotAcceptable,
    NotFound,
    OrgKeyChanged,
    OrgStatusTransition,
    PayloadTooLarge,
    PermissionDenied,
    PolicyViolation,
    ProofInvalid,
    ProtocolViolation,
    QuotaExceeded,
    RefcheckError,
    RoleNotAllowed,
    SealedKeysInvalid,
    ServerBusy,
    ServerError,
    ServiceUnavailable,
    ShortNameTaken,
    SignatureInvalid,
    TransportError,
    TreeSizeUnavailable,
    UnsupportedGrantType,
    UnsupportedMediaType,
    WrongElementCount,
)
from client_sdk.filter_cache import FilterSnapshot
from client_sdk.keystore import Keystore
from client_sdk.models import (
    Case,
    CaseRegistration,
    CheckResult,
    CheckStatus,
    Consent,
    DisclosureAnswer,
    LiveCheck,
    Match,
    Registration,
)
from client_sdk.pinning import NetworkState, OprfKey, OrgPublicKeys, org_key_fingerprint
from client_sdk.webhooks import (
    WebhookEvent,
    WebhookRejected,
    WebhookReplayed,
    WebhookReplayGuard,
    WebhookSignatureInvalid,
    WebhookStale,
    verify_webhook,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AlreadyInitialised",
    "ApiError",
    "ApplicantDetails",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "Case",
    "CaseRegistration",
    "CheckResult",
    "CheckStatus",
    "ClaimInvalid",
    "Client",
    "Conflict",
    "Consent",
    "ConsentExhausted",
    "ConsentExpired",
    "ConsentLookup",
    "ConsentUnusable",
    "ConsentWithdrawn",
    "CosignatureRefused",
    "Credentials",
    "CredentialsError",
    "Disclosure",
    "DisclosureAnswer",
    "DisclosureNotAuthentic",
    "EntryNotClaimed",
    "EntryWindowClosed",
    "FairShareExceeded",
    "FilterExpired",
    "FilterRejected",
    "FilterRollback",
    "FilterSnapshot",
    "FilterWrongKey",
    "HeadersTooLarge",
    "HolderInactive",
    "IdempotencyConflict",
    "InvalidClient",
    "InvalidElement",
    "InvalidInput",
    "InvalidPerson",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidToken",
    "InvalidTransition",
    "KeyChanged",
    "KeyMismatch",
    "KeyRotated",
    "Keystore",
    "LastAdmin",
    "LiveCheck",
    "LogInconsistent",
    "LogNotStarted",
    "Match",
    "MethodNotAllowed",
    "MouInactive",
    "NetworkState",
    "NotAcceptable",
    "NotFound",
    "OprfKey",
    "OrgKeyChanged",
    "OrgKeys",
    "OrgPublicKeys",
    "OrgStatusTransition",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyViolation",
    "ProofInvalid",
    "ProtocolViolation",
    "QuotaExceeded",
    "RefcheckError",
    "Registration",
    "RetryPolicy",
    "RoleNotAllowed",
    "SealedKeysInvalid",
    "ServerBusy",
    "ServerError",
    "ServiceUnavailable",
    "ShortNameTaken",
    "SignatureInvalid",
    "TransportError",
    "TreeSizeUnavailable",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "VerifiedAnswer",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookReplayGuard",
    "WebhookReplayed",
    "WebhookSignatureInvalid",
    "WebhookStale",
    "WrongElementCount",
    "org_key_fingerprint",
    "verify_webhook",
]
