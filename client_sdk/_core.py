"""The I/O-free core shared by `Client` and `AsyncClient`.

Every high-level call is written once, as a generator that yields `ApiRequest`s and receives the
`httpx.Response` to each (sans-I/O, like h11 or httpx's own auth flows). The sync and async
clients differ only in how they *send*: retries, token renewal and error mapping live in their
drivers, and what a request means and what an answer must satisfy lives here. That way the
cryptographic checks (signed key announcements, DLEQ proofs, the filter's signature, expiry and
sequence, pad proofs, handle integrity) cannot differ between the two clients.

The protocol is docs/protocol.md (version 2). A check, as the server sees it: one `POST
/v1/checks` of exactly `keys_per_check` blinded elements (the applicant's keys padded with
random elements and shuffled), then, only when one of the applicant's own keys is in the signed
registry filter, one `POST /v1/checks/{id}/entries` with a Schnorr claim per hit.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from client_sdk.credentials import OrgKeys
from client_sdk.errors import (
    ApiError,
    FilterRejected,
    FilterWrongKey,
    InvalidInput,
    InvalidPerson,
    InvalidResponse,
    KeyMismatch,
    KeyRotated,
    ProofInvalid,
    ProtocolViolation,
    RefcheckError,
    SignatureInvalid,
    WrongElementCount,
)
from client_sdk.filter_cache import FILTER_PATH, FilterCache, FilterHeader, FilterSnapshot
from client_sdk.models import (
    Case,
    CaseRegistration,
    CheckResult,
    Consent,
    DateLike,
    LiveCheck,
    LiveStatus,
    Match,
    Registration,
)
from client_sdk.pinning import NetworkPin, NetworkState, OprfKey
from protocol import messages as wire
from protocol import sealed_keys
from protocol.claim import prove_claim
from protocol.codes import PADDING_KIND
from protocol.entry import (
    hash_to_group,
    open_handle,
    pad_input,
    prefix,
    tag,
    verify_evaluations,
)
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.identity import Strength

M = TypeVar("M", bound=pydantic.BaseModel)

T = TypeVar("T")
#: A call: yields requests, is sent the response to each, returns the result.
Op = Generator["ApiRequest", httpx.Response, T]


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


#: Largest `keys_per_check` the SDK accepts from a policy (one byte in `sealed_keys`).
KEYS_PER_CHECK_MAX = 255

# Shuffling the elements of a check: from the OS generator, since the order must not tell the
# server which elements are the applicant's keys and which are padding.
_SHUFFLE = secrets.SystemRandom()


@dataclass(frozen=True)
class _Key:
    """One identifier key of the person (`value` is the exact OPRF input; never logged)."""

    kind: str
    strength: str
    value: bytes = field(repr=False)


@dataclass(frozen=True)
class _Slot:
    """One element of a check: the applicant's key, or padding (`key` None)."""

    key: _Key | None
    blind: bytes = field(repr=False)
    blinded: bytes = field(repr=False)


def _derive(person: Any) -> list[_Key]:
    """The applicant's keys via `protocol.identity` (which already removes duplicates)."""
    from protocol.identity import InvalidPersonError, derive_keys

    try:
        derived = derive_keys(person)
    except InvalidPersonError as exc:
        # The identity module's messages name the field and rule, never the value.
        raise InvalidPerson(str(exc)) from None
    if not derived:
        raise InvalidPerson("the person record yields no identifier key")
    return [_Key(key.kind, key.strength.value, key.value) for key in derived]


def _cut(keys: Sequence[_Key], limit: int) -> list[_Key]:
    """At most `limit` keys, by the contract's fixed priority: strong, then exact, then
    variant, each in derivation order (registration and check cut alike, so they meet)."""
    return sorted(keys, key=lambda k: Strength(k.strength).rank)[:limit]


def _blind_slots(keys: Sequence[_Key], key: OprfKey, count: int) -> list[_Slot]:
    """The applicant's keys blinded, padded to exactly `count` with blinded random inputs (a
    uniformly random group element each, as every real blinded element is), shuffled."""
    from protocol.oprf import VOPRFClient

    if len(keys) > count:
        raise InvalidInput("more keys than the policy's keys_per_check")
    client = VOPRFClient(key.public_key)
    slots = [_Slot(k, *client.blind(k.value)) for k in keys]
    while len(slots) < count:
        slots.append(_Slot(None, *client.blind(secrets.token_bytes(32))))
    _SHUFFLE.shuffle(slots)
    return slots


def _unblind(key: OprfKey, slots: Sequence[_Slot], answer: wire.CheckResponse) -> list[bytes]:
    """Verify the batch DLEQ proof (every element, padding included) against the announced
    key and unblind to the `P` values."""
    from protocol.oprf import VOPRFClient

    if answer.key_id != key.key_id:
        raise InvalidResponse("the check answer names another OPRF key than the check's")
    if len(answer.evaluated_elements) != len(slots):
        raise InvalidResponse("the check answer has the wrong number of evaluated elements")
    evaluated = [bytes.fromhex(e) for e in answer.evaluated_elements]
    try:
        return VOPRFClient(key.public_key).verify_and_unblind(
            [s.blind for s in slots],
            [s.blinded for s in slots],
            evaluated,
            bytes.fromhex(answer.proof),
        )
    except VerifyError:
        raise ProofInvalid(
            "the check's proof does not verify against the announced OPRF key"
        ) from None
    except (DeserializeError, InvalidInputError):
        # An evaluated element that is not a valid group element cannot pass a proof either.
        raise ProofInvalid("the check answer holds an invalid group element") from None


def _stale_network(exc: ApiError) -> bool:
    """A refusal that says our view of the network is out of date: the key named is not the
    current one, or the element count is not the policy's (`keys_per_check` changed)."""
    return isinstance(exc, KeyMismatch | WrongElementCount)


class Core:
    """Per-client protocol state and the operations.

    State: the network pin (signing key, verified OPRF key announcements, `keys_per_check`) and
    the registry filter. Holds no secret beyond what a single call needs: blinds and `P` values
    live in the local variables of the operation that made them and are gone when it returns.
    """

    #: Cases asked for per page when listing (the server's maximum).
    case_page_size: int = 500

    def __init__(
        self,
        pin: NetworkPin,
        filters: FilterCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
        org_keys: Callable[[], OrgKeys | None] = lambda: None,
    ) -> None:
        self.pin = pin
        self.filters = filters or FilterCache()
        self._clock = clock
        #: The organisation's own keys (the credentials' `org_keys`, read at each call): consent
        #: details are sealed to them and opened with them.
        self._org_keys = org_keys
        #: The keys `offered_keys` read before this client's first token, kept for `network`.
        self._offered: wire.NetworkKeys | None = None
        #: Whether the server's signing key was compared with the credentials yet (clients do
        #: it before their first token request).
        self.keys_checked = False

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- the network's keys and policy ------------------------------------------------------

    def network(self, *, refresh: bool = False) -> Op[NetworkState]:
        """What the client trusts about the network; read once (then from the pin file).

        The first request is `GET /v1/network/keys`: the signing key is compared with the
        credentials (or the pin) before anything else is asked or sent. Then the policy, for
        `keys_per_check` and the witnesses; then every announcement is verified.
        """
        state = self.pin.state
        # A signing key the keys call followed to (a rotation) is taken only through `accept`.
        rotated = self._offered is not None and (
            state is None or self._offered.signing_key.public_key != state.signing_key.hex()
        )
        if not refresh and not rotated and state is not None and state.keys_per_check is not None:
            self.filters.load(state)
            return state
        keys, self._offered = self._offered, None
        if keys is None or refresh:
            keys = yield from self.offered_keys()
        signing_key = bytes.fromhex(keys.signing_key.public_key)
        policy = json_body((yield ApiRequest("GET", "/v1/policy")))
        state = self.pin.accept(
            keys.network_id,
            signing_key,
            [bytes.fromhex(a) for a in keys.oprf_keys],
            keys_per_check=_keys_per_check(policy),
            witnesses=_witnesses(policy),
            signing_key_history=[bytes.fromhex(h) for h in keys.signing_key_history],
        )
        self.filters.load(state)
        return state

    def offered_keys(self) -> Op[wire.NetworkKeys]:
        """`GET /v1/network/keys`, sent without a token, and refused (`KeyChanged`) unless the
        server is the credentials' network with the signing key their fingerprint names, or one
        its signed `signing_key_history` leads to from the key trusted (a rotation, pinned by the
        `network` call that follows).

        Clients run it before their first token request, so that an impostor is refused before
        it is sent anything, a signed token assertion included."""
        response = yield ApiRequest("GET", "/v1/network/keys", auth=False)
        keys = parse(wire.NetworkKeys, response)
        self.pin.check_offered(
            keys.network_id,
            bytes.fromhex(keys.signing_key.public_key),
            [bytes.fromhex(h) for h in keys.signing_key_history],
        )
        self._offered, self.keys_checked = keys, True
        return keys

    def oprf_key(self, *, refresh: bool = False) -> Op[OprfKey]:
        """The newest announced OPRF key, verified against the network signing key."""
        state = yield from self.network(refresh=refresh)
        return state.current

    def keys_per_check(self) -> Op[int]:
        state = yield from self.network()
        assert state.keys_per_check is not None
        return state.keys_per_check

    def _with_network(self, make: Callable[[NetworkState], Op[T]]) -> Op[T]:
        """Run `make(state)`; when the server says the key or the element count is stale,
        re-read keys and policy once and run it again (only if they did change)."""
        state = yield from self.network()
        try:
            return (yield from make(state))
        except ApiError as exc:
            if not _stale_network(exc):
                raise
            fresh = yield from self.network(refresh=True)
            if (fresh.current, fresh.keys_per_check) == (state.current, state.keys_per_check):
                raise
            return (yield from make(fresh))

    # -- the registry filter -----------------------------------------------------------------

    def _fetch_filter(
        self, state: NetworkState, key: OprfKey, *, delta: bool
    ) -> Op[FilterSnapshot]:
        floor = self.filters.seen
        # The list a delta is asked against: another check in flight may replace the held
        # one before the answer is back, and the delta must be applied to this one.
        base = self.filters.snapshot if delta else None
        response = yield ApiRequest(
            "GET",
            FILTER_PATH,
            params=self.filters.since_params(key, state, base),
            headers={"Accept": "application/octet-stream, application/problem+json"},
        )
        return self.filters.absorb(response.content, state, key, self.now(), floor, base=base)

    def _filter_for(
        self, state: NetworkState, key: OprfKey, target: FilterHeader
    ) -> Op[FilterSnapshot]:
        """The filter a check whose answer named `target` is looked up in: the held one when
        it is `target`'s (no request), else one fetch (a delta when one can help).

        A delta is used only when its result hashes to `target` (the contract: a delta has no
        witness's cosignature, the check's header does). When the filter moved on between the
        check and the fetch, a delta's result is kept as a base but a full filter is fetched
        and used: its own header is signed (and cosigned), fresh, for the same key and never
        behind what the check named.
        """
        held = self.filters.usable_for(target, self.now())
        if held is not None:
            return held
        fetched = yield from self._fetch_filter(state, key, delta=True)
        if fetched.vouched_by is None and fetched.sha256 != target.sha256:
            fetched = yield from self._fetch_filter(state, key, delta=False)
        if fetched.sha256 == target.sha256:
            return self.filters.vouch(fetched, target)
        if fetched.position == target.position:
            raise FilterRejected(
                "the filter served and the check's header differ under one revision: the "
                "server shows two different filters as the same one"
            )
        return fetched

    def registry_filter(self) -> Op[FilterSnapshot]:
        """The current registry filter under the newest key, in full, verified on its own
        header (signed, fresh, never backwards): with no check's header to vouch for a delta,
        only a full filter's own header can."""
        _state, snapshot = yield from self._current_filter()
        return snapshot

    def _current_filter(self) -> Op[tuple[NetworkState, FilterSnapshot]]:
        """The full current filter and the network state it was verified under. A filter of a
        newer key than the pinned one (a rotation since the keys were last read) makes the
        client read the signed announcements again, once: only a newer key announced there is
        followed; otherwise the filter's refusal stands."""
        state = yield from self.network()
        try:
            return state, (yield from self._fetch_filter(state, state.current, delta=False))
        except FilterWrongKey:
            fresh = yield from self.network(refresh=True)
            if fresh.current.key_seq <= state.current.key_seq:
                raise
            return fresh, (yield from self._fetch_filter(fresh, fresh.current, delta=False))

    def prime(self) -> Op[None]:
        """Before a batch fans out: keys and policy, and the filter when none is held yet (so
        that the batch's checks do not each fetch it at the same moment)."""
        yield from self.network()
        if self.filters.snapshot is None:
            yield from self._current_filter()

    # -- registration (focal point) -------------------------------------------------------

    def register_case(
        self, person: Any, case: CaseRegistration, *, idempotency_key: str | None = None
    ) -> Op[Registration]:
        metadata = build(
            wire.CaseMetadata,
            **{
                **asdict(case),
                "child_victim": bool(case.child_victim),
                "finding_date": iso_date(case.finding_date, "finding_date"),
                "retention_until": iso_date(case.retention_until, "retention_until"),
                "subject_notified_on": iso_date(case.subject_notified_on, "subject_notified_on"),
            },
        )
        if len(idempotency_key or "") > 128:
            raise InvalidInput("an idempotency key has at most 128 characters")
        derived = _derive(person)  # before any request: a bad record sends nothing

        def attempt(state: NetworkState) -> Op[Registration]:
            key, count = state.current, _count(state)
            keys = _cut(derived, count)
            body = build(
                wire.CaseCreate,
                **metadata,
                key_id=key.key_id,
                sealed_keys=_seal_keys(metadata, keys, key, count),
            )
            # One key per attempt, reused by every retry of it (which re-sends these very
            # bytes: the seal is randomised, and the server keeps only the body's SHA-256), so
            # a registration lands exactly once even when the answer was lost on the way back.
            idem = idempotency_key or str(uuid.uuid4())
            created = yield ApiRequest(
                "POST", "/v1/cases", json=body, headers={"Idempotency-Key": idem}
            )
            answer = parse(wire.CaseRegistered, created)
            return _registration(answer, key, count, real=len(keys))

        return (yield from self._with_network(attempt))

    def rekey_case(self, case_id: str, person: Any) -> Op[Registration]:
        """Replace a live case's entries with the person's keys derived again here (after the
        identity tables changed, a case gains the new key forms only this way): sealed as at
        registration, bound to the case's metadata as the server shows it now."""
        derived = _derive(person)
        shown = yield ApiRequest("GET", f"/v1/cases/{seg(case_id)}")
        case = parse(Case, shown)
        metadata = build(
            wire.CaseMetadata,
            **case.model_dump(mode="json", include=set(wire.CaseMetadata.model_fields)),
        )

        def attempt(state: NetworkState) -> Op[Registration]:
            key, count = state.current, _count(state)
            keys = _cut(derived, count)
            body = build(
                wire.CaseRekey,
                key_id=key.key_id,
                sealed_keys=_seal_keys(metadata, keys, key, count),
            )
            response = yield ApiRequest("POST", f"/v1/cases/{seg(case.id)}/rekey", json=body)
            values = parse(wire.FilterValues, response)
            answer = wire.CaseRegistered(case=case, filter_values=values)
            return _registration(answer, key, count, real=len(keys))

        return (yield from self._with_network(attempt))

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
        """Record the applicant's signed consent receipt; returns the whole receipt, with its
        one-time `lookup_code` for the applicant (hand it to them: the server cannot show it
        again).

        `applicant_ref` and `position_ref` are your own opaque references, never a name or an
        e-mail address. `form_sha256` is the SHA-256 of the signed declaration form
        (`refcheck form hash FILE`). These two references, the form's hash and
        `self_declared_finding` are sealed to your organisation's X25519 key and signed with its
        Ed25519 key (the credentials' `org_keys`) before they leave: the server stores them
        only as an opaque blob, and `get_consent` opens them again.
        """
        from client_sdk import consents

        org_keys = self._org_keys()

        if consented_at is None:
            at = datetime.now(UTC).replace(microsecond=0)
        elif isinstance(consented_at, datetime):
            at = consented_at
        else:
            try:
                at = datetime.fromisoformat(consented_at)
            except (TypeError, ValueError):
                raise InvalidInput("consented_at must be an RFC 3339 time") from None
        if at.tzinfo is None:
            raise InvalidInput("consented_at must carry a time zone")
        sealed = consents.seal(
            org_keys,
            applicant_ref=applicant_ref,
            position_ref=position_ref,
            form_sha256=form_sha256.lower(),
            self_declared_finding=bool(self_declared_finding),
            purpose=purpose,
            consented_at=at,
        )
        body = build(
            wire.ConsentCreate,
            purpose=purpose,
            consented_at=at.isoformat(),
            expires_on=iso_date(expires_on, "expires_on"),
            max_checks=int(max_checks),
            sealed_details=sealed,
        )
        response = yield ApiRequest("POST", "/v1/consents", json=body)
        return consents.open_receipt(org_keys, parse(wire.ConsentOut, response))

    def get_consent(self, consent_id: str) -> Op[Consent]:
        from client_sdk import consents

        response = yield ApiRequest("GET", f"/v1/consents/{seg(consent_id)}")
        return consents.open_receipt(self._org_keys(), parse(wire.ConsentOut, response))

    def withdraw_consent(self, consent_id: str) -> Op[Consent]:
        from client_sdk import consents

        response = yield ApiRequest(
            "POST", f"/v1/consents/{seg(consent_id)}/withdraw", idempotent=True
        )
        return consents.open_receipt(self._org_keys(), parse(wire.ConsentOut, response))

    def check_applicant(self, person: Any, consent_id: str) -> Op[CheckResult]:
        """A check (docs/protocol.md, "Check"), re-run once under the new key when the OPRF
        key was rotated between the check and its entries call ("Key rotation", step 3)."""
        derived = _derive(person)  # before any request: a bad record sends nothing

        def attempt(state: NetworkState) -> Op[CheckResult | _Rotated]:
            return self._check(derived, consent_id, state)

        outcome = yield from self._with_network(attempt)
        if isinstance(outcome, CheckResult):
            return outcome
        # The key the check was evaluated under is no longer in force. Read the signed
        # announcements again: only a newer key, announced and signed by the pinned signing
        # key, makes a re-run; otherwise the refusal stands.
        fresh = yield from self.network(refresh=True)
        if fresh.current.key_seq <= outcome.key.key_seq:
            raise outcome.error
        # Once, naming the original check: same consent, no budget spent again. A second
        # rotation, or any refusal of the re-run, surfaces as it is.
        again = yield from self._check(derived, consent_id, fresh, rerun_of=outcome.check_id)
        if not isinstance(again, _Rotated):
            return again
        if isinstance(again.error, KeyRotated):
            raise again.error
        # Only a newer key's filter for the re-run too: a second rotation if the signed
        # announcements say so (a refusal like the 409, not a lie), else the filter's refusal.
        latest = yield from self.network(refresh=True)
        if latest.current.key_seq <= again.key.key_seq:
            raise again.error
        raise KeyRotated(
            f"the OPRF key was rotated again while check {outcome.check_id} was re-run; a "
            "check is re-run once only: run it again under a consent with checks left",
            status=409,
        )

    def _check(
        self,
        derived: Sequence[_Key],
        consent_id: str,
        state: NetworkState,
        *,
        rerun_of: str | None = None,
    ) -> Op[CheckResult | _Rotated]:
        """Steps 2 to 5 of the check (docs/protocol.md, "Check"); `_Rotated` when the check's
        key was rotated away before the lookup or the entries call could finish it."""
        key, count = state.current, _count(state)
        keys = _cut(derived, count)
        slots = _blind_slots(keys, key, count)
        body = build(
            wire.CheckRequest,
            consent_id=consent_id,
            key_id=key.key_id,
            blinded_elements=[s.blinded.hex() for s in slots],
            rerun_of=rerun_of,
        )
        floor = self.filters.seen
        response = yield ApiRequest("POST", "/v1/checks", json=body)
        answer = parse(wire.CheckResponse, response)
        points = _unblind(key, slots, answer)
        try:
            try:
                snapshot = yield from self._looked_up(answer, state, key, floor)
            except SignatureInvalid:
                # The network signing key may have been rotated since this session read it.
                # Follow its signed history as a new session would, and verify the same answer
                # again: running the check again would spend the consent a second time.
                followed = yield from self.network(refresh=True)
                if followed.signing_key == state.signing_key:
                    raise
                snapshot = yield from self._looked_up(answer, followed, key, floor)
        except FilterWrongKey as exc:
            # The server now serves only a newer key's filter (signed, so not a forgery of
            # the server's own making): the check's key was rotated after it ran. Its lookup
            # cannot be finished, and the re-run is decided by the keys the server announces.
            return _Rotated(answer.check_id, key, exc)
        hits = {
            i: (slot.key, p)
            for i, (slot, p) in enumerate(zip(slots, points, strict=True))
            if slot.key is not None and prefix(p) in snapshot
        }
        matches: tuple[Match, ...] = ()
        if hits:
            # Only now does the server hear of this applicant again: one claim per hit.
            evaluated = [bytes.fromhex(e) for e in answer.evaluated_elements]
            try:
                matches = yield from self._entries(
                    answer.check_id,
                    consent_id,
                    {i: (k, p, slots[i].blind, evaluated[i]) for i, (k, p) in hits.items()},
                )
            except KeyRotated as exc:
                return _Rotated(answer.check_id, key, exc)
        return CheckResult(
            consent_id=consent_id,
            check_id=answer.check_id,
            keys_checked=len(keys),
            matches=matches,
        )

    def _looked_up(
        self,
        answer: wire.CheckResponse,
        state: NetworkState,
        key: OprfKey,
        floor: tuple[int, int],
    ) -> Op[FilterSnapshot]:
        """The filter the check's answer is looked up in, its header verified under `state`."""
        header = self.filters.check_header(
            bytes.fromhex(answer.filter), state, key, self.now(), floor
        )
        return (yield from self._filter_for(state, key, header))

    def _entries(
        self,
        check_id: str,
        consent_id: str,
        hits: Mapping[int, tuple[_Key, bytes, bytes, bytes]],
    ) -> Op[tuple[Match, ...]]:
        """Step 5: claim each hit with a Schnorr proof, open what comes back."""
        claims = []
        by_tag: dict[bytes, tuple[_Key, bytes]] = {}
        for index, (k, p, blind, z) in sorted(hits.items()):
            t = tag(p)
            proof = prove_claim(
                check_id=check_id, consent_id=consent_id, index=index, tag=t, p=p, z=z, r=blind
            )
            claims.append({"index": index, "tag": t.hex(), "proof": proof.hex()})
            by_tag.setdefault(t, (k, p))
        body = build(wire.EntriesRequest, claims=claims)
        # A repeat of the same claims gets the same answer (the contract), so a dropped
        # connection may be retried.
        response = yield ApiRequest(
            "POST", f"/v1/checks/{seg(check_id)}/entries", json=body, idempotent=True
        )
        answer = parse(wire.EntriesResponse, response)
        matches: dict[str, Match] = {}
        for entry in answer.entries:
            claimed = by_tag.get(bytes.fromhex(entry.tag))
            if claimed is None:
                raise InvalidResponse("the entries answer holds a tag that was not claimed")
            k, p = claimed
            try:
                handle = open_handle(p, bytes.fromhex(entry.sealed_handle))
            except (DeserializeError, InvalidInputError):
                handle = None
            # Our tag on a box our P cannot open (or that holds no handle) was made by no
            # honest registration: only the server could have produced it.
            if handle is None:
                raise InvalidResponse("an entry with this applicant's tag does not open")
            # A pad's point is skS·HashToGroup(pad input): no applicant's key meets it, so a
            # padding handle under our P is an entry the server planted.
            if handle.kind == PADDING_KIND:
                raise InvalidResponse("an entry with this applicant's tag opens as padding")
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
                    check_id=check_id,
                ),
            )
        return tuple(matches.values())

    # -- verify-live (focal point) ----------------------------------------------------------

    def verify_live(self, registrations: Iterable[Registration]) -> Op[list[LiveCheck]]:
        """Whether every filter value of each registration is in the current filter.

        A live case whose kept values are under an older OPRF key than the filter's (a rotation
        since it was registered) has its values re-issued by the server (`GET
        /v1/cases/{id}/filter-values`), checked as at registration (the current announced key,
        the case's count, the pads' DLEQ proof), and compared instead; the `LiveCheck` carries
        them as `reissued`, to be kept in place of the old ones."""
        state, snapshot = yield from self._current_filter()
        today = self.now().date()
        checks = []
        for registration in registrations:
            reissued = None
            if _live(registration.case, today) and registration.key_seq < snapshot.key_seq:
                response = yield ApiRequest(
                    "GET", f"/v1/cases/{seg(registration.case_id)}/filter-values"
                )
                reissued = _reissued(
                    registration, parse(wire.FilterValues, response), state.current
                )
            checks.append(_live_check(reissued or registration, snapshot, today, reissued))
        return checks

    # -- registry, directory, statistics --------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Op[Any]:
        response = yield ApiRequest("GET", path, params=params)
        return json_body(response)

    def send_json(self, method: str, path: str, body: Any, *, idempotent: bool = False) -> Op[Any]:
        response = yield ApiRequest(method, path, json=body, idempotent=idempotent)
        return json_body(response)


@dataclass(frozen=True)
class _Rotated:
    """A check whose OPRF key was rotated away before it finished: 409 `key-rotated` at its
    entries call, or only a newer key's filter to look its keys up in."""

    check_id: str
    key: OprfKey
    error: RefcheckError


def _count(state: NetworkState) -> int:
    assert state.keys_per_check is not None
    return state.keys_per_check


def _keys_per_check(policy: Any) -> int:
    count = policy.get("keys_per_check") if isinstance(policy, dict) else None
    # The count hides how many keys a person has: refuse a policy the SDK cannot honour
    # rather than send a count that would single the applicant out.
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidResponse("the policy has no keys_per_check")
    if not 1 <= count <= KEYS_PER_CHECK_MAX:
        raise InvalidResponse("the policy's keys_per_check is out of range")
    return count


def _witnesses(policy: Any) -> tuple[bytes, ...]:
    listed = policy.get("witnesses") if isinstance(policy, dict) else None
    if listed is None:
        return ()
    try:
        out = tuple(bytes.fromhex(w) for w in listed)
    except (TypeError, ValueError):
        out = ()
    if not isinstance(listed, list) or len(out) != len(listed) or any(len(w) != 32 for w in out):
        raise InvalidResponse("the policy's witnesses are not a list of 32-byte keys")
    return out


def _seal_keys(metadata: Mapping[str, Any], keys: Sequence[_Key], key: OprfKey, count: int) -> str:
    """`sealed_keys` of a registration or rekey: the keys hashed to the group, in `count`
    slots, bound to the metadata's hash, sealed to the announced registration key (hex)."""
    try:
        plaintext = sealed_keys.encode(
            sealed_keys.metadata_sha256(metadata),
            [
                sealed_keys.RegisteredKey(hash_to_group(k.value), k.kind, Strength(k.strength))
                for k in keys
            ],
            count,
        )
    except InvalidInputError as exc:
        # A key kind this SDK derives but the codes table lacks: a bug, said plainly.
        raise InvalidPerson(f"the person's keys cannot be registered: {exc}") from None
    return sealed_keys.seal(key.registration_key, plaintext).hex()


def _registration(
    answer: wire.CaseRegistered, key: OprfKey, count: int, *, real: int
) -> Registration:
    """Check a registration's answer: its filter values are the case's `count`, under the
    key it was sealed for, and the pads (slots `real .. count - 1`) are proven (DLEQ) to be
    `skS·HashToGroup(pad input)` with their prefixes among the values. Keep only the values."""
    values = answer.filter_values
    if values.case_id != answer.case.id:
        raise InvalidResponse("the registration's filter values are for another case")
    if (values.key_id, values.key_seq) != (key.key_id, key.key_seq):
        raise InvalidResponse("the registration's filter values are under another OPRF key")
    if len(values.filter_values) != count:
        raise InvalidResponse("a case has exactly keys_per_check filter values")
    _check_pads(values, answer.case.id, key, count, real=real)
    return Registration(
        case=answer.case,
        key_id=key.key_id,
        key_seq=key.key_seq,
        filter_values=tuple(values.filter_values),
        log_seq=answer.log_seq,
    )


def _reissued(registration: Registration, values: wire.FilterValues, key: OprfKey) -> Registration:
    """Check a case's filter values re-issued after a rotation, as at registration: for this
    case, under the newest announced key, as many as before, the pads proven. (How many of the
    slots are pads was not kept; the pads must still be the last slots, every one proven.)"""
    count = len(registration.filter_values)
    if values.case_id != registration.case_id:
        raise InvalidResponse("the re-issued filter values are for another case")
    if (values.key_id, values.key_seq) != (key.key_id, key.key_seq):
        raise InvalidResponse("the re-issued filter values are not under the announced key")
    if len(values.filter_values) != count or len(values.pads) >= count:
        raise InvalidResponse("the re-issued filter values are not the case's count")
    _check_pads(values, registration.case_id, key, count, real=count - len(values.pads))
    return Registration(
        case=registration.case,
        key_id=key.key_id,
        key_seq=key.key_seq,
        filter_values=tuple(values.filter_values),
        log_seq=registration.log_seq,
    )


def _check_pads(
    values: wire.FilterValues, case_id: str, key: OprfKey, count: int, *, real: int
) -> None:
    """The pads are slots `real .. count - 1`, proven (DLEQ) to be `skS·HashToGroup(pad input)`
    under `key`, their prefixes among the values."""
    pads = sorted(values.pads, key=lambda pad: pad.index)
    if [pad.index for pad in pads] != list(range(real, count)):
        raise InvalidResponse("the registration's pads are not the case's unused slots")
    if pads:
        if values.pad_proof is None:
            raise ProofInvalid("the registration's pads come without a proof")
        points = [bytes.fromhex(pad.point) for pad in pads]
        try:
            verify_evaluations(
                key.public_key,
                [pad_input(case_id, pad.index) for pad in pads],
                points,
                bytes.fromhex(values.pad_proof),
            )
        except (VerifyError, DeserializeError, InvalidInputError):
            raise ProofInvalid(
                "the registration's pad proof does not verify: the server could have planted "
                "values of its choosing in this case's slots"
            ) from None
        held = set(values.filter_values)
        if any(prefix(point) not in held for point in points):
            raise InvalidResponse("a proven pad's prefix is not among the case's filter values")


def _live(case: Case, today: date) -> bool:
    return case.status == "active" and case.retention_until >= today


def _live_check(
    registration: Registration,
    snapshot: FilterSnapshot,
    today: date,
    reissued: Registration | None = None,
) -> LiveCheck:
    case = registration.case
    values = registration.filter_values
    missing = sum(1 for v in values if v not in snapshot)
    status: LiveStatus
    if not _live(case, today):
        status = "not_live"
    elif registration.key_id != snapshot.key_id:
        status = "other_key"
    elif missing and case.created_at.replace(microsecond=0) > snapshot.header.issued_at:
        # Registered after this filter was published (headers carry whole seconds: a case of
        # the very second is taken as published, and a false alarm clears at the next run).
        status = "pending"
    else:
        status = "missing" if missing else "present"
    return LiveCheck(
        case_id=case.id,
        status=status,
        missing=missing,
        values=len(values),
        filter_revision=snapshot.header.revision,
        reissued=reissued,
    )


def is_fatal(exc: BaseException) -> bool:
    """Errors that stop a whole batch: a server caught misbehaving is not asked again."""
    return isinstance(exc, ProtocolViolation)


def pair_up(people: Iterable[Any], consent_ids: Iterable[str]) -> list[tuple[Any, str]]:
    people, consent_ids = list(people), list(consent_ids)
    if len(people) != len(consent_ids):
        raise InvalidInput("check_many needs exactly one consent id per person")
    return list(zip(people, consent_ids, strict=True))


class Batch:
    """What `check_many` decides, the same for both clients (they differ only in how the
    checks run side by side): the (person, consent id) pairs, which refusal stops the batch
    (a `ProtocolViolation` always; any refusal without `return_exceptions`), and the results
    in the pairs' order."""

    def __init__(
        self, people: Iterable[Any], consent_ids: Iterable[str], *, return_exceptions: bool
    ) -> None:
        self.pairs = pair_up(people, consent_ids)
        self._return_exceptions = return_exceptions
        self._failures: list[RefcheckError] = []

    @property
    def stopping(self) -> bool:
        """A refusal stopped the batch: the checks not started yet are not sent."""
        return bool(self._failures)

    def refused(self, exc: RefcheckError) -> RefcheckError | None:
        """A check's refusal: the exception to return in its place, or None (the batch stops)."""
        if is_fatal(exc) or not self._return_exceptions:
            self._failures.append(exc)
            return None
        return exc

    def results(
        self, outcomes: Sequence[CheckResult | RefcheckError | None]
    ) -> list[CheckResult | RefcheckError]:
        """The results in order, or the first refusal that stopped the batch, raised."""
        if self._failures:
            raise self._failures[0]
        return [o for o in outcomes if o is not None]
