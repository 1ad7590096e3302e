"""The I/O-free core shared by `Client` and `AsyncClient`.

Every high-level call is written once, as a generator that yields `ApiRequest`s and receives the
`httpx.Response` to each (sans-I/O, like h11 or httpx's own auth flows). The sync and async
clients differ only in how they *send*: retries, token renewal and error mapping live in their
drivers, and what a request means and what an answer must satisfy lives here. That way the
cryptographic checks (DLEQ proof, key pin, bucket completeness, handle integrity) cannot differ
between the two clients.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from client_sdk.errors import (
    InvalidInput,
    InvalidPerson,
    InvalidResponse,
    KeyMismatch,
    ProofInvalid,
    ProtocolViolation,
)
from client_sdk.models import Case, CheckResult, Consent, Match
from client_sdk.pinning import KeyPin, PinnedKey
from protocol import messages as wire
from protocol.errors import DeserializeError, InvalidInputError, VerifyError

M = TypeVar("M", bound=pydantic.BaseModel)

T = TypeVar("T")
#: A call: yields requests, is sent the response to each, returns the result.
Op = Generator["ApiRequest", httpx.Response, T]

DateLike = date | str


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request, as data. `idempotent` says whether sending it twice is harmless, which
    decides whether a dropped connection may be retried (see `RetryPolicy`)."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    #: A form body made afresh for every attempt (the token request signs a new assertion each
    #: time: the server refuses a replayed `jti`, even one it saw only in a failed attempt).
    form: Callable[[], Mapping[str, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: bool = True
    idempotent: bool = False
    #: False for `Client.request`: hand back error answers instead of raising.
    raise_errors: bool = True

    @property
    def retry_safe(self) -> bool:
        return (
            self.idempotent or self.method in {"GET", "HEAD"} or "Idempotency-Key" in self.headers
        )


def seg(value: str) -> str:
    """Quote one path segment: an id is never allowed to become `../orgs` in a URL."""
    return quote(str(value), safe="")


def iso_date(value: DateLike | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a date, not a datetime")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an ISO date (YYYY-MM-DD)") from None


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise InvalidResponse("the server's answer is not JSON") from None


def parse(model: type[M], response: httpx.Response) -> M:
    """Validate an answer against its wire model; anything off is an `InvalidResponse`."""
    try:
        return model.model_validate(json_body(response))
    except pydantic.ValidationError:
        # The validation message could quote the answer's content; the class name is enough.
        raise InvalidResponse(f"the server's answer is not a valid {model.__name__}") from None


def build(model: type[pydantic.BaseModel], **fields: Any) -> dict[str, Any]:
    """Validate a request body before it leaves (`InvalidInput` names the field, never the value)
    and return its JSON form."""
    try:
        return model(**fields).model_dump(mode="json", exclude_none=True)
    except pydantic.ValidationError as exc:
        names = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise InvalidInput(f"invalid {', '.join(names)} for {model.__name__}") from None


@dataclass(frozen=True)
class _BlindedKey:
    kind: str
    strength: str
    bucket: int
    blind: bytes = field(repr=False)
    blinded: bytes = field(repr=False)


def _derive(person: Any) -> list[tuple[str, str, bytes]]:
    """The applicant's keys via `protocol.identity` (which already removes duplicates)."""
    from protocol.identity import InvalidPersonError, derive_keys

    try:
        derived = derive_keys(person)
    except InvalidPersonError as exc:
        # The identity module's messages name the field and rule, never the value.
        raise InvalidPerson(str(exc)) from None
    if not derived:
        raise InvalidPerson("the person record yields no identifier key")
    return [(key.kind, key.strength.value, key.value) for key in derived]


def _blind_all(person: Any, key: PinnedKey, bucket_bits: int) -> list[_BlindedKey]:
    from protocol.oprf import VOPRFClient
    from protocol.pseudonym import bucket

    client = VOPRFClient(key.public_key)
    out = []
    for kind, strength, value in _derive(person):
        blind, blinded = client.blind(value)
        out.append(_BlindedKey(kind, strength, bucket(value, bucket_bits), blind, blinded))
    return out


def _unblind(
    key: PinnedKey,
    keys: Sequence[_BlindedKey],
    answer: wire.OprfEvaluateResponse | wire.CheckResponse,
    *,
    what: str,
) -> list[bytes]:
    """Verify the batch DLEQ proof against the *pinned* key and unblind to the `P` values."""
    from protocol.oprf import VOPRFClient

    if answer.key_id != key.key_id:
        raise InvalidResponse(f"{what} answer names another OPRF key than the pinned one")
    if len(answer.evaluated_elements) != len(keys):
        raise InvalidResponse(f"{what} answer has the wrong number of evaluated elements")
    elements = [bytes.fromhex(e) for e in answer.evaluated_elements]
    try:
        return VOPRFClient(key.public_key).verify_and_unblind(
            [k.blind for k in keys],
            [k.blinded for k in keys],
            elements,
            bytes.fromhex(answer.proof),
        )
    except VerifyError:
        raise ProofInvalid(
            f"the {what} proof does not verify against the published OPRF key"
        ) from None
    except (DeserializeError, InvalidInputError):
        # An evaluated element that is not a valid group element cannot pass a proof either.
        raise ProofInvalid(f"the {what} answer holds an invalid group element") from None


def _bucket_entries(
    answer: wire.CheckResponse, requested: set[int]
) -> dict[int, list[tuple[bytes, bytes]]]:
    out = {
        b.bucket: [(bytes.fromhex(e.tag), bytes.fromhex(e.sealed_handle)) for e in b.entries]
        for b in answer.buckets
    }
    # Every requested bucket must be answered: a server that drops one would turn a match into a
    # silent "no match" for exactly the keys in it.
    if not requested <= set(out):
        raise InvalidResponse("check answer omits a requested bucket")
    return out


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Core:
    """Per-client protocol state (the verified OPRF key, the bucket width) and the operations.

    Holds no secret beyond what a single call needs: blinds and `P` values live in the local
    variables of the operation that made them and are gone when it returns.
    """

    #: Cases asked for per page when listing (the server's maximum).
    case_page_size: int = 500

    def __init__(self, pin: KeyPin) -> None:
        self.pin = pin
        self._key: PinnedKey | None = None
        self._bucket_bits: int | None = None
        self._lock = threading.Lock()

    # -- shared state ---------------------------------------------------------------------

    def oprf_key(self, *, refresh: bool = False) -> Op[PinnedKey]:
        """The server's current key, checked against the pin (first use pins it)."""
        if refresh:
            with self._lock:
                self._key = None
        if self._key is not None:
            return self._key
        response = yield ApiRequest("GET", "/v1/oprf/key")
        published = parse(wire.OprfKey, response)
        key = self.pin.check(PinnedKey(published.key_id, bytes.fromhex(published.public_key)))
        with self._lock:
            self._key = key
        return key

    def bucket_bits(self) -> Op[int]:
        if self._bucket_bits is not None:
            return self._bucket_bits
        response = yield ApiRequest("GET", "/v1/policy")
        body = json_body(response)
        bits = body.get("bucket_bits") if isinstance(body, dict) else None
        # The prefix length decides the crowd a checked key hides in: refuse a policy that
        # asks for more than the protocol's cap, which would let the server narrow it down.
        from protocol.pseudonym import BUCKET_BITS_MAX, BUCKET_BITS_MIN

        if not isinstance(bits, int) or not BUCKET_BITS_MIN <= bits <= BUCKET_BITS_MAX:
            raise InvalidResponse("the policy's bucket_bits is missing or out of range")
        self._bucket_bits = bits
        return bits

    def _with_current_key(self, make: Callable[[PinnedKey], Op[T]]) -> Op[T]:
        """Run `make(key)` (a sub-operation); on 409 key-mismatch re-read the published key,
        which raises `KeyChanged` unless the pin was updated, and try once more."""
        key = yield from self.oprf_key()
        try:
            return (yield from make(key))
        except KeyMismatch:
            fresh = yield from self.oprf_key(refresh=True)
            if fresh == key:
                raise
            return (yield from make(fresh))

    # -- registration (focal point) -------------------------------------------------------

    def register_case(
        self,
        person: Any,
        *,
        category: str,
        finding_date: DateLike,
        sanction: str,
        legal_basis: str,
        retention_until: DateLike,
        mou_reference: str,
        subject_notified_on: DateLike,
        child_victim: bool = False,
        finding: str = "substantiated",
        idempotency_key: str | None = None,
    ) -> Op[str]:
        metadata = {
            "category": category,
            "child_victim": bool(child_victim),
            "finding": finding,
            "sanction": sanction,
            "finding_date": iso_date(finding_date, "finding_date"),
            "legal_basis": legal_basis,
            "retention_until": iso_date(retention_until, "retention_until"),
            "mou_reference": mou_reference,
            "subject_notified_on": iso_date(subject_notified_on, "subject_notified_on"),
        }
        if len(idempotency_key or "") > 128:
            raise InvalidInput("an idempotency key has at most 128 characters")
        # One key per call, reused by every retry of it: a registration lands exactly once even
        # when the answer was lost on the way back.
        idem = idempotency_key or str(uuid.uuid4())
        bits = yield from self.bucket_bits()

        def attempt(key: PinnedKey) -> Op[str]:
            keys = _blind_all(person, key, bits)
            request = build(
                wire.OprfEvaluateRequest,
                purpose="register",
                blinded_elements=[k.blinded.hex() for k in keys],
            )
            evaluated = yield ApiRequest("POST", "/v1/oprf/evaluate", json=request, idempotent=True)
            answer = parse(wire.OprfEvaluateResponse, evaluated)
            pseudonyms = _unblind(key, keys, answer, what="evaluation")
            body = build(
                wire.CaseCreate,
                **metadata,
                key_id=key.key_id,
                pseudonyms=[
                    {"kind": k.kind, "strength": k.strength, "bucket": k.bucket, "element": p.hex()}
                    for k, p in zip(keys, pseudonyms, strict=True)
                ],
            )
            created = yield ApiRequest(
                "POST", "/v1/cases", json=body, headers={"Idempotency-Key": idem}
            )
            return parse(Case, created).id

        return (yield from self._with_current_key(attempt))

    def list_cases(self, status: str | None = None) -> Op[list[Case]]:
        """Every case of the organisation: the server pages (at most 500 a page), so follow
        `next_offset` until it ends rather than silently returning the first page only."""
        cases: list[Case] = []
        offset: int | None = 0
        while offset is not None:
            params = {"limit": str(self.case_page_size), "offset": str(offset)}
            if status:
                params["status"] = status
            response = yield ApiRequest("GET", "/v1/cases", params=params)
            page = parse(wire.CaseList, response)
            cases.extend(page.items)
            offset = page.next_offset
        return cases

    def get_case(self, case_id: str) -> Op[Case]:
        response = yield ApiRequest("GET", f"/v1/cases/{seg(case_id)}")
        return parse(Case, response)

    def withdraw_case(self, case_id: str, reason: str, note: str | None = None) -> Op[Case]:
        body = build(wire.CaseWithdraw, reason=reason, note=note or None)
        response = yield ApiRequest(
            "POST", f"/v1/cases/{seg(case_id)}/withdraw", json=body, idempotent=True
        )
        return parse(Case, response)

    # -- consent and checks (HR) ----------------------------------------------------------

    def record_consent(
        self,
        *,
        applicant_ref: str,
        purpose: str,
        position_ref: str,
        form_sha256: str,
        self_declared_finding: bool,
        expires_on: DateLike | None = None,
        max_checks: int = 1,
        consented_at: datetime | str | None = None,
    ) -> Op[Consent]:
        if isinstance(consented_at, datetime):
            if consented_at.tzinfo is None:
                raise InvalidInput("consented_at must carry a time zone")
            consented = consented_at.isoformat()
        else:
            consented = consented_at or _now_rfc3339()
        body = build(
            wire.ConsentCreate,
            applicant_ref=applicant_ref,
            purpose=purpose,
            position_ref=position_ref,
            form_sha256=form_sha256.lower(),
            self_declared_finding=bool(self_declared_finding),
            consented_at=consented,
            expires_on=iso_date(expires_on, "expires_on"),
            max_checks=int(max_checks),
        )
        response = yield ApiRequest("POST", "/v1/consents", json=body)
        return parse(Consent, response)

    def get_consent(self, consent_id: str) -> Op[Consent]:
        response = yield ApiRequest("GET", f"/v1/consents/{seg(consent_id)}")
        return parse(Consent, response)

    def withdraw_consent(self, consent_id: str) -> Op[Consent]:
        response = yield ApiRequest(
            "POST", f"/v1/consents/{seg(consent_id)}/withdraw", idempotent=True
        )
        return parse(Consent, response)

    def check_applicant(self, person: Any, consent_id: str) -> Op[CheckResult]:
        bits = yield from self.bucket_bits()

        def attempt(key: PinnedKey) -> Op[CheckResult]:
            keys = _blind_all(person, key, bits)
            body = build(
                wire.CheckRequest,
                consent_id=consent_id,
                key_id=key.key_id,
                blinded_elements=[k.blinded.hex() for k in keys],
                buckets=[k.bucket for k in keys],
            )
            response = yield ApiRequest("POST", "/v1/checks", json=body)
            return _match(key, keys, parse(wire.CheckResponse, response), consent_id)

        return (yield from self._with_current_key(attempt))

    # -- registry, directory, statistics --------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Op[Any]:
        response = yield ApiRequest("GET", path, params=params)
        return json_body(response)

    def send_json(self, method: str, path: str, body: Any, *, idempotent: bool = False) -> Op[Any]:
        response = yield ApiRequest(method, path, json=body, idempotent=idempotent)
        return json_body(response)


def _match(
    key: PinnedKey, keys: Sequence[_BlindedKey], answer: wire.CheckResponse, consent_id: str
) -> CheckResult:
    """Step 4 of the check (design/protocol.md): verify, unblind, look up tags, open handles."""
    from protocol.pseudonym import match_proof, open_handle, tag

    pseudonyms = _unblind(key, keys, answer, what="check")
    buckets = _bucket_entries(answer, {k.bucket for k in keys})
    matches: dict[str, Match] = {}
    for k, p in zip(keys, pseudonyms, strict=True):
        mine = tag(p)
        for entry_tag, sealed in buckets[k.bucket]:
            if entry_tag != mine:
                continue
            try:
                handle = open_handle(p, sealed)
            except DeserializeError:
                handle = None
            # Our tag on a box our P cannot open (or that holds no handle) was made by no honest
            # registration: only the server could have produced it.
            if handle is None:
                raise InvalidResponse("a bucket entry with this applicant's tag does not open")
            matches.setdefault(
                handle.entry_id,
                Match(
                    holder_org_id=handle.holder_org_id,
                    holder_org=handle.holder_org_name,
                    kind=k.kind,
                    strength=k.strength,
                    entry_id=handle.entry_id,
                    case_id=handle.case_id,
                    consent_id=consent_id,
                    match_proof=match_proof(p, consent_id),
                ),
            )
    return CheckResult(
        consent_id=consent_id,
        check_id=answer.check_id,
        keys_checked=len(keys),
        matches=tuple(matches.values()),
    )


def is_fatal(exc: BaseException) -> bool:
    """Errors that stop a whole batch: a server caught misbehaving is not asked again."""
    return isinstance(exc, ProtocolViolation)


def pair_up(people: Iterable[Any], consent_ids: Iterable[str]) -> list[tuple[Any, str]]:
    people, consent_ids = list(people), list(consent_ids)
    if len(people) != len(consent_ids):
        raise InvalidInput("check_many needs exactly one consent id per person")
    return list(zip(people, consent_ids, strict=True))
