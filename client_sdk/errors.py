"""The SDK's exception tree, and the one function that maps a problem+json answer onto it.

The server names every refusal with a stable `type` URI, `urn:refcheck:problem:<slug>`
(docs/api.md, server/errors.py). We map by that slug, not by the HTTP status, because several
refusals share a status (409 is an expired consent, an exhausted one, an idempotency conflict or a
rotated key) and an HR system must react differently to each. A slug this SDK does not know yet
still maps to the class of its status family, so a newer server never surfaces as a bare crash.

Nothing here ever puts a personal identifier in a message: the server's `detail` is free of them
by contract, and the SDK's own messages name fields, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_BASE = "urn:refcheck:problem:"

__all__ = [
    "PROBLEM_BASE",
    "AlreadyInitialised",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "ClaimInvalid",
    "Conflict",
    "ConsentExhausted",
    "ConsentExpired",
    "ConsentUnusable",
    "ConsentWithdrawn",
    "CosignatureRefused",
    "CredentialsError",
    "DisclosureNotAuthentic",
    "EntryNotClaimed",
    "EntryWindowClosed",
    "FairShareExceeded",
    "FilterExpired",
    "FilterRejected",
    "FilterRollback",
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
    "LastAdmin",
    "LogInconsistent",
    "LogNotStarted",
    "MethodNotAllowed",
    "MouInactive",
    "NotAcceptable",
    "NotFound",
    "OrgKeyChanged",
    "OrgStatusTransition",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyViolation",
    "ProofInvalid",
    "ProtocolViolation",
    "QuotaExceeded",
    "RefcheckError",
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
    "WrongElementCount",
    "error_from_response",
]


class RefcheckError(Exception):
    """Base of every exception the SDK raises on purpose."""


class CredentialsError(RefcheckError):
    """A credentials or key file is missing, malformed, too widely readable, or its passphrase
    is wrong. Raised before any request is sent."""


class InvalidInput(RefcheckError, ValueError):
    """An argument cannot be sent: a date that is not ISO, a reference that looks like a name
    or e-mail, a person record without enough to derive a key. Raised before any request; the
    message names the field, never its value."""


class InvalidPerson(InvalidInput):
    """The person record cannot be turned into identifier keys (see `protocol.identity`)."""


class TransportError(RefcheckError):
    """The server could not be reached (connection refused, DNS, timeout) even after the
    retries the `RetryPolicy` allows. Nothing is known about whether the server acted."""


class ProtocolViolation(RefcheckError):
    """The server's answer fails a check the SDK makes on its own behalf.

    Never retried and never ignored: continuing would mean trusting a server that has just shown
    it cannot be trusted (see design/protocol.md, "Threats this design answers").
    """


class ProofInvalid(ProtocolViolation):
    """A DLEQ proof does not verify: the server did not evaluate with the key it published,
    or the answer was altered on the way. Its result is discarded."""


class KeyChanged(ProtocolViolation):
    """The network's keys are not the ones this client trusts.

    Either the network signing key the server shows is not the one pinned (from the credentials
    file's `network_signing_key_sha256`), or the server announces OPRF keys
    older than one already seen (`key_seq` going back). A server that evaluates different
    clients under different keys can partition them or silently suppress matches, and every
    OPRF key and filter is trusted only through the signing key; so nothing is sent until the
    keys are right. `pinned_key_id` and `server_key_id` name what was expected and what was
    offered (a signing key's SHA-256, or OPRF key ids).
    """

    def __init__(self, message: str, *, pinned_key_id: str, server_key_id: str) -> None:
        super().__init__(message)
        self.pinned_key_id = pinned_key_id
        self.server_key_id = server_key_id


class LogInconsistent(ProtocolViolation):
    """The network's transparency log contradicts a tree head this client verified before:
    the new head is smaller, or has another root at the same size, or its consistency proof
    does not verify. Entries were removed or rewritten, or the server shows this client a
    different log than others (a split view). Alert the network secretariat: this is evidence,
    so keep the pin file. `first_size` is the tree size this client trusted, `second_size` the
    one the server offered."""

    def __init__(self, message: str, *, first_size: int, second_size: int) -> None:
        super().__init__(
            f"{message} (trusted tree size {first_size}, offered {second_size}); "
            "alert the network secretariat"
        )
        self.first_size = first_size
        self.second_size = second_size


class SignatureInvalid(ProtocolViolation):
    """A signed object (an OPRF key announcement, a filter header or a filter delta) does not
    verify against the pinned network signing key, names another network or type, or lacks a
    witness's cosignature the policy requires. Whatever it said is not used."""


class FilterRejected(ProtocolViolation):
    """The registry filter (or the header a check answer names) fails the SDK's checks: its
    values do not hash to the signed `sha256`, or a delta does not lead to the filter the check
    vouched for. The subclasses name the usual lies."""


class FilterExpired(FilterRejected):
    """The signed filter header's `expires_at` has passed: a server replaying an old filter
    (one without an entry registered since) would make a registered person look clean."""


class FilterRollback(FilterRejected):
    """The filter's `(key_seq, revision)` is lower than one this client has already seen:
    a server going back to an earlier filter."""


class FilterWrongKey(FilterRejected):
    """The filter is for another OPRF key than the check's: its values cannot hold the check's
    pseudonyms, so every lookup would miss."""


class OrgKeyChanged(ProtocolViolation):
    """An organisation's public keys in the directory differ from the ones pinned on first use.

    Those keys come from the server (`GET /v1/directory`): a server that swapped a holder's
    X25519 key could read the applicant details sealed to it, and one that swapped its Ed25519
    key could forge its answer. So, as for the OPRF key, a change is accepted only after it was
    confirmed with the organisation out of band and pinned deliberately
    (`Client.trust_org_keys`, `refcheck keys trust ORG`). Both fingerprints are given so that a
    person can compare them with the one the organisation reads out.
    """

    def __init__(
        self,
        message: str,
        *,
        org_id: str,
        org: str,
        pinned_fingerprint: str | None,
        directory_fingerprint: str,
        changed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.org_id = org_id
        self.org = org
        self.pinned_fingerprint = pinned_fingerprint
        self.directory_fingerprint = directory_fingerprint
        self.changed = changed


class InvalidResponse(ProtocolViolation):
    """The answer is not what docs/api.md promises (missing field, wrong length, a handle
    that does not parse). Treated like a failed proof: the result is not used."""


class DisclosureNotAuthentic(ProtocolViolation):
    """A sealed disclosure answer (or applicant details) does not open with this organisation's
    key, is not signed by the organisation it claims to come from (a forged answer), or was
    made for another request (a replayed one). Its content is never returned."""


class ApiError(RefcheckError):
    """The server refused or failed a request and said why in problem+json (RFC 9457).

    Attributes: `status` (HTTP status), `type` (the full problem URI), `slug` (its last part),
    `title`, `detail`, and `extra` (every other member, e.g. `rule` or `retry_after_seconds`).
    """

    slug: ClassVar[str] = ""

    def __init__(
        self,
        detail: str,
        *,
        status: int,
        type: str | None = None,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type or PROBLEM_BASE + (self.slug or "http-error")
        self.title = title or detail
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra or {})

    @property
    def problem_slug(self) -> str:
        """The slug the server actually sent (may be one this SDK version does not know)."""
        return self.type.removeprefix(PROBLEM_BASE)

    def __str__(self) -> str:
        return f"{self.detail} ({self.problem_slug}, HTTP {self.status})"


class BadRequest(ApiError):
    slug = "bad-request"


class UnsupportedGrantType(BadRequest):
    """400: the token request's grant type is not `client_credentials` (a client bug)."""

    slug = "unsupported-grant-type"


class MethodNotAllowed(ApiError):
    """405: the endpoint does not take this HTTP method (`Client.request` with a wrong one)."""

    slug = "method-not-allowed"


class NotAcceptable(ApiError):
    """406: the endpoint cannot answer in the media type the request asked for."""

    slug = "not-acceptable"


class PayloadTooLarge(ApiError):
    """413: the request body is larger than the server accepts."""

    slug = "payload-too-large"


class UnsupportedMediaType(ApiError):
    """415: the request body is not in a media type the endpoint takes (JSON or a form)."""

    slug = "unsupported-media-type"


class HeadersTooLarge(ApiError):
    """431: the request's headers are larger than the server accepts."""

    slug = "headers-too-large"


class AuthenticationError(ApiError):
    """401: the SDK could not authenticate. Check the credentials file and the server clock."""

    slug = "unauthenticated"


class InvalidClient(AuthenticationError):
    """The client assertion was refused: unknown client id, wrong key, deactivated principal,
    or a clock far off (assertions live at most 300 s)."""

    slug = "invalid-client"


class InvalidToken(AuthenticationError):
    """The access token was refused. The SDK renews it once by itself before raising this."""

    slug = "invalid-token"


class PermissionDenied(ApiError):
    """403: this principal's roles do not include the permission the endpoint needs."""

    slug = "permission-denied"


class MouInactive(PermissionDenied):
    """403: the organisation's MoU (status, expiry, data-sharing agreement, permitted actions)
    does not allow this registration or check."""

    slug = "mou-inactive"


class NotFound(ApiError):
    """404: no such resource, or one of another organisation (they answer alike on purpose)."""

    slug = "not-found"


class Conflict(ApiError):
    """409: the request conflicts with the current state of the resource."""

    slug = "conflict"


class ConsentUnusable(Conflict):
    """409: the consent cannot cover another check. Record a new consent; never reuse one
    given for another recruitment (consent is specific and not retroactive)."""


class ConsentExpired(ConsentUnusable):
    slug = "consent-expired"


class ConsentWithdrawn(ConsentUnusable):
    slug = "consent-withdrawn"


class ConsentExhausted(ConsentUnusable):
    """Every check the consent allowed (`max_checks`) has been used."""

    slug = "consent-exhausted"


class IdempotencyConflict(Conflict):
    """The `Idempotency-Key` was already used with a different body."""

    slug = "idempotency-conflict"


class KeyMismatch(Conflict):
    """The request named an OPRF `key_id` that is not the server's current key.

    The SDK reacts by re-reading the signed key announcements once and trying again under the
    newest one (never an older one than it has seen).
    """

    slug = "key-mismatch"


class KeyRotated(Conflict):
    """409: the network rotated its OPRF key between this check and its entries call.

    `check_applicant` re-runs such a check once by itself, under the newly announced key and
    naming the original (`rerun_of`: same consent, no budget spent again); this surfaces only
    when the re-run is caught by another rotation, or no newer key is announced."""

    slug = "key-rotated"


class EntryWindowClosed(Conflict):
    """409: the check's evaluations were kept for `entry_fetch_window_seconds` only and that
    window has passed; a hit can only be followed up by checking again under the consent."""

    slug = "entry-window-closed"


class HolderInactive(Conflict):
    """409: the organisation holding the record cannot answer disclosure requests now."""

    slug = "holder-inactive"


class ShortNameTaken(Conflict):
    """409: network admin: another organisation already uses this short name."""

    slug = "short-name-taken"


class OrgStatusTransition(Conflict):
    """409: network admin: this change of an organisation's status is not allowed."""

    slug = "status-transition"


class LastAdmin(Conflict):
    """409: network admin: the last active network admin cannot be deactivated."""

    slug = "last-admin"


class InvalidTransition(Conflict):
    """409: the disclosure request's state does not allow this action; `state` names it."""

    slug = "invalid-transition"

    @property
    def state(self) -> str | None:
        state = self.extra.get("state")
        return state if isinstance(state, str) else None


class InvalidRequest(ApiError):
    """422: the request failed validation; `extra["errors"]` lists `{"field", "message"}`, and
    `field_errors` reads them as pairs, shown as `date_of_birth: not a real calendar date`."""

    slug = "invalid-request"

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """`(field, message)` per problem the server named (older servers sent `loc`/`msg`)."""
        out: list[tuple[str, str]] = []
        raw = self.extra.get("errors")
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict):
                continue
            name = item.get("field")
            if not isinstance(name, str):
                loc = item.get("loc")
                parts = [str(p) for p in loc] if isinstance(loc, list) else []
                if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
                    parts = parts[1:]
                name = ".".join(parts) or "(request)"
            message = item.get("message", item.get("msg", "invalid"))
            out.append((name, str(message)))
        return out

    def __str__(self) -> str:
        fields = self.field_errors
        if not fields:
            return super().__str__()
        named = "; ".join(f"{name}: {message}" for name, message in fields)
        return f"{named} ({self.problem_slug}, HTTP {self.status})"


class PolicyViolation(InvalidRequest):
    """422: the network policy does not allow this; `rule` names which rule (e.g. `retention`,
    `legal_basis`, `keys_per_check`)."""

    slug = "policy-violation"

    @property
    def rule(self) -> str | None:
        rule = self.extra.get("rule")
        return rule if isinstance(rule, str) else None


class InvalidElement(InvalidRequest):
    """422: a blinded element is not a valid group element, or repeats one; `index` says which."""

    slug = "invalid-element"

    @property
    def index(self) -> int | None:
        index = self.extra.get("index")
        return index if isinstance(index, int) else None


class WrongElementCount(InvalidRequest):
    """422: a check must carry exactly the policy's `keys_per_check` elements. The SDK re-reads
    the policy once and tries again before raising this."""

    slug = "wrong-element-count"


class ClaimInvalid(InvalidRequest):
    """422: a claim of the entries call does not hold for this check (index, repeat, proof)."""

    slug = "claim-invalid"


class EntryNotClaimed(InvalidRequest):
    """422: a disclosure request names an entry that no verified claim of that check (by this
    organisation) named, or that is no longer live: check the applicant again."""

    slug = "entry-not-claimed"


class SealedKeysInvalid(InvalidRequest):
    """422: a registration's `sealed_keys` cannot be used (not for this key or metadata)."""

    slug = "sealed-keys-invalid"


class RoleNotAllowed(InvalidRequest):
    """422: network admin: this role is not allowed for this organisation."""

    slug = "role-not-allowed"


class AlreadyInitialised(RoleNotAllowed):
    """422: the network is initialised already (bootstrap runs once)."""

    slug = "already-initialised"


class CosignatureRefused(InvalidRequest):
    """422: a witness's cosignature of the transparency log's tree head was refused."""

    slug = "cosignature-refused"


class TreeSizeUnavailable(InvalidRequest):
    """422: the transparency log has no signed tree of the size asked for."""

    slug = "tree-size-unavailable"


class QuotaExceeded(ApiError):
    """429: one of the organisation's daily quotas is used up: checks (`POST /v1/checks`) or
    evaluated elements (`POST /v1/cases`: every registration evaluates `keys_per_check`).

    `retry_after_seconds` says when to try again. The SDK waits and retries by itself only when
    that wait is within `RetryPolicy.max_retry_after`.
    """

    slug = "quota-exceeded"

    @property
    def retry_after_seconds(self) -> int | None:
        value = self.extra.get("retry_after_seconds")
        return value if isinstance(value, int) else None


class FairShareExceeded(QuotaExceeded):
    """429: the organisation is using its share of the server; retry after the time given."""

    slug = "fair-share-exceeded"


class ServerError(ApiError):
    """5xx: the server failed. Retried when it is a 503; surfaces after the retries."""

    slug = "internal-error"


class ServiceUnavailable(ServerError):
    slug = "service-unavailable"


class ServerBusy(ServiceUnavailable):
    """503: the server is busy; retried by the SDK, honouring `Retry-After`."""

    slug = "busy"


class LogNotStarted(ServiceUnavailable):
    """503: the transparency log has no signed tree head yet (a new network)."""

    slug = "log-not-started"


_BY_SLUG: dict[str, type[ApiError]] = {
    cls.slug: cls
    for cls in (
        BadRequest,
        AuthenticationError,
        InvalidClient,
        InvalidToken,
        PermissionDenied,
        MouInactive,
        NotFound,
        Conflict,
        ConsentExpired,
        ConsentWithdrawn,
        ConsentExhausted,
        IdempotencyConflict,
        KeyMismatch,
        KeyRotated,
        EntryWindowClosed,
        InvalidTransition,
        InvalidRequest,
        PolicyViolation,
        WrongElementCount,
        ClaimInvalid,
        EntryNotClaimed,
        SealedKeysInvalid,
        InvalidElement,
        QuotaExceeded,
        ServerError,
        ServiceUnavailable,
        UnsupportedGrantType,
        MethodNotAllowed,
        NotAcceptable,
        PayloadTooLarge,
        UnsupportedMediaType,
        HeadersTooLarge,
        HolderInactive,
        ShortNameTaken,
        OrgStatusTransition,
        LastAdmin,
        RoleNotAllowed,
        AlreadyInitialised,
        CosignatureRefused,
        TreeSizeUnavailable,
        FairShareExceeded,
        ServerBusy,
        LogNotStarted,
    )
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: QuotaExceeded,
    503: ServiceUnavailable,
}


_FAMILIES: tuple[tuple[int, type[ApiError]], ...] = (
    (400, BadRequest),
    (401, AuthenticationError),
    (403, PermissionDenied),
    (404, NotFound),
    (405, MethodNotAllowed),
    (406, NotAcceptable),
    (409, Conflict),
    (413, PayloadTooLarge),
    (415, UnsupportedMediaType),
    (422, InvalidRequest),
    (429, QuotaExceeded),
    (431, HeadersTooLarge),
)


def _class_for(slug: str, status: int) -> type[ApiError]:
    known = _BY_SLUG.get(slug)
    if known is not None:
        expected = next((code for code, fam in _FAMILIES if issubclass(known, fam)), None)
        # A slug is trusted only with a status of its own family: "consent-expired" on a 500 is a
        # broken answer, and then the status is the safer guide.
        if status == expected or (expected is None and status >= 500):
            return known
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return ApiError


def error_from_response(status: int, body: Any, *, retry_after: str | None = None) -> ApiError:
    """Build the exception for an error answer: `body` is the decoded JSON (or None).

    Works for problem+json and for bare answers (a proxy's HTML 502 page has no body we can use;
    it still becomes a `ServerError` with the status).
    """
    problem = body if isinstance(body, dict) else {}
    type_uri = problem.get("type")
    slug = ""
    if isinstance(type_uri, str) and type_uri.startswith(PROBLEM_BASE):
        slug = type_uri.removeprefix(PROBLEM_BASE)
    else:
        type_uri = None
    detail = problem.get("detail")
    title = problem.get("title")
    if not isinstance(detail, str) or not detail:
        detail = title if isinstance(title, str) and title else f"HTTP {status}"
    extra = {k: v for k, v in problem.items() if k not in {"type", "title", "status", "detail"}}
    if retry_after is not None and "retry_after_seconds" not in extra:
        try:
            extra["retry_after_seconds"] = int(retry_after)
        except ValueError:
            pass
    cls = _class_for(slug, status)
    return cls(
        detail,
        status=status,
        type=type_uri,
        title=title if isinstance(title, str) else None,
        extra=extra,
    )
