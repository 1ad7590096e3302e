"""What is notified, and to whom (issue 18).

| event | recipients |
| --- | --- |
| a disclosure request created | the holder's focal points |
| a request due within `notification_due_soon_days` | the holder's focal points |
| a request overdue | the holder's focal points and the secretariat |
| a request answered, withdrawn or expired | the requester's HR contacts |
| an MoU expiring within `notification_mou_expiry_days`, or expired | the member, the secretariat |
| an audit verification failure, a key rotation | the secretariat |

A party's addresses for a role are those on record for that role plus those for every role
(`server.registry.addresses`); the secretariat's and a member's MoU notices go to all of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from server.registry.addresses import AddressRole

Party = Literal["holder", "requester", "member", "secretariat"]


class Event(StrEnum):
    DISCLOSURE_REQUESTED = "disclosure.requested"
    DISCLOSURE_DUE_SOON = "disclosure.due_soon"
    DISCLOSURE_OVERDUE = "disclosure.overdue"
    DISCLOSURE_ANSWERED = "disclosure.answered"
    DISCLOSURE_WITHDRAWN = "disclosure.withdrawn"
    DISCLOSURE_EXPIRED = "disclosure.expired"
    MOU_EXPIRING = "mou.expiring"
    MOU_EXPIRED = "mou.expired"
    AUDIT_VERIFICATION_FAILED = "audit.verification_failed"
    KEY_ROTATED = "keys.rotated"


@dataclass(frozen=True)
class Recipient:
    party: Party
    #: Whose addresses of the party: one role's (and those for every role), or all of them.
    role: AddressRole | None


_HOLDER_FOCAL = Recipient("holder", "focal_point")
_REQUESTER_HR = Recipient("requester", "hr_checker")
_SECRETARIAT = Recipient("secretariat", None)
_MEMBER = Recipient("member", None)

RECIPIENTS: dict[Event, tuple[Recipient, ...]] = {
    Event.DISCLOSURE_REQUESTED: (_HOLDER_FOCAL,),
    Event.DISCLOSURE_DUE_SOON: (_HOLDER_FOCAL,),
    Event.DISCLOSURE_OVERDUE: (_HOLDER_FOCAL, _SECRETARIAT),
    Event.DISCLOSURE_ANSWERED: (_REQUESTER_HR,),
    Event.DISCLOSURE_WITHDRAWN: (_REQUESTER_HR,),
    Event.DISCLOSURE_EXPIRED: (_REQUESTER_HR,),
    Event.MOU_EXPIRING: (_MEMBER, _SECRETARIAT),
    Event.MOU_EXPIRED: (_MEMBER, _SECRETARIAT),
    Event.AUDIT_VERIFICATION_FAILED: (_SECRETARIAT,),
    Event.KEY_ROTATED: (_SECRETARIAT,),
}

#: Events about one disclosure request (they need `request=`).
DISCLOSURE_EVENTS = frozenset(e for e in Event if e.value.startswith("disclosure."))
#: Events about one member's MoU (they need `org_id=`).
MOU_EVENTS = frozenset({Event.MOU_EXPIRING, Event.MOU_EXPIRED})

#: The only facts a caller may add, per event: anything else is refused, so that no caller can
#: put an identifier or a finding into a message by passing it along.
FACTS: dict[Event, frozenset[str]] = {
    Event.AUDIT_VERIFICATION_FAILED: frozenset({"problem", "entry"}),
    Event.KEY_ROTATED: frozenset({"key_seq", "key_id"}),
}
