"""The disclosure step, client side: asking the holder of a matched record, answering as the
holder, and opening and verifying what arrives (design/protocol.md, "Disclosure").

Everything cryptographic happens here, on the organisation's machine: the requester seals the
applicant's declared details to the holder's X25519 key and signs them (always: the holder
confirms or denies that the applicant is the registered person, and its "not the same person"
answers are what reveal a member putting other people's keys in a check); the holder signs its
answer with its Ed25519 key and seals it to the requester's X25519 key; the requester opens it
and verifies the holder's signature and that it answers *this* request. The server stores and
relays only ciphertext of a fixed size (`protocol.disclosure`).

The operations are I/O-free generators (like `client_sdk._core`); `DisclosureMethods` gives
`Client` and `AsyncClient` their methods, each defined once (`client_sdk._operation`)::

    with Client.from_credentials_file("org-b-hr.json") as rc:
        result = rc.check_applicant(person, consent_id)
        for match in result.by_case():
            request_id = rc.request_disclosure(match, applicant=person)
        ...
        answer = rc.read_disclosure_answer(request_id)   # raises DisclosureNotAuthentic if forged
        if answer.same_person == "confirmed": ...
        rc.close_disclosure(request_id)
        rc.report_outcome(request_id, "not_hired_disclosure")

Trust in keys: the organisations' public keys come from `GET /v1/directory`, that is from the
server. A server that swapped a key there could read applicant details sealed to it or forge
an answer, and every signature would verify against the forged key. So each organisation's
pair of keys is pinned on first use (`client_sdk.pinning.OrgKeyPins`, in the client's pin
file), a later difference raises `OrgKeyChanged` before anything is sealed or believed, and
a change is accepted only through `trust_org_keys` after comparing the fingerprint with the
organisation out of band (the MoU annex, a phone call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

from client_sdk._core import ApiRequest, Op, build, iso_date, json_body, parse, seg
from client_sdk._operation import operation
from client_sdk.credentials import Credentials, OrgKeys
from client_sdk.errors import (
    CredentialsError,
    DisclosureNotAuthentic,
    InvalidInput,
    InvalidResponse,
    OrgKeyChanged,
)
from client_sdk.models import DisclosureAnswer, Match
from client_sdk.pinning import OrgKeyPins, OrgPublicKeys, normalise_fingerprint
from protocol import disclosure as crypto
from protocol.errors import DeserializeError, InvalidInputError, VerifyError
from protocol.messages import (
    ConsentLookupOut,
    DisclosureAnswerIn,
    DisclosureCreate,
    DisclosureList,
    DisclosureOut,
    DisclosureOutcomeIn,
)
from protocol.vocabulary import Outcome

__all__ = [
    "ApplicantDetails",
    "ConsentLookup",
    "Disclosure",
    "DisclosureMethods",
    "DisclosureOps",
    "VerifiedAnswer",
]

T = TypeVar("T")

#: A disclosure request as the server shows it to this organisation (`role` says which side).
Disclosure = DisclosureOut
#: What an applicant may learn through their lookup code.
ConsentLookup = ConsentLookupOut

Role = Literal["holder", "requester"]


@dataclass(frozen=True)
class VerifiedAnswer:
    """The holder's answer, opened with this organisation's key and verified against the
    holder's signing key: `same_person` (`confirmed`, `not_same_person` or `declined`) and, for
    a confirmation, the finding."""

    request_id: str
    holder_org_id: str
    holder_org: str
    same_person: str
    category: str | None = None
    child_victim: bool | None = None
    finding_date: dt.date | None = None
    sanction: str | None = None
    text: str | None = None
    contact: str | None = None
    decline_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.finding_date is not None:
            out["finding_date"] = self.finding_date.isoformat()
        return out


@dataclass(frozen=True)
class ApplicantDetails:
    """Applicant details a requester sealed to the holder, opened by the holder.

    `signed` is True when the requester organisation's signature verified against its
    directory key; unsigned details are shown but the holder should weigh them accordingly.
    """

    request_id: str
    requester_org_id: str
    requester_org: str
    applicant: Mapping[str, str]
    signed: bool


# -- I/O-free helpers ------------------------------------------------------------------------


def _org_keys(credentials: Credentials) -> OrgKeys:
    if credentials.org_keys is None:
        raise CredentialsError(
            "these credentials hold no organisation keys (org_keys): disclosures need the "
            "organisation's Ed25519 and X25519 private keys"
        )
    return credentials.org_keys


def _answer_from(answer: crypto.Answer, holder_org: str) -> VerifiedAnswer:
    return VerifiedAnswer(
        request_id=answer.request_id,
        holder_org_id=answer.holder_org_id,
        holder_org=holder_org,
        same_person=answer.same_person,
        category=answer.category,
        child_victim=answer.child_victim,
        finding_date=answer.finding_date,
        sanction=answer.sanction,
        text=answer.text,
        contact=answer.contact,
        decline_reason=answer.decline_reason,
    )


def _applicant_fields(applicant: Any) -> dict[str, str]:
    """The applicant's details as text fields: a dict, or a `protocol.identity.Person`."""
    if not isinstance(applicant, Mapping):
        values = {
            name: getattr(applicant, name, None)
            for name in crypto.APPLICANT_FIELDS
            if getattr(applicant, name, None) is not None
        }
    else:
        values = dict(applicant)
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        out[str(name)] = value.isoformat() if isinstance(value, dt.date) else str(value)
    return out


class DisclosureOps:
    """The disclosure operations as generators yielding `ApiRequest`s (see `client_sdk._core`).

    Holds the credentials and the client's organisation key pins (in-memory ones when none
    are given); every private key is used inside the call that needs it.
    """

    def __init__(self, credentials: Credentials, org_pins: OrgKeyPins | None = None) -> None:
        self.credentials = credentials
        self.org_pins = org_pins or OrgKeyPins(credentials.base_url or "")

    # -- directory and the organisations' keys ---------------------------------------------

    def _directory(self) -> Op[list[dict[str, Any]]]:
        response = yield ApiRequest("GET", "/v1/directory")
        body = json_body(response)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
            raise InvalidResponse("the directory answer has no items")
        return items

    def _offered_keys(self, org: str, *, named_by_server: bool) -> Op[OrgPublicKeys]:
        """What the directory says an organisation's keys are now, by id or short name:
        not yet checked against the pin.

        An organisation the server itself named (a match's holder, a request's requester)
        that its own directory lacks is an answer off contract; one a person typed is a typo.
        """
        for entry in (yield from self._directory()):
            if org in (entry.get("id"), entry.get("short_name")):
                return OrgPublicKeys.from_directory(entry)
        if named_by_server:
            raise InvalidResponse("the organisation is not in the directory")
        raise InvalidInput("no organisation with that id or short name is in the directory")

    def _pinned_keys(self, org_id: str) -> Op[OrgPublicKeys]:
        """The keys to seal to or verify with, for an organisation the server named."""
        offered = yield from self._offered_keys(org_id, named_by_server=True)
        return self.org_pins.check(offered)

    def org_keys(self, org: str) -> Op[OrgPublicKeys]:
        """An organisation's public keys from the directory, checked against the pin (pinned
        on first use); `OrgKeyChanged` when the directory now says otherwise."""
        offered = yield from self._offered_keys(org, named_by_server=False)
        return self.org_pins.check(offered)

    def trust_org_keys(self, org: str, fingerprint: str | None = None) -> Op[OrgPublicKeys]:
        """Pin the directory's current keys for `org`, replacing any earlier pin. With
        `fingerprint` (as the organisation gave it out of band) they must match it."""
        offered = yield from self._offered_keys(org, named_by_server=False)
        if fingerprint is not None:
            wanted = normalise_fingerprint(fingerprint)
            if len(wanted) != 32:
                raise InvalidInput("a fingerprint is 32 hex digits (eight groups of four)")
            if wanted != normalise_fingerprint(offered.fingerprint):
                pinned = self.org_pins.pinned(offered.org_id)
                name = offered.short_name or offered.org_id
                raise OrgKeyChanged(
                    f"the directory's keys for {name} (fingerprint {offered.fingerprint}) do not "
                    "match the fingerprint you were given: a typing mistake, or the server is "
                    "not serving the organisation's real keys; nothing was pinned",
                    org_id=offered.org_id,
                    org=name,
                    pinned_fingerprint=None if pinned is None else pinned.fingerprint,
                    directory_fingerprint=offered.fingerprint,
                )
        return self.org_pins.replace(offered)

    def verify_directory(self) -> Op[list[OrgPublicKeys]]:
        """Compare every pinned organisation still in the directory with its pin; raise
        `OrgKeyChanged` for the first that differs. Pins nothing new. Run before spending a
        check whose match will be followed by sealing (`check --request-disclosure`), so that a
        swapped key stops the run before the consent's check is used."""
        checked = []
        for entry in (yield from self._directory()):
            org_id = entry.get("id")
            if isinstance(org_id, str) and self.org_pins.pinned(org_id) is not None:
                checked.append(self.org_pins.check(OrgPublicKeys.from_directory(entry)))
        return checked

    # -- requester ------------------------------------------------------------------------

    def request_disclosure(
        self, match: Match, consent_id: str | None = None, applicant: Any = None
    ) -> Op[Disclosure]:
        if consent_id is not None and consent_id != match.consent_id:
            # The request is under the consent of the check that found the match.
            raise InvalidInput("consent_id differs from the consent the match was found under")
        if applicant is None:
            raise InvalidInput(
                "a disclosure request always carries the applicant's declared details, sealed "
                "to the holder: pass applicant= (the person record that was checked)"
            )
        org_id = self.credentials.org_id
        if not org_id:
            raise CredentialsError("the credentials do not name the organisation (org_id)")
        keys = _org_keys(self.credentials)
        fields = _applicant_fields(applicant)
        holder = yield from self._pinned_keys(match.holder_org_id)
        try:
            details = crypto.ApplicantDetails(
                consent_id=match.consent_id,
                entry_id=match.entry_id,
                requester_org_id=org_id,
                holder_org_id=match.holder_org_id,
                applicant=fields,
            )
            sealed = crypto.seal_applicant_details(details, holder.x25519, keys.ed25519_private)
        except InvalidInputError as exc:
            raise InvalidInput(str(exc)) from None
        body = build(
            DisclosureCreate,
            check_id=match.check_id,
            entry_id=match.entry_id,
            sealed_applicant_details=sealed.hex(),
        )
        # Safe to send again after a dropped connection: the server answers a second request
        # for the same check and entry with the open one (docs/api.md).
        response = yield ApiRequest("POST", "/v1/disclosure-requests", json=body, idempotent=True)
        return parse(DisclosureOut, response)

    def get_disclosure(self, request_id: str) -> Op[Disclosure]:
        response = yield ApiRequest("GET", f"/v1/disclosure-requests/{seg(request_id)}")
        return parse(DisclosureOut, response)

    def _action(
        self, request_id: str, action: str, body: dict[str, Any] | None = None
    ) -> Op[Disclosure]:
        # Every action is safe to repeat (the server answers a repeat with the request as it
        # is), so a dropped connection may be retried.
        response = yield ApiRequest(
            "POST",
            f"/v1/disclosure-requests/{seg(request_id)}/{action}",
            json=body,
            idempotent=True,
        )
        return parse(DisclosureOut, response)

    def withdraw_disclosure(self, request_id: str) -> Op[Disclosure]:
        return (yield from self._action(request_id, "withdraw"))

    def close_disclosure(self, request_id: str) -> Op[Disclosure]:
        return (yield from self._action(request_id, "close"))

    def report_outcome(self, request_id: str, outcome: str) -> Op[Disclosure]:
        body = build(DisclosureOutcomeIn, outcome=outcome)
        return (yield from self._action(request_id, "outcome", body))

    def read_disclosure_answer(
        self, request_id: str, *, holder_ed25519_public: bytes | None = None
    ) -> Op[VerifiedAnswer]:
        """Fetch, open and verify the holder's answer (requester side)."""
        keys = _org_keys(self.credentials)
        request = yield from self.get_disclosure(request_id)
        if request.role != "requester":
            raise InvalidInput("only the requesting organisation can open the answer")
        if request.sealed_answer is None:
            raise InvalidInput(f"the request holds no answer to read (state {request.state})")
        if holder_ed25519_public is None:
            holder = yield from self._pinned_keys(request.holder_org_id)
            holder_ed25519_public = holder.ed25519
        try:
            answer = crypto.open_answer(
                bytes.fromhex(request.sealed_answer),
                keys.x25519_private,
                holder_ed25519_public,
                request.id,
                expected_holder_org_id=request.holder_org_id,
                expected_requester_org_id=request.requester_org_id,
            )
        except VerifyError:
            raise DisclosureNotAuthentic(
                "the answer is not authentic: not signed by the holder organisation, not "
                "sealed to yours, or made for another request; it was not opened"
            ) from None
        except (DeserializeError, InvalidInputError):
            raise InvalidResponse("the sealed answer is malformed") from None
        return _answer_from(answer, request.holder_org)

    # -- holder ---------------------------------------------------------------------------

    def acknowledge_disclosure(self, request_id: str) -> Op[Disclosure]:
        return (yield from self._action(request_id, "acknowledge"))

    def read_applicant_details(
        self, request_id: str, *, require_signature: bool = True
    ) -> Op[ApplicantDetails | None]:
        """Open the applicant details the requester attached (holder side); None when it
        attached none. With `require_signature` (the default) unsigned details or a wrong
        signature raise `DisclosureNotAuthentic`."""
        keys = _org_keys(self.credentials)
        request = yield from self.get_disclosure(request_id)
        if request.role != "holder":
            raise InvalidInput("only the holder organisation can open the applicant details")
        if request.sealed_applicant_details is None:
            return None
        requester = yield from self._pinned_keys(request.requester_org_id)
        verify_key = requester.ed25519
        try:
            opened = crypto.open_applicant_details(
                bytes.fromhex(request.sealed_applicant_details),
                keys.x25519_private,
                requester_ed25519_public=verify_key if require_signature else None,
                expected_consent_id=request.consent_id,
                expected_entry_id=request.entry_id,
                expected_requester_org_id=request.requester_org_id,
                expected_holder_org_id=request.holder_org_id,
            )
        except VerifyError:
            raise DisclosureNotAuthentic(
                "the applicant details are not authentic (signature or binding to this request)"
            ) from None
        except (DeserializeError, InvalidInputError):
            raise InvalidResponse("the sealed applicant details are malformed") from None
        return ApplicantDetails(
            request_id=request.id,
            requester_org_id=request.requester_org_id,
            requester_org=request.requester_org,
            applicant=dict(opened.details.applicant),
            signed=opened.signature_verified,
        )

    def answer_disclosure(self, request_id: str, answer: DisclosureAnswer) -> Op[Disclosure]:
        """Sign the answer with this organisation's Ed25519 key, seal it to the requester's
        X25519 key (from the directory) and send it (holder side)."""
        keys = _org_keys(self.credentials)
        found = iso_date(answer.finding_date, "finding_date")
        request = yield from self.get_disclosure(request_id)
        if request.role != "holder":
            raise InvalidInput("only the holder organisation can answer a request")
        try:
            signed = crypto.Answer(
                **{
                    **asdict(answer),
                    "finding_date": None if found is None else dt.date.fromisoformat(found),
                },
                request_id=request.id,
                holder_org_id=request.holder_org_id,
                requester_org_id=request.requester_org_id,
            )
        except InvalidInputError as exc:
            raise InvalidInput(str(exc)) from None
        requester = yield from self._pinned_keys(request.requester_org_id)
        try:
            sealed = crypto.seal_answer(signed, keys.ed25519_private, requester.x25519)
        except InvalidInputError as exc:
            raise InvalidInput(str(exc)) from None
        # The one part of the answer the server reads: "not the same person" answers are
        # counted per requesting member, because only the holder can notice a member putting
        # other people's keys into a check (docs/protocol.md, "Check", step 6).
        body = build(
            DisclosureAnswerIn,
            sealed_answer=sealed.hex(),
            not_same_person=signed.same_person == "not_same_person",
        )
        # Not idempotent: a retried answer after a lost reply is refused as a second answer
        # (409 invalid-transition, state answered), which says it arrived.
        response = yield ApiRequest(
            "POST", f"/v1/disclosure-requests/{seg(request_id)}/answer", json=body
        )
        return parse(DisclosureOut, response)

    # -- the applicant's lookup -----------------------------------------------------------

    def consent_lookup(self, code: str) -> Op[ConsentLookup]:
        response = yield ApiRequest("GET", f"/v1/consent-lookup/{seg(code)}")
        return parse(ConsentLookupOut, response)

    def consent_lookup_withdraw(self, code: str) -> Op[ConsentLookup]:
        response = yield ApiRequest(
            "POST", f"/v1/consent-lookup/{seg(code)}/withdraw", idempotent=True
        )
        return parse(ConsentLookupOut, response)


# -- methods of Client and AsyncClient -------------------------------------------------------


class DisclosureMethods:
    """Disclosure calls of `Client` and `AsyncClient`, each defined once
    (`client_sdk._operation`; the client provides `credentials`, `_org_pins` and `_run`)."""

    credentials: Credentials
    _org_pins: OrgKeyPins

    @property
    def _disclosures(self) -> DisclosureOps:
        return DisclosureOps(self.credentials, self._org_pins)

    @operation
    def org_keys(self, org: str) -> Op[OrgPublicKeys]:
        """An organisation's public keys (by id or short name) from the directory, checked
        against the pin and pinned on first use; raises `OrgKeyChanged` when they changed."""
        return self._disclosures.org_keys(org)

    @operation
    def trust_org_keys(self, org: str, *, fingerprint: str | None = None) -> Op[OrgPublicKeys]:
        """Accept an organisation's new public keys after confirming them out of band.

        Pins what the directory says now, replacing the earlier pin. Pass the `fingerprint`
        the organisation gave you (`refcheck keys show` prints it on its side): the keys must
        match it, or `OrgKeyChanged` is raised and nothing is pinned.
        """
        return self._disclosures.trust_org_keys(org, fingerprint)

    @operation
    def verify_directory(self) -> Op[list[OrgPublicKeys]]:
        """Check every pinned organisation against the directory; raises `OrgKeyChanged` for
        a changed one. Pins nothing new."""
        return self._disclosures.verify_directory()

    @operation
    def request_disclosure(
        self, match: Match, consent_id: str | None = None, applicant: Any = None
    ) -> Op[str]:
        """Ask the holder of a matched record for its answer; returns the request id.

        `match` is one of `CheckResult.matches` (use `CheckResult.by_case()`: one per case): it
        names the check and the entry the server verified a claim for. `applicant` (a dict or
        `protocol.identity.Person`, the record that was checked) is required: it is sealed to
        the holder and signed by your organisation, so the holder can tell whether it is the
        same person. Asking again for the same check and entry returns the open request.
        """
        ops = self._disclosures
        return (yield from ops.request_disclosure(match, consent_id, applicant)).id

    @operation
    def list_disclosures(
        self,
        role: Role | None = None,
        state: str | None = None,
        overdue: bool | None = None,
        *,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Op[list[Disclosure]]:
        """Requests of your organisation (holder side for focal points, requester side for HR);
        for the secretariat, overdue requests network-wide (metadata only)."""
        params: dict[str, str] = {}
        if role is not None:
            params["role"] = role
        if state is not None:
            params["state"] = state
        if overdue is not None:
            params["overdue"] = "true" if overdue else "false"
        if limit is not None:
            params["limit"] = str(limit)
        if offset is not None:
            params["offset"] = str(offset)
        response = yield ApiRequest("GET", "/v1/disclosure-requests", params=params or None)
        return list(parse(DisclosureList, response).items)

    @operation
    def get_disclosure(self, request_id: str) -> Op[Disclosure]:
        return self._disclosures.get_disclosure(request_id)

    @operation
    def acknowledge_disclosure(self, request_id: str) -> Op[Disclosure]:
        return self._disclosures.acknowledge_disclosure(request_id)

    @operation
    def read_applicant_details(
        self, request_id: str, *, require_signature: bool = True
    ) -> Op[ApplicantDetails | None]:
        return self._disclosures.read_applicant_details(
            request_id, require_signature=require_signature
        )

    @operation
    def answer_disclosure(self, request_id: str, answer: DisclosureAnswer) -> Op[Disclosure]:
        """Answer a request about one of your records (focal point): signed, sealed to the
        requester; the server never reads it. A confirmation needs category, finding_date and
        sanction; `declined` needs decline_reason."""
        return self._disclosures.answer_disclosure(request_id, answer)

    @operation
    def read_disclosure_answer(
        self, request_id: str, *, holder_ed25519_public: bytes | None = None
    ) -> Op[VerifiedAnswer]:
        """Open and verify the holder's answer; raises `DisclosureNotAuthentic` when it is not
        signed by the holder (forged) or was made for another request."""
        return self._disclosures.read_disclosure_answer(
            request_id, holder_ed25519_public=holder_ed25519_public
        )

    @operation
    def withdraw_disclosure(self, request_id: str) -> Op[Disclosure]:
        return self._disclosures.withdraw_disclosure(request_id)

    @operation
    def close_disclosure(self, request_id: str) -> Op[Disclosure]:
        """After reading the answer: the server deletes its ciphertext."""
        return self._disclosures.close_disclosure(request_id)

    @operation
    def report_outcome(self, request_id: str, outcome: Outcome | str) -> Op[Disclosure]:
        """The applicant's hiring outcome: `hired`, `not_hired_disclosure`, `not_hired_other`."""
        return self._disclosures.report_outcome(request_id, outcome)

    @operation
    def consent_lookup(self, code: str) -> Op[ConsentLookup]:
        """What the applicant with this lookup code may know: who checked and who was asked."""
        return self._disclosures.consent_lookup(code)

    @operation
    def consent_lookup_withdraw(self, code: str) -> Op[ConsentLookup]:
        return self._disclosures.consent_lookup_withdraw(code)
