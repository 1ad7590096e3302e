"""What the high-level calls return: plain, immutable values an HR system can store or show.

`Case` is the wire model of `protocol.messages` (a frozen pydantic model shared with the
server), so the SDK cannot drift from what the server sends. `Consent` is the wire receipt with
its sealed details opened (`client_sdk.consents`): the server holds them only sealed to the
organisation's own key.

None of them holds a pseudonym `P` or an identifier. A `Match` names the check and the entry
whose claim the server verified (`POST /v1/checks/{id}/entries`): that pair is all a disclosure
request needs, and it is worthless to anyone but the organisation that ran the check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from protocol.identity.keys import Strength
from protocol.messages import CaseOut as Case

__all__ = [
    "Case",
    "CaseRegistration",
    "CheckResult",
    "CheckStatus",
    "Consent",
    "DisclosureAnswer",
    "Match",
]

#: A date as a `datetime.date` or an ISO string (YYYY-MM-DD).
DateLike = dt.date | str
#: The holder's answer to "is the applicant the registered person?".
SamePerson = Literal["confirmed", "not_same_person", "declined"]


@dataclass(frozen=True)
class CaseRegistration:
    """What `register_case` registers about a concluded, substantiated case (focal point):
    the metadata the server stores in the clear (docs/api.md, Cases). The person's keys are
    not in it: they are passed beside it, and only their seal leaves this machine."""

    category: str
    finding_date: DateLike
    sanction: str
    legal_basis: str
    retention_until: DateLike
    mou_reference: str
    subject_notified_on: DateLike
    child_victim: bool = False
    finding: str = "substantiated"


@dataclass(frozen=True)
class DisclosureAnswer:
    """The holder's answer to a disclosure request (`answer_disclosure`), signed and sealed to
    the requester before it leaves. A confirmation needs `category`, `finding_date` and
    `sanction`; `declined` needs `decline_reason`."""

    same_person: SamePerson
    category: str | None = None
    child_victim: bool | None = None
    finding_date: DateLike | None = None
    sanction: str | None = None
    text: str | None = None
    contact: str | None = None
    decline_reason: str | None = None


#: Whether a consent's sealed details were opened, and who sealed them.
DetailsState = Literal["signed", "unsigned", "unreadable"]


class Consent(BaseModel):
    """A consent receipt, with the details only this organisation can read.

    The server keeps what it enforces (`purpose`, `consented_at`, `expires_on`, `max_checks`,
    `checks_used`, `status`, `withdrawn_at`) and a blob sealed to the organisation's X25519 key
    holding `applicant_ref`, `position_ref`, `form_sha256` and `self_declared_finding`, which
    the SDK opens. `details` says how that went:

    * `signed`: sealed and signed by this organisation (every consent the SDK records);
    * `unsigned`: sealed by the server's upgrade from the plaintext columns of an older
      version, with no signature (the server never held the organisation's signing key);
    * `unreadable`: the blob does not open with these credentials' key (the organisation's
      X25519 key changed since, or the credentials hold no organisation keys); the four
      fields are then None.

    `lookup_code` is set only in the answer to the recording: hand it to the applicant.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    lookup_code: str | None = None
    applicant_ref: str | None
    purpose: str
    position_ref: str | None
    form_sha256: str | None
    self_declared_finding: bool | None
    consented_at: AwareDatetime
    expires_on: dt.date
    max_checks: int
    checks_used: int
    status: Literal["active", "withdrawn", "expired"]
    withdrawn_at: AwareDatetime | None = None
    details: DetailsState


class CheckStatus(StrEnum):
    """Outcome of one applicant's check.

    `possible_match` means only `variant` keys (loose name forms + date of birth) matched: a
    human must compare the disclosed details before anyone acts, because two different people
    can share a loose name form and a birthday.
    """

    NO_MATCH = "no_match"
    MATCH = "match"
    POSSIBLE_MATCH = "possible_match"


@dataclass(frozen=True)
class Match:
    """One registered record that the applicant's keys matched: where to ask, not what.

    `check_id` and `entry_id` are what a disclosure request names: the server accepts it only
    for an entry this organisation claimed in that check, under its consent. `kind` and
    `strength` are those of the applicant's key that matched (as this SDK derived it, not as the
    registrant labelled it).
    """

    holder_org_id: str
    holder_org: str
    kind: str
    strength: str
    entry_id: str
    case_id: str
    consent_id: str
    check_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            "holder_org_id": self.holder_org_id,
            "holder_org": self.holder_org,
            "kind": self.kind,
            "strength": self.strength,
            "entry_id": self.entry_id,
            "case_id": self.case_id,
        }


@dataclass(frozen=True)
class CheckResult:
    """The answer for one applicant under one consent."""

    consent_id: str
    check_id: str
    keys_checked: int
    matches: tuple[Match, ...] = ()

    @property
    def status(self) -> CheckStatus:
        if not self.matches:
            return CheckStatus.NO_MATCH
        if all(m.strength == Strength.VARIANT for m in self.matches):
            return CheckStatus.POSSIBLE_MATCH
        return CheckStatus.MATCH

    def by_case(self) -> tuple[Match, ...]:
        """One match per matched case, the strongest of its keys, strongest cases first.

        A registered case has one record per identifier key, so one person usually matches
        several records of the same case; a person reading the result wants the cases. Use the
        returned match's `entry_id` for the disclosure request.
        """
        best: dict[str, Match] = {}
        for m in self.matches:
            held = best.get(m.case_id)
            if held is None or Strength(m.strength).rank < Strength(held.strength).rank:
                best[m.case_id] = m
        return tuple(sorted(best.values(), key=lambda m: Strength(m.strength).rank))

    @property
    def holder_orgs(self) -> tuple[str, ...]:
        """Distinct holder organisations, in order of first match."""
        return tuple(dict.fromkeys(m.holder_org for m in self.matches))

    def as_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "check_id": self.check_id,
            "status": self.status.value,
            "keys_checked": self.keys_checked,
            "cases": [m.as_dict() for m in self.by_case()],
            "matches": [m.as_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class Registration:
    """A registered case and what its focal point keeps of it: the case's `keys_per_check`
    filter values under the OPRF key `key_id`, for `verify-live` (every value must stay in the
    published filter while the case is live; one missing means the server dropped or displaced
    an entry). The pads among them were verified with their DLEQ proof; nothing here says which
    values are pads or how many keys the person had.

    `log_seq` is the sequence number of the case's `case.register` entry in the network's
    transparency log (None for a re-key, or from an older server): once a signed tree head
    covers it, `client_sdk.transparency.verify_registration_logged` proves the entry is in the
    log.
    """

    case: Case
    key_id: str
    key_seq: int
    filter_values: tuple[int, ...]
    log_seq: int | None = None

    @property
    def case_id(self) -> str:
        return self.case.id

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case.id,
            "key_id": self.key_id,
            "key_seq": self.key_seq,
            "filter_values": list(self.filter_values),
            "log_seq": self.log_seq,
        }


LiveStatus = Literal["present", "missing", "pending", "not_live", "other_key"]


@dataclass(frozen=True)
class LiveCheck:
    """Whether one registered case's filter values are all in the published filter.

    `status`:

    * `present`: every value is there;
    * `missing`: `missing` of them are not, though the case is live: the server dropped an
      entry, or displaced it (a value planted in its place to catch someone's checks). Report
      it to the secretariat;
    * `pending`: some are not yet, and the case was registered after this filter was published
      (registrations wait for the next publication);
    * `not_live`: the case is withdrawn or past its retention, so its values are expected to go;
    * `other_key`: the values are under another OPRF key than the filter's and were not
      re-issued (a case that is no longer live keeps its old values).

    `reissued`: when the kept values were under an older OPRF key (a rotation since the case
    was registered), the case's values as the server re-issued them for the key in force,
    verified, and compared in place of the old ones; keep it instead of the old `Registration`.
    """

    case_id: str
    status: LiveStatus
    missing: int
    values: int
    filter_revision: int
    reissued: Registration | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "status": self.status,
            "missing": self.missing,
            "values": self.values,
            "filter_revision": self.filter_revision,
            "reissued_key_id": None if self.reissued is None else self.reissued.key_id,
        }
